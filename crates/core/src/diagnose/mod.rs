//! Diagnosis: the runbooks' Diagnosis sections made executable. Each check is
//! a pure function of the facts that adds findings, each with its evidence.

mod admission;
pub mod blame;
pub(crate) mod budget;
pub mod change;
mod cluster;
mod mounts;
pub mod owner;
pub mod pods;
pub mod rollout;
mod scheduling;
mod storage;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use serde::Serialize;

use crate::detect::Detection;
use crate::duration::Span;
use crate::facts::Facts;

pub use crate::kinds::{Data, Kind, data};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// Where a finding was read: an object, and the field or event message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// `Kind namespace/name`, or `Kind name` for cluster-scoped objects.
    pub object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Evidence {
    pub fn field(
        object: impl Into<String>,
        field: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Self {
            object: object.into(),
            field: Some(field.into()),
            message: Some(value.into()),
        }
    }
    pub fn event(object: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            field: None,
            message: Some(message.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: Kind,
    pub summary: String,
    pub confidence: Confidence,
    pub evidence: Vec<Evidence>,
    /// Pods the finding is about.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
    /// Kind-specific values for policies (a resource name, an exit code...).
    #[serde(skip_serializing_if = "Data::is_none")]
    pub data: Data,
    /// Whether the update revision's template change explains this
    /// finding; set on failures only (see [`change`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<change::Change>,
}

impl Finding {
    pub fn new(kind: Kind, confidence: Confidence, summary: impl Into<String>) -> Self {
        Self {
            kind,
            summary: summary.into(),
            confidence,
            evidence: Vec::new(),
            pods: Vec::new(),
            data: Data::None,
            change: None,
        }
    }
    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence.push(evidence);
        self
    }
    pub fn pod(mut self, name: impl Into<String>) -> Self {
        self.pods.push(name.into());
        self
    }
    /// Sets the kind's data: a struct of [`data`] named after the kind.
    pub fn data(mut self, data: impl Into<Data>) -> Self {
        let data = data.into();
        debug_assert_eq!(data.kind(), Some(self.kind), "data of another kind");
        self.data = data;
        self
    }
}

/// What every check may need besides the facts.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub facts: &'a Facts,
    pub detection: &'a Detection,
    pub now: Timestamp,
    pub threshold: Span,
    pub migration_annotations: &'a [String],
}

impl Input<'_> {
    pub fn sts_ref(&self) -> String {
        let m = &self.facts.stateful_set.metadata;
        format!(
            "StatefulSet {}/{}",
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default()
        )
    }
    pub fn namespace(&self) -> &str {
        self.facts
            .stateful_set
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
    }
    /// When the evidence for this rollout can begin: the update revision's
    /// creation, or the last write to the spec where that is later (a
    /// template the controller has not recorded, a scale-up, the agent's own
    /// rollback). Earlier events are about what came before.
    pub fn evidence_since(&self) -> Option<Timestamp> {
        let sts = &self.facts.stateful_set;
        let update = sts
            .status
            .as_ref()
            .and_then(|s| s.update_revision.as_deref());
        let revision = self
            .facts
            .revisions
            .iter()
            .find(|r| update.is_some() && r.metadata.name.as_deref() == update)
            .and_then(|r| crate::time::created(&r.metadata));
        let spec = crate::time::last_spec_write(&sts.metadata);
        revision.into_iter().chain(spec).max()
    }

    /// The events that are evidence about this rollout: from
    /// [`Self::evidence_since`] on, and about a pod only where it is the
    /// pod that exists now (same UID) on the update revision. A pod of the
    /// current revision, or an earlier incarnation of a replaced pod, says
    /// nothing about the update revision.
    pub fn events(&self) -> impl Iterator<Item = &'_ Event> {
        let since = self.evidence_since();
        let update = self
            .facts
            .stateful_set
            .status
            .as_ref()
            .and_then(|s| s.update_revision.as_deref());
        self.facts.events.iter().filter(move |e| {
            if let Some(since) = since
                && crate::time::event_time(e).is_some_and(|t| t < since)
            {
                return false;
            }
            let o = &e.involved_object;
            if o.kind.as_deref() != Some("Pod") {
                return true;
            }
            let Some(pod) = self
                .facts
                .pods
                .iter()
                .find(|p| p.metadata.name.is_some() && p.metadata.name == o.name)
            else {
                // Gone: only its own events remain, about a pod that no
                // longer runs.
                return false;
            };
            if let (Some(a), Some(b)) = (o.uid.as_deref(), pod.metadata.uid.as_deref())
                && a != b
            {
                return false;
            }
            let revision = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::facts::REVISION_LABEL))
                .map(String::as_str);
            update.is_none() || revision.is_none() || revision == update
        })
    }

    pub fn has_mismatch(&self) -> bool {
        self.detection
            .symptoms
            .iter()
            .any(|h| matches!(h.symptom, crate::detect::Symptom::GenerationMismatch { .. }))
    }
}

/// Runs every check. Findings come out in a stable order: the symptoms first,
/// then causes by confidence, so reports and policy inputs are reproducible.
pub fn diagnose(input: &Input<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    rollout::symptoms(input, &mut findings);
    rollout::history(input, &mut findings);
    rollout::strategy(input, &mut findings);
    pods::containers(input, &mut findings);
    pods::termination(input, &mut findings);
    pods::disruption(input, &mut findings);
    mounts::volumes(input, &mut findings);
    scheduling::unschedulable(input, &mut findings);
    scheduling::autoscaler(input, &mut findings);
    storage::claims(input, &mut findings);
    admission::denials(input, &mut findings);
    admission::quotas(input, &mut findings);
    cluster::controller(input, &mut findings);
    cluster::hpa(input, &mut findings);
    rollout::ordered_ready(input, &mut findings);
    budget::eviction(input, &mut findings);
    owner::reapplied(input, &mut findings);
    owner::spec_owner(input, &mut findings);
    findings.sort_by(|a, b| {
        b.kind
            .is_symptom()
            .cmp(&a.kind.is_symptom())
            .then(b.confidence.cmp(&a.confidence))
    });
    change::attribute(input, &mut findings);
    findings
}

pub(crate) fn pod_ref(ns: &str, name: &str) -> String {
    format!("Pod {ns}/{name}")
}

#[cfg(test)]
mod tests {
    //! Evidence in time, on the shipped policy cases' objects.

    use std::path::Path;

    use crate::inventory::Inventory;
    use crate::pipeline::{self, Options};

    fn objects(case: &str) -> Inventory {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("policies/tests/ladder")
            .join(case)
            .join("objects.yaml");
        crate::source::files::load(&[path]).expect("case objects")
    }

    fn kinds(inv: &Inventory, now: &str) -> Vec<&'static str> {
        let opts = Options::new(now.parse().unwrap(), crate::duration::Span::minutes(10));
        let outcome = pipeline::evaluate(inv, None, &opts);
        outcome
            .failing
            .iter()
            .flat_map(|a| a.findings.iter().map(|f| f.kind.as_str()))
            .collect()
    }

    fn at(t: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.parse().unwrap())
    }

    #[test]
    fn events_from_before_the_rollout_are_not_its_evidence() {
        let mut inv = objects("e-rollback-limitrange-denial");
        assert!(kinds(&inv, "2026-11-22T10:00:00Z").contains(&"admission_denied"));
        // The same denial, last seen before the template was written (at
        // 09:35): it was about an earlier spec.
        for e in &mut inv.events {
            e.first_timestamp = Some(at("2026-11-22T09:00:00Z"));
            e.last_timestamp = Some(at("2026-11-22T09:20:00Z"));
        }
        let k = kinds(&inv, "2026-11-22T10:00:00Z");
        assert!(k.contains(&"generation_mismatch"), "{k:?}");
        assert!(!k.contains(&"admission_denied"), "{k:?}");
    }

    #[test]
    fn events_of_an_earlier_pod_or_another_revision_are_not_its_evidence() {
        let mut inv = objects("e-rollback-unsatisfiable-affinity");
        // Only the event says why db-2 waits.
        for p in &mut inv.pods {
            for c in p
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .into_iter()
                .flatten()
            {
                c.message = None;
            }
        }
        let uid = inv
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("db-2"))
            .and_then(|p| p.metadata.uid.clone());
        for e in &mut inv.events {
            e.involved_object.uid = uid.clone();
        }
        assert!(kinds(&inv, "2026-11-22T10:00:00Z").contains(&"unschedulable"));
        // An earlier incarnation of db-2 (another UID).
        let mut earlier = inv.clone();
        for e in &mut earlier.events {
            e.involved_object.uid = Some("an-earlier-db-2".into());
        }
        let k = kinds(&earlier, "2026-11-22T10:00:00Z");
        assert!(k.contains(&"rollout_stuck"), "{k:?}");
        assert!(!k.contains(&"unschedulable"), "{k:?}");
        // db-2 on the current revision: not the update revision's evidence.
        let mut current = inv.clone();
        for p in &mut current.pods {
            if p.metadata.name.as_deref() == Some("db-2") {
                p.metadata
                    .labels
                    .get_or_insert_default()
                    .insert(crate::facts::REVISION_LABEL.into(), "db-5d8f7c9b6d".into());
            }
        }
        let k = kinds(&current, "2026-11-22T10:00:00Z");
        assert!(k.contains(&"rollout_stuck"), "{k:?}");
        assert!(!k.contains(&"unschedulable"), "{k:?}");
    }

    #[test]
    fn no_controller_events_is_no_evidence_once_they_could_have_expired() {
        let mut inv = objects("b-stand-aside-controller-down");
        // No lease to read: only the events can say.
        inv.leases.clear();
        inv.events.clear();
        // The spec was written at 09:30: within the event TTL, silence means
        // the controller did nothing.
        assert!(kinds(&inv, "2026-11-22T10:00:00Z").contains(&"controller_not_processing"));
        // Two hours later its events would have expired either way.
        let later = kinds(&inv, "2026-11-22T11:45:00Z");
        assert!(later.contains(&"generation_mismatch"), "{later:?}");
        assert!(!later.contains(&"controller_not_processing"), "{later:?}");
    }
}
