//! What a proposed StatefulSet changes against the live one: its template,
//! field by field, its replicas, and the spec fields the API refuses to
//! update.

use k8s_openapi::api::apps::v1::StatefulSet;
use serde::Serialize;
use serde_json::{Map, Value};

use super::defaults::{self, SERVER_FILLED};
use crate::diagnose::rollout::diff;

/// The spec fields an update may change; any other is refused by the API
/// server's validation of a StatefulSet update.
pub const UPDATABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// The API server's words for such an update (apps/v1 validation, v1.27
/// and later; older servers list fewer fields).
pub const FORBIDDEN: &str = "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// No StatefulSet of this name lives there yet.
    pub new_set: bool,
    /// `[from, to]`, when the change sets another count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<[i32; 2]>,
    /// `[{path, old, new}]` below `spec.template`, as `revision_change`
    /// names them.
    pub template: Vec<Value>,
    /// Spec fields the change alters that no update may change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forbidden: Vec<String>,
}

impl Change {
    pub fn template_changed(&self) -> bool {
        self.new_set || !self.template.is_empty()
    }
}

/// The proposed object with the server's defaults filled in.
pub fn defaulted(proposed: &StatefulSet) -> StatefulSet {
    let Ok(mut value) = serde_json::to_value(proposed) else {
        return proposed.clone();
    };
    if let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) {
        defaults::stateful_set_spec(spec);
    }
    serde_json::from_value(value).unwrap_or_else(|_| proposed.clone())
}

fn spec_of(sts: &StatefulSet) -> Map<String, Value> {
    match serde_json::to_value(&sts.spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Claim templates as the server compares them: without the type meta,
/// status and null timestamp it stores beside what was written.
fn claims(v: Option<&Value>) -> Value {
    let mut v = v.cloned().unwrap_or(Value::Array(Vec::new()));
    if let Some(list) = v.as_array_mut() {
        for c in list.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("apiVersion");
            c.remove("kind");
            c.remove("status");
            if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("creationTimestamp");
            }
            if let Some(s) = c.get_mut("spec").and_then(Value::as_object_mut)
                && !s.contains_key("volumeMode")
            {
                s.insert("volumeMode".into(), "Filesystem".into());
            }
        }
    }
    v
}

/// Compares a proposed (defaulted) StatefulSet with the live one.
pub fn compare(live: Option<&StatefulSet>, proposed: &StatefulSet) -> Change {
    let Some(live) = live else {
        return Change {
            new_set: true,
            ..Change::default()
        };
    };
    // A hand-written snapshot may lack what a server would have stored.
    let (old, new) = (spec_of(&defaulted(live)), spec_of(proposed));
    let replicas = |m: &Map<String, Value>| {
        m.get("replicas")
            .and_then(Value::as_i64)
            .map_or(1, |r| r as i32)
    };
    let (from, to) = (replicas(&old), replicas(&new));
    let template = diff(
        old.get("template").unwrap_or(&Value::Null),
        new.get("template").unwrap_or(&Value::Null),
    )
    .into_iter()
    .filter(|c| {
        // A key the manifest leaves out and the server filled in is no change.
        let path = c.get("path").and_then(Value::as_str).unwrap_or_default();
        let leaf = path.rsplit('.').next().unwrap_or(path);
        let leaf = leaf.split('[').next().unwrap_or(leaf);
        !(c.get("new").is_none_or(Value::is_null) && SERVER_FILLED.contains(&leaf))
    })
    .collect();
    let mut forbidden: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| !UPDATABLE.contains(&k.as_str()))
        .filter(|k| {
            let (a, b) = (old.get(*k), new.get(*k));
            if k.as_str() == "volumeClaimTemplates" {
                return claims(a) != claims(b);
            }
            let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
            a != b && !(empty(a) && empty(b))
        })
        .map(|k| format!("spec.{k}"))
        .collect();
    forbidden.sort();
    forbidden.dedup();
    Change {
        new_set: false,
        replicas: (from != to).then_some([from, to]),
        template,
        forbidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(spec: Value) -> StatefulSet {
        serde_json::from_value(
            json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": spec}),
        )
        .unwrap()
    }

    fn live() -> StatefulSet {
        // As a v1.20 server stores `stateful_set("db", 3, ...)` of the e2e suite.
        sts(json!({
            "podManagementPolicy": "OrderedReady", "replicas": 3, "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                "containers": [{"image": "app:1", "imagePullPolicy": "IfNotPresent", "name": "app",
                    "resources": {"requests": {"memory": "128Mi"}},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 1}},
            "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
            "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
                "status": {"phase": "Pending"}}],
        }))
    }

    fn manifest(memory: &str, service: &str, storage: &str) -> StatefulSet {
        defaulted(&sts(json!({
            "replicas": 3, "serviceName": service, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "app:1",
                    "resources": {"requests": {"memory": memory}}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}],
        })))
    }

    #[test]
    fn the_same_manifest_changes_nothing_the_server_defaulted() {
        assert_eq!(
            compare(Some(&live()), &manifest("128Mi", "db", "1Gi")),
            Change::default()
        );
    }

    #[test]
    fn a_template_field_is_named_by_its_path() {
        let c = compare(Some(&live()), &manifest("2Gi", "db", "1Gi"));
        assert_eq!(
            c.template,
            [
                json!({"path": "spec.containers[0].resources.requests.memory", "old": "128Mi", "new": "2Gi"})
            ]
        );
        assert!(c.forbidden.is_empty() && c.replicas.is_none());
    }

    #[test]
    fn fields_no_update_may_change_are_forbidden() {
        let c = compare(Some(&live()), &manifest("128Mi", "db-headless", "5Gi"));
        assert_eq!(
            c.forbidden,
            ["spec.serviceName", "spec.volumeClaimTemplates"]
        );
    }

    #[test]
    fn a_set_not_there_yet_is_new() {
        assert!(compare(None, &manifest("1Gi", "db", "1Gi")).new_set);
    }
}
