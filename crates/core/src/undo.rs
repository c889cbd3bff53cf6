//! Undo records: before each write the agent saves what it is about to
//! change, next to its state (ConfigMap `stsmend-undo`), so `stsmend undo`
//! can put it back. Pure: building records and the restoring patch.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::ScaleTarget;
use crate::error::{Error, Result};

pub const CONFIG_MAP: &str = "stsmend-undo";

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

/// The JSON patch operations that restore `spec` on `current` (the writer
/// makes them conditional on its resourceVersion); or why they must not be
/// applied.
pub fn restore_patch(record: &Record, current: &StatefulSet) -> Result<Value, String> {
    let Prior::Spec { spec } = &record.prior else {
        return Err("the record is not about the StatefulSet's spec".into());
    };
    if record.uid.is_some() && record.uid != current.metadata.uid {
        return Err("the StatefulSet was deleted and re-created since".into());
    }
    if let Some(after) = record.generation_after
        && current.metadata.generation != Some(after)
    {
        return Err(format!(
            "its spec changed since the action (generation {} now, {after} after the action)",
            current.metadata.generation.unwrap_or(0)
        ));
    }
    let now = serde_json::to_value(&current.spec).unwrap_or(Value::Null);
    let mut ops = Vec::new();
    for (field, value) in spec {
        let path = format!("/spec/{field}");
        match (now.get(field), value) {
            (None, Value::Null) => {}
            (Some(_), Value::Null) => ops.push(json!({"op": "remove", "path": path})),
            (Some(v), value) if v == value => {}
            (Some(_), value) => ops.push(json!({"op": "replace", "path": path, "value": value})),
            (None, value) => ops.push(json!({"op": "add", "path": path, "value": value})),
        }
    }
    Ok(Value::Array(ops))
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
    pub fn merge_saved(&mut self, saved: &Book) {
        for (id, theirs) in &saved.records {
            match self.records.get(id) {
                Some(ours) if ours.at >= theirs.at => {}
                _ => {
                    self.records.insert(id.clone(), theirs.clone());
                }
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
        }
    }

    #[test]
    fn restores_changed_fields_conditionally() {
        let before = sts(3, "db:2", Some(1));
        let after = sts(4, "db:1", None);
        let patch = restore_patch(&record(&before, 4), &after).unwrap();
        let mut restored = serde_json::to_value(&after).unwrap();
        let ops: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
        json_patch::patch(&mut restored, &ops).unwrap();
        assert_eq!(
            restored["spec"],
            serde_json::to_value(&before).unwrap()["spec"]
        );
        assert_eq!(
            restore_patch(&record(&before, 3), &before).unwrap(),
            json!([]),
            "nothing to restore on an unchanged spec"
        );
    }

    #[test]
    fn refuses_when_the_spec_moved_on_or_the_object_is_new() {
        let before = sts(3, "db:2", None);
        let err = restore_patch(&record(&before, 4), &sts(5, "db:3", None)).unwrap_err();
        assert!(err.contains("changed since"), "{err}");
        let mut other = sts(4, "db:1", None);
        other.metadata.uid = Some("u2".into());
        assert!(
            restore_patch(&record(&before, 4), &other)
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
        ours.merge_saved(&saved);
        assert_eq!(ours.records["shop/web"], theirs);
        assert_eq!(ours.records["shop/db"], mine, "ours is later");
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
}
