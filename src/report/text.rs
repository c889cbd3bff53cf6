//! A few lines per StatefulSet, for a terminal or a CronJob's log.

use std::fmt::Write;

use super::Report;
use super::sanitize::line;
use crate::policy::{Decision, Status};

pub fn render(r: &Report) -> String {
    let o = &r.outcome;
    let mut s = String::new();
    if let Some(mode) = r.mode {
        let _ = writeln!(s, "stsmend run ({})", mode.as_str());
    }
    let _ = writeln!(
        s,
        "stsmend: {} StatefulSet(s) scanned from {}: {} failing, {} pending (< {}), {} exempt",
        o.scanned,
        line(&r.source),
        o.failing.len(),
        o.pending.len(),
        r.threshold,
        o.exempt.len()
    );
    if let Some(why) = &r.incomplete {
        let _ = writeln!(s, "stsmend: INCOMPLETE: {}", line(why));
    }
    for (label, list) in [("FAILING", &o.failing), ("pending", &o.pending)] {
        for a in list {
            let _ = writeln!(s, "\n{label} {}", line(&a.id()));
            for f in &a.findings {
                let _ = writeln!(
                    s,
                    "  - [{}] {} ({:?})",
                    f.kind.as_str(),
                    line(&f.summary),
                    f.confidence
                );
            }
            if let Some(d) = &a.plan {
                plan(&mut s, d, &a.id());
            }
            if let Some(gate) = super::gate_line(a) {
                let _ = writeln!(s, "  {}", line(&gate));
            }
            for e in &a.executed {
                if e.steps.is_empty() {
                    let _ = writeln!(
                        s,
                        "  {} {}: {}",
                        e.action,
                        e.status.as_str(),
                        line(&e.detail)
                    );
                    continue;
                }
                // A remediation of several steps: one line each.
                let _ = writeln!(
                    s,
                    "  {} {}, in {} steps:",
                    e.action,
                    e.status.as_str(),
                    e.steps.len()
                );
                for (i, step) in e.steps.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "    {}. {} {}: {}",
                        i + 1,
                        step.step,
                        step.status.as_str(),
                        line(&step.detail)
                    );
                }
            }
        }
    }
    if let Some(d) = &r.alerts {
        let _ = writeln!(s);
        match &d.error {
            None if d.firing + d.resolved == 0 => {
                let _ = writeln!(s, "alerts: none to send to {}", line(&d.url));
            }
            None => {
                let _ = writeln!(
                    s,
                    "alerts: {} firing, {} resolved, sent to {}",
                    d.firing,
                    d.resolved,
                    line(&d.url)
                );
            }
            Some(e) => {
                let _ = writeln!(
                    s,
                    "alerts NOT delivered ({} firing, {} resolved): {}",
                    d.firing,
                    d.resolved,
                    line(e)
                );
            }
        }
    }
    if !o.exempt.is_empty() {
        let _ = writeln!(s);
        for e in &o.exempt {
            let _ = writeln!(
                s,
                "exempt {}: {}",
                line(&format!("{}/{}", e.namespace, e.name)),
                e.reason.describe()
            );
        }
    }
    s
}

pub(super) fn plan(s: &mut String, d: &Decision, id: &str) {
    if let Some(e) = &d.error {
        let _ = writeln!(s, "  policy error, no actions: {}", line(&e.to_string()));
        return;
    }
    let _ = writeln!(
        s,
        "  plan by policy {}{}:",
        line(&d.policy),
        d.rung
            .as_ref()
            .map(|r| format!(", rung {}", line(r)))
            .unwrap_or_default()
    );
    if d.actions.is_empty() {
        let _ = writeln!(s, "    (no action)");
    }
    for (i, a) in d.actions.iter().enumerate() {
        let _ = writeln!(s, "    {}. {}", i + 1, line(&a.describe()));
    }
    let marks: Vec<String> = d
        .trace
        .iter()
        .map(|t| {
            let mark = match t.status {
                Status::Chosen => "chosen",
                Status::Skipped => "skipped",
                Status::NotReached => "not reached",
                Status::Overridden => "overridden",
            };
            format!("{} {mark}", line(&t.rung))
        })
        .collect();
    let _ = writeln!(
        s,
        "  trace: {} (stsmend explain {} says why)",
        marks.join(", "),
        line(id)
    );
}

#[cfg(test)]
mod tests {
    use crate::execution::{Executed, Status, Step};

    #[test]
    fn a_remediation_of_several_steps_shows_each() {
        let mut r = super::super::junit::tests::example("0s");
        r.outcome.failing[0].executed = vec![Executed {
            action: "rollback".into(),
            status: Status::Done,
            detail: "joined".into(),
            steps: vec![
                Step::new("revert", Status::Done, "rolled back to revision 1"),
                Step::new("observe", Status::Done, "observed in 0.4s"),
                Step::new("evict", Status::Done, "db-2: evicted"),
            ],
        }];
        let text = super::render(&r);
        assert!(text.contains("  rollback done, in 3 steps:\n"), "{text}");
        assert!(
            text.contains("    1. revert done: rolled back to revision 1\n"),
            "{text}"
        );
        assert!(
            text.contains("    3. evict done: db-2: evicted\n"),
            "{text}"
        );
        assert!(!text.contains("joined"), "{text}");
        let md = super::super::markdown::render(&r);
        assert!(
            md.contains("| `rollback` 2/3: observe | done | observed in 0.4s |"),
            "{md}"
        );
    }
}
