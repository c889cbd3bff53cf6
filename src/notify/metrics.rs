//! A run's figures in the Prometheus text format, for a Pushgateway.
//!
//! Every series is a gauge of the last run (a batch job's figures are not
//! counters: each push replaces the last). Two groups are pushed: the run's
//! figures under `job`/`instance`, replaced by every run, and
//! `stsmend_last_success_timestamp_seconds` under the same labels plus
//! `outcome="success"`, replaced only by a run that succeeded, so a failing
//! run cannot erase when the agent last worked (docs/metrics.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;

use crate::report::Report;

/// What a run knows about itself besides its report.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    pub duration_seconds: f64,
    /// The run's exit code was 0.
    pub succeeded: bool,
    /// Alerts open in Alertmanager after the run (none configured: `None`).
    pub open_alerts: Option<usize>,
    /// Alert deliveries that failed in this run.
    pub alert_delivery_failures: Option<usize>,
    pub finished_at: Timestamp,
}

struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn one(name: &'static str, help: &'static str, value: f64) -> Self {
        let mut f = Self::new(name, help);
        f.samples.push((Vec::new(), value));
        f
    }

    fn counted<K: Ord>(
        name: &'static str,
        help: &'static str,
        counts: BTreeMap<K, u64>,
        labels: impl Fn(K) -> Vec<(&'static str, String)>,
    ) -> Self {
        let mut f = Self::new(name, help);
        for (key, n) in counts {
            f.samples.push((labels(key), n as f64));
        }
        f
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render(families: &[Family]) -> String {
    let mut s = String::new();
    for f in families {
        let _ = writeln!(s, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(s, "# TYPE {} gauge", f.name);
        for (labels, value) in &f.samples {
            let _ = write!(s, "{}", f.name);
            if !labels.is_empty() {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(s, "{{{}}}", inner.join(","));
            }
            let _ = writeln!(s, " {value}");
        }
    }
    s
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// The run's figures: what every run pushes.
/// `report` is `None` when the run ended before it had one.
pub fn run(report: Option<&Report>, figures: &RunFigures) -> String {
    let mut families = vec![Family::one(
        "stsmend_build_info",
        "The agent's version and mode; always 1.",
        1.0,
    )];
    families[0].samples[0].0 = vec![
        ("version", crate::VERSION.to_string()),
        (
            "mode",
            report
                .and_then(|r| r.mode)
                .map_or("unknown", crate::execution::Mode::as_str)
                .to_string(),
        ),
    ];
    if let Some(report) = report {
        report_families(report, &mut families);
    }
    run_families(figures, &mut families);
    render(&families)
}

/// The figures read from the report.
fn report_families(report: &Report, families: &mut Vec<Family>) {
    let o = &report.outcome;
    let mut findings: BTreeMap<&str, u64> = BTreeMap::new();
    let mut plans: BTreeMap<String, u64> = BTreeMap::new();
    let mut actions: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut holds: BTreeMap<String, u64> = BTreeMap::new();
    for a in &o.failing {
        for f in &a.findings {
            *findings.entry(f.kind.as_str()).or_default() += 1;
        }
        let rung = match &a.plan {
            Some(d) if d.error.is_some() => "policy_error".to_string(),
            Some(d) => d.rung.clone().unwrap_or_else(|| "none".into()),
            None => "none".into(),
        };
        *plans.entry(rung).or_default() += 1;
        for e in &a.executed {
            *actions
                .entry((e.action.clone(), e.status.as_str()))
                .or_default() += 1;
        }
        if let Some(blocked) = a.gate.as_ref().and_then(|g| g.blocked.as_ref()) {
            let guard = serde_json::to_value(blocked)
                .ok()
                .and_then(|v| v["guard"].as_str().map(str::to_string))
                .unwrap_or_else(|| "unknown".into());
            *holds.entry(guard).or_default() += 1;
        }
    }
    families.extend([
        Family::counted(
            "stsmend_run_statefulsets",
            "StatefulSets of the last run: scanned, failing, pending, exempt.",
            BTreeMap::from([
                ("exempt", o.exempt.len() as u64),
                ("failing", o.failing.len() as u64),
                ("pending", o.pending.len() as u64),
                ("scanned", o.scanned as u64),
            ]),
            |k| vec![("status", k.to_string())],
        ),
        Family::counted(
            "stsmend_run_findings",
            "Findings on the last run's failing StatefulSets, by kind.",
            findings,
            |k| vec![("kind", k.to_string())],
        ),
        Family::counted(
            "stsmend_run_plans",
            "Plans of the last run, by the rung that made them.",
            plans,
            |k| vec![("rung", k)],
        ),
        Family::counted(
            "stsmend_run_actions",
            "Actions of the last run, by action and outcome.",
            actions,
            |(action, outcome)| vec![("action", action), ("outcome", outcome.to_string())],
        ),
        Family::counted(
            "stsmend_run_guard_holds",
            "Plans the guards held back in the last run, by guard.",
            holds,
            |k| vec![("guard", k)],
        ),
    ]);
    if let Some(counts) = &report.api_requests {
        let by: BTreeMap<(String, String), u64> = counts
            .by_request
            .iter()
            .map(|(k, n)| {
                let (verb, resource) = k.split_once(' ').unwrap_or((k.as_str(), ""));
                ((verb.to_string(), resource.to_string()), *n)
            })
            .collect();
        families.push(Family::counted(
            "stsmend_run_api_requests",
            "Kubernetes API requests of the last run, by verb and resource.",
            by,
            |(verb, resource)| vec![("verb", verb), ("resource", resource)],
        ));
    }
}

/// The figures that come with or without a report.
fn run_families(figures: &RunFigures, families: &mut Vec<Family>) {
    if let Some(n) = figures.open_alerts {
        families.push(Family::one(
            "stsmend_open_alerts",
            "Alerts (escalations, failed actions) open in Alertmanager after the last run.",
            n as f64,
        ));
    }
    if let Some(n) = figures.alert_delivery_failures {
        families.push(Family::one(
            "stsmend_run_alert_delivery_failures",
            "Alertmanager deliveries that failed in the last run.",
            n as f64,
        ));
    }
    families.push(Family::one(
        "stsmend_run_duration_seconds",
        "How long the last run took.",
        figures.duration_seconds,
    ));
    families.push(Family::one(
        "stsmend_run_success",
        "1 when the last run succeeded (exit code 0), else 0.",
        if figures.succeeded { 1.0 } else { 0.0 },
    ));
    families.push(Family::one(
        "stsmend_last_run_timestamp_seconds",
        "When the last run ended, in seconds since the epoch.",
        seconds(figures.finished_at),
    ));
}

/// What a successful run pushes besides: when it ended.
pub fn success(finished_at: Timestamp) -> String {
    render(&[Family::one(
        "stsmend_last_success_timestamp_seconds",
        "When a run last succeeded, in seconds since the epoch.",
        seconds(finished_at),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_report_figures_as_gauges() {
        let report = crate::report::junit::tests::example("0s");
        let text = run(
            Some(&report),
            &RunFigures {
                duration_seconds: 1.5,
                succeeded: true,
                open_alerts: Some(2),
                alert_delivery_failures: Some(0),
                finished_at: "2026-11-22T10:00:00Z".parse().unwrap(),
            },
        );
        assert!(
            text.contains("# TYPE stsmend_run_findings gauge\n"),
            "{text}"
        );
        let failing = report.outcome.failing.len();
        assert!(
            text.contains(&format!(
                "stsmend_run_statefulsets{{status=\"failing\"}} {failing}\n"
            )),
            "{text}"
        );
        let kind = report.outcome.failing[0].findings[0].kind.as_str();
        assert!(
            text.contains(&format!("stsmend_run_findings{{kind=\"{kind}\"}} ")),
            "{text}"
        );
        assert!(text.contains("stsmend_open_alerts 2\n"), "{text}");
        assert!(
            text.contains("stsmend_run_duration_seconds 1.5\n"),
            "{text}"
        );
        assert!(text.contains("stsmend_run_success 1\n"), "{text}");
        assert!(
            text.contains("stsmend_last_run_timestamp_seconds 1795341600\n"),
            "{text}"
        );
        assert!(!text.contains("last_success"), "{text}");
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} gauge")), "{line}");
        }
    }

    /// The rules, the dashboard and the docs name only series a run pushes.
    #[test]
    fn the_rules_dashboard_and_docs_use_pushed_series() {
        let mut report = crate::report::junit::tests::example("0s");
        report.api_requests = Some(crate::cluster::metrics::Counts {
            total: 1,
            by_request: [("list statefulsets".to_string(), 1)].into(),
        });
        let figures = RunFigures {
            duration_seconds: 1.0,
            succeeded: true,
            open_alerts: Some(0),
            alert_delivery_failures: Some(0),
            finished_at: "2026-11-22T10:00:00Z".parse().unwrap(),
        };
        let pushed = format!(
            "{}{}",
            run(Some(&report), &figures),
            success(figures.finished_at)
        );
        for file in [
            "deploy/prometheus/stsmend-rules.yaml",
            "deploy/prometheus/stsmend-rules.test.yaml",
            "deploy/grafana/stsmend-dashboard.json",
            "docs/metrics.md",
        ] {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file),
            )
            .unwrap();
            let mut names = 0;
            for (i, _) in text.match_indices("stsmend_") {
                let name: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name.ends_with('_') {
                    continue; // a prefix in prose
                }
                names += 1;
                assert!(
                    pushed.contains(&format!("# TYPE {name} gauge")),
                    "{file} names {name}, which no run pushes"
                );
            }
            assert!(names > 3, "{file}: {names} series");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut f = Family::new("x", "h");
        f.samples.push((vec![("a", "q\"\\\nz".into())], 1.0));
        assert_eq!(
            render(&[f]),
            "# HELP x h\n# TYPE x gauge\nx{a=\"q\\\"\\\\\\nz\"} 1\n"
        );
    }

    #[test]
    fn success_is_its_own_family() {
        assert_eq!(
            success("2026-11-22T10:00:00.250Z".parse().unwrap()),
            "# HELP stsmend_last_success_timestamp_seconds When a run last succeeded, in seconds since the epoch.\n# TYPE stsmend_last_success_timestamp_seconds gauge\nstsmend_last_success_timestamp_seconds 1795341600.25\n"
        );
    }
}
