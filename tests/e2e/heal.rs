//! Scenario 20: time to heal on the shipped defaults. Only `for` is
//! shortened (10m to 20s) and the CronJob's schedule (every 5 minutes)
//! stands as a run every 10s, so the two keep the shipped proportion (the
//! threshold is two schedule periods); debounce (2 runs), cooldown (30m)
//! and the action budget are the shipped ones. A broken OrderedReady
//! rollout must heal by one remediation: the forced rollback, revert and
//! eviction in one run. The figures (seconds and runs from the break and
//! from the first finding to healthy) are printed and written to
//! `$CARGO_TARGET_TMPDIR/heal-<case>.json`; docs/operations.md shows them.
//! They are records, not assertions.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::ROLLOUT;
use crate::world::{Run, World};

/// The scaled schedule: one run every this long.
const PERIOD: Duration = Duration::from_secs(10);
/// Runs at most, before the scenario gives up (12 minutes of scaled
/// schedule, an hour and more of the real one).
const MAX_RUNS: usize = 72;

/// Whether the StatefulSet is healthy now: every replica Ready on one
/// revision, the latest generation observed. Its revision if so.
async fn healthy_now(w: &World, name: &str) -> Option<String> {
    let s = w.sts(name).await;
    let want = s.spec.replicas.unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    let ok = st.observed_generation == s.metadata.generation
        && st.ready_replicas.unwrap_or(0) == want
        && st.updated_replicas.unwrap_or(0) == want
        && st.replicas == want
        && st.current_revision.is_some()
        && st.current_revision == st.update_revision;
    ok.then(|| st.update_revision.unwrap_or_default())
}

/// One run as the timeline records it.
struct Seen {
    at: f64,
    took: f64,
    failing: bool,
    rung: Option<String>,
    executed: Vec<(String, String)>,
    steps: Vec<(String, String)>,
    detail: String,
}

/// Breaks `db` (3 replicas, OrderedReady) by setting `tag`'s image, waits
/// for the kubelet to show `reason`, then runs the agent on the scaled
/// schedule until the set is healthy. Checks one remediation healed it;
/// records the timeline.
async fn time_to_heal(case: &str, tag: &str, reason: &str) {
    let w = World::start().await;
    let id = w.id("db");
    let good = w.healthy_set("db", 3, "OrderedReady").await;
    // The shipped config but for `for`: no limits given.
    let config = w.cp.work_dir().join("heal-config.yaml");
    std::fs::write(&config, "for: 20s\n").unwrap();
    let config = config.to_str().unwrap();

    let broke = Instant::now();
    w.set_image("db", &w.image("db", tag)).await;
    w.pod_waiting("db-2", reason, ROLLOUT).await;
    let symptom = broke.elapsed().as_secs_f64();

    let mut runs: Vec<Seen> = Vec::new();
    let mut healed = None;
    'runs: for _ in 0..MAX_RUNS {
        let started = Instant::now();
        let run: Run = w.agent(&["run", "--apply", "--config", config]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        let detail = run.report["failing"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == "db")
            .and_then(|a| a["executed"][0]["detail"].as_str())
            .unwrap_or_default()
            .to_string();
        runs.push(Seen {
            at: broke.elapsed().as_secs_f64(),
            took: started.elapsed().as_secs_f64(),
            failing: run.failing().contains(&id),
            rung: run.rung(&id),
            executed: run.executed(&id),
            steps: run.steps(&id),
            detail,
        });
        // Until the next run is due, look every second whether it healed.
        loop {
            if let Some(revision) = healthy_now(&w, "db").await {
                healed = Some((revision, broke.elapsed().as_secs_f64()));
                break 'runs;
            }
            if started.elapsed() >= PERIOD {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let Some((revision, healthy_at)) = healed else {
        for r in &runs {
            eprintln!(
                "{:>6.1}s failing={} rung={:?} executed={:?} steps={:?} {}",
                r.at, r.failing, r.rung, r.executed, r.steps, r.detail
            );
        }
        panic!("{case}: not healthy after {MAX_RUNS} runs");
    };
    for r in &runs {
        eprintln!(
            "run at {:>6.1}s ({:.1}s): failing={} rung={:?} executed={:?} steps={:?}",
            r.at, r.took, r.failing, r.rung, r.executed, r.steps
        );
    }
    assert_eq!(revision, good, "back on the old revision");

    // One remediation: a single run wrote, a forced rollback whose steps
    // all went through; no run before or after it wrote anything (waits
    // and escalations are Events, not writes).
    let wrote: Vec<&Seen> = runs
        .iter()
        .filter(|r| {
            r.executed
                .iter()
                .any(|(a, s)| s == "done" && !matches!(a.as_str(), "wait" | "escalate"))
        })
        .collect();
    assert_eq!(wrote.len(), 1, "one remediating run");
    let remedy = wrote[0];
    assert_eq!(remedy.rung.as_deref(), Some("rollback"));
    assert_eq!(remedy.executed, [("rollback".into(), "done".into())]);
    assert_eq!(
        remedy.steps,
        [
            ("revert".into(), "done".into()),
            ("observe".into(), "done".into()),
            ("evict".into(), "done".into())
        ],
        "{}",
        remedy.detail
    );
    // The writes' Events: the revert and the eviction, nothing else. (A
    // run after the remediation may escalate while the evicted pod is
    // still terminating: with `for` shortened to 20s, a kubelet that takes
    // longer than that to let it go looks stuck; the figures count them.)
    let events = w.agent_events("db").await;
    let writes: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| !matches!(*e, "StsmendEscalated" | "StsmendWaiting"))
        .collect();
    assert_eq!(writes, ["StsmendRolledBack", "StsmendDeletedPods"]);
    // Debounce: the first run that found it failing only counted it.
    let first_finding = runs.iter().position(|r| r.failing).expect("a finding");
    let remedy_run = runs.iter().position(|r| std::ptr::eq(r, remedy)).unwrap();
    assert_eq!(
        remedy_run,
        first_finding + 1,
        "acted in the run after the first finding (debounce 2)"
    );

    let found_at = runs[first_finding].at;
    let figures = json!({
        "case": case,
        "schedule_seconds": PERIOD.as_secs(),
        "for_seconds": 20,
        "symptom_seconds": round(symptom),
        "first_finding_seconds": round(found_at),
        "first_finding_run": first_finding + 1,
        "remediation_run": remedy_run + 1,
        "remediation_run_seconds": round(remedy.took),
        "remediation_steps": remedy.detail,
        "remediation_to_healthy_seconds": round(healthy_at - remedy.at),
        "healthy_seconds": round(healthy_at),
        "finding_to_healthy_seconds": round(healthy_at - found_at),
        "finding_to_healthy_runs": runs.len() - first_finding,
        "runs": runs.len(),
        "escalations_after_remediation": runs[remedy_run + 1..]
            .iter()
            .filter(|r| r.executed.iter().any(|(a, _)| a == "escalate"))
            .count(),
    });
    eprintln!("time to heal: {figures:#}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("heal-{case}.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&figures).unwrap()).unwrap();
    let after = w.agent(&["run", "--apply", "--config", config]).await;
    assert!(after.failing().is_empty(), "{:#}", after.report);
}

fn round(s: f64) -> Value {
    json!((s * 10.0).round() / 10.0)
}

/// A crash loop after an image change on OrderedReady.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_heals_in_one_remediation_on_the_shipped_defaults() {
    time_to_heal("crash-loop", "2-crash", "CrashLoopBackOff").await;
}

/// An image that cannot be pulled on OrderedReady.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_image_heals_in_one_remediation_on_the_shipped_defaults() {
    time_to_heal("bad-image", "2-broken", "ImagePullBackOff").await;
}
