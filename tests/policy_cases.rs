//! The shipped policy test cases (policies/tests), and the policy side of
//! the command line: `policy test`, plans in every report format,
//! `explain`, and exit codes for bad policies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOW: &str = "2026-11-22T10:00:00Z";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stsmend(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(args)
        .current_dir(root())
        .env("STSMEND_LOG", "off")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run stsmend")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stsmend-policy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const CRASH_LOOP: &str = "policies/tests/ladder/e-rollback-crash-loop/objects.yaml";
const STORM: &str = "policies/tests/ladder/e-rollback-bad-release-not-a-storm/objects.yaml";

#[test]
fn every_shipped_policy_case_passes() {
    let results = stsmend::cases::run_dir(&root().join("policies/tests")).unwrap();
    let table = results.render(false);
    println!("{table}");
    assert_eq!(results.failed(), 0, "{table}");
    // Every rung and skip of the ladder, and every example.
    assert!(results.passed() >= 29, "{table}");
    for rung in [
        "wait_for_migration",
        "stand_aside",
        "scale_nodes",
        "rollback",
        "delete_stuck_pods",
        "escalate",
        "fit_limit_range",
        "no_pod_deletion",
        "helm_rollback_by_hand",
    ] {
        assert!(
            results.rows.iter().any(|r| r.rung == rung),
            "no case chooses {rung}"
        );
    }
}

#[test]
fn policy_test_prints_a_table_and_exits_by_result() {
    let out = stsmend(&["policy", "test", "policies/tests"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("│ ID │ CASE"), "{stdout}");
    assert!(stdout.contains("ladder/e-rollback-crash-loop"), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");

    // A case whose expectation is wrong fails the run, with the difference.
    let dir = temp_dir("failing-case");
    std::fs::copy(root().join(CRASH_LOOP), dir.join("objects.yaml")).unwrap();
    std::fs::write(
        dir.join("case.yaml"),
        format!(
            "now: {NOW}\nexpect:\n- statefulSet: shop/db\n  actions:\n  - {{action: delete_pods, pods: [db-2]}}\n"
        ),
    )
    .unwrap();
    let out = stsmend(&["policy", "test", dir.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Fail"), "{stdout}");
    assert!(
        stdout.contains("actions[0].action: expected \"delete_pods\", got \"rollback\""),
        "{stdout}"
    );

    // A case that cannot be read is bad input.
    std::fs::write(dir.join("case.yaml"), "now: yesterday\nexpect: []\n").unwrap();
    let out = stsmend(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("case.yaml"),
        "{}",
        text(&out.stderr)
    );
}

/// A case from an untrusted pull request cannot make `policy test` read
/// (and quote) a file outside the directory under test: not by an
/// absolute path, not by `..`, not through a symbolic link; nor name its
/// policies absolutely.
#[test]
fn a_case_reads_only_below_its_directory() {
    let dir = temp_dir("escape");
    let secret = temp_dir("escape-secret").join("secret.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: leaked-token}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("link.yaml")).unwrap();
    let escape = format!(
        "../stsmend-policy-{}-escape-secret/secret.yaml",
        std::process::id()
    );
    for (objects, why) in [
        ("/proc/self/environ", "is absolute"),
        (escape.as_str(), "the directory under test"),
        ("link.yaml", "the directory under test"),
    ] {
        std::fs::write(
            dir.join("case.yaml"),
            format!("now: {NOW}\nobjects: [\"{objects}\"]\nexpect:\n- statefulSet: shop/db\n"),
        )
        .unwrap();
        let out = stsmend(&["policy", "test", dir.to_str().unwrap()]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{objects}: {stdout}{stderr}");
        assert!(stderr.contains(why), "{objects}: {stderr}");
        assert!(
            !format!("{stdout}{stderr}").contains("leaked-token"),
            "{stdout}{stderr}"
        );
    }
    // Nor when the case names no objects and takes the files beside it.
    std::fs::write(
        dir.join("case.yaml"),
        format!("now: {NOW}\nexpect:\n- statefulSet: shop/db\n"),
    )
    .unwrap();
    let out = stsmend(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("resolves outside"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(dir.join("link.yaml")).unwrap();
    std::fs::copy(root().join(CRASH_LOOP), dir.join("objects.yaml")).unwrap();
    std::fs::write(
        dir.join("case.yaml"),
        format!("now: {NOW}\npolicies: /etc/stsmend/policies\nexpect:\n- statefulSet: shop/db\n"),
    )
    .unwrap();
    let out = stsmend(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("is absolute"),
        "{}",
        text(&out.stderr)
    );
}

/// A policy that prints in a loop cannot flood the CronJob's log (issue
/// 22: 10.9 GB at debug level): past its evaluation's print budget the
/// rest is dropped, once said.
#[test]
fn a_policy_printing_in_a_loop_is_capped() {
    let dir = temp_dir("printer");
    let policy = dir.join("ladder.rhai");
    std::fs::write(
        &policy,
        "let s = \"x\";\nfor i in 0..12 { s += s; }\nfor i in 0..20000 { print(s); }\n[escalate(\"printed\")]",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(["plan", "--from", CRASH_LOOP, "--for", "0s", "--policies"])
        .arg(&policy)
        .current_dir(root())
        .env("STSMEND_LOG", "debug")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("prints are dropped"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    // 20,000 prints of 4 KiB would be 80 MB; the budget is 16 KiB of them.
    assert!(stderr.len() < 1_000_000, "{} bytes logged", stderr.len());
}

#[test]
fn plan_shows_the_plan_and_trace_in_every_format() {
    let base = ["plan", "--from", CRASH_LOOP, "--now", NOW];
    let out = stsmend(&[&base[..], &["-o", "text"]].concat());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("plan by policy ladder, rung rollback:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1. roll back to revision 1 (db-5d8f7c9b6d), wait until the controller has observed it, then evict db-2 (a forced rollback): the new revision fails"),
        "{stdout}"
    );
    assert!(stdout.contains("wait_for_migration skipped"), "{stdout}");

    let out = stsmend(&[&base[..], &["-o", "markdown"]].concat());
    let md = text(&out.stdout);
    assert!(
        md.contains("**Plan** (policy `ladder`, rung `rollback`"),
        "{md}"
    );
    assert!(md.contains("<summary>Ladder trace</summary>"), "{md}");
    assert!(md.contains("| `ladder` | `fix_spec` | skipped |"), "{md}");

    let out = stsmend(&[&base[..], &["-o", "json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = &v["failing"][0]["plan"];
    assert_eq!(plan["policy"], "ladder");
    assert_eq!(plan["rung"], "rollback");
    assert_eq!(plan["actions"][0]["action"], "rollback");
    assert_eq!(plan["actions"][0]["revision"], 1);
    assert_eq!(plan["actions"][0]["name"], "db-5d8f7c9b6d");
    assert_eq!(plan["actions"][0]["evict"], serde_json::json!(["db-2"]));
    assert_eq!(plan["trace"].as_array().unwrap().len(), 7);
    assert_eq!(plan["trace"][4]["status"], "chosen");
    assert_eq!(v["policies"][0]["name"], "ladder");
}

#[test]
fn explain_prints_the_trace_of_one_statefulset() {
    let out = stsmend(&["explain", "shop/db", "--from", CRASH_LOOP, "--now", NOW]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("shop/db: failing"), "{stdout}");
    assert!(stdout.contains("Policy: ladder"), "{stdout}");
    for line in [
        "wait_for_migration  skipped      no pod is terminating",
        "fix_spec            skipped      the default ladder knows no safe spec fix",
        "rollback            chosen",
        "escalate            not reached  rung rollback was chosen first",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    assert!(stdout.contains("Plan (rung rollback):"), "{stdout}");

    let out = stsmend(&[
        "explain", "shop/db", "--from", CRASH_LOOP, "--now", NOW, "-o", "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "failing");
    assert_eq!(v["assessment"]["plan"]["rung"], "rollback");

    let out = stsmend(&[
        "explain",
        "shop/nothing",
        "--from",
        CRASH_LOOP,
        "--now",
        NOW,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("no failed or stuck rollout"));

    let out = stsmend(&["explain", "db", "--from", CRASH_LOOP]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("NAMESPACE/NAME"));
}

#[test]
fn a_policy_that_does_not_compile_stops_the_run_before_anything_is_read() {
    let dir = temp_dir("syntax");
    let policy = dir.join("team.rhai");
    std::fs::write(&policy, "//! @namespaces shop\nlet x = ;\n[]\n").unwrap();
    // The source does not even exist: the policy fails first.
    let out = stsmend(&[
        "plan",
        "--from",
        "/nonexistent.yaml",
        "--policies",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("team.rhai:2:9: syntax error"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_policy_that_fails_at_run_time_costs_only_its_objects() {
    let dir = temp_dir("runtime");
    let policy = dir.join("ladder.rhai");
    // Fails on one object only: a huge string for the ledger.
    std::fs::write(
        &policy,
        "if sts.name == \"ledger\" {\n    let s = \"x\";\n    loop { s += s; }\n}\n[escalate(\"fine\")]\n",
    )
    .unwrap();
    let base = ["plan", "--from", STORM, "--now", NOW, "-o", "json"];
    let out = stsmend(&[&base[..], &["--policies", policy.to_str().unwrap()]].concat());
    // Given on the command line: exit code 2, the report still printed.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plans: Vec<(String, usize, Option<String>)> = v["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["plan"]["actions"].as_array().unwrap().len(),
                a["plan"]["error"]["kind"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        plans,
        [
            ("ledger".into(), 0, Some("limit".into())),
            ("orders".into(), 1, None),
            ("sessions".into(), 1, None),
        ]
    );
    let error = &v["failing"][0]["plan"]["error"];
    assert_eq!(error["line"], 3);
    assert!(error["file"].as_str().unwrap().ends_with("ladder.rhai"));

    // From the config file (in-cluster), the same failure is reported but is
    // not bad input: the exit code is that of the findings.
    let config = dir.join("config.yaml");
    std::fs::write(&config, "policies: ladder.rhai\n").unwrap();
    let out = stsmend(&[&base[..], &["--config", config.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failing"][0]["plan"]["error"]["kind"], "limit");
}
