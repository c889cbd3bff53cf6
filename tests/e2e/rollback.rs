//! Scenarios whose cure is a rollback (and, on OrderedReady, deleting the
//! pod stuck on the bad revision), or a team policy's spec fix.

use std::time::Duration;

use serde_json::json;

use crate::ROLLOUT;
use crate::world::{World, stateful_set};

/// Scenario 1 and 14: a bad image on OrderedReady leaves the rollout stuck
/// with the top pod in ImagePullBackOff. The dry run plans exactly what the
/// apply run then does: the forced rollback as one remediation (revert,
/// wait until the controller has observed it, evict the pod stuck on the
/// bad revision); the set is healthy again on its old revision, and a last
/// run does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_image_rolls_back_then_deletes_the_stuck_pod() {
    let w = World::start().await;
    let id = w.id("db");
    let good = w.healthy_set("db", 3, "OrderedReady").await;
    w.set_image("db", &w.image("db", "2-broken")).await;
    w.pod_waiting("db-2", "ImagePullBackOff", ROLLOUT).await;
    let config = w.config("");
    let config = config.to_str().unwrap();

    let dry = w.agent(&["run", "--config", config]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.failing(), [id.as_str()]);
    assert_eq!(dry.rung(&id).as_deref(), Some("rollback"));
    assert_eq!(dry.executed(&id), [("rollback".into(), "dry-run".into())]);
    assert_eq!(
        dry.steps(&id),
        [
            ("revert".into(), "dry-run".into()),
            ("observe".into(), "dry-run".into()),
            ("evict".into(), "dry-run".into())
        ],
        "{:#}",
        dry.report
    );
    let bad_generation = w.sts("db").await.metadata.generation;
    assert_eq!(
        w.agent_events("db").await,
        Vec::<String>::new(),
        "a dry run writes no Event"
    );

    let apply = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(
        apply.planned(&id),
        dry.planned(&id),
        "dry run and apply plan alike"
    );
    assert_eq!(apply.executed(&id), [("rollback".into(), "done".into())]);
    assert_eq!(
        apply.steps(&id),
        [
            ("revert".into(), "done".into()),
            ("observe".into(), "done".into()),
            ("evict".into(), "done".into())
        ],
        "{:#}",
        apply.report
    );
    let sts = w.sts("db").await;
    assert_eq!(sts.metadata.generation, bad_generation.map(|g| g + 1));
    let image = sts.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some(w.image("db", "1").as_str()));

    assert_eq!(
        w.healthy("db", ROLLOUT).await,
        good,
        "back on the old revision"
    );
    assert_eq!(
        w.agent_events("db").await,
        ["StsmendRolledBack", "StsmendDeletedPods"]
    );
    let last = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(last.code, 0);
    assert!(last.failing().is_empty(), "{:#}", last.report);
    assert_eq!(w.agent_events("db").await.len(), 2, "nothing more was done");

    // The rollback's undo record is still there (deleting pods changes no
    // spec): undo shows, then restores, the template from before it.
    let shown = w.agent_raw(&["undo", "shop/db"]).await;
    assert_eq!(shown.0, 0, "{}", shown.1);
    assert!(shown.1.contains("would undo"), "{}", shown.1);
    assert!(shown.1.contains("evict done: db-2: evicted"), "{}", shown.1);
    assert!(shown.1.contains("2-broken"), "{}", shown.1);
    let generation = w.sts("db").await.metadata.generation;
    let undone = w.agent_raw(&["undo", "shop/db", "--apply"]).await;
    assert_eq!(undone.0, 0, "{}", undone.1);
    let sts = w.sts("db").await;
    assert_eq!(sts.metadata.generation, generation.map(|g| g + 1));
    let image = sts.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some(w.image("db", "2-broken").as_str()));
    assert_eq!(
        w.agent_events("db").await.last().map(String::as_str),
        Some("StsmendUndone")
    );
    let again = w.agent_raw(&["undo", "shop/db", "--apply"]).await;
    assert_eq!(again.0, 1, "a record is undone once: {}", again.1);
}

/// Scenario 2: a crash loop after a template change, with Parallel pod
/// management: after the rollback the controller replaces the crashing pod
/// itself (it does not wait for Ready pods under Parallel), so the agent
/// rolls back and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_on_parallel_rolls_back() {
    let w = World::start().await;
    let id = w.id("cache");
    let good = w.healthy_set("cache", 3, "Parallel").await;
    w.set_image("cache", &w.image("cache", "2-crash")).await;
    w.pod_waiting("cache-2", "CrashLoopBackOff", ROLLOUT).await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(
        run.executed(&id),
        [("rollback".into(), "done".into())],
        "{:#}",
        run.report
    );
    // The program's last words, read through pods/log of the shipped role.
    // containerd can write a process's last output to the log file after
    // the kubelet has reported its exit (e2e/tests/nodes.rs waits for it),
    // so a log read just after the first crash may end at the stdout line,
    // before the stderr one. Either is the program's own words.
    let crash = run.findings(&id);
    let quoted = crash
        .iter()
        .filter(|(kind, _)| kind == "crash_loop")
        .map(|(_, summary)| summary.as_str())
        .collect::<Vec<_>>();
    assert!(
        !quoted.is_empty() && quoted.iter().all(|s| s.contains("it last wrote: app 2: ")),
        "{quoted:#?}"
    );
    assert_eq!(w.healthy("cache", ROLLOUT).await, good);
    let after = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert!(after.failing().is_empty(), "{:#}", after.report);
    assert_eq!(w.agent_events("cache").await, ["StsmendRolledBack"]);
}

/// Scenario 3: the LimitRange denial with a genuine generation mismatch:
/// roll back; the controller re-creates the missing pod; healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_range_denial_rolls_back() {
    let w = World::start().await;
    let id = w.id("db");
    let good = w.limit_range_mismatch().await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    run.assert_did(&id, "rollback", "rollback", "done");
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    assert_eq!(w.agent_events("db").await, ["StsmendRolledBack"]);
}

/// Scenario 13: the database team's policy fixes the spec instead: the
/// requests are fitted to the LimitRange and the new revision rolls out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_policy_fits_the_limit_range_instead() {
    let w = World::start_in("databases").await;
    let id = w.id("db");
    let good = w.limit_range_mismatch().await;
    let config = w.config("");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/examples");
    let run = w
        .agent(&[
            "run",
            "--apply",
            "--config",
            config.to_str().unwrap(),
            "--policies",
            policies,
        ])
        .await;
    run.assert_did(&id, "fit_limit_range", "patch_spec", "done");
    let fixed = w.healthy("db", ROLLOUT).await;
    assert_ne!(fixed, good, "the fixed template is a new revision");
    let sts = w.sts("db").await;
    let limits = sts.spec.template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, "1Gi");
    assert_eq!(w.agent_events("db").await, ["StsmendPatchedSpec"]);
}

/// Scenario 4: a ResourceQuota on `count/controllerrevisions.apps` makes
/// every template change fail before any pod is touched (a mismatch on
/// every Kubernetes version). Rolling back reuses the old revision, which
/// the quota does not count again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_quota_rolls_back_to_the_existing_revision() {
    let w = World::start().await;
    let id = w.id("db");
    let good = w.healthy_set("db", 2, "OrderedReady").await;
    w.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: revisions}\nspec:\n  hard: {count/controllerrevisions.apps: \"1\"}\n",
    )
    .await;
    // The quota controller must have counted the existing revision first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.set_image("db", &w.image("db", "2")).await;
    w.mismatch("db", Duration::from_secs(3)).await;
    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    run.assert_did(&id, "rollback", "rollback", "done");
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
}

/// Scenario 7: a node selector no node satisfies, and no node group that
/// could add such a node: roll back and, in the same remediation, evict
/// the Pending pod the OrderedReady controller waits on. A partitioned update: only the top
/// ordinal was to be updated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_affinity_rolls_back() {
    let w = World::start().await;
    let id = w.id("db");
    let mut sts = stateful_set("db", 3, &w.image("db", "1"), true, "OrderedReady");
    sts.push_str("  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}\n");
    w.apply(&sts).await;
    let good = w.healthy("db", ROLLOUT).await;
    w.patch(
        "db",
        json!({"spec": {"template": {"spec": {"nodeSelector": {"disktype": "nvme"}}}}}),
    )
    .await;
    w.unschedulable("db-2", ROLLOUT).await;
    let config = w.config("");
    let config = config.to_str().unwrap();
    let run = w.agent(&["run", "--apply", "--config", config]).await;
    run.assert_did(&id, "rollback", "rollback", "done");
    assert_eq!(
        run.steps(&id),
        [
            ("revert".into(), "done".into()),
            ("observe".into(), "done".into()),
            ("evict".into(), "done".into())
        ],
        "the Pending pod is evicted in the same run: {:#}",
        run.report
    );
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    let sts = w.sts("db").await;
    assert_eq!(sts.spec.template.spec.unwrap().node_selector, None);
}

/// The pipeline after the source is the same code: a live plan and a plan
/// on the snapshot of the same cluster decide alike (same findings, same
/// plan), and the live one reads with a bounded number of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_and_snapshot_plans_agree() {
    let w = World::start().await;
    let id = w.id("db");
    w.apply(&stateful_set(
        "db",
        2,
        &w.image("db", "1"),
        true,
        "OrderedReady",
    ))
    .await;
    w.apply(&stateful_set(
        "web",
        2,
        &w.image("web", "1"),
        false,
        "Parallel",
    ))
    .await;
    w.healthy("db", ROLLOUT).await;
    w.healthy("web", ROLLOUT).await;
    w.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: revisions}\nspec:\n  hard: {count/controllerrevisions.apps: \"2\"}\n",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.set_image("db", &w.image("db", "2")).await;
    w.mismatch("db", Duration::from_secs(2)).await;
    let now = jiff::Timestamp::now().to_string();
    let live = w.agent(&["plan", "--for", "0s", "--now", &now]).await;
    assert_eq!(live.code, 1, "findings present: {}", live.stderr);
    let snap = w.cp.work_dir().join("snapshot.yaml");
    let (code, out) = w
        .agent_raw(&["snapshot", "-A", "-o", snap.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{out}");
    let offline = tokio::process::Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(["plan", "--for", "0s", "--now", &now, "-o", "json", "--from"])
        .arg(&snap)
        .output()
        .await
        .unwrap();
    assert_eq!(offline.status.code(), Some(1));
    let offline: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    let kinds = |r: &serde_json::Value| -> Vec<String> {
        r["failing"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(live.failing(), [id.as_str()]);
    assert_eq!(offline["failing"][0]["name"], "db");
    assert_eq!(kinds(&live.report), kinds(&offline));
    assert!(
        kinds(&live.report).contains(&"quota_exhausted".to_string()),
        "{:?}",
        kinds(&live.report)
    );
    assert_eq!(
        live.report["failing"][0]["plan"],
        offline["failing"][0]["plan"]
    );
    assert_eq!(live.report["scanned"], offline["scanned"]);
    // One LIST of StatefulSets, then reads for the one candidate only.
    let requests = live.report["apiRequests"]["total"].as_u64().unwrap();
    assert!(requests <= 30, "{:#}", live.report["apiRequests"]);
}
