//! The simulated kubelets: there is no container runtime on these machines,
//! so something must register Nodes, keep their heartbeats, and play out
//! the pod lifecycle the real kubelet would report. [`Sim`] does that for a
//! set of nodes, plus the [`node_group`] MachineDeployments it provisions.
//!
//! Everything runs in background tasks that log failures and retry on the
//! next tick, because chaos scenarios restart the API server under them.
//! The behaviour and the fault rules are described in e2e/README.md.

pub mod events;
pub mod faults;
pub mod node_group;
pub mod nodes;
mod pods;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::wait::wait_until;

pub use events::{EventType, Involved, Recorder};
pub use faults::{FAULT_ANNOTATION, PodFaults};
pub use nodes::NodeSpec;

/// How often each node reports. The node lifecycle controller of v1.20
/// tolerates 40 s of silence, so this leaves room for a busy machine.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How often the simulated kubelets list the pods bound to them. Short, so a
/// pod turns Running or goes away about as fast as on a real idle node.
pub const POD_SYNC_INTERVAL: Duration = Duration::from_millis(400);

/// One simulated node as the kubelet stand-in knows it.
#[derive(Debug, Clone)]
struct SimNode {
    spec: NodeSpec,
    ip: String,
    /// Third octet of its pods' addresses (10.244.<n>.x), unique per node.
    pod_subnet: u32,
    next_pod_host: u32,
    registered_at: jiff::Timestamp,
    /// False until the Node object was created; the heartbeat loop retries.
    registered: bool,
    heartbeats: bool,
    /// The MachineDeployment (namespace, name) that provisioned it.
    group: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct NodeTable {
    nodes: BTreeMap<String, SimNode>,
    allocated: u32,
}

struct Shared {
    client: kube::Client,
    recorder: Recorder,
    nodes: Mutex<NodeTable>,
}

impl Shared {
    fn nodes(&self) -> MutexGuard<'_, NodeTable> {
        // A panic in one task must not stop the others from running.
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the node to the table and tries to register it once; if that
    /// fails the heartbeat loop keeps trying, like a kubelet does.
    async fn add(&self, spec: NodeSpec, group: Option<(String, String)>) -> Result<()> {
        let node = {
            let mut table = self.nodes();
            if table.nodes.contains_key(&spec.name) {
                return Err(Error::Other(format!(
                    "node {} is already simulated",
                    spec.name
                )));
            }
            table.allocated += 1;
            let n = table.allocated;
            let node = SimNode {
                ip: format!("10.0.{}.{}", n / 200, n % 200 + 10),
                pod_subnet: n % 256,
                next_pod_host: 2,
                registered_at: jiff::Timestamp::now(),
                registered: false,
                heartbeats: true,
                group,
                spec,
            };
            table.nodes.insert(node.spec.name.clone(), node.clone());
            node
        };
        nodes::register(&self.client, &node.spec, &node.ip, node.registered_at).await?;
        self.mark_registered(&node.spec.name);
        Ok(())
    }

    fn mark_registered(&self, name: &str) {
        if let Some(n) = self.nodes().nodes.get_mut(name) {
            n.registered = true;
        }
    }

    /// Deletes the Node and its Lease, then forgets the node. It stays in the
    /// table (heartbeating) if the deletion fails, so a retry finds it.
    async fn remove(&self, name: &str) -> Result<()> {
        if !self.nodes().nodes.contains_key(name) {
            return Err(Error::Other(format!("node {name} is not simulated")));
        }
        nodes::deregister(&self.client, name).await?;
        self.nodes().nodes.remove(name);
        Ok(())
    }

    /// The next pod address on `node`, or `None` if it is not simulated.
    fn allocate_pod_ip(&self, node: &str) -> Option<(String, String)> {
        let mut table = self.nodes();
        let n = table.nodes.get_mut(node)?;
        let host = n.next_pod_host;
        // .0, .1 and .255 are not pod addresses; wrap like a /24 IPAM would.
        n.next_pod_host = if host >= 254 { 2 } else { host + 1 };
        Some((format!("10.244.{}.{host}", n.pod_subnet), n.ip.clone()))
    }
}

/// Simulated kubelets for a set of nodes. Dropping it aborts the background
/// tasks (the Nodes then go NotReady like nodes whose kubelets died);
/// [`Sim::stop`] does the same and waits for the tasks to end.
pub struct Sim {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("nodes", &self.node_names())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Registers `nodes`, starts the heartbeat, pod and node-group loops,
    /// and returns once every node is schedulable (the node lifecycle
    /// controller removed the not-ready taint), so pods created next schedule
    /// at once.
    pub async fn start(client: kube::Client, nodes: Vec<NodeSpec>) -> Result<Sim> {
        let shared = Arc::new(Shared {
            recorder: Recorder::new(client.clone(), "kubelet"),
            client,
            nodes: Mutex::new(NodeTable::default()),
        });
        let sim = Sim {
            tasks: vec![
                tokio::spawn(heartbeat_loop(shared.clone())),
                tokio::spawn(pods::run(shared.clone())),
                tokio::spawn(node_group::run(shared.clone())),
            ],
            shared,
        };
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        for spec in nodes {
            if let Err(e) = sim.shared.add(spec, None).await {
                sim.abort();
                return Err(e);
            }
        }
        for name in &names {
            if let Err(e) = sim.wait_schedulable(name).await {
                sim.abort();
                return Err(e);
            }
        }
        Ok(sim)
    }

    /// Registers another node and waits until it is schedulable.
    pub async fn add_node(&self, spec: NodeSpec) -> Result<()> {
        let name = spec.name.clone();
        self.shared.add(spec, None).await?;
        self.wait_schedulable(&name).await
    }

    /// Deletes the Node and its Lease, as when a machine is decommissioned.
    /// Its pods stay bound until the pod garbage collector removes them
    /// (about 40 s in v1.20).
    pub async fn remove_node(&self, name: &str) -> Result<()> {
        self.shared.remove(name).await
    }

    /// The "node lost" fault: the node's kubelet goes silent. No more
    /// heartbeats, and its pods are left as they are (deletions included,
    /// so they stay Terminating). After 40 s the node lifecycle controller
    /// marks the node Unknown and its pods not Ready.
    pub fn stop_heartbeats(&self, name: &str) -> Result<()> {
        self.set_heartbeats(name, false)
    }

    /// Ends the "node lost" fault: heartbeats and pod handling resume on the
    /// next tick.
    pub fn resume_heartbeats(&self, name: &str) -> Result<()> {
        self.set_heartbeats(name, true)
    }

    /// Names of the simulated nodes, node-group nodes included.
    pub fn node_names(&self) -> Vec<String> {
        self.shared.nodes().nodes.keys().cloned().collect()
    }

    /// Stops every simulated kubelet and waits for the tasks to end. The API
    /// objects stay, as when all kubelets die at once.
    pub async fn stop(mut self) {
        self.abort();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    fn set_heartbeats(&self, name: &str, on: bool) -> Result<()> {
        match self.shared.nodes().nodes.get_mut(name) {
            Some(n) => {
                n.heartbeats = on;
                Ok(())
            }
            None => Err(Error::Other(format!("node {name} is not simulated"))),
        }
    }

    async fn wait_schedulable(&self, name: &str) -> Result<()> {
        let api: Api<Node> = Api::all(self.shared.client.clone());
        wait_until(
            format!("node {name} to be Ready without the not-ready taint"),
            Duration::from_secs(60),
            || {
                let api = api.clone();
                async move {
                    let node = api.get(name).await.map_err(|e| e.to_string())?;
                    if nodes::is_schedulable(&node) {
                        Ok(())
                    } else {
                        let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
                        Err(format!(
                            "taints: {:?}",
                            taints.iter().map(|t| &t.key).collect::<Vec<_>>()
                        ))
                    }
                }
            },
        )
        .await
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.abort();
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    // The first beat is one interval out: registration has just beaten.
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT_INTERVAL,
        HEARTBEAT_INTERVAL,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due: Vec<SimNode> = shared
            .nodes()
            .nodes
            .values()
            .filter(|n| n.heartbeats)
            .cloned()
            .collect();
        for n in due {
            let name = &n.spec.name;
            if !n.registered {
                match nodes::register(&shared.client, &n.spec, &n.ip, n.registered_at).await {
                    Ok(()) => shared.mark_registered(name),
                    Err(e) => tracing::warn!(node = %name, "registering node: {e}"),
                }
                continue;
            }
            if let Err(e) = nodes::heartbeat(&shared.client, name, n.registered_at).await {
                // Not re-registering on 404: a kubelet whose Node was deleted
                // under it does not either; the scenario did it on purpose.
                tracing::warn!(node = %name, "heartbeat: {e}");
            }
        }
    }
}

/// An API time (`metav1.Time`): RFC 3339 in UTC, whole seconds.
pub(crate) fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An API micro time (`metav1.MicroTime`), as Leases and events.k8s.io use.
pub(crate) fn micro_time(t: jiff::Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond()
    )
}

/// Whether an API error is a 404.
pub(crate) fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_times() {
        let t: jiff::Timestamp = "2024-03-01T10:20:30.123456789Z".parse().unwrap();
        assert_eq!(time(t), "2024-03-01T10:20:30Z");
        assert_eq!(micro_time(t), "2024-03-01T10:20:30.123456Z");
    }
}
