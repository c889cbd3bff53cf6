//! Every finding kind, each named once: the table below makes the [`Kind`]
//! enum, the name reports and policies use, the list of all kinds, and the
//! [`Data`] a finding of the kind carries (its struct in [`data`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

pub mod data;

use data::Fields;

macro_rules! kinds {
    ($( $(#[$doc:meta])* $kind:ident = $name:literal $(($data:ident))? ),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $( $(#[$doc])* $kind, )*
        }

        impl Kind {
            /// In the order diagnosis documents them.
            pub const ALL: &[Kind] = &[$(Kind::$kind),*];

            /// The name reports and policies use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Kind::$kind => $name, )*
                }
            }

            /// The keys of `data` a finding of this kind has, set or not.
            pub fn fields(self) -> Vec<&'static str> {
                let mut out = Vec::new();
                match self {
                    $( Kind::$kind => { $( <data::$data as Fields>::fields(&mut out); )? } )*
                }
                out
            }
        }

        /// A finding's kind-specific values for policies (a resource name,
        /// an exit code...): one struct per kind that has any.
        #[derive(Debug, Clone, PartialEq, Default)]
        pub enum Data {
            /// Kinds without data, and a finding not yet given its data.
            #[default]
            None,
            $($( $kind(data::$data), )?)*
        }

        impl Data {
            /// The kind whose data this is; `None` for no data.
            pub fn kind(&self) -> Option<Kind> {
                match self {
                    Data::None => None,
                    $($( Data::$kind(data::$data { .. }) => Some(Kind::$kind), )?)*
                }
            }

            fn to_value(&self) -> Value {
                match self {
                    Data::None => Value::Null,
                    $($( Data::$kind(d) => serde_json::to_value::<&data::$data>(d)
                        .unwrap_or(Value::Null), )?)*
                }
            }
        }

        $($(
            impl From<data::$data> for Data {
                fn from(d: data::$data) -> Self {
                    Data::$kind(d)
                }
            }
        )?)*
    };
}

kinds! {
    GenerationMismatch = "generation_mismatch" (GenerationMismatch),
    RolloutStuck = "rollout_stuck" (RolloutStuck),
    ReplicasNotReady = "replicas_not_ready" (ReplicasNotReady),
    RevisionChange = "revision_change" (RevisionChange),
    Partition = "partition" (Partition),
    MaxUnavailable = "max_unavailable" (MaxUnavailable),
    OrderedReadyBlocked = "ordered_ready_blocked",
    /// A PodDisruptionBudget that would refuse the eviction of a stuck pod.
    EvictionBlocked = "eviction_blocked" (EvictionBlocked),
    CrashLoop = "crash_loop" (CrashLoop),
    ImagePull = "image_pull" (ImagePull),
    NeverReady = "never_ready" (NeverReady),
    ContainerConfig = "container_config" (ContainerConfig),
    VolumeMount = "volume_mount" (VolumeMount),
    VolumeAttach = "volume_attach" (VolumeAttach),
    PodTerminating = "pod_terminating" (PodTerminating),
    LongGracePeriod = "long_grace_period" (LongGracePeriod),
    Evicted = "evicted",
    Preempted = "preempted" (Preempted),
    NodeNotReady = "node_not_ready" (NodeNotReady),
    Unschedulable = "unschedulable" (Unschedulable),
    PvcPending = "pvc_pending" (PvcPending),
    StorageClassMissing = "storage_class_missing" (StorageClassMissing),
    PvcLost = "pvc_lost" (PvcLost),
    AdmissionDenied = "admission_denied" (AdmissionDenied),
    WebhookUnavailable = "webhook_unavailable" (WebhookUnavailable),
    PriorityClassMissing = "priority_class_missing" (PriorityClassMissing),
    ServiceAccountMissing = "service_account_missing" (ServiceAccountMissing),
    QuotaExhausted = "quota_exhausted" (QuotaExhausted),
    NodesCordoned = "nodes_cordoned" (NodesCordoned),
    NodesNotReady = "nodes_not_ready" (NodesNotReady),
    NodesFull = "nodes_full" (NodesFull),
    VolumeNodeConflict = "volume_node_conflict" (VolumeNodeConflict),
    Hpa = "hpa" (Hpa),
    AutoscalerStatus = "autoscaler_status" (AutoscalerStatus),
    ControllerNotProcessing = "controller_not_processing" (ControllerNotProcessing),
    SpecOwner = "spec_owner" (SpecOwner),
    TemplateReapplied = "template_reapplied" (TemplateReapplied),
    /// Only `stsmend preflight` finds it: an update the API server refuses
    /// never lands, so no run sees one.
    UpdateForbidden = "update_forbidden" (UpdateForbidden),
}

impl Kind {
    /// The kind a policy names, or `None` for a name no kind has.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// The symptoms the alerts fire on, as opposed to their causes.
    pub fn is_symptom(self) -> bool {
        matches!(
            self,
            Kind::GenerationMismatch | Kind::RolloutStuck | Kind::ReplicasNotReady
        )
    }

    /// The API server refused to create the pods (or to let them through
    /// admission): an explanation of a mismatch that needs no quota on
    /// revisions and no stopped controller.
    pub fn refuses_pods(self) -> bool {
        matches!(
            self,
            Kind::AdmissionDenied
                | Kind::WebhookUnavailable
                | Kind::PriorityClassMissing
                | Kind::ServiceAccountMissing
        )
    }

    /// A pod of a revision failing by itself (it crash loops, its image
    /// does not pull, it is never Ready, its containers cannot be made or
    /// its volumes mounted): what a revision is judged by, and what keeps
    /// OrderedReady waiting.
    pub fn is_pod_failure(self) -> bool {
        matches!(
            self,
            Kind::CrashLoop
                | Kind::ImagePull
                | Kind::NeverReady
                | Kind::ContainerConfig
                | Kind::VolumeMount
        )
    }

    /// Context about the StatefulSet rather than a cause of its failure
    /// (who owns its spec): never listed among the causes.
    pub fn is_context(self) -> bool {
        // A budget that would refuse an eviction bears on the remedy, not
        // on why the pods fail.
        matches!(self, Kind::SpecOwner | Kind::EvictionBlocked)
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Data {
    /// The data as JSON keys and values, sorted by key as the report has
    /// always written them; unset optional keys are absent.
    pub fn to_json(&self) -> BTreeMap<String, Value> {
        match self.to_value() {
            Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Data::None)
    }

    /// The revision of the pod a pod failure is about (`""` when the pod
    /// carries none).
    pub fn revision(&self) -> Option<&str> {
        match self {
            Data::CrashLoop(d) => Some(&d.revision),
            Data::ImagePull(d) => Some(&d.revision),
            Data::NeverReady(d) => Some(&d.revision),
            Data::ContainerConfig(d) => Some(&d.revision),
            Data::VolumeMount(d) => Some(&d.revision),
            Data::VolumeAttach(d) => Some(&d.revision),
            _ => None,
        }
    }

    /// What the scheduler said, for the kinds made from its reasons.
    pub fn scheduling(&self) -> Option<&data::Scheduling> {
        match self {
            Data::Unschedulable(d) => Some(&d.base),
            Data::NodesFull(d) => Some(&d.base),
            Data::NodesCordoned(d) => Some(&d.base),
            Data::NodesNotReady(d) => Some(&d.base),
            Data::VolumeNodeConflict(d) => Some(&d.base),
            _ => None,
        }
    }

    pub fn scheduling_mut(&mut self) -> Option<&mut data::Scheduling> {
        match self {
            Data::Unschedulable(d) => Some(&mut d.base),
            Data::NodesFull(d) => Some(&mut d.base),
            Data::NodesCordoned(d) => Some(&mut d.base),
            Data::NodesNotReady(d) => Some(&mut d.base),
            Data::VolumeNodeConflict(d) => Some(&mut d.base),
            _ => None,
        }
    }

    /// How the API server refused to create pods, for the kinds made from
    /// FailedCreate events.
    pub fn admission(&self) -> Option<&data::Admission> {
        match self {
            Data::AdmissionDenied(d) => Some(&d.base),
            Data::WebhookUnavailable(d) => Some(&d.base),
            Data::PriorityClassMissing(d) => Some(&d.base),
            Data::ServiceAccountMissing(d) => Some(&d.base),
            _ => None,
        }
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for k in Kind::ALL {
            let name = k.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(Kind::from_name(name), Some(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), Value::String(name.into()));
        }
    }

    #[test]
    fn fields_are_unique_per_kind() {
        for k in Kind::ALL {
            let fields = k.fields();
            let unique: std::collections::BTreeSet<_> = fields.iter().collect();
            assert_eq!(unique.len(), fields.len(), "{}: {fields:?}", k.as_str());
        }
    }
}
