//! Every object one run read, whichever source it came from. The live source
//! fills it with targeted reads, the file source with everything in the files;
//! facts are then cut from it by the same code, so both sources decide alike.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ResourceQuota, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The longest name or namespace a Kubernetes object can have.
pub const NAME_MAX: usize = 253;

/// No API server stores a longer name or namespace (a DNS subdomain): a
/// hand-written snapshot that has one is not a cluster's.
fn check_names(value: &Value, kind: &str, origin: &dyn Fn(&str) -> Error) -> Result<()> {
    for key in ["name", "namespace"] {
        if let Some(v) = value
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            && v.len() > NAME_MAX
        {
            let shown: String = v.chars().take(128).collect();
            return Err(origin(&format!(
                "{kind} metadata.{key} is {} bytes, longer than the {NAME_MAX} any Kubernetes object's can be: {shown:?}...",
                v.len()
            )));
        }
    }
    Ok(())
}

/// Objects by kind. Order within a kind is the order they were read in, which
/// the source makes deterministic (API order or file order).
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    pub stateful_sets: Vec<StatefulSet>,
    pub pods: Vec<Pod>,
    pub events: Vec<Event>,
    pub controller_revisions: Vec<ControllerRevision>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    /// The volumes bound to claims of suspects' unscheduled pods: their
    /// node affinity is where the pod can go.
    pub pvs: Vec<PersistentVolume>,
    pub storage_classes: Vec<StorageClass>,
    pub nodes: Vec<Node>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub limit_ranges: Vec<LimitRange>,
    pub resource_quotas: Vec<ResourceQuota>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub config_maps: Vec<ConfigMap>,
    pub leases: Vec<Lease>,
    /// Namespaces of candidates: their labels opt in and their annotations pause.
    pub namespaces: Vec<Namespace>,
    /// Admission webhook configurations, read when the API server said it
    /// could not call a webhook: they name the webhook's owner and service.
    pub validating_webhooks: Vec<ValidatingWebhookConfiguration>,
    pub mutating_webhooks: Vec<MutatingWebhookConfiguration>,
    /// What `stsmend preflight` checks a proposed template's references
    /// against; a run reads neither.
    pub service_accounts: Vec<ServiceAccount>,
    pub priority_classes: Vec<PriorityClass>,
    /// The last lines crashed containers wrote.
    pub logs: Vec<ContainerLog>,
    /// Kinds stsmend does not use, counted so the user can see they were skipped.
    pub skipped: BTreeMap<String, usize>,
}

/// The label (value `true`) of a ConfigMap that carries a [`ContainerLog`]
/// in a snapshot.
pub const LOG_LABEL: &str = "stsmend.io/container-log";
const LOG_POD: &str = "stsmend.io/pod";
const LOG_CONTAINER: &str = "stsmend.io/container";
const LOG_KEY: &str = "previous";

/// The last lines a crashed container wrote before it ended, what `kubectl
/// logs --previous --tail` shows. A log is not an API object: a snapshot
/// carries it as a ConfigMap labelled [`LOG_LABEL`] in the pod's namespace,
/// as it carries the time it was taken, so the snapshot stays a `v1 List`
/// that kubectl reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLog {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub text: String,
}

impl ContainerLog {
    fn from_config_map(cm: &ConfigMap) -> std::result::Result<Self, String> {
        let note = |key: &str| {
            cm.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .cloned()
                .ok_or_else(|| format!("no annotation {key}"))
        };
        Ok(Self {
            namespace: cm.metadata.namespace.clone().unwrap_or_default(),
            pod: note(LOG_POD)?,
            container: note(LOG_CONTAINER)?,
            text: cm
                .data
                .as_ref()
                .and_then(|d| d.get(LOG_KEY))
                .cloned()
                .ok_or_else(|| format!("no data.{LOG_KEY}"))?,
        })
    }

    fn to_config_map(&self) -> ConfigMap {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("stsmend-log.{}.{}", self.pod, self.container)),
                namespace: Some(self.namespace.clone()),
                labels: Some([(LOG_LABEL.to_string(), "true".to_string())].into()),
                annotations: Some(
                    [
                        (LOG_POD.to_string(), self.pod.clone()),
                        (LOG_CONTAINER.to_string(), self.container.clone()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            data: Some([(LOG_KEY.to_string(), self.text.clone())].into()),
            ..Default::default()
        }
    }
}

/// The kinds the inventory holds, as `apiVersion`/`kind` pairs. The group is
/// checked so that, say, a CRD named `Node` in another group is not mistaken
/// for a core Node.
const KINDS: &[(&str, &str)] = &[
    ("apps", "StatefulSet"),
    ("", "Pod"),
    ("", "Event"),
    ("apps", "ControllerRevision"),
    ("", "PersistentVolumeClaim"),
    ("", "PersistentVolume"),
    ("storage.k8s.io", "StorageClass"),
    ("", "Node"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("policy", "PodDisruptionBudget"),
    ("", "ConfigMap"),
    ("coordination.k8s.io", "Lease"),
    ("", "Namespace"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("", "ServiceAccount"),
    ("scheduling.k8s.io", "PriorityClass"),
];

fn expected_version(kind: &str) -> Option<&'static str> {
    use k8s_openapi::Resource;
    Some(match kind {
        "PodDisruptionBudget" => PodDisruptionBudget::API_VERSION,
        "HorizontalPodAutoscaler" => HorizontalPodAutoscaler::API_VERSION,
        "Lease" => Lease::API_VERSION,
        "StorageClass" => StorageClass::API_VERSION,
        "ValidatingWebhookConfiguration" => ValidatingWebhookConfiguration::API_VERSION,
        "MutatingWebhookConfiguration" => MutatingWebhookConfiguration::API_VERSION,
        "PriorityClass" => PriorityClass::API_VERSION,
        _ => return None,
    })
}

fn group_of(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

impl Inventory {
    /// Moves every object of `other` into this inventory, after its own.
    pub fn append(&mut self, other: Inventory) {
        // Destructured without `..`: a new kind cannot be forgotten here.
        let Inventory {
            mut stateful_sets,
            mut pods,
            mut events,
            mut controller_revisions,
            mut pvcs,
            mut pvs,
            mut storage_classes,
            mut nodes,
            mut hpas,
            mut limit_ranges,
            mut resource_quotas,
            mut pdbs,
            mut config_maps,
            mut leases,
            mut namespaces,
            mut validating_webhooks,
            mut mutating_webhooks,
            mut service_accounts,
            mut priority_classes,
            mut logs,
            skipped,
        } = other;
        self.stateful_sets.append(&mut stateful_sets);
        self.pods.append(&mut pods);
        self.events.append(&mut events);
        self.controller_revisions.append(&mut controller_revisions);
        self.pvcs.append(&mut pvcs);
        self.pvs.append(&mut pvs);
        self.storage_classes.append(&mut storage_classes);
        self.nodes.append(&mut nodes);
        self.hpas.append(&mut hpas);
        self.limit_ranges.append(&mut limit_ranges);
        self.resource_quotas.append(&mut resource_quotas);
        self.pdbs.append(&mut pdbs);
        self.config_maps.append(&mut config_maps);
        self.leases.append(&mut leases);
        self.namespaces.append(&mut namespaces);
        self.validating_webhooks.append(&mut validating_webhooks);
        self.mutating_webhooks.append(&mut mutating_webhooks);
        self.service_accounts.append(&mut service_accounts);
        self.priority_classes.append(&mut priority_classes);
        self.logs.append(&mut logs);
        for (kind, n) in skipped {
            *self.skipped.entry(kind).or_default() += n;
        }
    }

    /// Adds one object given as JSON. Lists are expanded. `origin` names the
    /// object in errors (file and document, or the API request).
    pub fn add_value(&mut self, value: Value, origin: &dyn Fn(&str) -> Error) -> Result<()> {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| origin("object has no `kind`"))?
            .to_string();
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| origin(&format!("{kind} has no `apiVersion`")))?
            .to_string();
        if kind == "List" || kind.ends_with("List") && value.get("items").is_some() {
            let Value::Object(mut map) = value else {
                unreachable!("an object with a kind is a map")
            };
            let items = match map.remove("items") {
                Some(Value::Array(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(_) => return Err(origin("`items` of a List must be a sequence")),
            };
            // `kubectl get pods -o json` prints a PodList whose items carry no
            // kind; the list's own kind says what they are.
            let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
            for (index, mut item) in items.into_iter().enumerate() {
                if let (Some(item_kind), Value::Object(obj)) = (item_kind, &mut item) {
                    obj.entry("kind")
                        .or_insert_with(|| Value::String(item_kind.to_string()));
                    obj.entry("apiVersion")
                        .or_insert_with(|| Value::String(api_version.clone()));
                }
                self.add_value(item, &|msg: &str| origin(&format!("items[{index}]: {msg}")))?;
            }
            return Ok(());
        }
        let group = group_of(&api_version);
        if !KINDS.contains(&(group, kind.as_str())) {
            *self
                .skipped
                .entry(format!("{api_version}/{kind}"))
                .or_default() += 1;
            return Ok(());
        }
        // Older or newer versions of a kind (policy/v1beta1 PDBs on 1.20,
        // autoscaling/v2 HPAs) carry the fields stsmend reads under the same
        // names, and k8s-openapi checks the version it decodes: read them as
        // the version stsmend is built against.
        let mut value = value;
        if let Some(expected) = expected_version(&kind)
            && expected != api_version
        {
            value["apiVersion"] = Value::String(expected.to_string());
        }
        check_names(&value, &kind, origin)?;
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(|ns| format!("{ns}/"))
            .unwrap_or_default();
        let label = format!("{kind} {namespace}{name}");
        // What no run reads of the other kinds (their managed fields and
        // last-applied copies), dropped as a live read drops it: a
        // snapshot's pods and Events are mostly that. A StatefulSet's are
        // read (when its spec was last written, and by whom).
        macro_rules! push {
            ($field:ident) => {{
                self.$field.push(
                    serde_json::from_value(value).map_err(|e| origin(&format!("{label}: {e}")))?,
                );
                if kind != "StatefulSet"
                    && let Some(object) = self.$field.last_mut()
                {
                    crate::trim::metadata(k8s_openapi::Metadata::metadata_mut(object));
                }
            }};
        }
        match kind.as_str() {
            "StatefulSet" => push!(stateful_sets),
            "Pod" => push!(pods),
            "Event" => push!(events),
            "ControllerRevision" => push!(controller_revisions),
            "PersistentVolumeClaim" => push!(pvcs),
            "PersistentVolume" => push!(pvs),
            "StorageClass" => push!(storage_classes),
            "Node" => push!(nodes),
            "HorizontalPodAutoscaler" => push!(hpas),
            "LimitRange" => push!(limit_ranges),
            "ResourceQuota" => push!(resource_quotas),
            "PodDisruptionBudget" => push!(pdbs),
            "ConfigMap" => {
                let cm: ConfigMap =
                    serde_json::from_value(value).map_err(|e| origin(&format!("{label}: {e}")))?;
                let is_log = cm
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LOG_LABEL))
                    .is_some_and(|v| v == "true");
                if is_log {
                    let log = ContainerLog::from_config_map(&cm)
                        .map_err(|e| origin(&format!("{label} (a container log): {e}")))?;
                    self.logs.push(log);
                } else {
                    self.config_maps.push(cm);
                }
            }
            "Lease" => push!(leases),
            "Namespace" => push!(namespaces),
            "ValidatingWebhookConfiguration" => push!(validating_webhooks),
            "MutatingWebhookConfiguration" => push!(mutating_webhooks),
            "ServiceAccount" => push!(service_accounts),
            "PriorityClass" => push!(priority_classes),
            _ => unreachable!("KINDS lists every kind matched here"),
        }
        Ok(())
    }

    /// Everything as one `v1 List`, the shape `kubectl get -o yaml` prints, so
    /// `stsmend plan --from` and kubectl both read it.
    pub fn to_list(&self) -> Result<Value> {
        let mut items = Vec::new();
        fn put<T: Serialize + k8s_openapi::Resource>(
            items: &mut Vec<Value>,
            objs: &[T],
        ) -> Result<()> {
            for obj in objs {
                let mut v = serde_json::to_value(obj).map_err(|e| Error::encode("snapshot", e))?;
                if let Value::Object(map) = &mut v {
                    map.insert("apiVersion".into(), T::API_VERSION.into());
                    map.insert("kind".into(), T::KIND.into());
                }
                items.push(v);
            }
            Ok(())
        }
        put(&mut items, &self.stateful_sets)?;
        put(&mut items, &self.controller_revisions)?;
        put(&mut items, &self.pods)?;
        put(&mut items, &self.pvcs)?;
        put(&mut items, &self.pvs)?;
        put(&mut items, &self.events)?;
        put(&mut items, &self.hpas)?;
        put(&mut items, &self.pdbs)?;
        put(&mut items, &self.limit_ranges)?;
        put(&mut items, &self.resource_quotas)?;
        put(&mut items, &self.nodes)?;
        put(&mut items, &self.storage_classes)?;
        put(&mut items, &self.config_maps)?;
        put(&mut items, &self.leases)?;
        put(&mut items, &self.namespaces)?;
        put(&mut items, &self.validating_webhooks)?;
        put(&mut items, &self.mutating_webhooks)?;
        put(&mut items, &self.service_accounts)?;
        put(&mut items, &self.priority_classes)?;
        let logs: Vec<ConfigMap> = self.logs.iter().map(ContainerLog::to_config_map).collect();
        put(&mut items, &logs)?;
        Ok(serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {},
            "items": items,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(message: &str) -> Error {
        Error::invalid("snapshot", "test.yaml", message)
    }

    #[test]
    fn a_name_no_api_server_would_store_is_bad_input() {
        let at_limit = "a".repeat(NAME_MAX);
        for (key, ok) in [("name", true), ("namespace", true)] {
            let mut inv = Inventory::default();
            let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {key: at_limit, "name": "p"}});
            assert_eq!(inv.add_value(pod, &origin).is_ok(), ok);
            let long = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", key: "x".repeat(10_000_000)}});
            let e = inv.add_value(long, &origin).unwrap_err().to_string();
            assert!(
                e.contains(&format!("metadata.{key} is 10000000 bytes")),
                "{e}"
            );
            assert!(
                e.len() < 600,
                "the error quotes a little of it: {}",
                e.len()
            );
        }
    }

    #[test]
    fn a_container_log_travels_in_a_snapshot_as_a_config_map() {
        let log = ContainerLog {
            namespace: "shop".into(),
            pod: "cache-1".into(),
            container: "app".into(),
            text: "app 2: starting\napp 2: fatal: no config\n".into(),
        };
        let inv = Inventory {
            logs: vec![log.clone()],
            ..Inventory::default()
        };
        let mut back = Inventory::default();
        back.add_value(inv.to_list().unwrap(), &origin).unwrap();
        assert_eq!(back.logs, vec![log]);
        assert!(back.config_maps.is_empty(), "{:?}", back.config_maps);
    }

    #[test]
    fn a_container_log_without_its_pod_is_an_error_naming_it() {
        let cm = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "stsmend-log.x", "namespace": "shop",
                         "labels": {LOG_LABEL: "true"},
                         "annotations": {LOG_CONTAINER: "app"}},
            "data": {LOG_KEY: "x"},
        });
        let err = Inventory::default()
            .add_value(cm, &origin)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ConfigMap shop/stsmend-log.x"), "{err}");
        assert!(err.contains(LOG_POD), "{err}");
    }
}
