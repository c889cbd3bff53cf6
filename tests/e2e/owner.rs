//! Beside the spec's owner (issue 20): an operator reconciling its
//! StatefulSet from a custom resource, Flux- and Argo CD-shaped sets
//! re-applied by server-side apply under those tools' field managers, an
//! unknown tool putting back a template the agent rolled back from, and a
//! Helm release. The agent never fights a writer that puts the template
//! back: a controller's set is never rolled back, another writer's at most
//! once per bad revision, and every report and Event names who owns it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use stsmend_e2e::wait_until;

use crate::ROLLOUT;
use crate::world::{Run, World};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: databases.e2e.stsmend.io
spec:
  group: e2e.stsmend.io
  scope: Namespaced
  names: {plural: databases, singular: database, kind: Database}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              image: {type: string}
              replicas: {type: integer}
"#;

/// The StatefulSet `name` as its writer applies it: two pods of `image`,
/// opted in (the team asked for remediation; the owner decides what is
/// safe), with the writer's own labels and annotations.
fn manifest(name: &str, image: &str, labels: Value, annotations: Value) -> Value {
    let mut meta_labels = json!({"stsmend.io/remediate": "true"});
    for (k, v) in labels.as_object().into_iter().flatten() {
        meta_labels[k] = v.clone();
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": meta_labels, "annotations": annotations},
        "spec": {
            "replicas": 2,
            "serviceName": name,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "app",
                        "image": image,
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}
                    }]
                }
            }
        }
    })
}

/// The labels and annotations Flux's kustomize-controller leaves on what it
/// applies from Kustomization flux-system/apps.
fn flux_meta() -> (Value, Value) {
    (
        json!({
            "kustomize.toolkit.fluxcd.io/name": "apps",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
        }),
        json!({}),
    )
}

/// Those Argo CD leaves on what it syncs from Application shop-argo (its
/// default tracking: the instance label and the tracking id).
fn argo_meta() -> (Value, Value) {
    (
        json!({"app.kubernetes.io/instance": "shop-argo"}),
        json!({"argocd.argoproj.io/tracking-id": "shop-argo:apps/StatefulSet:shop/argo"}),
    )
}

fn image_of(sts: &StatefulSet) -> Option<String> {
    sts.spec.template.spec.as_ref()?.containers[0].image.clone()
}

/// A reconcile loop, as operators and GitOps controllers run one: every
/// second it reads what it wants and server-side applies it with `force`
/// under `manager`, counting the times it found the template changed
/// behind its back (a write it had to put back). Stops when dropped.
struct Reconciler {
    task: tokio::task::JoinHandle<()>,
    put_back: Arc<AtomicUsize>,
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reconciler {
    /// `want` says, on each pass, what to apply (`None`: nothing yet).
    fn start<F, Fut>(api: Api<StatefulSet>, name: &str, manager: &str, want: F) -> Reconciler
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Option<Value>> + Send,
    {
        let put_back = Arc::new(AtomicUsize::new(0));
        let (name, manager, counter) = (name.to_string(), manager.to_string(), put_back.clone());
        let task = tokio::spawn(async move {
            let params = PatchParams::apply(&manager).force();
            let mut applied: Option<String> = None;
            loop {
                if let Some(desired) = want().await {
                    let image = desired["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .map(str::to_string);
                    if let Ok(Some(live)) = api.get_opt(&name).await
                        && applied.is_some()
                        && applied == image
                        && image_of(&live) != image
                    {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    match api.patch(&name, &params, &Patch::Apply(&desired)).await {
                        Ok(_) => applied = image,
                        Err(e) => tracing::warn!(error = %e, "reconcile failed; retrying"),
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Reconciler { task, put_back }
    }

    fn put_back(&self) -> usize {
        self.put_back.load(Ordering::SeqCst)
    }
}

/// The agent's Events on `name` as (reason, message), oldest first.
async fn events(w: &World, name: &str) -> Vec<(String, String)> {
    w.agent_event_messages(name).await
}

fn count(events: &[(String, String)], reason: &str) -> usize {
    events.iter().filter(|(r, _)| r == reason).count()
}

/// Asserts that the run escalated on `id`, and did nothing else.
#[track_caller]
fn escalated(run: &Run, id: &str) {
    assert_eq!(
        run.executed(id),
        [("escalate".to_string(), "done".to_string())],
        "{id}: {:#}",
        run.report
    );
}

/// The `why` of the first planned action on `id`.
fn why(run: &Run, id: &str) -> String {
    run.planned(id)
        .first()
        .and_then(|a| a["why"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn finding(run: &Run, id: &str, kind: &str) -> Option<String> {
    run.findings(id)
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, summary)| summary)
}

/// Waits until `name`'s template runs `image` and a pod of it restarted:
/// failing again, on the writer's template.
async fn failing_on(w: &World, name: &str, image: &str) {
    let api = w.sts_api();
    wait_until(format!("{name} runs {image} again"), ROLLOUT, || {
        let api = api.clone();
        async move {
            let s = api.get(name).await.map_err(|e| e.to_string())?;
            (image_of(&s).as_deref() == Some(image))
                .then_some(())
                .ok_or_else(|| format!("image {:?}", image_of(&s)))
        }
    })
    .await
    .unwrap();
    w.restarted(&format!("{name}-1"), 1, ROLLOUT).await;
}

/// A real controller in the harness owns its StatefulSet (`controller:
/// true`) and reconciles it from a custom resource the suite installs.
/// Its custom resource's bad image is never rolled back nor forced by
/// evictions, run after run on the shipped ladder: each run escalates
/// naming the custom resource and the change, and the operator never had
/// to put anything back.
#[tokio::test]
async fn an_operators_set_is_never_rolled_back() {
    let w = World::start_sim().await;
    w.cp.apply(CRD).await.expect("the CRD applies");
    w.cp.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/databases.e2e.stsmend.io",
    ])
    .await
    .unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("e2e.stsmend.io", "v1", "Database"));
    let dbs: Api<DynamicObject> = Api::namespaced_with(w.client.clone(), &w.ns, &ar);
    let mut db = DynamicObject::new("db", &ar);
    db.data = json!({"spec": {"image": w.image("db", "1"), "replicas": 2}});
    dbs.create(&PostParams::default(), &db).await.unwrap();

    let operator = {
        let dbs = dbs.clone();
        Reconciler::start(w.sts_api(), "db", "database-operator", move || {
            let dbs = dbs.clone();
            async move {
                let db = dbs.get("db").await.ok()?;
                let image = db.data["spec"]["image"].as_str()?.to_string();
                let mut sts = manifest(
                    "db",
                    &image,
                    json!({"app.kubernetes.io/managed-by": "database-operator"}),
                    json!({}),
                );
                sts["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "e2e.stsmend.io/v1",
                    "kind": "Database",
                    "name": "db",
                    "uid": db.metadata.uid?,
                    "controller": true,
                }]);
                Some(sts)
            }
        })
    };
    let good = w.healthy("db", ROLLOUT).await;
    let bad = w.image("db", "2-crash");
    dbs.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": bad}})),
    )
    .await
    .unwrap();
    failing_on(&w, "db", &bad).await;

    let config = w.config("");
    let config = config.to_str().unwrap();
    let id = w.id("db");
    for _ in 1..=3 {
        let run = w.agent(&["run", "--apply", "--config", config]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.rung(&id).as_deref(),
            Some("rollback"),
            "{:#}",
            run.report
        );
        escalated(&run, &id);
        let owner = finding(&run, &id, "spec_owner").expect("a spec_owner finding");
        assert!(owner.contains("Database shop/db"), "{owner}");
        let why = why(&run, &id);
        assert!(
            why.contains("roll back or fix Database shop/db")
                && why.contains("nothing is rolled back"),
            "{why}"
        );
        assert!(why.contains(&bad), "the escalation names the change: {why}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let seen = events(&w, "db").await;
    assert_eq!(count(&seen, "StsmendRolledBack"), 0, "{seen:?}");
    assert_eq!(count(&seen, "StsmendDeletedPods"), 0, "{seen:?}");
    assert!(
        seen.iter()
            .filter(|(r, _)| r == "StsmendEscalated")
            .all(|(_, m)| m.contains("Database shop/db")),
        "{seen:?}"
    );
    assert_eq!(
        w.agent_event_counts("db").await,
        [("StsmendEscalated".to_string(), 3)],
        "one escalation, counted up run after run"
    );
    assert_eq!(
        operator.put_back(),
        0,
        "the agent wrote nothing to put back"
    );
    let sts = w.sts("db").await;
    assert_eq!(image_of(&sts).as_deref(), Some(bad.as_str()));
    assert_ne!(sts.status.unwrap().update_revision, Some(good));
    // No pod was evicted: both are the ones the rollout made.
    for pod in ["db-0", "db-1"] {
        assert!(w.pod(pod).await.metadata.deletion_timestamp.is_none());
    }
}

/// Flux- and Argo CD-shaped StatefulSets (their labels, annotations and
/// field managers, re-applied every second by server-side apply as their
/// syncs do) are escalated naming the Kustomization and the Application,
/// never rolled back. A set with no owner that a deploy tool re-applies is
/// rolled back once; the tool puts the bad template back, and from then on
/// the agent escalates naming the tool, with the cooldown shortened so
/// that only the fight holds it.
#[tokio::test]
async fn gitops_and_unknown_writers_are_not_fought() {
    let w = World::start_sim().await;
    let bad = w.image("db", "2-crash");
    let good_image = w.image("db", "1");
    let wanted = Arc::new(std::sync::Mutex::new(good_image.clone()));
    let shapes = [
        ("flux", "kustomize-controller", flux_meta().0, flux_meta().1),
        ("argo", "argocd-controller", argo_meta().0, argo_meta().1),
        ("bot", "deploy-bot", json!({}), json!({})),
    ];
    let _syncs: Vec<Reconciler> = shapes
        .iter()
        .map(|(name, manager, labels, annotations)| {
            let (wanted, name2, labels, annotations) = (
                wanted.clone(),
                name.to_string(),
                labels.clone(),
                annotations.clone(),
            );
            Reconciler::start(w.sts_api(), name, manager, move || {
                let image = wanted.lock().unwrap().clone();
                let m = manifest(&name2, &image, labels.clone(), annotations.clone());
                async move { Some(m) }
            })
        })
        .collect();
    let mut good = Vec::new();
    for (name, ..) in &shapes {
        good.push(w.healthy(name, ROLLOUT).await);
    }
    *wanted.lock().unwrap() = bad.clone();
    for (name, ..) in &shapes {
        failing_on(&w, name, &bad).await;
    }

    let config = w.config("  cooldown: 1s\n  stormMinFailing: 10\n");
    let config = config.to_str().unwrap();
    let apply = ["run", "--apply", "--config", config];
    let first = w.agent(&apply).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    for (name, owner, fix) in [
        (
            "flux",
            "Kustomization flux-system/apps",
            "revert the change in Git",
        ),
        ("argo", "Application shop-argo", "revert the change in Git"),
    ] {
        let id = w.id(name);
        escalated(&first, &id);
        let summary = finding(&first, &id, "spec_owner").expect("spec_owner");
        assert!(summary.contains(owner), "{summary}");
        let why = why(&first, &id);
        assert!(why.contains(owner) && why.contains(fix), "{why}");
    }
    let bot = w.id("bot");
    assert_eq!(
        first.executed(&bot),
        [("rollback".into(), "done".into())],
        "{:#}",
        first.report
    );
    // Rolled back to its good revision (the live set cannot say: the
    // deploy tool puts its template back within a second).
    assert_eq!(
        first.planned(&bot)[0]["name"].as_str(),
        Some(good[2].as_str()),
        "rolled back to the good revision: {:#}",
        first.report
    );

    // The deploy tool puts its template back within a second.
    failing_on(&w, "bot", &bad).await;
    for _ in 2..=3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let run = w.agent(&apply).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        escalated(&run, &bot);
        let reapplied = finding(&run, &bot, "template_reapplied").expect("template_reapplied");
        assert!(reapplied.contains("deploy-bot"), "{reapplied}");
        let why = why(&run, &bot);
        assert!(
            why.contains("deploy-bot put its template back")
                && why.contains("not rolling back again"),
            "{why}"
        );
    }
    for (name, rollbacks) in [("flux", 0), ("argo", 0), ("bot", 1)] {
        let seen = events(&w, name).await;
        assert_eq!(
            count(&seen, "StsmendRolledBack"),
            rollbacks,
            "{name}: {seen:?}"
        );
        assert!(count(&seen, "StsmendEscalated") >= 1, "{name}: {seen:?}");
    }
    let bot_events = events(&w, "bot").await;
    assert!(
        bot_events
            .iter()
            .any(|(r, m)| r == "StsmendEscalated" && m.contains("deploy-bot")),
        "{bot_events:?}"
    );
}

/// Helm's own install or upgrade of the suite's chart (tests/e2e/charts/db)
/// as release `db` in `shop`: the Helm v4 Go SDK, through helm-python-sdk
/// as scripts/render-manifests.sh installs it, against the scenario's API
/// server. Returns the release's revision.
async fn helm(w: &World, op: &str, image: &str) -> i64 {
    let root = env!("CARGO_MANIFEST_DIR");
    let tools = tokio::process::Command::new("bash")
        .arg(format!("{root}/scripts/render-manifests.sh"))
        .arg("--tools")
        .output()
        .await
        .expect("bash runs");
    assert!(
        tools.status.success(),
        "helm-python-sdk (the Helm SDK) could not be installed from PyPI: {}",
        String::from_utf8_lossy(&tools.stderr)
    );
    let bin = String::from_utf8_lossy(&tools.stdout).trim().to_string();
    let out = tokio::process::Command::new(format!("{bin}/python"))
        .arg(format!("{root}/tests/e2e/helm.py"))
        .arg(w.cp.admin_kubeconfig())
        .arg(format!("{root}/tests/e2e/charts/db"))
        .args([&w.ns, "db", op])
        .arg(json!({"image": image}).to_string())
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "helm {op}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let release: Value = serde_json::from_slice(&out.stdout).expect("the release as JSON");
    release["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no revision in {release}"))
}

/// A Helm release installed and upgraded by Helm's own code (its labels,
/// release annotations and field manager, as Helm writes them; Helm 4
/// names its server-side apply field manager after its process, `helm`
/// for the CLI, `python` here, so the labels are what name it): nothing
/// reconciles it, so the ladder rolls back once and it heals; the report
/// and the Event name the release and the `helm rollback` a person would
/// run instead.
#[tokio::test]
async fn a_helm_release_is_rolled_back_once_and_named() {
    let w = World::start_sim().await;
    assert_eq!(helm(&w, "install", &w.image("db", "1")).await, 1);
    let good = w.healthy("db", ROLLOUT).await;
    let bad = w.image("db", "2-crash");
    assert_eq!(helm(&w, "upgrade", &bad).await, 2);
    failing_on(&w, "db", &bad).await;

    let config = w.config("");
    let config = config.to_str().unwrap();
    let id = w.id("db");
    let first = w.agent(&["run", "--apply", "--config", config]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.rung(&id).as_deref(),
        Some("rollback"),
        "{:#}",
        first.report
    );
    assert_eq!(
        first.executed(&id)[0],
        ("rollback".into(), "done".into()),
        "{:#}",
        first.report
    );
    let owner = finding(&first, &id, "spec_owner").expect("spec_owner");
    assert!(
        owner.contains("Helm release shop/db")
            && owner.contains("db-0.1.0")
            && owner.contains("last written by python"),
        "{owner}"
    );
    let why = why(&first, &id);
    assert!(why.contains("helm rollback db -n shop"), "{why}");
    for _ in 0..4 {
        let run = w.agent(&["run", "--apply", "--config", config]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        if run.failing().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(
        w.healthy("db", ROLLOUT).await,
        good,
        "healed on the release's last good revision"
    );
    let seen = events(&w, "db").await;
    assert_eq!(count(&seen, "StsmendRolledBack"), 1, "{seen:?}");
    let (_, message) = seen.iter().find(|(r, _)| r == "StsmendRolledBack").unwrap();
    assert!(
        message.contains("Helm release shop/db") && message.contains("helm rollback db -n shop"),
        "{message}"
    );
}

/// Minimal CRDs of Flux's Kustomization and Argo CD's Application: their
/// groups, versions, kinds and names as published, their schemas left
/// open. No controller of theirs runs; the harness's loops play them.
const GITOPS_CRDS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kustomizations.kustomize.toolkit.fluxcd.io
spec:
  group: kustomize.toolkit.fluxcd.io
  scope: Namespaced
  names: {plural: kustomizations, singular: kustomization, kind: Kustomization, shortNames: [ks]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: applications.argoproj.io
spec:
  group: argoproj.io
  scope: Namespaced
  names: {plural: applications, singular: application, kind: Application, shortNames: [app, apps]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const GITOPS_OBJECTS: &str = r#"apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 1m
  path: ./shop
  prune: true
  suspend: false
  sourceRef: {kind: GitRepository, name: shop}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: shop-argo, namespace: argocd}
spec:
  project: default
  source: {repoURL: "https://git.example/shop.git", path: argo, targetRevision: main}
  destination: {server: "https://kubernetes.default.svc", namespace: shop}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [ServerSideApply=true]
"#;

/// With `gitops.suspendSync` on (and its RBAC applied), the Flux- and Argo
/// CD-shaped sets are rolled back after their syncs are suspended: the
/// Kustomization's `spec.suspend` set, the Application's automated sync
/// turned off, each with an Event naming how to resume it. The loops,
/// which honour the suspend as Flux and Argo CD do, then leave the
/// rollback alone and the sets heal. `stsmend undo` resumes each sync as
/// it was, and a second undo finds nothing to undo.
#[tokio::test]
async fn a_suspended_gitops_sync_lets_the_rollback_hold_and_undo_resumes_it() {
    let w = World::start_sim().await;
    w.cp.apply(GITOPS_CRDS).await.expect("the CRDs apply");
    for crd in [
        "crd/kustomizations.kustomize.toolkit.fluxcd.io",
        "crd/applications.argoproj.io",
    ] {
        w.cp.kubectl(&["wait", "--for=condition=established", "--timeout=60s", crd])
            .await
            .unwrap();
    }
    for ns in ["flux-system", "argocd"] {
        w.cp.kubectl(&["create", "namespace", ns]).await.unwrap();
    }
    w.cp.apply(GITOPS_OBJECTS)
        .await
        .expect("the GitOps objects apply");
    let rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/manifests/gitops/suspend-sync-rbac.yaml"
    ))
    .unwrap();
    w.cp.apply(&rbac)
        .await
        .expect("gitops.suspendSync's RBAC applies");
    let kustomizations: Api<DynamicObject> = Api::namespaced_with(
        w.client.clone(),
        "flux-system",
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
        )),
    );
    let applications: Api<DynamicObject> = Api::namespaced_with(
        w.client.clone(),
        "argocd",
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "argoproj.io",
            "v1alpha1",
            "Application",
        )),
    );

    let bad = w.image("db", "2-crash");
    let wanted = Arc::new(std::sync::Mutex::new(w.image("db", "1")));
    // Each loop applies only while its sync is on, as Flux and Argo CD do.
    let syncs = [
        (
            "flux",
            "kustomize-controller",
            kustomizations.clone(),
            "apps",
            flux_meta().0,
            flux_meta().1,
        ),
        (
            "argo",
            "argocd-controller",
            applications.clone(),
            "shop-argo",
            argo_meta().0,
            argo_meta().1,
        ),
    ];
    let loops: Vec<Reconciler> = syncs
        .into_iter()
        .map(|(name, manager, api, object, labels, annotations)| {
            let wanted = wanted.clone();
            Reconciler::start(w.sts_api(), name, manager, move || {
                let (api, image) = (api.clone(), wanted.lock().unwrap().clone());
                let (labels, annotations) = (labels.clone(), annotations.clone());
                async move {
                    let o = api.get(object).await.ok()?;
                    let on = if name == "flux" {
                        o.data["spec"]["suspend"] != json!(true)
                    } else {
                        o.data["spec"]["syncPolicy"]["automated"].is_object()
                    };
                    on.then(|| manifest(name, &image, labels, annotations))
                }
            })
        })
        .collect();
    let good = [
        w.healthy("flux", ROLLOUT).await,
        w.healthy("argo", ROLLOUT).await,
    ];
    *wanted.lock().unwrap() = bad.clone();
    for name in ["flux", "argo"] {
        failing_on(&w, name, &bad).await;
    }

    // The cooldown shortened: a rollback refused as a conflict (the set's
    // status moved on between the read and the write) is tried again by
    // the next run, which finds the sync still suspended by the first and
    // carries its undo record over.
    let config = w.config("  stormMinFailing: 10\n  cooldown: 1s\ngitops:\n  suspendSync: true\n");
    let config = config.to_str().unwrap();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let run = w.agent(&["run", "--apply", "--config", config]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        let done = ["flux", "argo"].iter().all(|n| {
            runs.iter().chain(std::iter::once(&run)).any(|r: &Run| {
                r.executed(&w.id(n)).first() == Some(&("rollback".into(), "done".into()))
            })
        });
        runs.push(run);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for (name, sync, owner, resume) in [
        (
            "flux",
            "Kustomization flux-system/apps",
            "Kustomization flux-system/apps",
            "flux resume kustomization apps -n flux-system",
        ),
        // The tracking id names no namespace: Argo CD's own (argocdNamespace).
        (
            "argo",
            "Application argocd/shop-argo",
            "Application shop-argo",
            "argocd app set argocd/shop-argo",
        ),
    ] {
        let id = w.id(name);
        let first = runs
            .iter()
            .find(|r| r.executed(&id).first() == Some(&("rollback".into(), "done".into())))
            .unwrap_or_else(|| {
                panic!(
                    "{id} rolled back in {} runs: {:#}",
                    runs.len(),
                    runs.last().unwrap().report
                )
            });
        let planned = first.planned(&id);
        assert_eq!(
            planned[0]["suspend"]["kind"],
            json!(sync.split(' ').next().unwrap())
        );
        let why = why(first, &id);
        assert!(
            why.contains(&format!("{owner} would put the template back")),
            "{why}"
        );
        let seen = events(&w, name).await;
        let suspended: Vec<_> = seen
            .iter()
            .filter(|(r, _)| r == "StsmendSuspendedSync")
            .collect();
        assert_eq!(suspended.len(), 1, "{name}: {seen:?}");
        assert!(
            suspended[0].1.contains(sync) && suspended[0].1.contains(resume),
            "{:?}",
            suspended[0]
        );
        assert_eq!(count(&seen, "StsmendRolledBack"), 1, "{name}: {seen:?}");
    }
    let ks = kustomizations.get("apps").await.unwrap();
    assert_eq!(ks.data["spec"]["suspend"], json!(true));
    let app = applications.get("shop-argo").await.unwrap();
    assert!(
        app.data["spec"]["syncPolicy"].get("automated").is_none(),
        "{app:?}"
    );
    assert_eq!(
        app.data["spec"]["syncPolicy"]["syncOptions"],
        json!(["ServerSideApply=true"]),
        "only the automated sync is turned off"
    );

    // The rollbacks hold: nothing re-applies while the syncs are off.
    for (name, good) in ["flux", "argo"].iter().zip(&good) {
        assert_eq!(&w.healthy(name, ROLLOUT).await, good, "{name} healed");
    }
    assert_eq!(
        loops.iter().map(Reconciler::put_back).sum::<usize>(),
        0,
        "no sync put anything back"
    );

    // undo resumes each sync as it was (and writes the bad template back,
    // which the resumed sync would apply anyway).
    for (name, check) in [
        ("flux", "resumed the sync of Kustomization flux-system/apps"),
        ("argo", "resumed the sync of Application argocd/shop-argo"),
    ] {
        let id = w.id(name);
        let (code, out) = w
            .agent_raw(&["undo", &id, "--apply", "--config", config])
            .await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(check), "{out}");
        let (code, out) = w
            .agent_raw(&["undo", &id, "--apply", "--config", config])
            .await;
        assert_ne!(code, 0, "nothing left to undo: {out}");
    }
    let ks = kustomizations.get("apps").await.unwrap();
    assert_eq!(ks.data["spec"]["suspend"], json!(false), "as it was");
    let app = applications.get("shop-argo").await.unwrap();
    assert_eq!(
        app.data["spec"]["syncPolicy"]["automated"],
        json!({"prune": true, "selfHeal": true}),
        "as it was"
    );
    for name in ["flux", "argo"] {
        failing_on(&w, name, &bad).await;
    }
}
