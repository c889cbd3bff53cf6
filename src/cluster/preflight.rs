//! `stsmend preflight` against a live cluster: what the change lands among,
//! read with the agent's read RBAC (plus, where `stsmend-preflight` is
//! bound, the ServiceAccounts, PriorityClasses and named ConfigMaps), and
//! the API server's own answer to the change: a server-side dry run
//! (`dryRun=All`) of the StatefulSet's update and of each first pod's
//! create, so every admission plugin and webhook the real pods will meet is
//! asked. Every write here carries `dryRun=All`; nothing is persisted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Node, PersistentVolumeClaim, Pod, ResourceQuota,
    ServiceAccount,
};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::read::{Keep, Lane, Reader, paged};

use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::preflight::{Known, Server};

/// The suffix a dry-run pod gets when a pod of its name exists: a dry-run
/// create of an existing name is refused as a conflict, before admission.
pub const DRY_RUN_SUFFIX: &str = "-stsmend-preflight";

/// A read the agent may not be allowed: `None` when RBAC refuses it, so
/// the prediction says it was not checked instead of calling things
/// missing.
fn optional<T>(got: Result<T>) -> Result<Option<T>> {
    match got {
        Ok(v) => Ok(Some(v)),
        Err(e) if super::read::is_forbidden(&e) => {
            tracing::info!(error = %e, "not permitted; preflight leaves it unchecked");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Every page of a LIST, whole, through the run's reader (its retries and
/// in-flight bound).
async fn list<K>(reader: &Reader<'_>, api: Api<K>, what: &str) -> Result<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    reader
        .list(api, paged(), what.to_string(), Lane::Shared, |_| true)
        .await
}

fn namespaced<K>(client: &Client, ns: &str) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), ns)
}

/// The ConfigMaps a template names, each read by name.
fn config_map_names(sts: &StatefulSet) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some(pod) = sts.spec.template.spec.as_ref() else {
        return names;
    };
    for v in pod.volumes.iter().flatten() {
        names.extend(v.config_map.as_ref().map(|c| c.name.clone()));
    }
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        for f in c.env_from.iter().flatten() {
            names.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            names.extend(
                e.value_from
                    .as_ref()
                    .and_then(|v| v.config_map_key_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
        }
    }
    names
}

/// The namespaces a change lands in, each with the ConfigMaps its
/// templates name.
pub fn wanted(proposed: &[StatefulSet]) -> Wanted {
    let mut by_ns: Wanted = BTreeMap::new();
    for s in proposed {
        if let Some(names) = by_ns
            .entry(s.metadata.namespace.clone().unwrap_or_default())
            .or_insert_with(|| Some(BTreeSet::new()))
        {
            names.extend(config_map_names(s));
        }
    }
    by_ns
}

/// Per namespace, the ConfigMaps to read by name, or `None` for all of
/// them (a snapshot for later preflights: their keys, values dropped).
pub type Wanted = BTreeMap<String, Option<BTreeSet<String>>>;

/// A ConfigMap as preflight needs it: its keys. The values stay in the
/// cluster, out of a snapshot that may be committed.
fn keys_only(mut cm: ConfigMap) -> ConfigMap {
    for v in cm.data.iter_mut().flat_map(|d| d.values_mut()) {
        v.clear();
    }
    for v in cm.binary_data.iter_mut().flat_map(|d| d.values_mut()) {
        v.0.clear();
    }
    cm.metadata.managed_fields = None;
    cm.metadata.annotations = None;
    cm
}

/// What the proposed sets land among: their namespaces' objects, the
/// nodes with every pod on them, and the cluster's classes and webhooks.
pub async fn read(client: &Client, wanted: &Wanted) -> Result<(Inventory, Known)> {
    let reader = Reader::new(client, Keep::Whole);
    let mut inv = Inventory::default();
    let mut known = Known::default();
    inv.nodes = list(&reader, Api::<Node>::all(client.clone()), "nodes").await?;
    inv.pods = list(&reader, Api::<Pod>::all(client.clone()), "pods").await?;
    inv.storage_classes = list(
        &reader,
        Api::<StorageClass>::all(client.clone()),
        "storage classes",
    )
    .await?;
    if let Some(v) = optional(
        list(
            &reader,
            Api::<PriorityClass>::all(client.clone()),
            "priority classes",
        )
        .await,
    )? {
        inv.priority_classes = v;
        known.priority_classes = true;
    }
    inv.validating_webhooks = optional(
        list(
            &reader,
            Api::<ValidatingWebhookConfiguration>::all(client.clone()),
            "validating webhooks",
        )
        .await,
    )?
    .unwrap_or_default();
    inv.mutating_webhooks = optional(
        list(
            &reader,
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            "mutating webhooks",
        )
        .await,
    )?
    .unwrap_or_default();
    for (ns, config_maps) in wanted {
        read_namespace(
            &reader,
            client,
            ns.clone(),
            config_maps,
            &mut inv,
            &mut known,
        )
        .await?;
    }
    Ok((inv, known))
}

/// One namespace's objects, into `inv`; what was read of its ServiceAccounts
/// and ConfigMaps, into `known`.
async fn read_namespace(
    reader: &Reader<'_>,
    c: &Client,
    ns: String,
    config_maps: &Option<BTreeSet<String>>,
    inv: &mut Inventory,
    known: &mut Known,
) -> Result<()> {
    inv.stateful_sets
        .extend(list(reader, namespaced::<StatefulSet>(c, &ns), "statefulsets").await?);
    inv.controller_revisions.extend(
        list(
            reader,
            namespaced::<ControllerRevision>(c, &ns),
            "controllerrevisions",
        )
        .await?,
    );
    inv.pvcs.extend(
        list(
            reader,
            namespaced::<PersistentVolumeClaim>(c, &ns),
            "persistentvolumeclaims",
        )
        .await?,
    );
    inv.limit_ranges
        .extend(list(reader, namespaced::<LimitRange>(c, &ns), "limitranges").await?);
    inv.resource_quotas.extend(
        list(
            reader,
            namespaced::<ResourceQuota>(c, &ns),
            "resourcequotas",
        )
        .await?,
    );
    if let Some(n) = optional(
        Api::<Namespace>::all(c.clone())
            .get_opt(&ns)
            .await
            .map_err(|e| Error::api(format!("reading namespace {ns}"), e)),
    )? {
        inv.namespaces.extend(n);
    }
    if let Some(v) = optional(
        list(
            reader,
            namespaced::<ServiceAccount>(c, &ns),
            "serviceaccounts",
        )
        .await,
    )? {
        inv.service_accounts.extend(v);
        known.service_accounts.insert(ns.clone());
    }
    let api = namespaced::<ConfigMap>(c, &ns);
    let Some(config_maps) = config_maps else {
        let all = list(reader, api, "configmaps").await;
        if let Some(all) = optional(all)? {
            inv.config_maps.extend(all.into_iter().map(keys_only));
            known.config_maps.insert(ns);
        }
        return Ok(());
    };
    let mut read_all = true;
    for name in config_maps {
        let got = api
            .get_opt(name)
            .await
            .map_err(|e| Error::api(format!("reading ConfigMap {ns}/{name}"), e));
        match optional(got)? {
            Some(cm) => inv.config_maps.extend(cm),
            None => read_all = false,
        }
    }
    if read_all {
        known.config_maps.insert(ns);
    }
    Ok(())
}

/// Why the API server refused a dry run, in its words; `None` when the
/// refusal is about the agent's own permission to ask (its RBAC), which
/// says nothing about the change.
fn refusal(e: &kube::Error) -> Option<String> {
    let kube::Error::Api(r) = e else { return None };
    let rbac = r.code == 403 && r.message.contains("cannot ") && r.message.contains(" resource ");
    (!rbac && r.code != 401).then(|| r.message.clone())
}

/// A dry run's answer: the object as it would be stored, the server's
/// refusal, or nothing where the agent may not ask (noted in `server`).
fn answer<T>(
    got: kube::Result<T>,
    what: &str,
    server: &mut Server,
) -> Result<Option<std::result::Result<T, String>>> {
    match got {
        Ok(v) => Ok(Some(Ok(v))),
        Err(e) => match refusal(&e) {
            Some(message) => Ok(Some(Err(message))),
            None if matches!(&e, kube::Error::Api(r) if r.code == 403) => {
                tracing::warn!(error = %e, "{what}: not permitted; the agent's own reading stands");
                server.not_permitted.push(format!(
                    "{what}: not permitted (bind stsmend-preflight); the agent's own reading stands"
                ));
                Ok(None)
            }
            None => Err(Error::api(what.to_string(), e)),
        },
    }
}

/// Asks the API server about one StatefulSet's change: a dry-run update (a
/// create for a new set) and a dry-run create of each of `pods`.
pub async fn dry_run(
    client: &Client,
    proposed: &StatefulSet,
    live: Option<&StatefulSet>,
    pods: &[Pod],
    existing: &BTreeSet<String>,
) -> Result<Server> {
    let ns = proposed.metadata.namespace.clone().unwrap_or_default();
    let name = proposed.metadata.name.clone().unwrap_or_default();
    let dry = PostParams {
        dry_run: true,
        field_manager: Some("stsmend-preflight".into()),
    };
    let sets = namespaced::<StatefulSet>(client, &ns);
    let mut object = proposed.clone();
    object.status = None;
    let got = match live {
        Some(l) => {
            object.metadata.resource_version = l.metadata.resource_version.clone();
            object.metadata.uid = l.metadata.uid.clone();
            sets.replace(&name, &dry, &object).await
        }
        None => sets.create(&dry, &object).await,
    };
    let mut server = Server::default();
    let what = match live {
        Some(_) => format!("dry-run update of StatefulSet {ns}/{name}"),
        None => format!("dry-run create of StatefulSet {ns}/{name}"),
    };
    server.stateful_set = answer(got, &what, &mut server)?;
    let api = namespaced::<Pod>(client, &ns);
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let mut sent = pod.clone();
        if existing.contains(&pod_name) {
            sent.metadata.name = Some(format!("{pod_name}{DRY_RUN_SUFFIX}"));
        }
        let got = api.create(&dry, &sent).await;
        let got = answer(
            got,
            &format!("dry-run create of Pod {ns}/{pod_name}"),
            &mut server,
        )?;
        if let Some(answer) = got {
            let answer = answer
                .map(|mut p| {
                    p.metadata.name = Some(pod_name.clone());
                    p
                })
                .map_err(|m| m.replace(&format!("{pod_name}{DRY_RUN_SUFFIX}"), &pod_name));
            server.pods.insert(pod_name, answer);
        }
    }
    Ok(server)
}
