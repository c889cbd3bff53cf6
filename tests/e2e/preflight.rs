//! Issue 21, preflight against reality: for each failure class a template
//! change can cause, `stsmend preflight` runs on the change (live, under the
//! shipped stsmend-preflight identity with its server-side dry runs, and on
//! a `stsmend snapshot --preflight` of the namespace), then the change is
//! applied and `stsmend plan` runs on what the cluster does: the causes
//! preflight predicted must be the causes the agent finds. A harmless
//! change predicts nothing and rolls out. No preflight persists a write:
//! every object of the namespace is as it was. The classes and their causes
//! are the table in docs/change-review.md, which the scenarios check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;
use stsmend_e2e::wait_until;

use crate::ROLLOUT;
use crate::world::{World, stateful_set, unreachable_webhook};

/// One failure class: what the namespace holds besides the set, the
/// healthy set, the change, and the causes both sides must name.
struct Case {
    class: &'static str,
    setup: String,
    base: Option<String>,
    change: String,
    causes: &'static [&'static str],
    /// Text both preflight's findings and the agent's must hold.
    both_say: &'static [&'static str],
    /// Only the API server can tell (a webhook): a snapshot predicts
    /// nothing and says what it did not check.
    live_only: bool,
}

const REQUESTS: &str = "requests: {cpu: 100m, memory: 128Mi}";

fn set(w: &World, name: &str) -> String {
    stateful_set(name, 2, &w.image("app", "1"), false, "OrderedReady")
}

/// The set with its container's resources replaced.
fn with_resources(w: &World, resources: &str) -> String {
    set(w, "db").replace(REQUESTS, resources)
}

/// The set with `lines` added to its pod spec (indented as `containers:`).
fn with_pod_spec(w: &World, lines: &str) -> String {
    set(w, "db").replace(
        "      containers:\n",
        &format!("{lines}      containers:\n"),
    )
}

/// The set with `lines` added to its container (indented as `image:`).
fn with_container(w: &World, lines: &str) -> String {
    set(w, "db").replace(
        "        resources:\n",
        &format!("{lines}        resources:\n"),
    )
}

fn sim_cases(w: &World) -> Vec<Case> {
    let base = || Some(set(w, "db"));
    vec![
        Case {
            class: "harmless (an image tag that runs)",
            setup: String::new(),
            base: base(),
            change: set(w, "db").replace(&w.image("app", "1"), &w.image("app", "2")),
            causes: &[],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "LimitRange max below the new limit",
            setup: "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    max: {memory: 1Gi}\n".into(),
            base: base(),
            change: with_resources(w, "requests: {cpu: 100m, memory: 2Gi}\n          limits: {memory: 2Gi}"),
            causes: &["admission_denied"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "LimitRange default limit below the new request",
            setup: "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    max: {memory: 1Gi}\n".into(),
            base: base(),
            change: with_resources(w, "requests: {cpu: 100m, memory: 2Gi}"),
            causes: &["admission_denied"],
            both_say: &["\"limit_range\":", "must be less than or equal to memory limit"],
            live_only: false,
        },
        Case {
            class: "ResourceQuota on a scale-up",
            setup: "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: compute}\nspec:\n  hard: {pods: \"2\"}\n".into(),
            base: base(),
            change: set(w, "db").replace("replicas: 2", "replicas: 3"),
            causes: &["admission_denied", "quota_exhausted"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a ControllerRevision quota at its limit",
            setup: "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: revisions}\nspec:\n  hard: {count/controllerrevisions.apps: \"1\"}\n".into(),
            base: base(),
            change: with_resources(w, "requests: {cpu: 100m, memory: 256Mi}"),
            causes: &["quota_exhausted"],
            both_say: &["count/controllerrevisions.apps"],
            live_only: false,
        },
        Case {
            class: "a PriorityClass that does not exist",
            setup: String::new(),
            base: base(),
            change: with_pod_spec(w, "      priorityClassName: gold\n"),
            causes: &["priority_class_missing"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a ServiceAccount that does not exist",
            setup: String::new(),
            base: base(),
            change: with_pod_spec(w, "      serviceAccountName: auditor\n"),
            causes: &["service_account_missing"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a GPU no node has",
            setup: String::new(),
            base: base(),
            change: with_resources(w, "requests: {cpu: 100m, memory: 128Mi}\n          limits: {nvidia.com/gpu: 1}"),
            causes: &["unschedulable"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a node selector no node matches",
            setup: String::new(),
            base: base(),
            change: with_pod_spec(w, "      nodeSelector: {disk: nvme}\n"),
            causes: &["unschedulable"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a StorageClass that does not exist (a new set)",
            setup: String::new(),
            base: None,
            change: format!(
                "{}  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec:\n      accessModes: [ReadWriteOnce]\n      storageClassName: fast\n      resources:\n        requests: {{storage: 1Gi}}\n",
                set(w, "store")
            ),
            causes: &["pvc_pending", "storage_class_missing", "unschedulable"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a forbidden update (serviceName)",
            setup: String::new(),
            base: base(),
            change: set(w, "db").replace("serviceName: db", "serviceName: db-headless"),
            causes: &["update_forbidden"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a webhook the API server cannot call",
            // Only the new template's pods carry `guard: on`.
            setup: unreachable_webhook("{guard: \"on\"}"),
            base: base(),
            change: set(w, "db").replace(
                "      labels: {app: db}\n    spec:",
                "      labels: {app: db, guard: \"on\"}\n    spec:",
            ),
            causes: &["webhook_unavailable"],
            both_say: &["guard.stsmend.test"],
            live_only: true,
        },
    ]
}

fn kubelet_cases(w: &World) -> Vec<Case> {
    let config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n";
    vec![
        Case {
            class: "a ConfigMap key that does not exist (env)",
            setup: config.into(),
            base: Some(set(w, "db")),
            change: with_container(
                w,
                "        env:\n        - name: MODE\n          valueFrom: {configMapKeyRef: {name: settings, key: speed}}\n",
            ),
            causes: &["container_config"],
            both_say: &[],
            live_only: false,
        },
        Case {
            class: "a ConfigMap volume that does not exist",
            setup: config.into(),
            base: Some(set(w, "db")),
            change: with_container(w, "        volumeMounts:\n        - {name: cfg, mountPath: /etc/app}\n")
                .replace(
                    "      containers:\n",
                    "      volumes:\n      - name: cfg\n        configMap: {name: absent}\n      containers:\n",
                ),
            causes: &["volume_mount"],
            both_say: &[],
            live_only: false,
        },
    ]
}

/// The resourceVersion of every object preflight could have written to
/// (of Events, the agent's own).
async fn versions(w: &World, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let lp = ListParams::default();
    let c = || w.client.clone();
    macro_rules! all {
        ($kind:ty, $label:literal) => {
            for o in Api::<$kind>::namespaced(c(), ns).list(&lp).await.unwrap() {
                out.insert(
                    format!("{} {}", $label, o.metadata.name.clone().unwrap_or_default()),
                    o.metadata.resource_version.clone().unwrap_or_default(),
                );
            }
        };
    }
    all!(StatefulSet, "StatefulSet");
    all!(Pod, "Pod");
    all!(PersistentVolumeClaim, "PersistentVolumeClaim");
    all!(ConfigMap, "ConfigMap");
    // The kubelet and the controllers write Events of their own while the
    // pods start (a count goes up): only an Event of the agent's would be
    // its write.
    for e in Api::<Event>::namespaced(c(), ns).list(&lp).await.unwrap() {
        let agent = stsmend::config::FIELD_MANAGER;
        if e.reporting_component.as_deref() == Some(agent)
            || e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(agent)
        {
            out.insert(
                format!("Event {}", e.metadata.name.clone().unwrap_or_default()),
                e.metadata.resource_version.clone().unwrap_or_default(),
            );
        }
    }
    out
}

/// Causes, as preflight counts them, of one StatefulSet in a report.
fn causes_in(findings: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = findings
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["kind"].as_str())
        .filter(|k| stsmend::kinds::Kind::from_name(k).is_some_and(stsmend::preflight::is_cause))
        .map(str::to_string)
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

pub(crate) struct Identity {
    pub(crate) kubeconfig: PathBuf,
}

/// The shipped stsmend-preflight identity (deploy/manifests/preflight/).
pub(crate) async fn preflight_identity(w: &World) -> Identity {
    let rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/manifests/preflight/rbac.yaml"
    ))
    .unwrap();
    w.cp.apply(&rbac).await.expect("the preflight RBAC applies");
    let token = crate::rbac::token(&w.client, "stsmend", "stsmend-preflight").await;
    Identity {
        kubeconfig: w
            .cp
            .kubeconfig_for_token("system:serviceaccount:stsmend:stsmend-preflight", &token)
            .unwrap(),
    }
}

async fn stsmend(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(args)
        .output()
        .await
        .expect("stsmend runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs preflight on `manifest` and returns the one set's report.
async fn preflight(manifest: &Path, ns: &str, against: &[&str]) -> Value {
    let m = manifest.to_str().unwrap();
    let mut args = vec!["preflight", m, "-n", ns, "-o", "json"];
    args.extend(against);
    let (code, out, err) = stsmend(&args).await;
    let report: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("preflight {args:?}: no JSON ({e}), exit {code}: {out}{err}"));
    let set = report["sets"][0].clone();
    let fails = set["fails"].as_bool().unwrap_or(false);
    assert_eq!(
        code,
        i32::from(fails),
        "exit code follows the prediction: {err}"
    );
    set
}

/// What the agent finds once the change landed: its causes, polled until
/// they are what preflight said or the rollout had its time.
async fn found(identity: &Identity, ns: &str, id: &str, want: &[String]) -> (Vec<String>, String) {
    let kc = identity.kubeconfig.to_str().unwrap().to_string();
    let last = std::sync::Mutex::new((Vec::new(), String::new()));
    let got = wait_until(format!("the agent's causes for {id}"), ROLLOUT, || {
        let (kc, last) = (kc.clone(), &last);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(750)).await;
            let (_, out, err) = stsmend(&[
                "plan",
                "-n",
                ns,
                "--for",
                "0s",
                "--kubeconfig",
                &kc,
                "-o",
                "json",
            ])
            .await;
            let report: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {err}"))?;
            let findings = report["failing"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| {
                    format!(
                        "{}/{}",
                        a["namespace"].as_str().unwrap_or(""),
                        a["name"].as_str().unwrap_or("")
                    ) == id
                })
                .map(|a| a["findings"].clone())
                .unwrap_or(Value::Null);
            let causes = (causes_in(&findings), findings.to_string());
            *last.lock().unwrap() = causes.clone();
            if causes.0 == want {
                Ok(causes)
            } else {
                Err(format!("{:?}", causes.0))
            }
        }
    })
    .await;
    got.unwrap_or_else(|_| last.into_inner().unwrap())
}

/// One class end to end; returns the row of the agreement table.
async fn check(
    w: &World,
    identity: &Identity,
    ns: &str,
    case: &Case,
) -> (String, Vec<String>, Vec<String>) {
    let kc = identity.kubeconfig.to_str().unwrap().to_string();
    w.cp.kubectl(&["create", "namespace", ns]).await.unwrap();
    if !case.setup.is_empty() {
        w.cp.kubectl_with_stdin(&["apply", "-n", ns, "-f", "-"], Some(&case.setup))
            .await
            .unwrap();
    }
    let name = if case.base.is_some() { "db" } else { "store" };
    let id = format!("{ns}/{name}");
    if let Some(base) = &case.base {
        w.cp.kubectl_with_stdin(&["apply", "-n", ns, "-f", "-"], Some(base))
            .await
            .unwrap();
        healthy(w, ns, name).await;
    }
    let dir = w.cp.work_dir().join("preflight").join(ns);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("change.yaml");
    std::fs::write(&manifest, &case.change).unwrap();
    let snapshot = dir.join("snapshot.yaml");
    let (code, _, err) = stsmend(&[
        "snapshot",
        "--preflight",
        "-n",
        ns,
        "--kubeconfig",
        &kc,
        "-o",
        snapshot.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "snapshot --preflight: {err}");

    let before = versions(w, ns).await;
    let live = preflight(&manifest, ns, &["--kubeconfig", &kc]).await;
    assert_eq!(
        versions(w, ns).await,
        before,
        "{}: a live preflight persisted nothing",
        case.class
    );
    let offline = preflight(&manifest, ns, &["--from", snapshot.to_str().unwrap()]).await;
    let predicted = live["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let from_snapshot: Vec<String> = offline["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    if case.live_only {
        assert!(from_snapshot.is_empty(), "{}: {offline:#}", case.class);
        assert!(
            offline["unchecked"].to_string().contains("webhooks"),
            "{}: says what it did not ask: {offline:#}",
            case.class
        );
        assert_eq!(
            live["obstacles"][0]["source"], "server",
            "{}: {live:#}",
            case.class
        );
    } else {
        assert_eq!(
            from_snapshot, predicted,
            "{}: the snapshot predicts what the live cluster does: {offline:#}",
            case.class
        );
    }
    assert_eq!(predicted, case.causes, "{}: {live:#}", case.class);

    let applied =
        w.cp.kubectl_with_stdin(&["apply", "-n", ns, "-f", "-"], Some(&case.change))
            .await;
    let after = if predicted == ["update_forbidden"] {
        let e = applied
            .expect_err("the API server refuses the update")
            .to_string();
        assert!(e.contains("Forbidden: updates to statefulset spec"), "{e}");
        let message = live["findings"][0]["data"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("Forbidden: updates to statefulset spec"),
            "the server's words: {message}"
        );
        (vec!["update_forbidden".to_string()], live.to_string())
    } else {
        applied.unwrap();
        if predicted.is_empty() {
            healthy(w, ns, name).await;
        }
        found(identity, ns, &id, &predicted).await
    };
    for text in case.both_say {
        assert!(
            live["findings"].to_string().contains(text),
            "{}: preflight says {text}: {live:#}",
            case.class
        );
        assert!(
            after.1.contains(text),
            "{}: the agent says {text} after the change: {}",
            case.class,
            after.1
        );
    }
    let after = after.0;
    (case.class.to_string(), predicted, after)
}

async fn healthy(w: &World, ns: &str, name: &str) {
    w.healthy_in(ns, name, ROLLOUT).await;
}

/// The agreement table of docs/change-review.md: class -> causes.
fn documented() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/change-review.md"
    ))
    .unwrap();
    doc.lines()
        .filter(|l| l.starts_with("| ") && l.matches('|').count() >= 5)
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() >= 5 && cells[1] != "class" && !cells[1].starts_with("---"))
                .then(|| (cells[1].to_string(), cells[3].to_string()))
        })
        .collect()
}

async fn run_cases(w: &World, cases: Vec<Case>) {
    let identity = preflight_identity(w).await;
    let table = documented();
    let mut rows = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let ns = format!("pf-{i}");
        let (class, predicted, after) = check(w, &identity, &ns, case).await;
        let shown = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        assert_eq!(
            table.get(&class).map(String::as_str),
            Some(shown(&predicted).as_str()),
            "docs/change-review.md's row for {class} says what preflight predicts"
        );
        rows.push((class, predicted, after));
    }
    let disagree: Vec<_> = rows.iter().filter(|(_, p, a)| p != a).collect();
    assert!(
        disagree.is_empty(),
        "preflight predicted other causes than the agent found: {disagree:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_match_what_the_agent_finds_after_the_change() {
    let w = World::start_sim().await;
    let cases = sim_cases(&w);
    run_cases(&w, cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_references_are_predicted_as_the_real_kubelet_reports_them() {
    let w = World::start().await;
    let cases = kubelet_cases(&w);
    run_cases(&w, cases).await;
}

/// The change the RBAC scenario judges: `db` names a ConfigMap key that
/// is missing and a PriorityClass that exists; `store` is a new set.
fn every_rule_change(w: &World) -> String {
    let db = with_container(
        w,
        "        env:\n        - name: MODE\n          valueFrom: {configMapKeyRef: {name: settings, key: speed}}\n",
    )
    .replace("      containers:\n", "      priorityClassName: silver\n      containers:\n");
    format!("{db}---\n{}", set(w, "store"))
}

/// Each (apiGroup, resource, verb) the shipped preflight role grants.
fn preflight_rules() -> (Value, Vec<(String, String, String)>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/manifests/preflight/rbac.yaml"
    ))
    .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = docs
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    out.push((
                        g.as_str().unwrap().into(),
                        r.as_str().unwrap().into(),
                        v.as_str().unwrap().into(),
                    ));
                }
            }
        }
    }
    (role, out)
}

/// An account bound to stsmend-read and to the preflight role less `without`.
fn account(name: &str, rules: &[(String, String, String)], without: Option<usize>) -> Vec<Value> {
    let kept: Vec<Value> = rules
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != without)
        .map(|(_, (g, r, v))| serde_json::json!({"apiGroups": [g], "resources": [r], "verbs": [v]}))
        .collect();
    let subject =
        serde_json::json!([{"kind": "ServiceAccount", "name": name, "namespace": "stsmend"}]);
    let binding = |role: &str, binding: &str| {
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subject})
    };
    vec![
        serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "stsmend"}}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("{name}-preflight")}, "rules": kept}),
        binding(&format!("{name}-preflight"), &format!("{name}-preflight")),
        binding("stsmend-read", &format!("{name}-read")),
    ]
}

/// What a role lets preflight say: the offline (snapshot --preflight) and
/// the live report's causes, obstacles and notes, per set.
async fn said(w: &World, kubeconfig: &Path, manifest: &Path, dir: &Path) -> (Value, String) {
    let kc = kubeconfig.to_str().unwrap();
    let snapshot = dir.join(format!(
        "{}.yaml",
        kubeconfig.file_stem().unwrap().to_string_lossy()
    ));
    let (code, _, err) = stsmend(&[
        "snapshot",
        "--preflight",
        "-n",
        &w.ns,
        "--kubeconfig",
        kc,
        "-o",
        snapshot.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let m = manifest.to_str().unwrap();
    let mut out = serde_json::Map::new();
    let mut stderr = String::new();
    for (how, against) in [
        ("offline", vec!["--from", snapshot.to_str().unwrap()]),
        ("live", vec!["--kubeconfig", kc]),
    ] {
        let mut args = vec!["preflight", m, "-n", &w.ns, "-o", "json"];
        args.extend(against);
        let (_, text, err) = stsmend(&args).await;
        stderr.push_str(&err);
        let report: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}{err}"));
        let sets: Vec<Value> = report["sets"].as_array().unwrap().iter().map(|s| serde_json::json!({
            "set": s["name"], "causes": s["causes"], "unchecked": s["unchecked"], "server": s["serverSaid"],
            "obstacles": s["obstacles"].as_array().unwrap().iter()
                .map(|o| serde_json::json!([o["source"], o["message"]])).collect::<Vec<_>>(),
        })).collect();
        out.insert(how.into(), Value::Array(sets));
    }
    (Value::Object(out), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_of_the_preflight_role_is_needed() {
    let w = World::start_sim().await;
    w.apply("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: silver}\nvalue: 1000\n").await;
    w.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n")
        .await;
    w.apply(&set(&w, "db")).await;
    healthy(&w, &w.ns, "db").await;
    let (_, rules) = preflight_rules();
    assert!(rules.len() >= 7, "{rules:?}");
    let mut docs = account("pf-full", &rules, None);
    for i in 0..rules.len() {
        docs.extend(account(&format!("pf-{i}"), &rules, Some(i)));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
    w.cp.apply(&list.to_string()).await.unwrap();
    let dir = w.cp.work_dir().join("preflight-rbac");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("change.yaml");
    std::fs::write(&manifest, every_rule_change(&w)).unwrap();
    let kubeconfig = |name: String| {
        let (client, cp) = (w.client.clone(), &w.cp);
        async move {
            let t = crate::rbac::token(&client, "stsmend", &name).await;
            let path = cp
                .kubeconfig_for_token(&format!("system:serviceaccount:stsmend:{name}"), &t)
                .unwrap();
            let named = path.with_file_name(format!("{name}.kubeconfig"));
            std::fs::copy(&path, &named).unwrap();
            named
        }
    };
    let full = kubeconfig("pf-full".into()).await;
    let (base, stderr) = said(&w, &full, &manifest, &dir).await;
    let text = base.to_string();
    assert!(
        !text.contains("not permitted") && !stderr.contains("not permitted"),
        "{base:#}"
    );
    assert!(
        text.contains("container_config"),
        "the missing key is found: {base:#}"
    );
    assert!(
        text.contains("\"server\""),
        "the dry runs are answered: {base:#}"
    );
    let mut unneeded = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let kc = kubeconfig(format!("pf-{i}")).await;
        let (without, _) = said(&w, &kc, &manifest, &dir).await;
        if without == base {
            unneeded.push(rule.clone());
        }
    }
    assert!(
        unneeded.is_empty(),
        "rules whose removal changes nothing preflight says: {unneeded:?}"
    );
}
