//! One plain, serialisable value per candidate StatefulSet: everything the
//! diagnosis and the policies may look at. Cut from an [`Inventory`] by pure
//! functions, so the live and the file source give the same facts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Node, PersistentVolumeClaim, Pod, ResourceQuota,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use serde::Serialize;

use crate::config::NodeGroup;
use crate::inventory::Inventory;
use crate::selector::Selector;
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
    /// StorageClasses its claims and claim templates name, where they exist.
    pub storage_classes: Vec<StorageClass>,
    /// Every node's summary, shared by all candidates of a run: a copy
    /// each would grow a run's memory with candidates times nodes.
    pub nodes: Arc<[NodeSummary]>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub limit_ranges: Vec<LimitRange>,
    pub resource_quotas: Vec<ResourceQuota>,
    /// The PriorityClass its template names, where it exists.
    pub priority_classes: Vec<PriorityClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler_status: Option<ConfigMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_lease: Option<Lease>,
    pub node_groups: Vec<NodeGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Record>,
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

/// What, beyond the inventory, shapes the facts of every candidate.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The inventory's nodes, summarised once a run.
    pub nodes: Arc<[NodeSummary]>,
    pub node_groups: &'a [NodeGroup],
    pub state: Option<&'a crate::state::State>,
}

pub fn name_of<
    K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    obj: &K,
) -> &str {
    obj.metadata().name.as_deref().unwrap_or_default()
}

pub fn namespace_of<
    K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    obj: &K,
) -> &str {
    obj.metadata().namespace.as_deref().unwrap_or_default()
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

/// Cuts the facts of one StatefulSet out of the inventory.
pub fn gather(inv: &Inventory, sts: &StatefulSet, ctx: &Context<'_>) -> Facts {
    let ns = namespace_of(sts);
    let name = name_of(sts);
    let spec = sts.spec.as_ref();
    let selector = spec
        .and_then(|s| Selector::from_label_selector(&s.selector).ok())
        .unwrap_or_default();
    let in_ns = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(ns)
    };

    let mut pods: Vec<Pod> = inv
        .pods
        .iter()
        .filter(|p| in_ns(&p.metadata))
        .filter(|p| {
            let by_name = ordinal(name, name_of(*p)).is_some()
                && !selector.is_empty()
                && selector.matches(p.metadata.labels.as_ref());
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
        .filter(|r| in_ns(&r.metadata))
        .filter(|r| {
            let by_name = name_of(*r)
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-'))
                && selector.matches(r.metadata.labels.as_ref());
            owned_by(&r.metadata, sts).unwrap_or(by_name)
        })
        .cloned()
        .collect();
    revisions.sort_by_key(|r| r.revision);

    let templates: Vec<&str> = spec
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| t.metadata.name.as_deref())
        .collect();
    let pvcs: Vec<PersistentVolumeClaim> = inv
        .pvcs
        .iter()
        .filter(|c| in_ns(&c.metadata))
        .filter(|c| {
            templates
                .iter()
                .any(|t| ordinal(&format!("{t}-{name}"), name_of(*c)).is_some())
        })
        .cloned()
        .collect();

    let mut class_names: BTreeSet<String> = pvcs
        .iter()
        .filter_map(|c| c.spec.as_ref()?.storage_class_name.clone())
        .collect();
    class_names.extend(
        spec.and_then(|s| s.volume_claim_templates.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|t| t.spec.as_ref()?.storage_class_name.clone()),
    );
    let storage_classes = inv
        .storage_classes
        .iter()
        .filter(|c| {
            class_names.contains(name_of(*c))
                || c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                    .is_some_and(|v| v == "true")
        })
        .cloned()
        .collect();

    let pod_names: BTreeSet<&str> = pods.iter().map(name_of).collect();
    let pvc_names: BTreeSet<&str> = pvcs.iter().map(name_of).collect();
    let mut events: Vec<Event> = inv
        .events
        .iter()
        .filter(|e| in_ns(&e.metadata) || e.involved_object.namespace.as_deref() == Some(ns))
        .filter(|e| event_about(e, name, &pod_names, &pvc_names))
        .cloned()
        .collect();
    events.sort_by_key(crate::time::event_time);
    events.shrink_to_fit();

    let template_labels = spec
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    let pdbs = inv
        .pdbs
        .iter()
        .filter(|p| in_ns(&p.metadata))
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| Selector::from_label_selector(s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches(template_labels.as_ref()))
        })
        .cloned()
        .collect();

    let priority = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.priority_class_name.clone());

    let find_cm = |(cns, cname): (&str, &str)| {
        inv.config_maps
            .iter()
            .find(|c| namespace_of(*c) == cns && name_of(*c) == cname)
            .cloned()
    };

    Facts {
        pods,
        events,
        revisions,
        pvcs,
        storage_classes,
        nodes: ctx.nodes.clone(),
        hpas: inv
            .hpas
            .iter()
            .filter(|h| in_ns(&h.metadata))
            .filter(|h| {
                let t = &h.spec.as_ref().map(|s| &s.scale_target_ref);
                t.is_some_and(|t| t.kind == "StatefulSet" && t.name == name)
            })
            .cloned()
            .collect(),
        pdbs,
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
        priority_classes: inv
            .priority_classes
            .iter()
            .filter(|p| Some(name_of(*p)) == priority.as_deref())
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
        stateful_set: sts.clone(),
    }
}
