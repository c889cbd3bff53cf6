//! Node registration and heartbeats, as a kubelet does them: the Node object
//! with capacity and conditions, and a Lease in kube-node-lease renewed every
//! heartbeat. Without them the node lifecycle controller marks the node
//! Unknown after 40 s and later evicts its pods.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{micro_time, time};
use crate::error::Result;

/// The taint a kubelet registers with; the node lifecycle controller removes
/// it once the Ready condition is True.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

pub(crate) const KUBELET_MANAGER: &str = "kubelet";

/// A simulated node: its labels, taints and capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// Capacity, also reported as allocatable: `cpu`, `memory`, `pods`,
    /// `ephemeral-storage`, extended resources such as `nvidia.com/gpu`.
    pub capacity: BTreeMap<String, String>,
}

impl NodeSpec {
    /// A node with 8 CPUs, 32Gi of memory and room for 110 pods.
    pub fn new(name: impl Into<String>) -> Self {
        let capacity = [
            ("cpu", "8"),
            ("memory", "32Gi"),
            ("pods", "110"),
            ("ephemeral-storage", "100Gi"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let labels = [("node.kubernetes.io/instance-type", "sim.large")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            name: name.into(),
            labels,
            taints: Vec::new(),
            capacity,
        }
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn zone(self, zone: &str) -> Self {
        self.label("topology.kubernetes.io/zone", zone)
            .label("failure-domain.beta.kubernetes.io/zone", zone)
    }

    /// `effect` is `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub fn taint(mut self, key: impl Into<String>, value: Option<&str>, effect: &str) -> Self {
        self.taints.push(Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.to_string(),
            time_added: None,
        });
        self
    }

    pub fn capacity(mut self, resource: impl Into<String>, quantity: impl Into<String>) -> Self {
        self.capacity.insert(resource.into(), quantity.into());
        self
    }

    /// GPUs as the NVIDIA device plugin reports them, with the label GPU
    /// operators put on such nodes.
    pub fn gpus(self, count: u32) -> Self {
        self.capacity("nvidia.com/gpu", count.to_string())
            .label("nvidia.com/gpu.present", "true")
    }
}

fn conditions(registered: &str, heartbeat: &str) -> Value {
    let cond = |t: &str, s: &str, reason: &str, msg: &str| {
        json!({
            "type": t,
            "status": s,
            "reason": reason,
            "message": msg,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": registered,
        })
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// Creates (or updates) the Node and its Lease. `ip` is only data: nothing
/// ever connects to it.
pub(crate) async fn register(
    client: &kube::Client,
    spec: &NodeSpec,
    ip: &str,
    registered: jiff::Timestamp,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", spec.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(spec.labels.clone());
    let mut taints: Vec<Value> = spec
        .taints
        .iter()
        .map(|t| serde_json::to_value(t).unwrap_or_default())
        .collect();
    taints.push(json!({"key": NOT_READY_TAINT, "effect": "NoSchedule"}));
    let t = time(registered);
    let id = format!("{:032x}", hash128(&spec.name));
    let status = json!({
        "capacity": spec.capacity,
        "allocatable": spec.capacity,
        "conditions": conditions(&t, &t),
        "addresses": [
            {"type": "InternalIP", "address": ip},
            {"type": "Hostname", "address": spec.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": id,
            "systemUUID": id,
            "bootID": format!("{:032x}", hash128(&format!("{}{t}", spec.name))),
            "kernelVersion": "6.1.0-18-amd64",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://1.6.20",
            "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    });
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"taints": taints},
        "status": status,
    });
    let node: Node = serde_json::from_value(node)
        .map_err(|e| crate::Error::Other(format!("node {}: {e}", spec.name)))?;
    let pp = PostParams {
        field_manager: Some(KUBELET_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&pp, &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"metadata": {"labels": labels}});
            api.patch(&spec.name, &patch_params(), &Patch::Merge(&patch))
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    // Status on create is kept for Nodes, but an existing Node needs it too.
    api.patch_status(
        &spec.name,
        &patch_params(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await?;
    heartbeat(client, &spec.name, registered).await
}

pub(crate) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(KUBELET_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// One heartbeat: the Ready condition's lastHeartbeatTime and the node Lease.
pub(crate) async fn heartbeat(
    client: &kube::Client,
    node: &str,
    registered: jiff::Timestamp,
) -> Result<()> {
    let now = jiff::Timestamp::now();
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": {"conditions": conditions(&time(registered), &time(now))}});
    // Strategic merge: conditions merge by type, leaving others' conditions.
    nodes
        .patch_status(node, &patch_params(), &Patch::Strategic(&patch))
        .await?;

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let spec = json!({
        "holderIdentity": node,
        "leaseDurationSeconds": 40,
        "renewTime": micro_time(now),
    });
    let renewed = leases
        .patch(node, &patch_params(), &Patch::Merge(&json!({"spec": spec})))
        .await;
    match renewed {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let uid = nodes.get(node).await?.metadata.uid.unwrap_or_default();
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": node,
                    "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}],
                },
                "spec": spec,
            });
            let lease: Lease = serde_json::from_value(lease)
                .map_err(|e| crate::Error::Other(format!("lease {node}: {e}")))?;
            let pp = PostParams {
                field_manager: Some(KUBELET_MANAGER.into()),
                ..PostParams::default()
            };
            match leases.create(&pp, &lease).await {
                // A registration racing this heartbeat created it: renewed.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
                Ok(_) => Ok(()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn deregister(client: &kube::Client, node: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.delete(node, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    match leases.delete(node, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Ready and schedulable: the lifecycle controller has removed the
/// not-ready taint.
pub(crate) fn is_schedulable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == NOT_READY_TAINT));
    ready && !tainted
}

/// Stable pseudo-random bits for IDs and digests (not security relevant).
pub(crate) fn hash128(s: &str) -> u128 {
    // FNV-1a, 128-bit.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in s.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}
