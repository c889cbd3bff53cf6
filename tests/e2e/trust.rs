//! Scenario 16 (issue 12), diagnosis you can trust: causes outside the
//! workload are named and escalated, never "fixed" by rewriting a team's
//! spec; a rollback happens only where the template change explains the
//! failure; and a write the cluster refuses (an eviction a
//! PodDisruptionBudget forbids) is tried once, so the run still ends in
//! seconds.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use serde_json::{Value, json};
use stsmend_e2e::sim::{NodeSpec, node_group};
use stsmend_e2e::wait_until;

use crate::ROLLOUT;
use crate::world::{Run, World, stateful_set, unreachable_webhook};

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
    w.apply(&unreachable_webhook("{app: db}")).await;
    restart(&w, "db").await;
    let message = w.event("db", "FailedCreate", ROLLOUT).await;
    assert!(message.contains("failed calling webhook"), "{message}");
    // Named with the configuration that registers it and what it calls,
    // which the shipped role may list.
    assert_escalated_only(
        &w,
        "db",
        "webhook_unavailable",
        &[
            "guard.stsmend.test (ValidatingWebhookConfiguration guard, calling https://127.0.0.1:9/validate, failurePolicy Fail)",
        ],
    )
    .await;
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

/// The assessment of `id` in a run's report.
fn assessment<'a>(run: &'a Run, id: &str) -> &'a Value {
    run.report["failing"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|a| {
                format!(
                    "{}/{}",
                    a["namespace"].as_str().unwrap_or_default(),
                    a["name"].as_str().unwrap_or_default()
                ) == id
            })
        })
        .unwrap_or_else(|| panic!("{id} is not failing: {:#}", run.report))
}

/// The findings of `kind` about `id`.
fn findings_of<'a>(run: &'a Run, id: &str, kind: &str) -> Vec<&'a Value> {
    assessment(run, id)["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// Issue 12's six-minute run, and what the agent now predicts instead: a
/// crash loop on OrderedReady is rolled back, and the pod left on the
/// abandoned revision would be evicted in the same remediation, but a
/// PodDisruptionBudget with maxUnavailable 0 forbids it (2 healthy of 3
/// wanted: under IfHealthyBudget a pod that is not Ready goes only while
/// the budget is healthy). The agent reads that from the budget's status as
/// the real disruption controller writes it: the rollback is made without
/// the eviction, the next run escalates naming the budget and what
/// AlwaysAllow would change, and no eviction is ever sent. An eviction the
/// prediction cannot foresee (a team policy's, of a Ready pod) is refused
/// with 429, which kube's client used to retry for minutes: it is tried
/// once, and the report names the budget. A crash loop and not a bad image:
/// the eviction API lets a Pending pod (one that cannot pull) go without
/// asking its budget, a Running one it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_eviction_is_foreseen_or_tried_once_and_names_its_budget() {
    let w = World::start().await;
    let id = w.id("db");
    w.healthy_set("db", 3, "OrderedReady").await;
    w.apply(
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: db-budget}\nspec:\n  maxUnavailable: 0\n  selector: {matchLabels: {app: db}}\n",
    )
    .await;
    w.set_image("db", &w.image("db", "2-crash")).await;
    w.pod_waiting("db-2", "CrashLoopBackOff", ROLLOUT).await;
    let config = w.config("  cooldown: 0s\n");
    let config = config.to_str().unwrap();
    let stuck = w.pod("db-2").await;
    let evictions =
        |run: &Run| run.report["apiRequests"]["by_request"]["create pods/eviction"].clone();

    // The rollback, without the eviction the budget would refuse.
    let first = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    first.assert_did(&id, "rollback", "rollback", "done");
    let blocked = findings_of(&first, &id, "eviction_blocked");
    assert_eq!(blocked.len(), 1, "{:#}", first.report);
    assert_eq!(blocked[0]["data"]["budget"], "db-budget");
    assert_eq!(blocked[0]["data"]["pods"], serde_json::json!(["db-2"]));
    assert_eq!(blocked[0]["data"]["current_healthy"], 2);
    assert_eq!(blocked[0]["data"]["desired_healthy"], 3);
    assert!(
        first.planned(&id)[0].get("evict").is_none(),
        "a plain rollback: {:?}",
        first.planned(&id)
    );
    assert!(
        evictions(&first).is_null(),
        "{:#}",
        first.report["apiRequests"]
    );

    // The next run: db-2 waits forever on the abandoned revision, and
    // cannot be evicted: a person hears why and what would allow it.
    let second = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(
        second.rung(&id).as_deref(),
        Some("delete_stuck_pods"),
        "{:#}",
        second.report
    );
    let planned = second.planned(&id);
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0]["action"], "escalate", "{planned:?}");
    let why = assessment(&second, &id)["plan"]["actions"][0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("cannot be evicted: PodDisruptionBudget")
            && why.contains("db-budget")
            && why.contains("IfHealthyBudget (the default)")
            && why.contains("AlwaysAllow"),
        "{why}"
    );
    assert!(
        evictions(&second).is_null(),
        "{:#}",
        second.report["apiRequests"]
    );
    let after = w.pod("db-2").await;
    assert_eq!(
        after.metadata.uid, stuck.metadata.uid,
        "db-2 is still there"
    );

    // A team policy's eviction of a Ready pod: refused by the API server,
    // tried once.
    let policies = w.write_file(
        "policies/evict-ready.rhai",
        &format!(
            "//! Evicts a Ready pod, which the budget refuses.\n//! @namespaces {}\n\n[delete_pods([\"db-0\"], \"a Ready pod\", #{{any_pod: true}})]\n",
            w.ns
        ),
    );
    let started = Instant::now();
    let third = w
        .agent(&[
            "run",
            "--apply",
            "--config",
            config,
            "--policies",
            policies.parent().unwrap().to_str().unwrap(),
        ])
        .await;
    let took = started.elapsed();
    eprintln!("the run with the refused eviction took {took:?}");
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(
        third.executed(&id),
        [("delete_pods".to_string(), "disallowed".to_string())],
        "{:#}",
        third.report
    );
    // A hang detector, not a benchmark: the old client retried the 429 for
    // about six minutes.
    assert!(took < Duration::from_secs(90), "the run took {took:?}");
    // What the executed action says, wherever in it.
    let detail = assessment(&third, &id)["executed"][0].to_string();
    assert!(
        detail.contains("PodDisruptionBudget")
            && detail.contains("db-budget allows 0 disruption(s)"),
        "{detail}"
    );
    assert!(detail.contains("one attempt, not retried"), "{detail}");
    assert!(detail.contains("the pod refused is Ready"), "{detail}");
    // One attempt: v1.20 has no policy/v1 Eviction, so the attempt is the
    // policy/v1 body (refused 400) and then the policy/v1beta1 one (429).
    assert_eq!(evictions(&third), 2, "{:#}", third.report["apiRequests"]);
    assert!(
        !third.stderr.contains("retrying"),
        "nothing was retried: {}",
        third.stderr
    );
    let ready = w.pod("db-0").await;
    assert!(
        ready.metadata.deletion_timestamp.is_none(),
        "db-0 is still there"
    );
    assert_eq!(
        w.agent_events("db").await,
        [
            "StsmendRolledBack",
            "StsmendEscalated",
            "StsmendActionDeferred"
        ]
    );
}

/// An object a pod template names that must exist (a PriorityClass, a
/// ServiceAccount), missing both ways it happens. `db`'s template change
/// names one nobody created: the change explains the refused pods, so the
/// agent rolls back (one write) and the set is healthy on its old
/// revision. `cache`'s was deleted under it and only an annotation changed:
/// rolling back would re-create pods that the same admission refuses, so
/// the agent escalates naming it and writes nothing.
struct Missing<'a> {
    /// The finding kind, and the `data` key that names the object.
    kind: &'a str,
    key: &'a str,
    /// The pod spec field that names it.
    field: &'a str,
    /// The manifest of the one `cache` uses, named `kept`, created first.
    object: &'a str,
    kept: &'a str,
    /// What `db`'s change names instead.
    absent: &'a str,
    /// `kubectl delete` of `kept`.
    delete: &'a [&'a str],
    /// What the FailedCreate events say.
    refusal: &'a str,
}

async fn missing_both_ways(w: &World, m: Missing<'_>) -> Run {
    let (db, cache) = (w.id("db"), w.id("cache"));
    w.apply(m.object).await;
    let good = w.healthy_set("db", 2, "OrderedReady").await;
    let sts = stateful_set("cache", 1, &w.image("cache", "1"), true, "OrderedReady").replace(
        "      containers:\n",
        &format!("      {}: {}\n      containers:\n", m.field, m.kept),
    );
    w.apply(&sts).await;
    w.healthy("cache", ROLLOUT).await;

    w.patch(
        "db",
        json!({"spec": {"template": {"spec": {m.field: m.absent}}}}),
    )
    .await;
    w.cp.kubectl(m.delete).await.unwrap();
    restart(w, "cache").await;
    for set in ["db", "cache"] {
        let message = w.event(set, "FailedCreate", ROLLOUT).await;
        assert!(message.contains(m.refusal), "{message}");
    }
    let cache_before = w.sts("cache").await;

    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (id, name, explains, rung) in [
        (&db, m.absent, true, "rollback"),
        (&cache, m.kept, false, "escalate"),
    ] {
        let missing = findings_of(&run, id, m.kind);
        assert_eq!(missing.len(), 1, "{:#}", run.report);
        assert_eq!(missing[0]["data"][m.key], name);
        assert_eq!(
            missing[0]["change"]["explains"], explains,
            "{:#}",
            missing[0]
        );
        run.assert_did(id, rung, rung, "done");
    }

    assert_eq!(
        w.healthy("db", ROLLOUT).await,
        good,
        "back on the old revision"
    );
    let spec = serde_json::to_value(w.sts("db").await.spec.template.spec).unwrap();
    assert_eq!(spec[m.field], Value::Null, "{spec:#}");
    assert_eq!(w.agent_events("db").await, ["StsmendRolledBack"]);
    let cache_after = w.sts("cache").await;
    assert_eq!(
        cache_after.metadata.generation,
        cache_before.metadata.generation
    );
    assert_eq!(cache_after.spec, cache_before.spec);
    assert_eq!(w.agent_events("cache").await, ["StsmendEscalated"]);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_priority_class_is_rolled_back_only_when_the_change_named_it() {
    let w = World::start().await;
    let run = missing_both_ways(
        &w,
        Missing {
            kind: "priority_class_missing",
            key: "priority_class",
            field: "priorityClassName",
            object: "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: silver}\nvalue: 1000\n",
            kept: "silver",
            absent: "gold",
            delete: &["delete", "priorityclass", "silver"],
            refusal: "no PriorityClass with name",
        },
    )
    .await;
    let plan = assessment(&run, &w.id("cache"))["plan"].to_string();
    assert!(
        plan.contains("PriorityClass silver"),
        "the escalation names it: {plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_account_is_rolled_back_only_when_the_change_named_it() {
    let w = World::start_sim().await;
    let ns = w.ns.clone();
    let run = missing_both_ways(
        &w,
        Missing {
            kind: "service_account_missing",
            key: "service_account",
            field: "serviceAccountName",
            object: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reporter}\n",
            kept: "reporter",
            absent: "auditor",
            delete: &["delete", "serviceaccount", "reporter", "-n", &ns],
            refusal: "service account",
        },
    )
    .await;
    let plan = assessment(&run, &w.id("cache"))["plan"].to_string();
    assert!(
        plan.contains(&format!("ServiceAccount {ns}/reporter")),
        "the escalation names it: {plan}"
    );
}

/// Issue 12's lost volume: a replica whose local volume was provisioned on
/// a node that is gone. The test plays a local-volume provisioner (as
/// local-path-provisioner does): the StorageClass binds on first use, the
/// scheduler picks a node and writes it on the claim, and a PersistentVolume
/// pinned to that node is created for the claim. The node is then deleted;
/// the pod garbage collector removes the pod, and its replacement cannot be
/// placed anywhere ("volume node affinity conflict"). Only the node's owner
/// can help: the agent names the claim, the volume and the lost node, and
/// escalates without writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_pinned_to_a_lost_node_is_escalated() {
    let w = World::start_sim().await;
    let id = w.id("db");
    w.cp.apply(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: local-disk}\nprovisioner: e2e.stsmend.io/local\nvolumeBindingMode: WaitForFirstConsumer\n",
    )
    .await
    .unwrap();
    let mut sts = stateful_set("db", 1, &w.image("db", "1"), true, "OrderedReady");
    sts.push_str(
        "  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec:\n      accessModes: [ReadWriteOnce]\n      storageClassName: local-disk\n      resources: {requests: {storage: 1Gi}}\n",
    );
    w.apply(&sts).await;
    let node = provision_local_volume(&w, "data-db-0", "db-data-0").await;
    w.healthy("db", ROLLOUT).await;
    assert_eq!(
        w.pod("db-0").await.spec.unwrap().node_name.as_deref(),
        Some(node.as_str())
    );

    w.sim().remove_node(&node).await.unwrap();
    // The pod garbage collector deletes pods of a deleted node after 40 s.
    w.unschedulable("db-0", Duration::from_secs(150)).await;
    let before = w.sts("db").await;

    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let conflict = findings_of(&run, &id, "volume_node_conflict");
    assert_eq!(conflict.len(), 1, "{:#}", run.report);
    assert_eq!(conflict[0]["pods"], json!(["db-0"]));
    assert_eq!(
        conflict[0]["data"]["volumes"],
        json!([{"claim": "data-db-0", "volume": "db-data-0", "node": node, "node_exists": false, "zone": null,
                "requires": format!("kubernetes.io/hostname in ({node})"), "nodes_matching": []}]),
        "{:#}",
        conflict[0]
    );
    assert_eq!(
        conflict[0]["change"]["explains"], false,
        "{:#}",
        conflict[0]
    );
    assert!(
        findings_of(&run, &id, "unschedulable").is_empty(),
        "not misread as a node selector: {:#}",
        run.report
    );
    let summary = conflict[0]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "PersistentVolume db-data-0): its volume requires kubernetes.io/hostname in ({node}): no node has it"
        )),
        "the volume's own node affinity is named: {summary}"
    );
    run.assert_did(&id, "escalate", "escalate", "done");
    let plan = assessment(&run, &id)["plan"].to_string();
    assert!(plan.contains("data-db-0"), "{plan}");
    assert!(plan.contains(&node), "{plan}");
    let after = w.sts("db").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);
    assert_eq!(w.agent_events("db").await, ["StsmendEscalated"]);
}

/// What a local-volume provisioner does for `claim`: waits for the
/// scheduler to choose a node for it, then creates `volume` on that node,
/// pre-bound to the claim. Returns the node.
async fn provision_local_volume(w: &World, claim: &str, volume: &str) -> String {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(w.client.clone(), &w.ns);
    let node = wait_until(
        format!("a node selected for claim {claim}"),
        ROLLOUT,
        || {
            let claims = claims.clone();
            async move {
                let c = claims.get(claim).await.map_err(|e| e.to_string())?;
                c.metadata
                    .annotations
                    .and_then(|a| a.get("volume.kubernetes.io/selected-node").cloned())
                    .ok_or_else(|| "no node selected yet".to_string())
            }
        },
    )
    .await
    .unwrap();
    w.cp.apply(&format!(
        r#"apiVersion: v1
kind: PersistentVolume
metadata: {{name: {volume}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local-disk
  claimRef: {{namespace: {ns}, name: {claim}}}
  local: {{path: /mnt/disks/{volume}}}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {{key: kubernetes.io/hostname, operator: In, values: [{node}]}}
"#,
        ns = w.ns
    ))
    .await
    .unwrap();
    node
}

/// A GPU node group whose machines never become Nodes (the cloud is out
/// of them): the agent scales it once, waits while the new node has
/// `readyWithin` to turn Ready, and past it escalates instead of adding
/// yet another machine that would not come either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_group_whose_nodes_never_come_is_scaled_once_then_escalated() {
    let w = World::start_sim().await;
    let id = w.id("trainer");
    node_group::install_crd(&w.client).await.unwrap();
    let mut md = node_group::manifest(&w.ns, "gpu", 0, &NodeSpec::new("gpu").gpus(1));
    md["metadata"]["annotations"] = json!({"e2e.stsmend.io/fault": "provision-fails"});
    node_group::create_from(&w.client, &md).await.unwrap();
    w.healthy_set("trainer", 1, "OrderedReady").await;
    w.patch(
        "trainer",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}),
    )
    .await;
    w.unschedulable("trainer-0", ROLLOUT).await;
    let before = w.sts("trainer").await;
    let config = w.config(
        "nodeGroups:\n- name: gpu\n  resource: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, namespace: shop, name: gpu}\n  max: 3\n  readyWithin: 20s\n  provides:\n    resources: {nvidia.com/gpu: \"1\"}\n",
    );
    let config = config.to_str().unwrap();
    let mds = node_group::api(&w.client, &w.ns);
    let replicas = || async { mds.get("gpu").await.unwrap().data["spec"]["replicas"].clone() };

    let first = w.agent(&["run", "--apply", "--config", config]).await;
    let scaled = Instant::now();
    first.assert_did(&id, "scale_nodes", "scale_nodes", "done");
    assert_eq!(replicas().await, 1);
    w.event("gpu", "FailedCreate", ROLLOUT).await;

    let second = w.agent(&["run", "--apply", "--config", config]).await;
    second.assert_did(&id, "scale_nodes", "wait", "done");
    let plan = assessment(&second, &id)["plan"].to_string();
    assert!(plan.contains("node group gpu was scaled out"), "{plan}");
    assert_eq!(replicas().await, 1, "not scaled again while it may come");

    tokio::time::sleep(
        (scaled + Duration::from_secs(22)).saturating_duration_since(Instant::now()),
    )
    .await;
    let third = w.agent(&["run", "--apply", "--config", config]).await;
    third.assert_did(&id, "scale_nodes", "escalate", "done");
    let plan = assessment(&third, &id)["plan"].to_string();
    assert!(plan.contains("not scaling it again"), "{plan}");
    assert!(plan.contains("within 20s"), "{plan}");
    assert_eq!(replicas().await, 1, "scaled once in all");
    assert_eq!(w.sts("trainer").await.spec, before.spec);
    assert_eq!(
        w.agent_events("trainer").await,
        ["StsmendScaledNodes", "StsmendWaiting", "StsmendEscalated"]
    );
}

/// Nodes full of other workloads: `db` is scaled from 2 to 3 while pods of
/// another team, bound to every node, leave each of them less CPU than a
/// replica asks. Its template did not change, so no rollback or spec fix
/// can help: the agent names the full nodes and escalates, writing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_full_of_other_workloads_are_escalated() {
    let w = World::start_sim().await;
    let id = w.id("db");
    let sts = stateful_set("db", 2, &w.image("db", "1"), true, "OrderedReady")
        .replace("{cpu: 100m, memory: 128Mi}", "{cpu: \"3\", memory: 128Mi}");
    w.apply(&sts).await;
    w.healthy("db", ROLLOUT).await;

    // Each simulated node has 8 CPUs; leave 1 free on each, whatever db
    // holds there. Bound by nodeName, as a DaemonSet's pods are.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(w.client.clone(), &w.ns);
    let used: Vec<String> = pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.spec?.node_name)
        .collect();
    let mut fillers = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: batch}\n");
    for node in ["node-1", "node-2", "node-3"] {
        let free = 8 - 3 * used.iter().filter(|n| *n == node).count();
        fillers.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: filler-{node}, namespace: batch}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: work\n    image: {image}\n    resources:\n      requests: {{cpu: \"{cpu}\"}}\n",
            image = w.image("batch", "1"),
            cpu = free - 1,
        ));
    }
    w.cp.apply(&fillers).await.unwrap();
    w.patch("db", json!({"spec": {"replicas": 3}})).await;
    w.unschedulable("db-2", ROLLOUT).await;
    let before = w.sts("db").await;

    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let full = findings_of(&run, &id, "nodes_full");
    assert_eq!(full.len(), 1, "{:#}", run.report);
    assert_eq!(full[0]["pods"], json!(["db-2"]), "{:#}", full[0]);
    assert_eq!(full[0]["change"]["explains"], false, "{:#}", full[0]);
    let summary = full[0]["summary"].as_str().unwrap();
    assert!(summary.contains("no free cpu left"), "{summary}");
    run.assert_did(&id, "escalate", "escalate", "done");
    let after = w.sts("db").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);
    assert_eq!(w.agent_events("db").await, ["StsmendEscalated"]);
}

/// A node that stops reporting (its kubelet stopped): the node turns
/// NotReady, the node controller marks its pods not Ready, and `db` has
/// fewer Ready replicas than it declares, with no change to blame. The
/// agent names the node and escalates; nothing in the spec can help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_reporting_is_escalated() {
    let w = World::start().await;
    let id = w.id("db");
    w.healthy_set("db", 2, "OrderedReady").await;
    let before = w.sts("db").await;
    w.real().stop_kubelet("node-1").await.unwrap();
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(w.client.clone(), &w.ns);
    // The node controller waits its 40 s grace period, then marks the
    // node's pods not Ready.
    wait_until("db's pods marked not Ready", ROLLOUT * 2, || {
        let sets = sets.clone();
        async move {
            let sts = sets.get("db").await.map_err(|e| e.to_string())?;
            let ready = sts.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            if ready < 2 {
                Ok(())
            } else {
                Err(format!("{ready} Ready"))
            }
        }
    })
    .await
    .unwrap();

    let config = w.config("");
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let down = findings_of(&run, &id, "node_not_ready");
    assert!(!down.is_empty(), "{:#}", run.report);
    for f in &down {
        assert!(f["summary"].as_str().unwrap().contains("node-1"), "{f:#}");
    }
    run.assert_did(&id, "escalate", "escalate", "done");
    let after = w.sts("db").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);
    assert_eq!(w.agent_events("db").await, ["StsmendEscalated"]);
}
