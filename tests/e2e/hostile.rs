//! Forged undo records against the real control plane (issue 22): whoever
//! can edit the agent's `stsmend-undo` ConfigMap must not borrow the write
//! access of the person who runs `stsmend undo --apply`. Each record below
//! is refused, with its reason, and nothing is written, although the undo
//! runs with the cluster admin's kubeconfig, as an operator's would.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::world::World;

/// `stsmend undo shop/db --apply` as the cluster admin: exit code and output.
async fn undo_as_admin(w: &World) -> (i32, String) {
    w.stsmend_as(w.cp.admin_kubeconfig(), &["undo", "shop/db", "--apply"])
        .await
}

async fn forge(w: &World, record: Value) {
    let cms: Api<ConfigMap> = Api::namespaced(w.client.clone(), "stsmend");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "stsmend-undo", "namespace": "stsmend"},
        "data": {"shop.db": record.to_string()},
    });
    cms.patch(
        "stsmend-undo",
        &PatchParams::apply("forger").force(),
        &Patch::Apply(&cm),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn forged_undo_records_write_nothing() {
    let w = World::start_sim().await;
    w.healthy_set("db", 2, "OrderedReady").await;
    w.cp.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: coredns, namespace: kube-system}\nspec:\n  replicas: 2\n  selector: {matchLabels: {k8s-app: kube-dns}}\n  template:\n    metadata: {labels: {k8s-app: kube-dns}}\n    spec: {containers: [{name: coredns, image: registry.example/coredns:1}]}\n",
    )
    .await
    .unwrap();
    let sts = w.sts("db").await;
    let uid = sts.metadata.uid.clone().unwrap();
    let generation = sts.metadata.generation.unwrap();
    let mut template = serde_json::to_value(&sts.spec.template).unwrap();
    template["spec"]["hostPID"] = json!(true);
    template["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    template["spec"]["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
    let at = jiff::Timestamp::now().to_string();
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();
    let spec = |fields: Value, spec: Value, uid: Value, generation: Value, at: &str| {
        json!({"at": at, "action": "roll back to revision 1", "uid": uid, "generationAfter": generation,
               "prior": {"kind": "spec", "spec": spec}, "fields": fields})
    };
    let cases = [
        (
            "a node-group record aimed at CoreDNS, no node group configured",
            json!({"at": at, "action": "scale node group gpu", "uid": uid,
                   "prior": {"kind": "nodeGroup", "group": "gpu",
                             "target": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "kube-system", "name": "coredns"},
                             "replicas": 0, "replicas_after": 2}}),
            "node group \"gpu\" is not configured",
        ),
        (
            "a spec record without uid or generation",
            spec(
                json!(["replicas"]),
                json!({"replicas": 0}),
                Value::Null,
                Value::Null,
                &at,
            ),
            "names no uid",
        ),
        (
            "fields outside the restorable list",
            spec(
                json!(["replicas"]),
                json!({"replicas": 0, "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}),
                json!(uid),
                json!(generation),
                &at,
            ),
            "which no action of the agent writes",
        ),
        (
            "a privileged hostPID hostPath template",
            spec(
                json!(["template"]),
                json!({"template": template}),
                json!(uid),
                json!(generation),
                &at,
            ),
            "none of the StatefulSet's ControllerRevisions",
        ),
        (
            "a record dated in the future",
            spec(
                json!(["replicas"]),
                json!({"replicas": 1}),
                json!(uid),
                json!(generation),
                &future,
            ),
            "in the future",
        ),
    ];
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), "kube-system");
    for (what, record, reason) in cases {
        forge(&w, record).await;
        let (code, out) = undo_as_admin(&w).await;
        assert_eq!(code, 1, "{what}: refused: {out}");
        assert!(out.contains(reason), "{what}: {out}");
        let now = w.sts("db").await;
        assert_eq!(
            now.metadata.generation,
            Some(generation),
            "{what}: the set untouched"
        );
        let coredns = deployments.get("coredns").await.unwrap();
        assert_eq!(coredns.spec.replicas, Some(2), "{what}: CoreDNS untouched");
    }
    assert!(
        !w.agent_events("db")
            .await
            .iter()
            .any(|r| r == "StsmendUndone"),
        "nothing was undone"
    );
}
