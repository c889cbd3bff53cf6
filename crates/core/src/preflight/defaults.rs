//! The defaults the API server fills into a StatefulSet it stores, applied
//! to a manifest from a repository, so that comparing it with the live
//! object shows what the change changes and not what the server adds. The
//! list is the apps/v1 and core/v1 `SetDefaults_*` of the fields a
//! StatefulSet's manifest commonly leaves out; a live preflight asks the
//! server instead (its dry-run update answers with the object as stored).

use serde_json::{Map, Value, json};

/// Keys the server fills in wherever it finds their parent: a change that
/// only drops one of them (the manifest leaves it out, the live object has
/// the server's value) is not reported as a change.
pub const SERVER_FILLED: &[&str] = &[
    "creationTimestamp",
    "imagePullPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "dnsPolicy",
    "restartPolicy",
    "schedulerName",
    "securityContext",
    "terminationGracePeriodSeconds",
    "protocol",
    "scheme",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "defaultMode",
    "enableServiceLinks",
    "volumeMode",
    "revisionHistoryLimit",
    "podManagementPolicy",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "apiVersion",
    "kind",
    "status",
    "$patch",
];

fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

fn object<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The StatefulSet's spec with the server's defaults, in place.
pub fn stateful_set_spec(spec: &mut Map<String, Value>) {
    set(spec, "replicas", json!(1));
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    set(spec, "revisionHistoryLimit", json!(10));
    set(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    );
    if let Some(u) = object(spec, "updateStrategy")
        && u.get("type").and_then(Value::as_str) == Some("RollingUpdate")
    {
        set(u, "rollingUpdate", json!({"partition": 0}));
        if let Some(r) = object(u, "rollingUpdate") {
            set(r, "partition", json!(0));
        }
    }
    if let Some(claims) = spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for claim in claims.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(s) = object(claim, "spec") {
                set(s, "volumeMode", json!("Filesystem"));
            }
        }
    }
    if let Some(t) = object(spec, "template") {
        template(t);
    }
}

/// A pod template with the server's defaults, in place.
pub fn template(template: &mut Map<String, Value>) {
    let Some(spec) = object(template, "spec") else {
        return;
    };
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "securityContext", json!({}));
    set(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
            for c in list.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in volumes.iter_mut().filter_map(Value::as_object_mut) {
            for source in ["configMap", "secret", "projected", "downwardAPI"] {
                if let Some(s) = object(v, source) {
                    set(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    // The server pulls `:latest` (or an untagged image) every time.
    let tag = image
        .rsplit_once('/')
        .map_or(image, |(_, last)| last)
        .split_once(':')
        .map(|(_, t)| t);
    let latest = !image.contains('@') && tag.is_none_or(|t| t == "latest");
    set(
        c,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = object(c, probe) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if let Some(h) = object(p, "httpGet") {
                set(h, "scheme", json!("HTTP"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_gets_what_the_server_stores() {
        let mut spec = json!({
            "serviceName": "db",
            "template": {"spec": {"containers": [
                {"name": "app", "image": "registry/app:1",
                 "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                 "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "registry:5000/side"},
            ]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
        });
        stateful_set_spec(spec.as_object_mut().unwrap());
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["updateStrategy"]["rollingUpdate"]["partition"], 0);
        let c = &spec["template"]["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            c[1]["imagePullPolicy"], "Always",
            "a registry port is no tag"
        );
        assert_eq!(c[0]["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            spec["template"]["spec"]["terminationGracePeriodSeconds"],
            30
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
    }

    #[test]
    fn values_the_manifest_sets_are_kept() {
        let mut spec = json!({"replicas": 0, "updateStrategy": {"type": "OnDelete"},
            "template": {"spec": {"terminationGracePeriodSeconds": 1, "containers": []}}});
        stateful_set_spec(spec.as_object_mut().unwrap());
        assert_eq!(spec["replicas"], 0);
        assert_eq!(spec["updateStrategy"], json!({"type": "OnDelete"}));
        assert_eq!(spec["template"]["spec"]["terminationGracePeriodSeconds"], 1);
    }
}
