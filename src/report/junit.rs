//! JUnit XML, the one test-report format every CI system displays natively
//! (GitLab's `artifacts:reports:junit`, Jenkins, Azure Pipelines, GitHub
//! actions that annotate test results). A failing StatefulSet is a failed
//! test case, so a change review shows it beside the unit tests.

use std::fmt::Write;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::Report;
use crate::cases::Results;
use crate::error::{Error, Result};
use crate::pipeline::Assessment;

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

fn failure(kind: NonSuccessKind, ty: Option<&str>, message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_message(message);
    if let Some(ty) = ty {
        status.set_type(ty);
    }
    status
}

fn skipped(message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(message);
    status
}

fn case(classname: &str, name: &str, status: TestCaseStatus) -> TestCase {
    let mut case = TestCase::new(name, status);
    case.set_classname(classname);
    case
}

/// The report with one suite, its counts summed by quick-junit as cases are
/// added.
fn to_xml(name: &str, suite: TestSuite) -> Result<String> {
    let mut report = quick_junit::Report::new(name);
    report.add_test_suite(suite);
    report
        .to_string()
        .map_err(|e| Error::encode("JUnit report", e))
}

/// One test case per failing, pending or exempt StatefulSet. A run that
/// finds nothing has one passing case, so CI shows a green test rather than
/// an empty suite (which some systems treat as an error).
pub fn render(r: &Report) -> Result<String> {
    let o = &r.outcome;
    let mut suite = TestSuite::new(format!("stsmend plan: {}", r.source));
    // Set as written rather than through `set_timestamp`: the JUnit schema
    // CI systems validate against has no zone or fraction in it, which
    // quick-junit's format adds.
    suite.extra.insert(
        "timestamp".into(),
        r.generated_at
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
            .into(),
    );
    suite.add_properties([
        Property::new("stsmend.version", r.version),
        Property::new("threshold", r.threshold.to_string()),
        Property::new("scanned", o.scanned.to_string()),
    ]);
    for a in &o.failing {
        let mut status = failure(
            NonSuccessKind::Failure,
            Some(a.findings.first().map_or("failing", |f| f.kind.as_str())),
            &headline(a),
        );
        status.set_description(details(a));
        suite.add_test_case(case(&a.namespace, &a.id(), status));
    }
    for a in &o.pending {
        let message = format!("pending: not yet held for {}: {}", r.threshold, headline(a));
        let mut pending = case(&a.namespace, &a.id(), skipped(&message));
        pending.set_system_out(details(a));
        suite.add_test_case(pending);
    }
    for e in &o.exempt {
        let message = format!("exempt by design: {}", e.reason.describe());
        suite.add_test_case(case(
            &e.namespace,
            &format!("{}/{}", e.namespace, e.name),
            skipped(&message),
        ));
    }
    if let Some(why) = &r.incomplete {
        // Not a pass: what was not read was not judged.
        suite.add_test_case(case(
            "stsmend",
            "run",
            failure(NonSuccessKind::Error, Some("incomplete"), why),
        ));
    } else if o.failing.is_empty() {
        suite.add_test_case(case(
            "stsmend",
            &format!("no failed rollout among {} StatefulSet(s)", o.scanned),
            TestCaseStatus::success(),
        ));
    }
    to_xml("stsmend plan", suite)
}

/// `stsmend policy test --output junit`: one test case per expectation,
/// named by its case directory and StatefulSet.
pub fn policy_tests(results: &Results) -> Result<String> {
    let mut suite = TestSuite::new("stsmend policy test");
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
        let status = if r.passed {
            TestCaseStatus::success()
        } else {
            let mut status = failure(NonSuccessKind::Failure, None, &r.problems.join("; "));
            status.set_description(r.problems.join("\n"));
            status
        };
        let mut case = case(&r.case, &r.stateful_set, status);
        case.set_system_out(out);
        suite.add_test_case(case);
    }
    to_xml("stsmend policy test", suite)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An element's name and attributes.
    pub(crate) type Element = (String, Vec<(String, String)>);

    /// The elements of a JUnit report in document order, read by quick-xml
    /// with its checks on. What a reader of events does not check is
    /// checked here, since a CI system would refuse the file: the XML
    /// declaration first, one root element, only the predefined entities, no
    /// control characters.
    pub(crate) fn parse(xml: &str) -> Result<Vec<Element>, String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        reader.config_mut().enable_all_checks(true);
        let mut elements = Vec::new();
        let (mut depth, mut roots, mut first) = (0usize, 0, true);
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
            if std::mem::take(&mut first) && !matches!(event, Event::Decl(_)) {
                return Err("no XML declaration".into());
            }
            match event {
                Event::Decl(_) | Event::Comment(_) => {}
                Event::Start(e) | Event::Empty(e) if depth == 0 && roots > 0 => {
                    return Err(format!("a second root {:?}", e.name()));
                }
                Event::Start(ref e) | Event::Empty(ref e) => {
                    roots += usize::from(depth == 0);
                    let mut attrs = Vec::new();
                    for a in e.attributes() {
                        let a = a.map_err(|e| e.to_string())?;
                        let value = a
                            .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                            .map_err(|e| e.to_string())?;
                        check_chars(&value)?;
                        attrs.push((
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            value.into_owned(),
                        ));
                    }
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    elements.push((name, attrs));
                    depth += usize::from(matches!(event, Event::Start(_)));
                }
                Event::End(_) => depth -= 1,
                Event::Text(t) => {
                    let text = t.xml10_content().map_err(|e| e.to_string())?;
                    if depth == 0 && !text.trim().is_empty() {
                        return Err("text outside the root element".into());
                    }
                    check_chars(&text)?;
                }
                Event::GeneralRef(r) => {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    if !["amp", "lt", "gt", "quot", "apos"].contains(&name.as_ref()) {
                        return Err(format!("unknown entity &{name};"));
                    }
                }
                Event::Eof => break,
                other => return Err(format!("unexpected {other:?}")),
            }
        }
        if depth != 0 || roots != 1 {
            return Err(format!("unbalanced: {depth} open, {roots} root(s)"));
        }
        Ok(elements)
    }

    fn check_chars(text: &str) -> Result<(), String> {
        if text
            .chars()
            .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err("a control character".into());
        }
        Ok(())
    }

    /// The bundled example (five broken rollouts) judged as failing, and
    /// once more as pending, with the built-in ladder's plans.
    pub(crate) fn example(threshold: &str) -> Report {
        let path = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/failing-rollout.yaml"
        ));
        let inv = crate::source::files::load(std::slice::from_ref(&path)).unwrap();
        let config = crate::config::Config {
            threshold: threshold.parse().unwrap(),
            ..Default::default()
        };
        let now = crate::snapshot::taken_at(&inv).unwrap().unwrap();
        let settings =
            crate::pipeline::Settings::new(&config, crate::scope::Scope::default(), now).unwrap();
        let policies = crate::policy::Policies::builtin();
        let outcome = crate::pipeline::run(&inv, None, &settings, &policies).outcome;
        Report {
            schema: super::super::SCHEMA,
            version: crate::VERSION,
            generated_at: now,
            source: format!("files {}", path.display()),
            threshold: config.threshold,
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
        let xml = render(&report).unwrap();
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
        let xml = render(&report).unwrap();
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
        let xml = policy_tests(&results).unwrap();
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
    fn text_keeps_markup_out_and_drops_what_xml_cannot_hold() {
        use crate::cases::{Results, Row};
        let results = Results {
            rows: vec![Row {
                case: "a <b> & \"c\" 'd'".into(),
                description: "a <b> & \"c\" 'd' \u{1b}[31mred\u{1b}[0m\u{1}\n".into(),
                stateful_set: "shop/db".into(),
                policy: "ladder".into(),
                rung: "rollback".into(),
                passed: true,
                problems: vec![],
                decision: None,
            }],
        };
        let xml = policy_tests(&results).unwrap();
        let elements = parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let case = elements.iter().find(|e| e.0 == "testcase").unwrap();
        assert_eq!(attr(case, "classname"), Some("a <b> & \"c\" 'd'"));
        // A terminal's colours are dropped whole, not left as `[31m`.
        assert!(
            xml.contains("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; red\n"),
            "{xml}"
        );
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
            "<a>&nbsp;</a>",
            "x<a/>",
        ] {
            assert!(parse(&format!("{decl}{bad}")).is_err(), "{bad}");
        }
        assert!(parse(&format!("{decl}<a x=\"&lt;\"><b/>t&amp;</a>\n")).is_ok());
    }
}
