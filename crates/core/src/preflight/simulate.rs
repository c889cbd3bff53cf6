//! The cluster as it would stand once the rollout failed: the StatefulSet
//! with the new template and a revision for it, the first pods of that
//! revision held where their obstacle holds them, and the Events the
//! controller, scheduler, provisioner and kubelet would write, worded as
//! they word them. The agent's pipeline then reads it as it reads a real
//! cluster, which is what makes a prediction name the same findings.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, Event, EventSource, ObjectReference,
    PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::json;

use super::rollout::Rollout;
use super::{Detail, Obstacle, Stage, proposed_revision};
use crate::facts::REVISION_LABEL;
use crate::inventory::Inventory;

/// The proposed object with the live one's identity (uid, generation,
/// owners, status), so the pods made from it belong to the live set.
pub fn identity(live: Option<&StatefulSet>, proposed: &StatefulSet) -> StatefulSet {
    let mut sts = proposed.clone();
    if let Some(live) = live {
        let m = &live.metadata;
        sts.metadata.uid = m.uid.clone();
        sts.metadata.creation_timestamp = m.creation_timestamp.clone();
        sts.metadata.resource_version = m.resource_version.clone();
        sts.metadata.generation = m.generation;
        sts.metadata.managed_fields = m.managed_fields.clone();
        if sts.metadata.owner_references.is_none() {
            sts.metadata.owner_references = m.owner_references.clone();
        }
        sts.status = live.status.clone();
    } else {
        sts.status = None;
    }
    sts
}

fn in_namespace<T: k8s_openapi::Metadata<Ty = ObjectMeta> + Clone>(list: &[T], ns: &str) -> Vec<T> {
    super::admission::named(list, ns).cloned().collect()
}

fn owner(sts: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: sts.metadata.name.clone().unwrap_or_default(),
        uid: sts.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

struct Events<'a> {
    at: Time,
    ns: &'a str,
    out: Vec<Event>,
}

impl Events<'_> {
    fn add(
        &mut self,
        kind: &str,
        name: &str,
        uid: Option<String>,
        reason: &str,
        component: &str,
        message: String,
    ) {
        let n = self.out.len();
        self.out.push(Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.preflight-{n}")),
                namespace: Some(self.ns.to_string()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(
                    if kind == "StatefulSet" {
                        "apps/v1"
                    } else {
                        "v1"
                    }
                    .into(),
                ),
                kind: Some(kind.into()),
                name: Some(name.into()),
                namespace: Some(self.ns.to_string()),
                uid,
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some("Warning".into()),
            count: Some(1),
            first_timestamp: Some(self.at.clone()),
            last_timestamp: Some(self.at.clone()),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(component.into()),
                host: None,
            }),
            ..Default::default()
        });
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    at: &Time,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        last_transition_time: Some(at.clone()),
        ..Default::default()
    }
}

fn waiting(
    pod: &Pod,
    reason: &str,
    message: Option<&str>,
    only: Option<&str>,
) -> Vec<ContainerStatus> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            ready: false,
            restart_count: 0,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(
                        if only.is_none_or(|o| o == c.name) {
                            reason
                        } else {
                            "ContainerCreating"
                        }
                        .into(),
                    ),
                    message: message
                        .filter(|_| only.is_none_or(|o| o == c.name))
                        .map(Into::into),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// The objects of the set's namespace and of the cluster, as they would
/// stand after the first pods met their obstacles.
pub fn world(
    inv: &Inventory,
    sts: &StatefulSet,
    rollout: &Rollout,
    obstacles: &[Obstacle],
    pods: &[Pod],
    at: Timestamp,
) -> Inventory {
    let ns = sts.metadata.namespace.clone().unwrap_or_default();
    let name = sts.metadata.name.clone().unwrap_or_default();
    let time = Time(at);
    let mut sts = sts.clone();
    let new_set = sts.metadata.uid.is_none();
    if new_set {
        sts.metadata.uid = Some(format!("preflight-{name}"));
        sts.metadata.creation_timestamp = Some(time.clone());
    }
    let mut world = Inventory {
        pods: in_namespace(&inv.pods, &ns),
        events: in_namespace(&inv.events, &ns),
        controller_revisions: in_namespace(&inv.controller_revisions, &ns),
        pvcs: in_namespace(&inv.pvcs, &ns),
        pvs: inv.pvs.clone(),
        storage_classes: inv.storage_classes.clone(),
        nodes: inv.nodes.clone(),
        hpas: in_namespace(&inv.hpas, &ns),
        limit_ranges: in_namespace(&inv.limit_ranges, &ns),
        resource_quotas: in_namespace(&inv.resource_quotas, &ns),
        pdbs: in_namespace(&inv.pdbs, &ns),
        config_maps: inv.config_maps.clone(),
        leases: inv.leases.clone(),
        namespaces: inv.namespaces.clone(),
        validating_webhooks: inv.validating_webhooks.clone(),
        mutating_webhooks: inv.mutating_webhooks.clone(),
        ..Inventory::default()
    };
    let template_changed = new_set || !rollout.replaced.is_empty();
    let unrecorded = obstacles.iter().any(|o| o.stage == Stage::Revision);
    let revision = if template_changed && !unrecorded {
        add_revision(&mut world, &sts, &time)
    } else {
        // A scale-up alone: the new pods get the revision the set updates to.
        sts.status
            .as_ref()
            .and_then(|s| s.update_revision.clone())
            .unwrap_or_else(|| proposed_revision(&sts))
    };
    let generation = record_write(&mut sts);
    if unrecorded {
        // Without its revision the controller stops before any status
        // write: the generation stays unobserved, no pod is touched.
        world.stateful_sets = vec![sts];
        return world;
    }
    let first: Vec<&str> = obstacles
        .iter()
        .flat_map(|o| &o.pods)
        .map(String::as_str)
        .collect();
    let existed = |p: &str| {
        world
            .pods
            .iter()
            .any(|x| x.metadata.name.as_deref() == Some(p))
    };
    let held_existing = first.iter().filter(|p| existed(p)).count() as i32;
    let old = sts.status.clone().unwrap_or_default();
    let refused = obstacles.iter().any(|o| o.stage == Stage::Admission);
    sts.status = Some(StatefulSetStatus {
        observed_generation: Some(generation),
        replicas: if refused {
            old.replicas - held_existing
        } else {
            old.replicas.max(first.len() as i32)
        },
        ready_replicas: Some((old.ready_replicas.unwrap_or(0) - held_existing).max(0)),
        current_replicas: Some((old.current_replicas.unwrap_or(0) - held_existing).max(0)),
        updated_replicas: Some(0),
        current_revision: if new_set {
            Some(revision.clone())
        } else {
            old.current_revision.clone()
        },
        update_revision: Some(revision.clone()),
        collision_count: old.collision_count,
        ..Default::default()
    });
    let mut events = Events {
        at: time.clone(),
        ns: &ns,
        out: Vec::new(),
    };
    for o in obstacles {
        for pod_name in &o.pods {
            world
                .pods
                .retain(|p| p.metadata.name.as_deref() != Some(pod_name));
            let Some(mut pod) = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod_name))
                .cloned()
            else {
                continue;
            };
            pod.metadata.uid = Some(format!("preflight-{pod_name}"));
            pod.metadata.creation_timestamp = Some(time.clone());
            pod.metadata.owner_references = Some(vec![owner(&sts)]);
            if let Some(l) = pod.metadata.labels.as_mut() {
                l.insert(REVISION_LABEL.into(), revision.clone());
            }
            let node = inv.nodes.first().and_then(|n| n.metadata.name.clone());
            hold(&mut world, &mut events, &sts, o, pod, node, inv.nodes.len());
        }
    }
    world.events.extend(events.out);
    world.stateful_sets = vec![sts];
    world
}

fn claim_of(
    sts: &StatefulSet,
    claim: &str,
    class: &str,
    pod: &str,
    at: &Time,
) -> PersistentVolumeClaim {
    let template = sts.spec.volume_claim_templates.iter().flatten().find(|t| {
        t.metadata
            .name
            .as_deref()
            .is_some_and(|n| format!("{n}-{pod}") == claim)
    });
    let mut spec = template.and_then(|t| t.spec.clone()).unwrap_or_default();
    spec.storage_class_name = (!class.is_empty()).then(|| class.to_string());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim.into()),
            namespace: sts.metadata.namespace.clone(),
            uid: Some(format!("preflight-{claim}")),
            labels: sts.spec.selector.match_labels.clone(),
            creation_timestamp: Some(at.clone()),
            ..Default::default()
        },
        spec: Some(spec),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    }
}

/// Holds one pod where its obstacle holds it: refused (an Event on the set,
/// no pod), Pending on its claim or the scheduler, or stuck on the node.
fn hold(
    world: &mut Inventory,
    events: &mut Events<'_>,
    sts: &StatefulSet,
    o: &Obstacle,
    mut pod: Pod,
    node: Option<String>,
    nodes: usize,
) {
    let time = events.at.clone();
    let set = sts.metadata.name.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone();
    let pod_event = |events: &mut Events<'_>, reason: &str, component: &str, message: String| {
        events.add("Pod", &name, uid.clone(), reason, component, message);
    };
    let unscheduled = |message: &str| {
        vec![condition(
            "PodScheduled",
            "False",
            Some("Unschedulable"),
            Some(message),
            &time,
        )]
    };
    let on_node = || {
        vec![
            condition("PodScheduled", "True", None, None, &time),
            condition("Ready", "False", Some("ContainersNotReady"), None, &time),
        ]
    };
    let mut status = PodStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    };
    match (&o.stage, &o.detail) {
        (Stage::Update | Stage::Revision, _) => return,
        (Stage::Admission, _) => {
            // A dry run named its pod apart from the live one; the
            // controller's Event names the pod it tried to create.
            let message = o
                .message
                .replace(&format!("{name}-stsmend-preflight"), &name);
            events.add(
                "StatefulSet",
                &set,
                sts.metadata.uid.clone(),
                "FailedCreate",
                "statefulset-controller",
                format!("create Pod {name} in StatefulSet {set} failed error: {message}"),
            );
            return;
        }
        (Stage::Storage, detail) => {
            if let Detail::Claim { claim, class } = detail {
                world.pvcs.push(claim_of(sts, claim, class, &name, &time));
                events.add(
                    "PersistentVolumeClaim",
                    claim,
                    Some(format!("preflight-{claim}")),
                    "ProvisioningFailed",
                    "persistentvolume-controller",
                    o.message.clone(),
                );
            }
            let n = nodes.max(1);
            let message = format!(
                "0/{n} nodes are available: {n} pod has unbound immediate PersistentVolumeClaims."
            );
            status.conditions = Some(unscheduled(&message));
            pod_event(events, "FailedScheduling", "default-scheduler", message);
        }
        (Stage::Scheduling, _) => {
            status.conditions = Some(unscheduled(&o.message));
            pod_event(
                events,
                "FailedScheduling",
                "default-scheduler",
                o.message.clone(),
            );
        }
        (Stage::Mount, _) => {
            status.conditions = Some(on_node());
            status.container_statuses = Some(waiting(&pod, "ContainerCreating", None, None));
            pod_event(events, "FailedMount", "kubelet", o.message.clone());
        }
        (Stage::Container, detail) => {
            let only = match detail {
                Detail::Container { container } => Some(container.as_str()),
                _ => None,
            };
            status.conditions = Some(on_node());
            status.container_statuses = Some(waiting(
                &pod,
                "CreateContainerConfigError",
                Some(&o.message),
                only,
            ));
            pod_event(events, "Failed", "kubelet", format!("Error: {}", o.message));
        }
    }
    if matches!(o.stage, Stage::Mount | Stage::Container)
        && let Some(s) = pod.spec.as_mut()
    {
        s.node_name = node;
    }
    pod.status = Some(status);
    world.pods.push(pod);
}

/// The new template's revision, newest of the set's.
fn add_revision(world: &mut Inventory, sts: &StatefulSet, time: &Time) -> String {
    let revision = proposed_revision(sts);
    let ns = sts.metadata.namespace.clone().unwrap_or_default();
    let number = world
        .controller_revisions
        .iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(&o.uid) == sts.metadata.uid.as_ref())
        })
        .map(crate::diagnose::rollout::number)
        .max()
        .unwrap_or(0)
        + 1;
    let mut template = serde_json::to_value(&sts.spec.template).unwrap_or_default();
    template["$patch"] = json!("replace");
    let mut labels: BTreeMap<String, String> = sts
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), revision.clone());
    world.controller_revisions.push(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner(sts)]),
            creation_timestamp: Some(time.clone()),
            ..Default::default()
        },
        data: RawExtension(json!({"spec": {"template": template}})),
        revision: Some(number),
    });
    revision
}

/// The spec write that starts the rollout: the new generation.
fn record_write(sts: &mut StatefulSet) -> i64 {
    // No managedFields entry: who will write the template is not known
    // (the owner's finding names the live object's writer), and the
    // revision made at the change's time dates the rollout.
    let generation = sts.metadata.generation.unwrap_or(0) + 1;
    sts.metadata.generation = Some(generation);
    generation
}

/// The agent's memory of the change: its generation first seen unobserved
/// when it landed, which is how a run times a mismatch no managed field
/// dates (the simulated write records no writer of its own).
pub fn first_seen(world: &Inventory, at: Timestamp) -> crate::state::State {
    let mut state = crate::state::State::default();
    for sts in &world.stateful_sets {
        let id = format!(
            "{}/{}",
            sts.metadata.namespace.as_deref().unwrap_or_default(),
            sts.metadata.name.as_deref().unwrap_or_default()
        );
        state.records.insert(
            id,
            crate::state::Record {
                uid: sts.metadata.uid.clone(),
                mismatch: Some(crate::state::Seen {
                    generation: sts.metadata.generation.unwrap_or(0),
                    first_seen: at,
                }),
                ..Default::default()
            },
        );
    }
    state
}
