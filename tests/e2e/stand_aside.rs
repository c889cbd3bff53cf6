//! Scenarios where the right move is not to touch the StatefulSet: wait,
//! stand aside, escalate, or report only.

use std::time::Duration;

use serde_json::json;

use crate::ROLLOUT;
use crate::world::{World, stateful_set};

/// Scenario 10: a StatefulSet that is not opted in is reported, with its
/// plan, and never touched, even with --apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_opted_in_is_report_only() {
    let w = World::start().await;
    let id = w.id("web");
    w.apply(&stateful_set(
        "web",
        2,
        &w.image("web", "1"),
        false,
        "Parallel",
    ))
    .await;
    w.healthy("web", ROLLOUT).await;
    w.set_image("web", &w.image("web", "2-crash")).await;
    w.pod_waiting("web-1", "CrashLoopBackOff", ROLLOUT).await;
    let before = w.sts("web").await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.failing(), [id.as_str()]);
    assert_eq!(run.executed(&id), [("rollback".into(), "blocked".into())]);
    let after = w.sts("web").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);
    assert!(w.agent_events("web").await.is_empty());
}

/// Scenario 5: a scale-up rejected by a pods quota. Rolling back would not
/// help (the template is fine): escalate, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_on_scale_up_escalates() {
    let w = World::start().await;
    let id = w.id("db");
    w.healthy_set("db", 2, "OrderedReady").await;
    w.apply("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: pods}\nspec:\n  hard: {pods: \"2\"}\n")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.patch("db", json!({"spec": {"replicas": 3}})).await;
    w.event("db", "FailedCreate", ROLLOUT).await;
    let before = w.sts("db").await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(
        run.executed(&id),
        [("escalate".into(), "done".into())],
        "{:#}",
        run.report
    );
    let text = run.report.to_string();
    assert!(
        text.contains("quota"),
        "the diagnosis names the quota: {text}"
    );
    assert_eq!(w.sts("db").await.spec, before.spec);
    assert_eq!(w.agent_events("db").await, ["StsmendEscalated"]);
}

/// Scenario 8: a pod terminating slowly (a migration on shutdown, after a
/// preStop hook, inside its grace period): wait, no write, until it
/// finishes; the rollout then completes on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_on_shutdown_waits() {
    let w = World::start().await;
    let id = w.id("db");
    let sts = stateful_set("db", 2, &w.image("db", "1"), true, "OrderedReady")
        .replace("terminationGracePeriodSeconds: 1", "terminationGracePeriodSeconds: 8")
        // The app migrates for 6 s on SIGTERM, after a preStop hook: a real
        // shutdown inside a real grace period.
        .replace(
            "        resources:",
            "        env: [{name: SHUTDOWN_SECONDS, value: \"6\"}]\n        \
             lifecycle: {preStop: {exec: {command: [sh, -c, \"echo draining > /proc/1/fd/1; sleep 1\"]}}}\n        \
             resources:",
        );
    w.apply(&sts).await;
    w.healthy("db", ROLLOUT).await;
    w.set_image("db", &w.image("db", "2")).await;
    w.terminating("db-1", ROLLOUT).await;
    let before = w.sts("db").await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    run.assert_did(&id, "wait_for_migration", "wait", "done");
    assert_eq!(w.sts("db").await.spec, before.spec);
    let revision = w.healthy("db", ROLLOUT).await;
    assert_eq!(
        Some(revision),
        before.status.unwrap().update_revision,
        "the new revision rolled out"
    );
    assert_eq!(w.agent_events("db").await, ["StsmendWaiting"]);
}

/// Scenario 9: kube-controller-manager stopped, a generation bumped: the
/// agent stands aside and escalates, touching nothing; when the controller
/// returns the mismatch clears by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_down_stands_aside() {
    let w = World::start().await;
    let id = w.id("db");
    w.healthy_set("db", 2, "OrderedReady").await;
    w.cp.stop_controller_manager().await.unwrap();
    w.set_image("db", &w.image("db", "2")).await;
    // The leader lease must look abandoned: its duration plus the slack the
    // diagnosis allows for a leader change.
    tokio::time::sleep(Duration::from_secs(42)).await;
    let before = w.sts("db").await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    run.assert_did(&id, "stand_aside", "escalate", "done");
    assert_eq!(w.sts("db").await.spec, before.spec);
    w.cp.start_controller_manager().await.unwrap();
    w.healthy("db", ROLLOUT).await;
    assert_eq!(w.agent_events("db").await, ["StsmendEscalated"]);
}
