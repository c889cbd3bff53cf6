//! What the StatefulSet controller will do with a change: which pods it
//! replaces or creates, in which order, the least time that takes, and the
//! pod it makes from the new template.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;

use super::spec::Change;
use crate::facts::REVISION_LABEL;

/// The label the controller gives each pod with its own name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `RollingUpdate` or `OnDelete`.
    pub strategy: String,
    /// `OrderedReady` or `Parallel`.
    pub pod_management: String,
    pub partition: i32,
    /// As the spec gives it (a count or a percentage); 1 when unset.
    pub max_unavailable: String,
    /// Pods the controller deletes and creates again from the new
    /// template, in its order (highest ordinal first).
    pub replaced: Vec<String>,
    /// Pods it creates that do not exist yet (a new set, a scale-up).
    pub created: Vec<String>,
    /// The pods the new template meets first: the ones whose fate the
    /// prediction is about.
    pub first: Vec<String>,
    /// Pods of the current template the change leaves alone (below the
    /// partition, or every pod under OnDelete).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// The least time the rollout takes if every pod comes up at once:
    /// each step waits for its pods to be Ready (probe delays) and
    /// available (`minReadySeconds`).
    pub least_seconds: i64,
    /// At most this much more per step for old pods to stop
    /// (`terminationGracePeriodSeconds`).
    pub grace_seconds: i64,
    /// How the duration was counted.
    pub basis: String,
}

fn int_or_string(v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// How many pods one step of a rolling update takes down: `maxUnavailable`
/// resolved against the replicas, rounded down as the controller does, at
/// least one.
fn step_size(max_unavailable: &str, replicas: i32) -> usize {
    let n = match max_unavailable.strip_suffix('%') {
        Some(p) => p.parse::<i64>().unwrap_or(1) * i64::from(replicas) / 100,
        None => max_unavailable.parse().unwrap_or(1),
    };
    n.max(1) as usize
}

/// The rollout a change starts; `live` is the set as it runs now.
pub fn plan(live: Option<&StatefulSet>, proposed: &StatefulSet, change: &Change) -> Rollout {
    let name = proposed.metadata.name.clone().unwrap_or_default();
    let spec = &proposed.spec;
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1);
    let live_replicas = live
        .and_then(|l| l.spec.replicas)
        .unwrap_or(if change.new_set { 0 } else { replicas });
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let kind = strategy.type_.unwrap_or_else(|| "RollingUpdate".into());
    let rolling = strategy.rolling_update.unwrap_or_default();
    let partition = rolling.partition.unwrap_or(0);
    let max_unavailable = rolling
        .max_unavailable
        .as_ref()
        .map_or_else(|| "1".to_string(), int_or_string);
    let policy = spec
        .pod_management_policy
        .clone()
        .unwrap_or_else(|| "OrderedReady".into());
    let pod = |i: i32| format!("{name}-{}", start + i);
    let existing = live_replicas.min(replicas);
    let created: Vec<String> = (existing..replicas).map(pod).collect();
    let (mut replaced, mut kept) = (Vec::new(), Vec::new());
    if change.template_changed() && !change.new_set {
        // Highest ordinal first, down to the partition (an ordinal index,
        // counted from `ordinals.start`).
        for i in (0..existing).rev() {
            if kind == "RollingUpdate" && i >= partition {
                replaced.push(pod(i));
            } else {
                kept.push(pod(i));
            }
        }
        kept.reverse();
    }
    let parallel = policy == "Parallel";
    let first: Vec<String> = if !replaced.is_empty() {
        let step = if parallel {
            step_size(&max_unavailable, replicas)
        } else {
            1
        };
        replaced.iter().take(step).cloned().collect()
    } else if parallel {
        created.clone()
    } else {
        created.iter().take(1).cloned().collect()
    };
    let (ready, grace) = step_seconds(proposed);
    let steps = if parallel {
        let step = step_size(&max_unavailable, replicas);
        replaced.len().div_ceil(step) + usize::from(!created.is_empty())
    } else {
        replaced.len() + created.len()
    };
    Rollout {
        strategy: kind,
        pod_management: policy,
        partition,
        max_unavailable,
        least_seconds: ready * steps as i64,
        grace_seconds: if replaced.is_empty() { 0 } else { grace },
        basis: format!(
            "{steps} step{} of at least {ready}s each (probe delays and minReadySeconds)",
            if steps == 1 { "" } else { "s" }
        ),
        replaced,
        created,
        first,
        kept,
    }
}

/// The least seconds one pod of the template takes to be available, and
/// its grace period.
fn step_seconds(sts: &StatefulSet) -> (i64, i64) {
    let min_ready = sts.spec.min_ready_seconds.unwrap_or(0);
    let pod = sts.spec.template.spec.as_ref();
    let grace = pod
        .and_then(|p| p.termination_grace_period_seconds)
        .unwrap_or(30);
    let ready = pod
        .map(|p| {
            p.containers
                .iter()
                .map(|c| {
                    let delay = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
                        p.as_ref()
                            .map_or(0, |p| i64::from(p.initial_delay_seconds.unwrap_or(0)))
                    };
                    delay(&c.startup_probe) + delay(&c.readiness_probe)
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    (ready + i64::from(min_ready), grace)
}

/// The pod the controller makes for `pod_name` from the set's template:
/// its labels with the revision and pod name, hostname and subdomain, and
/// each claim template mounted as its claim.
pub fn pod_for(sts: &StatefulSet, pod_name: &str, revision: &str) -> Pod {
    let spec = &sts.spec;
    let template = spec.template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), revision.into());
    labels.insert(POD_NAME_LABEL.into(), pod_name.into());
    let mut pod_spec = template.spec.unwrap_or_default();
    pod_spec.hostname = Some(pod_name.into());
    if !spec.service_name.as_deref().unwrap_or_default().is_empty() {
        pod_spec.subdomain = spec.service_name.clone();
    }
    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    for claim in spec.volume_claim_templates.iter().flatten() {
        let Some(claim_name) = claim.metadata.name.clone() else {
            continue;
        };
        volumes.retain(|v| v.name != claim_name);
        volumes.push(Volume {
            name: claim_name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{claim_name}-{pod_name}"),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        pod_spec.volumes = None;
    }
    let owner = sts.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: sts.metadata.name.clone().unwrap_or_default(),
        uid,
        controller: Some(true),
        block_owner_deletion: None,
    });
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name.into()),
            namespace: sts.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(extra: serde_json::Value) -> StatefulSet {
        let mut v = json!({"metadata": {"name": "db", "namespace": "shop", "uid": "u1"}, "spec": {
            "replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                "terminationGracePeriodSeconds": 20,
                "containers": [{"name": "app", "image": "app:2",
                    "readinessProbe": {"initialDelaySeconds": 5, "httpGet": {"port": 80}}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}});
        for (k, val) in extra.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn changed() -> Change {
        Change {
            template: vec![json!({"path": "x"})],
            ..Change::default()
        }
    }

    #[test]
    fn a_rolling_update_replaces_from_the_highest_ordinal_down_to_the_partition() {
        let s = sts(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
        );
        let r = plan(Some(&s), &s, &changed());
        assert_eq!(r.replaced, ["db-2", "db-1"]);
        assert_eq!(r.kept, ["db-0"]);
        assert_eq!(r.first, ["db-2"]);
        assert_eq!((r.least_seconds, r.grace_seconds), (10, 20));
    }

    #[test]
    fn ordinals_start_where_the_spec_says() {
        let s = sts(json!({"ordinals": {"start": 10}, "replicas": 2}));
        assert_eq!(plan(Some(&s), &s, &changed()).replaced, ["db-11", "db-10"]);
    }

    #[test]
    fn parallel_with_max_unavailable_takes_several_at_once() {
        let s = sts(json!({"podManagementPolicy": "Parallel",
            "updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}));
        let r = plan(Some(&s), &s, &changed());
        assert_eq!(r.first, ["db-2", "db-1"]);
        assert_eq!(r.least_seconds, 10, "two steps");
    }

    #[test]
    fn on_delete_replaces_nothing_and_a_new_set_creates_from_zero() {
        let s = sts(json!({"updateStrategy": {"type": "OnDelete"}}));
        let r = plan(Some(&s), &s, &changed());
        assert!(r.replaced.is_empty() && r.first.is_empty());
        assert_eq!(r.kept.len(), 3);
        let new = Change {
            new_set: true,
            ..Change::default()
        };
        let r = plan(None, &sts(json!({})), &new);
        assert_eq!(r.created, ["db-0", "db-1", "db-2"]);
        assert_eq!(r.first, ["db-0"], "OrderedReady: one at a time");
    }

    #[test]
    fn a_scale_up_creates_the_new_ordinals() {
        let live = sts(json!({"replicas": 2}));
        let s = sts(json!({"replicas": 4}));
        let r = plan(Some(&live), &s, &Change::default());
        assert_eq!(r.created, ["db-2", "db-3"]);
        assert_eq!(r.first, ["db-2"]);
    }

    #[test]
    fn the_pod_carries_its_revision_name_and_claims() {
        let p = pod_for(&sts(json!({})), "db-2", "db-abc");
        let labels = p.metadata.labels.unwrap();
        assert_eq!(labels[REVISION_LABEL], "db-abc");
        assert_eq!(labels[POD_NAME_LABEL], "db-2");
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("db-2"));
        let claim = spec.volumes.unwrap()[0]
            .persistent_volume_claim
            .clone()
            .unwrap();
        assert_eq!(claim.claim_name, "data-db-2");
        assert_eq!(p.metadata.owner_references.unwrap()[0].uid, "u1");
    }
}
