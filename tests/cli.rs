//! The binary's contract: exit codes and error messages for bad input.

use std::io::Write;
use std::process::{Command, Output};

#[path = "common/markdown.rs"]
mod markdown;

fn stsmend(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(args)
        .env("STSMEND_LOG", "off")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run stsmend")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stsmend-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

const HEALTHY: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop, generation: 2}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: db}}\n  serviceName: db\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: db:1}]}\nstatus: {replicas: 1, readyReplicas: 1, observedGeneration: 2, currentRevision: db-1, updateRevision: db-1, updatedReplicas: 1}\n";

#[test]
fn nothing_found_exits_zero() {
    let f = temp_file("healthy.yaml", HEALTHY);
    let out = stsmend(&["plan", "--from", f.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 StatefulSet(s) scanned"));
}

/// Any integer in a snapshot's counts, including those the API server
/// refuses (negative replicas, a partition past them), is read without a
/// panic, in every format: negative replicas read as zero.
#[test]
fn extreme_integers_in_a_snapshot_never_panic() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/failing-rollout.yaml"
    ))
    .unwrap();
    for n in [i32::MIN, -1, i32::MAX] {
        let mut text = example.clone();
        for key in ["replicas", "partition", "Replicas", "observedGeneration"] {
            text = text
                .lines()
                .map(|l| match l.split_once(&format!("{key}: ")) {
                    Some((head, v)) if v.parse::<i64>().is_ok() => format!("{head}{key}: {n}"),
                    _ => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        let f = temp_file(&format!("extreme{n}.yaml"), &text);
        for format in ["text", "markdown", "json", "junit", "sarif"] {
            let out = stsmend(&[
                "plan",
                "--from",
                f.to_str().unwrap(),
                "--for",
                "0s",
                "-o",
                format,
            ]);
            let code = out.status.code();
            assert!(
                matches!(code, Some(0 | 1)),
                "{n} as {format}: exit {code:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Cluster text cannot rewrite a report (issue 22): a name in a
/// hand-written snapshot carrying an ANSI sequence, a forged line and
/// Markdown/HTML shows in the text report on its own line with its
/// controls made visible, and in Markdown as text, not markup.
#[test]
fn hostile_names_cannot_rewrite_the_human_reports() {
    let hostile = "db\\u001b[2K\\rFAILING kube-system/forged\\n![x](https://evil.example/p.png)<img src=x></table>@octocat```";
    let yaml = HEALTHY
        .replace("name: db,", &format!("name: \"{hostile}\","))
        .replace("observedGeneration: 2", "observedGeneration: 1");
    let f = temp_file("hostile.yaml", &yaml);
    let plan_as = |format: &str| {
        stsmend(&[
            "plan",
            "--from",
            f.to_str().unwrap(),
            "--for",
            "0s",
            "-o",
            format,
        ])
    };
    let out = plan_as("text");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("FAILING kube-system")),
        "a forged line: {text}"
    );
    assert!(text.contains("\\u{1b}[2K"), "{text}");
    let out = plan_as("markdown");
    let md = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!md.contains('\u{1b}') && !md.contains("\n```"), "{md}");
    // Outside code spans (literal when rendered), no markup survives.
    let outside = markdown::outside_code(&md);
    for gone in ["![x](", "<img", "</table>", "https://", "@octocat"] {
        assert!(!outside.contains(gone), "{gone:?} survives: {md}");
    }
    assert!(!md.lines().any(|l| l.starts_with("FAILING")), "{md}");
}

#[test]
fn a_malformed_file_exits_two_naming_it() {
    let f = temp_file("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n");
    let out = stsmend(&["plan", "--from", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml"), "{err}");
}

#[test]
fn a_missing_file_exits_two() {
    let out = stsmend(&["plan", "--from", "/nonexistent/stsmend.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/stsmend.yaml"));
}

#[test]
fn a_bad_flag_value_exits_two() {
    let f = temp_file("healthy2.yaml", HEALTHY);
    for args in [
        vec!["plan", "--from", f.to_str().unwrap(), "--for", "soon"],
        vec!["plan", "--from", f.to_str().unwrap(), "-l", "app in db"],
        vec!["plan", "--from", f.to_str().unwrap(), "--now", "yesterday"],
        vec!["plan", "--bogus"],
    ] {
        let out = stsmend(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_bad_config_exits_two_naming_the_key() {
    let f = temp_file("healthy3.yaml", HEALTHY);
    let c = temp_file("config.yaml", "scope:\n  namespacez: [a]\n");
    let out = stsmend(&[
        "plan",
        "--from",
        f.to_str().unwrap(),
        "--config",
        c.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.yaml") && err.contains("namespacez"),
        "{err}"
    );
}

#[test]
fn a_bad_kubeconfig_exits_two() {
    let k = temp_file(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: {oops\n",
    );
    let out = stsmend(&["plan", "--kubeconfig", k.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubeconfig"));
}

#[test]
fn an_unreachable_cluster_exits_three() {
    // Port 9 on loopback (discard) is closed on these machines: the connection
    // is refused at once.
    let k = temp_file(
        "kubeconfig-unreachable",
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n",
    );
    let out = stsmend(&["plan", "--kubeconfig", k.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn findings_exit_one_and_render_in_every_format() {
    let mismatched = HEALTHY.replace(
        "generation: 2}",
        "generation: 3, creationTimestamp: '2026-11-22T09:00:00Z'}",
    );
    let f = temp_file("mismatch.yaml", &mismatched);
    for format in ["text", "markdown", "json"] {
        let out = stsmend(&[
            "plan",
            "--from",
            f.to_str().unwrap(),
            "--now",
            "2026-11-22T10:00:00Z",
            "--for",
            "0",
            "-o",
            format,
        ]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("shop/db"), "{format}: {stdout}");
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(v["schema"], "stsmend.io/report/v1");
            assert_eq!(
                v["failing"][0]["findings"][0]["kind"],
                "generation_mismatch"
            );
        }
    }
}

/// A server that accepts connections and never answers would hold each
/// request for the client's minute-long read timeout, and retries on top:
/// the run's deadline ends it, with a failure (exit 3), long before, and
/// its report says the run is incomplete rather than that all is well.
#[test]
fn a_run_ends_by_its_deadline_against_a_server_that_never_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let k = temp_file(
        "kubeconfig-silent",
        &format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n"
        ),
    );
    let report = std::env::temp_dir().join(format!("stsmend-deadline-{}.xml", std::process::id()));
    let started = std::time::Instant::now();
    let out = stsmend(&[
        "run",
        "--kubeconfig",
        k.to_str().unwrap(),
        "--deadline",
        "4s",
        "-o",
        "json",
        "--report",
        report.to_str().unwrap(),
        "--report-format",
        "junit",
    ]);
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let why = json["incomplete"].as_str().unwrap_or_default();
    assert!(
        why.contains("deadline (4s) passed while it read the cluster"),
        "{json:#}"
    );
    assert_eq!(json["failing"], serde_json::json!([]));
    let junit = std::fs::read_to_string(&report).unwrap();
    std::fs::remove_file(&report).ok();
    assert!(
        junit.contains("errors=\"1\"")
            && junit.contains("<error ")
            && junit.contains("type=\"incomplete\""),
        "{junit}"
    );
    assert!(!junit.contains("no failed rollout"), "{junit}");
}

#[test]
fn a_bad_deadline_exits_two() {
    let out = stsmend(&["run", "--deadline", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A YAML snapshot of a cluster of 1,200 StatefulSets with three pods and
/// a revision each, written the way `stsmend snapshot` writes one
/// (`stsmend::snapshot::to_yaml`), replays through `plan --from` (the YAML
/// reader's default budget stopped at about 1,000). One set of them fails.
#[test]
fn a_snapshot_of_more_than_a_thousand_statefulsets_replays() {
    use serde_json::json;
    let mut inv = stsmend::inventory::Inventory::default();
    let origin = |m: &str| stsmend_core::Error::invalid("test", "generated", m);
    for i in 0..1200 {
        let (ns, name) = (format!("team-{}", i % 40), format!("db-{i}"));
        let failing = i == 7;
        let generation = if failing { 3 } else { 2 };
        let status = json!({"replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
            "observedGeneration": 2, "currentRevision": format!("{name}-1"), "updateRevision": format!("{name}-1")});
        inv.add_value(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": ns, "uid": format!("u-{i}"), "generation": generation,
                         "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"replicas": 3, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "registry.example/db:1"}]}}},
            "status": status}), &origin).unwrap();
        for p in 0..3 {
            inv.add_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{name}-{p}"), "namespace": ns, "uid": format!("p-{i}-{p}"),
                             "labels": {"app": name, "controller-revision-hash": format!("{name}-1")},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": format!("u-{i}"), "controller": true}]},
                "spec": {"containers": [{"name": "app", "image": "registry.example/db:1"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}), &origin).unwrap();
        }
    }
    stsmend::snapshot::mark(&mut inv, "stsmend", "2026-12-03T10:00:00Z".parse().unwrap());
    let yaml = stsmend::snapshot::to_yaml(&inv).unwrap();
    // Beyond what the YAML reader's default budget reads.
    let e = serde_saphyr::from_multiple::<serde_json::Value>(&yaml).unwrap_err();
    assert!(e.to_string().contains("budget"), "{e}");
    let f = temp_file("large-snapshot.yaml", &yaml);
    let out = stsmend(&[
        "plan",
        "--from",
        f.to_str().unwrap(),
        "-o",
        "json",
        "--for",
        "0s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a failing set found: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["scanned"], 1200, "{stderr}");
    let failing = report["failing"].as_array().unwrap();
    assert_eq!(failing.len(), 1, "{stderr}");
    assert_eq!(failing[0]["name"], "db-7");
}

/// A 50 MB Event message (the API server caps messages, a hand-written or
/// tampered snapshot does not) reaches no report whole: each quoted text is
/// cut where it is read (4 KiB), so the JSON, text and Markdown reports stay
/// small.
#[test]
fn a_huge_event_message_is_capped_in_every_report() {
    let huge = "x".repeat(50_000_000);
    let yaml = format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: shop, uid: u1, generation: 3}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: db}}}}\n  serviceName: db\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec: {{containers: [{{name: db, image: db:2}}]}}\nstatus: {{replicas: 1, readyReplicas: 1, observedGeneration: 2, currentRevision: db-1, updateRevision: db-2}}\n---\napiVersion: v1\nkind: Event\nmetadata: {{name: db.1, namespace: shop}}\ninvolvedObject: {{apiVersion: apps/v1, kind: StatefulSet, name: db, namespace: shop, uid: u1}}\nreason: FailedCreate\ntype: Warning\ncount: 3\nlastTimestamp: \"2026-12-03T09:59:00Z\"\nmessage: \"create Pod db-1 in StatefulSet db failed error: pods \\\"db-1\\\" is forbidden: {huge}\"\n"
    );
    let f = temp_file("huge-event.yaml", &yaml);
    for (format, max) in [("json", 200_000), ("text", 100_000), ("markdown", 100_000)] {
        let out = stsmend(&[
            "plan",
            "--from",
            f.to_str().unwrap(),
            "-o",
            format,
            "--for",
            "0s",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{format}: {stderr}");
        assert!(
            out.stdout.len() < max,
            "{format}: {} bytes",
            out.stdout.len()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if format == "json" {
            assert!(
                text.contains("[cut: "),
                "the message is quoted, cut: {text}"
            );
        }
    }
}
