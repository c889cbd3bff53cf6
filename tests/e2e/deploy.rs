//! The shipped manifests on the real control plane: server-side validation
//! (schema, admission, defaulting) and a real apply, then the agent runs
//! with the shipped config under the shipped RBAC.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::world::World;

/// The plain manifests a v1.20 cluster takes (batch/v1 CronJob arrived in
/// 1.21; deploy/manifests/v1.20/ holds the batch/v1beta1 rendering).
const MANIFESTS: [&str; 3] = [
    "deploy/manifests/rbac.yaml",
    "deploy/manifests/configmap.yaml",
    "deploy/manifests/v1.20/cronjob.yaml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_manifests_validate_apply_and_run() {
    let w = World::start().await;
    for m in MANIFESTS {
        let path = format!("{}/{m}", env!("CARGO_MANIFEST_DIR"));
        w.cp.kubectl(&["apply", "--dry-run=server", "-f", &path])
            .await
            .unwrap_or_else(|e| panic!("{m} does not validate: {e}"));
        w.cp.kubectl(&["apply", "-f", &path])
            .await
            .unwrap_or_else(|e| panic!("{m} does not apply: {e}"));
    }
    let cronjob =
        w.cp.kubectl(&[
            "get",
            "cronjob",
            "-n",
            "stsmend",
            "stsmend",
            "-o",
            "jsonpath={.spec.concurrencyPolicy}",
        ])
        .await
        .unwrap();
    assert_eq!(cronjob.trim(), "Forbid");

    // The config the CronJob mounts is one the agent accepts, and a run
    // with it under the shipped ServiceAccount completes (a dry run).
    let cm = Api::<ConfigMap>::namespaced(w.client.clone(), "stsmend")
        .get("stsmend-config")
        .await
        .unwrap();
    let config = w.cp.work_dir().join("shipped-config.yaml");
    std::fs::write(&config, &cm.data.unwrap()["config.yaml"]).unwrap();
    let run = w
        .agent(&["run", "--config", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["mode"], "dry-run");
}
