//! Scenario 6: capacity a configured node group can add.

use serde_json::json;
use stsmend_e2e::sim::{NodeSpec, node_group};

use crate::ROLLOUT;
use crate::world::World;

/// A GPU request no node can satisfy, and a scalable GPU node group (a
/// Cluster API MachineDeployment at zero): the agent scales it through its
/// `/scale` subresource, the node joins, the pod schedules, healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_request_scales_the_node_group() {
    let w = World::start_sim().await;
    let id = w.id("trainer");
    node_group::install_crd(&w.client).await.unwrap();
    node_group::create(
        &w.client,
        "default",
        "gpu",
        0,
        &NodeSpec::new("gpu").gpus(1),
    )
    .await
    .unwrap();
    w.healthy_set("trainer", 1, "OrderedReady").await;
    w.patch(
        "trainer",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}),
    )
    .await;
    w.unschedulable("trainer-0", ROLLOUT).await;
    let before = w.sts("trainer").await;
    let config = w.config(
        "nodeGroups:\n- name: gpu\n  resource: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, namespace: default, name: gpu}\n  max: 2\n  provides:\n    resources: {nvidia.com/gpu: \"1\"}\n",
    );
    let run = w
        .agent(&["run", "--apply", "--config", config.to_str().unwrap()])
        .await;
    run.assert_did(&id, "scale_nodes", "scale_nodes", "done");
    let revision = w.healthy("trainer", ROLLOUT).await;
    assert_eq!(
        Some(revision),
        before.status.unwrap().update_revision,
        "the GPU revision rolled out"
    );
    assert_eq!(
        w.sts("trainer").await.spec,
        before.spec,
        "the StatefulSet itself untouched"
    );
    let md = node_group::api(&w.client, "default")
        .get("gpu")
        .await
        .unwrap();
    assert_eq!(md.data["spec"]["replicas"], 1);
    assert_eq!(w.agent_events("trainer").await, ["StsmendScaledNodes"]);
}
