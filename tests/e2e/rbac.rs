//! RBAC minimality (issue 15, item 2): every rule of deploy/'s roles is
//! removed in turn, each resource of each rule on its own, and the agent is
//! run under what is left; a rule is needed when the run then fails or its
//! outcome (the report, the warnings it logs) differs from a run under the
//! full roles. The rules are parsed from deploy/manifests/rbac.yaml, so a
//! rule added there is tested without editing this file, and the table the
//! test computes must be the one in docs/security.md.
//!
//! One world, on simulated nodes, holds a failure for every read: a crash
//! loop after a template change on a set of an existing PriorityClass, with
//! a PodDisruptionBudget, an HPA, a ResourceQuota and a LimitRange in its
//! namespace (opted in by the namespace's label); a claim no StorageClass
//! provisions; a claim bound to a volume pinned to a lost node; pods a
//! webhook that cannot be called keeps from being created; a GPU pod that a
//! configured node group (a MachineDeployment) can make room for; the
//! cluster-autoscaler status in kube-system. Each run is
//! `run --dry-run=server`: every write (the revert, the eviction, the
//! Events, the node group's `/scale`, the agent's state) goes to the API
//! server with `dryRun=All`, which authorizes it exactly as a persisted one
//! but keeps nothing, so every variant meets the same world. The state
//! ConfigMap is deleted before each run, so each run starts alike and
//! creates it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use stsmend_e2e::sim::{NodeSpec, node_group};
use stsmend_e2e::wait_until;

use crate::ROLLOUT;
use crate::world::{World, stateful_set};

const RBAC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/manifests/rbac.yaml");
const SECURITY_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md");
/// The heading of the table in docs/security.md this test checks.
const TABLE_HEADING: &str = "### Each rule, and what breaks without it";

/// One resource of one rule of one of the shipped roles.
#[derive(Debug, Clone)]
struct RuleRef {
    /// Index of the role among the roles of the manifest.
    role: usize,
    rule: usize,
    resource: String,
}

/// A role (ClusterRole or Role) of the manifest.
#[derive(Debug, Clone)]
struct Role {
    doc: Value,
}

impl Role {
    fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap()
    }

    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap()
    }

    fn namespace(&self) -> Option<&str> {
        self.doc["metadata"]["namespace"].as_str()
    }

    fn rules(&self) -> &Vec<Value> {
        self.doc["rules"].as_array().unwrap()
    }
}

fn shipped_roles() -> Vec<Role> {
    let text = std::fs::read_to_string(RBAC).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
        .map(|doc| Role { doc })
        .collect()
}

fn every_rule(roles: &[Role]) -> Vec<RuleRef> {
    let mut out = Vec::new();
    for (r, role) in roles.iter().enumerate() {
        for (i, rule) in role.rules().iter().enumerate() {
            for res in rule["resources"].as_array().unwrap() {
                out.push(RuleRef {
                    role: r,
                    rule: i,
                    resource: res.as_str().unwrap().to_string(),
                });
            }
        }
    }
    out
}

/// How a rule reads in the table: role, API group, resource (with the
/// names it is limited to), verbs.
fn describe(roles: &[Role], r: &RuleRef) -> [String; 3] {
    let role = &roles[r.role];
    let rule = &role.rules()[r.rule];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let group = strings(&rule["apiGroups"]).join(",");
    let group = if group.is_empty() {
        "core".into()
    } else {
        group
    };
    let names = strings(&rule["resourceNames"]);
    let resource = if names.is_empty() {
        format!("{group} {}", r.resource)
    } else {
        format!("{group} {} {}", r.resource, names.join(","))
    };
    let role_name = match role.namespace() {
        Some(ns) => format!("{} ({ns})", role.name()),
        None => role.name().to_string(),
    };
    [role_name, resource, strings(&rule["verbs"]).join(",")]
}

/// The roles, renamed for `account`, with `without` taken out (a rule left
/// with no resource goes), each bound to the ServiceAccount
/// `stsmend/account`; and the account.
fn manifest(roles: &[Role], account: &str, without: Option<&RuleRef>) -> Vec<Value> {
    let mut docs = vec![json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": account, "namespace": "stsmend"},
    })];
    for (r, role) in roles.iter().enumerate() {
        let mut doc = role.doc.clone();
        let name = format!("{}-{account}", role.name());
        doc["metadata"] = json!({"name": name});
        if let Some(ns) = role.namespace() {
            doc["metadata"]["namespace"] = json!(ns);
        }
        let rules: Vec<Value> = role
            .rules()
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                let mut rule = rule.clone();
                if let Some(w) = without.filter(|w| w.role == r && w.rule == i) {
                    let left: Vec<Value> = rule["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|res| res.as_str() != Some(w.resource.as_str()))
                        .cloned()
                        .collect();
                    if left.is_empty() {
                        return None;
                    }
                    rule["resources"] = json!(left);
                }
                Some(rule)
            })
            .collect();
        doc["rules"] = json!(rules);
        let binding_kind = if role.kind() == "Role" {
            "RoleBinding"
        } else {
            "ClusterRoleBinding"
        };
        let mut binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": binding_kind,
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.kind(), "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "stsmend"}],
        });
        if let Some(ns) = role.namespace() {
            binding["metadata"]["namespace"] = json!(ns);
        }
        docs.push(doc);
        docs.push(binding);
    }
    docs
}

/// The token of a ServiceAccount (v1.20 fills in a token Secret).
pub(crate) async fn token(client: &kube::Client, ns: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_until(
        format!("token of {ns}/{name}"),
        Duration::from_secs(60),
        || {
            let (accounts, secrets) = (accounts.clone(), secrets.clone());
            async move {
                let account = accounts.get(name).await.map_err(|e| e.to_string())?;
                let secret = account
                    .secrets
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|r| r.name)
                    .ok_or("no token secret yet")?;
                let secret = secrets.get(&secret).await.map_err(|e| e.to_string())?;
                secret
                    .data
                    .and_then(|d| d.get("token").cloned())
                    .map(|t| String::from_utf8_lossy(&t.0).into_owned())
                    .ok_or_else(|| "token not filled in yet".to_string())
            }
        },
    )
    .await
    .unwrap()
}

/// What a run shows: its exit code, its report less what changes from run
/// to run (times, counts, versions: digits are dropped), and the warnings
/// and errors it logged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    code: i32,
    report: Value,
    logged: BTreeSet<String>,
}

fn no_digits(s: &str) -> String {
    s.chars().filter(|c| !c.is_ascii_digit()).collect()
}

fn strip_digits(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(no_digits(s)),
        Value::Array(a) => Value::Array(a.iter().map(strip_digits).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), strip_digits(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn normalise(report: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for section in ["failing", "pending", "exempt"] {
        let entries: Vec<Value> = report[section]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let findings: Vec<Value> = a["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| json!([f["kind"], f["summary"]]))
                    .collect();
                let actions: Vec<Value> = a["plan"]["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| json!([x["action"], x["why"]]))
                    .collect();
                let trace: Vec<Value> = a["plan"]["trace"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| json!([t["rung"], t["status"]]))
                    .collect();
                let executed: Vec<Value> = a["executed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        let steps: Vec<Value> = e["steps"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|s| json!([s["step"], s["status"]]))
                            .collect();
                        json!([e["action"], e["status"], steps])
                    })
                    .collect();
                json!({
                    "id": format!("{}/{}", a["namespace"].as_str().unwrap_or_default(), a["name"].as_str().unwrap_or_default()),
                    "findings": findings,
                    "rung": a["plan"]["rung"],
                    "error": a["plan"]["error"],
                    "actions": actions,
                    "trace": trace,
                    "gate": a["gate"],
                    "executed": executed,
                })
            })
            .collect();
        out.insert(section.into(), Value::Array(entries));
    }
    strip_digits(&Value::Object(out))
}

/// The WARN and ERROR lines of a JSON log (message, what they name, and
/// whether the API server refused: the error's text varies), and what the
/// binary printed on failing.
fn logged(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter_map(|line| match serde_json::from_str::<Value>(line) {
            Ok(l) if matches!(l["level"].as_str(), Some("WARN" | "ERROR")) => {
                let f = &l["fields"];
                let error = f["error"].as_str().unwrap_or_default();
                Some(no_digits(&format!(
                    "{}: {} {} {}{}",
                    l["level"].as_str().unwrap_or_default(),
                    f["message"].as_str().unwrap_or_default(),
                    f["what"].as_str().unwrap_or_default(),
                    f["reason"].as_str().unwrap_or_default(),
                    if error.contains("forbidden") {
                        " (forbidden)"
                    } else {
                        ""
                    },
                )))
            }
            Ok(_) => None,
            Err(_) if line.starts_with("stsmend:") || line.starts_with("Error") => {
                Some(no_digits(line))
            }
            Err(_) => None,
        })
        .collect()
}

/// The effect of taking a rule away, as the table in the docs names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// The run fails (another exit code than under the full roles).
    Fails,
    /// The run completes with another report (findings, plans, actions).
    Degrades,
    /// Same report; what the agent could not do is only in its log.
    Logged,
    /// Nothing differs: a rule nothing needs.
    Nothing,
}

impl Effect {
    fn word(self) -> &'static str {
        match self {
            Effect::Fails => "run fails",
            Effect::Degrades => "report degrades",
            Effect::Logged => "logged only",
            Effect::Nothing => "nothing",
        }
    }
}

struct Bench<'a> {
    w: &'a World,
    config: PathBuf,
}

impl Bench<'_> {
    /// `stsmend run --dry-run=server` as `account`, from no state.
    async fn run(&self, account: &str, kubeconfig: &PathBuf) -> (Outcome, String) {
        let cms: Api<ConfigMap> = Api::namespaced(self.w.client.clone(), "stsmend");
        for name in ["stsmend-state", "stsmend-undo"] {
            let _ = cms.delete(name, &DeleteParams::default()).await;
        }
        wait_until("state ConfigMaps gone", Duration::from_secs(30), || {
            let cms = cms.clone();
            async move {
                match cms.get_opt("stsmend-state").await {
                    Ok(None) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await
        .unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stsmend"))
            .args(["run", "--dry-run=server", "--config"])
            .arg(&self.config)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["-o", "json", "--log-format", "json"])
            .output()
            .await
            .expect("stsmend runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_slice::<Value>(&out.stdout)
            .map(|r| normalise(&r))
            .unwrap_or(Value::Null);
        let code = out.status.code().unwrap_or(-1);
        tracing::info!(account, code, "ran");
        (
            Outcome {
                code,
                report,
                logged: logged(&stderr),
            },
            stderr,
        )
    }
}

/// What differs between two outcomes, in a line.
fn difference(base: &Outcome, other: &Outcome) -> (Effect, String) {
    if other.code != base.code {
        let errors: Vec<String> = other
            .logged
            .difference(&base.logged)
            .map(|e| e.chars().take(160).collect())
            .collect();
        return (
            Effect::Fails,
            format!("exit {} instead of {}: {errors:?}", other.code, base.code),
        );
    }
    if other.report != base.report {
        let (a, b) = (
            serde_json::to_string(&base.report).unwrap(),
            serde_json::to_string(&other.report).unwrap(),
        );
        let from = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        let at = |s: &str| {
            s.chars()
                .skip(from.saturating_sub(80))
                .take(240)
                .collect::<String>()
        };
        return (
            Effect::Degrades,
            format!("report differs: {} / {}", at(&a), at(&b)),
        );
    }
    // That the agent was refused the read is no consequence of the rule.
    let consequences = |o: &Outcome| -> BTreeSet<String> {
        o.logged
            .iter()
            .filter(|l| !l.contains("not allowed to"))
            .cloned()
            .collect()
    };
    if consequences(other) != consequences(base) {
        let more: Vec<String> = consequences(other)
            .difference(&consequences(base))
            .cloned()
            .collect();
        return (Effect::Logged, format!("logged {more:?}"));
    }
    (Effect::Nothing, String::new())
}

/// Runs as `account` and compares with the baseline; a difference counts
/// only if the full roles, run again, still agree with the baseline (the
/// world moves on: a crash loop's events), else the baseline is renewed
/// and the account runs again.
async fn effect(
    bench: &Bench<'_>,
    base: &mut Outcome,
    full: &PathBuf,
    account: &str,
    kubeconfig: &PathBuf,
) -> (Effect, String) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (out, _) = bench.run(account, kubeconfig).await;
        let (effect, detail) = difference(base, &out);
        if effect == Effect::Nothing || attempt == 3 {
            return (effect, detail);
        }
        let (again, _) = bench.run("full", full).await;
        if again == *base {
            return (effect, detail);
        }
        *base = again;
    }
}

/// The table under [`TABLE_HEADING`] in docs/security.md: role, rule,
/// verbs, effect (the first four cells of each row).
fn documented_table() -> Vec<[String; 4]> {
    let text = std::fs::read_to_string(SECURITY_MD).unwrap();
    let section = text
        .split_once(TABLE_HEADING)
        .unwrap_or_else(|| panic!("docs/security.md has no heading {TABLE_HEADING:?}"))
        .1;
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect();
            [
                cells[0].clone(),
                cells[1].clone(),
                cells[2].clone(),
                cells[3].clone(),
            ]
        })
        .collect()
}

/// Sets up a failure for every read the agent makes.
async fn failures(w: &World) {
    let ns = &w.ns;
    w.cp.kubectl(&["label", "namespace", ns, "stsmend.io/remediate=true"])
        .await
        .unwrap();
    w.cp.apply(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: stsmend-rbac-db}\nvalue: 1000\n",
    )
    .await
    .unwrap();
    w.apply(
        r#"apiVersion: v1
kind: LimitRange
metadata: {name: memory}
spec:
  limits:
  - type: Container
    max: {memory: 8Gi}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: pods}
spec:
  hard: {pods: "50"}
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: db}
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: db}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
"#,
    )
    .await;
    // The cluster-autoscaler's status, as it writes it.
    w.cp.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cluster-autoscaler-status, namespace: kube-system}\ndata:\n  status: |\n    Cluster-autoscaler status at 2026-11-22 10:00:00 +0000 UTC:\n    Cluster-wide:\n      Health:      Healthy (ready=3 unready=0 notStarted=0 longNotStarted=0 registered=3 longUnregistered=0)\n      ScaleUp:     NoActivity (ready=3 registered=3)\n",
    )
    .await
    .unwrap();

    // A crash loop after a template change, on a set of an existing
    // PriorityClass (OrderedReady: a forced rollback, revert and evict).
    let db = stateful_set("db", 2, &w.image("db", "1"), false, "OrderedReady").replace(
        "      terminationGracePeriodSeconds: 1\n",
        "      terminationGracePeriodSeconds: 1\n      priorityClassName: stsmend-rbac-db\n",
    );
    w.apply(&db).await;
    w.healthy("db", ROLLOUT).await;
    w.set_image("db", &w.image("db", "2-crash")).await;

    // A webhook that cannot be called keeps a template change's pods from
    // being created.
    w.apply(&stateful_set(
        "hooked",
        1,
        &w.image("hooked", "1"),
        false,
        "OrderedReady",
    ))
    .await;
    w.healthy("hooked", ROLLOUT).await;
    w.cp.apply(&format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: stsmend-rbac-unreachable}}
webhooks:
- name: check.unreachable.example.com
  clientConfig:
    service: {{namespace: {ns}, name: nowhere, path: /validate}}
  rules:
  - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}}
  objectSelector:
    matchLabels: {{app: hooked}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 2
"#
    ))
    .await
    .unwrap();
    w.patch(
        "hooked",
        json!({"spec": {"template": {"metadata": {"annotations": {"example.com/restartedAt": "now"}}}}}),
    )
    .await;

    // The same through a mutating webhook.
    w.apply(&stateful_set(
        "mutated",
        1,
        &w.image("mutated", "1"),
        false,
        "OrderedReady",
    ))
    .await;
    w.healthy("mutated", ROLLOUT).await;
    w.cp.apply(&format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: stsmend-rbac-unreachable}}
webhooks:
- name: mutate.unreachable.example.com
  clientConfig:
    service: {{namespace: {ns}, name: nowhere, path: /mutate}}
  rules:
  - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}}
  objectSelector:
    matchLabels: {{app: mutated}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 2
"#
    ))
    .await
    .unwrap();
    w.patch(
        "mutated",
        json!({"spec": {"template": {"metadata": {"annotations": {"example.com/restartedAt": "now"}}}}}),
    )
    .await;

    // A claim no StorageClass provisions, and a claim bound to a volume
    // pinned to a node that is gone.
    let with_claim = |name: &str, class: &str| {
        stateful_set(name, 1, &w.image(name, "1"), false, "OrderedReady").replace(
            "  template:\n",
            &format!(
                "  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec:\n      accessModes: [ReadWriteOnce]\n      storageClassName: \"{class}\"\n      resources: {{requests: {{storage: 1Gi}}}}\n  template:\n"
            ),
        )
    };
    w.cp.apply(&format!(
        r#"apiVersion: v1
kind: PersistentVolume
metadata: {{name: stsmend-rbac-pinned}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  claimRef: {{namespace: {ns}, name: data-pinned-0}}
  hostPath: {{path: /tmp/pinned}}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {{key: kubernetes.io/hostname, operator: In, values: [node-gone]}}
"#
    ))
    .await
    .unwrap();
    w.apply(&with_claim("store", "no-such-class")).await;
    w.apply(&with_claim("pinned", "")).await;

    // A GPU no node has, which a configured node group can add.
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
    w.apply(&stateful_set(
        "trainer",
        1,
        &w.image("trainer", "1"),
        false,
        "OrderedReady",
    ))
    .await;
    w.healthy("trainer", ROLLOUT).await;
    w.patch(
        "trainer",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}),
    )
    .await;

    w.restarted("db-1", 2, ROLLOUT).await;
    w.event("hooked", "FailedCreate", ROLLOUT).await;
    w.event("mutated", "FailedCreate", ROLLOUT).await;
    w.unschedulable("store-0", ROLLOUT).await;
    w.unschedulable("pinned-0", ROLLOUT).await;
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(w.client.clone(), ns);
    wait_until("data-pinned-0 bound", ROLLOUT, || {
        let claims = claims.clone();
        async move {
            let c = claims
                .get("data-pinned-0")
                .await
                .map_err(|e| e.to_string())?;
            let phase = c.status.and_then(|s| s.phase);
            (phase.as_deref() == Some("Bound"))
                .then_some(())
                .ok_or(format!("{phase:?}"))
        }
    })
    .await
    .unwrap();
    w.unschedulable("trainer-0", ROLLOUT).await;
}

/// Each rule of deploy/manifests/rbac.yaml taken away in turn: what breaks,
/// checked against docs/security.md's table; a rule nothing needs fails
/// the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_of_the_shipped_rbac_is_needed() {
    let w = World::start_sim().await;
    failures(&w).await;
    let config = w.config(
        "  stormMinFailing: 50\nnodeGroups:\n- name: gpu\n  resource: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, namespace: default, name: gpu}\n  max: 2\n  provides:\n    resources: {nvidia.com/gpu: \"1\"}\n",
    );
    let bench = Bench { w: &w, config };

    let roles = shipped_roles();
    let rules = every_rule(&roles);
    assert!(
        rules.len() > 10,
        "the manifest's rules were read: {rules:?}"
    );

    // Every account first (the token controller fills their Secrets in
    // parallel): `full` under the shipped roles, `vN` without rule N.
    let mut all = manifest(&roles, "full", None);
    for (i, r) in rules.iter().enumerate() {
        all.extend(manifest(&roles, &format!("v{i}"), Some(r)));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": all});
    w.cp.apply(&list.to_string()).await.unwrap();
    let kubeconfig = |account: String| {
        let client = w.client.clone();
        let cp = &w.cp;
        async move {
            let t = token(&client, "stsmend", &account).await;
            cp.kubeconfig_for_token(&format!("system:serviceaccount:stsmend:{account}"), &t)
                .unwrap()
        }
    };
    let full = kubeconfig("full".into()).await;

    // The baseline: under the full roles the run decides and (server-side)
    // carries out every plan without a refusal.
    let (mut base, stderr) = bench.run("full", &full).await;
    assert_eq!(base.code, 0, "{stderr}");
    let executed = serde_json::to_string(&base.report).unwrap();
    for (what, needle) in [
        (
            "the revert and eviction of db",
            "\"evict\",\"server-dry-run\"",
        ),
        (
            "the node group scaled",
            "[\"scale_nodes\",\"server-dry-run\"",
        ),
    ] {
        assert!(executed.contains(needle), "{what}: {:#}", base.report);
    }
    assert!(
        !base.logged.iter().any(|l| l.contains("not allowed")),
        "nothing refused under the full roles: {:?}",
        base.logged
    );

    let mut effects = Vec::new();
    for (i, _) in rules.iter().enumerate() {
        let cfg = kubeconfig(format!("v{i}")).await;
        effects.push(effect(&bench, &mut base, &full, &format!("v{i}"), &cfg).await);
    }

    // A rule nothing above needed may matter when the cluster itself
    // fails: kube-controller-manager stopped under a template change (the
    // controller's lease then says who is at fault).
    if effects.iter().any(|(e, _)| *e == Effect::Nothing) {
        w.cp.stop_controller_manager().await.unwrap();
        w.patch(
            "trainer",
            json!({"spec": {"template": {"metadata": {"annotations": {"example.com/restartedAt": "later"}}}}}),
        )
        .await;
        base = wait_until(
            "the agent sees kube-controller-manager down",
            Duration::from_secs(120),
            || async {
                let (out, _) = bench.run("full", &full).await;
                serde_json::to_string(&out.report)
                    .unwrap()
                    .contains("controller_not_processing")
                    .then_some(out)
                    .ok_or_else(|| "not yet".to_string())
            },
        )
        .await
        .unwrap();
        for (i, _) in rules.iter().enumerate() {
            if effects[i].0 != Effect::Nothing {
                continue;
            }
            let cfg = kubeconfig(format!("v{i}")).await;
            let (e, detail) = effect(&bench, &mut base, &full, &format!("v{i}"), &cfg).await;
            effects[i] = (e, format!("with kube-controller-manager down: {detail}"));
        }
        w.cp.start_controller_manager().await.unwrap();
    }

    let mut table = Vec::new();
    let mut unneeded = Vec::new();
    for (r, (effect, detail)) in rules.iter().zip(&effects) {
        let [role, resource, verbs] = describe(&roles, r);
        eprintln!(
            "| `{role}` | `{resource}` | `{verbs}` | {} | {detail}",
            effect.word()
        );
        if *effect == Effect::Nothing {
            unneeded.push(format!("{role} {resource} {verbs}"));
        }
        table.push([role, resource, verbs, effect.word().to_string()]);
    }
    assert!(
        unneeded.is_empty(),
        "rules nothing needs (remove them from the chart): {unneeded:?}"
    );
    let optional = [
        "pods/log",
        "persistentvolumes",
        "webhookconfigurations",
        "kube-system",
    ];
    for row in &table {
        if optional
            .iter()
            .any(|o| row[0].contains(o) || row[1].contains(o))
        {
            assert_ne!(
                row[3],
                Effect::Fails.word(),
                "an optional read must degrade the report, not fail the run: {row:?}"
            );
        }
    }
    let documented = documented_table();
    assert_eq!(
        documented, table,
        "docs/security.md's table ({TABLE_HEADING}) is not what the test found"
    );
}

/// The chart's `rbac.actNamespaces`: stsmend-act bound by a RoleBinding in
/// each listed namespace instead of cluster-wide (scripts/render-manifests.sh
/// checks the chart renders exactly these bindings). An opted-in set in a
/// namespace not listed is refused by the API server, not only by the
/// agent: its rollback fails as forbidden and nothing is written; bound in
/// its namespace too, the same plan goes through.
#[tokio::test]
async fn writes_bound_per_namespace_are_refused_elsewhere_by_the_api_server() {
    let w = World::start_sim().await;
    let binding = |ns: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: stsmend-act, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: stsmend-act}}\nsubjects:\n- {{kind: ServiceAccount, name: stsmend, namespace: stsmend}}\n"
        )
    };
    w.cp.kubectl(&["delete", "clusterrolebinding", "stsmend-act"])
        .await
        .unwrap();
    w.cp.kubectl(&["create", "namespace", "payments"])
        .await
        .unwrap();
    w.cp.apply(&binding("payments")).await.unwrap();
    let good = w.healthy_set("db", 2, "OrderedReady").await;
    let bad = w.image("db", "2-crash");
    w.set_image("db", &bad).await;
    w.restarted("db-1", 1, ROLLOUT).await;

    let config = w.config("");
    let config = config.to_str().unwrap();
    let id = w.id("db");
    let refused = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(refused.code, 3, "a failed action: {}", refused.stderr);
    let executed = refused.executed(&id);
    assert_eq!(
        executed[0],
        ("rollback".into(), "failed".into()),
        "{:#}",
        refused.report
    );
    let text = serde_json::to_string(&refused.report).unwrap();
    assert!(text.contains("forbidden"), "{text}");
    assert_ne!(
        w.sts("db").await.status.unwrap().update_revision,
        Some(good.clone()),
        "nothing was rolled back"
    );

    w.cp.apply(&binding("shop")).await.unwrap();
    let bound = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(bound.code, 0, "{}", bound.stderr);
    assert_eq!(bound.executed(&id)[0].1, "done", "{:#}", bound.report);
    assert_eq!(
        w.healthy("db", ROLLOUT).await,
        good,
        "rolled back once bound"
    );
}
