//! The real-node harness: node containers register, run pods from the
//! preloaded images, and report failures as a real kubelet does.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use stsmend_e2e::node::{NodeSpec, RealNodes, docker_gateway, images};
use stsmend_e2e::{ControlPlane, wait, wait_until};

async fn cluster() -> (ControlPlane, RealNodes) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("stsmend_e2e=info")
        .with_test_writer()
        .try_init();
    let cp = ControlPlane::builder()
        .node_address(docker_gateway().expect("a Docker engine (scripts/engine.sh)"))
        .start()
        .await
        .unwrap();
    let nodes = RealNodes::start(&cp, vec![NodeSpec::new("node-1")])
        .await
        .unwrap();
    (cp, nodes)
}

fn pod(name: &str, image: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {image}
    readinessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
{extra}"#
    )
}

async fn pod_status(api: &Api<Pod>, name: &str, want: impl Fn(&Pod) -> bool) -> Pod {
    wait_until(format!("pod {name}"), Duration::from_secs(90), || {
        let api = api.clone();
        let want = &want;
        async move {
            let p = api.get(name).await.map_err(|e| e.to_string())?;
            if want(&p) {
                Ok(p)
            } else {
                Err(format!("{:?}", p.status))
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_kubelet_runs_and_fails_pods() {
    let (cp, nodes) = cluster().await;
    let client = cp.client();
    wait::service_account(&client, "default", "default")
        .await
        .unwrap();
    cp.apply(&pod("ready", images::APP_1, "")).await.unwrap();
    cp.apply(&pod("crash", images::APP_2_CRASH, ""))
        .await
        .unwrap();
    cp.apply(&pod("missing", images::APP_2_MISSING, ""))
        .await
        .unwrap();
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");

    let ready = pod_status(&api, "ready", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await;
    assert_eq!(
        ready.spec.unwrap().node_name.as_deref(),
        Some("node-1"),
        "scheduled on the real node"
    );

    let waiting = |reason: &'static str| {
        move |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.state
                            .as_ref()
                            .and_then(|s| s.waiting.as_ref())
                            .and_then(|w| w.reason.as_deref())
                            == Some(reason)
                    })
                })
        }
    };
    let crash = pod_status(&api, "crash", waiting("CrashLoopBackOff")).await;
    let last = crash.status.unwrap().container_statuses.unwrap()[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    // The log reaches the API through the kubelet and containerd's log
    // files; ask until the previous run's last line is there.
    let logs = wait_until(
        "the crashed container's previous log",
        Duration::from_secs(30),
        || async {
            let logs = cp
                .kubectl(&["logs", "crash", "--previous"])
                .await
                .map_err(|e| e.to_string())?;
            if logs.contains("cannot parse /etc/app/config.yaml") {
                Ok(logs)
            } else {
                Err(logs)
            }
        },
    )
    .await
    .unwrap();
    assert!(logs.contains("app 2: starting"), "{logs}");

    pod_status(&api, "missing", |p| {
        waiting("ErrImagePull")(p) || waiting("ImagePullBackOff")(p)
    })
    .await;

    nodes.stop().await;
    cp.shutdown().await;
}
