//! The k3s backend: a real kubelet pulls (and fails to pull) a real image,
//! and the `stsmend` binary diagnoses the stuck rollout.
//!
//! Runs with `E2E_BACKEND=k3s cargo test -p stsmend-e2e --features k3s --test k3s`
//! where a Docker engine is reachable; otherwise it prints one line saying
//! why it skipped, and passes.

use stsmend_e2e::{Backend, Error};

/// Without the feature, asking for k3s is an error that names the fix.
#[cfg(not(feature = "k3s"))]
#[test]
fn e2e_backend_k3s_needs_the_feature() {
    let err = Backend::parse(Some("k3s")).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownBackend(b) if b == "k3s"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "E2E_BACKEND=\"k3s\" is not a backend this build knows (local; k3s needs --features k3s)"
    );
}

#[cfg(feature = "k3s")]
#[test]
fn e2e_backend_k3s_is_known_with_the_feature() {
    assert_eq!(Backend::parse(Some("k3s")).unwrap(), Backend::K3s);
    let err = Backend::parse(Some("kind")).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownBackend(b) if b == "kind"),
        "{err:?}"
    );
    assert!(err.to_string().ends_with("(local, k3s)"), "{err}");
}

#[cfg(feature = "k3s")]
mod on_k3s {
    use std::io::Write as _;
    use std::path::PathBuf;
    use std::time::Duration;

    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
    use kube::Api;
    use kube::api::{Patch, PatchParams};
    use serde_json::{Value, json};
    use stsmend_e2e::backend::k3s;
    use stsmend_e2e::{Backend, Error, wait_until};

    const NS: &str = "shop";
    const GOOD: &str = "registry.k8s.io/pause:3.9";
    const BAD: &str = "registry.k8s.io/pause:does-not-exist-stsmend-e2e";
    /// Pulls from a real registry: generous.
    const PULL: Duration = Duration::from_secs(180);

    /// Why this run cannot use k3s, if it cannot.
    fn skip_reason() -> Option<String> {
        match Backend::from_env() {
            Ok(Backend::K3s) => {}
            Ok(Backend::Local) => {
                let now = match std::env::var(stsmend_e2e::backend::ENV) {
                    Ok(v) if !v.trim().is_empty() => format!("E2E_BACKEND={v}"),
                    _ => "E2E_BACKEND is unset".to_string(),
                };
                return Some(format!(
                    "{now} (set E2E_BACKEND=k3s where a Docker engine is reachable)"
                ));
            }
            Err(e) => panic!("{e}"),
        }
        k3s::docker_engine()
            .err()
            .map(|why| format!("no Docker engine reachable ({why})"))
    }

    /// `STSMEND_BIN`, else the debug build of the workspace.
    fn stsmend_bin() -> PathBuf {
        let bin = std::env::var_os("STSMEND_BIN")
            .filter(|b| !b.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .filter(|t| !t.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
                    });
                target.join("debug/stsmend")
            });
        assert!(
            bin.is_file(),
            "no stsmend binary at {} (build it with `cargo build --bin stsmend`, or set STSMEND_BIN)",
            bin.display()
        );
        bin
    }

    fn manifest() -> String {
        format!(
            "apiVersion: v1
kind: Service
metadata: {{name: db, namespace: {NS}}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{name: db, port: 5432}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {NS}}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {GOOD}
"
        )
    }

    /// Runs `stsmend plan -A -o json --for 0s` with `kubeconfig`; returns the
    /// exit code and the report.
    async fn plan(kubeconfig: &std::path::Path) -> (i32, Value) {
        let out = tokio::process::Command::new(stsmend_bin())
            .args(["plan", "-A", "-o", "json", "--for", "0s", "--kubeconfig"])
            .arg(kubeconfig)
            .output()
            .await
            .expect("stsmend runs");
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stsmend plan printed no JSON report ({e}); exit {:?}\nstdout: {}\nstderr: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }

    /// The finding kinds of `ns/name` among the failing StatefulSets.
    fn finding_kinds(report: &Value, ns: &str, name: &str) -> Option<Vec<String>> {
        let a = report["failing"]
            .as_array()?
            .iter()
            .find(|a| a["namespace"] == ns && a["name"] == name)?;
        Some(
            a["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["kind"].as_str().map(str::to_string))
                .collect(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn image_pull_failure_is_diagnosed_on_k3s() {
        if let Some(why) = skip_reason() {
            // Straight to stderr, past libtest's capture: one visible line.
            let _ = writeln!(std::io::stderr(), "k3s backend: skipped: {why}");
            return;
        }
        let _ = tracing_subscriber::fmt()
            .with_env_filter("stsmend_e2e=info")
            .with_test_writer()
            .try_init();
        let bin = stsmend_bin();

        let cluster = Backend::K3s.start().await.expect("k3s starts");
        assert_eq!(cluster.backend(), Backend::K3s);
        assert!(cluster.as_local().is_none());
        assert!(
            matches!(
                cluster.restart_apiserver().await,
                Err(Error::Unsupported { backend: "k3s", .. })
            ),
            "restart_apiserver is unsupported on k3s"
        );
        let client = cluster.client();

        let rbac = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/manifests/rbac.yaml"
        ))
        .unwrap();
        cluster
            .apply(&rbac)
            .await
            .expect("deploy/manifests/rbac.yaml applies");
        cluster.kubectl(&["create", "namespace", NS]).await.unwrap();
        wait_for_service_account(&client, NS, "default").await;
        cluster.apply(&manifest()).await.unwrap();

        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
        wait_until("db to have 1 ready replica", PULL, || async {
            let st = sts
                .get("db")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            if st.ready_replicas == Some(1) {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        })
        .await
        .unwrap();

        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": BAD}]}}}});
        sts.patch("db", &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let reason = wait_until("db-0 failing to pull the new image", PULL, || async {
            let pod = pods.get("db-0").await.map_err(|e| e.to_string())?;
            let image = pod
                .spec
                .as_ref()
                .map(|s| s.containers[0].image.clone().unwrap_or_default())
                .unwrap_or_default();
            let waiting = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone());
            match waiting.as_deref() {
                Some(r @ ("ErrImagePull" | "ImagePullBackOff")) if image == BAD => {
                    Ok(r.to_string())
                }
                _ => Err(format!("image {image}, waiting {waiting:?}")),
            }
        })
        .await
        .unwrap();
        eprintln!("db-0: {reason}");

        // As the agent runs in a cluster: the stsmend ServiceAccount's token,
        // with exactly the RBAC of deploy/.
        let token = cluster
            .kubectl(&["create", "token", "stsmend", "-n", "stsmend"])
            .await
            .unwrap();
        let agent = cluster
            .kubeconfig_for_token("system:serviceaccount:stsmend:stsmend", token.trim())
            .unwrap();
        for kubeconfig in [agent.as_path(), cluster.admin_kubeconfig()] {
            let (code, report) = plan(kubeconfig).await;
            let kinds = finding_kinds(&report, NS, "db").unwrap_or_else(|| {
                panic!(
                    "{NS}/db is not failing with {}: {report:#}",
                    kubeconfig.display()
                )
            });
            assert!(
                kinds.iter().any(|k| k == "image_pull"),
                "{NS}/db findings {kinds:?} lack image_pull ({}): {report:#}",
                kubeconfig.display()
            );
            assert_eq!(code, 1, "exit code with findings ({})", bin.display());
        }

        cluster.shutdown().await;
    }

    async fn wait_for_service_account(client: &kube::Client, ns: &str, name: &str) {
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        wait_until(
            format!("ServiceAccount {ns}/{name}"),
            Duration::from_secs(60),
            || async {
                match sas.get_opt(name).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("not created yet".to_string()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
        .unwrap();
    }
}
