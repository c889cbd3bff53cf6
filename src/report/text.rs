//! A few lines per StatefulSet, for a terminal or a CronJob's log.

use std::fmt::Write;

use super::Report;

pub fn render(r: &Report) -> String {
    let o = &r.outcome;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stsmend: {} StatefulSet(s) scanned from {}: {} failing, {} pending (< {}), {} exempt",
        o.scanned,
        r.source,
        o.failing.len(),
        o.pending.len(),
        r.threshold,
        o.exempt.len()
    );
    for (label, list) in [("FAILING", &o.failing), ("pending", &o.pending)] {
        for a in list {
            let _ = writeln!(s, "\n{label} {}", a.id());
            for f in &a.findings {
                let _ = writeln!(
                    s,
                    "  - [{}] {} ({:?})",
                    f.kind.as_str(),
                    f.summary,
                    f.confidence
                );
            }
        }
    }
    if !o.exempt.is_empty() {
        let _ = writeln!(s);
        for e in &o.exempt {
            let _ = writeln!(
                s,
                "exempt {}/{}: {}",
                e.namespace,
                e.name,
                e.reason.describe()
            );
        }
    }
    s
}
