//! Failures only a real kubelet gives: each breaks a healthy StatefulSet
//! with one template change, waits until the kubelet reports it, and checks
//! what the agent found, the cause it names, and the rung it chose; then
//! apply runs mend it.

use serde_json::{Value, json};

use crate::ROLLOUT;
use crate::world::{Run, World};

/// Asserts a finding of `kind` whose summary names every one of `names`.
#[track_caller]
fn assert_finding(run: &Run, id: &str, kind: &str, names: &[&str]) {
    let all = run.findings(id);
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
    /// The pod has an event with this reason whose message says this: the
    /// kubelet's first FailedMount may only say its cache has not
    /// registered the object yet.
    EventSaying(&'static str, &'static str),
}

/// Breaks `db` (2 replicas, OrderedReady) with `patch` and waits until its
/// top pod shows it. A dry run must then find `kind` naming every one of
/// `names` and choose the rollback rung; apply runs, the first planning
/// what the dry run planned, must bring the set back to its old revision.
async fn break_and_mend(w: &World, patch: Value, wait: Wait, kind: &str, names: &[&str]) {
    let id = w.id("db");
    let good = w.healthy_set("db", 2, "OrderedReady").await;
    w.patch("db", patch).await;
    match wait {
        Wait::Waiting(reason) => w.pod_waiting("db-1", reason, ROLLOUT).await,
        Wait::Restarted => w.restarted("db-1", 1, ROLLOUT * 2).await,
        Wait::EventSaying(reason, text) => {
            w.event_saying("db-1", reason, text, ROLLOUT).await;
        }
    }
    let config = w.config("");
    let config = config.to_str().unwrap();
    let dry = w.agent(&["run", "--config", config]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.failing(), [id.as_str()], "{:#}", dry.report);
    assert_finding(&dry, &id, kind, names);
    assert_eq!(
        dry.rung(&id).as_deref(),
        Some("rollback"),
        "{:#}",
        dry.report
    );

    let apply = w.agent(&["run", "--apply", "--config", config]).await;
    // The same actions on the same objects; their reasons quote event
    // counts, which the kubelet raises between the two runs.
    let without_why = |run: &Run| -> Vec<Value> {
        run.planned(&id)
            .into_iter()
            .map(|mut a| {
                a.as_object_mut().map(|o| o.remove("why"));
                a
            })
            .collect()
    };
    assert_eq!(without_why(&apply), without_why(&dry), "{:#}", apply.report);
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
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app", "image": w.image("db", "2-oom"),
        "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}}}]}}}});
    break_and_mend(
        &w,
        patch,
        Wait::Waiting("CrashLoopBackOff"),
        "crash_loop",
        &["db-1", "OOMKilled", "32Mi limit"],
    )
    .await;
}

/// The new template reads a key its Secret does not have: the kubelet
/// cannot create the container (CreateContainerConfigError). The agent
/// names the Secret and the key, and rolls back the change that added it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_key_rolls_back() {
    let w = World::start().await;
    w.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: db-creds}\nstringData: {user: app}\n")
        .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app",
        "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}]}]}}}});
    break_and_mend(
        &w,
        patch,
        Wait::Waiting("CreateContainerConfigError"),
        "container_config",
        &["db-1", "shop/db-creds", "password"],
    )
    .await;
}

/// A new volume from a ConfigMap that does not exist: the kubelet cannot
/// mount it and the pod stays in ContainerCreating (FailedMount). The
/// agent names the volume and the missing ConfigMap, and rolls back the
/// change that added it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_config_map_volume_rolls_back() {
    let w = World::start().await;
    let patch = json!({"spec": {"template": {"spec": {
        "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
        "containers": [{"name": "app", "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}]}}}});
    break_and_mend(
        &w,
        patch,
        Wait::EventSaying("FailedMount", "not found"),
        "volume_mount",
        &[
            "db-1",
            "volume config",
            "ConfigMap shop/app-config does not exist",
        ],
    )
    .await;
}

/// A new init container that fails: the pod stays in Init:CrashLoopBackOff.
/// The agent names the init container, its exit and its last words (its
/// previous log), and rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_init_container_rolls_back() {
    let w = World::start().await;
    let patch = json!({"spec": {"template": {"spec": {"initContainers": [{
        "name": "migrate", "image": w.image("db", "1"),
        "command": ["app", "sh", "-c", "echo 'migrate: schema lock held by another writer' >&2; sleep 1; exit 3"]}]}}}});
    break_and_mend(
        &w,
        patch,
        Wait::Waiting("CrashLoopBackOff"),
        "crash_loop",
        &[
            "db-1",
            "migrate",
            "exit 3",
            "it last wrote: migrate: schema lock held by another writer",
        ],
    )
    .await;
}

/// A startup probe that never passes: the kubelet kills and restarts the
/// container, which itself exits cleanly. The agent says it was the probe,
/// not an application crash, and rolls back the change that added it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_startup_probe_rolls_back() {
    let w = World::start().await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app",
        "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 2}}]}}}});
    // A v1.20 kubelet restarts a container for a failed startup probe only
    // at the pod's next periodic sync (about a minute; kubernetes issue
    // 98007), so it is seen restarting rather than in CrashLoopBackOff.
    break_and_mend(
        &w,
        patch,
        Wait::Restarted,
        "crash_loop",
        &["db-1", "startup probe", "/tmp/started"],
    )
    .await;
}
