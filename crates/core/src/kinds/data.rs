//! What each finding kind hands to policies and reports besides its summary
//! and evidence: one struct per kind. Optional fields are absent from the
//! report when unset and `()` to a policy; a key a kind does not have is an
//! error in a policy, so a misspelt one cannot read as "unset".
//!
//! The fields are declared through [`data!`] so that the list of keys a
//! kind has ([`super::Kind::fields`]) cannot drift from the struct. Keys are
//! written as JSON sorted by name (see [`super::Data::to_json`]), whatever
//! the order here.

use serde::Serialize;
use serde_json::Value;

/// The keys of a data struct, in declaration order, shared parts first.
pub trait Fields {
    fn fields(out: &mut Vec<&'static str>);
}

macro_rules! data {
    ($(
        $(#[$meta:meta])*
        $name:ident $([$base:ident])? {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default, Serialize)]
        pub struct $name {
            $(
                #[serde(flatten)]
                pub base: $base,
            )?
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Fields for $name {
            fn fields(out: &mut Vec<&'static str>) {
                $( <$base as Fields>::fields(out); )?
                $( out.push(stringify!($field)); )*
            }
        }
    )*};
}

data! {
    /// How long a symptom has held, shared by the three symptoms.
    Held {
        held_seconds: u64,
        /// Whether it held for the threshold.
        due: bool,
    }

    GenerationMismatch [Held] {
        generation: i64,
        /// `null` in the report where the status has none.
        observed_generation: Option<i64>,
    }

    RolloutStuck [Held] {
        current_revision: String,
        update_revision: String,
        replicas: i32,
        updated_replicas: i32,
        /// How many pods the rollout must update (replicas less the partition).
        target: i32,
    }

    ReplicasNotReady [Held] {
        replicas: i32,
        ready_replicas: i32,
    }

    RevisionChange {
        current_revision: String,
        update_revision: String,
        last_good_revision: i64,
        /// `[{path, old, new}]`.
        changes: Vec<Value>,
        /// `[{name, revision, current, update}]`.
        revisions: Vec<Value>,
        /// Set (true) when the template changed but no revision records it.
        #[serde(skip_serializing_if = "Option::is_none")]
        unrecorded: Option<bool>,
    }

    Partition {
        partition: i32,
    }

    MaxUnavailable {
        max_unavailable: String,
    }

    CrashLoop {
        container: String,
        restarts: i32,
        reason: String,
        revision: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// `oom`, `startup_probe` or `liveness_probe`, when the kubelet
        /// ended the container.
        #[serde(skip_serializing_if = "Option::is_none")]
        killed_by: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        memory_limit: Option<String>,
        /// The last lines of its previous log, where it was read.
        #[serde(skip_serializing_if = "Option::is_none")]
        log: Option<Vec<String>>,
    }

    ImagePull {
        container: String,
        image: String,
        reason: String,
        revision: String,
    }

    NeverReady {
        revision: String,
    }

    ContainerConfig {
        container: String,
        message: String,
        revision: String,
        /// The Secret or ConfigMap the message names, and its key.
        #[serde(skip_serializing_if = "Option::is_none")]
        object_kind: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        object: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    }

    VolumeMount {
        volume: String,
        reason: String,
        message: String,
        revision: String,
        /// The missing Secret, ConfigMap or claim the message names.
        #[serde(skip_serializing_if = "Option::is_none")]
        object_kind: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        object: Option<String>,
    }

    VolumeAttach {
        volume: String,
        reason: String,
        message: String,
        revision: String,
    }

    EvictionBlocked {
        /// The PodDisruptionBudget's name, in the StatefulSet's namespace.
        budget: String,
        /// As written; `""` where unset (the default, `IfHealthyBudget`).
        unhealthy_pod_eviction_policy: String,
        pods: Vec<String>,
        disruptions_allowed: i64,
        current_healthy: i64,
        desired_healthy: i64,
    }

    PodTerminating {
        within_grace: bool,
        grace_seconds: i64,
        remaining_seconds: i64,
        migration: bool,
    }

    LongGracePeriod {
        grace_seconds: i64,
    }

    Preempted {
        priority_class: String,
    }

    NodeNotReady {
        node: String,
    }

    /// What the scheduler said, shared by the kinds made from its reasons.
    Scheduling {
        /// The class of reason.
        reason: String,
        resources: Vec<String>,
        details: Vec<String>,
        /// `[{reason, count, text}]`.
        reasons: Vec<Value>,
        /// `[{name, max}]`.
        scalable_groups: Vec<Value>,
        /// Nodes the scheduler considered, where its message says.
        #[serde(skip_serializing_if = "Option::is_none")]
        nodes: Option<u32>,
    }

    Unschedulable [Scheduling] {}

    NodesFull [Scheduling] {
        ready_nodes: i64,
    }

    NodesCordoned [Scheduling] {
        nodes_cordoned: Vec<String>,
    }

    NodesNotReady [Scheduling] {
        nodes_not_ready: Vec<String>,
    }

    VolumeNodeConflict [Scheduling] {
        /// `[{claim, volume, node, node_exists, zone, requires, nodes_matching}]`.
        volumes: Vec<Value>,
    }

    PvcPending {
        claim: String,
        storage_class: String,
    }

    StorageClassMissing {
        claim: String,
        storage_class: String,
    }

    PvcLost {
        claim: String,
    }

    /// The FailedCreate events of one class, shared by the kinds made from
    /// them.
    Admission {
        /// The class of refusal.
        admission: String,
        count: i32,
        /// The latest event's message.
        message: String,
    }

    AdmissionDenied [Admission] {
        /// The ResourceQuota a `resource_quota` denial names.
        #[serde(skip_serializing_if = "Option::is_none")]
        quota: Option<String>,
        /// The webhook a `webhook` denial names.
        #[serde(skip_serializing_if = "Option::is_none")]
        webhook: Option<String>,
        /// The LimitRange (`namespace/name`) whose default limit an
        /// `invalid` pod's request is above.
        #[serde(skip_serializing_if = "Option::is_none")]
        limit_range: Option<String>,
    }

    WebhookUnavailable [Admission] {
        webhook: String,
        failure: String,
        /// Where the webhook configurations were listed.
        #[serde(skip_serializing_if = "Option::is_none")]
        configuration: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        configuration_kind: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        calls: Option<String>,
    }

    PriorityClassMissing [Admission] {
        priority_class: String,
    }

    ServiceAccountMissing [Admission] {
        service_account: String,
    }

    QuotaExhausted {
        quota: String,
        resource: String,
        used: String,
        hard: String,
    }

    Hpa {
        hpa: String,
        min: i32,
        max: i32,
        current: i32,
        desired: i32,
        target_cpu_percent: i32,
    }

    AutoscalerStatus {
        health: String,
        scale_up: String,
        backoff_groups: Vec<String>,
    }

    ControllerNotProcessing {
        /// `lease` or `events`.
        source: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        lease_age_seconds: Option<u64>,
    }

    SpecOwner {
        /// Who keeps the spec: `controller` (a controlling owner
        /// reference), `flux`, `argocd`, `helm`, or `none` (no owner
        /// recognised; the template writer is still named).
        managed_by: String,
        /// Whether the owner puts its template back by itself (a
        /// controller or a GitOps sync): a rollback would be reverted.
        reconciles: bool,
        /// `Kind namespace/name` of the owning object, where it is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner_kind: Option<String>,
        /// The owner's API group (`""` for the core group).
        #[serde(skip_serializing_if = "Option::is_none")]
        owner_api_group: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner_namespace: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner_name: Option<String>,
        /// The Helm release and chart its labels and annotations name.
        #[serde(skip_serializing_if = "Option::is_none")]
        helm_release: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        helm_release_namespace: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        helm_chart: Option<String>,
        /// The field manager that last wrote `spec.template`, and when
        /// (from `managedFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        template_writer: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        template_written_at: Option<String>,
        /// `Apply` (server-side apply) or `Update`.
        #[serde(skip_serializing_if = "Option::is_none")]
        template_write_operation: Option<String>,
    }

    TemplateReapplied {
        /// The field manager that put the template back.
        writer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        written_at: Option<String>,
        /// The revision the agent rolled back from, the update revision again.
        revision: String,
        /// When the agent rolled back from it, and to which revision.
        rolled_back_at: String,
        rolled_back_to: String,
    }

    UpdateForbidden {
        /// The spec fields the change alters that the API forbids updating.
        fields: Vec<String>,
        /// The API server's words (its own, from a server-side dry run, or
        /// the wording of its validation).
        message: String,
    }
}
