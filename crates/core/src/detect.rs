//! Detection: which StatefulSets have a failed rollout, and for how long.
//!
//! Two steps, so that the live source reads more than the StatefulSet only for
//! the few that need it: [`screen`] looks at one StatefulSet alone (its spec and
//! status), [`confirm`] weighs a suspect's facts to tell how long the symptom
//! has held.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use serde::Serialize;

use crate::duration::Span;
use crate::facts::{Facts, REVISION_LABEL};
use crate::kinds::Kind;
use crate::time::{created, last_spec_write, seconds_between};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Symptom {
    /// `metadata.generation != status.observedGeneration`: the
    /// KubeStatefulSetGenerationMismatch alert.
    GenerationMismatch {
        generation: i64,
        observed_generation: Option<i64>,
    },
    /// A rollout that does not finish: KubeStatefulSetUpdateNotRolledOut.
    RolloutStuck {
        current_revision: String,
        update_revision: String,
        replicas: i32,
        updated_replicas: i32,
        /// How many pods the rollout must update (replicas less the partition).
        target: i32,
    },
    /// Fewer Ready pods than declared, with no revision change in flight
    /// (a scale-up that cannot place its pods, or pods that broke).
    ReplicasNotReady { replicas: i32, ready_replicas: i32 },
}

impl Symptom {
    /// The finding kind that reports it.
    pub fn kind(&self) -> Kind {
        match self {
            Symptom::GenerationMismatch { .. } => Kind::GenerationMismatch,
            Symptom::RolloutStuck { .. } => Kind::RolloutStuck,
            Symptom::ReplicasNotReady { .. } => Kind::ReplicasNotReady,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    pub fn describe(&self) -> String {
        match self {
            Symptom::GenerationMismatch {
                generation,
                observed_generation,
            } => format!(
                "generation {generation} not observed (status.observedGeneration is {})",
                observed_generation.map_or("unset".into(), |g| g.to_string())
            ),
            Symptom::RolloutStuck {
                current_revision,
                update_revision,
                updated_replicas,
                target,
                ..
            } => format!(
                "rollout from {current_revision} to {update_revision} stuck at {updated_replicas}/{target} updated"
            ),
            Symptom::ReplicasNotReady {
                replicas,
                ready_replicas,
            } => format!("{ready_replicas}/{replicas} replicas ready"),
        }
    }
}

/// Why a StatefulSet that looks unfinished is, by design, not a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exemption {
    BeingDeleted,
    ScaledToZero,
    /// `OnDelete` updates pods only when someone deletes them.
    OnDelete,
    /// A rolling-update partition holds the older pods back on purpose.
    PartitionHeld,
}

impl Exemption {
    pub fn describe(self) -> &'static str {
        match self {
            Exemption::BeingDeleted => "being deleted",
            Exemption::ScaledToZero => "scaled to zero",
            Exemption::OnDelete => "OnDelete update strategy: pods update when deleted",
            Exemption::PartitionHeld => "rolling-update partition holds the rest back on purpose",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Healthy,
    Exempt(Exemption),
    Suspect(Vec<Symptom>),
}

/// Looks at one StatefulSet's spec and status, nothing else.
pub fn screen(sts: &StatefulSet) -> Screen {
    if sts.metadata.deletion_timestamp.is_some() {
        return Screen::Exempt(Exemption::BeingDeleted);
    }
    let spec = &sts.spec;
    let status = sts.status.as_ref();
    let generation = sts.metadata.generation.unwrap_or(0);
    let observed = status.and_then(|s| s.observed_generation);
    let mut symptoms = Vec::new();
    if generation > 0 && observed != Some(generation) {
        // Even at zero replicas or with OnDelete, an unobserved generation
        // means the controller failed to process the change.
        symptoms.push(Symptom::GenerationMismatch {
            generation,
            observed_generation: observed,
        });
    }
    // The API server refuses negative replicas, so only a hand-written
    // snapshot has them: read as zero (README's Detection).
    let replicas = spec.replicas.unwrap_or(1).max(0);
    if replicas == 0 {
        return if symptoms.is_empty() {
            Screen::Exempt(Exemption::ScaledToZero)
        } else {
            Screen::Suspect(symptoms)
        };
    }
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let strategy = spec.update_strategy.as_ref();
    let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .clamp(0, replicas);
    let current = status.and_then(|s| s.current_revision.clone());
    let update = status.and_then(|s| s.update_revision.clone());
    let rolling = matches!((&current, &update), (Some(c), Some(u)) if c != u);
    let mut exemption = None;
    if rolling && on_delete {
        exemption = Some(Exemption::OnDelete);
    } else if rolling {
        let target = replicas - partition;
        if updated < target {
            symptoms.push(Symptom::RolloutStuck {
                current_revision: current.clone().unwrap_or_default(),
                update_revision: update.clone().unwrap_or_default(),
                replicas,
                updated_replicas: updated,
                target,
            });
        } else if partition > 0 {
            exemption = Some(Exemption::PartitionHeld);
        }
    }
    let stuck = symptoms
        .iter()
        .any(|s| matches!(s, Symptom::RolloutStuck { .. }));
    if ready < replicas && !stuck {
        symptoms.push(Symptom::ReplicasNotReady {
            replicas,
            ready_replicas: ready,
        });
    }
    match (symptoms.is_empty(), exemption) {
        (false, _) => Screen::Suspect(symptoms),
        (true, Some(e)) => Screen::Exempt(e),
        (true, None) => Screen::Healthy,
    }
}

/// One symptom with how long it is known to have held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub symptom: Symptom,
    /// The earliest time the symptom is known to have held; `None` when no
    /// object says, in which case the clock starts now.
    pub since: Option<Timestamp>,
    /// Where `since` came from, for the report.
    pub since_from: String,
    pub held_seconds: u64,
    pub due: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    pub symptoms: Vec<Held>,
    pub threshold: Span,
    /// Whether any symptom held for the threshold: only then is it a finding.
    pub due: bool,
}

/// Tells how long each symptom has held, from the facts and the agent's own
/// records. Every estimate errs late, so a missing record delays action and
/// never hastens it.
pub fn confirm(symptoms: &[Symptom], facts: &Facts, now: Timestamp, threshold: Span) -> Detection {
    let held: Vec<Held> = symptoms
        .iter()
        .map(|symptom| {
            let (since, since_from) = match symptom {
                Symptom::GenerationMismatch { generation, .. } => {
                    mismatch_since(facts, *generation)
                }
                Symptom::RolloutStuck {
                    update_revision, ..
                } => last_progress(facts, Some(update_revision)),
                Symptom::ReplicasNotReady { .. } => last_progress(facts, None),
            };
            let held_seconds = since.map_or(0, |s| seconds_between(s, now));
            Held {
                symptom: symptom.clone(),
                since,
                since_from,
                held_seconds,
                due: held_seconds >= threshold.as_secs(),
            }
        })
        .collect();
    Detection {
        due: held.iter().any(|h| h.due),
        symptoms: held,
        threshold,
    }
}

fn mismatch_since(facts: &Facts, generation: i64) -> (Option<Timestamp>, String) {
    let meta = &facts.stateful_set.metadata;
    let mut candidates: Vec<(Timestamp, &str)> = Vec::new();
    if let Some(t) = last_spec_write(meta) {
        candidates.push((t, "last spec write (managedFields)"));
    }
    if let Some(seen) = facts.history.as_ref().and_then(|h| h.mismatch.as_ref())
        && seen.generation == generation
    {
        candidates.push((seen.first_seen, "first seen by stsmend"));
    }
    if generation == 1
        && let Some(t) = created(meta)
    {
        // A new object that was never observed: the mismatch began at creation.
        candidates.push((t, "creation of a never-observed StatefulSet"));
    }
    // Each candidate is a time the mismatch already held; the earliest is
    // closest to the truth.
    match candidates.into_iter().min_by_key(|(t, _)| *t) {
        Some((t, from)) => (Some(t), from.to_string()),
        None => (
            None,
            "unknown: no managedFields nor state; counting from now".into(),
        ),
    }
}

/// The latest sign of progress: a revision created, a pod created or turning
/// Ready, or a spec change. A rollout with none for the threshold is stuck.
fn last_progress(facts: &Facts, update_revision: Option<&String>) -> (Option<Timestamp>, String) {
    let mut latest: Option<(Timestamp, String)> = None;
    let mut consider = |t: Option<Timestamp>, what: String| {
        if let Some(t) = t
            && latest.as_ref().is_none_or(|(l, _)| t > *l)
        {
            latest = Some((t, what));
        }
    };
    let sts = &facts.stateful_set;
    consider(last_spec_write(&sts.metadata), "last spec write".into());
    consider(created(&sts.metadata), "StatefulSet creation".into());
    for rev in &facts.revisions {
        if update_revision.is_none_or(|u| rev.metadata.name.as_ref() == Some(u)) {
            consider(
                created(&rev.metadata),
                format!(
                    "revision {} created",
                    rev.metadata.name.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    for pod in &facts.pods {
        let on_update = update_revision.is_none_or(|u| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                == Some(u)
        });
        if !on_update {
            continue;
        }
        let pname = pod.metadata.name.as_deref().unwrap_or_default();
        consider(created(&pod.metadata), format!("pod {pname} created"));
        let ready_since = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Ready" && c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
        consider(ready_since, format!("pod {pname} became Ready"));
    }
    match latest {
        Some((t, what)) => (Some(t), format!("last progress: {what}")),
        None => (None, "unknown: no timestamps; counting from now".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(yaml: &str) -> StatefulSet {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn any_integer_in_spec_or_status_is_read_without_panic() {
        for replicas in [i32::MIN, -1, 0, 1, i32::MAX] {
            for partition in [i32::MIN, -1, 0, 1, i32::MAX] {
                for counts in [i32::MIN, -1, 0, i32::MAX] {
                    let s = sts(&format!(
                        "metadata: {{name: db, namespace: shop, generation: {replicas}}}\nspec: {{replicas: {replicas}, serviceName: db, selector: {{}}, template: {{}}, updateStrategy: {{rollingUpdate: {{partition: {partition}}}}}}}\nstatus: {{replicas: {counts}, readyReplicas: {counts}, updatedReplicas: {counts}, observedGeneration: {counts}, currentRevision: a, updateRevision: b}}\n"
                    ));
                    let _ = screen(&s);
                }
            }
        }
    }

    #[test]
    fn negative_replicas_read_as_zero() {
        let s = sts(
            "metadata: {name: db, namespace: shop, generation: 1}\nspec: {replicas: -1, serviceName: db, selector: {}, template: {}, updateStrategy: {rollingUpdate: {partition: 1}}}\nstatus: {replicas: 0, observedGeneration: 1}\n",
        );
        assert!(matches!(
            screen(&s),
            Screen::Exempt(Exemption::ScaledToZero)
        ));
    }
}
