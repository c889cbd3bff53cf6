//! Diagnosis: the runbooks' Diagnosis sections made executable. Each check is
//! a pure function of the facts that adds findings, each with its evidence.

mod admission;
mod cluster;
mod pods;
mod rollout;
mod scheduling;
mod storage;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::detect::Detection;
use crate::duration::Span;
use crate::facts::Facts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    GenerationMismatch,
    RolloutStuck,
    ReplicasNotReady,
    RevisionChange,
    Partition,
    MaxUnavailable,
    OrderedReadyBlocked,
    CrashLoop,
    ImagePull,
    NeverReady,
    PodTerminating,
    LongGracePeriod,
    Evicted,
    Preempted,
    NodeNotReady,
    Unschedulable,
    PvcPending,
    StorageClassMissing,
    PvcLost,
    AdmissionDenied,
    QuotaExhausted,
    Hpa,
    AutoscalerStatus,
    ControllerNotProcessing,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GenerationMismatch => "generation_mismatch",
            Kind::RolloutStuck => "rollout_stuck",
            Kind::ReplicasNotReady => "replicas_not_ready",
            Kind::RevisionChange => "revision_change",
            Kind::Partition => "partition",
            Kind::MaxUnavailable => "max_unavailable",
            Kind::OrderedReadyBlocked => "ordered_ready_blocked",
            Kind::CrashLoop => "crash_loop",
            Kind::ImagePull => "image_pull",
            Kind::NeverReady => "never_ready",
            Kind::PodTerminating => "pod_terminating",
            Kind::LongGracePeriod => "long_grace_period",
            Kind::Evicted => "evicted",
            Kind::Preempted => "preempted",
            Kind::NodeNotReady => "node_not_ready",
            Kind::Unschedulable => "unschedulable",
            Kind::PvcPending => "pvc_pending",
            Kind::StorageClassMissing => "storage_class_missing",
            Kind::PvcLost => "pvc_lost",
            Kind::AdmissionDenied => "admission_denied",
            Kind::QuotaExhausted => "quota_exhausted",
            Kind::Hpa => "hpa",
            Kind::AutoscalerStatus => "autoscaler_status",
            Kind::ControllerNotProcessing => "controller_not_processing",
        }
    }
}

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
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Value>,
}

impl Finding {
    pub fn new(kind: Kind, confidence: Confidence, summary: impl Into<String>) -> Self {
        Self {
            kind,
            summary: summary.into(),
            confidence,
            evidence: Vec::new(),
            pods: Vec::new(),
            data: BTreeMap::new(),
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
    pub fn data(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), value.into());
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
    scheduling::unschedulable(input, &mut findings);
    scheduling::autoscaler(input, &mut findings);
    storage::claims(input, &mut findings);
    admission::denials(input, &mut findings);
    admission::quotas(input, &mut findings);
    cluster::controller(input, &mut findings);
    cluster::hpa(input, &mut findings);
    rollout::ordered_ready(input, &mut findings);
    let symptom = |k: Kind| {
        matches!(
            k,
            Kind::GenerationMismatch | Kind::RolloutStuck | Kind::ReplicasNotReady
        )
    };
    findings.sort_by(|a, b| {
        symptom(b.kind)
            .cmp(&symptom(a.kind))
            .then(b.confidence.cmp(&a.confidence))
    });
    findings
}

pub(crate) fn pod_ref(ns: &str, name: &str) -> String {
    format!("Pod {ns}/{name}")
}
