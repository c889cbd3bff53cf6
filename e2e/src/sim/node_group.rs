//! A node group the agent can scale, shaped like Cluster API's
//! MachineDeployment (`cluster.x-k8s.io/v1beta1`, with a `/scale`
//! subresource), so the agent's node-group code is exercised against the
//! same API surface it meets on a CAPI-managed cluster.
//!
//! There are no Machines: the simulation turns `spec.replicas` directly into
//! Nodes named `<md-name>-<i>`, built from `spec.template.spec.node` (an
//! e2e-only field standing in for the infrastructure template):
//!
//! ```yaml
//! spec:
//!   replicas: 1
//!   template:
//!     spec:
//!       node:
//!         labels: {nvidia.com/gpu.present: "true"}
//!         capacity: {nvidia.com/gpu: "1"}          # overrides NodeSpec::new's defaults
//!         taints: [{key: nvidia.com/gpu, effect: NoSchedule}]
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::events::{EventType, Involved, Recorder};
use super::faults::{FAULT_ANNOTATION, PROVISION_FAILS};
use super::nodes::NodeSpec;
use super::{Shared, not_found};
use crate::error::{Error, Result};
use crate::wait::wait_until;

pub const GROUP: &str = "cluster.x-k8s.io";
pub const VERSION: &str = "v1beta1";
pub const API_VERSION: &str = "cluster.x-k8s.io/v1beta1";
pub const KIND: &str = "MachineDeployment";
pub const PLURAL: &str = "machinedeployments";
pub const CRD_NAME: &str = "machinedeployments.cluster.x-k8s.io";

/// Label on every Node of a group, naming the MachineDeployment; the
/// group's `status.selector` (the `/scale` selector) selects on it.
pub const DEPLOYMENT_LABEL: &str = "cluster.x-k8s.io/deployment-name";
pub const CLUSTER_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// `spec.clusterName` of the MachineDeployments [`create`] makes.
pub const CLUSTER_NAME: &str = "sim";

/// How long a new machine takes to become a Node: long enough that a
/// scenario sees a scale-up in progress, short enough not to slow it down.
pub const PROVISION_DELAY: Duration = Duration::from_millis(1500);

const SYNC_INTERVAL: Duration = Duration::from_secs(1);

pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// MachineDeployments of one namespace.
pub fn api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &api_resource())
}

/// Creates the MachineDeployment CRD (if missing) and waits until it is
/// Established.
pub async fn install_crd(client: &kube::Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(crd_manifest())
        .map_err(|e| Error::Other(format!("MachineDeployment CRD: {e}")))?;
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    wait_until(
        format!("CRD {CRD_NAME} to be Established"),
        Duration::from_secs(30),
        || {
            let crds = crds.clone();
            async move {
                let crd = crds.get(CRD_NAME).await.map_err(|e| e.to_string())?;
                let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                if conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                {
                    Ok(())
                } else {
                    Err(format!("conditions: {conditions:?}"))
                }
            }
        },
    )
    .await
}

/// Creates a MachineDeployment of `replicas` nodes shaped like `template`
/// (its name is ignored: nodes are named `<name>-<i>`).
pub async fn create(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: i32,
    template: &NodeSpec,
) -> Result<DynamicObject> {
    create_from(client, &manifest(ns, name, replicas, template)).await
}

/// Creates a MachineDeployment from a manifest, e.g. one from [`manifest`]
/// with a fault annotation added.
pub async fn create_from(client: &kube::Client, manifest: &Value) -> Result<DynamicObject> {
    let ns = manifest["metadata"]["namespace"].as_str().ok_or_else(|| {
        Error::Other("MachineDeployment manifest without metadata.namespace".into())
    })?;
    let md: DynamicObject = serde_json::from_value(manifest.clone())
        .map_err(|e| Error::Other(format!("MachineDeployment manifest: {e}")))?;
    Ok(api(client, ns).create(&PostParams::default(), &md).await?)
}

/// The MachineDeployment [`create`] makes, as JSON.
pub fn manifest(ns: &str, name: &str, replicas: i32, template: &NodeSpec) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "clusterName": CLUSTER_NAME,
            "replicas": replicas,
            "selector": {"matchLabels": {DEPLOYMENT_LABEL: name}},
            "template": {
                "metadata": {"labels": {DEPLOYMENT_LABEL: name, CLUSTER_LABEL: CLUSTER_NAME}},
                "spec": {
                    "clusterName": CLUSTER_NAME,
                    "version": "v1.20.2",
                    "infrastructureRef": {
                        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                        "kind": "SimMachineTemplate",
                        "name": name,
                    },
                    "node": {
                        "labels": template.labels,
                        "capacity": template.capacity,
                        "taints": template.taints,
                    },
                },
            },
        },
    })
}

/// Sets `spec.replicas` through the `/scale` subresource, as the agent and
/// the cluster-autoscaler do.
pub async fn scale(client: &kube::Client, ns: &str, name: &str, replicas: i32) -> Result<Scale> {
    let patch = json!({"spec": {"replicas": replicas}});
    Ok(api(client, ns)
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// The node a machine of `md` becomes.
fn node_spec(md: &DynamicObject, index: u32) -> NodeSpec {
    let md_name = md.name_any();
    let mut spec = NodeSpec::new(format!("{md_name}-{index}"));
    let node = &md.data["spec"]["template"]["spec"]["node"];
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect()
    };
    spec.labels.extend(strings(&node["labels"]));
    spec.capacity.extend(strings(&node["capacity"]));
    for t in node["taints"].as_array().into_iter().flatten() {
        match serde_json::from_value::<Taint>(t.clone()) {
            Ok(t) => spec.taints.push(t),
            Err(e) => tracing::warn!(md = %md_name, "ignoring taint {t}: {e}"),
        }
    }
    spec.label(DEPLOYMENT_LABEL, md_name).label(
        CLUSTER_LABEL,
        md.data["spec"]["clusterName"]
            .as_str()
            .unwrap_or(CLUSTER_NAME),
    )
}

type Key = (String, String);

/// Reconciles every MachineDeployment with the simulated nodes, once a
/// second. Nothing to do (and nothing logged) while the CRD is not installed.
pub(super) async fn run(shared: Arc<Shared>) {
    let api: Api<DynamicObject> = Api::all_with(shared.client.clone(), &api_resource());
    let recorder = Recorder::new(shared.client.clone(), "machineset-controller");
    let mut provisioning: HashMap<(Key, u32), Instant> = HashMap::new();
    let mut reported: HashSet<String> = HashSet::new();
    let mut failing = false;
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mds = match api.list(&ListParams::default()).await {
            Ok(list) => {
                failing = false;
                list.items
            }
            Err(e) if not_found(&e) => continue,
            Err(e) => {
                if !failing {
                    tracing::warn!("listing MachineDeployments (retrying every tick): {e}");
                    failing = true;
                }
                continue;
            }
        };
        let mut groups: HashSet<Key> = HashSet::new();
        for md in &mds {
            let key = (md.namespace().unwrap_or_default(), md.name_any());
            groups.insert(key.clone());
            reconcile(
                &shared,
                &recorder,
                md,
                &key,
                &mut provisioning,
                &mut reported,
            )
            .await;
        }
        provisioning.retain(|(key, _), _| groups.contains(key));
        let orphans: Vec<String> = shared
            .nodes()
            .nodes
            .values()
            .filter(|n| n.group.as_ref().is_some_and(|g| !groups.contains(g)))
            .map(|n| n.spec.name.clone())
            .collect();
        for name in orphans {
            match shared.remove(&name).await {
                Ok(()) => tracing::info!(node = %name, "MachineDeployment gone: node removed"),
                Err(e) => {
                    tracing::warn!(node = %name, "removing node of a deleted MachineDeployment: {e}")
                }
            }
        }
    }
}

async fn reconcile(
    shared: &Shared,
    recorder: &Recorder,
    md: &DynamicObject,
    key: &Key,
    provisioning: &mut HashMap<(Key, u32), Instant>,
    reported: &mut HashSet<String>,
) {
    let name = &key.1;
    let desired = md.data["spec"]["replicas"]
        .as_i64()
        .unwrap_or(1)
        .clamp(0, i64::from(u32::MAX)) as u32;
    let fails = md
        .annotations()
        .get(FAULT_ANNOTATION)
        .is_some_and(|v| v.split(',').any(|f| f.trim() == PROVISION_FAILS));
    let index_of = |node: &str| {
        node.strip_prefix(&format!("{name}-"))
            .and_then(|i| i.parse::<u32>().ok())
    };
    let existing: BTreeMap<u32, String> = shared
        .nodes()
        .nodes
        .values()
        .filter(|n| n.group.as_ref() == Some(key))
        .filter_map(|n| index_of(&n.spec.name).map(|i| (i, n.spec.name.clone())))
        .collect();

    if fails {
        let uid = md.uid().unwrap_or_default();
        let missing = desired as usize > existing.len();
        if missing && reported.insert(format!("{uid}/{desired}")) {
            let obj = Involved {
                api_version: API_VERSION.into(),
                kind: KIND.into(),
                namespace: key.0.clone(),
                name: name.clone(),
                uid,
                field_path: None,
            };
            let message = format!(
                "Failed to create machine for MachineDeployment {name}: \
                 insufficient capacity for the instance type of {name} in every zone"
            );
            recorder
                .emit(&obj, None, EventType::Warning, "FailedCreate", &message)
                .await;
        }
    } else {
        let now = Instant::now();
        for i in (0..desired).filter(|i| !existing.contains_key(i)) {
            let due = *provisioning
                .entry((key.clone(), i))
                .or_insert(now + crate::wait::scaled(PROVISION_DELAY));
            if now < due {
                continue;
            }
            provisioning.remove(&(key.clone(), i));
            let spec = node_spec(md, i);
            let node = spec.name.clone();
            // On a registration failure the node is in the table and the
            // heartbeat loop retries; only a name clash leaves it out.
            match shared.add(spec, Some(key.clone())).await {
                Ok(()) => tracing::info!(node = %node, md = %name, "machine provisioned"),
                Err(e) => tracing::warn!(node = %node, md = %name, "provisioning: {e}"),
            }
        }
    }
    provisioning.retain(|(k, i), _| k != key || *i < desired);
    // Scale down from the highest index, as MachineSets delete the newest.
    for (_, node) in existing.range(desired..).rev() {
        match shared.remove(node).await {
            Ok(()) => tracing::info!(node = %node, md = %name, "machine deleted"),
            Err(e) => tracing::warn!(node = %node, md = %name, "deleting machine: {e}"),
        }
    }
    write_status(shared, md, key, desired).await;
}

async fn write_status(shared: &Shared, md: &DynamicObject, key: &Key, desired: u32) {
    let (replicas, ready) = {
        let table = shared.nodes();
        let ours: Vec<_> = table
            .nodes
            .values()
            .filter(|n| n.group.as_ref() == Some(key))
            .collect();
        (
            ours.len() as u32,
            ours.iter().filter(|n| n.registered).count() as u32,
        )
    };
    let phase = match replicas.cmp(&desired) {
        std::cmp::Ordering::Less => "ScalingUp",
        std::cmp::Ordering::Greater => "ScalingDown",
        std::cmp::Ordering::Equal => "Running",
    };
    let status = json!({
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "updatedReplicas": replicas,
        "unavailableReplicas": desired.saturating_sub(ready),
        "selector": format!("{DEPLOYMENT_LABEL}={}", key.1),
        "observedGeneration": md.metadata.generation,
        "phase": phase,
    });
    let current = &md.data["status"];
    let unchanged = status
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| current.get(k) == Some(v));
    if unchanged {
        return;
    }
    let patch = json!({"status": status});
    if let Err(e) = api(&shared.client, &key.0)
        .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        && !not_found(&e)
    {
        tracing::warn!(md = %key.1, "writing MachineDeployment status: {e}");
    }
}

fn crd_manifest() -> Value {
    let int32 = json!({"type": "integer", "format": "int32"});
    let column = |name: &str, type_: &str, path: &str| json!({"name": name, "type": type_, "jsonPath": path});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"cluster.x-k8s.io/provider": "cluster-api"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": "MachineDeploymentList",
                "plural": PLURAL,
                "singular": "machinedeployment",
                "shortNames": ["md"],
                "categories": ["cluster-api"],
            },
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
                "additionalPrinterColumns": [
                    column("Cluster", "string", ".spec.clusterName"),
                    column("Replicas", "integer", ".status.replicas"),
                    column("Ready", "integer", ".status.readyReplicas"),
                    column("Phase", "string", ".status.phase"),
                    column("Age", "date", ".metadata.creationTimestamp"),
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "type": "object",
                            // CAPI has more (strategy, minReadySeconds, ...);
                            // kept, not interpreted.
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "clusterName": {"type": "string"},
                                "replicas": {"type": "integer", "format": "int32", "minimum": 0, "default": 1},
                                "selector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            },
                        },
                        "status": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "replicas": int32,
                                "readyReplicas": int32,
                                "availableReplicas": int32,
                                "updatedReplicas": int32,
                                "unavailableReplicas": int32,
                                "observedGeneration": {"type": "integer", "format": "int64"},
                                "selector": {"type": "string"},
                                "phase": {"type": "string"},
                            },
                        },
                    },
                }},
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_template_round_trips_through_the_manifest() {
        let template =
            NodeSpec::new("ignored")
                .gpus(2)
                .taint("nvidia.com/gpu", Some("present"), "NoSchedule");
        let md: DynamicObject =
            serde_json::from_value(manifest("ns", "gpu", 1, &template)).unwrap();
        let node = node_spec(&md, 3);
        assert_eq!(node.name, "gpu-3");
        assert_eq!(node.capacity["nvidia.com/gpu"], "2");
        assert_eq!(node.capacity["cpu"], "8");
        assert_eq!(node.labels[DEPLOYMENT_LABEL], "gpu");
        assert_eq!(node.labels["nvidia.com/gpu.present"], "true");
        assert_eq!(node.taints, template.taints);
    }

    #[test]
    fn crd_is_a_valid_object() {
        let crd: CustomResourceDefinition = serde_json::from_value(crd_manifest()).unwrap();
        let scale = crd.spec.versions[0]
            .subresources
            .as_ref()
            .unwrap()
            .scale
            .as_ref()
            .unwrap();
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
    }
}
