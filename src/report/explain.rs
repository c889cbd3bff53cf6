//! `stsmend explain NAMESPACE/NAME`: how the plan for one StatefulSet came
//! about, rung by rung.

use std::fmt::Write;

use crate::duration::Span;
use crate::pipeline::Assessment;
use crate::report::sanitize::line;

pub fn explain(a: &Assessment, failing: bool, threshold: Span) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {}",
        line(&a.id()),
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
        line(a.resource_version.as_deref().unwrap_or("unknown"))
    );
    let _ = writeln!(s, "\nFindings:");
    for f in &a.findings {
        let _ = writeln!(
            s,
            "  - [{}] {} ({:?})",
            f.kind.as_str(),
            line(&f.summary),
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
            line(&d.policy),
            line(&d.file),
            line(&d.selected_by)
        );
    }
    if !d.trace.is_empty() {
        let _ = writeln!(s, "\nTrace:");
        let width = d.trace.iter().map(|t| t.rung.len()).max().unwrap_or(0);
        for (i, t) in d.trace.iter().enumerate() {
            let who = if t.policy == d.policy {
                String::new()
            } else {
                format!(" [{}]", line(&t.policy))
            };
            let _ = writeln!(
                s,
                "  {}. {:<width$}  {:<11}  {}{who}",
                i + 1,
                line(&t.rung),
                t.status.as_str(),
                line(&t.why)
            );
        }
    }
    if let Some(e) = &d.error {
        let _ = writeln!(s, "\nPolicy error, no actions: {}", line(&e.to_string()));
        return s;
    }
    let _ = writeln!(
        s,
        "\nPlan{}:",
        d.rung
            .as_ref()
            .map(|r| format!(" (rung {})", line(r)))
            .unwrap_or_default()
    );
    if d.actions.is_empty() {
        let _ = writeln!(s, "  no action");
    }
    for (i, a) in d.actions.iter().enumerate() {
        let _ = writeln!(s, "  {}. {}", i + 1, line(&a.describe()));
    }
    s
}
