//! Escalations reach people: the agent posts them to a real Alertmanager,
//! resolves them once the StatefulSet heals, and pushes its figures to a
//! real Pushgateway, which a real Prometheus scrapes and evaluates the
//! shipped rules on; an unreachable or broken Alertmanager costs the run
//! nothing else. Alertmanager, the Pushgateway and Prometheus are Debian's
//! (scripts/prometheus.sh installs them), started on loopback ports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ROLLOUT;
use crate::world::{Run, World};
use stsmend_e2e::wait_until;

/// Alertmanager and a Pushgateway on loopback, each in its own directory;
/// both are killed when this drops.
struct Prometheus {
    alertmanager: String,
    pushgateway: String,
    dir: PathBuf,
    _children: Vec<tokio::process::Child>,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The directory of the `alertmanager` and `pushgateway` binaries, from
/// the script that installs them (a no-op once installed).
fn binaries() -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/prometheus.sh"
        ))
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/prometheus.sh could not install prometheus-alertmanager and \
         prometheus-pushgateway (exit {:?})",
        out.status.code()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        text.lines()
            .last()
            .expect("the script prints its bin directory")
            .trim(),
    )
}

impl Prometheus {
    async fn start() -> Prometheus {
        let bin = binaries();
        let dir = std::env::temp_dir().join(format!(
            "stsmend-alerts-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("am-data")).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n",
        )
        .unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let (am_port, pg_port) = (free_port(), free_port());
        let alertmanager = tokio::process::Command::new(bin.join("alertmanager"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            // One instance: no gossip port.
            .arg("--cluster.listen-address=")
            .stdout(log("alertmanager.log"))
            .stderr(log("alertmanager.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("alertmanager starts");
        let pushgateway = tokio::process::Command::new(bin.join("pushgateway"))
            .arg(format!("--web.listen-address=127.0.0.1:{pg_port}"))
            .stdout(log("pushgateway.log"))
            .stderr(log("pushgateway.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("pushgateway starts");
        let p = Prometheus {
            alertmanager: format!("http://127.0.0.1:{am_port}"),
            pushgateway: format!("http://127.0.0.1:{pg_port}"),
            dir,
            _children: vec![alertmanager, pushgateway],
        };
        for base in [&p.alertmanager, &p.pushgateway] {
            wait_until(format!("{base} ready"), Duration::from_secs(30), || async {
                match get(&format!("{base}/-/ready")).await {
                    Ok((200, _)) => Ok(()),
                    Ok((status, body)) => Err(format!("HTTP {status}: {body}")),
                    Err(e) => Err(e),
                }
            })
            .await
            .unwrap();
        }
        p
    }

    /// Starts a Prometheus that scrapes the Pushgateway (`honor_labels`,
    /// as docs/operations.md says) every second and evaluates the shipped
    /// rules; returns its URL once every rule has been evaluated cleanly.
    async fn start_prometheus(&mut self) -> String {
        let bin = binaries();
        let port = free_port();
        let config = self.dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [{}/deploy/prometheus/stsmend-rules.yaml]\n\
                 scrape_configs:\n\
                 - job_name: pushgateway\n  honor_labels: true\n  \
                 static_configs: [{{targets: ['{}']}}]\n",
                env!("CARGO_MANIFEST_DIR"),
                self.pushgateway.trim_start_matches("http://"),
            ),
        )
        .unwrap();
        let log = |name: &str| std::fs::File::create(self.dir.join(name)).unwrap();
        let child = tokio::process::Command::new(bin.join("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log("prometheus.log"))
            .stderr(log("prometheus.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        self._children.push(child);
        let url = format!("http://127.0.0.1:{port}");
        wait_until("the rules evaluated", Duration::from_secs(60), || async {
            let (_, body) = get(&format!("{url}/api/v1/rules")).await?;
            let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let rules: Vec<&Value> = v["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            let health: Vec<&str> = rules.iter().filter_map(|r| r["health"].as_str()).collect();
            if health.len() == 5 && health.iter().all(|h| *h == "ok") {
                Ok(())
            } else {
                Err(format!("rule health {health:?}"))
            }
        })
        .await
        .unwrap();
        url
    }

    /// The active alerts in Alertmanager.
    async fn alerts(&self) -> Vec<Value> {
        let (status, body) = get(&format!("{}/api/v2/alerts", self.alertmanager))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    }

    /// The samples the Pushgateway exposes for job `stsmend`: name and
    /// labels (job and instance left out) to value.
    async fn pushed(&self) -> BTreeMap<String, f64> {
        let (status, body) = get(&format!("{}/metrics", self.pushgateway)).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let mut samples = BTreeMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels: Vec<&str> = split_labels(labels);
            if !labels.contains(&"job=\"stsmend\"") || !labels.contains(&"instance=\"e2e\"") {
                continue;
            }
            let own: Vec<&str> = labels
                .into_iter()
                .filter(|l| !l.starts_with("job=") && !l.starts_with("instance="))
                .collect();
            samples.insert(
                format!("{name}{{{}}}", own.join(",")),
                value.parse().unwrap(),
            );
        }
        samples
    }
}

/// `a="x",b="y, z"` into `a="x"` and `b="y, z"`.
fn split_labels(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Waits until the instant query `query` on the Prometheus at `url` has
/// exactly one series, of value `value`.
async fn query_is(url: &str, query: &str, value: &str) {
    let encoded: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    wait_until(
        format!("{query} == {value}"),
        Duration::from_secs(60),
        || {
            let path = format!("{url}/api/v1/query?query={encoded}");
            async move {
                let (_, body) = get(&path).await?;
                let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                match v["data"]["result"].as_array().map(Vec::as_slice) {
                    Some([one]) if one["value"][1] == value => Ok(()),
                    _ => Err(body),
                }
            }
        },
    )
    .await
    .unwrap();
}

/// A plain HTTP/1.0 GET on loopback: status and body.
async fn get(url: &str) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("not http")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut sock = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    sock.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    sock.read_to_end(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// Breaks `db` as scenario 5 does: a scale-up a pods quota rejects, which
/// the ladder escalates.
async fn quota_blocked_scale_up(w: &World) {
    w.healthy_set("db", 2, "OrderedReady").await;
    w.apply("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: pods}\nspec:\n  hard: {pods: \"2\"}\n")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.patch("db", json!({"spec": {"replicas": 3}})).await;
    w.event("db", "FailedCreate", ROLLOUT).await;
}

/// The agent's config: Alertmanager at `alertmanager`, the Pushgateway
/// under instance `e2e`.
fn config(w: &World, alertmanager: &str, pushgateway: &str) -> String {
    w.config(&format!(
        "alertmanager:\n  url: {alertmanager}\n  timeout: 5s\n  labels: {{team: db}}\nmetrics:\n  pushgateway:\n    url: {pushgateway}\n    instance: e2e\n"
    ))
    .to_str()
    .unwrap()
    .to_string()
}

fn ours<'a>(alerts: &'a [Value], name: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["labels"]["statefulset"] == name)
        .collect()
}

/// Asserts the Pushgateway holds the figures of `run`'s report.
#[track_caller]
fn assert_pushed_matches(pushed: &BTreeMap<String, f64>, run: &Run) {
    let r = &run.report;
    let failing = r["failing"].as_array().unwrap();
    let value = |k: &str| pushed.get(k).copied();
    assert_eq!(
        value("stsmend_run_statefulsets{status=\"failing\"}"),
        Some(failing.len() as f64),
        "{pushed:#?}"
    );
    assert_eq!(
        value("stsmend_run_statefulsets{status=\"scanned\"}"),
        r["scanned"].as_f64(),
        "{pushed:#?}"
    );
    let mut findings: BTreeMap<String, f64> = BTreeMap::new();
    let mut actions: BTreeMap<String, f64> = BTreeMap::new();
    for a in failing {
        for f in a["findings"].as_array().unwrap() {
            *findings
                .entry(format!("stsmend_run_findings{{kind={}}}", f["kind"]))
                .or_default() += 1.0;
        }
        for e in a["executed"].as_array().into_iter().flatten() {
            *actions
                .entry(format!(
                    "stsmend_run_actions{{action={},outcome={}}}",
                    e["action"], e["status"]
                ))
                .or_default() += 1.0;
        }
    }
    let family = |prefix: &str| -> BTreeMap<String, f64> {
        pushed
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(family("stsmend_run_findings{"), findings);
    assert_eq!(family("stsmend_run_actions{"), actions);
    let requests: f64 = family("stsmend_run_api_requests{").values().sum();
    assert_eq!(
        Some(requests),
        r["apiRequests"]["total"].as_f64(),
        "{pushed:#?}"
    );
    assert_eq!(
        value("stsmend_run_success{}"),
        Some(if run.code == 0 { 1.0 } else { 0.0 })
    );
}

/// An escalation fires in Alertmanager with the runbooks' routing labels
/// and the findings; while the set still fails the next run keeps it
/// firing (same start, later end); once a person fixes the set the next
/// run resolves it. Each run's figures in the Pushgateway match its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_fires_in_alertmanager_and_resolves_after_the_heal() {
    let mut prom = Prometheus::start().await;
    let w = World::start_sim().await;
    let id = w.id("db");
    quota_blocked_scale_up(&w).await;
    let config = config(&w, &prom.alertmanager, &prom.pushgateway);

    let first = w.agent(&["run", "--apply", "--config", &config]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.executed(&id), [("escalate".into(), "done".into())]);
    assert_eq!(
        first.report["alerts"]["delivered"], true,
        "{:#}",
        first.report
    );
    assert_eq!(first.report["alerts"]["firing"], 1);
    let alerts = prom.alerts().await;
    let fired = ours(&alerts, "db");
    assert_eq!(fired.len(), 1, "{alerts:#?}");
    let alert = fired[0];
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "StsmendEscalation");
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["statefulset"], "db");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["team"], "db");
    let kinds: Vec<String> = first
        .findings(&id)
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert!(kinds.contains(&"quota_exhausted".to_string()), "{kinds:?}");
    let mut sorted = kinds.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(labels["findings"], sorted.join(","));
    let notes = &alert["annotations"];
    assert!(
        notes["summary"]
            .as_str()
            .unwrap()
            .starts_with("StatefulSet shop/db needs a person"),
        "{notes:#}"
    );
    assert!(
        notes["plan"].as_str().unwrap().contains("escalate"),
        "{notes:#}"
    );
    assert!(
        notes["cause"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("quota"),
        "{notes:#}"
    );
    assert!(
        notes["runbook_url"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{notes:#}"
    );
    assert_eq!(alert["status"]["state"], "active", "{alert:#}");
    let pushed = prom.pushed().await;
    assert_pushed_matches(&pushed, &first);
    assert_eq!(
        pushed.get("stsmend_open_alerts{}"),
        Some(&1.0),
        "{pushed:#?}"
    );
    let success = pushed
        .get("stsmend_last_success_timestamp_seconds{outcome=\"success\"}")
        .copied()
        .expect("a successful run pushes its time");
    assert!(success > 1.7e9, "{success}");
    // Prometheus scrapes the pushed figures under the pushed job and
    // instance, and the shipped rules evaluate on them.
    let prometheus = prom.start_prometheus().await;
    query_is(
        &prometheus,
        r#"stsmend_open_alerts{job="stsmend", instance="e2e"}"#,
        "1",
    )
    .await;
    query_is(
        &prometheus,
        r#"count(stsmend_last_success_timestamp_seconds{job="stsmend", instance="e2e", outcome="success"})"#,
        "1",
    )
    .await;

    // Still failing: the same alert, refreshed.
    let second = w.agent(&["run", "--apply", "--config", &config]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let alerts = prom.alerts().await;
    let again = ours(&alerts, "db");
    assert_eq!(again.len(), 1, "{alerts:#?}");
    assert_eq!(again[0]["labels"], alert["labels"]);
    assert_eq!(again[0]["startsAt"], alert["startsAt"]);
    let ends = |a: &Value| {
        a["endsAt"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    assert!(
        ends(again[0]) >= ends(alert),
        "{:#} then {:#}",
        alert,
        again[0]
    );

    // A person lets the scale-up go: the set heals, the alert resolves.
    w.patch("db", json!({"spec": {"replicas": 2}})).await;
    w.healthy("db", ROLLOUT).await;
    let healed = w.agent(&["run", "--apply", "--config", &config]).await;
    assert_eq!(healed.code, 0, "{}", healed.stderr);
    assert!(healed.failing().is_empty(), "{:#}", healed.report);
    assert_eq!(
        healed.report["alerts"]["resolved"], 1,
        "{:#}",
        healed.report
    );
    assert_eq!(healed.report["alerts"]["delivered"], true);
    let alerts = prom.alerts().await;
    assert!(ours(&alerts, "db").is_empty(), "resolved: {alerts:#?}");
    let pushed = prom.pushed().await;
    assert_pushed_matches(&pushed, &healed);
    assert_eq!(
        pushed.get("stsmend_open_alerts{}"),
        Some(&0.0),
        "{pushed:#?}"
    );
    query_is(
        &prometheus,
        r#"stsmend_open_alerts{job="stsmend", instance="e2e"}"#,
        "0",
    )
    .await;
    // Nothing left to resolve: the next run sends nothing.
    let quiet = w.agent(&["run", "--apply", "--config", &config]).await;
    assert_eq!(quiet.report["alerts"]["resolved"], 0, "{:#}", quiet.report);
    assert_eq!(quiet.report["alerts"]["firing"], 0);
}

/// Alertmanager unreachable (nothing listens), then broken (a server that
/// answers 404): the run still escalates with an Event, saves its state
/// and exits 0, reports and pushes the failed delivery; the alert is kept
/// open in the state, so once Alertmanager answers the next run delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_alertmanager_leaves_the_run_intact() {
    let prom = Prometheus::start().await;
    let w = World::start_sim().await;
    let id = w.id("db");
    quota_blocked_scale_up(&w).await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    // The Pushgateway has no Alertmanager API: 404.
    for (url, error) in [(&nowhere, "refused"), (&prom.pushgateway, "HTTP 404")] {
        let config = config(&w, url, &prom.pushgateway);
        let run = w.agent(&["run", "--apply", "--config", &config]).await;
        assert_eq!(
            run.code, 0,
            "delivery failures are not fatal: {}",
            run.stderr
        );
        assert_eq!(run.executed(&id), [("escalate".into(), "done".into())]);
        assert_eq!(run.report["alerts"]["delivered"], false, "{:#}", run.report);
        let text = run.report["alerts"]["error"].as_str().unwrap();
        assert!(text.contains(url.as_str()), "{text}");
        assert!(
            text.to_lowercase().contains(&error.to_lowercase()),
            "{text}"
        );
        assert!(
            run.stderr.contains("alerts not delivered"),
            "{}",
            run.stderr
        );
        let pushed = prom.pushed().await;
        assert_pushed_matches(&pushed, &run);
        assert_eq!(
            pushed.get("stsmend_run_alert_delivery_failures{}"),
            Some(&1.0),
            "{pushed:#?}"
        );
    }
    assert_eq!(
        w.agent_event_counts("db").await,
        [("StsmendEscalated".to_string(), 2)],
        "the Event is written all the same, once, counted up in the second run"
    );
    let state: Api<ConfigMap> = Api::namespaced(w.client.clone(), "stsmend");
    let saved = state.get("stsmend-state").await.unwrap();
    let record: Value =
        serde_json::from_str(&saved.data.unwrap()["shop.db"]).expect("the state was saved");
    assert_eq!(record["failingRuns"], 2, "{record:#}");
    assert_eq!(
        record["alert"]["labels"]["alertname"], "StsmendEscalation",
        "the undelivered alert is kept: {record:#}"
    );

    let config = config(&w, &prom.alertmanager, &prom.pushgateway);
    let run = w.agent(&["run", "--apply", "--config", &config]).await;
    assert_eq!(run.report["alerts"]["delivered"], true, "{:#}", run.report);
    let alerts = prom.alerts().await;
    assert_eq!(ours(&alerts, "db").len(), 1, "{alerts:#?}");
    let pushed = prom.pushed().await;
    assert_eq!(
        pushed.get("stsmend_run_alert_delivery_failures{}"),
        Some(&0.0),
        "{pushed:#?}"
    );
}
