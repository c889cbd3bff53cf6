//! The CronJob as users run it: the runtime image (scripts/runtime-image.sh,
//! the Dockerfile's final stage around the static binary) on a real node,
//! deploy/manifests applied, the Job scheduled by the real CronJob
//! controller and run by the real kubelet under the shipped RBAC, talking to
//! the API server through the `kubernetes` Service like any in-cluster
//! client.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::ROLLOUT;
use crate::world::{World, stateful_set};
use stsmend_e2e::wait_until;

/// The runtime image's tag, as scripts/runtime-image.sh printed it.
const AGENT_IMAGE_ENV: &str = "STSMEND_E2E_AGENT_IMAGE";

/// A strategic merge patch of the shipped CronJob, as `kubectl patch` does.
async fn patch_cronjob(w: &World, patch: &serde_json::Value) {
    w.cp.kubectl(&[
        "patch",
        "cronjob",
        "stsmend",
        "-n",
        "stsmend",
        "-p",
        &patch.to_string(),
    ])
    .await
    .unwrap();
}

/// A crash loop on a Parallel set, opted in: the CronJob's first Job rolls
/// it back, the set heals, and the Job's log is the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cronjob_heals_a_crash_loop_in_cluster() {
    let image = std::env::var(AGENT_IMAGE_ENV).unwrap_or_else(|_| {
        panic!(
            "{AGENT_IMAGE_ENV} is not set: build the runtime image with \
             `bash scripts/runtime-image.sh target/x86_64-unknown-linux-musl/release/stsmend` \
             (scripts/test.sh does)"
        )
    });
    let w = World::start().await;
    w.real().load_image(&image).await.unwrap();
    for m in [
        "deploy/manifests/configmap.yaml",
        "deploy/manifests/v1.20/cronjob.yaml",
    ] {
        let path = format!("{}/{m}", env!("CARGO_MANIFEST_DIR"));
        w.cp.kubectl(&["apply", "-f", &path]).await.unwrap();
    }
    // What a user sets through the chart's values: the image they loaded,
    // apply on, and here a schedule of every minute, acting on sight. The
    // CronJob stays suspended until the set is in its crash loop: a Job that
    // ran in between would see a rollout still under way, not this scenario.
    let config = "for: 0s\nlimits:\n  debounceRuns: 1\n  cooldown: 30m\n  maxActions: 5\n\
                  stateNamespace: stsmend\nscope:\n  excludeNamespaces: [kube-system]\n";
    let cm = json!({"data": {"config.yaml": config}});
    w.cp.kubectl(&[
        "patch",
        "configmap",
        "stsmend-config",
        "-n",
        "stsmend",
        "--type=merge",
        "-p",
        &cm.to_string(),
    ])
    .await
    .unwrap();
    let cronjob = json!({"spec": {
        "schedule": "*/1 * * * *",
        "suspend": true,
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{
            "name": "stsmend",
            "image": image,
            "args": ["run", "--apply", "--config", "/etc/stsmend/config.yaml", "--output", "markdown", "--log-format", "json"],
        }]}}}}
    }});
    patch_cronjob(&w, &cronjob).await;

    w.apply(&stateful_set(
        "cache",
        2,
        &w.image("cache", "1"),
        true,
        "Parallel",
    ))
    .await;
    let good = w.healthy("cache", ROLLOUT).await;
    w.set_image("cache", &w.image("cache", "2-crash")).await;
    w.pod_waiting("cache-1", "CrashLoopBackOff", ROLLOUT).await;
    let jobs: Api<Job> = Api::namespaced(w.client.clone(), "stsmend");
    let before: Vec<String> = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    patch_cronjob(&w, &json!({"spec": {"suspend": false}})).await;

    // The next Job the controller starts after the set broke.
    let job = wait_until(
        "a CronJob Job that succeeded",
        Duration::from_secs(180),
        || {
            let (jobs, before) = (jobs.clone(), before.clone());
            async move {
                let list = jobs
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut seen = Vec::new();
                for j in list.items {
                    let name = j.metadata.name.clone().unwrap_or_default();
                    if before.contains(&name) {
                        continue;
                    }
                    let st = j.status.unwrap_or_default();
                    if st.failed.unwrap_or(0) > 0 {
                        return Ok(Err(format!("Job {name} failed")));
                    }
                    if st.succeeded.unwrap_or(0) > 0 {
                        return Ok(Ok(name));
                    }
                    seen.push(name);
                }
                Err(format!("new Jobs not done yet: {seen:?}"))
            }
        },
    )
    .await
    .unwrap();
    let logs =
        w.cp.kubectl(&[
            "logs",
            "-n",
            "stsmend",
            &format!("job/{}", job.clone().unwrap_or_default()),
        ])
        .await
        .unwrap();
    let job = job.unwrap_or_else(|e| panic!("{e}; its log:\n{logs}"));
    assert!(
        logs.contains("shop/cache"),
        "the report names the set: {logs}"
    );
    assert!(
        logs.contains("rollback"),
        "the report shows the rollback: {logs}"
    );
    assert_eq!(w.healthy("cache", ROLLOUT).await, good, "healed by {job}");
    assert_eq!(w.agent_events("cache").await, ["StsmendRolledBack"]);
}
