//! The claims a planned action would delete: a StatefulSet whose
//! `persistentVolumeClaimRetentionPolicy.whenScaled` is `Delete` (GA in
//! 1.32) loses the claims of every ordinal a scale-down removes. The agent
//! never makes such a write (the guards hold it, `deletes_claims`); this
//! names what it would delete.

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::Value;

use crate::policy::{Action, PatchType};

/// The replicas a spec patch sets, if it sets them.
fn replicas_set(patch_type: &PatchType, patch: &Value) -> Option<i64> {
    match patch_type {
        PatchType::Merge => patch.pointer("/spec/replicas")?.as_i64(),
        PatchType::Json => patch.as_array()?.iter().rev().find_map(|op| {
            if op.get("path")?.as_str()? != "/spec/replicas" {
                return None;
            }
            match op.get("op")?.as_str()? {
                "replace" | "add" => op.get("value")?.as_i64(),
                // Without replicas the API server defaults them to 1.
                "remove" => Some(1),
                _ => None,
            }
        }),
    }
}

/// The claims `actions` would have the controller delete, by name.
pub fn deleted_by(sts: &StatefulSet, actions: &[Action]) -> Vec<String> {
    let spec = &sts.spec;
    let deletes = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_scaled.as_deref())
        == Some("Delete");
    if !deletes {
        return Vec::new();
    }
    let now = i64::from(spec.replicas.unwrap_or(1));
    let Some(to) = actions
        .iter()
        .filter_map(|a| match a {
            Action::PatchSpec {
                patch_type, patch, ..
            } => replicas_set(patch_type, patch),
            _ => None,
        })
        .next_back()
        .filter(|to| *to < now)
    else {
        return Vec::new();
    };
    let start = i64::from(spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0));
    let name = sts.metadata.name.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for ordinal in (start + to.max(0))..(start + now) {
        for t in spec.volume_claim_templates.iter().flatten() {
            let claim = t.metadata.name.as_deref().unwrap_or_default();
            out.push(format!("{claim}-{name}-{ordinal}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(policy: &str) -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {
            "replicas": 3, "ordinals": {"start": 1}, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}}, "template": {},
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": policy, "whenDeleted": "Retain"},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}))
        .unwrap()
    }

    fn patch(patch_type: PatchType, patch: Value) -> Action {
        Action::PatchSpec {
            patch_type,
            patch,
            why: "scale down".into(),
        }
    }

    #[test]
    fn a_scale_down_under_delete_names_the_claims_of_the_removed_ordinals() {
        let merge = patch(PatchType::Merge, json!({"spec": {"replicas": 1}}));
        assert_eq!(
            deleted_by(&sts("Delete"), std::slice::from_ref(&merge)),
            ["data-db-2", "data-db-3"]
        );
        let json_patch = patch(
            PatchType::Json,
            json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]),
        );
        assert_eq!(deleted_by(&sts("Delete"), &[json_patch]), ["data-db-3"]);
        let removed = patch(
            PatchType::Json,
            json!([{"op": "remove", "path": "/spec/replicas"}]),
        );
        assert_eq!(
            deleted_by(&sts("Delete"), &[removed]),
            ["data-db-2", "data-db-3"],
            "no replicas is one"
        );
        assert!(
            deleted_by(&sts("Retain"), &[merge]).is_empty(),
            "Retain keeps them"
        );
        let up = patch(PatchType::Merge, json!({"spec": {"replicas": 5}}));
        assert!(
            deleted_by(&sts("Delete"), &[up]).is_empty(),
            "a scale-up deletes nothing"
        );
    }
}
