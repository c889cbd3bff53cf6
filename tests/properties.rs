//! Property tests over every input the agent reads from people or from the
//! cluster: the YAML/JSON source, label selectors, durations, quantities,
//! the config file, its own state and undo ConfigMaps, and policies (random
//! scripts in the sandbox). The invariants: nothing panics; bad input is an
//! error naming the file and the line or key (exit code 2 through the
//! binary); memory stays bounded (the process's peak resident size is
//! checked after the runaway inputs).
//!
//! Case counts are bounded so the file runs in seconds in a debug build; a
//! longer search: `PROPTEST_CASES=5000 cargo test --test properties`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::ConfigMap;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use stsmend::config::Config;
use stsmend::duration::Span;
use stsmend::inventory::Inventory;
use stsmend::pipeline::{self, DecideOptions, Options};
use stsmend::policy::{ErrorKind, Origin, Policies};
use stsmend::selector::Selector;
use stsmend::state::State;
use stsmend::undo::Book;

/// In-process cases per property; `PROPTEST_CASES` overrides.
fn cases(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The peak resident size of this process, from /proc (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runaway inputs must not take more than this; the YAML reader's budget
/// stops at 64 MiB of scalars and the sandbox at 64 KiB strings.
const PEAK_RSS_LIMIT: u64 = 768 * 1024 * 1024;

fn assert_memory_bounded() {
    if let Some(peak) = peak_rss_bytes() {
        assert!(
            peak < PEAK_RSS_LIMIT,
            "peak resident size {} MiB",
            peak / (1024 * 1024)
        );
    }
}

// ---------------------------------------------------------------------------
// The YAML/JSON source.

const OBJECTS: &str = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: StatefulSet\n  metadata: {name: db, namespace: shop, generation: 2, labels: {app: db}}\n  spec:\n    replicas: 3\n    selector: {matchLabels: {app: db}}\n    serviceName: db\n    template:\n      metadata: {labels: {app: db}}\n      spec: {containers: [{name: db, image: 'db:1', resources: {requests: {cpu: 500m, memory: 1Gi}}}]}\n  status: {replicas: 3, readyReplicas: 2, observedGeneration: 1, currentRevision: db-1, updateRevision: db-2}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: shop, labels: {app: db, controller-revision-hash: db-2}}\nspec: {containers: [{name: db, image: 'db:2'}]}\nstatus:\n  phase: Running\n  containerStatuses: [{name: db, ready: false, restartCount: 7, image: 'db:2', imageID: '', state: {waiting: {reason: CrashLoopBackOff}}}]\n---\napiVersion: apps/v1\nkind: ControllerRevision\nmetadata: {name: db-2, namespace: shop}\nrevision: 2\ndata: {spec: {template: {spec: {containers: [{name: db, image: 'db:2'}]}}}}\n";

/// Characters that mean something to YAML, and some that mean nothing.
const YAML_NOISE: &[char] = &[
    ':', '-', '[', ']', '{', '}', '"', '\'', '&', '*', '!', '\n', ' ', '#', '|', '>', '%', '@',
    '`', '\t', ',', '?', '0', 'a', '\\', '\u{feff}', '\u{85}', 'é', '\0',
];

/// A valid file with random edits: deletions, insertions of YAML's
/// meaningful characters, and truncation.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0..3u8,
            prop::sample::select(YAML_NOISE),
        ),
        0..8,
    );
    (edits, any::<prop::sample::Index>(), any::<bool>()).prop_map(move |(edits, cut, truncate)| {
        let mut chars: Vec<char> = base.chars().collect();
        for (at, op, c) in edits {
            if chars.is_empty() {
                break;
            }
            let i = at.index(chars.len());
            match op {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
        }
        if truncate && !chars.is_empty() {
            chars.truncate(cut.index(chars.len()));
        }
        chars.into_iter().collect()
    })
}

/// Anchors and aliases that expand to `fanout^depth` copies of a scalar.
fn alias_bomb() -> impl Strategy<Value = String> {
    (2..12usize, 2..9usize, 1..50_000usize).prop_map(|(fanout, depth, scalar)| {
        let mut text = format!(
            "apiVersion: v1\nkind: List\nitems: []\nl0: &l0 \"{}\"\n",
            "x".repeat(scalar)
        );
        for level in 1..=depth {
            let refs = vec![format!("*l{}", level - 1); fanout].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
        }
        text
    })
}

fn parse(name: &str, text: &str) -> stsmend::Result<Inventory> {
    let mut inventory = Inventory::default();
    stsmend::source::files::parse_into(&mut inventory, Path::new(name), text)?;
    Ok(inventory)
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn the_loader_never_panics_and_names_the_file(text in prop_oneof![
        mutated(OBJECTS),
        ".{0,400}",
        "[\\[\\]{}:,\"' \n-]{0,200}",
    ]) {
        if let Err(e) = parse("in.yaml", &text) {
            prop_assert!(e.to_string().starts_with("in.yaml: "), "{e}");
            prop_assert_eq!(e.exit_code(), stsmend::error::EXIT_BAD_INPUT, "{}", e);
        }
    }

    #[test]
    fn a_yaml_syntax_error_names_its_line(text in mutated(OBJECTS)) {
        if let Err(e) = parse("in.yaml", &text) {
            let message = e.to_string();
            if message.starts_with("in.yaml: invalid YAML") {
                prop_assert!(message.contains("line "), "{message}");
            }
        }
    }

    #[test]
    fn json_input_never_panics(text in prop_oneof![
        "[\\[\\]{}:,\"0-9a-z ]{0,300}",
        Just("{".to_string()).prop_flat_map(|_| "\\{[\\[\\]{}:,\"0-9 ]{0,300}"),
    ]) {
        if let Err(e) = parse("in.json", &text) {
            prop_assert!(e.to_string().starts_with("in.json: "), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(cases(16))]

    #[test]
    fn aliases_cannot_expand_without_bound(text in alias_bomb()) {
        // Either it is small enough to read, or the reader's budget stops
        // it with the line; either way memory stays bounded.
        if let Err(e) = parse("bomb.yaml", &text) {
            let message = e.to_string();
            prop_assert!(message.starts_with("bomb.yaml: invalid YAML"), "{message}");
            prop_assert!(message.contains("line "), "{message}");
        }
        assert_memory_bounded();
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow(
        depth in 100..200_000usize,
        opener in prop::sample::select(vec!["[", "{a: ", "- ", "{\"a\":"]),
    ) {
        let text = format!("kind: List\nitems: {}", opener.repeat(depth));
        let json = opener.repeat(depth);
        prop_assert!(parse("deep.yaml", &text).is_err());
        prop_assert!(parse("deep.json", &json).is_err());
    }
}

// ---------------------------------------------------------------------------
// Label selectors.

fn label_key() -> impl Strategy<Value = String> {
    "([a-z0-9.-]{1,12}/)?[a-z0-9A-Z_.-]{1,16}"
}

fn label_value() -> impl Strategy<Value = String> {
    "[a-z0-9A-Z_.-]{0,12}"
}

/// Requirements in kubectl's `-l` syntax.
fn requirement() -> impl Strategy<Value = String> {
    prop_oneof![
        (label_key(), label_value()).prop_map(|(k, v)| format!("{k}={v}")),
        (label_key(), label_value()).prop_map(|(k, v)| format!("{k}=={v}")),
        (label_key(), label_value()).prop_map(|(k, v)| format!("{k}!={v}")),
        (label_key(), prop::collection::vec(label_value(), 1..4))
            .prop_map(|(k, vs)| format!("{k} in ({})", vs.join(","))),
        (label_key(), prop::collection::vec(label_value(), 1..4))
            .prop_map(|(k, vs)| format!("{k} notin ({})", vs.join(", "))),
        label_key(),
        label_key().prop_map(|k| format!("!{k}")),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_selector_text_parses_or_is_an_error_quoting_it(text in prop_oneof![
        ".{0,60}",
        "[a-z=!(), in]{0,40}",
    ]) {
        match Selector::parse(&text) {
            Ok(s) => {
                // What it sends to the API server reads back the same.
                prop_assert_eq!(Selector::parse(s.as_query()).unwrap(), s);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.contains(&format!("{:?}", text)), "{message}");
                prop_assert!(e.is_bad_input());
            }
        }
    }

    #[test]
    fn well_formed_selectors_parse_and_match_like_their_parts(
        parts in prop::collection::vec(requirement(), 1..5),
        labels in prop::collection::btree_map(label_key(), label_value(), 0..6),
    ) {
        let whole = Selector::parse(&parts.join(",")).unwrap();
        let each: Vec<Selector> = parts.iter().map(|p| Selector::parse(p).unwrap()).collect();
        prop_assert_eq!(
            whole.matches(&labels),
            each.iter().all(|s| s.matches(&labels))
        );
        prop_assert_eq!(whole.matches(&Default::default()), each.iter().all(|s| s.matches(&Default::default())));
    }
}

// ---------------------------------------------------------------------------
// Durations and quantities.

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_duration_text_parses_or_is_an_error_quoting_it(text in prop_oneof![
        ".{0,30}",
        "[0-9dhms ]{0,30}",
        "[0-9]{15,25}[dhms]",
    ]) {
        match text.parse::<Span>() {
            Ok(span) => {
                prop_assert!(span.as_secs() <= Span::MAX.as_secs());
                prop_assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.contains(&format!("{:?}", text)), "{message}");
            }
        }
    }

    #[test]
    fn spans_print_and_read_back(secs in 0..=Span::MAX.as_secs()) {
        let span = Span(secs);
        prop_assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
    }

    #[test]
    fn any_quantity_text_parses_or_is_none(text in prop_oneof![
        ".{0,20}",
        "[-+]?[0-9.]{0,8}(e|E|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?[-+]?[0-9]{0,12}",
    ]) {
        let _ = stsmend::quantity::parse(&text);
    }

    #[test]
    fn quantities_read_as_their_value(
        n in 0u32..1_000_000,
        (suffix, factor) in prop::sample::select(vec![
            ("", 1.0), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9),
            ("Ki", 1024.0), ("Mi", 1048576.0), ("Gi", 1073741824.0),
        ]),
    ) {
        let value = stsmend::quantity::parse(&format!("{n}{suffix}")).unwrap();
        let expected = f64::from(n) * factor;
        prop_assert!((value - expected).abs() <= expected * 1e-12, "{value} vs {expected}");
    }
}

// ---------------------------------------------------------------------------
// The config file.

const CONFIG: &str = "stateNamespace: stsmend\nfor: 10m\nscope:\n  namespaces: []\n  excludeNamespaces: [kube-system]\n  selector: \"tier=db\"\nmigrationAnnotations: [stsmend.io/migration]\nrollbackUnsafeAnnotations: [stsmend.io/rollback-unsafe]\npolicyAnnotation: stsmend.io/policy\noptInSelector: \"team=payments\"\npause: false\ndeadline: 4m\nlimits:\n  maxActions: 5\n  cooldown: 30m\n  debounceRuns: 2\n  stormMaxFailing: 10\n  stormMaxShare: 0.5\n  stormMinFailing: 3\nnodeGroups:\n- name: gpu\n  resource: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, namespace: capi, name: gpu-pool}\n  min: 0\n  max: 4\n  provides:\n    labels: {accelerator: nvidia}\n    resources: {nvidia.com/gpu: \"1\"}\n  readyWithin: 10m\n";

/// Where a key may be misspelt: top level, or under a section.
const SECTIONS: &[&str] = &["", "scope", "limits"];

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn the_shipped_config_reads(_x in Just(())) {
        prop_assert!(Config::parse(Path::new("c.yaml"), CONFIG).is_ok());
    }

    #[test]
    fn a_damaged_config_is_an_error_naming_the_file_and_where(text in mutated(CONFIG)) {
        if let Err(e) = Config::parse(Path::new("c.yaml"), &text) {
            let message = e.to_string();
            prop_assert!(message.starts_with("config c.yaml: "), "{message}");
            prop_assert!(e.is_bad_input());
            // A line for what the reader saw, or the key for what the
            // checks after it saw.
            let names_where = message.contains("line ")
                || message.contains(':') && message["config c.yaml: ".len()..]
                    .split(':')
                    .next()
                    .is_some_and(|key| !key.contains(' '));
            prop_assert!(names_where, "{message}");
        }
    }

    #[test]
    fn an_unknown_key_is_named(
        key in "[a-z][a-zA-Z]{2,12}",
        section in prop::sample::select(SECTIONS),
    ) {
        let known = [
            "stateNamespace", "for", "scope", "migrationAnnotations", "rollbackUnsafeAnnotations",
            "policies", "policyAnnotation", "optInSelector", "pause", "deadline", "limits",
            "nodeGroups", "namespaces", "excludeNamespaces", "selector", "maxActions", "cooldown",
            "debounceRuns", "stormMaxFailing", "stormMaxShare", "stormMinFailing",
            // Keys other engineers may add: skip rather than guess.
            "alertmanager", "metrics",
        ];
        prop_assume!(!known.contains(&key.as_str()));
        let text = if section.is_empty() {
            format!("{key}: 1\n")
        } else {
            format!("{section}:\n  {key}: 1\n")
        };
        let e = Config::parse(Path::new("c.yaml"), &text).unwrap_err();
        prop_assert!(e.to_string().contains(&key), "{e}");
    }
}

// ---------------------------------------------------------------------------
// The state and undo ConfigMaps: written by the agent, but anyone with
// edit rights in its namespace can change them.

fn state_record() -> impl Strategy<Value = String> {
    (
        prop::option::of("[a-z0-9-]{1,12}"),
        prop::option::of((any::<i64>(), 0i64..4_000_000_000)),
        prop_oneof![Just(u32::MAX), Just(u32::MAX - 1), any::<u32>(), 0..4u32],
        prop::option::of((0i64..4_000_000_000, "[a-z_]{1,12}", ".{0,20}")),
    )
        .prop_map(|(uid, mismatch, runs, last)| {
            let mut record = serde_json::json!({});
            if let Some(uid) = uid {
                record["uid"] = uid.into();
            }
            if let Some((generation, at)) = mismatch {
                record["mismatch"] = serde_json::json!({
                    "generation": generation,
                    "firstSeen": jiff::Timestamp::from_second(at).unwrap().to_string(),
                });
            }
            record["failingRuns"] = runs.into();
            if let Some((at, action, why)) = last {
                record["lastAction"] = serde_json::json!({
                    "at": jiff::Timestamp::from_second(at).unwrap().to_string(),
                    "action": action,
                    "why": why,
                });
            }
            record.to_string()
        })
}

fn config_map(data: BTreeMap<String, String>) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some("stsmend".into());
    cm.data = Some(data);
    cm
}

/// A failing StatefulSet `shop/db` (uid u1) with a generation mismatch.
fn failing_outcome() -> pipeline::Outcome {
    let inventory = parse("t.yaml", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop, uid: u1, generation: 3, creationTimestamp: '2026-11-20T08:00:00Z'}\nspec: {replicas: 1, selector: {matchLabels: {app: db}}, serviceName: db, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db}]}}}\nstatus: {replicas: 1, readyReplicas: 1, observedGeneration: 2}\n").unwrap();
    pipeline::evaluate(&inventory, None, &options(Span(0)))
}

fn options(threshold: Span) -> Options {
    Options::new("2026-11-22T10:00:00Z".parse().unwrap(), threshold)
        .migration_annotations(&["stsmend.io/migration"])
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn a_damaged_state_is_an_error_naming_the_key(
        data in prop::collection::btree_map(
            "[a-z0-9.-]{1,20}",
            prop_oneof![state_record(), mutated("{\"uid\":\"u1\",\"failingRuns\":2}"), ".{0,40}"],
            0..6,
        ),
    ) {
        let cm = config_map(data.clone());
        match State::from_config_map(&cm) {
            Ok(state) => {
                prop_assert_eq!(state.records.len(), data.len());
                // What reads, writes back and reads the same.
                let again = State::from_config_map(&config_map(state.to_data().unwrap())).unwrap();
                prop_assert_eq!(again, state);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(
                    data.keys().any(|k| message.contains(&format!("ConfigMap stsmend/stsmend-state key {k}:"))),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn any_readable_state_carries_into_the_next_run(record in state_record()) {
        // A record edited by hand (any count of failing runs, any times)
        // is carried on without a panic or a count that wraps.
        let cm = config_map([("shop.db".to_string(), record)].into());
        let prior = State::from_config_map(&cm).unwrap();
        let outcome = failing_outcome();
        let next = stsmend::pipeline::observe(&prior, &outcome, "2026-11-22T10:00:00Z".parse().unwrap());
        let runs = next.get("shop", "db").unwrap().failing_runs;
        let before = prior.get("shop", "db").unwrap();
        if before.uid.as_deref().is_none_or(|u| u == "u1") {
            prop_assert!(runs >= before.failing_runs.min(u32::MAX - 1), "{runs}");
        } else {
            prop_assert_eq!(runs, 1);
        }
        // The pipeline reads it too.
        let _ = pipeline::evaluate(
            &parse("t.yaml", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop, uid: u1, generation: 3}\nspec: {replicas: 1, selector: {matchLabels: {app: db}}, serviceName: db, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db}]}}}\nstatus: {replicas: 1, readyReplicas: 1, observedGeneration: 2}\n").unwrap(),
            Some(&next),
            &options(Span::minutes(10)),
        );
    }

    #[test]
    fn a_damaged_undo_book_is_an_error_naming_the_key_or_a_refusal(
        key in "[a-z0-9-]{1,10}\\.[a-z0-9-]{1,10}",
        value in prop_oneof![
            mutated("{\"at\":\"2026-11-22T10:00:00Z\",\"action\":\"rollback\",\"uid\":\"u1\",\"generationAfter\":4,\"prior\":{\"kind\":\"spec\",\"spec\":{\"replicas\":3,\"template\":{\"spec\":{\"containers\":[{\"name\":\"db\",\"image\":\"db:1\"}]}}}}}"),
            mutated("{\"at\":\"2026-11-22T10:00:00Z\",\"action\":\"scale_nodes\",\"uid\":null,\"prior\":{\"kind\":\"nodeGroup\",\"group\":\"gpu\",\"target\":{\"apiVersion\":\"v1\",\"kind\":\"X\",\"name\":\"g\"},\"replicas\":1,\"replicasAfter\":2}}"),
            ".{0,40}",
        ],
        generation in prop::option::of(any::<i64>()),
    ) {
        let cm = config_map([(key.clone(), value)].into());
        match Book::from_config_map(&cm) {
            Ok(book) => {
                let sts: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "db", "namespace": "shop", "uid": "u1", "generation": generation},
                    "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                             "template": {"spec": {"containers": [{"name": "db", "image": "db:2"}]}}},
                })).unwrap();
                for record in book.records.values() {
                    // A patch to apply, or a reason not to: never a panic.
                    let templates = [serde_json::json!({"spec": {"containers": [{"name": "db", "image": "db:1"}]}})];
                    let now = "2026-11-22T10:30:00Z".parse().unwrap();
                    if let Ok(restore) = stsmend::undo::restore_patch(record, &sts, &templates, now) {
                        prop_assert!(restore.ops.is_array());
                        // Only the fields the action wrote, all restorable.
                        for f in &restore.fields {
                            prop_assert!(["spec.template", "spec.replicas", "spec.updateStrategy", "spec.podManagementPolicy", "spec.minReadySeconds"].contains(&f.as_str()), "{f}");
                        }
                        let ops: Result<json_patch::Patch, _> = serde_json::from_value(restore.ops);
                        prop_assert!(ops.is_ok());
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.contains(&format!("key {key}:")), "{message}");
            }
        }
    }
}

/// Regression: a count of failing runs at `u32::MAX` (a hand-edited
/// state) overflowed when the next run added one: a panic in a debug build,
/// a count wrapped to 0 (debounce restarted) in a release build.
#[test]
fn a_failing_count_at_its_maximum_stays_there() {
    let cm = config_map(
        [(
            "shop.db".to_string(),
            r#"{"failingRuns":4294967295}"#.to_string(),
        )]
        .into(),
    );
    let prior = State::from_config_map(&cm).unwrap();
    let next = stsmend::pipeline::observe(
        &prior,
        &failing_outcome(),
        "2026-11-22T10:00:00Z".parse().unwrap(),
    );
    assert_eq!(next.get("shop", "db").unwrap().failing_runs, u32::MAX);
}

#[test]
fn a_state_config_map_near_the_size_limit_reads() {
    // A ConfigMap holds at most 1 MiB; that many records read and write
    // back without trouble.
    let record = r#"{"uid":"0123456789abcdef0123456789abcdef","mismatch":{"generation":12,"firstSeen":"2026-11-22T10:00:00Z"},"failingRuns":4}"#;
    let data: BTreeMap<String, String> = (0..(1024 * 1024 / (record.len() + 20)))
        .map(|i| (format!("ns{i}.sts{i}"), record.to_string()))
        .collect();
    let state = State::from_config_map(&config_map(data.clone())).unwrap();
    assert_eq!(state.records.len(), data.len());
    // Written back within what the agent lets its records take of the
    // ConfigMap: counts only, some go (their loss only delays an action),
    // the rest unchanged.
    let written = state.to_data().unwrap();
    let size: usize = written.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(size <= stsmend::state::MAX_BYTES, "{size}");
    assert!(written.len() > data.len() * 3 / 4, "{}", written.len());
    for (k, v) in &written {
        assert_eq!(data.get(k), Some(v));
    }
}

// ---------------------------------------------------------------------------
// Policies: random scripts in the sandbox.

/// Integers that break arithmetic and indexing.
fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        prop::sample::select(vec![
            0,
            1,
            -1,
            2,
            3,
            64,
            100_000,
            1_000_000_000,
            i64::MAX,
            i64::MIN,
            i64::MAX / 2
        ]),
        any::<i64>(),
    ]
}

/// Strings, as a Rhai literal.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "x",
            "db-0",
            "db-2",
            "shop/db",
            "rollback",
            "10m",
            "0s",
            "500m",
            "4Gi",
            "CrashLoop",
            "spec",
            "2026-11-22T10:00:00Z"
        ])
        .prop_map(str::to_string),
        ".{0,12}",
    ]
    .prop_map(|s| format!("{s:?}"))
}

/// One statement, at top level.
fn statement() -> impl Strategy<Value = String> {
    let call = prop_oneof![
        (int(), text()).prop_map(|(n, w)| format!("rollback({n}, {w})")),
        (text(), text()).prop_map(|(r, w)| format!("rollback({r}, {w})")),
        (text(), text()).prop_map(|(p, w)| format!("delete_pods([{p}], {w})")),
        (text(), text()).prop_map(|(p, w)| format!("delete_pods({p}, {w}, #{{any_pod: true}})")),
        (int(), text())
            .prop_map(|(n, w)| format!("patch_spec(#{{spec: #{{replicas: {n}}}}}, {w})")),
        (text(), int(), text()).prop_map(|(p, n, w)| format!(
            "patch_spec([#{{op: \"replace\", path: {p}, value: {n}}}], {w})"
        )),
        (text(), int(), text()).prop_map(|(g, n, w)| format!("scale_nodes({g}, {n}, {w})")),
        (text(), text()).prop_map(|(w, a)| format!("wait({w}, {a})")),
        (text(), int()).prop_map(|(w, n)| format!("wait({w}, {n})")),
        text().prop_map(|w| format!("escalate({w})")),
        text().prop_map(|t| format!("seconds_since({t})")),
        text().prop_map(|t| format!("duration({t})")),
        text().prop_map(|t| format!("quantity({t})")),
        text().prop_map(|t| format!("has({t})")),
        text().prop_map(|t| format!("findings_of({t})")),
        text().prop_map(|t| format!("template_changed({t})")),
        text().prop_map(|t| format!("on_update_revision({t})")),
        int().prop_map(|n| format!("revision({n})")),
        text().prop_map(|t| format!("revision({t})")),
        (text(), text()).prop_map(|(a, b)| format!("rungs([{a}, {b}])")),
        (text(), text()).prop_map(|(r, w)| format!("skip({r}, {w})")),
        text().prop_map(|r| format!("choose({r}, [])")),
        prop::sample::select(vec![
            "ladder()",
            "spec()",
            "kinds()",
            "causes()",
            "last_good_revision()",
            "update_revision()",
            "pods_not_ready_on_update()",
            "pod_failures_on_update()",
            "migration_pods()",
            "pods_stuck_after_rollback()",
            "sts.to_map()",
            "sts.name",
            "findings",
            "pods",
            "now",
        ])
        .prop_map(str::to_string),
    ];
    let arithmetic = prop_oneof![
        (int(), int()).prop_map(|(a, b)| format!("{a} + {b}")),
        (int(), int()).prop_map(|(a, b)| format!("{a} * {b}")),
        (int(), int()).prop_map(|(a, b)| format!("{a} / {b}")),
        (int(), int()).prop_map(|(a, b)| format!("{a} % {b}")),
        (int(), int()).prop_map(|(a, b)| format!("{a} ** {b}")),
        (int(), int()).prop_map(|(a, b)| format!("{a} << {b}")),
        (int(), int()).prop_map(|(a, b)| format!("{a} >> {b}")),
        int().prop_map(|a| format!("-({a})")),
        int().prop_map(|a| format!("abs({a})")),
        int().prop_map(|a| format!("sqrt({a}.0)")),
    ];
    let sizes = prop_oneof![
        (text(), int(), text()).prop_map(|(s, n, p)| format!("{s}.pad({n}, {p})")),
        int().prop_map(|n| format!("[1, 2].pad({n}, 0)")),
        (text(), int(), int()).prop_map(|(s, a, b)| format!("{s}.sub_string({a}, {b})")),
        (text(), int()).prop_map(|(s, a)| format!("{s}.crop({a})")),
        (text(), text()).prop_map(|(s, t)| format!("{s}.split({t})")),
        (int(), int()).prop_map(|(a, b)| format!("[1, 2, 3].extract({a}, {b})")),
        (int(), int()).prop_map(|(a, b)| format!("[1, 2, 3].splice({a}, {b}, [4])")),
        int().prop_map(|a| format!("[1, 2, 3][{a}]")),
        (text(), int()).prop_map(|(s, a)| format!("{s}[{a}]")),
        (int(), int(), int()).prop_map(|(a, b, c)| format!("range({a}, {b}, {c})")),
        text().prop_map(|s| format!("parse_int({s})")),
        text().prop_map(|s| format!("parse_float({s})")),
        text().prop_map(|s| format!("sts[{s}]")),
    ];
    let runaway = prop::sample::select(vec![
        "loop { }",
        "while true { }",
        "let s = \"ab\"; loop { s += s; }",
        "let a = [1]; loop { a += a; }",
        "let a = [1]; loop { a = [a, a]; }",
        "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        "let i = 0; for x in range(0, 9223372036854775807) { i += 1; }",
        "fn deep(n) { deep(n + 1) } deep(0);",
        "let f = |n| n; loop { f = |n| f.call(n); }",
        "throw \"stop\";",
    ])
    .prop_map(str::to_string);
    let junk = prop_oneof![
        Just("eval(\"1\");".to_string()),
        Just("import \"x\" as y;".to_string()),
        Just("let = ;".to_string()),
        "[a-z(){}\\[\\];=+\"#., ]{0,30}",
        (1..300usize).prop_map(|d| format!("let deep = {}1{};", "(".repeat(d), ")".repeat(d))),
        (1..300usize).prop_map(|d| format!("let deep = {}1{};", "[".repeat(d), "]".repeat(d))),
    ];
    prop_oneof![
        4 => call.prop_map(|c| format!("let v = {c};")),
        2 => arithmetic.prop_map(|c| format!("let v = {c};")),
        2 => sizes.prop_map(|c| format!("let v = {c};")),
        1 => runaway,
        1 => junk,
    ]
}

/// What the script returns.
fn returned() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[]".to_string()),
        text().prop_map(|w| format!("[escalate({w})]")),
        text().prop_map(|w| format!("escalate({w})")),
        int().prop_map(|n| format!("{n}")),
        text(),
        Just("[1, escalate(\"x\")]".to_string()),
        Just("ladder()".to_string()),
        Just("()".to_string()),
        Just("#{}".to_string()),
    ]
}

const CRASH_LOOP: &str = "policies/tests/ladder/e-rollback-crash-loop/objects.yaml";

/// A failing StatefulSet with pods, revisions and findings to decide on.
fn crash_loop() -> (pipeline::Assessment, stsmend::policy::RunContext) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CRASH_LOOP);
    let inventory = stsmend::source::files::load(&[path]).unwrap();
    let opts = options(Span::minutes(10));
    let outcome = pipeline::evaluate(&inventory, None, &opts);
    let run = pipeline::run_context(
        &outcome,
        &opts,
        &DecideOptions::default(),
        &Default::default(),
    );
    (outcome.failing.into_iter().next().unwrap(), run)
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn a_random_policy_decides_or_fails_naming_its_file(
        statements in prop::collection::vec(statement(), 0..5),
        last in returned(),
    ) {
        let (assessment, run) = crash_loop();
        // The header selects the crash-looping set in `shop`.
        let script = format!("//! @namespaces shop\n{}\n{last}\n", statements.join("\n"));
        let policies = match Policies::from_sources(&[("fuzz", &script)], Origin::CommandLine) {
            Ok(p) => p,
            Err(e) => {
                // Refused at load: a syntax error at a line.
                prop_assert_eq!(&e.file, "fuzz.rhai");
                prop_assert!(e.line.is_some() || e.kind != ErrorKind::Syntax, "{e}");
                return Ok(());
            }
        };
        let decision = policies.decide(&assessment.facts, &assessment.detection, &assessment.findings, &run);
        prop_assert_eq!(&decision.policy, "fuzz");
        match &decision.error {
            Some(e) => {
                prop_assert_eq!(&e.file, "fuzz.rhai");
                prop_assert!(e.to_string().starts_with("fuzz.rhai"), "{e}");
                prop_assert!(decision.actions.is_empty());
            }
            None => prop_assert!(decision.actions.iter().all(|a| !a.why().trim().is_empty())),
        }
        assert_memory_bounded();
    }

    #[test]
    fn a_runaway_policy_stops_at_a_limit_with_its_line(
        prefix in prop::collection::vec(statement().prop_filter("no runaway", |s| !s.contains("loop") && !s.contains("deep") && !s.contains("while") && !s.contains("throw") && !s.contains("range")), 0..3),
        runaway in prop::sample::select(vec![
            "loop { }",
            "while true { }",
            "let s = \"ab\"; loop { s += s; }",
            "let a = [1]; loop { a += a; }",
            "let a = [1]; loop { a = [a, a]; }",
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
            "let i = 0; for x in range(0, 9223372036854775807) { i += 1; }",
            "fn deep(n) { deep(n + 1) } deep(0);",
        ]),
    ) {
        let (assessment, run) = crash_loop();
        let script = format!("//! @namespaces shop\n{}\n{runaway}\n[]\n", prefix.join("\n"));
        let line = 2 + prefix.len().max(1);
        let policies = Policies::from_sources(&[("fuzz", &script)], Origin::CommandLine);
        let Ok(policies) = policies else { return Ok(()); };
        let decision = policies.decide(&assessment.facts, &assessment.detection, &assessment.findings, &run);
        let e = decision.error.expect("a runaway policy cannot return");
        // An earlier statement may fail first; if the runaway is reached,
        // a limit stops it, naming the file. (Its line too, almost always:
        // Rhai reports no position for a limit met in an index assignment
        // right after some native calls, e.g. `[1].extract(0, 0)` then
        // `loop { m[k] = i; }`; every_runaway_alone_stops_at_a_limit_at_its_line
        // holds each runaway to its line.)
        if e.line == Some(line) || e.kind == ErrorKind::Limit {
            prop_assert_eq!(e.kind, ErrorKind::Limit, "{}", e);
            prop_assert!(e.to_string().starts_with("fuzz.rhai"), "{}", e);
        }
        assert_memory_bounded();
    }
}

/// The runaways the random scripts mix in, each alone: a limit stops every
/// one at its line (so the properties above are not passing vacuously).
#[test]
fn every_runaway_alone_stops_at_a_limit_at_its_line() {
    let (assessment, run) = crash_loop();
    for runaway in [
        "loop { }",
        "while true { }",
        "let s = \"ab\"; loop { s += s; }",
        "let a = [1]; loop { a += a; }",
        "let a = [1]; loop { a = [a, a]; }",
        "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        "let i = 0; for x in range(0, 9223372036854775807) { i += 1; }",
        "fn deep(n) { deep(n + 1) } deep(0);",
        "let v = \"x\".pad(1000000000, \"y\");",
        "let v = [1].pad(1000000000, 0);",
    ] {
        let script = format!("//! @namespaces shop\n{runaway}\n[]\n");
        let policies = Policies::from_sources(&[("fuzz", &script)], Origin::CommandLine).unwrap();
        let e = policies
            .decide(
                &assessment.facts,
                &assessment.detection,
                &assessment.findings,
                &run,
            )
            .error
            .expect("a runaway policy cannot return");
        assert_eq!(e.kind, ErrorKind::Limit, "{runaway}: {e}");
        assert_eq!(e.line, Some(2), "{runaway}: {e}");
    }
    assert_memory_bounded();
}

// ---------------------------------------------------------------------------
// Through the binary: exit code 2, the file and the line or key named.

fn stsmend(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(args)
        .env("STSMEND_LOG", "off")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run stsmend")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stsmend-properties-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn objects_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(CRASH_LOOP)
}

proptest! {
    #![proptest_config(cases(8))]

    #[test]
    fn the_binary_exits_two_naming_a_damaged_input_file(text in mutated(OBJECTS), n in 0..1000u32) {
        prop_assume!(parse("x.yaml", &text).is_err());
        let f = temp_file(&format!("damaged-{n}.yaml"), &text);
        let out = stsmend(&["plan".as_ref(), "--from".as_ref(), f.as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert_eq!(out.status.code(), Some(2), "{}", stderr);
        prop_assert!(stderr.contains(&format!("damaged-{n}.yaml")), "{}", stderr);
    }

    #[test]
    fn the_binary_exits_two_naming_a_bad_config_key(
        key in "[a-z][a-zA-Z]{3,12}",
        section in prop::sample::select(SECTIONS),
        n in 0..1000u32,
    ) {
        prop_assume!(Config::parse(Path::new("c.yaml"), &format!("{key}: 1\n")).is_err());
        let text = if section.is_empty() {
            format!("{key}: 1\n")
        } else {
            format!("{section}:\n  {key}: 1\n")
        };
        let c = temp_file(&format!("config-{n}.yaml"), &text);
        let out = stsmend(&[
            "plan".as_ref(), "--from".as_ref(), objects_file().as_os_str(),
            "--config".as_ref(), c.as_os_str(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert_eq!(out.status.code(), Some(2), "{}", stderr);
        prop_assert!(stderr.contains(&format!("config-{n}.yaml")), "{}", stderr);
        prop_assert!(stderr.contains(&key), "{}", stderr);
    }

    #[test]
    fn the_binary_exits_two_naming_a_broken_policy_and_its_line(
        statements in prop::collection::vec(statement(), 0..3),
        runaway in prop::sample::select(vec!["loop { }", "let s = \"ab\"; loop { s += s; }", "let = ;", "throw \"stop\";"]),
        n in 0..1000u32,
    ) {
        // From the command line, a policy that cannot load, or fails on a
        // StatefulSet, is bad input.
        let script = format!("//! @namespaces shop\n{}\n{runaway}\n[]\n", statements.join("\n"));
        let p = temp_file(&format!("policy-{n}.rhai"), &script);
        let out = stsmend(&[
            "plan".as_ref(), "--from".as_ref(), objects_file().as_os_str(),
            "--policies".as_ref(), p.as_os_str(), "--for".as_ref(), "0s".as_ref(),
            "--now".as_ref(), "2026-11-22T10:00:00Z".as_ref(),
        ]);
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        prop_assert_eq!(out.status.code(), Some(2), "{}", all);
        prop_assert!(
            all.contains(&format!("policy-{n}.rhai:")),
            "file and line named: {}", all
        );
    }

    #[test]
    fn the_binary_exits_two_on_a_bad_duration_or_selector(
        duration in prop_oneof!["[0-9]{0,4}[a-z]{0,2}", "[0-9]{21,24}s"],
        selector in "[a-z]{1,4} (in|notin) [a-z]{1,4}",
    ) {
        prop_assume!(duration.parse::<Span>().is_err());
        for (flag, value) in [("--for", &duration), ("-l", &selector)] {
            let out = stsmend(&[
                "plan".as_ref(), "--from".as_ref(), objects_file().as_os_str(),
                flag.as_ref(), value.as_ref(),
            ]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            prop_assert_eq!(out.status.code(), Some(2), "{}", stderr);
            prop_assert!(stderr.contains(value.as_str()), "{}", stderr);
        }
    }
}

proptest! {
    #![proptest_config(cases(8))]

    #[test]
    fn the_binary_exits_two_naming_a_damaged_state_key(
        key in "[a-z][a-z0-9-]{0,8}\\.[a-z][a-z0-9-]{0,8}",
        value in prop_oneof![mutated("{\"uid\":\"u1\",\"failingRuns\":2}"), "[a-z{}\\[\\]:,\" ]{0,20}"],
        n in 0..1000u32,
    ) {
        // The agent's own state, damaged by hand: the run stops before
        // deciding anything, naming the ConfigMap and the key.
        let record: Result<stsmend::state::Record, _> = serde_json::from_str(&value);
        prop_assume!(record.is_err());
        let objects = std::fs::read_to_string(objects_file()).unwrap();
        let text = format!(
            "{objects}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: stsmend-state, namespace: stsmend}}\ndata:\n  {key}: {}\n",
            serde_json::to_string(&value).unwrap()
        );
        let f = temp_file(&format!("with-state-{n}.yaml"), &text);
        let out = stsmend(&["plan".as_ref(), "--from".as_ref(), f.as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert_eq!(out.status.code(), Some(2), "{}", stderr);
        prop_assert!(
            stderr.contains(&format!("ConfigMap stsmend/stsmend-state key {key}:")),
            "{}", stderr
        );
    }
}

/// Regression: a deadline of 2^64-1 seconds overflowed the clock and
/// panicked (exit 101) before any cluster was read.
#[test]
fn an_endless_deadline_is_bad_input_not_a_panic() {
    for deadline in ["18446744073709551615s", "213503982334601d", "36526d"] {
        let out = stsmend(&["run".as_ref(), "--deadline".as_ref(), deadline.as_ref()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{deadline}: {stderr}");
        assert!(stderr.contains(deadline), "{stderr}");
    }
    let c = temp_file("endless.yaml", "deadline: 18446744073709551615s\n");
    let e = Config::parse(&c, "deadline: 18446744073709551615s\n").unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}

/// Small JSON values of every type, nested a little.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z./ ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("template".to_string()),
        Just("replicas".to_string()),
        Just("updateStrategy".to_string()),
        Just("persistentVolumeClaimRetentionPolicy".to_string()),
        Just("volumeClaimTemplates".to_string()),
        "[a-zA-Z/~]{1,12}",
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    /// Whatever an undo record says, its restore touches only the spec
    /// fields its action wrote and an undo may restore, and writes back
    /// only a template one of the set's own revisions had.
    #[test]
    fn a_forged_spec_record_restores_nothing_unchecked(
        spec in proptest::collection::btree_map(field_name(), json_value(), 0..5),
        fields in proptest::collection::vec(field_name(), 0..4),
        uid in prop_oneof![Just(None), Just(Some("u1".to_string())), Just(Some("u2".to_string()))],
        generation_after in prop_oneof![Just(None), Just(Some(4i64)), any::<i64>().prop_map(Some)],
        minutes in -100_000i64..100_000,
    ) {
        let sts: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop", "uid": "u1", "generation": 4},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "db:2"}]}}},
        })).unwrap();
        let own = serde_json::json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}});
        let now: jiff::Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let record = stsmend::undo::Record {
            at: now.checked_add(jiff::SignedDuration::from_mins(minutes)).unwrap(),
            action: "roll back".into(),
            uid,
            generation_after,
            prior: stsmend::undo::Prior::Spec { spec: spec.clone() },
            steps: Vec::new(),
            fields: fields.clone(),
            sync: None,
        };
        if let Ok(r) = stsmend::undo::restore_patch(&record, &sts, std::slice::from_ref(&own), now) {
            prop_assert_eq!(record.uid.as_deref(), Some("u1"));
            prop_assert_eq!(record.generation_after, Some(4));
            for op in r.ops.as_array().unwrap() {
                let path = op["path"].as_str().unwrap();
                let field = path.strip_prefix("/spec/").unwrap();
                prop_assert!(["template", "replicas", "updateStrategy", "podManagementPolicy", "minReadySeconds"].contains(&field), "{}", path);
                prop_assert!(fields.is_empty() || fields.iter().any(|f| f == field), "{} not among {:?}", path, fields);
                if field == "template" {
                    prop_assert_eq!(&op["value"], &own);
                }
            }
        }
    }

    /// Whatever a record says of a suspended sync, a resume writes only the
    /// field that suspends a kind the agent knows, back to a value of that
    /// field's type, and only on an object still suspended as left.
    #[test]
    fn a_forged_sync_record_resumes_nothing_else(
        kind in prop_oneof![Just("Kustomization"), Just("HelmRelease"), Just("Application"), Just("Secret"), Just("Deployment")],
        group in prop_oneof![Just("kustomize.toolkit.fluxcd.io"), Just("helm.toolkit.fluxcd.io"), Just("argoproj.io"), Just(""), Just("apps")],
        path in prop_oneof![Just("/spec/suspend"), Just("/spec/syncPolicy/automated"), Just("/spec/sourceRef"), Just("/metadata/labels")],
        prior in proptest::option::of(json_value()),
        after in proptest::option::of(json_value()),
        spec in json_value(),
    ) {
        let record = stsmend::gitops::Suspended {
            object: stsmend::gitops::SyncRef {
                kind: kind.into(),
                api_group: group.into(),
                namespace: "flux-system".into(),
                name: "apps".into(),
            },
            api_version: format!("{group}/v1"),
            uid: None,
            path: path.into(),
            prior,
            after,
        };
        let object = serde_json::json!({"metadata": {"name": "apps", "uid": "x"}, "spec": spec});
        if let Ok(ops) = stsmend::gitops::resume_patch(&record, &object) {
            let switch = record.object.switch().expect("a known kind");
            prop_assert_eq!(record.path.as_str(), switch.path());
            for op in ops.as_array().unwrap() {
                let p = op["path"].as_str().unwrap();
                prop_assert!(p == switch.path() || p == "/spec/syncPolicy", "{}", p);
            }
        }
    }
}
