//! Failures only a real kubelet gives: each breaks a healthy StatefulSet
//! with one template change, waits until the kubelet reports it, and checks
//! what the agent found, the cause it names, and the rung it chose; then
//! apply runs mend it.

use serde_json::{Value, json};

use crate::ROLLOUT;
use crate::world::{Run, World};

/// The findings of `id` as (kind, summary).
fn findings(run: &Run, id: &str) -> Vec<(String, String)> {
    run.report["failing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| {
            format!(
                "{}/{}",
                a["namespace"].as_str().unwrap_or_default(),
                a["name"].as_str().unwrap_or_default()
            ) == id
        })
        .flat_map(|a| a["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or_default().to_string(),
                f["summary"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Asserts a finding of `kind` whose summary names every one of `names`.
#[track_caller]
fn assert_finding(run: &Run, id: &str, kind: &str, names: &[&str]) {
    let all = findings(run, id);
    assert!(
        all.iter()
            .any(|(k, s)| k == kind && names.iter().all(|n| s.contains(n))),
        "no {kind} finding naming {names:?} in {all:#?}"
    );
}

/// What shows that the kubelet reports the failure.
enum Wait {
    /// A container or init container waits with this reason.
    Waiting(&'static str),
    /// The container has restarted.
    Restarted,
}

/// Breaks `db` (2 replicas, OrderedReady) with `patch`, waits until its top
/// pod shows it, and returns a dry run's report (and the revision to heal
/// back to).
async fn break_it(w: &World, patch: Value, wait: Wait) -> (Run, String) {
    let good = w.healthy_set("db", 2, "OrderedReady").await;
    w.patch("db", patch).await;
    match wait {
        Wait::Waiting(reason) => w.pod_waiting_any("db-1", reason, ROLLOUT).await,
        Wait::Restarted => w.restarted("db-1", 1, ROLLOUT * 2).await,
    }
    let config = w.config("");
    let dry = w
        .agent(&["run", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.failing(), [w.id("db")], "{:#}", dry.report);
    (dry, good)
}

/// Apply runs, the first planning what the dry run planned, until the
/// set is healthy again on the `good` revision.
async fn mend(w: &World, dry: &Run, good: &str) {
    let config = w.config("");
    let config = config.to_str().unwrap();
    let apply = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(apply.planned(&w.id("db")), dry.planned(&w.id("db")));
    for _ in 0..3 {
        let run = w.agent(&["run", "--apply", "--config", config]).await;
        if run.failing().is_empty() {
            break;
        }
    }
    assert_eq!(
        w.healthy("db", ROLLOUT).await,
        good,
        "back on the old revision"
    );
}

/// A new version whose memory use passes its limit: the kubelet reports
/// OOMKilled (exit 137); the agent names the OOM kill and rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_killed_rolls_back() {
    let w = World::start().await;
    let id = w.id("db");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app", "image": w.image("db", "2-oom"),
        "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}}}]}}}});
    let (dry, good) = break_it(&w, patch, Wait::Waiting("CrashLoopBackOff")).await;
    assert_finding(
        &dry,
        &id,
        "crash_loop",
        &["db-1", "OOMKilled", "32Mi limit"],
    );
    assert_eq!(
        dry.rung(&id).as_deref(),
        Some("rollback"),
        "{:#}",
        dry.report
    );
    mend(&w, &dry, &good).await;
}

/// The new template reads a key its Secret does not have: the kubelet
/// cannot create the container (CreateContainerConfigError). The agent
/// names the Secret and the key, and rolls back the change that added it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_key_rolls_back() {
    let w = World::start().await;
    let id = w.id("db");
    w.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: db-creds}\nstringData: {user: app}\n")
        .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app",
        "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}]}]}}}});
    let (dry, good) = break_it(&w, patch, Wait::Waiting("CreateContainerConfigError")).await;
    assert_finding(
        &dry,
        &id,
        "container_config",
        &["db-1", "shop/db-creds", "password"],
    );
    assert_eq!(
        dry.rung(&id).as_deref(),
        Some("rollback"),
        "{:#}",
        dry.report
    );
    mend(&w, &dry, &good).await;
}

/// A new init container that fails: the pod stays in Init:CrashLoopBackOff.
/// The agent names the init container and its exit, and rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_init_container_rolls_back() {
    let w = World::start().await;
    let id = w.id("db");
    let patch = json!({"spec": {"template": {"spec": {"initContainers": [{
        "name": "migrate", "image": w.image("db", "1"),
        "command": ["app", "sh", "-c", "echo 'migrate: schema lock held by another writer' >&2; exit 3"]}]}}}});
    let (dry, good) = break_it(&w, patch, Wait::Waiting("CrashLoopBackOff")).await;
    assert_finding(&dry, &id, "crash_loop", &["db-1", "migrate", "exit 3"]);
    assert_eq!(
        dry.rung(&id).as_deref(),
        Some("rollback"),
        "{:#}",
        dry.report
    );
    mend(&w, &dry, &good).await;
}

/// A startup probe that never passes: the kubelet kills and restarts the
/// container, which itself exits cleanly. The agent says it was the probe,
/// not an application crash, and rolls back the change that added it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_startup_probe_rolls_back() {
    let w = World::start().await;
    let id = w.id("db");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app",
        "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 2}}]}}}});
    // A v1.20 kubelet restarts a container for a failed startup probe only
    // at the pod's next periodic sync (about a minute; kubernetes issue
    // 98007), so it is seen restarting rather than in CrashLoopBackOff.
    let (dry, good) = break_it(&w, patch, Wait::Restarted).await;
    assert_finding(
        &dry,
        &id,
        "crash_loop",
        &["db-1", "startup probe", "/tmp/started"],
    );
    assert_eq!(
        dry.rung(&id).as_deref(),
        Some("rollback"),
        "{:#}",
        dry.report
    );
    mend(&w, &dry, &good).await;
}
