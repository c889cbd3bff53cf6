//! One plain, serialisable value per candidate StatefulSet: everything the
//! diagnosis and the policies may look at. Cut from an [`Inventory`] by pure
//! functions, so the live and the file source give the same facts.

use kube_core::{Resource, ResourceExt as _};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Node, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use serde::Serialize;

use crate::config::NodeGroup;
use crate::inventory::{ContainerLog, Inventory};
use crate::selector::{NO_LABELS, Selector};
use crate::state::Record;

/// The cluster-autoscaler's status ConfigMap, where it is installed.
pub const AUTOSCALER_STATUS: (&str, &str) = ("kube-system", "cluster-autoscaler-status");
/// The controller-manager's leader-election Lease: when it goes stale, no
/// controller is processing StatefulSets.
pub const CONTROLLER_LEASE: (&str, &str) = ("kube-system", "kube-controller-manager");
/// The label the StatefulSet controller puts on its pods naming their revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    pub stateful_set: StatefulSet,
    /// Its pods, ordered by ordinal.
    pub pods: Vec<Pod>,
    /// Events about the StatefulSet, its pods and its claims, oldest first.
    pub events: Vec<Event>,
    /// Its ControllerRevisions, oldest revision first.
    pub revisions: Vec<ControllerRevision>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    /// The PersistentVolumes its claims are bound to, where they were read
    /// (those of unscheduled pods).
    pub pvs: Vec<PersistentVolume>,
    /// The last lines its crashed containers wrote, where they were read.
    pub logs: Vec<ContainerLog>,
    /// Every admission webhook of the configurations read (only when the
    /// API server could not call one).
    pub webhooks: Vec<WebhookSummary>,
    /// StorageClasses its claims and claim templates name, where they exist.
    pub storage_classes: Vec<StorageClass>,
    /// Every node's summary, shared by all candidates of a run: a copy
    /// each would grow a run's memory with candidates times nodes.
    pub nodes: Arc<[NodeSummary]>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub limit_ranges: Vec<LimitRange>,
    pub resource_quotas: Vec<ResourceQuota>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler_status: Option<ConfigMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_lease: Option<Lease>,
    pub node_groups: Vec<NodeGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Record>,
}

impl Facts {
    /// The StatefulSet's pod named `name`, as read.
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }
}

/// What scheduling needs to know of a node; whole Node objects are large and
/// the same for every candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `key=value:Effect`, or `key:Effect`.
    pub taints: Vec<String>,
    pub allocatable: BTreeMap<String, String>,
    pub ready: bool,
    pub unschedulable: bool,
}

impl NodeSummary {
    pub fn from_node(node: &Node) -> Self {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .map(|t| match &t.value {
                    Some(v) if !v.is_empty() => format!("{}={}:{}", t.key, v, t.effect),
                    _ => format!("{}:{}", t.key, t.effect),
                })
                .collect(),
            allocatable: status
                .and_then(|s| s.allocatable.as_ref())
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
                .unwrap_or_default(),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        }
    }
}

/// One admission webhook and the configuration that registers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSummary {
    /// `ValidatingWebhookConfiguration` or `MutatingWebhookConfiguration`.
    pub kind: &'static str,
    pub configuration: String,
    pub webhook: String,
    /// `service NAMESPACE/NAME:PORT/PATH`, or the URL.
    pub calls: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

impl WebhookSummary {
    /// Every webhook of the inventory's configurations.
    pub fn all(inv: &Inventory) -> Vec<Self> {
        use k8s_openapi::api::admissionregistration::v1::WebhookClientConfig;
        let calls = |c: &WebhookClientConfig| match (&c.service, &c.url) {
            (Some(s), _) => format!(
                "service {}/{}:{}{}",
                s.namespace,
                s.name,
                s.port.unwrap_or(443),
                s.path.as_deref().unwrap_or_default()
            ),
            (None, Some(url)) => url.clone(),
            (None, None) => "nothing (no service or url)".into(),
        };
        // The two kinds' webhooks are distinct types with the same fields.
        macro_rules! summaries {
            ($configs:expr, $kind:literal) => {
                $configs.iter().flat_map(|c| {
                    c.webhooks.iter().flatten().map(move |w| Self {
                        kind: $kind,
                        configuration: c.name_any(),
                        webhook: w.name.clone(),
                        calls: calls(&w.client_config),
                        failure_policy: w.failure_policy.clone(),
                        timeout_seconds: w.timeout_seconds,
                    })
                })
            };
        }
        summaries!(inv.validating_webhooks, "ValidatingWebhookConfiguration")
            .chain(summaries!(
                inv.mutating_webhooks,
                "MutatingWebhookConfiguration"
            ))
            .collect()
    }
}

/// What, beyond the inventory, shapes the facts of every candidate.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The inventory's nodes, summarised once a run.
    pub nodes: Arc<[NodeSummary]>,
    pub node_groups: &'a [NodeGroup],
    pub state: Option<&'a crate::state::State>,
}

/// An object's name, borrowed: kube's `ResourceExt::name_any` would copy
/// it, and sets of names are built per candidate.
pub fn name_of<K: Resource>(obj: &K) -> &str {
    obj.meta().name.as_deref().unwrap_or_default()
}

pub fn namespace_of<K: Resource>(obj: &K) -> &str {
    obj.meta().namespace.as_deref().unwrap_or_default()
}

/// The ordinal in a StatefulSet pod or claim name `<prefix>-<n>`.
pub fn ordinal(prefix: &str, name: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
}

/// Whether an object is controlled by the StatefulSet: by owner UID where both
/// have one, otherwise (hand-written fixtures) by name.
fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    sts: &StatefulSet,
) -> Option<bool> {
    let uid = sts.metadata.uid.as_deref()?;
    let owners = meta.owner_references.as_ref()?;
    Some(
        owners
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true)),
    )
}

/// Whether an event in the StatefulSet `name`'s namespace is about it, its
/// pods or its claims, given the names of pods and claims that may be its
/// own. The live source keeps only such events, so it must ask exactly what
/// [`gather`] asks.
pub fn event_about(
    event: &Event,
    name: &str,
    pods: &BTreeSet<&str>,
    pvcs: &BTreeSet<&str>,
) -> bool {
    let o = &event.involved_object;
    let oname = o.name.as_deref().unwrap_or_default();
    match o.kind.as_deref() {
        Some("StatefulSet") => oname == name,
        // Pods that no longer exist still have events worth reading.
        Some("Pod") => pods.contains(oname) || ordinal(name, oname).is_some(),
        Some("PersistentVolumeClaim") => pvcs.contains(oname),
        _ => false,
    }
}

type Meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Cuts the facts of one StatefulSet out of the inventory.
pub fn gather(inv: &Inventory, sts: &StatefulSet, ctx: &Context<'_>) -> Facts {
    let ns = namespace_of(sts);
    let name = name_of(sts);
    let in_ns = |meta: &Meta| meta.namespace.as_deref() == Some(ns);
    let (pods, revisions) = pods_and_revisions(inv, sts);
    let pvcs = claims(inv, sts);
    let volumes: BTreeSet<&str> = pvcs
        .iter()
        .filter_map(|c| c.spec.as_ref()?.volume_name.as_deref())
        .collect();
    let pvs = inv
        .pvs
        .iter()
        .filter(|v| volumes.contains(name_of(*v)))
        .cloned()
        .collect();
    let storage_classes = storage_classes(inv, sts, &pvcs);
    let pod_names: BTreeSet<&str> = pods.iter().map(name_of).collect();
    let events = events(inv, sts, &pod_names, &pvcs);
    let find_cm = |(cns, cname): (&str, &str)| {
        inv.config_maps
            .iter()
            .find(|c| namespace_of(*c) == cns && name_of(*c) == cname)
            .cloned()
    };
    let logs = inv
        .logs
        .iter()
        .filter(|l| l.namespace == ns && pod_names.contains(l.pod.as_str()))
        .cloned()
        .collect();
    Facts {
        events,
        revisions,
        pvs,
        logs,
        webhooks: WebhookSummary::all(inv),
        storage_classes,
        nodes: ctx.nodes.clone(),
        hpas: inv
            .hpas
            .iter()
            .filter(|h| in_ns(&h.metadata))
            .filter(|h| {
                let t = &h.spec.scale_target_ref;
                t.kind == "StatefulSet" && t.name == name
            })
            .cloned()
            .collect(),
        pdbs: pdbs(inv, sts),
        limit_ranges: inv
            .limit_ranges
            .iter()
            .filter(|l| in_ns(&l.metadata))
            .cloned()
            .collect(),
        resource_quotas: inv
            .resource_quotas
            .iter()
            .filter(|q| in_ns(&q.metadata))
            .cloned()
            .collect(),
        autoscaler_status: find_cm(AUTOSCALER_STATUS),
        controller_lease: inv
            .leases
            .iter()
            .find(|l| namespace_of(*l) == CONTROLLER_LEASE.0 && name_of(*l) == CONTROLLER_LEASE.1)
            .cloned(),
        node_groups: ctx.node_groups.to_vec(),
        history: ctx
            .state
            .and_then(|s| s.get(ns, name))
            .filter(|r| r.uid.is_none() || r.uid == sts.metadata.uid)
            .cloned(),
        pods,
        pvcs,
        stateful_set: sts.clone(),
    }
}

/// The set's pods, by ordinal, and its ControllerRevisions, oldest first:
/// by owner where they have one, else by name and selector.
fn pods_and_revisions(inv: &Inventory, sts: &StatefulSet) -> (Vec<Pod>, Vec<ControllerRevision>) {
    let ns = namespace_of(sts);
    let name = name_of(sts);
    let selector = Selector::from_label_selector(&sts.spec.selector)
        .ok()
        .unwrap_or_default();
    let mut pods: Vec<Pod> = inv
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            let by_name = ordinal(name, name_of(*p)).is_some()
                && !selector.is_empty()
                && selector.matches(p.labels());
            owned_by(&p.metadata, sts).unwrap_or(by_name)
        })
        .cloned()
        .collect();
    pods.sort_by_key(|p| ordinal(name, name_of(p)).unwrap_or(u32::MAX));
    // Facts live until the report is written, one set per candidate; the
    // slack of a grown buffer would be held as long.
    pods.shrink_to_fit();
    let mut revisions: Vec<ControllerRevision> = inv
        .controller_revisions
        .iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
        .filter(|r| {
            let by_name = name_of(*r)
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-'))
                && selector.matches(r.labels());
            owned_by(&r.metadata, sts).unwrap_or(by_name)
        })
        .cloned()
        .collect();
    revisions.sort_by_key(|r| r.revision);
    (pods, revisions)
}

/// The claims of the set's volumeClaimTemplates, `<template>-<set>-<n>`.
fn claims(inv: &Inventory, sts: &StatefulSet) -> Vec<PersistentVolumeClaim> {
    let ns = namespace_of(sts);
    let name = name_of(sts);
    let templates: Vec<&str> = sts
        .spec
        .volume_claim_templates
        .as_ref()
        .into_iter()
        .flatten()
        .filter_map(|t| t.metadata.name.as_deref())
        .collect();
    inv.pvcs
        .iter()
        .filter(|c| c.metadata.namespace.as_deref() == Some(ns))
        .filter(|c| {
            templates
                .iter()
                .any(|t| ordinal(&format!("{t}-{name}"), name_of(*c)).is_some())
        })
        .cloned()
        .collect()
}

/// The classes the claims and templates name, and the default class.
fn storage_classes(
    inv: &Inventory,
    sts: &StatefulSet,
    pvcs: &[PersistentVolumeClaim],
) -> Vec<k8s_openapi::api::storage::v1::StorageClass> {
    let mut class_names: BTreeSet<String> = pvcs
        .iter()
        .filter_map(|c| c.spec.as_ref()?.storage_class_name.clone())
        .collect();
    class_names.extend(
        sts.spec
            .volume_claim_templates
            .as_ref()
            .into_iter()
            .flatten()
            .filter_map(|t| t.spec.as_ref()?.storage_class_name.clone()),
    );
    inv.storage_classes
        .iter()
        .filter(|c| {
            class_names.contains(name_of(*c))
                || c.annotations()
                    .get("storageclass.kubernetes.io/is-default-class")
                    .is_some_and(|v| v == "true")
        })
        .cloned()
        .collect()
}

/// The events about the set, its pods and its claims, oldest first.
fn events(
    inv: &Inventory,
    sts: &StatefulSet,
    pod_names: &BTreeSet<&str>,
    pvcs: &[PersistentVolumeClaim],
) -> Vec<Event> {
    let ns = namespace_of(sts);
    let pvc_names: BTreeSet<&str> = pvcs.iter().map(name_of).collect();
    let mut events: Vec<Event> = inv
        .events
        .iter()
        .filter(|e| {
            e.metadata.namespace.as_deref() == Some(ns)
                || e.involved_object.namespace.as_deref() == Some(ns)
        })
        .filter(|e| event_about(e, name_of(sts), pod_names, &pvc_names))
        .cloned()
        .collect();
    events.sort_by_key(crate::time::event_time);
    events.shrink_to_fit();
    events
}

/// The PodDisruptionBudgets whose selector matches the set's pod template.
fn pdbs(
    inv: &Inventory,
    sts: &StatefulSet,
) -> Vec<k8s_openapi::api::policy::v1::PodDisruptionBudget> {
    let template_labels = sts
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&NO_LABELS);
    inv.pdbs
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace_of(sts)))
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| Selector::from_label_selector(s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches(template_labels))
        })
        .cloned()
        .collect()
}

/// The containers of a suspect's pods whose previous log is worth reading:
/// those that ended and are not ready again, once per container name (the
/// first pod by ordinal that shows it), so a set costs at most one read per
/// container it defines. As `(pod, container)`.
pub fn logs_to_read(pods: &[Pod]) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for c in all {
            let ended = c
                .last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some());
            if ended && !c.ready && seen.insert(c.name.clone()) {
                out.push((pod.name_any(), c.name.clone()));
            }
        }
    }
    out
}

/// The PersistentVolumes worth reading for a suspect: those bound to the
/// claims of its pods the scheduler has not placed, where a volume's node
/// affinity may be what holds them.
pub fn volumes_to_read(
    sts: &StatefulSet,
    pods: &[Pod],
    pvcs: &[PersistentVolumeClaim],
) -> Vec<String> {
    let name = name_of(sts);
    let unplaced: BTreeSet<u32> = pods
        .iter()
        .filter(|p| p.spec.as_ref().is_none_or(|s| s.node_name.is_none()))
        .filter_map(|p| ordinal(name, name_of(p)))
        .collect();
    let mut out: Vec<String> = pvcs
        .iter()
        .filter(|c| {
            let cname = name_of(*c);
            cname
                .rsplit_once('-')
                .and_then(|(_, n)| n.parse::<u32>().ok())
                .is_some_and(|n| unplaced.contains(&n) && cname.ends_with(&format!("-{name}-{n}")))
        })
        .filter_map(|c| c.spec.as_ref()?.volume_name.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, containers: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"containers": [{"name": "app"}], "nodeName": node},
            "status": {"containerStatuses": containers},
        }))
        .unwrap()
    }

    fn status(name: &str, ended: bool, ready: bool) -> serde_json::Value {
        let mut s = serde_json::json!({"name": name, "ready": ready, "restartCount": 0,
                                       "image": "app", "imageID": ""});
        if ended {
            s["lastState"] = serde_json::json!({"terminated": {"exitCode": 1}});
        }
        s
    }

    #[test]
    fn reads_one_previous_log_per_container_that_ended_and_is_not_ready() {
        let pods = [
            pod(
                "db-0",
                Some("n"),
                serde_json::json!([status("app", true, true)]),
            ),
            pod(
                "db-1",
                Some("n"),
                serde_json::json!([status("app", true, false), status("side", false, false)]),
            ),
            pod(
                "db-2",
                Some("n"),
                serde_json::json!([status("app", true, false)]),
            ),
        ];
        assert_eq!(
            logs_to_read(&pods),
            vec![("db-1".to_string(), "app".to_string())]
        );
    }

    #[test]
    fn reads_the_volumes_of_unplaced_pods_only() {
        let sts: StatefulSet =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "db"}})).unwrap();
        let pods = [
            pod("db-0", Some("n"), serde_json::json!([])),
            pod("db-1", None, serde_json::json!([])),
        ];
        let claim = |name: &str, volume: &str| -> PersistentVolumeClaim {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name}, "spec": {"volumeName": volume}}))
            .unwrap()
        };
        let pvcs = [
            claim("data-db-0", "pv-a"),
            claim("data-db-1", "pv-b"),
            claim("data-dbx-1", "pv-c"),
        ];
        assert_eq!(
            volumes_to_read(&sts, &pods, &pvcs),
            vec!["pv-b".to_string()]
        );
    }
}
