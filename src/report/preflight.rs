//! The report of `stsmend preflight`: per StatefulSet of the change, what it
//! changes, what the rollout will do, what will stop it and what the agent
//! would then find and plan. Every format escapes what came from the
//! manifests or the cluster, as the run report does.

use std::fmt::Write;

use jiff::Timestamp;
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use serde_json::{Value, json};

use super::Format;
use super::sanitize::{code, line, markdown};
use crate::error::{Error, Result};
use crate::gitops::SyncRef;
use crate::preflight::{Prediction, Source, is_cause};

/// Bumped on any change a consumer of the JSON could notice.
pub const SCHEMA: &str = "stsmend.io/preflight/v1";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightReport {
    pub schema: &'static str,
    pub version: &'static str,
    pub generated_at: Timestamp,
    /// What the change was judged against: a cluster, or snapshot files.
    pub against: String,
    /// Whether the API server was asked (server-side dry runs).
    pub server: bool,
    /// The StatefulSets in the change, in the manifests' order.
    pub sets: Vec<Prediction>,
    /// How many are predicted to fail.
    pub failing: usize,
    /// Objects of other kinds in the manifests, by `apiVersion/kind`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub other_objects: std::collections::BTreeMap<String, usize>,
}

impl PreflightReport {
    /// 0 nothing predicted to fail, 1 some set is.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failing > 0)
    }

    pub fn render(&self, format: Format) -> Result<String> {
        match format {
            Format::Text => Ok(text(self)),
            Format::Markdown => Ok(markdown_report(self)),
            Format::Json => {
                let mut s = serde_json::to_string_pretty(self)
                    .map_err(|e| Error::encode("preflight report", e))?;
                s.push('\n');
                Ok(s)
            }
            Format::Sarif => sarif(self),
            Format::Junit => junit(self),
        }
    }
}

fn source_word(s: Source) -> &'static str {
    match s {
        Source::Agent => "agent",
        Source::Server => "API server",
    }
}

fn located(p: &Prediction) -> String {
    match (&p.file, p.line) {
        (Some(f), Some(l)) => format!("{f}:{l}"),
        (Some(f), None) => f.clone(),
        _ => String::new(),
    }
}

fn changes(p: &Prediction) -> Vec<String> {
    let mut out = Vec::new();
    if p.change.new_set {
        out.push("a new StatefulSet".to_string());
    }
    if let Some([from, to]) = p.change.replicas {
        out.push(format!("replicas {from} -> {to}"));
    }
    for c in &p.change.template {
        let show = |v: &Value| match v {
            Value::Null => "(unset)".to_string(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        out.push(format!(
            "{}: {} -> {}",
            c["path"].as_str().unwrap_or_default(),
            show(&c["old"]),
            show(&c["new"])
        ));
    }
    for f in &p.change.forbidden {
        out.push(format!("{f} (no update may change it)"));
    }
    out
}

fn rollout_line(p: &Prediction) -> Option<String> {
    let r = p.rollout.as_ref()?;
    let mut parts = vec![format!(
        "{}, {}, partition {}, maxUnavailable {}",
        r.strategy, r.pod_management, r.partition, r.max_unavailable
    )];
    if !r.replaced.is_empty() {
        parts.push(format!("replaces {}", r.replaced.join(", ")));
    }
    if !r.created.is_empty() {
        parts.push(format!("creates {}", r.created.join(", ")));
    }
    if !r.kept.is_empty() {
        parts.push(format!("leaves {}", r.kept.join(", ")));
    }
    if r.first.is_empty() {
        parts.push("no pod meets the new template now".into());
    } else {
        parts.push(format!("first {}", r.first.join(", ")));
        parts.push(format!(
            "at least {}s ({}){}",
            r.least_seconds,
            r.basis,
            if r.grace_seconds > 0 {
                format!(
                    ", plus up to {}s per step for old pods to stop",
                    r.grace_seconds
                )
            } else {
                String::new()
            }
        ));
    }
    Some(parts.join("; "))
}

fn gate(p: &Prediction) -> Option<String> {
    let g = p.gate.as_ref()?;
    Some(match (&g.blocked, g.opted_in) {
        (Some(b), _) => format!("the guards would hold it back: {}", b.describe()),
        (None, true) => "the guards would let it through (opted in)".into(),
        (None, false) => "report only: the StatefulSet is not opted in".into(),
    })
}

/// The GitOps object a rollback would suspend, where the plan says so.
fn suspends(p: &Prediction) -> Option<&SyncRef> {
    p.plan.as_ref()?.actions.iter().find_map(|a| match a {
        crate::policy::Action::Rollback { suspend, .. } => suspend.as_ref(),
        _ => None,
    })
}

fn text(r: &PreflightReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stsmend preflight: {} StatefulSet(s) in the change, against {}{}: {} predicted to fail",
        r.sets.len(),
        line(&r.against),
        if r.server {
            " (asked the API server)"
        } else {
            ""
        },
        r.failing
    );
    for p in &r.sets {
        let at = located(p);
        let _ = writeln!(
            s,
            "\n{} {}{}",
            if p.fails { "FAILS" } else { "ok" },
            line(&p.id()),
            if at.is_empty() {
                String::new()
            } else {
                format!("  ({})", line(&at))
            }
        );
        let list = changes(p);
        if list.is_empty() {
            let _ = writeln!(s, "  change: nothing the live object does not have");
        }
        for c in list {
            let _ = writeln!(s, "  change: {}", line(&c));
        }
        if let Some(l) = rollout_line(p) {
            let _ = writeln!(s, "  rollout: {}", line(&l));
        }
        for o in &p.obstacles {
            let _ = writeln!(
                s,
                "  will fail at {:?} ({}): {}",
                o.stage,
                source_word(o.source),
                line(&o.message)
            );
            for e in &o.evidence {
                let _ = writeln!(
                    s,
                    "    {} {}: {}",
                    line(&e.object),
                    line(e.field.as_deref().unwrap_or("event")),
                    line(e.message.as_deref().unwrap_or_default())
                );
            }
        }
        if !p.findings.is_empty() {
            let _ = writeln!(s, "  once it lands, the agent would find:");
        }
        for f in &p.findings {
            let _ = writeln!(
                s,
                "  - [{}] {} ({:?}; from the {})",
                f.finding.kind.as_str(),
                line(&f.finding.summary),
                f.finding.confidence,
                source_word(f.source)
            );
        }
        if let Some(d) = &p.plan {
            let _ = writeln!(s, "  if it fails:");
            super::text::plan(&mut s, d, &p.id());
        }
        if let Some(g) = gate(p) {
            let _ = writeln!(s, "  {}", line(&g));
        }
        if let Some(sync) = suspends(p) {
            let _ = writeln!(s, "  the rollback would suspend {}", line(&sync.describe()));
        }
        for a in &p.server_said {
            let _ = writeln!(s, "  the API server's dry run: {}", line(a));
        }
        for u in &p.unchecked {
            let _ = writeln!(s, "  not checked: {}", line(u));
        }
    }
    s
}

fn markdown_report(r: &PreflightReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## stsmend preflight: {} of {} StatefulSet(s) predicted to fail\n",
        r.failing,
        r.sets.len()
    );
    let _ = writeln!(
        s,
        "Against {}{}.\n",
        markdown(&r.against),
        if r.server {
            ", with the API server's dry runs"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "| StatefulSet | manifest | predicted | causes |\n|---|---|---|---|"
    );
    for p in &r.sets {
        let causes: Vec<String> = p.causes.iter().map(|k| code(k.as_str())).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            code(&p.id()),
            code(&located(p)),
            if p.fails { "**fails**" } else { "ok" },
            causes.join(", ")
        );
    }
    for p in &r.sets {
        let _ = writeln!(
            s,
            "\n### {} {}\n",
            code(&p.id()),
            if p.fails { "fails" } else { "ok" }
        );
        for c in changes(p) {
            let _ = writeln!(s, "- change: {}", code(&c));
        }
        if let Some(l) = rollout_line(p) {
            let _ = writeln!(s, "- rollout: {}", markdown(&l));
        }
        for o in &p.obstacles {
            let _ = writeln!(
                s,
                "- **will fail** at {:?} (said by the {}): {}",
                o.stage,
                source_word(o.source),
                code(&o.message)
            );
            for e in &o.evidence {
                let _ = writeln!(
                    s,
                    "  - {} {}: {}",
                    code(&e.object),
                    code(e.field.as_deref().unwrap_or("event")),
                    markdown(e.message.as_deref().unwrap_or_default())
                );
            }
        }
        if !p.findings.is_empty() {
            let _ = writeln!(s, "\nOnce it lands, the agent would find:\n");
        }
        for f in &p.findings {
            let _ = writeln!(
                s,
                "- {} {} (from the {})",
                code(f.finding.kind.as_str()),
                markdown(&f.finding.summary),
                source_word(f.source)
            );
        }
        if let Some(d) = &p.plan {
            let _ = writeln!(s, "\nIf it fails, the agent's safety net:\n");
            super::markdown::plan(&mut s, d);
        }
        if let Some(g) = gate(p) {
            let _ = writeln!(s, "\n{}", markdown(&g));
        }
        for a in &p.server_said {
            let _ = writeln!(s, "- the API server's dry run: {}", markdown(a));
        }
        for u in &p.unchecked {
            let _ = writeln!(s, "- not checked: {}", markdown(u));
        }
    }
    s
}

fn sarif(r: &PreflightReport) -> Result<String> {
    let mut rules = std::collections::BTreeMap::new();
    let mut results = Vec::new();
    for p in &r.sets {
        for f in p.findings.iter().filter(|f| is_cause(f.finding.kind)) {
            let kind = f.finding.kind;
            rules
                .entry(kind)
                .or_insert_with(|| super::sarif::rule(kind));
            let mut location = json!({
                "logicalLocations": [{"name": p.name, "fullyQualifiedName": p.id(), "kind": "object"}],
            });
            if let Some(file) = &p.file {
                location["physicalLocation"] = json!({"artifactLocation": {
                    "uri": super::sarif::uri(std::path::Path::new(file))}});
                if let Some(l) = p.line {
                    location["physicalLocation"]["region"] = json!({"startLine": l});
                }
            }
            results.push(json!({
                "ruleId": kind.as_str(),
                "level": "error",
                "message": {"text": format!("{}: predicted: {}", p.id(), f.finding.summary)},
                "locations": [location],
                "partialFingerprints": {"stsmend-preflight/v1": format!("{}/{}", p.id(), kind.as_str())},
                "properties": {
                    "statefulSet": p.id(),
                    "source": f.source,
                    "evidence": f.finding.evidence,
                    "obstacles": p.obstacles,
                },
            }));
        }
    }
    let ids: Vec<_> = rules.keys().copied().collect();
    for res in &mut results {
        let id = res["ruleId"].as_str().unwrap_or_default().to_string();
        if let Some(i) = ids.iter().position(|k| k.as_str() == id) {
            res["ruleIndex"] = json!(i);
        }
    }
    let log = json!({
        "$schema": super::sarif::SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "stsmend preflight", "version": r.version,
                "semanticVersion": r.version, "rules": rules.into_values().collect::<Vec<_>>()}},
            "invocations": [{"executionSuccessful": true, "endTimeUtc": r.generated_at.to_string()}],
            "results": results,
            "properties": {"against": r.against, "server": r.server, "sets": r.sets.len(), "failing": r.failing},
        }],
    });
    let mut s = serde_json::to_string_pretty(&log).map_err(|e| Error::encode("SARIF report", e))?;
    s.push('\n');
    Ok(s)
}

fn junit(r: &PreflightReport) -> Result<String> {
    let mut suite = TestSuite::new("stsmend preflight");
    for p in &r.sets {
        let name = p.id();
        let status = if p.fails {
            let one = PreflightReport {
                sets: vec![p.clone()],
                ..r.clone()
            };
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_type(
                p.causes
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            st.set_message(format!("{name}: the rollout is predicted to fail"));
            st.set_description(text(&one));
            st
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(format!("preflight.{}", p.namespace));
        suite.add_test_case(case);
    }
    let mut report = quick_junit::Report::new("stsmend preflight");
    report.add_test_suite(suite);
    report
        .to_string()
        .map_err(|e| Error::encode("JUnit report", e))
}
