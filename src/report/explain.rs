//! `stsmend explain NAMESPACE/NAME`: how the plan for one StatefulSet came
//! about, rung by rung.

use std::fmt::Write;

use crate::duration::Span;
use crate::pipeline::Assessment;

pub fn explain(a: &Assessment, failing: bool, threshold: Span) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {}",
        a.id(),
        if failing {
            format!("failing (a symptom held for {threshold})")
        } else {
            format!("pending (no symptom has held for {threshold} yet)")
        }
    );
    let _ = writeln!(
        s,
        "generation {} · observed {} · resourceVersion {}",
        a.generation,
        a.observed_generation
            .map_or("unset".into(), |g| g.to_string()),
        a.resource_version.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(s, "\nFindings:");
    for f in &a.findings {
        let _ = writeln!(
            s,
            "  - [{}] {} ({:?})",
            f.kind.as_str(),
            f.summary,
            f.confidence
        );
    }
    let Some(d) = &a.plan else {
        let _ = writeln!(
            s,
            "\nNo plan: plans are made once a symptom has held for {threshold}."
        );
        return s;
    };
    if d.policy.is_empty() {
        let _ = writeln!(s, "\nPolicy: none selected");
    } else {
        let _ = writeln!(
            s,
            "\nPolicy: {} ({}), selected by {}",
            d.policy, d.file, d.selected_by
        );
    }
    if !d.trace.is_empty() {
        let _ = writeln!(s, "\nTrace:");
        let width = d.trace.iter().map(|t| t.rung.len()).max().unwrap_or(0);
        for (i, t) in d.trace.iter().enumerate() {
            let who = if t.policy == d.policy {
                String::new()
            } else {
                format!(" [{}]", t.policy)
            };
            let _ = writeln!(
                s,
                "  {}. {:<width$}  {:<11}  {}{who}",
                i + 1,
                t.rung,
                t.status.as_str(),
                t.why
            );
        }
    }
    if let Some(e) = &d.error {
        let _ = writeln!(s, "\nPolicy error, no actions: {e}");
        return s;
    }
    let _ = writeln!(
        s,
        "\nPlan{}:",
        d.rung
            .as_ref()
            .map(|r| format!(" (rung {r})"))
            .unwrap_or_default()
    );
    if d.actions.is_empty() {
        let _ = writeln!(s, "  no action");
    }
    for (i, a) in d.actions.iter().enumerate() {
        let _ = writeln!(s, "  {}. {}", i + 1, a.describe());
    }
    s
}
