//! Scenario 12: the API server restarted while the agent runs.

use std::time::Duration;

use crate::ROLLOUT;
use crate::world::World;

/// Runs the agent again and again while kube-apiserver restarts under it.
/// A run may fail (exit 3, the error reported) but never leaves an action
/// half-done and unreported: every write it made is in its report or the
/// next run sees it. Once the server is back, runs complete the
/// remediation: rolled back, stuck pod deleted, healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_mid_run_then_the_next_runs_complete() {
    let w = World::start().await;
    let id = w.id("db");
    let good = w.healthy_set("db", 3, "OrderedReady").await;
    w.set_image("db", &w.image("db", "2-broken")).await;
    w.pod_waiting("db-2", "ImagePullBackOff", ROLLOUT).await;
    let config = w.config("");
    let config = config.to_str().unwrap();

    let restart = w.cp.restart_apiserver();
    let runs = async {
        let mut codes = Vec::new();
        for _ in 0..4 {
            let (code, out) = w.agent_raw(&["run", "--apply", "--config", config]).await;
            assert!(code == 0 || code == 3, "exit {code}: {out}");
            if code == 3 {
                assert!(
                    out.contains("stsmend:") || out.contains("\"level\":\"ERROR\""),
                    "the failure is reported: {out}"
                );
            }
            codes.push(code);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        codes
    };
    let (restarted, codes) = tokio::join!(restart, runs);
    restarted.unwrap();
    assert!(codes.contains(&3), "some run met the restart: {codes:?}");

    // The server is back: runs complete what is left, whatever the
    // interrupted ones did.
    // (kube-controller-manager may have lost its lease in the restart;
    // while it is away the agent rightly stands aside.)
    for _ in 0..10 {
        let run = w.agent(&["run", "--apply", "--config", config]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        eprintln!(
            "run: rung {:?}, executed {:?}",
            run.rung(&id),
            run.executed(&id)
        );
        if run.failing().is_empty() {
            break;
        }
        assert!(run.failing().contains(&id));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    let events = w.agent_events("db").await;
    assert_eq!(
        events.iter().filter(|e| *e == "StsmendRolledBack").count(),
        1,
        "rolled back exactly once: {events:?}"
    );
}
