//! Scenarios 11 and 21: storm protection judges causes, not only counts.
//! Many StatefulSets failing on one cause outside their workloads are a
//! storm: every plan escalates naming the shared cause, nothing is
//! written. Many failing each on its own template change are a bad
//! release: each is rolled back, one by one, within the action budget.

use std::time::Duration;

use crate::ROLLOUT;
use crate::world::{World, stateful_set};

async fn generations(w: &World, names: &[&str]) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for n in names {
        out.push(w.sts(n).await.metadata.generation);
    }
    out
}

/// Scenario 11 and 21, one way: every node cordoned (a maintenance gone
/// wrong) while a CD system restarts three of four StatefulSets (an
/// annotation-only change): three of four fail on the same cordoned
/// nodes. A storm: each plan escalates naming the nodes they share, no
/// StatefulSet is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cause_across_many_sets_is_a_storm() {
    let w = World::start_sim().await;
    let names = ["a", "b", "c"];
    for n in names.iter().chain(&["d"]) {
        w.apply(&stateful_set(n, 2, &w.image(n, "1"), true, "OrderedReady"))
            .await;
    }
    for n in names.iter().chain(&["d"]) {
        w.healthy(n, ROLLOUT).await;
    }
    for node in ["node-1", "node-2", "node-3"] {
        w.cp.kubectl(&["cordon", node]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in names {
        w.patch(
            n,
            serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"example.com/restartedAt": "2026-11-22T09:30:00Z"}}}}}),
        )
        .await;
    }
    for n in names {
        w.unschedulable(&format!("{n}-1"), ROLLOUT).await;
    }
    let before = generations(&w, &names).await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.failing().len(), 3, "{:#}", run.report);
    for n in names {
        let id = w.id(n);
        assert_eq!(
            run.rung(&id).as_deref(),
            Some("stand_aside"),
            "{:#}",
            run.report
        );
        assert_eq!(run.executed(&id), [("escalate".into(), "done".into())]);
        let why = run.planned(&id)[0]["why"].as_str().unwrap().to_string();
        assert!(
            why.contains("storm protection: 3 of 4 StatefulSets failing at once")
                && why.contains("3 share a cause outside the workload: node node-1 cordoned"),
            "{why}"
        );
        assert_eq!(w.agent_events(n).await, ["StsmendEscalated"]);
    }
    assert_eq!(
        generations(&w, &names).await,
        before,
        "no StatefulSet was changed"
    );
}

/// Scenario 21, the other way: a release breaks four of five StatefulSets,
/// each by its own image change (a crash loop). By count alone that is a
/// storm (four of five); by cause it is four broken workloads. With a
/// budget of three remediations per run, three are rolled back in the
/// first run and the fourth in the next; all are healthy on their old
/// revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sets_each_on_its_own_change_are_a_bad_release() {
    let w = World::start().await;
    let names = ["a", "b", "c", "d"];
    let mut good = Vec::new();
    for n in names.iter().chain(&["e"]) {
        w.apply(&stateful_set(n, 1, &w.image(n, "1"), true, "Parallel"))
            .await;
    }
    for n in names {
        good.push(w.healthy(n, ROLLOUT).await);
    }
    w.healthy("e", ROLLOUT).await;
    for n in names {
        w.set_image(n, &w.image(n, "2-crash")).await;
    }
    for n in names {
        w.pod_waiting(&format!("{n}-0"), "CrashLoopBackOff", ROLLOUT)
            .await;
    }
    let config = w.config("  maxActions: 3\n");
    let config = config.to_str().unwrap();

    let first = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.failing().len(), 4, "{:#}", first.report);
    for n in &names[..3] {
        first.assert_did(&w.id(n), "rollback", "rollback", "done");
    }
    let d = w.id("d");
    assert_eq!(first.rung(&d).as_deref(), Some("rollback"));
    assert_eq!(first.executed(&d), [("rollback".into(), "blocked".into())]);
    let gate = first.report["failing"][3]["gate"].clone();
    assert_eq!(gate["blocked"]["guard"], "max_actions", "{gate:#}");
    let trace = first.report["failing"][0]["plan"]["trace"].to_string();
    assert!(
        trace.contains(
            "4 of 5 StatefulSets failing is no storm (4 fail on their own template change)"
        ),
        "{trace}"
    );

    for (n, g) in names[..3].iter().zip(&good) {
        assert_eq!(
            &w.healthy(n, ROLLOUT).await,
            g,
            "{n} back on its old revision"
        );
    }
    let second = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(second.failing(), [d.as_str()], "{:#}", second.report);
    second.assert_did(&d, "rollback", "rollback", "done");
    assert_eq!(w.healthy("d", ROLLOUT).await, good[3]);
    for n in names {
        assert_eq!(w.agent_events(n).await, ["StsmendRolledBack"], "{n}");
    }
}
