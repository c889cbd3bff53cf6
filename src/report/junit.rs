//! JUnit XML, the one test-report format every CI system displays natively
//! (GitLab's `artifacts:reports:junit`, Jenkins, Azure Pipelines, GitHub
//! actions that annotate test results). A failing StatefulSet is a failed
//! test case, so a change review shows it beside the unit tests.

use std::fmt::Write;

use super::Report;
use crate::cases::Results;
use crate::pipeline::Assessment;

/// Escapes text for an XML attribute or element. Characters XML 1.0 cannot
/// carry at all (most C0 controls) are dropped: a container's last log line
/// or an event message may hold them, and one would make the file unreadable.
pub(crate) fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            '\t' | '\n' | '\r' => s.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => s.push(c),
        }
    }
    s
}

/// The findings and plan of one StatefulSet, as the body of its test case.
fn details(a: &Assessment) -> String {
    let mut s = String::new();
    for f in &a.findings {
        let _ = writeln!(
            s,
            "[{}] {} ({:?})",
            f.kind.as_str(),
            f.summary,
            f.confidence
        );
        for e in &f.evidence {
            let _ = writeln!(
                s,
                "    {} {}: {}",
                e.object,
                e.field.as_deref().unwrap_or("event"),
                e.message.as_deref().unwrap_or_default()
            );
        }
    }
    if let Some(d) = &a.plan {
        let _ = writeln!(
            s,
            "plan by policy {}{} (selected by {}):",
            d.policy,
            d.rung
                .as_ref()
                .map(|r| format!(", rung {r}"))
                .unwrap_or_default(),
            d.selected_by
        );
        if let Some(e) = &d.error {
            let _ = writeln!(s, "  policy error, no actions: {e}");
        } else if d.actions.is_empty() {
            let _ = writeln!(s, "  (no action)");
        }
        for (i, action) in d.actions.iter().enumerate() {
            let _ = writeln!(s, "  {}. {}", i + 1, action.describe());
        }
    }
    if let Some(line) = super::gate_line(a) {
        let _ = writeln!(s, "{line}");
    }
    for e in &a.executed {
        let _ = writeln!(s, "{} {}: {}", e.action, e.status.as_str(), e.detail);
    }
    s
}

/// The first symptom's summary: what a CI system shows on one line.
fn headline(a: &Assessment) -> String {
    a.findings
        .first()
        .map(|f| f.summary.clone())
        .unwrap_or_else(|| "failed rollout".to_string())
}

/// One test case per failing, pending or exempt StatefulSet. A run that
/// finds nothing has one passing case, so CI shows a green test rather than
/// an empty suite (which some systems treat as an error).
pub fn render(r: &Report) -> String {
    let o = &r.outcome;
    let mut cases = String::new();
    let mut tests = 0;
    for a in &o.failing {
        tests += 1;
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}\">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
            escape(&a.namespace),
            escape(&a.id()),
            escape(a.findings.first().map_or("failing", |f| f.kind.as_str())),
            escape(&headline(a)),
            escape(&details(a))
        );
    }
    for a in &o.pending {
        tests += 1;
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}\">\n      <skipped message=\"{}\"/>\n      <system-out>{}</system-out>\n    </testcase>",
            escape(&a.namespace),
            escape(&a.id()),
            escape(&format!(
                "pending: not yet held for {}: {}",
                r.threshold,
                headline(a)
            )),
            escape(&details(a))
        );
    }
    for e in &o.exempt {
        tests += 1;
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}/{}\">\n      <skipped message=\"{}\"/>\n    </testcase>",
            escape(&e.namespace),
            escape(&e.namespace),
            escape(&e.name),
            escape(&format!("exempt by design: {}", e.reason.describe()))
        );
    }
    let errors = usize::from(r.incomplete.is_some());
    if let Some(why) = &r.incomplete {
        // Not a pass: what was not read was not judged.
        tests += 1;
        let _ = writeln!(
            cases,
            "    <testcase classname=\"stsmend\" name=\"run\">\n      <error type=\"incomplete\" message=\"{}\"/>\n    </testcase>",
            escape(why)
        );
    } else if o.failing.is_empty() {
        tests += 1;
        let _ = writeln!(
            cases,
            "    <testcase classname=\"stsmend\" name=\"no failed rollout among {} StatefulSet(s)\"/>",
            o.scanned
        );
    }
    let skipped = o.pending.len() + o.exempt.len();
    let mut s = String::new();
    let _ = writeln!(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        s,
        "<testsuites name=\"stsmend plan\" tests=\"{tests}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{skipped}\">",
        o.failing.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"stsmend plan: {}\" tests=\"{tests}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{skipped}\" timestamp=\"{}\">",
        escape(&r.source),
        o.failing.len(),
        r.generated_at.strftime("%Y-%m-%dT%H:%M:%S")
    );
    let _ = writeln!(s, "    <properties>");
    for (name, value) in [
        ("stsmend.version", r.version.to_string()),
        ("threshold", r.threshold.to_string()),
        ("scanned", o.scanned.to_string()),
    ] {
        let _ = writeln!(
            s,
            "      <property name=\"{name}\" value=\"{}\"/>",
            escape(&value)
        );
    }
    let _ = writeln!(s, "    </properties>");
    s.push_str(&cases);
    let _ = writeln!(s, "  </testsuite>\n</testsuites>");
    s
}

/// `stsmend policy test --output junit`: one test case per expectation,
/// named by its case directory and StatefulSet.
pub fn policy_tests(results: &Results) -> String {
    let mut s = String::new();
    let (tests, failures) = (results.rows.len(), results.failed());
    let _ = writeln!(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        s,
        "<testsuites name=\"stsmend policy test\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">"
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"stsmend policy test\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">"
    );
    for r in &results.rows {
        let mut out = String::new();
        if !r.description.is_empty() {
            let _ = writeln!(out, "{}", r.description);
        }
        let _ = writeln!(out, "policy {} rung {}", r.policy, r.rung);
        if let Some(d) = &r.decision {
            for a in &d.actions {
                let _ = writeln!(out, "  {}", a.describe());
            }
            if let Some(e) = &d.error {
                let _ = writeln!(out, "  error: {e}");
            }
            for t in &d.trace {
                let _ = writeln!(
                    out,
                    "  {}/{}: {}: {}",
                    t.policy,
                    t.rung,
                    t.status.as_str(),
                    t.why
                );
            }
        }
        let _ = write!(
            s,
            "    <testcase classname=\"{}\" name=\"{}\">",
            escape(&r.case),
            escape(&r.stateful_set)
        );
        if !r.passed {
            let _ = write!(
                s,
                "\n      <failure message=\"{}\">{}</failure>",
                escape(&r.problems.join("; ")),
                escape(&r.problems.join("\n"))
            );
        }
        let _ = writeln!(
            s,
            "\n      <system-out>{}</system-out>\n    </testcase>",
            escape(&out)
        );
    }
    let _ = writeln!(s, "  </testsuite>\n</testsuites>");
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A strict enough XML reader for what these renderers emit: elements
    /// nest and close in order, attributes are quoted, entities are the five
    /// predefined ones. Returns (element name, attributes, text) in order.
    /// An element's name and attributes.
    pub(crate) type Element = (String, Vec<(String, String)>);

    pub(crate) fn parse(xml: &str) -> Result<Vec<Element>, String> {
        let body = xml
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .ok_or("no XML declaration")?;
        let mut stack: Vec<String> = Vec::new();
        let mut elements = Vec::new();
        let mut rest = body;
        let mut roots = 0;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open])?;
            if stack.is_empty() && !rest[..open].trim().is_empty() {
                return Err("text outside the root element".into());
            }
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(top) if top == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, mut attrs_text) = tag.split_once(' ').unwrap_or((tag, ""));
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '-') {
                return Err(format!("bad element name {name:?}"));
            }
            let mut attrs = Vec::new();
            loop {
                attrs_text = attrs_text.trim_start();
                if attrs_text.is_empty() {
                    break;
                }
                let (key, after) = attrs_text.split_once("=\"").ok_or("unquoted attribute")?;
                let end = after.find('"').ok_or("unterminated attribute")?;
                check_text(&after[..end])?;
                if attrs.iter().any(|(k, _)| k == key) {
                    return Err(format!("attribute {key} twice"));
                }
                attrs.push((key.to_string(), unescape(&after[..end])));
                attrs_text = &after[end + 1..];
            }
            if stack.is_empty() {
                roots += 1;
            }
            elements.push((name.to_string(), attrs));
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        if !rest.trim().is_empty() || !stack.is_empty() || roots != 1 {
            return Err(format!("unbalanced: open {stack:?}, {roots} root(s)"));
        }
        Ok(elements)
    }

    fn check_text(text: &str) -> Result<(), String> {
        if text.contains('<') {
            return Err("a raw < in text".into());
        }
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            let end = rest[amp..].find(';').ok_or("a raw & in text")? + amp;
            if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&&rest[amp..=end]) {
                return Err(format!("unknown entity {}", &rest[amp..=end]));
            }
            rest = &rest[end + 1..];
        }
        if text
            .chars()
            .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err("a control character".into());
        }
        Ok(())
    }

    fn unescape(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }

    /// The bundled example (five broken rollouts) judged as failing, and
    /// once more as pending, with the built-in ladder's plans.
    pub(crate) fn example(threshold: &str) -> Report {
        let path = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/failing-rollout.yaml"
        ));
        let inv = crate::source::files::load(std::slice::from_ref(&path)).unwrap();
        let config = crate::config::Config::default();
        let opts = crate::pipeline::Options {
            now: crate::snapshot::taken_at(&inv).unwrap().unwrap(),
            threshold: threshold.parse().unwrap(),
            scope: crate::scope::Scope::default(),
            node_groups: Vec::new(),
            migration_annotations: config.migration_annotations.clone(),
        };
        let policies = crate::policy::Policies::builtin();
        let mut outcome = crate::pipeline::evaluate(&inv, None, &opts);
        crate::pipeline::decide(
            &mut outcome,
            &policies,
            &opts,
            &crate::pipeline::DecideOptions {
                rollback_unsafe_annotations: config.rollback_unsafe_annotations.clone(),
                limits: config.limits.clone(),
            },
        );
        Report {
            schema: super::super::SCHEMA,
            version: crate::VERSION,
            generated_at: opts.now,
            source: format!("files {}", path.display()),
            threshold: opts.threshold,
            mode: None,
            policies: policies.infos(),
            outcome,
            skipped_kinds: Default::default(),
            api_requests: None,
            alerts: None,
            incomplete: None,
        }
    }

    #[test]
    fn plan_report_has_one_failed_case_per_failing_statefulset() {
        let report = example("0s");
        let failing = report.outcome.failing.len();
        assert!(failing >= 2, "the example has broken rollouts");
        let xml = render(&report);
        let elements = parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let cases: Vec<_> = elements.iter().filter(|e| e.0 == "testcase").collect();
        let failures: Vec<_> = elements.iter().filter(|e| e.0 == "failure").collect();
        assert_eq!(failures.len(), failing);
        assert_eq!(
            cases.len(),
            failing + report.outcome.pending.len() + report.outcome.exempt.len()
        );
        let suite = elements.iter().find(|e| e.0 == "testsuite").unwrap();
        assert_eq!(attr(suite, "failures"), Some(failing.to_string().as_str()));
        assert_eq!(attr(suite, "tests"), Some(cases.len().to_string().as_str()));
        for a in &report.outcome.failing {
            assert!(
                cases
                    .iter()
                    .any(|c| attr(c, "name") == Some(a.id().as_str()))
            );
        }
        // The body carries the diagnosis and the plan, not just a headline.
        assert!(xml.contains("plan by policy ladder"), "{xml}");
        assert!(
            failures
                .iter()
                .all(|f| attr(f, "type").is_some_and(|t| !t.is_empty()))
        );
    }

    #[test]
    fn pending_statefulsets_are_skipped_and_a_clean_run_passes() {
        let report = example("10000h");
        assert!(report.outcome.failing.is_empty());
        assert!(!report.outcome.pending.is_empty());
        let xml = render(&report);
        let elements = parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert!(!elements.iter().any(|e| e.0 == "failure"));
        let skipped = elements.iter().filter(|e| e.0 == "skipped").count();
        assert_eq!(
            skipped,
            report.outcome.pending.len() + report.outcome.exempt.len()
        );
        assert!(elements.iter().any(|e| e.0 == "testcase"
            && attr(e, "name").is_some_and(|n| n.starts_with("no failed rollout"))));
    }

    #[test]
    fn policy_tests_render_one_case_per_row_with_failures() {
        use crate::cases::{Results, Row};
        let row = |case: &str, passed: bool| Row {
            case: case.into(),
            description: "a <b> & c".into(),
            stateful_set: "shop/db".into(),
            policy: "ladder".into(),
            rung: "rollback".into(),
            passed,
            problems: if passed {
                vec![]
            } else {
                vec!["rung: expected rollback, got escalate".into()]
            },
            decision: None,
        };
        let results = Results {
            rows: vec![row("ladder/bad-image", true), row("ladder/crash", false)],
        };
        let xml = policy_tests(&results);
        let elements = parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let cases: Vec<_> = elements.iter().filter(|e| e.0 == "testcase").collect();
        assert_eq!(cases.len(), 2);
        assert_eq!(attr(cases[1], "classname"), Some("ladder/crash"));
        let failures: Vec<_> = elements.iter().filter(|e| e.0 == "failure").collect();
        assert_eq!(failures.len(), 1);
        assert_eq!(
            attr(failures[0], "message"),
            Some("rung: expected rollback, got escalate")
        );
        let suite = elements.iter().find(|e| e.0 == "testsuite").unwrap();
        assert_eq!(attr(suite, "failures"), Some("1"));
    }

    pub(crate) fn attr<'a>(e: &'a Element, key: &str) -> Option<&'a str> {
        e.1.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn escape_keeps_markup_out_and_drops_what_xml_cannot_hold() {
        let text = "a <b> & \"c\" 'd'\u{1b}[31m\tok\n";
        let escaped = escape(text);
        assert_eq!(
            escaped,
            "a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;[31m\tok\n"
        );
        assert_eq!(unescape(&escaped), "a <b> & \"c\" 'd'[31m\tok\n");
    }

    #[test]
    fn the_checker_rejects_malformed_xml() {
        let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
        for bad in [
            "<a><b></a></b>",
            "<a>x & y</a>",
            "<a x=\"1\" x=\"2\"/>",
            "<a x=1/>",
            "<a/><b/>",
            "<a>",
            "<a>\u{1}</a>",
        ] {
            assert!(parse(&format!("{decl}{bad}")).is_err(), "{bad}");
        }
        assert!(parse(&format!("{decl}<a x=\"&lt;\"><b/>t&amp;</a>\n")).is_ok());
    }
}
