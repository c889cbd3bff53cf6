//! Captures the fixtures of tests/fixtures/ and the bundled example from a
//! real control plane: StatefulSets broken in each way the diagnosis knows,
//! next to healthy and exempt ones, read by `stsmend snapshot` exactly as a
//! live run reads them. Run by scripts/capture-fixtures.sh (ignored in the
//! normal suite: they rewrite files in the repository); tests/fixtures.rs
//! then checks the diagnosis of each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::ROLLOUT;
use crate::world::{World, stateful_set};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `stsmend snapshot -n NS` into tests/fixtures/NAME.yaml, with a header
/// saying what the objects show.
async fn capture(w: &World, name: &str, what: &str) -> PathBuf {
    // Let crash loops count restarts and the scheduler retry once more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let dir = root().join("tests/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.yaml"));
    let (code, text) = w
        .agent_raw(&["snapshot", "-n", &w.ns, "-o", out.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{text}");
    let body = std::fs::read_to_string(&out).unwrap();
    let header: String = what.lines().map(|l| format!("# {l}\n")).collect();
    let nodes = match w.nodes {
        crate::world::Nodes::Real(_) => "a real kubelet v1.20.2 (containerd, in a container)",
        crate::world::Nodes::Sim(_) => "simulated nodes",
    };
    std::fs::write(
        &out,
        format!(
            "# Captured by scripts/capture-fixtures.sh with `stsmend snapshot` from a\n# real kube-apiserver v1.20.2 with {nodes}.\n{header}{body}"
        ),
    )
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_mixed() {
    let w = World::start_sim().await;
    // Healthy, and exempt by design: none of these may become a finding.
    for n in ["web", "api", "search", "auth", "queue", "mail"] {
        w.apply(&stateful_set(
            n,
            2,
            &format!("registry.example/{n}:1"),
            false,
            "Parallel",
        ))
        .await;
    }
    let mut batch = stateful_set(
        "batch",
        1,
        "registry.example/batch:1",
        false,
        "OrderedReady",
    );
    batch.push_str("  updateStrategy: {type: OnDelete}\n");
    w.apply(&batch).await;
    let mut pilot = stateful_set(
        "pilot",
        3,
        "registry.example/pilot:1",
        false,
        "OrderedReady",
    );
    pilot.push_str("  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}\n");
    w.apply(&pilot).await;
    let mut canary = stateful_set(
        "canary",
        3,
        "registry.example/canary:1",
        false,
        "OrderedReady",
    );
    canary.push_str("  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}\n");
    w.apply(&canary).await;
    w.apply(&stateful_set(
        "archive",
        0,
        "registry.example/archive:1",
        false,
        "OrderedReady",
    ))
    .await;
    // Broken: a bad image on OrderedReady, a crash loop on Parallel, a GPU
    // request no node can satisfy, a pod that never becomes Ready.
    w.apply(&stateful_set(
        "db",
        3,
        "registry.example/db:1",
        true,
        "OrderedReady",
    ))
    .await;
    w.apply(&stateful_set(
        "cache",
        2,
        "registry.example/cache:1",
        true,
        "Parallel",
    ))
    .await;
    w.apply(&stateful_set(
        "trainer",
        1,
        "registry.example/trainer:1",
        true,
        "OrderedReady",
    ))
    .await;
    w.apply(&stateful_set(
        "ledger",
        2,
        "registry.example/ledger:1",
        true,
        "OrderedReady",
    ))
    .await;
    for n in [
        "web", "api", "search", "auth", "queue", "mail", "batch", "pilot", "canary", "db", "cache",
        "trainer", "ledger",
    ] {
        w.healthy(n, ROLLOUT).await;
    }
    w.set_image("batch", "registry.example/batch:2").await;
    w.set_image("pilot", "registry.example/pilot:2").await;
    w.set_image("canary", "registry.example/canary:2-crash")
        .await;
    w.set_image("db", "registry.example/db:2-broken").await;
    w.set_image("cache", "registry.example/cache:2-crash").await;
    w.patch(
        "trainer",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}),
    )
    .await;
    w.patch(
        "ledger",
        json!({"spec": {"template": {"metadata": {"annotations": {"e2e.stsmend.io/fault": "never-ready"}}}}}),
    )
    .await;
    w.pod_waiting("db-2", "ImagePullBackOff", ROLLOUT).await;
    w.pod_waiting("cache-1", "CrashLoopBackOff", ROLLOUT).await;
    w.pod_waiting("canary-2", "CrashLoopBackOff", ROLLOUT).await;
    w.unschedulable("trainer-0", ROLLOUT).await;
    // The held partition: only pilot-2 updates, and it is Ready.
    let api = w.sts_api();
    stsmend_e2e::wait_until("pilot-2 updated and Ready", ROLLOUT, || {
        let api = api.clone();
        async move {
            let st = api
                .get("pilot")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            if st.updated_replicas == Some(1) && st.ready_replicas == Some(3) {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        }
    })
    .await
    .unwrap();
    let out = capture(
        &w,
        "mixed",
        "shop: db (bad image, OrderedReady), cache (crash loop, Parallel), trainer\n(GPU request, no GPU node), ledger (never Ready), canary (crash loop under\na partition); healthy web, api, search, auth, queue, mail; exempt batch\n(OnDelete), pilot (partition held on purpose), archive (scaled to zero).",
    )
    .await;
    // The README's example is this capture.
    std::fs::copy(&out, root().join("examples/failing-rollout.yaml")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_limit_range() {
    let w = World::start().await;
    w.limit_range_mismatch().await;
    capture(
        &w,
        "limit-range",
        "shop/db: a LimitRange (max memory 1Gi) rejects db-2 after a template\nchange to 4Gi; a second change while db-2 is missing leaves a genuine\ngeneration mismatch.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_quotas() {
    let w = World::start().await;
    w.apply(&stateful_set(
        "db",
        2,
        &w.image("db", "1"),
        true,
        "OrderedReady",
    ))
    .await;
    w.apply(&stateful_set(
        "cache",
        2,
        &w.image("cache", "1"),
        true,
        "Parallel",
    ))
    .await;
    w.healthy("db", ROLLOUT).await;
    w.healthy("cache", ROLLOUT).await;
    w.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: limits}\nspec:\n  hard: {count/controllerrevisions.apps: \"2\", pods: \"4\"}\n",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.set_image("db", &w.image("db", "2")).await;
    w.patch("cache", json!({"spec": {"replicas": 3}})).await;
    w.mismatch("db", Duration::from_secs(2)).await;
    w.event("cache", "FailedCreate", ROLLOUT).await;
    capture(
        &w,
        "quotas",
        "shop: a ResourceQuota (count/controllerrevisions.apps 2, pods 4): db's\ntemplate change cannot record its revision (a mismatch on any version);\ncache's scale-up to 3 cannot create its pod.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_scheduling_and_storage() {
    let w = World::start().await;
    w.healthy_set("db", 2, "OrderedReady").await;
    w.patch(
        "db",
        json!({"spec": {"template": {"spec": {"nodeSelector": {"disktype": "nvme"}}}}}),
    )
    .await;
    let pvc = stateful_set("store", 1, &w.image("store", "1"), true, "OrderedReady")
        .replace(
            "  podManagementPolicy",
            "  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec:\n      accessModes: [ReadWriteOnce]\n      storageClassName: fast-ssd\n      resources: {requests: {storage: 1Gi}}\n  podManagementPolicy",
        )
        .replace(
            "      containers:",
            &format!(
                "      containers:\n      - name: sidecar\n        image: {}\n        volumeMounts: [{{name: data, mountPath: /data}}]",
                w.image("sidecar", "1")
            ),
        );
    w.apply(&pvc).await;
    w.unschedulable("db-1", ROLLOUT).await;
    w.unschedulable("store-0", ROLLOUT).await;
    capture(
        &w,
        "scheduling-storage",
        "shop: db's template now selects disktype=nvme, which no node has;\nstore's PVC asks for StorageClass fast-ssd, which does not exist.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_migration() {
    let w = World::start().await;
    let sts = stateful_set("db", 2, &w.image("db", "1"), true, "OrderedReady")
        .replace(
            "terminationGracePeriodSeconds: 1",
            "terminationGracePeriodSeconds: 600",
        )
        // The app migrates for the whole grace period on SIGTERM.
        .replace(
            "        resources:",
            "        env: [{name: SHUTDOWN_SECONDS, value: \"600\"}]\n        resources:",
        );
    w.apply(&sts).await;
    w.healthy("db", ROLLOUT).await;
    w.set_image("db", &w.image("db", "2")).await;
    w.terminating("db-1", ROLLOUT).await;
    capture(
        &w,
        "migration",
        "shop/db: db-1 terminates slowly (a migration on shutdown, grace period\n600s) during a rollout.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_controller_down() {
    let w = World::start().await;
    w.healthy_set("db", 2, "OrderedReady").await;
    w.cp.stop_controller_manager().await.unwrap();
    w.set_image("db", &w.image("db", "2")).await;
    tokio::time::sleep(Duration::from_secs(42)).await;
    capture(
        &w,
        "controller-down",
        "shop/db: kube-controller-manager stopped, then a template change: the\ngeneration moves, nothing observes it, the leader lease goes stale.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_cluster_causes() {
    let w = World::start_sim().await;
    // A dedicated, tainted node the template change is pinned to without a
    // toleration; anti-affinity one replica more than there are nodes; an
    // HPA steering the spread set; a node whose kubelet goes silent; the
    // status ConfigMap of a cluster-autoscaler whose GPU group backs off.
    w.sim()
        .add_node(
            stsmend_e2e::sim::NodeSpec::new("dedicated-1")
                .label("pool", "db")
                .taint("dedicated", Some("db"), "NoSchedule"),
        )
        .await
        .unwrap();
    w.apply(&stateful_set(
        "pinned",
        1,
        "registry.example/pinned:1",
        true,
        "OrderedReady",
    ))
    .await;
    let spread = stateful_set("spread", 3, "registry.example/spread:1", true, "Parallel").replace(
        "      containers:",
        "      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector: {matchLabels: {app: spread}}\n            topologyKey: kubernetes.io/hostname\n      containers:",
    );
    w.apply(&spread).await;
    w.apply(&stateful_set(
        "edge",
        1,
        "registry.example/edge:1",
        true,
        "OrderedReady",
    ))
    .await;
    for n in ["pinned", "spread", "edge"] {
        w.healthy(n, ROLLOUT).await;
    }
    w.apply(
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: spread}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: spread}\n  minReplicas: 3\n  maxReplicas: 6\n  targetCPUUtilizationPercentage: 80\n",
    )
    .await;
    w.cp.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cluster-autoscaler-status, namespace: kube-system}\ndata:\n  status: |\n    Cluster-autoscaler status at 2026-11-25 10:00:00 +0000 UTC:\n    Cluster-wide:\n      Health:      Healthy (ready=4 unready=0 notStarted=0 longNotStarted=0 registered=4 longUnregistered=0)\n      ScaleUp:     NoActivity (ready=4 registered=4)\n      ScaleDown:   NoCandidates (candidates=0)\n\n    NodeGroups:\n      Name:        gpu-pool\n      Health:      Healthy (ready=0 unready=0 notStarted=0 longNotStarted=0 registered=0 longUnregistered=0 cloudProviderTarget=1 (minSize=0, maxSize=4))\n      ScaleUp:     Backoff (ready=0 cloudProviderTarget=1)\n      ScaleDown:   NoCandidates (candidates=0)\n"),
    )
    .await
    .unwrap();
    w.patch(
        "pinned",
        json!({"spec": {"template": {"spec": {"nodeSelector": {"pool": "db"}}}}}),
    )
    .await;
    w.patch("spread", json!({"spec": {"replicas": 4}})).await;
    let edge_node = w
        .pod("edge-0")
        .await
        .spec
        .and_then(|s| s.node_name)
        .unwrap();
    w.sim().stop_heartbeats(&edge_node).unwrap();
    w.unschedulable("pinned-0", ROLLOUT).await;
    w.unschedulable("spread-3", ROLLOUT).await;
    // The node lifecycle controller marks the silent node's pods not Ready
    // after its 40 s grace period.
    let api = w.sts_api();
    stsmend_e2e::wait_until("edge not ready", Duration::from_secs(120), || {
        let api = api.clone();
        async move {
            let st = api
                .get("edge")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            if st.ready_replicas.unwrap_or(0) == 0 {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        }
    })
    .await
    .unwrap();
    capture(
        &w,
        "cluster-causes",
        "shop: pinned's template now selects a tainted node it does not tolerate;\nspread (Parallel, pod anti-affinity per node, an HPA) scaled to 4 on 4\nnodes of which one it cannot use; edge's node stopped its heartbeats;\nkube-system/cluster-autoscaler-status reports a GPU group in backoff.",
    )
    .await;
}

/// What only a real kubelet reports, one StatefulSet each (2 replicas,
/// OrderedReady, so a pod of the current revision runs beside the broken
/// one): an OOM kill at a memory limit, a missing Secret key, a failing
/// init container, a startup probe that never passes, and a volume from a
/// ConfigMap that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures; run scripts/capture-fixtures.sh"]
async fn capture_kubelet() {
    let w = World::start().await;
    w.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: api-creds}\nstringData: {user: app}\n")
        .await;
    for n in ["cache", "api", "jobs", "web", "docs"] {
        w.apply(&stateful_set(n, 2, &w.image(n, "1"), true, "OrderedReady"))
            .await;
    }
    for n in ["cache", "api", "jobs", "web", "docs"] {
        w.healthy(n, ROLLOUT).await;
    }
    let container = |extra: serde_json::Value| {
        let mut c = json!({"name": "app"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"spec": {"template": {"spec": {"containers": [c]}}}})
    };
    w.patch(
        "cache",
        container(json!({"image": w.image("cache", "2-oom"), "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}}})),
    )
    .await;
    w.patch(
        "api",
        container(json!({"env": [{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-creds", "key": "token"}}}]})),
    )
    .await;
    w.patch(
        "jobs",
        json!({"spec": {"template": {"spec": {"initContainers": [{
            "name": "migrate", "image": w.image("jobs", "1"),
            "command": ["app", "sh", "-c", "echo 'migrate: schema lock held by another writer' >&2; sleep 1; exit 3"]}]}}}}),
    )
    .await;
    w.patch(
        "web",
        container(json!({"startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 2}})),
    )
    .await;
    w.patch(
        "docs",
        json!({"spec": {"template": {"spec": {
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}]}}}}),
    )
    .await;
    w.pod_waiting("cache-1", "CrashLoopBackOff", ROLLOUT).await;
    w.pod_waiting("api-1", "CreateContainerConfigError", ROLLOUT)
        .await;
    w.pod_waiting("jobs-1", "CrashLoopBackOff", ROLLOUT).await;
    // A v1.20 kubelet restarts for a failed startup probe only at the pod's
    // next periodic sync (kubernetes issue 98007).
    w.restarted("web-1", 1, ROLLOUT * 2).await;
    w.event("docs-1", "FailedMount", ROLLOUT).await;
    capture(
        &w,
        "kubelet",
        "shop/cache: a new image that allocates past its new 32Mi limit (OOMKilled).\n\
         shop/api: a new env var from a key its Secret does not have\n\
         (CreateContainerConfigError).\n\
         shop/jobs: a new init container that exits 3 (Init:CrashLoopBackOff).\n\
         shop/web: a new startup probe that never passes (killed and restarted).\n\
         shop/docs: a new volume from a ConfigMap that does not exist\n\
         (ContainerCreating, FailedMount).",
    )
    .await;
}

/// The bundled preflight example: a healthy shop (examples/preflight/),
/// snapshotted with `stsmend snapshot --preflight` under the shipped
/// stsmend-preflight identity, for `stsmend preflight --from`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites examples/preflight; run scripts/capture-fixtures.sh"]
async fn capture_preflight() {
    let w = World::start_sim().await;
    w.apply("apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    max: {memory: 1Gi}\n")
        .await;
    w.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n")
        .await;
    w.apply(&stateful_set(
        "db",
        3,
        "registry.example/db:1",
        true,
        "OrderedReady",
    ))
    .await;
    w.apply(&stateful_set(
        "cache",
        2,
        "registry.example/cache:1",
        true,
        "Parallel",
    ))
    .await;
    w.healthy("db", ROLLOUT).await;
    w.healthy("cache", ROLLOUT).await;
    let identity = crate::preflight::preflight_identity(&w).await;
    let dir = root().join("examples/preflight");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("snapshot.yaml");
    let (code, text) = w
        .stsmend_as(
            &identity.kubeconfig,
            &[
                "snapshot",
                "--preflight",
                "-n",
                &w.ns,
                "-o",
                out.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(code, 0, "{text}");
    let body = std::fs::read_to_string(&out).unwrap();
    std::fs::write(
        &out,
        format!(
            "# Captured by scripts/capture-fixtures.sh with `stsmend snapshot --preflight`\n# from a real kube-apiserver v1.20.2 with simulated nodes: a healthy shop\n# (db, OrderedReady, 3 replicas; cache, Parallel, 2) under a LimitRange of\n# max memory 1Gi. `stsmend preflight examples/preflight/change --from` this.\n{body}"
        ),
    )
    .unwrap();
}
