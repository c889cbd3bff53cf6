//! What the pipeline asks of each finding kind beyond the kinds table
//! (`crate::kinds`): what in a pod template a finding depends on (so that only a
//! change to it is blamed), and what cause outside the workload it names
//! (what storm protection groups StatefulSets by). Both match every kind
//! and every data type with no catch-all, so a new kind cannot be added
//! without answering both here.

use super::change::Aspect;
use super::{Data, Finding, Kind};

/// The aspects a finding depends on, or `None` where the finding is not a
/// failure the update revision could be blamed for (a symptom, a strategy
/// knob, a fact about the namespace). An empty list: nothing in a pod
/// template can cause it (a cordoned node, a webhook that cannot be called).
pub fn depends_on(f: &Finding) -> Option<Vec<Aspect>> {
    use Aspect::*;
    let spec_aspects = || {
        Aspect::ALL
            .iter()
            .copied()
            .filter(|a| *a != Metadata)
            .collect()
    };
    Some(match f.kind {
        Kind::ImagePull => vec![Image, ServiceAccount],
        // A crash or a readiness probe that never passes: the program, how
        // it is started, what it is given, and room to run in.
        Kind::CrashLoop | Kind::NeverReady => {
            vec![Image, Resources, Volumes, Runtime, ServiceAccount]
        }
        // The kubelet cannot build the container's config: a Secret or
        // ConfigMap reference it cannot resolve, or a security context the
        // image cannot meet (runAsNonRoot on an image that runs as root).
        Kind::ContainerConfig => vec![Volumes, Runtime, Image],
        // A volume the template names that cannot be mounted (a Secret,
        // ConfigMap or claim that does not exist).
        Kind::VolumeMount => vec![Volumes],
        // A volume still attached to another node: the storage's state.
        Kind::VolumeAttach => vec![],
        Kind::AdmissionDenied => match f.data.admission().map(|a| a.admission.as_str()) {
            Some("limit_range" | "resource_quota") => vec![Resources],
            Some("pod_security") => spec_aspects(),
            // A webhook or validation may object to any part, labels too.
            _ => Aspect::ALL.to_vec(),
        },
        Kind::PriorityClassMissing | Kind::Preempted => vec![Scheduling],
        Kind::ServiceAccountMissing => vec![ServiceAccount],
        // The controller cannot record the new template, whatever changed;
        // rolling back reuses a recorded one. A quota that only fills the
        // namespace is no failure of this StatefulSet.
        Kind::QuotaExhausted => {
            if matches!(&f.data, Data::QuotaExhausted(q) if q.resource == "count/controllerrevisions.apps")
                && f.confidence == super::Confidence::High
            {
                Aspect::ALL.to_vec()
            } else {
                return None;
            }
        }
        Kind::Unschedulable => match f.data.scheduling().map(|s| s.reason.as_str()) {
            Some("insufficient_resource") => vec![Resources],
            Some("node_affinity" | "taints") => vec![Scheduling],
            // Pods (anti-)affine to their own labels.
            Some("pod_affinity" | "topology_spread") => vec![Scheduling, Metadata],
            Some("volume") => vec![Volumes, Scheduling],
            _ => spec_aspects(),
        },
        Kind::NodesFull | Kind::Evicted => vec![Resources],
        // A new node selector may point away from where the volume lives.
        Kind::VolumeNodeConflict => vec![Scheduling],
        Kind::WebhookUnavailable
        | Kind::NodesCordoned
        | Kind::NodesNotReady
        | Kind::NodeNotReady
        | Kind::PvcPending
        | Kind::StorageClassMissing
        | Kind::PvcLost
        | Kind::ControllerNotProcessing => Vec::new(),
        Kind::GenerationMismatch
        | Kind::RolloutStuck
        | Kind::ReplicasNotReady
        | Kind::RevisionChange
        | Kind::Partition
        | Kind::MaxUnavailable
        | Kind::OrderedReadyBlocked
        | Kind::EvictionBlocked
        | Kind::PodTerminating
        | Kind::LongGracePeriod
        | Kind::Hpa
        | Kind::AutoscalerStatus
        | Kind::SpecOwner
        | Kind::TemplateReapplied
        | Kind::UpdateForbidden => return None,
    })
}

/// The causes outside the workload a finding names, each as a key that a
/// finding about another StatefulSet failing on the same cause has too.
/// Empty for a failure that is the workload's own (a crash loop the
/// template change does not explain has no cause named outside it).
pub fn outside_keys(f: &Finding) -> Vec<String> {
    use Data as D;
    let per_node = |nodes: &[String], what: &str| -> Vec<String> {
        if nodes.is_empty() {
            vec![format!("nodes {what}")]
        } else {
            nodes.iter().map(|n| format!("node {n} {what}")).collect()
        }
    };
    // Named outside the workload, but about this StatefulSet alone (a
    // claim, a namespace's ServiceAccount or quota, an admission): its own
    // key, unless the template change is what it depends on.
    let alone = || vec![format!("{}: {}", f.kind.as_str(), f.summary)];
    let alone_unless_changed = || {
        let depends = depends_on(f).unwrap_or_default();
        if depends.is_empty() {
            alone()
        } else {
            Vec::new()
        }
    };
    // Every kind with data is named: a new one must say here whether it is
    // a cause outside the workload (the compiler holds it to that).
    match &f.data {
        D::WebhookUnavailable(d) => vec![format!("webhook {} cannot be called", d.webhook)],
        D::NodesCordoned(d) => per_node(&d.nodes_cordoned, "cordoned"),
        D::NodesNotReady(d) => per_node(&d.nodes_not_ready, "not Ready"),
        D::NodeNotReady(d) => vec![format!("node {} not Ready", d.node)],
        D::NodesFull(_) => vec!["nodes full of other workloads".into()],
        D::ControllerNotProcessing(_) => vec!["kube-controller-manager not processing".into()],
        D::VolumeNodeConflict(d) => d
            .volumes
            .iter()
            .map(|v| {
                let zone = v.get("zone").and_then(|z| z.as_str()).unwrap_or_default();
                let node = v.get("node").and_then(|n| n.as_str()).unwrap_or_default();
                if zone.is_empty() {
                    format!("node {node} holding volumes")
                } else {
                    format!("zone {zone}")
                }
            })
            .collect(),
        D::StorageClassMissing(d) => vec![format!("storage class {}", d.storage_class)],
        D::PvcPending(d) => vec![format!("storage class {}", d.storage_class)],
        D::PriorityClassMissing(d) => vec![format!("PriorityClass {}", d.priority_class)],
        // An attacher that fails (a storage backend, a CSI driver down)
        // fails every set that needs it the same way.
        D::VolumeAttach(d) => vec![format!("volumes cannot be attached ({})", d.reason)],
        D::PvcLost(_) | D::ServiceAccountMissing(_) => alone(),
        D::QuotaExhausted(_) | D::AdmissionDenied(_) | D::Preempted(_) | D::Unschedulable(_) => {
            alone_unless_changed()
        }
        // Kinds without data: `evicted` is about this set alone.
        D::None if f.kind == Kind::Evicted => alone_unless_changed(),
        // The workload's own failures, its symptoms and context: no cause
        // outside it.
        D::None
        | D::GenerationMismatch(_)
        | D::RolloutStuck(_)
        | D::ReplicasNotReady(_)
        | D::RevisionChange(_)
        | D::Partition(_)
        | D::MaxUnavailable(_)
        | D::CrashLoop(_)
        | D::ImagePull(_)
        | D::NeverReady(_)
        | D::ContainerConfig(_)
        | D::VolumeMount(_)
        | D::PodTerminating(_)
        | D::LongGracePeriod(_)
        | D::Hpa(_)
        | D::AutoscalerStatus(_)
        | D::SpecOwner(_)
        | D::EvictionBlocked(_)
        | D::TemplateReapplied(_)
        | D::UpdateForbidden(_) => Vec::new(),
    }
}
