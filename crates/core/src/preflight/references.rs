//! What a pod of the new template needs to exist besides itself: the
//! claims its ordinal will get (and their StorageClass), the ConfigMaps its
//! volumes and environment name. Each missing one is worded as the
//! provisioner or the kubelet words it. Secrets are never read by the agent:
//! references to them are listed as not checked.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

use super::{Detail, Known, Obstacle, Source, Stage};
use crate::diagnose::Evidence;
use crate::inventory::Inventory;

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

fn is_default(c: &StorageClass) -> bool {
    c.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS))
        .is_some_and(|v| v == "true")
}

/// Claims the controller will create for the pod (those that do not exist
/// yet) whose StorageClass is missing.
pub fn claims(
    pod_name: &str,
    sts: &k8s_openapi::api::apps::v1::StatefulSet,
    inv: &Inventory,
) -> Option<Obstacle> {
    let ns = sts.metadata.namespace.clone().unwrap_or_default();
    if inv.storage_classes.is_empty() && inv.nodes.is_empty() {
        // Nothing of the cluster was read: nothing to check against.
        return None;
    }
    for t in sts.spec.volume_claim_templates.iter().flatten() {
        let claim = format!(
            "{}-{pod_name}",
            t.metadata.name.as_deref().unwrap_or_default()
        );
        let exists = inv.pvcs.iter().any(|c| {
            c.metadata.namespace.as_deref() == Some(&ns)
                && c.metadata.name.as_deref() == Some(&claim)
        });
        if exists {
            continue;
        }
        let class = t.spec.as_ref().and_then(|s| s.storage_class_name.clone());
        let missing = match class.as_deref() {
            Some("") => false,
            Some(c) => !inv
                .storage_classes
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(c)),
            None => !inv.storage_classes.iter().any(is_default),
        };
        if missing {
            let shown = class.clone().unwrap_or_default();
            return Some(Obstacle {
                stage: Stage::Storage,
                pods: vec![pod_name.to_string()],
                message: match &class {
                    Some(c) => format!("storageclass.storage.k8s.io \"{c}\" not found"),
                    None => {
                        "no persistent volumes available for this claim and no storage class is set"
                            .into()
                    }
                },
                evidence: vec![Evidence::field(
                    format!("PersistentVolumeClaim {ns}/{claim}"),
                    "spec.storageClassName",
                    format!(
                        "{} (the claim the controller will create; the cluster's {} StorageClasses {})",
                        if shown.is_empty() { "<unset>" } else { &shown },
                        inv.storage_classes.len(),
                        if class.is_some() {
                            "do not include it"
                        } else {
                            "have no default"
                        }
                    ),
                )],
                source: Source::Agent,
                detail: Detail::Claim {
                    claim,
                    class: shown,
                },
            });
        }
    }
    None
}

fn config_map<'a>(inv: &'a Inventory, ns: &str, name: &str) -> Option<&'a ConfigMap> {
    inv.config_maps.iter().find(|c| {
        c.metadata.namespace.as_deref() == Some(ns) && c.metadata.name.as_deref() == Some(name)
    })
}

fn has_key(cm: &ConfigMap, key: &str) -> bool {
    cm.data.as_ref().is_some_and(|d| d.contains_key(key))
        || cm.binary_data.as_ref().is_some_and(|d| d.contains_key(key))
}

/// The first ConfigMap the pod cannot start without that is missing, as
/// the kubelet meets it (the volumes its containers mount, before the
/// containers are made);
/// and every Secret it names, which the agent does not read.
pub fn config(pod: &Pod, inv: &Inventory, known: &Known) -> (Option<Obstacle>, Vec<String>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(spec) = pod.spec.as_ref() else {
        return (None, Vec::new());
    };
    let mut refs = Refs {
        checked: known.config_maps.contains(&ns),
        ns,
        pod: pod.metadata.name.clone().unwrap_or_default(),
        inv,
        secrets: Vec::new(),
        found: None,
    };
    refs.volumes(spec);
    refs.env(spec);
    (refs.found, refs.secrets)
}

/// One pod's references, read in the kubelet's order: the first missing
/// ConfigMap found, and every Secret named.
struct Refs<'a> {
    ns: String,
    pod: String,
    inv: &'a Inventory,
    /// Whether the namespace's ConfigMaps were read.
    checked: bool,
    secrets: Vec<String>,
    found: Option<Obstacle>,
}

impl Refs<'_> {
    fn evidence(&self, cm: &str, field: String, what: String) -> Vec<Evidence> {
        vec![Evidence::field(
            format!("ConfigMap {}/{cm}", self.ns),
            field,
            what,
        )]
    }

    /// Whether a reference is still to be judged: none found yet, the
    /// ConfigMaps read, the reference not optional.
    fn judges(&self, optional: Option<bool>) -> bool {
        self.found.is_none() && self.checked && optional != Some(true)
    }

    fn volumes(&mut self, spec: &k8s_openapi::api::core::v1::PodSpec) {
        let ns = self.ns.clone();
        // The kubelet mounts only the volumes a container mounts or uses as
        // a device; a declared volume no container uses is never looked up.
        let used: std::collections::BTreeSet<&str> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| {
                let mounts = c.volume_mounts.iter().flatten().map(|m| m.name.as_str());
                let devices = c.volume_devices.iter().flatten().map(|d| d.name.as_str());
                mounts.chain(devices)
            })
            .collect();
        for (i, v) in spec
            .volumes
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, v)| used.contains(v.name.as_str()))
        {
            if let Some(s) = &v.secret {
                self.secrets.push(format!(
                    "Secret {ns}/{} (volume {})",
                    s.secret_name.as_deref().unwrap_or_default(),
                    v.name
                ));
            }
            let Some(c) = &v.config_map else { continue };
            if !self.judges(c.optional) {
                continue;
            }
            let cm_name = c.name.clone();
            let message = match config_map(self.inv, &ns, &cm_name) {
                None => format!("configmap \"{cm_name}\" not found"),
                Some(cm) => match c.items.iter().flatten().find(|k| !has_key(cm, &k.key)) {
                    Some(k) => format!("configmap references non-existent config key: {}", k.key),
                    None => continue,
                },
            };
            self.found = Some(Obstacle {
                stage: Stage::Mount,
                pods: vec![self.pod.clone()],
                message: format!(
                    "MountVolume.SetUp failed for volume \"{}\" : {message}",
                    v.name
                ),
                evidence: self.evidence(
                    &cm_name,
                    format!("spec.volumes[{i}].configMap"),
                    format!("{message} (volume {} of the template)", v.name),
                ),
                source: Source::Agent,
                detail: Detail::Volume {
                    volume: v.name.clone(),
                },
            });
        }
    }

    fn env(&mut self, spec: &k8s_openapi::api::core::v1::PodSpec) {
        let ns = self.ns.clone();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            for from in c.env_from.iter().flatten() {
                if let Some(s) = &from.secret_ref {
                    self.secrets
                        .push(format!("Secret {ns}/{} (envFrom of {})", s.name, c.name));
                }
                let Some(r) = &from.config_map_ref else {
                    continue;
                };
                if self.judges(r.optional) && config_map(self.inv, &ns, &r.name).is_none() {
                    let evidence = self.evidence(
                        &r.name,
                        format!("envFrom of container {}", c.name),
                        "does not exist".into(),
                    );
                    let message = format!("configmap \"{}\" not found", r.name);
                    self.found = Some(container(&self.pod, &c.name, message, evidence));
                }
            }
            for e in c.env.iter().flatten() {
                let Some(from) = &e.value_from else { continue };
                if let Some(s) = &from.secret_key_ref {
                    self.secrets.push(format!(
                        "Secret {ns}/{} key {} (env {} of {})",
                        s.name, s.key, e.name, c.name
                    ));
                }
                let Some(r) = &from.config_map_key_ref else {
                    continue;
                };
                if !self.judges(r.optional) {
                    continue;
                }
                let message = match config_map(self.inv, &ns, &r.name) {
                    None => format!("configmap \"{}\" not found", r.name),
                    Some(cm) if !has_key(cm, &r.key) => {
                        format!("couldn't find key {} in ConfigMap {ns}/{}", r.key, r.name)
                    }
                    Some(_) => continue,
                };
                let field = format!("env {} of container {}", e.name, c.name);
                let evidence = self.evidence(&r.name, field, message.clone());
                self.found = Some(container(&self.pod, &c.name, message, evidence));
            }
        }
    }
}

fn container(pod: &str, container: &str, message: String, evidence: Vec<Evidence>) -> Obstacle {
    Obstacle {
        stage: Stage::Container,
        pods: vec![pod.to_string()],
        message,
        evidence,
        source: Source::Agent,
        detail: Detail::Container {
            container: container.to_string(),
        },
    }
}
