//! Every object one run read, whichever source it came from. The live source
//! fills it with targeted reads, the file source with everything in the files;
//! facts are then cut from it by the same code, so both sources decide alike.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Namespace, Node, PersistentVolumeClaim, Pod, ResourceQuota,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Objects by kind. Order within a kind is the order they were read in, which
/// the source makes deterministic (API order or file order).
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    pub stateful_sets: Vec<StatefulSet>,
    pub pods: Vec<Pod>,
    pub events: Vec<Event>,
    pub controller_revisions: Vec<ControllerRevision>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub storage_classes: Vec<StorageClass>,
    pub nodes: Vec<Node>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub limit_ranges: Vec<LimitRange>,
    pub resource_quotas: Vec<ResourceQuota>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub priority_classes: Vec<PriorityClass>,
    pub config_maps: Vec<ConfigMap>,
    pub leases: Vec<Lease>,
    /// Namespaces of candidates: their labels opt in and their annotations pause.
    pub namespaces: Vec<Namespace>,
    /// Kinds stsmend does not use, counted so the user can see they were skipped.
    pub skipped: BTreeMap<String, usize>,
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
    ("storage.k8s.io", "StorageClass"),
    ("", "Node"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("policy", "PodDisruptionBudget"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("", "ConfigMap"),
    ("coordination.k8s.io", "Lease"),
    ("", "Namespace"),
];

fn expected_version(kind: &str) -> Option<&'static str> {
    use k8s_openapi::Resource;
    Some(match kind {
        "PodDisruptionBudget" => PodDisruptionBudget::API_VERSION,
        "HorizontalPodAutoscaler" => HorizontalPodAutoscaler::API_VERSION,
        "Lease" => Lease::API_VERSION,
        "PriorityClass" => PriorityClass::API_VERSION,
        "StorageClass" => StorageClass::API_VERSION,
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
        macro_rules! push {
            ($field:ident) => {
                self.$field.push(
                    serde_json::from_value(value).map_err(|e| origin(&format!("{label}: {e}")))?,
                )
            };
        }
        match kind.as_str() {
            "StatefulSet" => push!(stateful_sets),
            "Pod" => push!(pods),
            "Event" => push!(events),
            "ControllerRevision" => push!(controller_revisions),
            "PersistentVolumeClaim" => push!(pvcs),
            "StorageClass" => push!(storage_classes),
            "Node" => push!(nodes),
            "HorizontalPodAutoscaler" => push!(hpas),
            "LimitRange" => push!(limit_ranges),
            "ResourceQuota" => push!(resource_quotas),
            "PodDisruptionBudget" => push!(pdbs),
            "PriorityClass" => push!(priority_classes),
            "ConfigMap" => push!(config_maps),
            "Lease" => push!(leases),
            "Namespace" => push!(namespaces),
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
                let mut v = serde_json::to_value(obj).map_err(|e| Error::Encode {
                    what: "snapshot",
                    message: e.to_string(),
                })?;
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
        put(&mut items, &self.events)?;
        put(&mut items, &self.hpas)?;
        put(&mut items, &self.pdbs)?;
        put(&mut items, &self.limit_ranges)?;
        put(&mut items, &self.resource_quotas)?;
        put(&mut items, &self.nodes)?;
        put(&mut items, &self.storage_classes)?;
        put(&mut items, &self.priority_classes)?;
        put(&mut items, &self.config_maps)?;
        put(&mut items, &self.leases)?;
        put(&mut items, &self.namespaces)?;
        Ok(serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {},
            "items": items,
        }))
    }
}
