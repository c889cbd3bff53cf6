//! Markdown ready to paste into a pull request or change review: one section
//! per StatefulSet, with what is wrong, the evidence and the diagnosis.

use std::fmt::Write;

use super::Report;
use crate::pipeline::Assessment;
use crate::policy::Decision;

use super::sanitize::{code, markdown as cell};

pub fn render(r: &Report) -> String {
    let o = &r.outcome;
    let mut s = String::new();
    let _ = writeln!(s, "# stsmend report\n");
    let _ = writeln!(
        s,
        "Source: {} · generated {} · threshold {} · stsmend {}{}\n",
        cell(&r.source),
        r.generated_at,
        r.threshold,
        r.version,
        r.mode
            .map(|m| format!(" · mode **{}**", m.as_str()))
            .unwrap_or_default()
    );
    if let Some(why) = &r.incomplete {
        let _ = writeln!(s, "> **Incomplete run**: {}\n", cell(why));
    }
    let _ = writeln!(
        s,
        "| scanned | failing | pending | exempt |\n|---|---|---|---|"
    );
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} |\n",
        o.scanned,
        o.failing.len(),
        o.pending.len(),
        o.exempt.len()
    );
    if !r.policies.is_empty() {
        let list: Vec<String> = r
            .policies
            .iter()
            .map(|p| {
                let mut what = vec![cell(&p.file)];
                if !p.namespaces.is_empty() {
                    what.push(format!("namespaces {}", cell(&p.namespaces.join(", "))));
                }
                if let Some(sel) = &p.selector {
                    what.push(format!("selector {}", code(sel)));
                }
                if let Some(e) = &p.error {
                    what.push(format!("**broken**: {}", cell(&e.to_string())));
                }
                format!("{} ({})", code(&p.name), what.join("; "))
            })
            .collect();
        let _ = writeln!(s, "Policies: {}\n", list.join(", "));
    }
    if o.failing.is_empty() && o.pending.is_empty() {
        let _ = writeln!(s, "No StatefulSet has a failed or stuck rollout.\n");
    }
    for a in &o.failing {
        section(&mut s, a, "failing");
    }
    for a in &o.pending {
        section(
            &mut s,
            a,
            &format!("pending: not yet held for {}", r.threshold),
        );
    }
    if !o.exempt.is_empty() {
        let _ = writeln!(s, "## Exempt by design\n");
        for e in &o.exempt {
            let _ = writeln!(
                s,
                "- {}: {}",
                code(&format!("{}/{}", e.namespace, e.name)),
                e.reason.describe()
            );
        }
        let _ = writeln!(s);
    }
    s
}

fn section(s: &mut String, a: &Assessment, status: &str) {
    let _ = writeln!(s, "## {} ({status})\n", code(&a.id()));
    let _ = writeln!(
        s,
        "generation {} · observed {} · resourceVersion {}\n",
        a.generation,
        a.observed_generation
            .map_or("unset".into(), |g| g.to_string()),
        cell(a.resource_version.as_deref().unwrap_or("unknown"))
    );
    let symptoms: Vec<_> = a.findings.iter().filter(|f| f.kind.is_symptom()).collect();
    let causes: Vec<_> = a.findings.iter().filter(|f| !f.kind.is_symptom()).collect();
    let _ = writeln!(s, "**What is wrong**\n");
    for f in &symptoms {
        let _ = writeln!(s, "- {}", cell(&f.summary));
    }
    let _ = writeln!(s, "\n**Diagnosis**\n");
    if causes.is_empty() {
        let _ = writeln!(s, "No cause identified from the facts read.\n");
    } else {
        let _ = writeln!(s, "| finding | confidence | summary |\n|---|---|---|");
        for f in &causes {
            let _ = writeln!(
                s,
                "| `{}` | {:?} | {} |",
                f.kind.as_str(),
                f.confidence,
                cell(&f.summary)
            );
        }
        let _ = writeln!(s);
    }
    if let Some(d) = &a.plan {
        plan(s, d);
    }
    if let Some(line) = super::gate_line(a) {
        let _ = writeln!(s, "_{}_\n", cell(&line));
    }
    if !a.executed.is_empty() {
        let _ = writeln!(s, "**Carried out**\n");
        let _ = writeln!(s, "| action | status | detail |\n|---|---|---|");
        for e in &a.executed {
            if e.steps.is_empty() {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} |",
                    e.action,
                    e.status.as_str(),
                    cell(&e.detail)
                );
                continue;
            }
            // A remediation of several steps: a row each.
            for (i, step) in e.steps.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "| `{}` {}/{}: {} | {} | {} |",
                    e.action,
                    i + 1,
                    e.steps.len(),
                    step.step,
                    step.status.as_str(),
                    cell(&step.detail)
                );
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "<details><summary>Evidence</summary>\n");
    let _ = writeln!(s, "| object | field | value or message |\n|---|---|---|");
    for f in &a.findings {
        for e in &f.evidence {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                cell(&e.object),
                cell(e.field.as_deref().unwrap_or("event")),
                cell(e.message.as_deref().unwrap_or_default())
            );
        }
    }
    let _ = writeln!(s, "\n</details>\n");
}

pub(super) fn plan(s: &mut String, d: &Decision) {
    let _ = writeln!(
        s,
        "**Plan** (policy {}{}; selected by {})\n",
        code(&d.policy),
        d.rung
            .as_ref()
            .map(|r| format!(", rung {}", code(r)))
            .unwrap_or_default(),
        cell(&d.selected_by)
    );
    if let Some(e) = &d.error {
        let _ = writeln!(
            s,
            "> **Policy error**, no actions for this StatefulSet: {}: {}\n",
            code(&e.location()),
            cell(&format!("{}: {}", e.kind, e.message))
        );
    } else if d.actions.is_empty() {
        let _ = writeln!(s, "No action.\n");
    } else {
        for (i, a) in d.actions.iter().enumerate() {
            let _ = writeln!(s, "{}. {}", i + 1, cell(&a.describe()));
        }
        let _ = writeln!(s);
    }
    if !d.trace.is_empty() {
        let _ = writeln!(s, "<details><summary>Ladder trace</summary>\n");
        let _ = writeln!(s, "| policy | rung | status | why |\n|---|---|---|---|");
        for t in &d.trace {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                code(&t.policy),
                code(&t.rung),
                t.status.as_str(),
                cell(&t.why)
            );
        }
        let _ = writeln!(s, "\n</details>\n");
    }
}
