//! Faults on the agent's own state and neighbours (issue 15, item 3): two
//! runs at once, its ConfigMaps damaged, deleted or near the size limit,
//! a slow API server. Each ends with nothing done twice, nothing half
//! done, and a clear exit code.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use stsmend_e2e::proxy::SlowProxy;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::ROLLOUT;
use crate::rbac::token;
use crate::world::World;

/// A kubeconfig for the shipped `stsmend` ServiceAccount whose server is
/// `server` (a proxy in front of the API server).
async fn agent_kubeconfig_via(w: &World, name: &str, server: &str) -> PathBuf {
    let t = token(&w.client, "stsmend", "stsmend").await;
    let path =
        w.cp.kubeconfig_for_token(&format!("system:serviceaccount:stsmend:{name}"), &t)
            .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(&w.cp.server_url(), server);
    std::fs::write(&path, text).unwrap();
    path
}

async fn own_config_map(w: &World, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(w.client.clone(), "stsmend")
        .get_opt(name)
        .await
        .unwrap()
}

/// The record of `id` in the state ConfigMap.
async fn state_record(w: &World, id: &str) -> Option<Value> {
    let cm = own_config_map(w, "stsmend-state").await?;
    let key = id.replacen('/', ".", 1);
    cm.data?.get(&key).map(|v| serde_json::from_str(v).unwrap())
}

/// `db`, 2 pods under OrderedReady, crash-looping after a template change:
/// the agent's remedy is the forced rollback (revert, evict db-1).
async fn crash_looping_db(w: &World) -> String {
    let good = w.healthy_set("db", 2, "OrderedReady").await;
    w.set_image("db", &w.image("db", "2-crash")).await;
    w.restarted("db-1", 1, ROLLOUT).await;
    good
}

/// Runs `stsmend ARGS --kubeconfig KUBECONFIG -o json --log-format json`,
/// calling `on_line` with each line it logs as it logs it; returns the
/// exit code, the report and the log.
async fn agent_watched(
    kubeconfig: &PathBuf,
    args: &[&str],
    mut on_line: impl FnMut(&str),
) -> (i32, Value, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-o", "json", "--log-format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let read_stdout = tokio::spawn(async move {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).await.unwrap();
        out
    });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        on_line(&line);
        log.push_str(&line);
        log.push('\n');
    }
    let code = child.wait().await.unwrap().code().unwrap_or(-1);
    let report = serde_json::from_slice(&read_stdout.await.unwrap()).unwrap_or(Value::Null);
    (code, report, log)
}

/// Two runs at once, a manual one during the CronJob's.
///
/// Two apply runs started together: the StatefulSet's writes are
/// conditional, so one rolls `web` back and the other's revert is refused
/// (or it sees the cooldown): one rollback.
///
/// A manual dry run (`stsmend run`, which saves the state too) that read
/// the state before the CronJob's apply run acted and saves it after (held
/// between its decisions and its save by a proxy in front of the API
/// server): its save must not wipe out the apply run's record of the
/// rollback, or the cooldown would not hold. The same bad template deployed
/// again right after is left alone, not rolled back a second time.
/// (Before the fix in src/cluster/write.rs the manual run's save dropped
/// the record and the second rollback happened.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_act_once_and_remember_the_rollback() {
    let w = World::start_sim().await;
    let config = w.config("  stormMinFailing: 10\n");
    let config = config.to_str().unwrap();
    let apply = ["run", "--apply", "--config", config];

    let web = w.id("web");
    let web_good = w.healthy_set("web", 2, "OrderedReady").await;
    w.set_image("web", &w.image("web", "2-crash")).await;
    w.restarted("web-1", 1, ROLLOUT).await;
    let (one, other) = tokio::join!(w.agent(&apply), w.agent(&apply));
    for run in [&one, &other] {
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let statuses: Vec<(String, String)> = one
        .executed(&web)
        .into_iter()
        .chain(other.executed(&web))
        .collect();
    eprintln!("two apply runs: {statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|(a, s)| a == "rollback" && s == "done")
            .count(),
        1,
        "one rollback: {statuses:?}"
    );
    until_healed(&w, config).await;
    assert_eq!(w.healthy("web", ROLLOUT).await, web_good);
    // The refused revert is an Event too (StsmendActionDeferred).
    let events = w.agent_events("web").await;
    for done in ["StsmendRolledBack", "StsmendDeletedPods"] {
        assert_eq!(
            events.iter().filter(|e| *e == done).count(),
            1,
            "{events:?}"
        );
    }

    let id = w.id("db");
    let good = crash_looping_db(&w).await;
    let upstream = w.cp.server_url().trim_start_matches("https://").to_string();
    let proxy = SlowProxy::start(upstream, Duration::from_millis(300))
        .await
        .unwrap();
    let slow = agent_kubeconfig_via(&w, "slow", &proxy.url()).await;
    let (decided_tx, decided_rx) = tokio::sync::oneshot::channel::<()>();
    let dry = ["run", "--config", config];
    let manual = {
        let proxy = &proxy;
        let mut decided = Some(decided_tx);
        agent_watched(&slow, &dry, move |line| {
            // It has decided (a dry run logs each action it would take):
            // its state save, all that is left, waits.
            if line.contains("\"message\":\"action\"") {
                proxy.hold();
                if let Some(tx) = decided.take() {
                    let _ = tx.send(());
                }
            }
        })
    };
    let cron = async {
        decided_rx.await.expect("the manual run decides");
        let run = w.agent(&apply).await;
        proxy.release();
        run
    };
    let ((code, report, log), cron) = tokio::join!(manual, cron);
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        report["failing"][0]["executed"][0]["status"], "dry-run",
        "the manual run decided before the rollback: {report:#}"
    );
    assert_eq!(cron.code, 0, "{}", cron.stderr);
    cron.assert_did(&id, "rollback", "rollback", "done");
    assert_eq!(
        w.sts("db").await.status.unwrap().update_revision,
        Some(good),
        "rolled back (the controller observed it)"
    );
    let record = state_record(&w, &id).await;
    assert_eq!(
        record
            .as_ref()
            .and_then(|r| r["lastAction"]["action"].as_str()),
        Some("rollback"),
        "the rollback is remembered after the manual run saved: {record:?}"
    );
    // The same bad template deployed again (a CD system): the agent
    // remembered what it rolled back from, though the manual run saved
    // last, and does not roll back to fight the writer: it escalates
    // naming it. Once healed, so the crash waited for is the new pod's,
    // not the evicted one's.
    w.healthy("db", ROLLOUT).await;
    w.set_image("db", &w.image("db", "2-crash")).await;
    w.restarted("db-1", 1, ROLLOUT).await;
    let again = w.agent(&apply).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.executed(&id),
        [("escalate".to_string(), "done".to_string())],
        "a fight is escalated, not rolled back: {:#}",
        again.report
    );
    let reapplied: Vec<_> = again
        .findings(&id)
        .into_iter()
        .filter(|(kind, _)| kind == "template_reapplied")
        .collect();
    assert_eq!(reapplied.len(), 1, "{:#}", again.report);
    let why = again.planned(&id)[0]["why"].as_str().unwrap().to_string();
    assert!(
        why.contains("put its template back") && why.contains("not rolling back again"),
        "{why}"
    );
    let events = w.agent_events("db").await;
    assert_eq!(
        events.iter().filter(|e| *e == "StsmendRolledBack").count(),
        1,
        "rolled back once: {events:?}"
    );
}

/// Runs `run --apply` until nothing is failing (at most 5 runs): a forced
/// rollback's eviction refused as a conflict (a crash-looping pod's status
/// moves between the agent's read and its eviction) is left to the next
/// run, which finishes the remediation.
async fn until_healed(w: &World, config: &str) {
    for _ in 0..5 {
        let run = w.agent(&["run", "--apply", "--config", config]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        if run.failing().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The agent's Events on `name` of `reason`, counted.
async fn count(w: &World, name: &str, reason: &str) -> usize {
    w.agent_events(name)
        .await
        .iter()
        .filter(|e| *e == reason)
        .count()
}

/// Patches a key of one of the agent's ConfigMaps as a person would.
async fn edit(w: &World, name: &str, key: &str, value: &str) {
    Api::<ConfigMap>::namespaced(w.client.clone(), "stsmend")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {key: value}})),
        )
        .await
        .unwrap();
}

/// The state and undo ConfigMaps edited into nonsense: every command that
/// reads them stops with exit 2 naming the ConfigMap and key, before any
/// write; the set is untouched. Deleted: the agent forgets (debounce
/// starts again), then acts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_deleted_state_stops_or_forgets_never_acts_twice() {
    let w = World::start_sim().await;
    let id = w.id("db");
    let good = crash_looping_db(&w).await;
    let config = w.config("");
    let config = config.to_str().unwrap();
    // A dry run first: the state exists, counting the failing run.
    let first = w.agent(&["run", "--config", config]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(own_config_map(&w, "stsmend-state").await.is_some());

    let before = w.sts("db").await;
    edit(&w, "stsmend-state", "shop.db", "{\"failingRuns\": \"many\"").await;
    for args in [
        vec!["run", "--apply", "--config", config],
        vec!["plan", "--config", config],
    ] {
        let (code, out) = w.agent_raw(&args).await;
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(
            out.contains("stsmend-state") && out.contains("shop.db"),
            "{args:?} names the ConfigMap and key: {out}"
        );
    }
    assert_eq!(w.sts("db").await.spec, before.spec, "nothing written");
    assert!(w.agent_events("db").await.is_empty());

    // The undo records damaged the same way.
    edit(&w, "stsmend-state", "shop.db", "{}").await;
    Api::<ConfigMap>::namespaced(w.client.clone(), "stsmend")
        .patch(
            "stsmend-undo",
            &PatchParams::apply("person").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "stsmend-undo", "namespace": "stsmend"},
                "data": {"shop.db": "[1, 2"},
            })),
        )
        .await
        .unwrap();
    for args in [
        vec!["run", "--apply", "--config", config],
        vec!["undo", "shop/db", "--config", config],
    ] {
        let (code, out) = w.agent_raw(&args).await;
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(
            out.contains("stsmend-undo") && out.contains("shop.db"),
            "{args:?} names the ConfigMap and key: {out}"
        );
    }
    assert_eq!(w.sts("db").await.spec, before.spec, "nothing written");

    // Both deleted: the agent forgets and starts again; it acts once.
    let cms = Api::<ConfigMap>::namespaced(w.client.clone(), "stsmend");
    for name in ["stsmend-state", "stsmend-undo"] {
        cms.delete(name, &Default::default()).await.unwrap();
    }
    let run = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_did(&id, "rollback", "rollback", "done");
    until_healed(&w, config).await;
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    assert_eq!(count(&w, "db", "StsmendRolledBack").await, 1);
    assert_eq!(count(&w, "db", "StsmendDeletedPods").await, 1);
}

/// The undo ConfigMap near the 1 MiB a ConfigMap may hold (records of
/// earlier actions, all recent): before saving the record of its action
/// the agent prunes the oldest to fit (`undo::MAX_BYTES`), so the action
/// is made once, its record kept, and the ConfigMap never fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_config_map_near_full_is_pruned_to_fit_the_next_record() {
    let w = World::start_sim().await;
    let id = w.id("db");
    let good = crash_looping_db(&w).await;
    let config = w.config("");
    let config = config.to_str().unwrap();

    // Old records filling 1,048,000 bytes of the 1,048,576 a ConfigMap's
    // data may hold, an hour old (not pruned by age): the next record (a
    // StatefulSet's template, about 1.5 KB) would not fit.
    let an_hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let record = |pad: usize, minutes: i64| stsmend::undo::Record {
        at: an_hour_ago + jiff::SignedDuration::from_mins(minutes),
        action: "rollback".into(),
        uid: None,
        generation_after: None,
        prior: stsmend::undo::Prior::Spec {
            spec: [(
                "template".to_string(),
                json!({"metadata": {"annotations": {"pad": "x".repeat(pad)}}}),
            )]
            .into(),
        },
        steps: Vec::new(),
        fields: Vec::new(),
        sync: None,
    };
    let size = |data: &std::collections::BTreeMap<String, String>| -> usize {
        data.iter().map(|(k, v)| k.len() + v.len()).sum()
    };
    let mut book = stsmend::undo::Book::default();
    for i in 0..10 {
        book.records
            .insert(format!("old/set-{i}"), record(100_000, i));
    }
    let short = 1_048_000 - size(&book.to_data().unwrap());
    book.records
        .insert("old/set-9".into(), record(100_000 + short, 9));
    assert_eq!(size(&book.to_data().unwrap()), 1_048_000);
    let cms = Api::<ConfigMap>::namespaced(w.client.clone(), "stsmend");
    cms.patch(
        "stsmend-undo",
        &PatchParams::apply("stsmend"),
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "stsmend-undo", "namespace": "stsmend"},
            "data": book.to_data().unwrap(),
        })),
    )
    .await
    .unwrap();

    let run = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(run.code, 0, "{:#}\n{}", run.report, run.stderr);
    run.assert_did(&id, "rollback", "rollback", "done");
    let data = own_config_map(&w, "stsmend-undo")
        .await
        .and_then(|c| c.data)
        .unwrap_or_default();
    assert!(
        size(&data) <= stsmend::undo::MAX_BYTES,
        "pruned to fit: {} bytes",
        size(&data)
    );
    assert!(
        data.contains_key("shop.db"),
        "the new record is kept: {:?}",
        data.keys()
    );
    assert!(
        !data.contains_key("old.set-0") && data.contains_key("old.set-8"),
        "the oldest went first: {:?}",
        data.keys()
    );
    until_healed(&w, config).await;
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    assert_eq!(count(&w, "db", "StsmendRolledBack").await, 1);
}

/// A slow API server (what the agent sends held by a proxy on loopback,
/// 1.5 s, then 150 ms a chunk):
/// past the run's deadline while reading, the run ends with exit 3 and has
/// written nothing; within it, the forced rollback is done, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_api_server_delays_the_run_but_nothing_is_half_done() {
    let w = World::start_sim().await;
    let id = w.id("db");
    let good = crash_looping_db(&w).await;
    let config = w.config("");
    let config = config.to_str().unwrap();
    let upstream = w.cp.server_url().trim_start_matches("https://").to_string();
    let proxy = SlowProxy::start(upstream, Duration::from_millis(1500))
        .await
        .unwrap();
    let slow = agent_kubeconfig_via(&w, "slow", &proxy.url()).await;
    let before = w.sts("db").await;

    // Too slow for a 4-second deadline (3 s of it for the work).
    let (code, report, log) = agent_watched(
        &slow,
        &["run", "--apply", "--config", config, "--deadline", "4s"],
        |_| {},
    )
    .await;
    assert_eq!(code, 3, "{report:#}\n{log}");
    assert!(
        log.contains("deadline passed while reading"),
        "the log says why: {log}"
    );
    assert_eq!(w.sts("db").await.spec, before.spec, "nothing written");
    assert!(w.agent_events("db").await.is_empty());
    assert!(own_config_map(&w, "stsmend-undo").await.is_none());

    // Slow, but within the shipped deadline.
    proxy.set_delay(Duration::from_millis(150));
    let (code, report, log) =
        agent_watched(&slow, &["run", "--apply", "--config", config], |_| {}).await;
    assert_eq!(code, 0, "{log}");
    let executed = &report["failing"][0]["executed"][0];
    assert_eq!(executed["action"], "rollback", "{report:#}");
    assert_eq!(executed["status"], "done", "{report:#}");
    until_healed(&w, config).await;
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    assert_eq!(count(&w, "db", "StsmendRolledBack").await, 1);
    assert_eq!(count(&w, "db", "StsmendDeletedPods").await, 1);
    assert_eq!(
        format!(
            "{}/{}",
            report["failing"][0]["namespace"]
                .as_str()
                .unwrap_or_default(),
            report["failing"][0]["name"].as_str().unwrap_or_default()
        ),
        id
    );
}

/// kube-controller-manager killed and etcd restarted during a forced
/// rollback. The controller-manager goes just before the run (its lease
/// is still fresh, so the agent does not stand aside); the revert is
/// written, then etcd restarts while the agent waits for the controller
/// to observe it. The controller never does, so nothing is evicted: the
/// run says so (exit 0 or 3, never a pod evicted before the revert is
/// observed). Once the controller-manager is back, later runs finish the
/// remediation (its eviction is part of the same remediation, so the
/// cooldown does not hold it): one rollback, healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_manager_killed_and_etcd_restarted_during_a_rollback() {
    let w = World::start_sim().await;
    let id = w.id("db");
    let good = crash_looping_db(&w).await;
    let config = w.config("");
    let config = config.to_str().unwrap();
    let apply = ["run", "--apply", "--config", config];
    let good_image = w.image("db", "1");

    w.cp.stop_controller_manager().await.unwrap();
    let chaos = async {
        // The revert is written: the template is the good one again.
        let api = w.sts_api();
        stsmend_e2e::wait_until("the revert", ROLLOUT, || {
            let api = api.clone();
            let good_image = good_image.clone();
            async move {
                let s = api.get("db").await.map_err(|e| e.to_string())?;
                let image = s.spec.template.spec.unwrap().containers[0].image.clone();
                (image.as_deref() == Some(good_image.as_str()))
                    .then_some(())
                    .ok_or(format!("{image:?}"))
            }
        })
        .await
        .unwrap();
        w.cp.restart_component(stsmend_e2e::Component::Etcd)
            .await
            .unwrap();
    };
    let (run, ()) = tokio::join!(w.agent(&apply), chaos);
    eprintln!(
        "during: exit {}, steps {:?}\n{}",
        run.code,
        run.steps(&id),
        run.stderr
    );
    assert!(run.code == 0 || run.code == 3, "{}", run.stderr);
    let steps = run.steps(&id);
    assert_eq!(
        steps.first(),
        Some(&("revert".to_string(), "done".to_string())),
        "{:#}",
        run.report
    );
    assert!(
        !steps.iter().any(|(s, st)| s == "evict" && st == "done"),
        "nothing evicted before the controller observed the revert: {steps:?}"
    );
    assert!(
        !w.agent_events("db")
            .await
            .contains(&"StsmendDeletedPods".to_string())
    );

    w.cp.start_controller_manager().await.unwrap();
    for _ in 0..10 {
        let run = w.agent(&apply).await;
        eprintln!("after: exit {}, executed {:?}", run.code, run.executed(&id));
        assert!(run.code == 0 || run.code == 3, "{}", run.stderr);
        if run.code == 0 && run.failing().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    let events = w.agent_events("db").await;
    assert_eq!(
        events.iter().filter(|e| *e == "StsmendRolledBack").count(),
        1,
        "rolled back once: {events:?}"
    );
    assert!(
        events.iter().filter(|e| *e == "StsmendDeletedPods").count() <= 1,
        "{events:?}"
    );
}

/// The state ConfigMap near the 1 MiB a ConfigMap may hold: records of
/// StatefulSets long gone, each with a long last action, as a busy cluster
/// could leave. The run reads it whole, acts once on the set that fails,
/// and saves only the records of what fails now: the state shrinks instead
/// of growing past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_config_map_near_its_limit_is_read_and_shrinks() {
    let w = World::start_sim().await;
    let id = w.id("db");
    let good = crash_looping_db(&w).await;
    let config = w.config("");
    let config = config.to_str().unwrap();
    // A dry run first, so the state exists and counts the failing run.
    let first = w.agent(&["run", "--config", config]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);

    let why = "x".repeat(400);
    let mut data = serde_json::Map::new();
    for i in 0..2000 {
        let record = json!({
            "uid": format!("gone-{i}"),
            "lastAction": {"at": "2026-11-30T10:00:00Z", "action": "rollback", "why": why},
        });
        data.insert(format!("gone.set-{i}"), Value::String(record.to_string()));
    }
    // Written as the agent writes its state (server-side apply, its field
    // manager), as records it left itself would be.
    let mut saved = own_config_map(&w, "stsmend-state").await.unwrap();
    saved.metadata.managed_fields = None;
    let mut all = saved.data.unwrap_or_default();
    all.extend(
        data.into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap().to_string())),
    );
    Api::<ConfigMap>::namespaced(w.client.clone(), "stsmend")
        .patch(
            "stsmend-state",
            &PatchParams::apply("stsmend").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "stsmend-state", "namespace": "stsmend"},
                "data": all,
            })),
        )
        .await
        .unwrap();
    let size = |cm: ConfigMap| -> usize {
        cm.data
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum()
    };
    let big = size(own_config_map(&w, "stsmend-state").await.unwrap());
    assert!(big > 900 * 1024, "{big} bytes");

    let run = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_did(&id, "rollback", "rollback", "done");
    let after = own_config_map(&w, "stsmend-state").await.unwrap();
    assert!(
        !after.data.as_ref().unwrap().contains_key("gone.set-0"),
        "records of what no longer fails are not kept"
    );
    assert!(size(after) < 16 * 1024, "the state shrank");
    assert!(state_record(&w, &id).await.is_some());
    until_healed(&w, config).await;
    assert_eq!(w.healthy("db", ROLLOUT).await, good);
    assert_eq!(count(&w, "db", "StsmendRolledBack").await, 1);
}
