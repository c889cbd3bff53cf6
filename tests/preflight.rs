//! `stsmend preflight` through the binary, on the bundled example (a
//! snapshot captured from a real API server) and on hostile or bad input:
//! exit codes, every format, and the file and line each finding points at.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "common/markdown.rs"]
mod markdown;

const CHANGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/preflight/change");
const SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/preflight/snapshot.yaml"
);

fn stsmend(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(args)
        .env("STSMEND_LOG", "off")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stsmend");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn example(format: &str) -> (i32, String) {
    let out = stsmend(
        &[
            "preflight",
            CHANGE,
            "--from",
            SNAPSHOT,
            "-n",
            "shop",
            "-o",
            format,
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        out.stderr.is_empty() || code != 2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, text)
}

#[test]
fn the_example_predicts_the_limit_range_refusal_and_the_rollback() {
    let (code, json) = example("json");
    assert_eq!(code, 1, "a predicted failure exits 1: {json}");
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["schema"], "stsmend.io/preflight/v1");
    assert_eq!(report["failing"], 1);
    let sets = report["sets"].as_array().unwrap();
    let by = |name: &str| sets.iter().find(|s| s["name"] == name).unwrap().clone();
    let (db, cache) = (by("db"), by("cache"));
    assert_eq!(
        cache["namespace"], "shop",
        "-n places a manifest without one"
    );
    assert_eq!(cache["fails"], false);
    assert_eq!(
        cache["rollout"]["replaced"],
        serde_json::json!(["cache-1", "cache-0"])
    );
    assert_eq!(db["causes"], serde_json::json!(["admission_denied"]));
    assert_eq!(db["obstacles"][0]["source"], "agent");
    assert_eq!(
        db["obstacles"][0]["evidence"][0]["object"],
        "LimitRange shop/limits"
    );
    assert_eq!(db["plan"]["rung"], "rollback");
    assert!(db["line"].as_u64().is_some() && db["file"].as_str().unwrap().ends_with("db.yaml"));
    assert_eq!(report["otherObjects"]["v1/Service"], 1);
}

#[test]
fn every_format_renders_and_sarif_points_at_the_manifest() {
    for format in ["text", "markdown", "junit"] {
        let (code, text) = example(format);
        assert_eq!(code, 1, "{format}: {text}");
        assert!(text.contains("shop/db"), "{format}: {text}");
    }
    let (_, sarif) = example("sarif");
    let log: Value = serde_json::from_str(&sarif).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "one cause, one result: {sarif}");
    let at = &results[0]["locations"][0]["physicalLocation"];
    assert!(
        at["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("examples/preflight/change/db.yaml")
    );
    assert_eq!(
        at["region"]["startLine"], 5,
        "where the object starts, after its comments"
    );
    assert_eq!(results[0]["ruleId"], "admission_denied");
}

#[test]
fn manifests_from_standard_input_are_read() {
    let text = std::fs::read_to_string(format!("{CHANGE}/db.yaml")).unwrap();
    let out = stsmend(
        &["preflight", "-", "--from", SNAPSHOT, "-o", "json"],
        Some(&text),
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["sets"][0]["causes"],
        serde_json::json!(["admission_denied"])
    );
}

#[test]
fn a_change_without_statefulsets_predicts_nothing() {
    let out = stsmend(
        &["preflight", "-", "--from", SNAPSHOT],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: shop}\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 StatefulSet(s) in the change"));
}

#[test]
fn bad_input_exits_two_naming_it() {
    let text = std::fs::read_to_string(format!("{CHANGE}/db.yaml")).unwrap();
    let twice = format!("{text}---\n{text}");
    let out = stsmend(&["preflight", "-", "--from", SNAPSHOT], Some(&twice));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shop/db is declared twice"), "{err}");
    let out = stsmend(
        &["preflight", "-", "--from", SNAPSHOT],
        Some("kind: [unclosed"),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = stsmend(
        &["preflight", "/nonexistent/manifests", "--from", SNAPSHOT],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/manifests"));
}

#[test]
fn hostile_manifests_cannot_rewrite_the_human_reports() {
    let text = std::fs::read_to_string(format!("{CHANGE}/db.yaml")).unwrap();
    let hostile = "app:1\\u001b[2K\\rFAILS kube-system/forged\\n![x](https://evil.example/p.png)<img src=x>@octocat```";
    let yaml = text.replace(
        "image: registry.example/db:1",
        &format!("image: \"{hostile}\""),
    );
    for format in ["text", "markdown"] {
        let out = stsmend(
            &["preflight", "-", "--from", SNAPSHOT, "-o", format],
            Some(&yaml),
        );
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{format}: {shown:?}"
        );
        assert!(
            !shown.lines().any(|l| l.starts_with("FAILS kube-system")),
            "{format}: {shown}"
        );
        if format == "markdown" {
            let outside = markdown::outside_code(&shown);
            assert!(
                !shown.contains("\n```")
                    && !outside.contains("<img")
                    && !outside.contains("https://"),
                "{shown}"
            );
        }
    }
}
