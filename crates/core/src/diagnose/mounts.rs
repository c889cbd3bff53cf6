//! Pods held in ContainerCreating by their volumes, as the kubelet and the
//! attach/detach controller report it: `FailedMount` (a Secret, ConfigMap
//! or claim the pod names cannot be mounted) and `FailedAttachVolume`
//! (`Multi-Attach error`: a ReadWriteOnce volume still attached to another
//! node). The first may be the new template's doing; the second is the
//! storage's state, whatever the template says.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::admission::quoted_after;
use super::{Confidence, Evidence, Finding, Input, Kind, data, pod_ref};

/// Whether every container of the pod is still being created: the kubelet
/// has not started it, which is where a volume holds a pod.
fn creating(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let waiting = |list: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
        list.iter().flatten().all(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| r == "ContainerCreating" || r == "PodInitializing")
        })
    };
    status.phase.as_deref() == Some("Pending")
        && pod.spec.as_ref().is_some_and(|s| s.node_name.is_some())
        && waiting(&status.container_statuses)
        && waiting(&status.init_container_statuses)
}

/// What a mount failure says is missing: `(kind, name)` from `configmap
/// "app-config" not found`, `secret "db-creds" not found` or
/// `persistentvolumeclaim "data" not found`.
pub fn missing_object(message: &str) -> Option<(&'static str, &str)> {
    for (word, kind) in [
        ("configmap", "ConfigMap"),
        ("secret", "Secret"),
        ("persistentvolumeclaim", "PersistentVolumeClaim"),
    ] {
        let marker = format!("{word} \"");
        if let Some(at) = message.find(&marker) {
            let rest = &message[at + marker.len()..];
            let name = &rest[..rest.find('"')?];
            if rest[name.len()..].contains("not found") {
                return Some((kind, name));
            }
        }
    }
    None
}

pub fn volumes(input: &Input<'_>, out: &mut Vec<Finding>) {
    let ns = input.namespace();
    for pod in input.facts.pods.iter().filter(|p| creating(p)) {
        let pname = pod.metadata.name.as_deref().unwrap_or_default();
        // reason -> (latest message, times)
        let mut seen: BTreeMap<&str, (&str, i32)> = BTreeMap::new();
        for e in input.events() {
            let o = &e.involved_object;
            if o.kind.as_deref() != Some("Pod") || o.name.as_deref() != Some(pname) {
                continue;
            }
            let reason = e.reason.as_deref().unwrap_or_default();
            if reason != "FailedMount" && reason != "FailedAttachVolume" {
                continue;
            }
            let message = e.message.as_deref().unwrap_or_default();
            // "Unable to attach or mount volumes: ... timed out" follows a
            // SetUp failure and says less; keep the one that names a cause.
            // So does the kubelet's `object "ns"/"name" not registered`, its
            // cache not yet watching the object, which can come after the
            // "not found" that says the object is missing.
            let entry = seen.entry(reason).or_insert((message, 0));
            let names_less = missing_object(message).is_none() && missing_object(entry.0).is_some();
            if !message.starts_with("Unable to attach or mount volumes") && !names_less {
                entry.0 = message;
            }
            entry.1 += e.count.unwrap_or(1);
        }
        let obj = pod_ref(ns, pname);
        for (reason, (message, times)) in seen {
            let volume = quoted_after(message, "for volume").unwrap_or_default();
            let attach = reason == "FailedAttachVolume";
            let cause = if attach {
                if message.contains("Multi-Attach error") {
                    "it is still attached to another node (Multi-Attach)".to_string()
                } else {
                    "it cannot be attached to the node".to_string()
                }
            } else {
                match missing_object(message) {
                    Some((kind, name)) => format!("{kind} {ns}/{name} does not exist"),
                    None => "the kubelet cannot mount it".to_string(),
                }
            };
            let f = Finding::new(
                if attach {
                    Kind::VolumeAttach
                } else {
                    Kind::VolumeMount
                },
                Confidence::High,
                format!(
                    "{pname}: held in ContainerCreating: volume {} {cause} ({reason}, {times} time{})",
                    if volume.is_empty() { "?" } else { volume },
                    if times == 1 { "" } else { "s" }
                ),
            )
            .with(Evidence::event(&obj, message.to_string()))
            .pod(pname);
            let revision = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::facts::REVISION_LABEL))
                .cloned()
                .unwrap_or_default();
            out.push(if attach {
                f.data(data::VolumeAttach {
                    volume: volume.into(),
                    reason: reason.into(),
                    message: message.into(),
                    revision,
                })
            } else {
                let missing = missing_object(message);
                f.data(data::VolumeMount {
                    volume: volume.into(),
                    reason: reason.into(),
                    message: message.into(),
                    revision,
                    object_kind: missing.map(|(kind, _)| kind.into()),
                    object: missing.map(|(_, name)| name.into()),
                })
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_failures_name_what_is_missing() {
        let m =
            r#"MountVolume.SetUp failed for volume "config" : configmap "app-config" not found"#;
        assert_eq!(quoted_after(m, "for volume"), Some("config"));
        assert_eq!(missing_object(m), Some(("ConfigMap", "app-config")));
        assert_eq!(
            missing_object(
                r#"MountVolume.SetUp failed for volume "creds" : secret "db-creds" not found"#
            ),
            Some(("Secret", "db-creds"))
        );
        assert_eq!(
            missing_object(
                r#"Unable to attach or mount volumes: unmounted volumes=[config], unattached volumes=[config default-token-abc]: timed out waiting for the condition"#
            ),
            None
        );
        let multi = r#"Multi-Attach error for volume "pvc-0a1b" Volume is already exclusively attached to one node and can't be attached to another"#;
        assert_eq!(quoted_after(multi, "for volume"), Some("pvc-0a1b"));
        assert_eq!(missing_object(multi), None);
    }
}
