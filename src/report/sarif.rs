//! SARIF 2.1.0 (the OASIS static-analysis format that GitHub code scanning,
//! GitLab and Azure DevOps import): one result per finding, its rule the
//! finding's kind. With `--from`, each result also points at the line of the
//! input file where the StatefulSet is declared, so a pull request that
//! changes manifests gets the finding as an annotation on that line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Report;
use crate::diagnose::{Confidence, Finding, Kind};
use crate::error::{Error, Result};
use crate::pipeline::Assessment;

pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// A finding the agent is sure of fails a check; a guess only annotates.
fn level(confidence: Confidence, failing: bool) -> &'static str {
    match (failing, confidence) {
        (false, _) => "note",
        (true, Confidence::High) => "error",
        (true, Confidence::Medium) => "warning",
        (true, Confidence::Low) => "note",
    }
}

fn confidence_str(c: Confidence) -> &'static str {
    match c {
        Confidence::Low => "low",
        Confidence::Medium => "medium",
        Confidence::High => "high",
    }
}

/// The input files as given on the command line, directories expanded to
/// the files stsmend reads in them; standard input has no location.
fn input_files(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            continue;
        }
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && matches!(
                            f.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '-']).len()
}

/// The 1-based line of `name: NAME` in the metadata of the StatefulSet
/// NAMESPACE/NAME in YAML as kubectl prints it (a `v1 List` or documents).
/// Matching by indentation keeps a Pod's `ownerReferences` entry (also
/// `kind: StatefulSet` with a `name:`) from being taken for the object.
pub(crate) fn locate(text: &str, namespace: &str, name: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start_matches([' ', '-']).trim_end();
        if trimmed != "kind: StatefulSet" {
            continue;
        }
        let col = indent(line);
        let mut in_metadata = false;
        let mut name_line = None;
        let mut ns = None;
        for (j, l) in lines.iter().enumerate().skip(i + 1) {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let c = indent(l);
            // A sibling list item or a shallower line ends the object.
            if t == "---" || c < col || (c == col && l.trim_start().starts_with('-')) {
                break;
            }
            if c == col {
                in_metadata = t == "metadata:";
                continue;
            }
            if in_metadata && c == col + 2 {
                if let Some(v) = t.strip_prefix("name:") {
                    name_line = (v.trim().trim_matches(['"', '\'']) == name).then_some(j + 1);
                    if name_line.is_none() {
                        break;
                    }
                } else if let Some(v) = t.strip_prefix("namespace:") {
                    ns = Some(v.trim().trim_matches(['"', '\'']).to_string());
                }
            }
        }
        // A document without a namespace is in whatever namespace it is
        // applied to: accept it for any.
        if let Some(n) = name_line
            && ns.as_deref().is_none_or(|ns| ns == namespace)
        {
            return Some(n);
        }
    }
    None
}

fn uri(path: &Path) -> String {
    let shown = path.to_string_lossy().replace('\\', "/");
    if path.is_absolute() {
        format!("file://{shown}")
    } else {
        shown.trim_start_matches("./").to_string()
    }
}

fn result(a: &Assessment, f: &Finding, failing: bool, located: Option<&(String, usize)>) -> Value {
    let mut location = json!({
        "logicalLocations": [{
            "name": a.name,
            "fullyQualifiedName": format!("{}/{}", a.namespace, a.name),
            "kind": "object",
        }],
        "message": {"text": format!("StatefulSet {}", a.id())},
    });
    if let Some((file, line)) = located {
        location["physicalLocation"] = json!({
            "artifactLocation": {"uri": file},
            "region": {"startLine": line},
        });
    }
    let plan: Vec<String> = a
        .plan
        .iter()
        .flat_map(|d| d.actions.iter().map(|x| x.describe()))
        .collect();
    json!({
        "ruleId": f.kind.as_str(),
        "level": level(f.confidence, failing),
        "message": {"text": format!("{}: {}", a.id(), f.summary)},
        "locations": [location],
        "partialFingerprints": {
            // Stable across runs, so a code-scanning alert stays one alert
            // while the same StatefulSet keeps failing the same way.
            "stsmend/v1": format!("{}/{}/{}", a.namespace, a.name, f.kind.as_str()),
        },
        "properties": {
            "statefulSet": a.id(),
            "status": if failing { "failing" } else { "pending" },
            "confidence": confidence_str(f.confidence),
            "evidence": f.evidence,
            "policy": a.plan.as_ref().map(|d| d.policy.clone()),
            "plan": plan,
        },
    })
}

fn rule(kind: Kind) -> Value {
    let id = kind.as_str();
    json!({
        "id": id,
        "name": id,
        "shortDescription": {"text": id.replace('_', " ")},
    })
}

/// Renders the report; `inputs` are the `--from` paths (empty for a live
/// run, whose results then carry logical locations only).
/// The run itself: unsuccessful, with the reason, when it ended before
/// judging everything in scope.
fn invocation(r: &Report) -> serde_json::Value {
    let mut inv = json!({
        "executionSuccessful": r.incomplete.is_none(),
        "endTimeUtc": r.generated_at.to_string(),
    });
    if let Some(why) = &r.incomplete {
        inv["toolExecutionNotifications"] = json!([{"level": "error", "message": {"text": why}}]);
    }
    inv
}

pub fn render(r: &Report, inputs: &[PathBuf]) -> Result<String> {
    let o = &r.outcome;
    let texts: Vec<(String, String)> = input_files(inputs)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (uri(&p), t)))
        .collect();
    let mut rules = BTreeMap::new();
    let mut results = Vec::new();
    for (list, failing) in [(&o.failing, true), (&o.pending, false)] {
        for a in list {
            let located = texts.iter().find_map(|(file, text)| {
                locate(text, &a.namespace, &a.name).map(|line| (file.clone(), line))
            });
            for f in &a.findings {
                rules.entry(f.kind).or_insert_with(|| rule(f.kind));
                results.push(result(a, f, failing, located.as_ref()));
            }
        }
    }
    let rule_ids: Vec<Kind> = rules.keys().copied().collect();
    for res in &mut results {
        let id = res["ruleId"].as_str().unwrap_or_default().to_string();
        if let Some(i) = rule_ids.iter().position(|k| k.as_str() == id) {
            res["ruleIndex"] = json!(i);
        }
    }
    let log = json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "stsmend",
                "version": r.version,
                "semanticVersion": r.version,
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "invocations": [invocation(r)],
            "results": results,
            "properties": {
                "source": r.source,
                "threshold": r.threshold.to_string(),
                "scanned": o.scanned,
                "failing": o.failing.len(),
                "pending": o.pending.len(),
                "exempt": o.exempt.len(),
            },
        }],
    });
    let mut s = serde_json::to_string_pretty(&log).map_err(|e| Error::encode("SARIF report", e))?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: db-0
    namespace: shop
    ownerReferences:
    - apiVersion: apps/v1
      kind: StatefulSet
      name: db
- apiVersion: apps/v1
  kind: StatefulSet
  metadata:
    labels:
      name: other
    name: db
    namespace: shop
  spec:
    replicas: 3
kind: List
";

    #[test]
    fn locates_the_statefulset_not_a_pods_owner_reference() {
        assert_eq!(locate(LIST, "shop", "db"), Some(17));
        assert_eq!(locate(LIST, "billing", "db"), None);
        assert_eq!(locate(LIST, "shop", "web"), None);
    }

    #[test]
    fn locates_in_documents_without_a_namespace() {
        let docs = "kind: ConfigMap\nmetadata:\n  name: db\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec: {}\n";
        assert_eq!(locate(docs, "anywhere", "db"), Some(8));
    }

    /// The fields SARIF 2.1.0 requires (and GitHub code scanning reads) are
    /// present, with the types the schema gives them.
    fn check_required(log: &Value) {
        assert_eq!(log["version"], "2.1.0");
        assert_eq!(log["$schema"], SCHEMA_URI);
        let runs = log["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1);
        let driver = &runs[0]["tool"]["driver"];
        assert_eq!(driver["name"], "stsmend");
        let rules = driver["rules"].as_array().expect("rules");
        for r in rules {
            assert!(r["id"].is_string());
        }
        for res in runs[0]["results"].as_array().expect("results") {
            let id = res["ruleId"].as_str().expect("ruleId");
            let index = res["ruleIndex"].as_u64().expect("ruleIndex") as usize;
            assert_eq!(rules[index]["id"], id);
            assert!(["error", "warning", "note", "none"].contains(&res["level"].as_str().unwrap()));
            assert!(
                !res["message"]["text"]
                    .as_str()
                    .expect("message.text")
                    .is_empty()
            );
            for loc in res["locations"].as_array().expect("locations") {
                assert!(loc["logicalLocations"][0]["fullyQualifiedName"].is_string());
                if let Some(p) = loc.get("physicalLocation") {
                    assert!(p["artifactLocation"]["uri"].is_string());
                    assert!(p["region"]["startLine"].as_u64().unwrap() >= 1);
                }
            }
        }
    }

    #[test]
    fn one_result_per_finding_located_in_the_input_file() {
        let report = crate::report::junit::tests::example("0s");
        let input = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/failing-rollout.yaml"
        ));
        let text = std::fs::read_to_string(&input).unwrap();
        let log: Value = serde_json::from_str(&render(&report, &[input]).unwrap()).unwrap();
        check_required(&log);
        let results = log["runs"][0]["results"].as_array().unwrap();
        let findings: usize = report
            .outcome
            .failing
            .iter()
            .map(|a| a.findings.len())
            .sum::<usize>()
            + report
                .outcome
                .pending
                .iter()
                .map(|a| a.findings.len())
                .sum::<usize>();
        assert_eq!(results.len(), findings);
        let lines: Vec<&str> = text.lines().collect();
        for (a, res) in report
            .outcome
            .failing
            .iter()
            .flat_map(|a| a.findings.iter().map(move |f| (a, f)))
            .zip(results)
        {
            assert_eq!(res["ruleId"], a.1.kind.as_str());
            let line = res["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap_or_else(|| panic!("{} has no line", a.0.id()));
            assert_eq!(
                lines[line as usize - 1].trim(),
                format!("name: {}", a.0.name)
            );
        }
        assert!(results.iter().any(|r| r["level"] == "error"));
    }

    #[test]
    fn a_live_run_has_logical_locations_only() {
        let report = crate::report::junit::tests::example("0s");
        let log: Value =
            serde_json::from_str(&report.render(super::super::Format::Sarif).unwrap()).unwrap();
        check_required(&log);
        let results = log["runs"][0]["results"].as_array().unwrap();
        assert!(!results.is_empty());
        assert!(
            results
                .iter()
                .all(|r| r["locations"][0].get("physicalLocation").is_none())
        );
    }

    #[test]
    fn levels_follow_confidence_for_failing_only() {
        assert_eq!(level(Confidence::High, true), "error");
        assert_eq!(level(Confidence::Medium, true), "warning");
        assert_eq!(level(Confidence::Low, true), "note");
        assert_eq!(level(Confidence::High, false), "note");
    }

    #[test]
    fn uris_are_relative_with_forward_slashes() {
        assert_eq!(uri(Path::new("./deploy/x.yaml")), "deploy/x.yaml");
        assert_eq!(uri(Path::new("/tmp/x.yaml")), "file:///tmp/x.yaml");
    }
}
