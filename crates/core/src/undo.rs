//! Undo records: before each write the agent saves what it is about to
//! change, next to its state (ConfigMap `stsmend-undo`), so `stsmend undo`
//! can put it back. Pure: building records and the restoring patch.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{NodeGroup, ScaleTarget};
use crate::error::{Error, Result};
use crate::policy::{Action, PatchType};

pub const CONFIG_MAP: &str = "stsmend-undo";

/// What the records may take of the ConfigMap's 1 MiB, the rest left to
/// its metadata.
pub const MAX_BYTES: usize = 900 * 1024;

/// The spec fields an action may change and an undo restores. The others
/// (selector, serviceName, volumeClaimTemplates...) are immutable.
const SPEC_FIELDS: [&str; 5] = [
    "template",
    "replicas",
    "updateStrategy",
    "podManagementPolicy",
    "minReadySeconds",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub at: Timestamp,
    /// The action and its why, as the report shows it.
    pub action: String,
    pub uid: Option<String>,
    /// The StatefulSet's generation after the agent's write; an undo is
    /// refused when the spec changed again since (a person or CD moved on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_after: Option<i64>,
    pub prior: Prior,
    /// The steps of a remediation of more than one write (a forced
    /// rollback: revert, observe, evict), as they went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// The spec fields the action wrote: the only ones an undo restores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The GitOps sync the action suspended before rolling back, which an
    /// undo resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::gitops::Suspended>,
}

impl Record {
    /// The action with its steps, for `stsmend undo`'s messages.
    pub fn what(&self) -> String {
        if self.steps.is_empty() {
            self.action.clone()
        } else {
            format!("{} (steps: {})", self.action, self.steps.join("; "))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Prior {
    /// The StatefulSet's mutable spec fields before the write (absent ones
    /// are `null`).
    Spec { spec: BTreeMap<String, Value> },
    /// A node group's replicas before it was scaled.
    NodeGroup {
        group: String,
        target: ScaleTarget,
        replicas: i32,
        /// What the agent set, so an undo does not undo someone else's scale.
        replicas_after: i32,
    },
}

/// How far ahead of the clock reading it a record may be dated: the skew
/// between the clocks of two nodes the agent ran on. Later is forged.
pub const SKEW: SignedDuration = SignedDuration::from_secs(300);

/// The spec fields `action` writes, of those an undo may restore: a
/// rollback writes the template; a spec patch the top-level fields its
/// patch names.
pub fn fields_of(action: &Action) -> Vec<String> {
    let mut fields: Vec<String> = match action {
        Action::Rollback { .. } => vec!["template".into()],
        Action::PatchSpec {
            patch_type: PatchType::Merge,
            patch,
            ..
        } => patch
            .get("spec")
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        Action::PatchSpec {
            patch_type: PatchType::Json,
            patch,
            ..
        } => patch
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|op| op.get("path").and_then(Value::as_str))
            .filter_map(|p| p.strip_prefix("/spec/"))
            .map(|p| p.split('/').next().unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    };
    fields.retain(|f| SPEC_FIELDS.contains(&f.as_str()));
    fields.sort();
    fields.dedup();
    fields
}

/// Whether a record dated `at` can have been written by a run before
/// `now`.
pub fn dated_sanely(at: Timestamp, now: Timestamp) -> Result<(), String> {
    if at > now.checked_add(SKEW).unwrap_or(now) {
        Err(format!(
            "the record is dated {at}, in the future of {now}: not written by the agent"
        ))
    } else {
        Ok(())
    }
}

/// What an undo of a spec record may write, checked against the
/// StatefulSet as it is and the templates of its ControllerRevisions:
/// the record must name this very object (uid) at the generation the
/// agent's write left, hold only restorable fields, restore only the
/// fields its action wrote, and a template only if it is one of the set's
/// own revisions (a forged privileged template is none of them).
pub struct SpecRestore {
    /// JSON patch operations, conditional on the resourceVersion when
    /// written.
    pub ops: Value,
    /// The fields restored, as `spec.FIELD`.
    pub fields: Vec<String>,
}

/// The mutable spec of `sts`, as an undo record keeps it.
pub fn prior_spec(sts: &StatefulSet) -> Result<Prior> {
    let spec = serde_json::to_value(&sts.spec).map_err(|e| Error::encode("StatefulSet spec", e))?;
    Ok(Prior::Spec {
        spec: SPEC_FIELDS
            .iter()
            .map(|f| (f.to_string(), spec.get(*f).cloned().unwrap_or(Value::Null)))
            .collect(),
    })
}

/// The JSON patch that restores what `record`'s action wrote on `current`
/// (the writer makes it conditional on its resourceVersion), given the
/// templates of `current`'s ControllerRevisions; or why it must not be
/// applied.
pub fn restore_patch(
    record: &Record,
    current: &StatefulSet,
    revision_templates: &[Value],
    now: Timestamp,
) -> Result<SpecRestore, String> {
    let Prior::Spec { spec } = &record.prior else {
        return Err("the record is not about the StatefulSet's spec".into());
    };
    dated_sanely(record.at, now)?;
    match (&record.uid, &current.metadata.uid) {
        (None, _) => {
            return Err("the record names no uid: it cannot be matched to this StatefulSet".into());
        }
        (Some(a), Some(b)) if a == b => {}
        _ => return Err("the StatefulSet was deleted and re-created since".into()),
    }
    let Some(after) = record.generation_after else {
        return Err(
            "the record has no generation after the action: the write it records did not land"
                .into(),
        );
    };
    if current.metadata.generation != Some(after) {
        return Err(format!(
            "its spec changed since the action (generation {} now, {after} after the action)",
            current.metadata.generation.unwrap_or(0)
        ));
    }
    if let Some(f) = spec.keys().find(|f| !SPEC_FIELDS.contains(&f.as_str())) {
        return Err(format!(
            "the record holds spec.{f}, which no action of the agent writes (restorable: {})",
            SPEC_FIELDS.join(", ")
        ));
    }
    let fields: Vec<String> = if !record.fields.is_empty() {
        record.fields.clone()
    } else if record.action.starts_with("roll back") {
        // Records of earlier versions: a rollback wrote the template only.
        vec!["template".into()]
    } else {
        return Err("the record does not say which fields its action wrote".into());
    };
    if let Some(f) = fields.iter().find(|f| !SPEC_FIELDS.contains(&f.as_str())) {
        return Err(format!(
            "the record names spec.{f}, which no action of the agent writes"
        ));
    }
    if let Some(f) = fields.iter().find(|f| !spec.contains_key(*f)) {
        return Err(format!("the record holds no spec.{f} to restore"));
    }
    if let Some(t) = spec
        .get("template")
        .filter(|_| fields.iter().any(|f| f == "template"))
        && !revision_templates
            .iter()
            .any(|r| crate::diagnose::rollout::same_template(r, t))
    {
        return Err("the template to restore is none of the StatefulSet's ControllerRevisions: not one it ran".into());
    }
    let now_spec = serde_json::to_value(&current.spec).unwrap_or(Value::Null);
    let mut ops = Vec::new();
    for field in &fields {
        let value = spec.get(field).unwrap_or(&Value::Null);
        let path = format!("/spec/{field}");
        match (now_spec.get(field), value) {
            (None, Value::Null) => {}
            (Some(_), Value::Null) => ops.push(json!({"op": "remove", "path": path})),
            (Some(v), value) if v == value => {}
            (Some(_), value) => ops.push(json!({"op": "replace", "path": path, "value": value})),
            (None, value) => ops.push(json!({"op": "add", "path": path, "value": value})),
        }
    }
    let ops = Value::Array(ops);
    // An undo of a scale-up scales down: under whenScaled: Delete the
    // controller would delete the removed ordinals' claims.
    let claims = crate::claims::deleted_by(
        current,
        &[Action::PatchSpec {
            patch_type: PatchType::Json,
            patch: ops.clone(),
            why: String::new(),
        }],
    );
    if !claims.is_empty() {
        return Err(format!(
            "restoring spec.replicas scales the set down, and its persistentVolumeClaimRetentionPolicy (whenScaled: Delete) would have the controller delete {}: the agent never deletes data; scale it down by hand if that is meant",
            claims.join(", ")
        ));
    }
    Ok(SpecRestore {
        ops,
        fields: fields.iter().map(|f| format!("spec.{f}")).collect(),
    })
}

/// What an undo of a node-group record may do: scale a node group
/// configured now, through its configured target (never the record's),
/// back to a size within its configured bounds.
pub fn node_group_restore<'a>(
    record: &Record,
    configured: &'a [NodeGroup],
    now: Timestamp,
) -> Result<(&'a NodeGroup, i32, i32), String> {
    let Prior::NodeGroup {
        group,
        target,
        replicas,
        replicas_after,
    } = &record.prior
    else {
        return Err("the record is not about a node group".into());
    };
    dated_sanely(record.at, now)?;
    let Some(g) = configured.iter().find(|g| &g.name == group) else {
        return Err(format!("node group {group:?} is not configured"));
    };
    if &g.resource != target {
        return Err(format!(
            "the record's target {} is not node group {group}'s configured {}",
            target.describe(),
            g.resource.describe()
        ));
    }
    if !(g.min..=g.max).contains(replicas) {
        return Err(format!(
            "{replicas} replicas are outside node group {group}'s bounds ({}..{})",
            g.min, g.max
        ));
    }
    Ok((g, *replicas, *replicas_after))
}

/// All undo records, keyed by `namespace/name` (only the last action on
/// each StatefulSet is kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    pub records: BTreeMap<String, Record>,
}

impl Book {
    pub fn from_config_map(cm: &ConfigMap) -> Result<Self> {
        Ok(Self {
            records: crate::state::read_records(cm, CONFIG_MAP)?,
        })
    }

    pub fn to_data(&self) -> Result<BTreeMap<String, String>> {
        crate::state::write_records(&self.records, "undo records")
    }

    /// Takes in what another run saved since this one read the records
    /// (two runs at once): a record only the other run has, or a later one,
    /// is kept, so its action can still be undone.
    pub fn merge_saved(&mut self, saved: &Book, now: Timestamp) {
        for (id, theirs) in &saved.records {
            if dated_sanely(theirs.at, now).is_err() {
                // Forged, or from a clock far ahead: it must not replace
                // the record of what this run did.
                continue;
            }
            match self.records.get(id) {
                Some(ours) if ours.at >= theirs.at => {}
                _ => {
                    self.records.insert(id.clone(), theirs.clone());
                }
            }
        }
    }
}

impl Book {
    /// Keeps the records an undo may still want, so the ConfigMap never
    /// fills (1 MiB): none older than `keep`, none dated in the future,
    /// at most `max` (the newest), and the newest that fit in `max_bytes`.
    pub fn prune(
        &mut self,
        now: Timestamp,
        keep: crate::duration::Span,
        max: usize,
        max_bytes: usize,
    ) {
        let oldest = now
            .checked_sub(SignedDuration::from_secs(keep.as_secs() as i64))
            .unwrap_or(now);
        self.records
            .retain(|_, r| r.at >= oldest && dated_sanely(r.at, now).is_ok());
        let mut newest: Vec<(Timestamp, String, usize)> = self
            .records
            .iter()
            .map(|(id, r)| {
                let size = id.len() + serde_json::to_string(r).map_or(0, |t| t.len());
                (r.at, id.clone(), size)
            })
            .collect();
        newest.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut bytes = 0;
        for (i, (_, id, size)) in newest.into_iter().enumerate() {
            bytes += size;
            if i >= max || bytes > max_bytes {
                self.records.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(generation: i64, image: &str, partition: Option<i32>) -> StatefulSet {
        let mut strategy = json!({"type": "RollingUpdate"});
        if let Some(p) = partition {
            strategy["rollingUpdate"] = json!({"partition": p});
        }
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "shop", "uid": "u1", "generation": generation, "resourceVersion": "42"},
            "spec": {
                "replicas": 3, "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "updateStrategy": strategy,
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": image}]}},
            },
        }))
        .unwrap()
    }

    fn record(before: &StatefulSet, generation_after: i64) -> Record {
        Record {
            at: "2026-11-22T10:00:00Z".parse().unwrap(),
            action: "rollback".into(),
            uid: Some("u1".into()),
            generation_after: Some(generation_after),
            prior: prior_spec(before).unwrap(),
            steps: Vec::new(),
            fields: vec!["template".into()],
            sync: None,
        }
    }

    fn now() -> Timestamp {
        "2026-11-22T10:30:00Z".parse().unwrap()
    }

    /// The templates of the ControllerRevisions of `sets`.
    fn revisions(sets: &[&StatefulSet]) -> Vec<Value> {
        sets.iter()
            .map(|s| serde_json::to_value(&s.spec.template).unwrap())
            .collect()
    }

    fn restore(
        record: &Record,
        current: &StatefulSet,
        known: &[&StatefulSet],
    ) -> Result<Value, String> {
        restore_patch(record, current, &revisions(known), now()).map(|r| r.ops)
    }

    #[test]
    fn restores_changed_fields_conditionally() {
        let before = sts(3, "db:2", Some(1));
        let after = sts(4, "db:1", None);
        let patch = restore(&record(&before, 4), &after, &[&before, &after]).unwrap();
        let mut restored = serde_json::to_value(&after).unwrap();
        let ops: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
        json_patch::patch(&mut restored, &ops).unwrap();
        assert_eq!(
            restored["spec"]["template"],
            serde_json::to_value(&before).unwrap()["spec"]["template"]
        );
        // The rollback wrote the template only: the partition the record
        // also holds stays as it is now.
        assert_eq!(
            restored["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate"})
        );
        assert_eq!(
            restore(&record(&before, 3), &before, &[&before]).unwrap(),
            json!([]),
            "nothing to restore on an unchanged spec"
        );
    }

    #[test]
    fn an_undo_that_scales_down_under_when_scaled_delete_is_refused() {
        // A team policy scaled 3 -> 5; undoing it scales 5 -> 3.
        let before = sts(3, "db:2", None);
        let mut after = sts(4, "db:2", None);
        after.spec.replicas = Some(5);
        after.spec.ordinals = Some(serde_json::from_value(json!({"start": 1})).unwrap());
        after.spec.volume_claim_templates = Some(vec![
            serde_json::from_value(json!({"metadata": {"name": "data"}})).unwrap(),
        ]);
        let mut r = record(&before, 4);
        r.action = "patch the spec".into();
        r.fields = vec!["replicas".into()];
        assert_eq!(
            restore(&r, &after, &[&before]).unwrap(),
            json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
            "Retain: the claims stay"
        );
        after.spec.persistent_volume_claim_retention_policy = Some(
            serde_json::from_value(json!({"whenScaled": "Delete", "whenDeleted": "Retain"}))
                .unwrap(),
        );
        let err = restore(&r, &after, &[&before]).unwrap_err();
        assert!(err.contains("delete data-db-4, data-db-5"), "{err}");
    }

    #[test]
    fn refuses_when_the_spec_moved_on_or_the_object_is_new() {
        let before = sts(3, "db:2", None);
        let err = restore(&record(&before, 4), &sts(5, "db:3", None), &[&before]).unwrap_err();
        assert!(err.contains("changed since"), "{err}");
        let mut other = sts(4, "db:1", None);
        other.metadata.uid = Some("u2".into());
        assert!(
            restore(&record(&before, 4), &other, &[&before])
                .unwrap_err()
                .contains("re-created")
        );
    }

    #[test]
    fn merging_keeps_another_runs_records() {
        let mut ours = Book::default();
        let mut mine = record(&sts(3, "db:2", None), 4);
        mine.at = "2026-11-22T10:00:00Z".parse().unwrap();
        ours.records.insert("shop/db".into(), mine.clone());
        let mut saved = Book::default();
        let mut theirs = record(&sts(5, "web:2", None), 6);
        theirs.at = "2026-11-22T10:01:00Z".parse().unwrap();
        saved.records.insert("shop/web".into(), theirs.clone());
        let mut older = mine.clone();
        older.at = "2026-11-22T09:00:00Z".parse().unwrap();
        older.action = "older".into();
        saved.records.insert("shop/db".into(), older);
        let mut forged = theirs.clone();
        forged.at = "2027-01-01T00:00:00Z".parse().unwrap();
        saved.records.insert("shop/api".into(), forged.clone());
        let mut future_db = forged;
        future_db.action = "forged".into();
        saved.records.insert("shop/db".into(), future_db);
        ours.merge_saved(&saved, now());
        assert_eq!(ours.records["shop/web"], theirs);
        assert_eq!(
            ours.records["shop/db"], mine,
            "ours is later; a future one is no record"
        );
        assert!(
            !ours.records.contains_key("shop/api"),
            "dated in the future: dropped"
        );
    }

    #[test]
    fn round_trips_through_config_map_data() {
        let mut book = Book::default();
        book.records
            .insert("shop/db".into(), record(&sts(3, "db:2", None), 4));
        let cm = ConfigMap {
            data: Some(book.to_data().unwrap()),
            ..Default::default()
        };
        assert_eq!(Book::from_config_map(&cm).unwrap(), book);
    }

    #[test]
    fn a_record_that_does_not_check_out_restores_nothing() {
        let before = sts(3, "db:2", None);
        let after = sts(4, "db:1", None);
        let known = [&before, &after];
        let mut r = record(&before, 4);
        r.uid = None;
        assert!(restore(&r, &after, &known).unwrap_err().contains("no uid"));
        let mut r = record(&before, 4);
        r.generation_after = None;
        assert!(
            restore(&r, &after, &known)
                .unwrap_err()
                .contains("no generation")
        );
        let mut r = record(&before, 4);
        r.at = "2026-11-22T10:40:00Z".parse().unwrap();
        assert!(
            restore(&r, &after, &known)
                .unwrap_err()
                .contains("in the future")
        );
        // A field no action writes, smuggled into the prior spec.
        let mut r = record(&before, 4);
        let Prior::Spec { spec } = &mut r.prior else {
            unreachable!()
        };
        spec.insert(
            "persistentVolumeClaimRetentionPolicy".into(),
            json!({"whenDeleted": "Delete"}),
        );
        assert!(
            restore(&r, &after, &known)
                .unwrap_err()
                .contains("persistentVolumeClaimRetentionPolicy")
        );
        // A restorable field the action did not write is not restored.
        let mut r = record(&before, 4);
        let Prior::Spec { spec } = &mut r.prior else {
            unreachable!()
        };
        spec.insert("replicas".into(), json!(0));
        let ops = restore(&r, &after, &known).unwrap();
        assert!(!ops.to_string().contains("/spec/replicas"), "{ops}");
        r.fields = vec!["persistentVolumeClaimRetentionPolicy".into()];
        assert!(restore(&r, &after, &known).is_err());
        // A template none of the set's revisions had: a privileged pod.
        let mut r = record(&before, 4);
        let Prior::Spec { spec } = &mut r.prior else {
            unreachable!()
        };
        spec.insert(
            "template".into(),
            json!({"spec": {"hostPID": true, "containers": [{"name": "x", "image": "evil", "securityContext": {"privileged": true}}]}}),
        );
        assert!(
            restore(&r, &after, &known)
                .unwrap_err()
                .contains("none of the StatefulSet's ControllerRevisions")
        );
        // A record of an unknown action without fields.
        let mut r = record(&before, 4);
        r.fields.clear();
        r.action = "patch the spec".into();
        assert!(
            restore(&r, &after, &known)
                .unwrap_err()
                .contains("which fields")
        );
        // A rollback record of an earlier version (no fields): the template.
        r.action = "roll back to revision 1 (db-1): w".into();
        assert!(
            restore(&r, &after, &known)
                .unwrap()
                .to_string()
                .contains("/spec/template")
        );
    }

    #[test]
    fn fields_of_an_action_are_those_its_patch_names() {
        let action = |v: Value| -> Action { serde_json::from_value(v).unwrap() };
        assert_eq!(
            fields_of(&action(
                json!({"action": "rollback", "revision": 1, "name": "db-1", "why": "w"})
            )),
            ["template"]
        );
        assert_eq!(
            fields_of(&action(
                json!({"action": "patch_spec", "patchType": "json", "why": "w", "patch": [
                {"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/memory", "value": "2Gi"},
                {"op": "replace", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/persistentVolumeClaimRetentionPolicy", "value": {}}]})
            )),
            ["replicas", "template"]
        );
        assert_eq!(
            fields_of(&action(
                json!({"action": "patch_spec", "patchType": "merge", "why": "w", "patch": {"spec": {"minReadySeconds": 5}}})
            )),
            ["minReadySeconds"]
        );
    }

    fn node_group() -> NodeGroup {
        serde_saphyr::from_str(
            "name: gpu\nresource: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, namespace: capi, name: gpu-pool}\nmin: 0\nmax: 4\n",
        )
        .unwrap()
    }

    fn scale_record(group: &str, target: ScaleTarget, replicas: i32) -> Record {
        Record {
            at: "2026-11-22T10:00:00Z".parse().unwrap(),
            action: "scale node group".into(),
            uid: Some("u1".into()),
            generation_after: None,
            prior: Prior::NodeGroup {
                group: group.into(),
                target,
                replicas,
                replicas_after: 2,
            },
            steps: Vec::new(),
            fields: Vec::new(),
            sync: None,
        }
    }

    #[test]
    fn a_node_group_is_restored_only_as_configured_now() {
        let g = node_group();
        let groups = [g.clone()];
        let ok = scale_record("gpu", g.resource.clone(), 1);
        let (found, to, after) = node_group_restore(&ok, &groups, now()).unwrap();
        assert_eq!((found.name.as_str(), to, after), ("gpu", 1, 2));
        // The forged record of issue 22: CoreDNS's Deployment to zero.
        let coredns = ScaleTarget {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("kube-system".into()),
            name: "coredns".into(),
        };
        let err = node_group_restore(&scale_record("gpu", coredns.clone(), 0), &groups, now())
            .unwrap_err();
        assert!(err.contains("not node group gpu's configured"), "{err}");
        let err = node_group_restore(&scale_record("gpu", coredns, 0), &[], now()).unwrap_err();
        assert!(err.contains("not configured"), "{err}");
        let err = node_group_restore(&scale_record("gpu", g.resource.clone(), 9), &groups, now())
            .unwrap_err();
        assert!(err.contains("outside node group gpu's bounds"), "{err}");
        let mut future = ok;
        future.at = "2026-12-01T00:00:00Z".parse().unwrap();
        assert!(node_group_restore(&future, &groups, now()).is_err());
    }

    #[test]
    fn pruning_keeps_the_newest_within_age_count_and_size() {
        let mut book = Book::default();
        for (i, at) in [
            "2026-10-01T00:00:00Z",
            "2026-11-20T00:00:00Z",
            "2026-11-21T00:00:00Z",
            "2026-11-22T10:00:00Z",
            "2026-11-23T00:00:00Z",
        ]
        .iter()
        .enumerate()
        {
            let mut r = record(&sts(3, "db:2", None), 4);
            r.at = at.parse().unwrap();
            book.records.insert(format!("shop/s{i}"), r);
        }
        let mut by_age = book.clone();
        by_age.prune(now(), crate::duration::Span::days(30), 100, MAX_BYTES);
        let kept: Vec<&str> = by_age.records.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            ["shop/s1", "shop/s2", "shop/s3"],
            "too old and future-dated go"
        );
        let mut by_count = book.clone();
        by_count.prune(now(), crate::duration::Span::days(30), 2, MAX_BYTES);
        assert_eq!(
            by_count.records.keys().collect::<Vec<_>>(),
            ["shop/s2", "shop/s3"]
        );
        let one = serde_json::to_string(&book.records["shop/s3"])
            .unwrap()
            .len()
            + "shop/s3".len();
        let mut by_size = book;
        by_size.prune(now(), crate::duration::Span::days(30), 100, one + 10);
        assert_eq!(by_size.records.keys().collect::<Vec<_>>(), ["shop/s3"]);
    }
}
