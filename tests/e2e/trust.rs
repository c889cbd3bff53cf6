//! Scenario 16, causes outside the workload: a rollout that only touched an
//! annotation fails for a reason no template holds. Rolling back would
//! rewrite the team's spec and cure nothing: the agent escalates naming the
//! cause and writes nothing else.

use std::time::Duration;

use serde_json::json;

use crate::ROLLOUT;
use crate::world::World;

/// An annotation-only template change, as a CD system's restart does.
async fn restart(w: &World, name: &str) {
    w.patch(
        name,
        json!({"spec": {"template": {"metadata": {"annotations": {"example.com/restartedAt": "2026-11-22T09:30:00Z"}}}}}),
    )
    .await;
}

/// Runs the agent in apply mode and checks it escalated, once, naming
/// `kind` and `names`, and that the StatefulSet is as it was.
async fn assert_escalated_only(w: &World, name: &str, kind: &str, names: &[&str]) {
    let id = w.id(name);
    let before = w.sts(name).await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.rung(&id).as_deref(),
        Some("escalate"),
        "{:#}",
        run.report
    );
    assert_eq!(
        run.executed(&id),
        [("escalate".to_string(), "done".to_string())],
        "{:#}",
        run.report
    );
    let text = run.report.to_string();
    assert!(
        text.contains(&format!("\"{kind}\"")),
        "finding {kind}: {text}"
    );
    for n in names {
        assert!(text.contains(n), "the escalation names {n}: {text}");
    }
    let after = w.sts(name).await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);
    assert_eq!(w.agent_events(name).await, ["StsmendEscalated"]);
}

/// A validating webhook whose server is down (nothing listens where it
/// points): the API server cannot ask it, so every pod creation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_is_escalated_not_rolled_back() {
    let w = World::start_sim().await;
    w.healthy_set("db", 2, "OrderedReady").await;
    w.apply(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: guard}
webhooks:
- name: guard.stsmend.test
  clientConfig: {url: "https://127.0.0.1:9/validate"}
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  objectSelector: {matchLabels: {app: db}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 5
"#,
    )
    .await;
    restart(&w, "db").await;
    let message = w.event("db", "FailedCreate", ROLLOUT).await;
    assert!(message.contains("failed calling webhook"), "{message}");
    assert_escalated_only(&w, "db", "webhook_unavailable", &["guard.stsmend.test"]).await;
    // Nothing was evicted: the pod the rollout left is still there.
    assert!(w.pod("db-0").await.metadata.deletion_timestamp.is_none());
}

/// Every node cordoned (a maintenance gone wrong) while a restart rolls
/// out: the replaced pod cannot be placed anywhere, whatever its template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordoned_nodes_are_escalated_not_rolled_back() {
    let w = World::start_sim().await;
    w.healthy_set("db", 2, "OrderedReady").await;
    for node in ["node-1", "node-2", "node-3"] {
        w.cp.kubectl(&["cordon", node]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    restart(&w, "db").await;
    w.unschedulable("db-1", ROLLOUT).await;
    assert_escalated_only(&w, "db", "nodes_cordoned", &["node-1", "node-2", "node-3"]).await;
    assert!(w.pod("db-0").await.metadata.deletion_timestamp.is_none());
}
