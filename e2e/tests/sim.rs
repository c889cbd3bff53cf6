//! The simulated kubelet and node group against a real control plane: the
//! behaviour the agent's scenarios rely on (README "Simulated kubelet").

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use stsmend_e2e::sim::{NodeSpec, Sim, node_group};
use stsmend_e2e::{ControlPlane, wait, wait_until};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "stsmend_e2e=info".into()),
        )
        .with_test_writer()
        .try_init();
}

async fn namespace(cp: &ControlPlane, ns: &str) -> anyhow::Result<()> {
    cp.kubectl(&["create", "namespace", ns]).await?;
    wait::service_account(&cp.client(), ns, "default").await?;
    Ok(())
}

/// A StatefulSet of `replicas` pods running `image` in a container `app`;
/// `pod_spec` fields replace the template's (`containers` included).
fn statefulset(
    name: &str,
    replicas: i32,
    image: &str,
    policy: &str,
    annotations: serde_json::Value,
    pod_spec: serde_json::Value,
) -> String {
    let mut spec = json!({
        "containers": [{"name": "app", "image": image}],
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), pod_spec.as_object()) {
        s.extend(extra.clone());
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": spec,
            },
        },
    })
    .to_string()
}

async fn apply_in(cp: &ControlPlane, ns: &str, manifest: &str) -> anyhow::Result<()> {
    cp.kubectl_with_stdin(&["apply", "-n", ns, "-f", "-"], Some(manifest))
        .await?;
    Ok(())
}

fn container(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn waiting_reason(pod: &Pod) -> Option<&str> {
    container(pod)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .as_deref()
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

fn summary(pod: &Pod) -> String {
    let s = pod.status.clone().unwrap_or_default();
    format!(
        "uid={:?} phase={:?} ready={:?} deleting={} container={:?}",
        pod.metadata.uid,
        s.phase,
        condition(pod, "Ready"),
        pod.metadata.deletion_timestamp.is_some(),
        container(pod).map(|c| (&c.image, c.restart_count, &c.state)),
    )
}

/// Events about the object with `uid`.
async fn events(client: &kube::Client, ns: &str, uid: &str) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!("involvedObject.uid={uid}"));
    Ok(api.list(&lp).await?.items)
}

async fn wait_ready_replicas(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: i32,
) -> anyhow::Result<StatefulSet> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let sts = wait_until(
        format!("{ns}/{name} to have {want} ready replicas"),
        Duration::from_secs(90),
        || {
            let api = api.clone();
            async move {
                let sts = api.get(name).await.map_err(|e| e.to_string())?;
                let status = sts.status.clone().unwrap_or_default();
                if status.ready_replicas.unwrap_or(0) == want && status.replicas == want {
                    Ok(sts)
                } else {
                    Err(format!("{status:?}"))
                }
            }
        },
    )
    .await?;
    Ok(sts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_image_leaves_an_ordered_rollout_stuck() -> anyhow::Result<()> {
    init_tracing();
    let cp = ControlPlane::start().await?;
    let client = cp.client();
    let sim = Sim::start(
        client.clone(),
        vec![NodeSpec::new("node-1"), NodeSpec::new("node-2")],
    )
    .await?;
    namespace(&cp, "shop").await?;
    let manifest = statefulset(
        "db",
        3,
        "registry.example/app:1",
        "OrderedReady",
        json!({}),
        json!({}),
    );
    apply_in(&cp, "shop", &manifest).await?;
    wait_ready_replicas(&client, "shop", "db", 3).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    for i in 0..3 {
        let pod = pods.get(&format!("db-{i}")).await?;
        let status = pod.status.clone().unwrap_or_default();
        ensure!(
            status.phase.as_deref() == Some("Running"),
            "db-{i}: {}",
            summary(&pod)
        );
        ensure!(
            status
                .pod_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("10.244.")),
            "db-{i}: {status:?}"
        );
        ensure!(
            status.host_ip.is_some() && status.start_time.is_some(),
            "db-{i}: {status:?}"
        );
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        ensure!(node == "node-1" || node == "node-2", "db-{i} on {node:?}");
        let c = container(&pod).context("no container status")?;
        ensure!(
            c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()),
            "db-{i}: {c:?}"
        );
        let reasons: Vec<String> = events(
            &client,
            "shop",
            pod.metadata.uid.as_deref().unwrap_or_default(),
        )
        .await?
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
        for want in ["Pulled", "Created", "Started"] {
            ensure!(
                reasons.iter().any(|r| r == want),
                "db-{i}: no {want} event in {reasons:?}"
            );
        }
    }

    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), "shop");
    let bad = "registry.example/app:2-broken";
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": bad}]}}}});
    sts_api
        .patch("db", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;

    let stuck = wait_until(
        "db-2 to be in ImagePullBackOff on the new image",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let pod = pods.get("db-2").await.map_err(|e| e.to_string())?;
                let on_new = container(&pod).is_some_and(|c| c.image == bad);
                if on_new && waiting_reason(&pod) == Some("ImagePullBackOff") {
                    Ok(pod)
                } else {
                    Err(summary(&pod))
                }
            }
        },
    )
    .await?;
    ensure!(
        stuck.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"),
        "{}",
        summary(&stuck)
    );
    ensure!(
        condition(&stuck, "Ready") == Some("False"),
        "{}",
        summary(&stuck)
    );
    let evs = events(
        &client,
        "shop",
        stuck.metadata.uid.as_deref().unwrap_or_default(),
    )
    .await?;
    let pull_failed = format!("Failed to pull image \"{bad}\":");
    ensure!(
        evs.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("Failed")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with(&pull_failed) && m.ends_with("not found"))),
        "no pull failure event: {evs:?}"
    );
    ensure!(
        evs.iter().any(|e| e.reason.as_deref() == Some("BackOff")),
        "no BackOff event: {evs:?}"
    );

    // The controller waits for db-2 forever: the rollout must still be
    // stuck well after the failure showed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sts = sts_api.get("db").await?;
    let status = sts.status.clone().unwrap_or_default();
    ensure!(status.updated_replicas == Some(1), "{status:?}");
    ensure!(status.ready_replicas == Some(2), "{status:?}");
    ensure!(
        status.update_revision != status.current_revision,
        "{status:?}"
    );
    let db1 = pods.get("db-1").await?;
    let revision = db1
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("controller-revision-hash"));
    ensure!(
        revision == status.current_revision.as_ref(),
        "db-1 moved on: {revision:?} vs {status:?}"
    );
    ensure!(
        db1.metadata.deletion_timestamp.is_none(),
        "{}",
        summary(&db1)
    );

    sim.stop().await;
    cp.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_and_never_ready() -> anyhow::Result<()> {
    init_tracing();
    let cp = ControlPlane::start().await?;
    let client = cp.client();
    let sim = Sim::start(client.clone(), vec![NodeSpec::new("node-1")]).await?;
    namespace(&cp, "jobs").await?;
    let crash = statefulset(
        "worker",
        2,
        "registry.example/app:1",
        "Parallel",
        json!({"e2e.stsmend.io/fault": "crashloop"}),
        json!({}),
    );
    let unready = statefulset(
        "cache",
        1,
        "registry.example/app:1",
        "OrderedReady",
        json!({"e2e.stsmend.io/fault": "never-ready"}),
        json!({}),
    );
    apply_in(&cp, "jobs", &crash).await?;
    apply_in(&cp, "jobs", &unready).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "jobs");
    let get = |name: &'static str| {
        let pods = pods.clone();
        move || {
            let pods = pods.clone();
            async move { pods.get(name).await.map_err(|e| e.to_string()) }
        }
    };
    let first_get = get("worker-1");
    let first = wait_until(
        "worker-1 in CrashLoopBackOff",
        Duration::from_secs(60),
        || {
            let fetch = first_get();
            async move {
                let pod = fetch.await?;
                if waiting_reason(&pod) == Some("CrashLoopBackOff") {
                    Ok(pod)
                } else {
                    Err(summary(&pod))
                }
            }
        },
    )
    .await?;
    let first_count = container(&first).map_or(0, |c| c.restart_count);
    let later_get = get("worker-1");
    let later = wait_until(
        "worker-1 to crash twice more",
        Duration::from_secs(40),
        || {
            let fetch = later_get();
            async move {
                let pod = fetch.await?;
                let count = container(&pod).map_or(0, |c| c.restart_count);
                if waiting_reason(&pod) == Some("CrashLoopBackOff") && count >= first_count + 2 {
                    Ok(pod)
                } else {
                    Err(summary(&pod))
                }
            }
        },
    )
    .await?;
    ensure!(
        later.metadata.uid == first.metadata.uid,
        "the pod was replaced, not restarted"
    );
    let c = container(&later).context("no container status")?;
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .context("no lastState.terminated")?;
    ensure!(
        last.exit_code == 1 && last.reason.as_deref() == Some("Error"),
        "{last:?}"
    );
    ensure!(!c.ready, "{c:?}");
    ensure!(
        later.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        "{}",
        summary(&later)
    );
    let evs = events(
        &client,
        "jobs",
        later.metadata.uid.as_deref().unwrap_or_default(),
    )
    .await?;
    let backoff = evs
        .iter()
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .context("no BackOff event")?;
    ensure!(
        backoff.message.as_deref() == Some("Back-off restarting failed container"),
        "{backoff:?}"
    );
    ensure!(
        backoff.count.unwrap_or(0) >= 2,
        "BackOff not counted up: {backoff:?}"
    );

    let cache = pods.get("cache-0").await?;
    ensure!(
        cache.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        "{}",
        summary(&cache)
    );
    ensure!(
        condition(&cache, "Ready") == Some("False"),
        "{}",
        summary(&cache)
    );
    let evs = events(
        &client,
        "jobs",
        cache.metadata.uid.as_deref().unwrap_or_default(),
    )
    .await?;
    ensure!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Unhealthy")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("Readiness probe failed"))),
        "no Unhealthy event: {evs:?}"
    );

    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), "jobs");
    for name in ["worker", "cache"] {
        let status = sts_api.get(name).await?.status.unwrap_or_default();
        ensure!(
            status.ready_replicas.unwrap_or(0) == 0,
            "{name}: {status:?}"
        );
    }
    // OrderedReady waits for the unready cache-0 before creating cache-1.
    ensure!(pods.get_opt("cache-1").await?.is_none(), "cache-1 exists");

    sim.stop().await;
    cp.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_termination_takes_the_grace_period_and_survives_an_apiserver_restart()
-> anyhow::Result<()> {
    init_tracing();
    let cp = ControlPlane::start().await?;
    let client = cp.client();
    let sim = Sim::start(client.clone(), vec![NodeSpec::new("node-1")]).await?;
    namespace(&cp, "mig").await?;
    let grace = json!({"terminationGracePeriodSeconds": 5});
    let slow = statefulset(
        "slow",
        1,
        "registry.example/app:1",
        "OrderedReady",
        json!({"e2e.stsmend.io/fault": "slow-terminate"}),
        grace.clone(),
    );
    let fast = statefulset(
        "fast",
        1,
        "registry.example/app:1",
        "OrderedReady",
        json!({}),
        grace,
    );
    apply_in(&cp, "mig", &slow).await?;
    apply_in(&cp, "mig", &fast).await?;
    wait_ready_replicas(&client, "mig", "slow", 1).await?;
    wait_ready_replicas(&client, "mig", "fast", 1).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "mig");
    let slow_uid = pods.get("slow-0").await?.metadata.uid.context("no uid")?;
    let fast_uid = pods.get("fast-0").await?.metadata.uid.context("no uid")?;
    let deleted = Instant::now();
    pods.delete("slow-0", &DeleteParams::default()).await?;
    pods.delete("fast-0", &DeleteParams::default()).await?;

    let gone = |name: &'static str, uid: String| {
        let pods = pods.clone();
        move || {
            let pods = pods.clone();
            let uid = uid.clone();
            async move {
                match pods.get_opt(name).await.map_err(|e| e.to_string())? {
                    Some(p) if p.metadata.uid.as_deref() == Some(uid.as_str()) => Err(summary(&p)),
                    _ => Ok(()),
                }
            }
        }
    };
    wait_until(
        "fast-0 to be gone at once",
        Duration::from_secs(3),
        gone("fast-0", fast_uid),
    )
    .await?;

    let terminating = pods.get("slow-0").await?;
    ensure!(
        terminating.metadata.uid.as_deref() == Some(slow_uid.as_str()),
        "slow-0 went early"
    );
    ensure!(
        terminating.metadata.deletion_timestamp.is_some(),
        "{}",
        summary(&terminating)
    );
    ensure!(
        terminating.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        "{}",
        summary(&terminating)
    );
    wait_until(
        "slow-0 to finish terminating",
        Duration::from_secs(20),
        gone("slow-0", slow_uid.clone()),
    )
    .await?;
    // deletionTimestamp has whole seconds, so the deadline may come up to a
    // second early.
    let took = deleted.elapsed();
    ensure!(took >= Duration::from_secs(4), "slow-0 took only {took:?}");

    let evs = events(&client, "mig", &slow_uid).await?;
    ensure!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Killing")
            && e.message.as_deref() == Some("Stopping container app")),
        "no Killing event: {evs:?}"
    );
    let replaced = wait_ready_replicas(&client, "mig", "slow", 1).await?;
    ensure!(replaced.status.is_some());
    let successor = pods.get("slow-0").await?;
    ensure!(
        successor.metadata.uid.as_deref() != Some(slow_uid.as_str()),
        "{}",
        summary(&successor)
    );

    // The simulation outlives an API server restart: after it, deletions
    // are still finished and replacements still start.
    cp.restart_apiserver().await?;
    let fast_uid = pods.get("fast-0").await?.metadata.uid.context("no uid")?;
    pods.delete("fast-0", &DeleteParams::default()).await?;
    wait_until(
        "fast-0 to be gone after the restart",
        Duration::from_secs(10),
        gone("fast-0", fast_uid),
    )
    .await?;
    wait_ready_replicas(&client, "mig", "fast", 1).await?;
    ensure!(sim.node_names() == ["node-1"], "{:?}", sim.node_names());

    sim.stop().await;
    cp.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_machine_deployment_adds_gpu_nodes() -> anyhow::Result<()> {
    init_tracing();
    let cp = ControlPlane::start().await?;
    let client = cp.client();
    let sim = Sim::start(client.clone(), vec![NodeSpec::new("node-1")]).await?;
    namespace(&cp, "ml").await?;
    node_group::install_crd(&client).await?;
    let gpu_node =
        NodeSpec::new("template")
            .gpus(1)
            .taint("nvidia.com/gpu", Some("present"), "NoSchedule");
    node_group::create(&client, "ml", "gpu", 0, &gpu_node).await?;
    let mut spot = node_group::manifest("ml", "gpu-spot", 1, &gpu_node);
    spot["metadata"]["annotations"] = json!({"e2e.stsmend.io/fault": "provision-fails"});
    node_group::create_from(&client, &spot).await?;

    let trainer = statefulset(
        "trainer",
        1,
        "registry.example/trainer:1",
        "OrderedReady",
        json!({}),
        json!({
            "containers": [{
                "name": "app",
                "image": "registry.example/trainer:1",
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
            }],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }),
    );
    apply_in(&cp, "ml", &trainer).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ml");
    wait_until(
        "trainer-0 to be unschedulable",
        Duration::from_secs(30),
        || {
            let pods = pods.clone();
            async move {
                let pod = pods.get("trainer-0").await.map_err(|e| e.to_string())?;
                let unschedulable = pod
                    .status
                    .iter()
                    .flat_map(|s| s.conditions.iter().flatten())
                    .any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    });
                if unschedulable {
                    Ok(())
                } else {
                    Err(summary(&pod))
                }
            }
        },
    )
    .await?;

    let mds = node_group::api(&client, "ml");
    wait_until(
        "gpu to report 0 replicas with a selector",
        Duration::from_secs(15),
        || {
            let mds = mds.clone();
            async move {
                let md = mds.get("gpu").await.map_err(|e| e.to_string())?;
                let status = &md.data["status"];
                if status["replicas"] == 0
                    && status["selector"] == "cluster.x-k8s.io/deployment-name=gpu"
                {
                    Ok(())
                } else {
                    Err(status.to_string())
                }
            }
        },
    )
    .await?;

    let scale = node_group::scale(&client, "ml", "gpu", 1).await?;
    ensure!(scale.spec.and_then(|s| s.replicas) == Some(1));

    let nodes: Api<Node> = Api::all(client.clone());
    let node = wait_until(
        "node gpu-0 to be Ready and untainted",
        Duration::from_secs(60),
        || {
            let nodes = nodes.clone();
            async move {
                let node = nodes
                    .get_opt("gpu-0")
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no node yet")?;
                let ready = node
                    .status
                    .iter()
                    .flat_map(|s| s.conditions.iter().flatten())
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let not_ready_taint = node
                    .spec
                    .iter()
                    .flat_map(|s| s.taints.iter().flatten())
                    .any(|t| t.key == "node.kubernetes.io/not-ready");
                if ready && !not_ready_taint {
                    Ok(node)
                } else {
                    Err(format!("{:?}", node.spec))
                }
            }
        },
    )
    .await?;
    let gpus = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("nvidia.com/gpu"))
        .map(|q| q.0.clone());
    ensure!(
        gpus.as_deref() == Some("1"),
        "allocatable nvidia.com/gpu: {gpus:?}"
    );
    let labels = node.metadata.labels.clone().unwrap_or_default();
    ensure!(
        labels
            .get("cluster.x-k8s.io/deployment-name")
            .map(String::as_str)
            == Some("gpu"),
        "{labels:?}"
    );

    let running = wait_until("trainer-0 to run on gpu-0", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("trainer-0").await.map_err(|e| e.to_string())?;
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            if node.as_deref() == Some("gpu-0") && condition(&pod, "Ready") == Some("True") {
                Ok(pod)
            } else {
                Err(format!("node={node:?} {}", summary(&pod)))
            }
        }
    })
    .await?;
    ensure!(running.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));

    let md = wait_until(
        "gpu status to show the ready node",
        Duration::from_secs(15),
        || {
            let mds = mds.clone();
            async move {
                let md = mds.get("gpu").await.map_err(|e| e.to_string())?;
                if md.data["status"]["readyReplicas"] == 1
                    && md.data["status"]["phase"] == "Running"
                {
                    Ok(md)
                } else {
                    Err(md.data["status"].to_string())
                }
            }
        },
    )
    .await?;
    ensure!(md.data["status"]["replicas"] == 1, "{}", md.data["status"]);
    let scale = mds.get_scale("gpu").await?;
    let scale_status = scale.status.context("no scale status")?;
    ensure!(scale_status.replicas == 1, "{scale_status:?}");
    ensure!(
        scale_status.selector.as_deref() == Some("cluster.x-k8s.io/deployment-name=gpu"),
        "{scale_status:?}"
    );

    // The failing group never got its node, says so, and keeps trying.
    ensure!(
        nodes.get_opt("gpu-spot-0").await?.is_none(),
        "gpu-spot-0 exists"
    );
    let spot = mds.get("gpu-spot").await?;
    ensure!(
        spot.data["status"]["replicas"] == 0 && spot.data["status"]["phase"] == "ScalingUp",
        "{}",
        spot.data["status"]
    );
    let spot_uid = spot.metadata.uid.clone().unwrap_or_default();
    let evs = events(&client, "ml", &spot_uid).await?;
    ensure!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("FailedCreate")),
        "{evs:?}"
    );

    node_group::scale(&client, "ml", "gpu", 0).await?;
    wait_until("node gpu-0 to be removed", Duration::from_secs(15), || {
        let nodes = nodes.clone();
        async move {
            match nodes.get_opt("gpu-0").await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        }
    })
    .await?;
    // The simulation forgets the node just after the API server has
    // deleted it.
    wait_until(
        "the simulation to drop gpu-0",
        Duration::from_secs(5),
        || {
            let names = sim.node_names();
            async move {
                if names.contains(&"gpu-0".to_string()) {
                    Err(format!("{names:?}"))
                } else {
                    Ok(())
                }
            }
        },
    )
    .await?;

    sim.stop().await;
    cp.shutdown().await;
    Ok(())
}
