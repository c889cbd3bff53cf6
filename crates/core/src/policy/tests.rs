//! The sandbox, the API and every class of bad policy. The StatefulSets come
//! from the shipped policy test cases, so these tests see what diagnosis
//! really produces.

use std::path::Path;

use super::*;
use crate::inventory::Inventory;
use crate::pipeline::{self, DecideOptions, Options, Outcome};
use crate::state::State;

const NOW: &str = "2026-11-22T10:00:00Z";

fn case_objects(case: &str) -> crate::inventory::Inventory {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("policies/tests")
        .join(case);
    crate::source::files::load(&[dir.join("objects.yaml")]).expect("case objects")
}

fn options() -> Options {
    Options::new(NOW.parse().unwrap(), crate::duration::Span::minutes(10))
        .migration_annotations(&["stsmend.io/migration"])
}

/// Plans as a run does ([`pipeline::run`]), with `opts` and no limits but
/// the defaults.
fn plan_all(inv: &Inventory, state: Option<&State>, opts: &Options, p: &Policies) -> Outcome {
    let settings = pipeline::Settings::with(opts.clone());
    pipeline::run(inv, state, &settings, p).outcome
}

fn outcome(case: &str) -> (Outcome, Options) {
    let opts = options();
    (pipeline::evaluate(&case_objects(case), None, &opts), opts)
}

/// Runs `policies` on the crash-loop case's StatefulSet (shop/db, rolling
/// from revision 1 to 2, db-2 crash looping on revision 2).
fn decide_on(case: &str, policies: &Policies) -> Decision {
    let mut outcome = plan_all(&case_objects(case), None, &options(), policies);
    assert_eq!(outcome.failing.len(), 1, "{case}: one failing StatefulSet");
    outcome.failing.remove(0).plan.expect("a plan")
}

/// A policy as the default, on the crash-loop case.
fn run(text: &str) -> Decision {
    let policies = Policies::from_sources(&[("ladder", text)], Origin::Config).unwrap();
    decide_on("ladder/e-rollback-crash-loop", &policies)
}

fn error_of(text: &str) -> PolicyError {
    let d = run(text);
    assert!(d.actions.is_empty(), "no actions on error: {:?}", d.actions);
    match d.error {
        Some(e) => e,
        None => panic!("expected an error from {text:?}, got {:?}", d.actions),
    }
}

fn syntax_error(text: &str) -> PolicyError {
    Policies::from_sources(&[("bad", text)], Origin::CommandLine).unwrap_err()
}

#[test]
fn the_builtin_ladder_compiles_and_declares_its_rungs() {
    let p = Policies::builtin();
    let info = &p.infos()[0];
    assert_eq!(info.name, "ladder");
    assert!(info.error.is_none(), "{:?}", info.error);
    let d = decide_on("ladder/e-rollback-crash-loop", &p);
    let rungs: Vec<&str> = d.trace.iter().map(|s| s.rung.as_str()).collect();
    assert_eq!(
        rungs,
        [
            "wait_for_migration",
            "stand_aside",
            "scale_nodes",
            "fix_spec",
            "rollback",
            "delete_stuck_pods",
            "escalate"
        ]
    );
    assert_eq!(d.rung.as_deref(), Some("rollback"));
    assert_eq!(
        d.actions,
        [Action::Rollback {
            revision: 1,
            name: "db-5d8f7c9b6d".into(),
            evict: vec!["db-2".into()],
            suspend: None,
            why: d.actions[0].why().to_string()
        }]
    );
}

// ---------------------------------------------------------------- sandbox

#[test]
fn an_endless_loop_stops_at_the_operation_limit() {
    let e = error_of("let n = 0;\nloop {\n    n += 1;\n}\n[]");
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.message.contains("operations"), "{e}");
    assert_eq!(e.file, "ladder.rhai");
    assert!(e.line.is_some_and(|l| (2..=3).contains(&l)), "{e}");
    assert!(e.column.is_some(), "{e}");
}

#[test]
fn a_huge_string_stops_at_the_size_limit() {
    let e = error_of("let s = \"x\";\nwhile true {\n    s += s;\n}\n[]");
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.message.contains("exceeds the sandbox limit"), "{e}");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn a_huge_array_and_deep_recursion_stop_at_their_limits() {
    let e = error_of("let a = [];\nfor i in 0..100000 { a.push(i); }\n[]");
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    let e = error_of("fn down(n) { down(n + 1) }\ndown(0);\n[]");
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.message.contains("nested deeper"), "{e}");
}

/// Copies of a large map cost time no operation counts (issue 22: 18 s a
/// StatefulSet inside the operation limit): the evaluation's wall-time
/// budget stops it, naming the line, and the run goes on.
#[test]
fn copies_of_large_values_stop_at_the_time_budget() {
    let limits = SandboxLimits {
        time: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let text = "let m = #{};\nfor i in 0..9000 { m[`k${i}`] = [i, i, i]; }\nlet n = 0;\nfor i in 0..100000 { let c = m; c.k0 = i; n += c.len(); }\n[]";
    let p =
        Policies::from_sources_with_limits(&[("ladder", text)], Origin::Config, limits).unwrap();
    let started = std::time::Instant::now();
    let d = decide_on("ladder/e-rollback-crash-loop", &p);
    let e = d.error.expect("over its time");
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.message.contains("ran longer than 50 ms"), "{e}");
    assert_eq!(e.file, "ladder.rhai", "{e}");
    assert!(d.actions.is_empty());
    // Not a timed assertion of speed: only that the budget, not the
    // loop's end, stopped it (the loop alone runs for minutes).
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // The same policy with the default budget is still stopped, by its
    // operations or its time, never running on.
    let e = error_of(text);
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    // Without an operation limit, a loop is stopped by its time, at its
    // line.
    let unlimited = SandboxLimits {
        operations: 0,
        ..limits
    };
    let p = Policies::from_sources_with_limits(
        &[("ladder", "let n = 0;\nloop {\n    n += 1;\n}\n[]")],
        Origin::Config,
        unlimited,
    )
    .unwrap();
    let e = decide_on("ladder/e-rollback-crash-loop", &p).error.unwrap();
    assert!(e.message.contains("ran longer than 50 ms"), "{e}");
    assert!(e.line.is_some_and(|l| (2..=3).contains(&l)), "{e}");
}

/// Past the run's deadline for deciding, every evaluation stops at once
/// (a deadline error, no actions), so a slow policy cannot hold a run past
/// its deadline; the ladder too.
#[test]
fn past_the_runs_deadline_evaluations_stop() {
    let mut p = Policies::from_sources(
        &[("ladder", "let n = 0;\nloop {\n    n += 1;\n}\n[]")],
        Origin::Config,
    )
    .unwrap();
    p.set_deadline(std::time::Instant::now());
    let e = decide_on("ladder/e-rollback-crash-loop", &p).error.unwrap();
    assert_eq!(e.kind, ErrorKind::Deadline, "{e}");
    assert!(e.message.contains("deadline passed"), "{e}");
    let mut builtin = Policies::builtin();
    builtin.set_deadline(std::time::Instant::now());
    let d = decide_on("ladder/e-rollback-crash-loop", &builtin);
    assert_eq!(d.error.map(|e| e.kind), Some(ErrorKind::Deadline));
    assert!(d.actions.is_empty());
    // With time left, the same ladder decides.
    let mut later = Policies::builtin();
    later.set_deadline(std::time::Instant::now() + std::time::Duration::from_secs(3600));
    assert_eq!(
        decide_on("ladder/e-rollback-crash-loop", &later).actions[0].name(),
        "rollback"
    );
}

#[test]
fn a_patch_too_deep_or_too_large_is_an_invalid_action() {
    let e = error_of(
        "let p = #{};\nfor i in 0..40 { p = #{x: p}; }\n[patch_spec(#{spec: #{template: p}}, \"deep\")]",
    );
    assert_eq!(e.kind, ErrorKind::InvalidAction, "{e}");
    assert!(e.message.contains("nested deeper than 32"), "{e}");
    let e = error_of(
        "let m = #{};\nfor i in 0..9000 { m[`annotation-number-${i}`] = `${i}`; }\n[patch_spec(#{spec: #{template: #{metadata: #{annotations: m}}}}, \"large\")]",
    );
    assert_eq!(e.kind, ErrorKind::InvalidAction, "{e}");
    assert!(e.message.contains("bytes as JSON, more than"), "{e}");
}

#[test]
fn a_policy_cannot_import_a_module_or_read_a_file() {
    for text in [
        "import \"/etc/passwd\" as secrets;\n[]",
        "import \"../ladder\" as l;\n[]",
    ] {
        let e = syntax_error(text);
        assert_eq!(e.kind, ErrorKind::Syntax, "{e}");
        assert!(e.message.contains("`import` is disabled"), "{e}");
        assert_eq!((e.line, e.column), (Some(1), Some(1)), "{e}");
    }
    let e = syntax_error("let x = eval(\"40 + 2\");\n[]");
    assert!(e.message.contains("`eval` is disabled"), "{e}");
    // Nothing in the sandbox reads files, the clock or sleeps.
    for call in [
        "open_file(\"/etc/passwd\")",
        "read_string(\"/etc/passwd\")",
        "timestamp()",
        "sleep(10)",
        "exit()",
        "parse_json(\"{}\")",
    ] {
        let e = error_of(&format!("let x = {call};\n[]"));
        assert_eq!(e.kind, ErrorKind::Runtime, "{call}: {e}");
        assert!(e.message.contains("not found"), "{call}: {e}");
    }
}

#[test]
fn the_facts_are_read_only() {
    let e = error_of("sts.name = \"other\";\n[]");
    assert_eq!(e.kind, ErrorKind::Runtime, "{e}");
    assert_eq!(e.line, Some(1), "{e}");
    let e = error_of("pods.clear();\n[]");
    assert_eq!(e.kind, ErrorKind::Runtime, "{e}");
    // The StatefulSet, pods and findings are objects: a misspelt property
    // is an error, not a silent ().
    let e = error_of("let x = sts.nmae;\n[]");
    assert_eq!(e.kind, ErrorKind::Runtime, "{e}");
    assert!(e.message.contains("nmae"), "{e}");
    let e = error_of("let x = pods[0][\"redy\"];\n[]");
    assert!(e.message.contains("redy (Pod has: name, "), "{e}");
}

// ---------------------------------------------------------------- finding data

/// The why of the one action `text` returns on the crash-loop case.
fn why_of(text: &str) -> String {
    let d = run(text);
    assert!(d.error.is_none(), "{text}: {:?}", d.error);
    d.actions[0].why().to_string()
}

#[test]
fn finding_data_reads_the_keys_of_its_kind() {
    let f = "let f = finding(\"crash_loop\");\n";
    assert_eq!(
        why_of(&format!(
            "{f}[escalate(`${{f.data.container}} ${{f.data.exit_code}} ${{f.data[\"reason\"]}}`)]"
        )),
        "db 1 Error"
    );
    // Keys the kind has but this finding does not set read as ().
    assert_eq!(
        why_of(&format!(
            "{f}[escalate(`${{f.data.memory_limit == ()}} ${{f.data.log == ()}}`)]"
        )),
        "true true"
    );
    // `in` tells the keys of the kind, set or not.
    assert_eq!(
        why_of(&format!(
            "{f}[escalate(`${{\"log\" in f.data}} ${{\"scalable_groups\" in f.data}} ${{f.data.to_map().len() == f.data.keys().len()}}`)]"
        )),
        "true false true"
    );
}

#[test]
fn a_misspelt_data_key_is_an_error_naming_it_and_the_kind() {
    let e = error_of("let f = finding(\"crash_loop\");\nlet x = f.data.exit_cod;\n[]");
    assert_eq!(e.kind, ErrorKind::Runtime, "{e}");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.message
            .contains("exit_cod (crash_loop data has: container, restarts, "),
        "{e}"
    );
    // Another kind's key is as wrong, by index too.
    let e = error_of("let f = finding(\"rollout_stuck\");\nlet x = f.data[\"exit_code\"];\n[]");
    assert!(
        e.message.contains("exit_code (rollout_stuck data has: "),
        "{e}"
    );
    // A kind without data has no keys.
    let e = error_of("let f = finding(\"ordered_ready_blocked\");\nlet x = f.data.reason;\n[]");
    assert!(
        e.message
            .contains("reason (ordered_ready_blocked data has no keys)"),
        "{e}"
    );
}

#[test]
fn a_finding_prints_its_data() {
    let why = why_of("[escalate(`${finding(\"crash_loop\")}`)]");
    assert!(why.contains("\"data\": #{\"container\": \"db\""), "{why}");
}

#[test]
fn finding_data_is_read_only() {
    let e = error_of("let f = finding(\"crash_loop\");\nf.data.container = \"x\";\n[]");
    assert_eq!(e.kind, ErrorKind::Runtime, "{e}");
}

// ---------------------------------------------------------------- bad policies

#[test]
fn a_syntax_error_names_file_line_and_column_at_load() {
    let e = syntax_error("let x = 1;\nlet = 2;\n[]");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.file, "bad.rhai");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.to_string().starts_with("bad.rhai:2:"), "{e}");
    // A misspelt variable is caught before anything runs.
    let e = syntax_error("if podz.len() > 0 { [] } else { [] }");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.message.contains("podz"), "{e}");
}

#[test]
fn a_broken_policy_from_the_config_only_costs_the_objects_it_decides_for() {
    let p = Policies::from_sources(&[("ladder", "if {")], Origin::Config).unwrap();
    let info = &p.infos()[0];
    assert_eq!(info.error.as_ref().unwrap().kind, ErrorKind::Syntax);
    let d = decide_on("ladder/e-rollback-crash-loop", &p);
    assert!(d.actions.is_empty());
    assert_eq!(d.error.unwrap().kind, ErrorKind::Syntax);
}

#[test]
fn a_runtime_error_names_the_innermost_position_and_the_calls() {
    let e = error_of("fn pick(list) {\n    list[10]\n}\nlet p = pick(pods);\n[]");
    assert_eq!(e.kind, ErrorKind::Runtime, "{e}");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("fn pick called at 4:"), "{e}");
    let e = error_of("\n  throw \"giving up\";\n[]");
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert!(e.message.contains("giving up"), "{e}");
    assert_eq!((e.line, e.column), (Some(2), Some(3)), "{e}");
    let e = error_of("[rollbak(1, \"typo\")]");
    assert!(e.message.contains("rollbak"), "{e}");
}

#[test]
fn a_wrong_return_type_points_at_the_return() {
    let e = error_of("if has(\"crash_loop\") {\n    return \"rollback\";\n}\n[]");
    assert_eq!(e.kind, ErrorKind::ReturnType, "{e}");
    assert_eq!((e.line, e.column), (Some(2), Some(5)), "{e}");
    assert!(e.message.contains("a string \"rollback\""), "{e}");

    // Implicitly: the last statement.
    let e = error_of("let plan = [];\n42");
    assert_eq!(e.kind, ErrorKind::ReturnType);
    assert_eq!(e.line, Some(2), "{e}");

    // Nothing returned at all.
    let e = error_of("let plan = [escalate(\"x\")];\n");
    assert!(e.message.contains("nothing"), "{e}");
    assert_eq!(e.line, Some(1), "{e}");

    // An action without its array.
    let e = error_of("escalate(\"x\")");
    assert!(e.message.contains("put the action in brackets"), "{e}");

    // An array holding something else.
    let e = error_of("if sts.replicas == 0 { return []; }\n[escalate(\"x\"), \"rollback\"]");
    assert!(e.message.contains("element 2"), "{e}");
    assert_eq!(e.line, Some(1), "both returns give arrays: {e}");
    assert!(e.message.contains("or at 2:1"), "{e}");

    // A return inside a function returns to its caller, not from the policy.
    let e = error_of("fn f() { return \"x\"; }\nlet y = f();\ny");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn invalid_actions_are_errors_at_their_call() {
    for (text, needle) in [
        (
            "[rollback(9, \"x\")]",
            "no ControllerRevision numbered 9 (known: 1 (db-5d8f7c9b6d), 2 (db-7c9d8f6b54))",
        ),
        ("[rollback(2, \"x\")]", "changes nothing"),
        ("[rollback(last_good_revision(), \"\")]", "needs a why"),
        ("[rollback((), \"x\")]", "no revision given"),
        ("[delete_pods([\"db-0\"], \"x\")]", "db-0 is Ready"),
        ("[delete_pods([\"db-2\"], \"x\")]", "on the update revision"),
        ("[delete_pods([\"web-0\"], \"x\")]", "not a pod of shop/db"),
        (
            "[delete_pods([\"db-0\"], \"x\", #{anypod: true})]",
            "unknown option",
        ),
        (
            "[scale_nodes(\"gpu\", 1, \"x\")]",
            "no configured node group \"gpu\"",
        ),
        (
            "[patch_spec(#{metadata: #{labels: #{a: \"b\"}}}, \"x\")]",
            "may only hold `spec`",
        ),
        (
            "[patch_spec([#{op: \"remove\", path: \"/metadata/labels\"}], \"x\")]",
            "outside /spec/",
        ),
        (
            "[patch_spec([#{op: \"replace\", path: \"/spec/nothing/here\", value: 1}], \"x\")]",
            "does not apply",
        ),
        (
            "[patch_spec(#{spec: #{replicas: \"three\"}}, \"x\")]",
            "not a valid StatefulSet spec",
        ),
        ("[patch_spec(\"replicas: 2\", \"x\")]", "must be a map"),
        ("[wait(\"x\", \"soon\")]", "recheck_after"),
        ("[wait(\"x\", 0)]", "longer than 0s"),
        ("[escalate(\"   \")]", "needs a why"),
        (
            "[rollback(1, \"x\", #{suspend_sync: true})]",
            "not applied by a Flux Kustomization or HelmRelease or an Argo CD Application",
        ),
        (
            "[rollback(1, \"x\", #{suspend_sync: \"yes\"})]",
            "suspend_sync must be true or false",
        ),
        (
            "if has(\"crashloop\") { [] } else { [] }",
            "unknown finding kind \"crashloop\"",
        ),
    ] {
        let e = error_of(text);
        assert_eq!(e.kind, ErrorKind::InvalidAction, "{text}: {e}");
        assert!(e.message.contains(needle), "{text}: {e}");
        assert_eq!(e.line, Some(1), "{text}: {e}");
        assert!(e.column.is_some(), "{text}: {e}");
    }
}

#[test]
fn a_suspended_sync_is_the_one_the_spec_owner_names() {
    let p = Policies::from_sources(
        &[(
            "ladder",
            "[rollback(1, \"r\", #{suspend_sync: true}), rollback(1, \"n\", #{suspend_sync: false})]",
        )],
        Origin::Config,
    )
    .unwrap();
    let d = decide_on("ladder/e-escalate-flux-kustomization", &p);
    assert!(d.error.is_none(), "{:?}", d.error);
    let json = serde_json::to_value(&d.actions).unwrap();
    assert_eq!(
        json[0]["suspend"],
        serde_json::json!({"kind": "Kustomization", "apiGroup": "kustomize.toolkit.fluxcd.io", "namespace": "flux-system", "name": "apps"})
    );
    assert!(json[1].get("suspend").is_none(), "{json}");
    assert!(
        d.actions[0].describe().starts_with(
            "suspend the sync of Kustomization flux-system/apps, then roll back to revision 1"
        ),
        "{}",
        d.actions[0].describe()
    );
}

#[test]
fn valid_actions_carry_what_acting_needs() {
    let d = run(
        "[wait(\"w\", \"2m\"), wait(\"s\", 90), rollback(\"db-5d8f7c9b6d\", \"r\"), rollback(last_good_revision(), \"g\"),\n delete_pods(pods_not_ready_on_update(), \"force\", #{any_pod: true}), delete_pods(\"db-0\", \"ready\", #{any_pod: true}),\n patch_spec(#{spec: #{replicas: 2}}, \"m\"), patch_spec([#{op: \"replace\", path: \"/spec/replicas\", value: 2}], \"j\"), escalate(\"e\")]",
    );
    assert!(d.error.is_none(), "{:?}", d.error);
    let json = serde_json::to_value(&d.actions).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"action": "wait", "recheckAfter": "2m", "why": "w"},
            {"action": "wait", "recheckAfter": "1m30s", "why": "s"},
            {"action": "rollback", "revision": 1, "name": "db-5d8f7c9b6d", "why": "r"},
            {"action": "rollback", "revision": 1, "name": "db-5d8f7c9b6d", "why": "g"},
            {"action": "delete_pods", "pods": ["db-2"], "anyPod": true, "why": "force"},
            {"action": "delete_pods", "pods": ["db-0"], "anyPod": true, "why": "ready"},
            {"action": "patch_spec", "patchType": "merge", "patch": {"spec": {"replicas": 2}}, "why": "m"},
            {"action": "patch_spec", "patchType": "json", "patch": [{"op": "replace", "path": "/spec/replicas", "value": 2}], "why": "j"},
            {"action": "escalate", "why": "e"},
        ])
    );
    assert_eq!(d.writes(), 6);
    assert_eq!(
        d.rung.as_deref(),
        Some("ladder"),
        "a policy without rungs is one"
    );
}

#[test]
fn scale_nodes_stays_within_the_configured_max() {
    let p = Policies::from_sources(
        &[("ladder", "[scale_nodes(\"gpu\", 5, \"x\")]")],
        Origin::Config,
    )
    .unwrap();
    let d = decide_on_gpu(&p);
    let e = d.error.unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidAction);
    assert!(e.message.contains("between 1 and its max 4"), "{e}");
    let p = Policies::from_sources(
        &[("ladder", "[scale_nodes(\"gpu\", 4, \"x\")]")],
        Origin::Config,
    )
    .unwrap();
    assert!(decide_on_gpu(&p).error.is_none());
}

fn decide_on_gpu(p: &Policies) -> Decision {
    let mut opts = options();
    opts.node_groups = vec![crate::config::NodeGroup {
        name: "gpu".into(),
        resource: crate::config::ScaleTarget {
            api_version: "cluster.x-k8s.io/v1beta1".into(),
            kind: "MachineDeployment".into(),
            namespace: None,
            name: "gpu-pool".into(),
        },
        min: 0,
        max: 4,
        provides: Default::default(),
        ready_within: crate::duration::Span::minutes(10),
    }];
    // Facts carry the node groups: evaluate with them configured.
    let inv = case_objects("ladder/c-scale-gpu-node-group");
    let mut outcome = plan_all(&inv, None, &opts, p);
    outcome.failing.remove(0).plan.unwrap()
}

#[test]
fn the_helpers_see_the_statefulset_under_evaluation() {
    let d = run(r#"
        fn names(list) { list.map(|p| p.name).join(",") }
        let good = last_good_revision();
        let upd = update_revision();
        [escalate(`${names(pods_not_ready_on_update())}|${good.revision}|${upd.name}|${has("crash_loop")}|${findings_of("crash_loop").len()}|${finding("image_pull") == ()}|${pods_stuck_after_rollback().len()}|${seconds_since("2026-11-22T09:59:00Z")}|${duration("1h30m")}|${quantity("512Mi")}|${now}|${revision(2).name}|${sts.containers[0].requests.memory}|${spec().serviceName}|${kinds().contains("revision_change")}`)]
    "#);
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(
        d.actions[0].why(),
        "db-2|1|db-7c9d8f6b54|true|1|true|0|60|5400|536870912.0|1795341600|db-7c9d8f6b54|1Gi|db|true"
    );
}

#[test]
fn run_context_reaches_the_policy() {
    let d = run(
        "[escalate(`${run.failing}/${run.scanned} storm=${run.storm} now=${run.now} for=${run.threshold_seconds}`)]",
    );
    assert_eq!(
        d.actions[0].why(),
        "1/1 storm=false now=2026-11-22T10:00:00Z for=600"
    );
}

// ---------------------------------------------------------------- trace

#[test]
fn rungs_are_declared_chosen_once_and_recorded() {
    let d = run(
        "rungs([\"a\", \"b\", \"c\"]);\nskip(\"a\", \"not this\");\nchoose(\"b\", [escalate(\"this\")])",
    );
    let t: Vec<(&str, Status)> = d
        .trace
        .iter()
        .map(|s| (s.rung.as_str(), s.status))
        .collect();
    assert_eq!(
        t,
        [
            ("a", Status::Skipped),
            ("b", Status::Chosen),
            ("c", Status::NotReached)
        ]
    );
    assert_eq!(d.rung.as_deref(), Some("b"));

    for (text, needle) in [
        ("choose(\"a\", []);\nchoose(\"b\", [])", "already chosen"),
        (
            "rungs([\"a\"]);\nskip(\"z\", \"x\");\n[]",
            "not among the declared rungs",
        ),
        (
            "skip(\"a\", \"x\");\nskip(\"a\", \"y\");\n[]",
            "already in the trace",
        ),
        (
            "skip(\"a\", \"x\");\nrungs([\"a\"]);\n[]",
            "declare the rungs before",
        ),
        ("choose(\"a\", [\"x\"])", "not an action"),
        ("ladder()", "cannot call itself"),
    ] {
        let e = error_of(text);
        assert_eq!(e.kind, ErrorKind::InvalidAction, "{text}: {e}");
        assert!(e.message.contains(needle), "{text}: {e}");
    }
}

#[test]
fn a_team_policy_delegates_to_the_ladder_and_may_override_it() {
    let team = "//! @namespaces shop\nlet plan = ladder();\nif plan[0].action == \"rollback\" {\n    return choose(\"mine\", [escalate(`not ${plan[0].revision}`)]);\n}\nplan";
    let p = Policies::from_sources(&[("team", team)], Origin::CommandLine).unwrap();
    let d = decide_on("ladder/e-rollback-crash-loop", &p);
    assert_eq!(d.policy, "team");
    assert!(
        d.selected_by.contains("namespace shop"),
        "{}",
        d.selected_by
    );
    assert_eq!(d.rung.as_deref(), Some("mine"));
    assert_eq!(d.actions[0].why(), "not 1");
    let rollback = d.trace.iter().find(|s| s.rung == "rollback").unwrap();
    assert_eq!(
        (rollback.policy.as_str(), rollback.status),
        ("ladder", Status::Overridden)
    );

    // Passing the ladder's plan through keeps its rung.
    let p = Policies::from_sources(
        &[("team", "//! @namespaces shop\nladder()")],
        Origin::CommandLine,
    )
    .unwrap();
    let d = decide_on("ladder/e-rollback-crash-loop", &p);
    assert_eq!(d.rung.as_deref(), Some("rollback"));
    assert_eq!(d.actions[0].name(), "rollback");

    // A broken ladder is an error for the team policy that calls it.
    let p = Policies::from_sources(
        &[
            ("ladder", "[1]"),
            ("team", "//! @namespaces shop\nladder()"),
        ],
        Origin::Config,
    )
    .unwrap();
    let e = decide_on("ladder/e-rollback-crash-loop", &p).error.unwrap();
    assert!(e.message.contains("the default ladder failed"), "{e}");
    assert_eq!(e.file, "team.rhai");
}

#[test]
fn one_bad_object_does_not_stop_the_others() {
    // Fails only on the ledger StatefulSet.
    let text = "if sts.name == \"ledger\" { throw \"no\"; }\n[escalate(sts.name)]";
    let p = Policies::from_sources(&[("ladder", text)], Origin::Config).unwrap();
    let outcome = plan_all(
        &case_objects("ladder/e-rollback-bad-release-not-a-storm"),
        None,
        &options(),
        &p,
    );
    let plans: Vec<(String, bool, usize)> = outcome
        .failing
        .iter()
        .map(|a| {
            let d = a.plan.as_ref().unwrap();
            (a.name.clone(), d.error.is_some(), d.actions.len())
        })
        .collect();
    assert_eq!(
        plans,
        [
            ("ledger".to_string(), true, 0),
            ("orders".to_string(), false, 1),
            ("sessions".to_string(), false, 1)
        ]
    );
    assert_eq!(outcome.policy_errors().count(), 1);
}

#[test]
fn pending_statefulsets_get_no_plan() {
    let outcome = plan_all(
        &case_objects("ladder/pending-makes-no-plan"),
        None,
        &options(),
        &Policies::builtin(),
    );
    assert!(outcome.failing.is_empty());
    assert!(outcome.pending.iter().all(|a| a.plan.is_none()));
}

#[test]
fn a_view_is_reusable_across_evaluations() {
    let (outcome, opts) = outcome("ladder/e-rollback-crash-loop");
    let a = &outcome.failing[0];
    let run = pipeline::run_context(
        &outcome,
        &opts,
        &DecideOptions::default(),
        &Default::default(),
    );
    let view = std::sync::Arc::new(View::new(&a.facts, &a.detection, &a.findings, &run));
    let p = Policies::builtin();
    let first = p.decide_view(&a.facts.stateful_set, &view);
    let second = p.decide_view(&a.facts.stateful_set, &view);
    assert_eq!(first, second);
    // What a policy does to its copies changes nothing for the next one.
    let scribbler = Policies::from_sources(
        &[(
            "ladder",
            "let p = pods; p.clear();\nlet l = sts.labels; l.x = \"y\";\nlet d = findings[0].data.to_map(); d.x = 1;\nlet f = || pods[0].labels.clear(); try { f.call(); } catch {}\n[escalate(`${p.len()}`)]",
        )],
        Origin::Config,
    )
    .unwrap();
    let d = scribbler.decide_view(&a.facts.stateful_set, &view);
    assert_eq!(d.actions[0].why(), "0", "{:?}", d.error);
    let reader = Policies::from_sources(
        &[(
            "ladder",
            "[escalate(`${pods.len()} ${sts.labels.x} ${findings[0].data.to_map().x} ${pods[0].labels.len()}`)]",
        )],
        Origin::Config,
    )
    .unwrap();
    assert_eq!(
        reader.decide_view(&a.facts.stateful_set, &view).actions[0].why(),
        "3   3"
    );
    assert_eq!(p.decide_view(&a.facts.stateful_set, &view), first);
}

/// The crash-loop case just after the agent rolled it back: the spec
/// written (a new generation), the controller yet to observe it.
fn just_rolled_back(seconds_ago: i64) -> Decision {
    let mut inv = case_objects("ladder/e-rollback-crash-loop");
    let sts = &mut inv.stateful_sets[0];
    sts.metadata.generation = Some(sts.metadata.generation.unwrap_or(1) + 1);
    let opts = options();
    let mut state = crate::state::State::default();
    state.records.insert(
        "shop/db".into(),
        crate::state::Record {
            failing_runs: 3,
            last_action: Some(crate::state::LastAction {
                at: opts.now - jiff::SignedDuration::from_secs(seconds_ago),
                action: "rollback".into(),
                why: "the new revision fails".into(),
            }),
            ..Default::default()
        },
    );
    let mut outcome = plan_all(&inv, Some(&state), &opts, &Policies::builtin());
    assert_eq!(outcome.failing.len(), 1);
    outcome.failing.remove(0).plan.expect("a plan")
}

#[test]
fn the_ladder_waits_while_its_own_rollback_is_unobserved() {
    let d = just_rolled_back(40);
    assert_eq!(d.rung.as_deref(), Some("stand_aside"), "{:?}", d.trace);
    match &d.actions[..] {
        [Action::Wait { why, .. }] => {
            assert!(why.contains("rollback written 40s ago"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // Ten minutes on, the controller should long have seen it: the ladder
    // goes on to its other rungs.
    let later = just_rolled_back(700);
    assert_ne!(
        later.rung.as_deref(),
        Some("stand_aside"),
        "{:?}",
        later.trace
    );
}

/// The GPU case with its node group configured, after this agent scaled
/// the group `seconds_ago` (or never).
fn after_scaling(seconds_ago: Option<i64>) -> Decision {
    let mut opts = options();
    opts.node_groups = vec![crate::config::NodeGroup {
        name: "gpu".into(),
        resource: crate::config::ScaleTarget {
            api_version: "cluster.x-k8s.io/v1beta1".into(),
            kind: "MachineDeployment".into(),
            namespace: Some("capi-system".into()),
            name: "gpu-pool".into(),
        },
        min: 0,
        max: 4,
        provides: crate::config::Provides {
            labels: [("accelerator".to_string(), "nvidia".to_string())].into(),
            resources: [("nvidia.com/gpu".to_string(), "1".to_string())].into(),
            taints: Vec::new(),
        },
        ready_within: crate::duration::Span::minutes(10),
    }];
    let mut state = crate::state::State::default();
    if let Some(ago) = seconds_ago {
        state.records.insert(
            "shop/db".into(),
            crate::state::Record {
                failing_runs: 3,
                last_action: Some(crate::state::LastAction {
                    at: opts.now - jiff::SignedDuration::from_secs(ago),
                    action: "scale_nodes".into(),
                    why: "db-2 unschedulable; node group gpu provides it (max 4 nodes)".into(),
                }),
                ..Default::default()
            },
        );
    }
    let inv = case_objects("ladder/c-scale-gpu-node-group");
    let mut outcome = plan_all(&inv, Some(&state), &opts, &Policies::builtin());
    assert_eq!(outcome.failing.len(), 1);
    outcome.failing.remove(0).plan.expect("a plan")
}

#[test]
fn a_node_group_is_scaled_once_then_waited_for_then_escalated() {
    let first = after_scaling(None);
    assert!(
        matches!(&first.actions[..], [Action::ScaleNodes { group, .. }] if group == "gpu"),
        "{:?}",
        first.actions
    );
    // Its nodes have time to turn Ready: wait, do not add more.
    let soon = after_scaling(Some(120));
    assert_eq!(soon.rung.as_deref(), Some("scale_nodes"));
    match &soon.actions[..] {
        [Action::Wait { why, .. }] => assert!(why.contains("480s left"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Past readyWithin the pods still wait: the nodes never came; a
    // person decides, the group is not scaled again.
    let late = after_scaling(Some(900));
    match &late.actions[..] {
        [Action::Escalate { why }] => {
            assert!(why.contains("not scaling it again"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_annotation_picks_only_a_policy_scoped_to_its_namespace() {
    let p = Policies::from_sources(
        &[
            ("payments", "//! @namespaces payments\nladder()"),
            ("anywhere", "//! Chosen only by annotation.\nladder()"),
        ],
        Origin::Config,
    )
    .unwrap();
    let sts = |ns: &str, policy: &str| StatefulSet {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("db".into()),
            namespace: Some(ns.into()),
            annotations: Some([("stsmend.io/policy".to_string(), policy.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let (e, by) = p.select(&sts("payments", "payments")).unwrap();
    assert_eq!(
        (e.name(), by.as_str()),
        ("payments", "annotation stsmend.io/policy=payments")
    );
    let err = p.select(&sts("shop", "payments")).map(|_| ()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutOfScope);
    assert!(
        err.message
            .contains("@namespaces (payments) leave out namespace \"shop\""),
        "{err}"
    );
    // Without @namespaces the annotation is what selects it.
    assert_eq!(
        p.select(&sts("shop", "anywhere")).unwrap().0.name(),
        "anywhere"
    );
}
