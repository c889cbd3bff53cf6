//! The fixed vocabulary a policy plans with. Each action is a typed value
//! the acting layer can execute without reading the policy again, and each
//! carries the policy's reason for it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::Span;
pub use crate::gitops::SyncRef;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Do nothing now; look again after `recheck_after`.
    Wait {
        #[serde(rename = "recheckAfter")]
        recheck_after: Span,
        why: String,
    },
    /// Add `delta` nodes to a configured node group (its `/scale`
    /// subresource), never past the group's configured `max`.
    ScaleNodes {
        group: String,
        delta: i32,
        why: String,
    },
    /// Patch the StatefulSet. The patch is relative to the object, like
    /// `kubectl patch statefulset`, and touches `spec` only.
    PatchSpec {
        #[serde(rename = "patchType")]
        patch_type: PatchType,
        patch: Value,
        why: String,
    },
    /// Write the pod template of ControllerRevision `name` (number
    /// `revision`) back to the StatefulSet: `kubectl rollout undo`. With
    /// `evict`, the forced rollback of OrderedReady as one remediation:
    /// revert, wait (bounded) until the controller has observed the revert,
    /// then evict these pods, stuck not Ready on the abandoned revision.
    /// With `suspend`, the GitOps object that applies the StatefulSet has
    /// its sync suspended first (opt-in, `gitops.suspendSync`), so the
    /// rollback is not put back at its next sync.
    Rollback {
        revision: i64,
        name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        evict: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        suspend: Option<SyncRef>,
        why: String,
    },
    /// Delete these pods so the controller re-creates them from the current
    /// template. Unless `any_pod`, each was not Ready and not on the update
    /// revision when the plan was made, and the acting layer checks it again.
    DeletePods {
        pods: Vec<String>,
        #[serde(rename = "anyPod", default, skip_serializing_if = "is_false")]
        any_pod: bool,
        why: String,
    },
    /// Hand over to a person: no mutation, an Event and a report entry.
    Escalate { why: String },
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchType {
    /// RFC 7386 JSON merge patch (an object).
    Merge,
    /// RFC 6902 JSON patch (an array of operations).
    Json,
}

impl Action {
    /// The name policies and reports use: `rollback`, `delete_pods`...
    pub fn name(&self) -> &'static str {
        match self {
            Action::Wait { .. } => "wait",
            Action::ScaleNodes { .. } => "scale_nodes",
            Action::PatchSpec { .. } => "patch_spec",
            Action::Rollback { .. } => "rollback",
            Action::DeletePods { .. } => "delete_pods",
            Action::Escalate { .. } => "escalate",
        }
    }

    pub fn why(&self) -> &str {
        match self {
            Action::Wait { why, .. }
            | Action::ScaleNodes { why, .. }
            | Action::PatchSpec { why, .. }
            | Action::Rollback { why, .. }
            | Action::DeletePods { why, .. }
            | Action::Escalate { why } => why,
        }
    }

    /// Whether executing it writes to the cluster (and so needs the guards).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Action::Wait { .. } | Action::Escalate { .. })
    }

    /// The patch as a typed RFC 6902 patch, for `patch_type: json`.
    pub fn json_patch(&self) -> Option<json_patch::Patch> {
        match self {
            Action::PatchSpec {
                patch_type: PatchType::Json,
                patch,
                ..
            } => serde_json::from_value(patch.clone()).ok(),
            _ => None,
        }
    }

    /// One line for a terminal or a Markdown list: what, then why.
    pub fn describe(&self) -> String {
        let what = match self {
            Action::Wait { recheck_after, .. } => format!("wait, recheck after {recheck_after}"),
            Action::ScaleNodes { group, delta, .. } => {
                format!("scale node group {group} by {delta:+}")
            }
            Action::PatchSpec {
                patch_type, patch, ..
            } => format!(
                "patch the spec ({} patch {})",
                match patch_type {
                    PatchType::Merge => "merge",
                    PatchType::Json => "JSON",
                },
                serde_json::to_string(patch).unwrap_or_default()
            ),
            Action::Rollback {
                revision,
                name,
                evict,
                suspend,
                ..
            } => {
                let first = suspend
                    .as_ref()
                    .map(|s| format!("suspend the sync of {}, then ", s.describe()))
                    .unwrap_or_default();
                if evict.is_empty() {
                    format!("{first}roll back to revision {revision} ({name})")
                } else {
                    format!(
                        "{first}roll back to revision {revision} ({name}), wait until the controller has observed it, then evict {} (a forced rollback)",
                        evict.join(", ")
                    )
                }
            }
            Action::DeletePods { pods, any_pod, .. } => format!(
                "delete pod{} {}{}",
                if pods.len() == 1 { "" } else { "s" },
                pods.join(", "),
                if *any_pod {
                    " (the policy allows any pod)"
                } else {
                    ""
                }
            ),
            Action::Escalate { .. } => "escalate to a person".to_string(),
        };
        format!("{what}: {}", self.why())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_the_action_name_as_tag() {
        let a = Action::Rollback {
            revision: 2,
            name: "db-6d9f".into(),
            evict: Vec::new(),
            suspend: None,
            why: "crash loop".into(),
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"action": "rollback", "revision": 2, "name": "db-6d9f", "why": "crash loop"})
        );
        let w = Action::Wait {
            recheck_after: Span::minutes(5),
            why: "migration".into(),
        };
        assert_eq!(
            serde_json::to_value(&w).unwrap()["recheckAfter"],
            serde_json::json!("5m")
        );
        let back: Action = serde_json::from_value(serde_json::to_value(&w).unwrap()).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn only_writes_are_mutating() {
        assert!(!Action::Escalate { why: "x".into() }.is_mutating());
        assert!(
            Action::DeletePods {
                pods: vec!["db-2".into()],
                any_pod: false,
                why: "x".into()
            }
            .is_mutating()
        );
    }

    #[test]
    fn a_json_patch_reads_as_typed_operations() {
        let a = Action::PatchSpec {
            patch_type: PatchType::Json,
            patch: serde_json::json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]),
            why: "x".into(),
        };
        assert_eq!(a.json_patch().unwrap().0.len(), 1);
    }
}
