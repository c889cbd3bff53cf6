//! A scenario's world: a real control plane, nodes (real kubelets in
//! containers by default, simulated where a scenario needs what containers
//! cannot give: GPUs, a node group), the RBAC of deploy/ applied, and the
//! `stsmend` binary run as a CronJob would run it (a fresh process per run)
//! under the stsmend ServiceAccount's token.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod, Secret, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::ROLLOUT;
use stsmend_e2e::node::{self, RealNodes, images};
use stsmend_e2e::sim::{NodeSpec, Sim};
use stsmend_e2e::{ControlPlane, wait_until};

/// The kubelets a world runs on.
#[derive(Debug)]
pub enum Nodes {
    /// Containers of the node image, each with containerd and a kubelet.
    Real(Box<RealNodes>),
    /// The simulated kubelet (e2e/src/sim).
    Sim(Sim),
}

pub struct World {
    /// Declared before `cp`, so the nodes go first when a world drops.
    pub nodes: Nodes,
    pub cp: ControlPlane,
    pub client: kube::Client,
    /// The namespace the scenario's objects live in.
    pub ns: String,
    agent_kubeconfig: PathBuf,
    dir: PathBuf,
}

/// One run of the agent.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub report: Value,
    pub stderr: String,
}

impl Run {
    /// The actions executed on `ns/name`, as (action, status).
    pub fn executed(&self, id: &str) -> Vec<(String, String)> {
        self.assessment(id)
            .and_then(|a| a.get("executed").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default().to_string(),
                    e["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The steps of the first executed action on `ns/name` (a forced
    /// rollback: revert, observe, evict), as (step, status).
    pub fn steps(&self, id: &str) -> Vec<(String, String)> {
        self.assessment(id)
            .and_then(|a| a["executed"][0]["steps"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["step"].as_str().unwrap_or_default().to_string(),
                    e["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The plan's actions for `ns/name`, without their whys.
    pub fn planned(&self, id: &str) -> Vec<Value> {
        self.assessment(id)
            .and_then(|a| a["plan"]["actions"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Asserts the plan's rung for `id` and that its one action ended with
    /// `status`.
    #[track_caller]
    pub fn assert_did(&self, id: &str, rung: &str, action: &str, status: &str) {
        assert_eq!(self.rung(id).as_deref(), Some(rung), "{:#}", self.report);
        assert_eq!(
            self.executed(id),
            [(action.to_string(), status.to_string())],
            "{:#}",
            self.report
        );
    }

    /// The findings of `id` as (kind, summary).
    pub fn findings(&self, id: &str) -> Vec<(String, String)> {
        self.assessment(id)
            .and_then(|a| a["findings"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|f| {
                (
                    f["kind"].as_str().unwrap_or_default().to_string(),
                    f["summary"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub fn rung(&self, id: &str) -> Option<String> {
        self.assessment(id)
            .and_then(|a| a["plan"]["rung"].as_str().map(str::to_string))
    }

    pub fn failing(&self) -> Vec<String> {
        self.report["failing"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["namespace"].as_str().unwrap(),
                    a["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn assessment(&self, id: &str) -> Option<&Value> {
        self.report["failing"].as_array()?.iter().find(|a| {
            format!(
                "{}/{}",
                a["namespace"].as_str().unwrap_or_default(),
                a["name"].as_str().unwrap_or_default()
            ) == id
        })
    }
}

impl World {
    /// A world on one real node, `node-1`, in namespace `shop`.
    pub async fn start() -> World {
        Self::start_in("shop").await
    }

    pub async fn start_in(ns: &str) -> World {
        init_tracing();
        let gateway = node::docker_gateway().expect("a Docker engine: run scripts/engine.sh");
        let cp = ControlPlane::builder()
            .node_address(gateway)
            .start()
            .await
            .expect("control plane");
        let nodes = RealNodes::start(&cp, vec![node::NodeSpec::new("node-1")])
            .await
            .expect("a real node");
        Self::with_nodes(cp, Nodes::Real(Box::new(nodes)), ns).await
    }

    /// A world on three simulated nodes, `node-1` to `node-3`.
    pub async fn start_sim() -> World {
        init_tracing();
        let cp = ControlPlane::start().await.expect("control plane");
        let sim = Sim::start(
            cp.client(),
            (1..=3)
                .map(|i| NodeSpec::new(format!("node-{i}")))
                .collect(),
        )
        .await
        .expect("simulated nodes");
        Self::with_nodes(cp, Nodes::Sim(sim), "shop").await
    }

    async fn with_nodes(cp: ControlPlane, nodes: Nodes, ns: &str) -> World {
        let client = cp.client();
        let rbac = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/manifests/rbac.yaml"
        ))
        .unwrap();
        cp.apply(&rbac)
            .await
            .expect("deploy/manifests/rbac.yaml applies");
        let token = service_account_token(&client, "stsmend", "stsmend").await;
        let agent_kubeconfig = cp
            .kubeconfig_for_token("system:serviceaccount:stsmend:stsmend", &token)
            .unwrap();
        let dir = cp.work_dir().join("agent");
        std::fs::create_dir_all(&dir).unwrap();
        cp.kubectl(&["create", "namespace", ns]).await.unwrap();
        World {
            ns: ns.to_string(),
            nodes,
            cp,
            client,
            agent_kubeconfig,
            dir,
        }
    }

    /// The simulation; the scenario must have started with [`World::start_sim`].
    pub fn sim(&self) -> &Sim {
        match &self.nodes {
            Nodes::Sim(sim) => sim,
            Nodes::Real(_) => panic!("this scenario runs on real nodes: start it with start_sim"),
        }
    }

    /// The real nodes; the scenario must have started with [`World::start`].
    pub fn real(&self) -> &RealNodes {
        match &self.nodes {
            Nodes::Real(nodes) => nodes,
            Nodes::Sim(_) => panic!("this scenario runs on simulated nodes"),
        }
    }

    /// The image of version `tag` of the app `name`, on this world's nodes.
    ///
    /// Simulated nodes read the fault from the name (`registry.example/NAME:TAG`,
    /// e2e/README.md). Real nodes run what the image does: `1` and `2` serve,
    /// a tag with `crash` exits 1, one with `oom` is OOMKilled, and any other
    /// tag (`2-broken`) is not preloaded, so pulling it fails.
    pub fn image(&self, name: &str, tag: &str) -> String {
        match &self.nodes {
            Nodes::Sim(_) => format!("registry.example/{name}:{tag}"),
            Nodes::Real(_) => match tag {
                "1" => images::APP_1.to_string(),
                "2" => images::APP_2.to_string(),
                t if t.contains("crash") => images::APP_2_CRASH.to_string(),
                t if t.contains("oom") => images::APP_2_OOM.to_string(),
                t => format!("localhost:5999/stsmend/{name}:{t}"),
            },
        }
    }

    /// Writes the agent's config file: acting on sight (`for: 0s`) after
    /// one run of debounce, so a scenario's runs follow each other quickly;
    /// the cooldown is the shipped one (30m): a remediation must finish in
    /// its run. `extra` is appended under `limits:` (YAML).
    pub fn config(&self, extra: &str) -> PathBuf {
        let path = self.dir.join("config.yaml");
        std::fs::write(
            &path,
            format!("for: 0s\nlimits:\n  debounceRuns: 1\n{extra}"),
        )
        .unwrap();
        path
    }

    /// Writes `text` to `rel` under the scenario's own directory.
    pub fn write_file(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `stsmend ARGS --kubeconfig <agent> -o json` and parses the report.
    pub async fn agent(&self, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stsmend"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.agent_kubeconfig)
            .args(["-o", "json", "--log-format", "json"])
            .output()
            .await
            .expect("stsmend runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stsmend {args:?} printed no JSON report ({e}); exit {:?}\nstdout: {}\nstderr: {stderr}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout)
            )
        });
        Run {
            code: out.status.code().unwrap_or(-1),
            report,
            stderr,
        }
    }

    /// Runs `stsmend ARGS --kubeconfig <agent>`: exit code and stdout.
    pub async fn agent_raw(&self, args: &[&str]) -> (i32, String) {
        self.stsmend_as(&self.agent_kubeconfig, args).await
    }

    /// Runs `stsmend ARGS --kubeconfig KUBECONFIG` (an operator's, say):
    /// exit code and output.
    pub async fn stsmend_as(&self, kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stsmend"))
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .output()
            .await
            .expect("stsmend runs");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `kubectl apply` in the scenario's namespace.
    pub async fn apply(&self, yaml: &str) {
        self.cp
            .kubectl_with_stdin(&["apply", "-n", &self.ns, "-f", "-"], Some(yaml))
            .await
            .expect("kubectl apply");
    }

    pub fn id(&self, name: &str) -> String {
        format!("{}/{name}", self.ns)
    }

    pub fn sts_api(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn sts(&self, name: &str) -> StatefulSet {
        self.sts_api().get(name).await.unwrap()
    }

    pub async fn set_image(&self, name: &str, image: &str) {
        let sts = self.sts(name).await;
        let container = sts.spec.template.spec.unwrap().containers[0].name.clone();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}});
        self.sts_api()
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap();
    }

    /// Breaks `db` the way ENVIRONMENT.md measured on v1.20: a LimitRange
    /// rejects the updated pod, and a second template change while that pod is
    /// missing leaves `status.observedGeneration` behind for good.
    pub async fn limit_range_mismatch(&self) -> String {
        let w = self;
        w.apply(
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: memory}\nspec:\n  limits:\n  - type: Container\n    max: {memory: 1Gi}\n",
        )
        .await;
        let good = w.healthy_set("db", 3, "OrderedReady").await;
        let resources = |mem: &str| json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"requests": {"memory": mem}, "limits": {"memory": mem}}}]}}}});
        w.patch("db", resources("4Gi")).await;
        w.event("db", "FailedCreate", ROLLOUT).await;
        w.patch("db", json!({"spec": {"template": {"metadata": {"annotations": {"example.com/restartedAt": "now"}}}}})).await;
        w.mismatch("db", Duration::from_secs(3)).await;
        good
    }

    /// An opted-in StatefulSet of `replicas` pods of version 1 of the app
    /// `name` ([`World::image`]), waited for until healthy; returns its
    /// revision.
    pub async fn healthy_set(&self, name: &str, replicas: i32, policy: &str) -> String {
        let image = self.image(name, "1");
        self.apply(&stateful_set(name, replicas, &image, true, policy))
            .await;
        self.healthy(name, ROLLOUT).await
    }

    /// Merge-patches the StatefulSet as a person or a CD system would.
    pub async fn patch(&self, name: &str, patch: Value) {
        self.sts_api()
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap();
    }

    /// Waits for an Event of `reason` on the object `involved`.
    pub async fn event(&self, involved: &str, reason: &str, timeout: Duration) -> String {
        self.event_saying(involved, reason, "", timeout).await
    }

    /// Waits for an event with `reason` about `involved` whose message
    /// contains `text`, and returns the message.
    pub async fn event_saying(
        &self,
        involved: &str,
        reason: &str,
        text: &str,
        timeout: Duration,
    ) -> String {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        wait_until(
            format!("event {reason} on {involved} saying {text:?}"),
            timeout,
            || {
                let api = api.clone();
                async move {
                    let list = api
                        .list(
                            &ListParams::default()
                                .fields(&format!("involvedObject.name={involved}")),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    list.items
                        .into_iter()
                        .filter(|e| e.reason.as_deref() == Some(reason))
                        .filter_map(|e| e.message)
                        .find(|m| m.contains(text))
                        .ok_or_else(|| "not yet".to_string())
                }
            },
        )
        .await
        .unwrap()
    }

    /// Waits until the controller has not observed the StatefulSet's latest
    /// generation, and that holds for `hold`.
    pub async fn mismatch(&self, name: &str, hold: Duration) {
        let api = self.sts_api();
        let check = || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.map_err(|e| e.to_string())?;
                let observed = s.status.and_then(|st| st.observed_generation);
                if observed.is_some() && observed < s.metadata.generation {
                    Ok(())
                } else {
                    Err(format!(
                        "generation {:?} observed {observed:?}",
                        s.metadata.generation
                    ))
                }
            }
        };
        wait_until(
            format!("{name}: generation mismatch"),
            Duration::from_secs(60),
            check,
        )
        .await
        .unwrap();
        tokio::time::sleep(hold).await;
        check().await.expect("the mismatch holds");
    }

    /// Waits until the pod is Pending with the scheduler's reason.
    pub async fn unschedulable(&self, pod: &str, timeout: Duration) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        wait_until(format!("pod {pod} unschedulable"), timeout, || {
            let api = api.clone();
            async move {
                let p = api.get(pod).await.map_err(|e| e.to_string())?;
                let unschedulable = p
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| {
                        c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                    });
                if unschedulable {
                    Ok(())
                } else {
                    Err("scheduled or not seen yet".into())
                }
            }
        })
        .await
        .unwrap()
    }

    /// Waits until `pod` is terminating (its deletion has begun).
    pub async fn terminating(&self, pod: &str, timeout: Duration) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        wait_until(format!("pod {pod} terminating"), timeout, || {
            let api = api.clone();
            async move {
                let p = api.get(pod).await.map_err(|e| e.to_string())?;
                p.metadata
                    .deletion_timestamp
                    .map(|_| ())
                    .ok_or_else(|| "not terminating".into())
            }
        })
        .await
        .unwrap()
    }

    /// Waits until every replica is Ready on one revision and the
    /// controller has observed the latest generation; returns the revision.
    pub async fn healthy(&self, name: &str, timeout: Duration) -> String {
        self.healthy_in(&self.ns, name, timeout).await
    }

    /// As [`World::healthy`], for a StatefulSet of namespace `ns`.
    pub async fn healthy_in(&self, ns: &str, name: &str, timeout: Duration) -> String {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        wait_until(format!("StatefulSet {ns}/{name} healthy"), timeout, || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.map_err(|e| e.to_string())?;
                let want = s.spec.replicas.unwrap_or(1);
                let st = s.status.clone().unwrap_or_default();
                let ok = st.observed_generation == s.metadata.generation
                    && st.ready_replicas.unwrap_or(0) == want
                    && st.updated_replicas.unwrap_or(0) == want
                    && st.replicas == want
                    && st.current_revision.is_some()
                    && st.current_revision == st.update_revision;
                if ok {
                    Ok(st.update_revision.unwrap())
                } else {
                    Err(format!("{st:?} generation {:?}", s.metadata.generation))
                }
            }
        })
        .await
        .unwrap()
    }

    pub async fn pod(&self, name: &str) -> Pod {
        Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .get(name)
            .await
            .unwrap()
    }

    /// Waits until `pod` reports `reason` as the waiting reason of a
    /// container or an init container.
    pub async fn pod_waiting(&self, pod: &str, reason: &str, timeout: Duration) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        wait_until(format!("pod {pod} {reason}"), timeout, || {
            let api = api.clone();
            async move {
                let p = api.get(pod).await.map_err(|e| e.to_string())?;
                let status = p.status.unwrap_or_default();
                let waiting: Vec<String> = status
                    .init_container_statuses
                    .unwrap_or_default()
                    .into_iter()
                    .chain(status.container_statuses.unwrap_or_default())
                    .filter_map(|c| c.state?.waiting?.reason)
                    .collect();
                if waiting.iter().any(|w| w == reason) {
                    Ok(())
                } else {
                    Err(format!("waiting reasons {waiting:?}"))
                }
            }
        })
        .await
        .unwrap()
    }

    /// Waits until a container of `pod` has restarted at least `times`.
    pub async fn restarted(&self, pod: &str, times: i32, timeout: Duration) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        wait_until(format!("pod {pod} restarted {times}x"), timeout, || {
            let api = api.clone();
            async move {
                let p = api.get(pod).await.map_err(|e| e.to_string())?;
                // A pod on its way out (evicted by a rollback) keeps its
                // restarts; they are not the ones waited for.
                if p.metadata.deletion_timestamp.is_some() {
                    return Err("terminating".to_string());
                }
                let restarts: Vec<i32> = p
                    .status
                    .and_then(|s| s.container_statuses)
                    .unwrap_or_default()
                    .iter()
                    .map(|c| c.restart_count)
                    .collect();
                if restarts.iter().any(|r| *r >= times) {
                    Ok(())
                } else {
                    Err(format!("restarts {restarts:?}"))
                }
            }
        })
        .await
        .unwrap()
    }

    /// Reasons of the Events stsmend wrote on the StatefulSet, oldest first.
    pub async fn agent_events(&self, name: &str) -> Vec<String> {
        self.agent_event_messages(name)
            .await
            .into_iter()
            .map(|(reason, _)| reason)
            .collect()
    }

    /// The Events stsmend wrote on the StatefulSet as (reason, message),
    /// oldest first.
    pub async fn agent_event_messages(&self, name: &str) -> Vec<(String, String)> {
        self.agent_event_objects(name)
            .await
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// The agent's Events on `name` as (reason, count), oldest first: an
    /// escalation repeated run after run is one Event counted up.
    pub async fn agent_event_counts(&self, name: &str) -> Vec<(String, i32)> {
        self.agent_event_objects(name)
            .await
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.count.unwrap_or(1)))
            .collect()
    }

    async fn agent_event_objects(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let mut events: Vec<Event> = api
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("stsmend"))
            .collect();
        // eventTime has microseconds; creationTimestamp only seconds.
        events.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
        events
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("stsmend_e2e=info")
        .with_test_writer()
        .try_init();
}

/// The token of a ServiceAccount, from the Secret v1.20's token controller
/// makes for it.
async fn service_account_token(client: &kube::Client, ns: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_until(
        format!("token of {ns}/{name}"),
        Duration::from_secs(30),
        || {
            let (sas, secrets) = (sas.clone(), secrets.clone());
            async move {
                let sa = sas.get(name).await.map_err(|e| e.to_string())?;
                let secret = sa
                    .secrets
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.name)
                    .next()
                    .ok_or("no token secret yet")?;
                let s = secrets.get(&secret).await.map_err(|e| e.to_string())?;
                s.data
                    .and_then(|d| d.get("token").cloned())
                    .map(|t| String::from_utf8_lossy(&t.0).into_owned())
                    .ok_or_else(|| "token not filled in yet".to_string())
            }
        },
    )
    .await
    .unwrap()
}

/// A validating webhook on pod creations that `selector` (an
/// objectSelector's matchLabels, in YAML flow style) picks, whose server
/// is down: the API server cannot call it, so each such creation fails.
pub fn unreachable_webhook(selector: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: guard}}
webhooks:
- name: guard.stsmend.test
  clientConfig: {{url: "https://127.0.0.1:9/validate"}}
  rules:
  - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}}
  objectSelector: {{matchLabels: {selector}}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 5
"#
    )
}

/// A StatefulSet of `replicas` pods of `image`, opted in or not. Its
/// readiness probe is the test app's (simulated nodes ignore probes).
pub fn stateful_set(
    name: &str,
    replicas: i32,
    image: &str,
    opted_in: bool,
    policy: &str,
) -> String {
    let labels = if opted_in {
        "\n  labels:\n    stsmend.io/remediate: \"true\""
    } else {
        ""
    };
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}{labels}
spec:
  replicas: {replicas}
  serviceName: {name}
  podManagementPolicy: {policy}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {image}
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 1
"#
    )
}
