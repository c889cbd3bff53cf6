//! SARIF 2.1.0 (the OASIS static-analysis format that GitHub code scanning,
//! GitLab and Azure DevOps import): one result per finding, its rule the
//! finding's kind. With `--from`, each result also points at the input file
//! and line where the StatefulSet's object starts, so a pull request that
//! changes manifests gets the finding as an annotation on that line.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::Report;
use crate::diagnose::{Confidence, Finding, Kind};
use crate::error::{Error, Result};
use crate::pipeline::Assessment;
use crate::source::files::{Location, Locations};

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

pub(super) fn uri(path: &Path) -> String {
    let shown = path.to_string_lossy().replace('\\', "/");
    if path.is_absolute() {
        format!("file://{shown}")
    } else {
        shown.trim_start_matches("./").to_string()
    }
}

fn result(a: &Assessment, f: &Finding, failing: bool, located: Option<&Location>) -> Value {
    let mut location = json!({
        "logicalLocations": [{
            "name": a.name,
            "fullyQualifiedName": format!("{}/{}", a.namespace, a.name),
            "kind": "object",
        }],
        "message": {"text": format!("StatefulSet {}", a.id())},
    });
    if let Some(at) = located {
        location["physicalLocation"] = json!({"artifactLocation": {"uri": uri(&at.path)}});
        if let Some(line) = at.line {
            location["physicalLocation"]["region"] = json!({"startLine": line});
        }
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

pub(super) fn rule(kind: Kind) -> Value {
    let id = kind.as_str();
    json!({
        "id": id,
        "name": id,
        "shortDescription": {"text": id.replace('_', " ")},
    })
}

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

/// Renders the report; `locations` are where the StatefulSets read from
/// files are declared (empty for a live run, whose results then carry
/// logical locations only).
pub fn render(r: &Report, locations: &Locations) -> Result<String> {
    let o = &r.outcome;
    let mut rules = BTreeMap::new();
    let mut results = Vec::new();
    for (list, failing) in [(&o.failing, true), (&o.pending, false)] {
        for a in list {
            let located = locations.get(&a.namespace, &a.name);
            for f in &a.findings {
                rules.entry(f.kind).or_insert_with(|| rule(f.kind));
                results.push(result(a, f, failing, located));
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

    use std::path::PathBuf;

    use crate::source::files;

    fn example_path() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/failing-rollout.yaml"
        ))
    }

    /// The example's objects (a `v1 List`), as the files a test writes.
    fn example_items() -> Vec<Value> {
        let text = std::fs::read_to_string(example_path()).unwrap();
        let list: Value = serde_saphyr::from_str(&text).unwrap();
        list["items"].as_array().unwrap().clone()
    }

    /// A directory of its own under the system's temporary one.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stsmend-sarif-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The example report rendered with the locations of `paths`, and each
    /// result's StatefulSet name, file and line.
    fn located_results(paths: &[PathBuf]) -> Vec<(String, String, u64)> {
        let report = crate::report::junit::tests::example("0s");
        let (_, locations) = files::load_with_locations(paths).unwrap();
        let log: Value = serde_json::from_str(&render(&report, &locations).unwrap()).unwrap();
        check_required(&log);
        let results = log["runs"][0]["results"].as_array().unwrap();
        assert!(!results.is_empty());
        results
            .iter()
            .map(|r| {
                let name = r["locations"][0]["logicalLocations"][0]["name"].as_str();
                let at = &r["locations"][0]["physicalLocation"];
                let line = at["region"]["startLine"].as_u64();
                let file = at["artifactLocation"]["uri"].as_str();
                let (Some(name), Some(file), Some(line)) = (name, file, line) else {
                    panic!("{r:#}\nhas no file and line");
                };
                (name.to_string(), file.to_string(), line)
            })
            .collect()
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
                    if let Some(region) = p.get("region") {
                        assert!(region["startLine"].as_u64().unwrap() >= 1);
                    }
                }
            }
        }
    }

    #[test]
    fn one_result_per_finding_located_in_the_input_file() {
        let report = crate::report::junit::tests::example("0s");
        let input = example_path();
        let (_, locations) = files::load_with_locations(std::slice::from_ref(&input)).unwrap();
        let log: Value = serde_json::from_str(&render(&report, &locations).unwrap()).unwrap();
        check_required(&log);
        let results = log["runs"][0]["results"].as_array().unwrap();
        let findings: usize = report
            .outcome
            .failing
            .iter()
            .chain(&report.outcome.pending)
            .map(|a| a.findings.len())
            .sum();
        assert_eq!(results.len(), findings);
        for (a, res) in report
            .outcome
            .failing
            .iter()
            .flat_map(|a| a.findings.iter().map(move |f| (a, f)))
            .zip(results)
        {
            assert_eq!(res["ruleId"], a.1.kind.as_str());
        }
        assert!(results.iter().any(|r| r["level"] == "error"));

        // kubectl's List puts each object at a `- ` of its own, in order.
        let text = std::fs::read_to_string(&input).unwrap();
        let starts: Vec<u64> = (1..)
            .zip(text.lines())
            .filter(|(_, l)| l.starts_with("- "))
            .map(|(n, _)| n)
            .collect();
        let items = example_items();
        assert_eq!(starts.len(), items.len());
        for (name, file, line) in located_results(std::slice::from_ref(&input)) {
            assert_eq!(file, uri(&input));
            let item = starts.iter().position(|&s| s == line).unwrap();
            assert_eq!(items[item]["kind"], "StatefulSet");
            assert_eq!(items[item]["metadata"]["name"], name.as_str());
        }
    }

    #[test]
    fn a_statefulset_in_a_subfolder_is_located() {
        let dir = temp_dir("subfolder");
        std::fs::create_dir(dir.join("shop")).unwrap();
        let file = dir.join("shop").join("rollout.yaml");
        std::fs::copy(example_path(), &file).unwrap();
        let results = located_results(std::slice::from_ref(&dir));
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            results.iter().all(|(_, f, line)| *f == uri(&file)
                && f.ends_with("/shop/rollout.yaml")
                && *line > 1),
            "{results:?}"
        );
    }

    #[test]
    fn each_document_of_a_multi_document_file_is_located() {
        // Each object a document of its own, after a comment and an
        // object stsmend does not read.
        let mut text =
            String::from("# shop\napiVersion: v1\nkind: Service\nmetadata:\n  name: db\n");
        let items = example_items();
        for item in &items {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(item).unwrap());
        }
        let dir = temp_dir("documents");
        let file = dir.join("shop.yaml");
        std::fs::write(&file, &text).unwrap();
        let results = located_results(std::slice::from_ref(&file));
        std::fs::remove_dir_all(&dir).ok();
        // A document starts on the line after its `---`.
        let starts: Vec<u64> = (2..)
            .zip(text.lines())
            .filter(|(_, l)| *l == "---")
            .map(|(n, _)| n)
            .collect();
        assert_eq!(starts.len(), items.len());
        for (name, file, line) in results {
            assert!(file.ends_with("/shop.yaml"), "{file}");
            let item = starts.iter().position(|&s| s == line).unwrap();
            assert_eq!(items[item]["metadata"]["name"], name.as_str());
        }
    }

    #[test]
    fn json_input_is_located_by_file_only() {
        let list =
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": example_items()});
        let dir = temp_dir("json");
        let file = dir.join("shop.json");
        std::fs::write(&file, serde_json::to_string_pretty(&list).unwrap()).unwrap();
        let report = crate::report::junit::tests::example("0s");
        let (_, locations) = files::load_with_locations(std::slice::from_ref(&file)).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let log: Value = serde_json::from_str(&render(&report, &locations).unwrap()).unwrap();
        check_required(&log);
        for r in log["runs"][0]["results"].as_array().unwrap() {
            let at = &r["locations"][0]["physicalLocation"];
            assert_eq!(at["artifactLocation"]["uri"], uri(&file));
            assert!(at.get("region").is_none(), "{at}");
        }
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
