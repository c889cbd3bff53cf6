//! Who owns the StatefulSet's spec, and whether another writer has put back
//! a template the agent rolled back from. In production most StatefulSets
//! are written by an operator, a GitOps controller or Helm, which put their
//! template back: a rollback made behind their back is reverted within
//! seconds, and a forced one evicts a data-bearing pod each time. Read
//! from what the agent already has: metadata, `managedFields` and its own
//! records (crate::state::Reverted).
//!
//! The markers are the ones these tools write: a controlling owner
//! reference; Flux's `kustomize.toolkit.fluxcd.io/*` and
//! `helm.toolkit.fluxcd.io/*` labels and its `kustomize-controller` and
//! `helm-controller` field managers; Argo CD's
//! `argocd.argoproj.io/tracking-id` annotation and `argocd-controller`
//! manager (its default label tracking, `app.kubernetes.io/instance`, is
//! also what Helm charts set, so alone it is not taken for Argo CD);
//! Helm's `app.kubernetes.io/managed-by: Helm`, `meta.helm.sh/release-*`
//! and `helm.sh/chart`, and its `helm` manager. The first that applies in
//! that order wins: a chart Flux or Argo CD renders carries Helm's labels
//! too, and it is they that re-apply it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

use super::{Confidence, Evidence, Finding, Input, Kind, data};
use crate::config::FIELD_MANAGER;

pub const FLUX_KUSTOMIZATION: (&str, &str) = (
    "kustomize.toolkit.fluxcd.io/name",
    "kustomize.toolkit.fluxcd.io/namespace",
);
pub const FLUX_HELM_RELEASE: (&str, &str) = (
    "helm.toolkit.fluxcd.io/name",
    "helm.toolkit.fluxcd.io/namespace",
);
pub const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
pub const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
pub const HELM_CHART_LABEL: &str = "helm.sh/chart";

const FLUX_MANAGERS: &[&str] = &["kustomize-controller", "helm-controller"];
const ARGOCD_MANAGER: &str = "argocd-controller";
const HELM_MANAGER: &str = "helm";

/// The last write to `spec.template`: which field manager, when, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateWrite {
    pub manager: String,
    pub time: Option<jiff::Timestamp>,
    pub operation: Option<String>,
}

/// The field manager that last wrote any field of `spec.template` (the
/// status and scale subresources aside). On a tie to the second, a writer
/// other than the agent wins: its write is the one that came after the
/// agent's rollback when both land in the same second.
pub fn template_writer(meta: &ObjectMeta) -> Option<TemplateWrite> {
    let writes_template = |m: &&ManagedFieldsEntry| {
        m.subresource.as_deref().unwrap_or_default().is_empty()
            && m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:template"))
                .is_some()
    };
    meta.managed_fields
        .iter()
        .flatten()
        .filter(writes_template)
        .max_by_key(|m| {
            (
                m.time.as_ref().map(|t| t.0),
                m.manager.as_deref() != Some(FIELD_MANAGER),
            )
        })
        .map(|m| TemplateWrite {
            manager: m.manager.clone().unwrap_or_default(),
            time: m.time.as_ref().map(|t| t.0),
            operation: m.operation.clone(),
        })
}

fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Adds the `spec_owner` finding: who keeps the spec, and who last wrote
/// the template.
pub fn spec_owner(input: &Input<'_>, out: &mut Vec<Finding>) {
    let sts = &input.facts.stateful_set;
    let meta = &sts.metadata;
    let sts_ref = input.sts_ref();
    let ns = input.namespace();
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let writer = template_writer(meta);
    let mut d = data::SpecOwner {
        template_writer: writer.as_ref().map(|w| w.manager.clone()),
        template_written_at: writer.as_ref().and_then(|w| w.time).map(|t| t.to_string()),
        template_write_operation: writer.as_ref().and_then(|w| w.operation.clone()),
        helm_release: annotations.get(HELM_RELEASE_NAME).cloned(),
        helm_release_namespace: annotations.get(HELM_RELEASE_NAMESPACE).cloned(),
        helm_chart: labels.get(HELM_CHART_LABEL).cloned(),
        ..Default::default()
    };
    let mut evidence = Vec::new();
    let wrote = |names: &[&str]| {
        writer
            .as_ref()
            .is_some_and(|w| names.contains(&w.manager.as_str()))
    };
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, r)| r.controller == Some(true));
    let mut confidence = Confidence::High;
    if let Some((i, r)) = controller {
        d.managed_by = "controller".into();
        d.reconciles = true;
        set_owner(&mut d, &r.kind, api_group(&r.api_version), ns, &r.name);
        evidence.push(Evidence::field(
            sts_ref.clone(),
            format!("metadata.ownerReferences[{i}]"),
            format!("{} {} {} (controller: true)", r.api_version, r.kind, r.name),
        ));
    } else if let Some((kind, group, (name_key, ns_key))) = [
        (
            "Kustomization",
            "kustomize.toolkit.fluxcd.io",
            FLUX_KUSTOMIZATION,
        ),
        ("HelmRelease", "helm.toolkit.fluxcd.io", FLUX_HELM_RELEASE),
    ]
    .into_iter()
    .find(|(_, _, (name_key, _))| labels.contains_key(*name_key))
    {
        d.managed_by = "flux".into();
        d.reconciles = true;
        let owner_ns = labels.get(ns_key).map_or(ns, String::as_str);
        set_owner(&mut d, kind, group, owner_ns, &labels[name_key]);
        evidence.push(label_evidence(&sts_ref, name_key, &labels[name_key]));
        if let Some(v) = labels.get(ns_key) {
            evidence.push(label_evidence(&sts_ref, ns_key, v));
        }
    } else if let Some(id) = annotations.get(ARGOCD_TRACKING_ID) {
        d.managed_by = "argocd".into();
        d.reconciles = true;
        set_application(&mut d, id);
        evidence.push(Evidence::field(
            sts_ref.clone(),
            format!("metadata.annotations[{ARGOCD_TRACKING_ID}]"),
            id.clone(),
        ));
    } else if wrote(FLUX_MANAGERS) {
        // Written by Flux without its labels (they can be turned off).
        d.managed_by = "flux".into();
        d.reconciles = true;
        confidence = Confidence::Medium;
    } else if wrote(&[ARGOCD_MANAGER]) {
        d.managed_by = "argocd".into();
        d.reconciles = true;
        confidence = Confidence::Medium;
        if let Some(app) = labels.get(INSTANCE_LABEL) {
            d.owner_kind = Some("Application".into());
            d.owner_api_group = Some("argoproj.io".into());
            d.owner_name = Some(app.clone());
            d.owner = Some(format!("Application {app}"));
            evidence.push(label_evidence(&sts_ref, INSTANCE_LABEL, app));
        }
    } else if labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some("Helm")
        || d.helm_release.is_some()
        || wrote(&[HELM_MANAGER])
    {
        if !helm_release(&mut d, &labels, ns) {
            confidence = Confidence::Medium;
        }
        evidence.extend(helm_evidence(&sts_ref, &labels, &annotations));
    } else {
        d.managed_by = "none".into();
    }
    if let Some(w) = &writer {
        evidence.push(writer_evidence(&sts_ref, w));
    }
    // Nothing to tell: no owner, and no writer with a name (`unknown` is
    // what the API server calls a client that gave none).
    let nameless = writer
        .as_ref()
        .is_none_or(|w| w.manager.is_empty() || w.manager == "unknown");
    if d.managed_by == "none" && nameless {
        return;
    }
    let summary = summary(&d, writer.as_ref());
    let mut f = Finding::new(Kind::SpecOwner, confidence, summary);
    for e in evidence {
        f = f.with(e);
    }
    out.push(f.data(d));
}

/// The Application an Argo CD tracking id names:
/// `<app>:<group>/<kind>:<namespace>/<name>`, where an app outside Argo
/// CD's own namespace is `<namespace>_<app>`.
fn set_application(d: &mut data::SpecOwner, tracking_id: &str) {
    let app = tracking_id.split(':').next().unwrap_or_default();
    let (app_ns, app) = app.split_once('_').unwrap_or(("", app));
    d.owner_kind = Some("Application".into());
    d.owner_api_group = Some("argoproj.io".into());
    d.owner_name = Some(app.into());
    if app_ns.is_empty() {
        d.owner = Some(format!("Application {app}"));
    } else {
        d.owner_namespace = Some(app_ns.into());
        d.owner = Some(format!("Application {app_ns}/{app}"));
    }
}

/// Names the Helm release from its annotations (or the instance label);
/// false when no release name is found.
fn helm_release(d: &mut data::SpecOwner, labels: &BTreeMap<String, String>, ns: &str) -> bool {
    d.managed_by = "helm".into();
    let release = d
        .helm_release
        .clone()
        .or_else(|| labels.get(INSTANCE_LABEL).cloned());
    let Some(release) = release else {
        return false;
    };
    let release_ns = d.helm_release_namespace.clone().unwrap_or(ns.to_string());
    d.owner_kind = Some("Release".into());
    d.owner_namespace = Some(release_ns.clone());
    d.owner_name = Some(release.clone());
    d.owner = Some(format!("Helm release {release_ns}/{release}"));
    d.helm_release.get_or_insert(release);
    d.helm_release_namespace.get_or_insert(release_ns);
    true
}

fn helm_evidence(
    sts_ref: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Vec<Evidence> {
    let mut evidence: Vec<Evidence> = [MANAGED_BY_LABEL, HELM_CHART_LABEL]
        .into_iter()
        .filter_map(|key| labels.get(key).map(|v| label_evidence(sts_ref, key, v)))
        .collect();
    if let Some(v) = annotations.get(HELM_RELEASE_NAME) {
        evidence.push(Evidence::field(
            sts_ref,
            format!("metadata.annotations[{HELM_RELEASE_NAME}]"),
            v.clone(),
        ));
    }
    evidence
}

fn writer_evidence(sts_ref: &str, w: &TemplateWrite) -> Evidence {
    Evidence::field(
        sts_ref,
        "metadata.managedFields",
        format!(
            "spec.template last written by {}{}{}",
            w.manager,
            w.operation
                .as_deref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default(),
            w.time.map(|t| format!(" at {t}")).unwrap_or_default()
        ),
    )
}

fn set_owner(d: &mut data::SpecOwner, kind: &str, group: &str, ns: &str, name: &str) {
    d.owner_kind = Some(kind.into());
    d.owner_api_group = Some(group.into());
    d.owner_namespace = Some(ns.into());
    d.owner_name = Some(name.into());
    d.owner = Some(format!("{kind} {ns}/{name}"));
}

fn label_evidence(sts_ref: &str, key: &str, value: &str) -> Evidence {
    Evidence::field(sts_ref, format!("metadata.labels[{key}]"), value)
}

fn summary(d: &data::SpecOwner, writer: Option<&TemplateWrite>) -> String {
    let who = d.owner.as_deref();
    let by = match (d.managed_by.as_str(), who) {
        ("controller", Some(o)) => {
            format!("the spec is owned by {o}, whose controller reconciles it")
        }
        ("flux", Some(o)) => format!("the spec is applied by Flux from {o}"),
        ("flux", None) => "the spec is applied by Flux".into(),
        ("argocd", Some(o)) => format!("the spec is synced by Argo CD from {o}"),
        ("argocd", None) => "the spec is synced by Argo CD".into(),
        ("helm", Some(o)) => format!(
            "the spec is rendered by {o}{}",
            d.helm_chart
                .as_deref()
                .map(|c| format!(" (chart {c})"))
                .unwrap_or_default()
        ),
        ("helm", None) => "the spec is rendered by Helm".into(),
        _ => "no owner of the spec is recognised".into(),
    };
    match writer {
        Some(w) => format!(
            "{by}; spec.template was last written by {}{}",
            w.manager,
            w.time.map(|t| format!(" at {t}")).unwrap_or_default()
        ),
        None => by,
    }
}

/// Adds `template_reapplied` when another writer has put back a template
/// the agent rolled back from: the update revision is that revision again,
/// and the last write to `spec.template` is not the agent's and came after
/// its rollback (a minute's leeway for clocks).
pub fn reapplied(input: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(record) = &input.facts.history else {
        return;
    };
    let sts = &input.facts.stateful_set;
    let Some(update) = super::rollout::live_revision(input.facts) else {
        return;
    };
    let Some(reverted) = record.reverted.iter().rev().find(|r| r.from == update) else {
        return;
    };
    let Some(writer) = template_writer(&sts.metadata) else {
        return;
    };
    if writer.manager == FIELD_MANAGER {
        return;
    }
    let leeway = jiff::SignedDuration::from_secs(60);
    if let Some(t) = writer.time
        && t < reverted.at.checked_sub(leeway).unwrap_or(reverted.at)
    {
        return;
    }
    let written = writer.time.map(|t| format!(" at {t}")).unwrap_or_default();
    let summary = format!(
        "{} put back the template of revision {update}{written}, which the agent rolled back from at {} (to {}): rolling back again would fight it",
        writer.manager, reverted.at, reverted.to
    );
    let f = Finding::new(Kind::TemplateReapplied, Confidence::High, summary)
        .with(Evidence::field(
            input.sts_ref(),
            "spec.template",
            format!("the template of revision {update}"),
        ))
        .with(Evidence::field(
            input.sts_ref(),
            "metadata.managedFields",
            format!("spec.template last written by {}{written}", writer.manager),
        ))
        .with(Evidence::field(
            format!("ConfigMap {}", crate::state::CONFIG_MAP),
            "reverted",
            format!(
                "rolled back from {} to {} at {}",
                reverted.from, reverted.to, reverted.at
            ),
        ))
        .data(data::TemplateReapplied {
            writer: writer.manager.clone(),
            written_at: writer.time.map(|t| t.to_string()),
            revision: update.to_string(),
            rolled_back_at: reverted.at.to_string(),
            rolled_back_to: reverted.to.clone(),
        });
    out.push(f);
}

#[cfg(test)]
mod tests {
    //! On the crash-loop case's objects (a real API server's shape), with
    //! each writer's markers put on the StatefulSet.

    use std::path::Path;

    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, OwnerReference, Time};
    use serde_json::json;

    use crate::diagnose::Data;
    use crate::inventory::Inventory;
    use crate::pipeline::{Options, evaluate};
    use crate::state::{Record, State};

    fn objects() -> Inventory {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("policies/tests/ladder/e-rollback-crash-loop/objects.yaml");
        crate::source::files::load(&[path]).expect("case objects")
    }

    fn findings(inv: &Inventory, state: Option<&State>) -> Vec<Finding> {
        let opts = Options::new(
            "2026-11-22T10:00:00Z".parse().unwrap(),
            crate::duration::Span::minutes(10),
        );
        evaluate(inv, state, &opts).failing.remove(0).findings
    }

    fn owner(inv: &Inventory) -> data::SpecOwner {
        let f = findings(inv, None);
        let found: Vec<_> = f.iter().filter(|f| f.kind == Kind::SpecOwner).collect();
        assert_eq!(found.len(), 1, "{f:#?}");
        match &found[0].data {
            Data::SpecOwner(d) => d.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn meta(
        inv: &mut Inventory,
    ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut inv.stateful_sets[0].metadata
    }

    /// Makes `manager` the only writer of `spec.template`, at `time`.
    fn written_by(inv: &mut Inventory, manager: &str, time: &str) {
        for m in meta(inv).managed_fields.iter_mut().flatten() {
            if m.subresource.is_none() {
                m.manager = Some(manager.into());
                m.time = Some(Time(time.parse().unwrap()));
            }
        }
    }

    fn label(inv: &mut Inventory, key: &str, value: &str) {
        meta(inv)
            .labels
            .get_or_insert_default()
            .insert(key.into(), value.into());
    }

    fn annotate(inv: &mut Inventory, key: &str, value: &str) {
        meta(inv)
            .annotations
            .get_or_insert_default()
            .insert(key.into(), value.into());
    }

    #[test]
    fn a_controlling_owner_reference_names_the_custom_resource() {
        let mut inv = objects();
        meta(&mut inv).owner_references = Some(vec![
            OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "not-the-controller".into(),
                ..Default::default()
            },
            OwnerReference {
                api_version: "monitoring.coreos.com/v1".into(),
                kind: "Prometheus".into(),
                name: "k8s".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        written_by(&mut inv, "PrometheusOperator", "2026-11-22T09:30:00Z");
        let d = owner(&inv);
        assert_eq!(d.managed_by, "controller");
        assert!(d.reconciles);
        assert_eq!(d.owner.as_deref(), Some("Prometheus shop/k8s"));
        assert_eq!(d.owner_api_group.as_deref(), Some("monitoring.coreos.com"));
        assert_eq!(d.template_writer.as_deref(), Some("PrometheusOperator"));
        assert_eq!(
            d.template_written_at.as_deref(),
            Some("2026-11-22T09:30:00Z")
        );
    }

    #[test]
    fn flux_wins_over_the_helm_labels_of_the_chart_it_renders() {
        let mut inv = objects();
        label(&mut inv, MANAGED_BY_LABEL, "Helm");
        label(&mut inv, HELM_CHART_LABEL, "db-1.4.2");
        annotate(&mut inv, HELM_RELEASE_NAME, "shop-db");
        label(&mut inv, FLUX_HELM_RELEASE.0, "db");
        label(&mut inv, FLUX_HELM_RELEASE.1, "flux-system");
        written_by(&mut inv, "helm-controller", "2026-11-22T09:30:00Z");
        let d = owner(&inv);
        assert_eq!(d.managed_by, "flux");
        assert_eq!(d.owner.as_deref(), Some("HelmRelease flux-system/db"));
        assert_eq!(d.owner_api_group.as_deref(), Some("helm.toolkit.fluxcd.io"));
        assert_eq!(d.helm_chart.as_deref(), Some("db-1.4.2"), "still reported");
        // Its labels turned off: the field manager still says Flux.
        let mut inv = objects();
        written_by(&mut inv, "kustomize-controller", "2026-11-22T09:30:00Z");
        let d = owner(&inv);
        assert_eq!((d.managed_by.as_str(), d.owner), ("flux", None));
    }

    #[test]
    fn argo_cd_is_read_from_its_tracking_id_in_any_namespace() {
        let mut inv = objects();
        annotate(
            &mut inv,
            ARGOCD_TRACKING_ID,
            "team-a_db:apps/StatefulSet:shop/db",
        );
        label(&mut inv, MANAGED_BY_LABEL, "Helm");
        let d = owner(&inv);
        assert_eq!(d.managed_by, "argocd");
        assert_eq!(d.owner.as_deref(), Some("Application team-a/db"));
        // The instance label alone is what a Helm chart sets too.
        let mut inv = objects();
        label(&mut inv, INSTANCE_LABEL, "db");
        assert_eq!(owner(&inv).managed_by, "none");
        written_by(&mut inv, "argocd-controller", "2026-11-22T09:30:00Z");
        let d = owner(&inv);
        assert_eq!(d.managed_by, "argocd");
        assert_eq!(d.owner.as_deref(), Some("Application db"));
    }

    #[test]
    fn a_helm_release_is_named_and_does_not_reconcile() {
        let mut inv = objects();
        label(&mut inv, MANAGED_BY_LABEL, "Helm");
        label(&mut inv, INSTANCE_LABEL, "db");
        label(&mut inv, HELM_CHART_LABEL, "db-1.4.2");
        written_by(&mut inv, "helm", "2026-11-22T09:30:00Z");
        let d = owner(&inv);
        assert_eq!(d.managed_by, "helm");
        assert!(!d.reconciles);
        assert_eq!(d.owner.as_deref(), Some("Helm release shop/db"));
        assert_eq!(d.helm_release.as_deref(), Some("db"));
        assert_eq!(d.helm_release_namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn an_unknown_writer_is_still_named_and_the_finding_is_no_cause() {
        let inv = objects();
        let f = findings(&inv, None);
        let o = f.iter().find(|f| f.kind == Kind::SpecOwner).unwrap();
        assert!(
            o.summary.contains("kubectl-client-side-apply"),
            "{}",
            o.summary
        );
        assert!(Kind::SpecOwner.is_context());
        assert!(o.change.is_none());
        // No owner and a writer the API server could not name: nothing to
        // tell, no finding (reports would only say "unknown").
        let mut inv = objects();
        written_by(&mut inv, "unknown", "2026-11-22T09:00:00Z");
        assert!(
            !findings(&inv, None)
                .iter()
                .any(|f| f.kind == Kind::SpecOwner)
        );
        // An owner is named whoever wrote last.
        label(&mut inv, MANAGED_BY_LABEL, "Helm");
        assert!(
            findings(&inv, None)
                .iter()
                .any(|f| f.kind == Kind::SpecOwner)
        );
    }

    #[test]
    fn the_last_template_writer_is_the_latest_and_not_a_status_writer() {
        let entry = |manager: &str, time: &str, fields: serde_json::Value, sub: Option<&str>| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
                manager: Some(manager.into()),
                time: Some(Time(time.parse().unwrap())),
                fields_v1: Some(FieldsV1(fields)),
                subresource: sub.map(str::to_string),
                operation: Some("Update".into()),
                ..Default::default()
            }
        };
        let template = json!({"f:spec": {"f:template": {"f:spec": {}}}});
        let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            managed_fields: Some(vec![
                entry("kubectl", "2026-11-22T09:00:00Z", template.clone(), None),
                entry(
                    "kube-controller-manager",
                    "2026-11-22T09:59:00Z",
                    json!({"f:status": {}}),
                    Some("status"),
                ),
                entry(
                    "hpa",
                    "2026-11-22T09:58:00Z",
                    json!({"f:spec": {"f:replicas": {}}}),
                    None,
                ),
                entry("stsmend", "2026-11-22T09:40:00Z", template.clone(), None),
                entry("deploy-bot", "2026-11-22T09:40:00Z", template, None),
            ]),
            ..Default::default()
        };
        let w = template_writer(&meta).unwrap();
        assert_eq!(w.manager, "deploy-bot", "the tie goes to the other writer");
    }

    fn remembered(from: &str, at: &str) -> State {
        let mut r = Record {
            uid: Some("59d703a6-2ccf-92de-aa41-7df227aed72b".into()),
            ..Default::default()
        };
        r.remember_rollback(at.parse().unwrap(), from, "db-5d8f7c9b6d");
        State {
            records: [("shop/db".to_string(), r)].into(),
        }
    }

    fn reapplied_by(inv: &Inventory, state: &State) -> Option<String> {
        findings(inv, Some(state))
            .into_iter()
            .find_map(|f| match f.data {
                Data::TemplateReapplied(d) => Some(d.writer),
                _ => None,
            })
    }

    #[test]
    fn a_template_put_back_by_another_writer_after_the_rollback_is_a_fight() {
        let mut inv = objects();
        written_by(&mut inv, "deploy-bot", "2026-11-22T09:41:00Z");
        let state = remembered("db-7c9d8f6b54", "2026-11-22T09:40:00Z");
        assert_eq!(reapplied_by(&inv, &state).as_deref(), Some("deploy-bot"));
        // Another template: not the one rolled back from.
        let other = remembered("db-0000000000", "2026-11-22T09:40:00Z");
        assert_eq!(reapplied_by(&inv, &other), None);
        // The agent wrote it last (a person's `stsmend undo`).
        let mut own = objects();
        written_by(&mut own, FIELD_MANAGER, "2026-11-22T09:41:00Z");
        assert_eq!(reapplied_by(&own, &state), None);
        // Written before the rollback: the write the rollback undid.
        let mut before = objects();
        written_by(&mut before, "deploy-bot", "2026-11-22T09:30:00Z");
        assert_eq!(reapplied_by(&before, &state), None);
        // Another StatefulSet under the same name: its own history.
        let mut recreated = inv.clone();
        meta(&mut recreated).uid = Some("another".into());
        assert_eq!(reapplied_by(&recreated, &state), None);
    }
}
