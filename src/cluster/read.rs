//! The live source. One paginated LIST of StatefulSets (one per namespace when
//! the scope names namespaces); every other read is for a suspect only, and
//! reads shared by suspects of one namespace are made once.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Namespace, Node, PersistentVolumeClaim, Pod, ResourceQuota,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use crate::detect::{Screen, screen};
use crate::error::{Error, Result};
use crate::facts::{AUTOSCALER_STATUS, CONTROLLER_LEASE};
use crate::inventory::Inventory;
use crate::scope::Scope;

/// Objects per LIST page.
pub const PAGE: u32 = 500;

/// Lists every page of a resource.
async fn list_all<K>(api: &Api<K>, mut lp: ListParams, what: &str) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    lp.limit = Some(PAGE);
    let mut out = Vec::new();
    loop {
        let page = api
            .list(&lp)
            .await
            .map_err(|e| Error::api(format!("list {what}"), e))?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp.continue_token = Some(token),
            _ => return Ok(out),
        }
    }
}

/// A GET that tolerates absence, and (for optional reads) refusal.
async fn get_optional<K>(api: Api<K>, name: &str, what: &str) -> Result<Option<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            tracing::warn!(what, "not allowed to read; continuing without it");
            Ok(None)
        }
        Err(e) => Err(Error::api(format!("get {what}"), e)),
    }
}

/// The query form of an object's label selector, for server-side filtering.
fn selector_query(sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Reads what a run needs. `state` names the agent's state ConfigMap
/// (namespace, name), read when there is any suspect.
pub async fn read(client: &Client, scope: &Scope, state: (&str, &str)) -> Result<Inventory> {
    let mut inv = Inventory::default();
    let lp = if scope.selector.is_empty() {
        ListParams::default()
    } else {
        ListParams::default().labels(scope.selector.as_query())
    };
    if scope.namespaces.is_empty() {
        inv.stateful_sets =
            list_all(&Api::<StatefulSet>::all(client.clone()), lp, "statefulsets").await?;
    } else {
        for ns in &scope.namespaces {
            let api = Api::<StatefulSet>::namespaced(client.clone(), ns);
            inv.stateful_sets
                .extend(list_all(&api, lp.clone(), &format!("statefulsets in {ns}")).await?);
        }
    }
    let suspects: Vec<StatefulSet> = inv
        .stateful_sets
        .iter()
        .filter(|s| scope.includes(s) && matches!(screen(s), Screen::Suspect(_)))
        .cloned()
        .collect();
    tracing::info!(
        statefulsets = inv.stateful_sets.len(),
        suspects = suspects.len(),
        "listed StatefulSets"
    );
    if suspects.is_empty() {
        return Ok(inv);
    }

    let mut namespaces = BTreeSet::new();
    let mut priority_classes = BTreeSet::new();
    for sts in &suspects {
        let ns = sts.metadata.namespace.clone().unwrap_or_default();
        let name = sts.metadata.name.clone().unwrap_or_default();
        let spec = sts.spec.as_ref();
        if let Some(pc) = spec
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.priority_class_name.clone())
        {
            priority_classes.insert(pc);
        }
        let selector = spec
            .map(|s| selector_query(&s.selector))
            .unwrap_or_default();
        // An empty selector would match every pod in the namespace; the
        // API server rejects such StatefulSets anyway.
        if selector.is_empty() {
            continue;
        }
        let by_selector = ListParams::default().labels(&selector);
        inv.pods.extend(
            list_all(
                &Api::<Pod>::namespaced(client.clone(), &ns),
                by_selector.clone(),
                &format!("pods of {ns}/{name}"),
            )
            .await?,
        );
        inv.controller_revisions.extend(
            list_all(
                &Api::<ControllerRevision>::namespaced(client.clone(), &ns),
                by_selector.clone(),
                &format!("controllerrevisions of {ns}/{name}"),
            )
            .await?,
        );
        inv.pvcs.extend(
            list_all(
                &Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns),
                by_selector,
                &format!("persistentvolumeclaims of {ns}/{name}"),
            )
            .await?,
        );
        namespaces.insert(ns);
    }
    for ns in &namespaces {
        macro_rules! per_ns {
            ($field:ident, $kind:ty, $what:literal) => {
                inv.$field.extend(
                    list_all(
                        &Api::<$kind>::namespaced(client.clone(), ns),
                        ListParams::default(),
                        &format!(concat!($what, " in {}"), ns),
                    )
                    .await?,
                )
            };
        }
        per_ns!(events, Event, "events");
        per_ns!(hpas, HorizontalPodAutoscaler, "horizontalpodautoscalers");
        inv.pdbs.extend(list_pdbs(client, ns).await?);
        per_ns!(limit_ranges, LimitRange, "limitranges");
        per_ns!(resource_quotas, ResourceQuota, "resourcequotas");
    }
    for ns in &namespaces {
        if let Some(n) =
            get_optional(Api::<Namespace>::all(client.clone()), ns, "namespace").await?
        {
            inv.namespaces.push(n);
        }
    }
    inv.nodes = list_all(
        &Api::<Node>::all(client.clone()),
        ListParams::default(),
        "nodes",
    )
    .await?;
    inv.storage_classes = list_all(
        &Api::<StorageClass>::all(client.clone()),
        ListParams::default(),
        "storageclasses",
    )
    .await?;
    for pc in priority_classes {
        if let Some(p) = get_optional(
            Api::<PriorityClass>::all(client.clone()),
            &pc,
            "priorityclass",
        )
        .await?
        {
            inv.priority_classes.push(p);
        }
    }
    for (ns, name) in [AUTOSCALER_STATUS, state, (state.0, crate::undo::CONFIG_MAP)] {
        if let Some(cm) = get_optional(
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            name,
            &format!("configmap {ns}/{name}"),
        )
        .await?
        {
            inv.config_maps.push(cm);
        }
    }
    if let Some(lease) = get_optional(
        Api::<Lease>::namespaced(client.clone(), CONTROLLER_LEASE.0),
        CONTROLLER_LEASE.1,
        "controller-manager lease",
    )
    .await?
    {
        inv.leases.push(lease);
    }
    dedup(&mut inv);
    Ok(inv)
}

/// PodDisruptionBudgets are `policy/v1` from Kubernetes 1.21 and
/// `policy/v1beta1` before; the fields stsmend reads are the same in both.
async fn list_pdbs(client: &Client, ns: &str) -> Result<Vec<PodDisruptionBudget>> {
    let what = format!("poddisruptionbudgets in {ns}");
    let v1 = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    match list_all(&v1, ListParams::default(), &what).await {
        Err(Error::Api { source, .. }) if matches!(&*source, kube::Error::Api(s) if s.code == 404) =>
        {
            let gvk = kube::api::GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget");
            let resource = kube::api::ApiResource::from_gvk(&gvk);
            let api =
                Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource);
            list_all(&api, ListParams::default(), &what)
                .await?
                .into_iter()
                .map(|o| {
                    let mut v = serde_json::to_value(&o).map_err(|e| Error::Encode {
                        what: "PodDisruptionBudget",
                        message: e.to_string(),
                    })?;
                    v["apiVersion"] = "policy/v1".into();
                    serde_json::from_value(v).map_err(|e| Error::Encode {
                        what: "PodDisruptionBudget",
                        message: e.to_string(),
                    })
                })
                .collect()
        }
        other => other,
    }
}

/// Two suspects with overlapping selectors read some objects twice.
fn dedup(inv: &mut Inventory) {
    fn by_uid<K: kube::Resource>(v: &mut Vec<K>) {
        let mut seen = BTreeMap::new();
        v.retain(|o| {
            let key = o
                .meta()
                .uid
                .clone()
                .unwrap_or_else(|| format!("{:?}/{:?}", o.meta().namespace, o.meta().name));
            seen.insert(key, ()).is_none()
        });
    }
    by_uid(&mut inv.pods);
    by_uid(&mut inv.controller_revisions);
    by_uid(&mut inv.pvcs);
}
