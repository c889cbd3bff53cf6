//! The live source. One paginated LIST of StatefulSets (one per namespace when
//! the scope names namespaces); every other read is for a suspect only, and
//! reads shared by suspects of one namespace are made once.
//!
//! Reads overlap: a namespace's suspects are read while the LIST's next pages
//! are still coming, a few requests at a time. The StatefulSets, events and
//! nodes are listed with quorum reads, page by page, as `kubectl get` does;
//! the suspects' own objects and the small per-namespace kinds are read at
//! "any" resource version (`resourceVersion=0`), which the API server answers
//! from its watch cache, as it answers informers, without a trip to etcd
//! (which would read every pod of the namespace to filter by a selector).
//! They may be a moment behind; a failure held for the threshold is not, and
//! every write is pre-conditioned on what it changes anyway.
//!
//! Memory is bounded by the suspects, not the fleet: healthy StatefulSets and
//! nodes are trimmed as their pages arrive ([`crate::trim`]), and of a
//! namespace's events only those about a suspect are kept.

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ResourceQuota,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use serde::de::DeserializeOwned;
use tokio::sync::{OnceCell, Semaphore};

use crate::detect::{Screen, screen};
use crate::error::{Error, Result};
use crate::facts::{
    AUTOSCALER_STATUS, CONTROLLER_LEASE, event_about, logs_to_read, name_of, volumes_to_read,
};
use crate::inventory::{ContainerLog, Inventory};
use crate::scope::Scope;

/// Objects per LIST page.
pub const PAGE: u32 = 500;

/// Requests in flight at once, besides the StatefulSet LIST. The suspects'
/// reads are small and mostly wait on the API server; a few at a time hide
/// the round trips without crowding the server (docs/performance.md).
pub const IN_FLIGHT: usize = 8;

/// Of a crashed container's previous log, the last lines read, and at most
/// this many bytes of them: evidence for a person, not an archive.
pub const LOG_LINES: i64 = 20;
pub const LOG_BYTES: i64 = 4096;

/// What a read keeps of the objects a run does not look into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// What screening, diagnosis and the policies read (`plan`, `run`).
    Facts,
    /// Healthy StatefulSets and nodes whole, for a snapshot a person may
    /// read. Events are those about suspects either way.
    Whole,
}

/// Which requests a LIST shares the in-flight limit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// The StatefulSet LIST: one page at a time, never queued behind the
    /// suspects' reads it feeds.
    Scan,
    /// Every other read: at most [`IN_FLIGHT`] at once.
    Shared,
}

/// A quorum LIST, page by page: for what may be large (the fleet's
/// StatefulSets, a namespace's events, the nodes).
pub(super) fn paged() -> ListParams {
    ListParams::default().limit(PAGE)
}

/// A LIST served from the API server's watch cache, in one response (the
/// cache does not page, and kube leaves out `resourceVersion=0` when a limit
/// is set): for what a suspect bounds (its pods, revisions and claims) or is
/// small by nature (a namespace's quotas, limit ranges, HPAs and PDBs).
fn cached() -> ListParams {
    ListParams::default().match_any()
}

/// Suspects of one namespace, read together once the LIST has moved past
/// their namespace.
#[derive(Debug)]
struct Group {
    namespace: String,
    suspects: Vec<StatefulSet>,
}

/// What was read for one [`Group`].
#[derive(Debug, Default)]
struct Part {
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
    pvcs: Vec<PersistentVolumeClaim>,
    pvs: Vec<PersistentVolume>,
    logs: Vec<ContainerLog>,
    events: Vec<Event>,
    hpas: Vec<HorizontalPodAutoscaler>,
    pdbs: Vec<PodDisruptionBudget>,
    limit_ranges: Vec<LimitRange>,
    resource_quotas: Vec<ResourceQuota>,
    namespace: Option<Namespace>,
}

/// Collects suspects as the LIST yields StatefulSets, and hands a
/// namespace's group on when the LIST moves to another namespace. The API
/// server lists in key order (namespace, then name); should a namespace
/// come back anyway, it is read again and [`dedup`] drops the repeats.
struct Grouper {
    out: futures::channel::mpsc::UnboundedSender<Group>,
    current: Option<Group>,
    listed: usize,
    suspects: usize,
}

impl Grouper {
    fn add(&mut self, sts: &StatefulSet, suspect: bool) {
        self.listed += 1;
        let ns = sts.metadata.namespace.as_deref().unwrap_or_default();
        if self.current.as_ref().is_some_and(|g| g.namespace != ns) {
            self.flush();
        }
        if suspect {
            self.suspects += 1;
            self.current
                .get_or_insert_with(|| Group {
                    namespace: ns.to_string(),
                    suspects: Vec::new(),
                })
                .suspects
                .push(sts.clone());
        }
    }

    fn flush(&mut self) {
        if let Some(g) = self.current.take() {
            // A closed receiver means the reads failed; that error is the
            // one the run reports.
            let _ = self.out.unbounded_send(g);
        }
    }
}

pub(super) struct Reader<'a> {
    client: &'a Client,
    keep: Keep,
    in_flight: Semaphore,
    /// Whether the server serves `policy/v1` PodDisruptionBudgets (1.21 and
    /// later); asked once a run.
    pdb_v1: OnceCell<bool>,
}

impl<'a> Reader<'a> {
    /// A reader of whole objects or of what a run reads, at most
    /// [`IN_FLIGHT`] requests at once.
    pub(super) fn new(client: &'a Client, keep: Keep) -> Self {
        Self {
            client,
            keep,
            in_flight: Semaphore::new(IN_FLIGHT),
            pdb_v1: OnceCell::new(),
        }
    }

    /// Lists every page of a resource, keeping the items `keep` returns true
    /// for (it may trim them first), so a page's other items are dropped
    /// before the next page is read.
    pub(super) async fn list<K>(
        &self,
        api: Api<K>,
        mut lp: ListParams,
        what: String,
        lane: Lane,
        mut keep: impl FnMut(&mut K) -> bool,
    ) -> Result<Vec<K>>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut out = Vec::new();
        loop {
            let page = {
                let _permit = match lane {
                    Lane::Scan => None,
                    Lane::Shared => Some(self.in_flight.acquire().await.expect("never closed")),
                };
                crate::cluster::retry::retry(crate::cluster::retry::READ_DELAY, || async {
                    api.list(&lp)
                        .await
                        .map_err(|e| Error::api(format!("list {what}"), e))
                })
                .await?
            };
            if lane == Lane::Scan && out.is_empty() {
                // The scan keeps every item: the server's count of what is
                // left spares the doublings of the fleet's buffer.
                let left = page.metadata.remaining_item_count.unwrap_or(0);
                out.reserve_exact(page.items.len() + usize::try_from(left).unwrap_or(0));
            }
            out.extend(
                page.items
                    .into_iter()
                    .filter_map(|mut o| keep(&mut o).then_some(o)),
            );
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => {
                    // The token carries the resource version; the server
                    // refuses both.
                    lp.resource_version = None;
                    lp.version_match = None;
                    lp.continue_token = Some(token);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Keeps every item, less what no run reads ([`crate::trim::metadata`])
    /// unless whole objects were asked for.
    fn every<K: kube::Resource>(&self) -> impl FnMut(&mut K) -> bool + '_ {
        move |o| {
            if self.keep == Keep::Facts {
                crate::trim::metadata(o.meta_mut());
            }
            true
        }
    }

    /// A GET that tolerates absence, and (for optional reads) refusal.
    async fn get_optional<K>(&self, api: Api<K>, name: &str, what: &str) -> Result<Option<K>>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let _permit = self.in_flight.acquire().await.expect("never closed");
        let got = crate::cluster::retry::retry(crate::cluster::retry::READ_DELAY, || async {
            api.get_opt(name)
                .await
                .map_err(|e| Error::api(format!("get {what}"), e))
        })
        .await;
        forbidden_is_nothing(got, what)
    }

    /// The LIST of StatefulSets, handing suspects to `groups` as it goes.
    async fn scan(&self, scope: &Scope, mut grouper: Grouper) -> Result<Vec<StatefulSet>> {
        let lp = if scope.selector.is_empty() {
            paged()
        } else {
            paged().labels(scope.selector.as_query())
        };
        let apis: Vec<(Api<StatefulSet>, String)> = if scope.namespaces.is_empty() {
            vec![(Api::all(self.client.clone()), "statefulsets".into())]
        } else {
            scope
                .namespaces
                .iter()
                .map(|ns| {
                    (
                        Api::namespaced(self.client.clone(), ns),
                        format!("statefulsets in {ns}"),
                    )
                })
                .collect()
        };
        let mut all = Vec::new();
        for (api, what) in apis {
            let page = self
                .list(api, lp.clone(), what, Lane::Scan, |sts| {
                    let suspect = scope.includes(sts) && matches!(screen(sts), Screen::Suspect(_));
                    grouper.add(sts, suspect);
                    if !suspect && self.keep == Keep::Facts {
                        crate::trim::screened(sts);
                    }
                    true
                })
                .await?;
            if all.is_empty() {
                all = page;
            } else {
                all.extend(page);
            }
            grouper.flush();
        }
        tracing::info!(
            statefulsets = grouper.listed,
            suspects = grouper.suspects,
            "listed StatefulSets"
        );
        Ok(all)
    }

    /// A suspect's pods, ControllerRevisions and claims, by its selector;
    /// then the volumes of its unscheduled pods' claims and its crashed
    /// containers' previous logs, which those name.
    async fn read_set(&self, ns: &str, sts: &StatefulSet) -> Result<Part> {
        let name = name_of(sts);
        // An empty selector would match every pod in the namespace, and an
        // operator the API does not define means nothing: the API server
        // rejects such StatefulSets anyway.
        let selector =
            kube::core::Selector::try_from(sts.spec.selector.clone()).unwrap_or_default();
        if selector.selects_all() {
            return Ok(Default::default());
        }
        let lp = cached().labels_from(&selector);
        let c = || self.client.clone();
        let (pods, revisions, pvcs) = futures::try_join!(
            self.list(
                Api::<Pod>::namespaced(c(), ns),
                lp.clone(),
                format!("pods of {ns}/{name}"),
                Lane::Shared,
                self.every(),
            ),
            self.list(
                Api::<ControllerRevision>::namespaced(c(), ns),
                lp.clone(),
                format!("controllerrevisions of {ns}/{name}"),
                Lane::Shared,
                self.every(),
            ),
            self.list(
                Api::<PersistentVolumeClaim>::namespaced(c(), ns),
                lp.clone(),
                format!("persistentvolumeclaims of {ns}/{name}"),
                Lane::Shared,
                self.every(),
            ),
        )?;
        let volumes = volumes_to_read(sts, &pods, &pvcs);
        let crashed = logs_to_read(&pods);
        let (pvs, logs) = futures::join!(
            futures::future::try_join_all(volumes.iter().map(|pv| self.get_optional(
                Api::<PersistentVolume>::all(c()),
                pv,
                "persistentvolume",
            ))),
            futures::future::join_all(
                crashed
                    .iter()
                    .map(|(pod, container)| self.previous_log(ns, pod, container))
            ),
        );
        let mut pvs: Vec<PersistentVolume> = pvs?.into_iter().flatten().collect();
        if self.keep == Keep::Facts {
            pvs.iter_mut()
                .for_each(|v| crate::trim::metadata(&mut v.metadata));
        }
        Ok(Part {
            pods,
            revisions,
            pvcs,
            pvs,
            logs: logs.into_iter().flatten().collect(),
            ..Part::default()
        })
    }

    /// The last lines of a container's previous run. Evidence, never a
    /// reason to fail the run: without `pods/log` in the role, or when the
    /// kubelet no longer has the log, the finding goes without it.
    async fn previous_log(&self, ns: &str, pod: &str, container: &str) -> Option<ContainerLog> {
        let lp = LogParams {
            container: Some(container.to_string()),
            previous: true,
            tail_lines: Some(LOG_LINES),
            limit_bytes: Some(LOG_BYTES),
            ..LogParams::default()
        };
        let api = Api::<Pod>::namespaced(self.client.clone(), ns);
        let _permit = self.in_flight.acquire().await.expect("never closed");
        let got = crate::cluster::retry::retry(crate::cluster::retry::READ_DELAY, || async {
            api.logs(pod, &lp)
                .await
                .map_err(|e| Error::api(format!("get log of {ns}/{pod} container {container}"), e))
        })
        .await;
        match got {
            Ok(text) => Some(ContainerLog {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
                text,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "previous log not read; the finding goes without it");
                None
            }
        }
    }

    /// Everything read for one namespace's suspects.
    async fn read_group(&self, group: Group) -> Result<Part> {
        let ns = group.namespace.as_str();
        macro_rules! whole_ns {
            ($kind:ty, $what:literal) => {
                self.list(
                    Api::<$kind>::namespaced(self.client.clone(), ns),
                    cached(),
                    format!(concat!($what, " in {}"), ns),
                    Lane::Shared,
                    self.every(),
                )
            };
        }
        let sets =
            futures::future::try_join_all(group.suspects.iter().map(|s| self.read_set(ns, s)));
        let (sets, hpas, pdbs, limit_ranges, resource_quotas, namespace) = futures::try_join!(
            sets,
            whole_ns!(HorizontalPodAutoscaler, "horizontalpodautoscalers"),
            self.pdbs(ns),
            whole_ns!(LimitRange, "limitranges"),
            whole_ns!(ResourceQuota, "resourcequotas"),
            self.get_optional(Api::<Namespace>::all(self.client.clone()), ns, "namespace"),
        )?;
        let mut part = Part {
            hpas,
            pdbs,
            limit_ranges,
            resource_quotas,
            namespace,
            ..Part::default()
        };
        for set in sets {
            part.pods.extend(set.pods);
            part.revisions.extend(set.revisions);
            part.pvcs.extend(set.pvcs);
            part.pvs.extend(set.pvs);
            part.logs.extend(set.logs);
        }
        // Events come last: which of them are about a suspect depends on
        // the names of its pods and claims.
        let pods: BTreeSet<&str> = part.pods.iter().map(name_of).collect();
        let pvcs: BTreeSet<&str> = part.pvcs.iter().map(name_of).collect();
        let mut trim = self.every();
        let events = self
            .list(
                Api::<Event>::namespaced(self.client.clone(), ns),
                paged(),
                format!("events in {ns}"),
                Lane::Shared,
                |e| {
                    let about = group
                        .suspects
                        .iter()
                        .any(|s| event_about(e, name_of(s), &pods, &pvcs));
                    about && trim(e)
                },
            )
            .await?;
        part.events = events;
        Ok(part)
    }

    /// A LIST the agent can do without: refused (403), it is a warning
    /// and nothing read.
    async fn list_optional<K>(&self, api: Api<K>, what: &str) -> Result<Vec<K>>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let got = self
            .list(api, paged(), what.to_string(), Lane::Shared, self.every())
            .await;
        forbidden_is_nothing(got, what)
    }

    /// The webhook configurations, when an event of a suspect says the API
    /// server could not call a webhook: they name who registered it and
    /// what it calls. Their CA bundles are kilobytes no run reads.
    async fn webhooks(
        &self,
        events: &[Event],
    ) -> Result<(
        Vec<ValidatingWebhookConfiguration>,
        Vec<MutatingWebhookConfiguration>,
    )> {
        let failed = events.iter().any(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("failed calling webhook"))
        });
        if !failed {
            return Ok(Default::default());
        }
        let (mut validating, mut mutating) = futures::try_join!(
            self.list_optional(
                Api::<ValidatingWebhookConfiguration>::all(self.client.clone()),
                "validatingwebhookconfigurations",
            ),
            self.list_optional(
                Api::<MutatingWebhookConfiguration>::all(self.client.clone()),
                "mutatingwebhookconfigurations",
            ),
        )?;
        if self.keep == Keep::Facts {
            for w in validating
                .iter_mut()
                .flat_map(|c| c.webhooks.iter_mut().flatten())
            {
                w.client_config.ca_bundle = None;
            }
            for w in mutating
                .iter_mut()
                .flat_map(|c| c.webhooks.iter_mut().flatten())
            {
                w.client_config.ca_bundle = None;
            }
        }
        Ok((validating, mutating))
    }

    /// PodDisruptionBudgets are `policy/v1` from Kubernetes 1.21 and
    /// `policy/v1beta1` before; the fields stsmend reads are the same in both.
    async fn pdbs(&self, ns: &str) -> Result<Vec<PodDisruptionBudget>> {
        let what = format!("poddisruptionbudgets in {ns}");
        let v1 = *self
            .pdb_v1
            .get_or_try_init(|| async {
                let _permit = self.in_flight.acquire().await.expect("never closed");
                match self.client.list_api_group_resources("policy/v1").await {
                    Ok(list) => Ok(list
                        .resources
                        .iter()
                        .any(|r| r.name == "poddisruptionbudgets")),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                    Err(e) => Err(Error::api("discover policy/v1", e)),
                }
            })
            .await?;
        if v1 {
            let api = Api::<PodDisruptionBudget>::namespaced(self.client.clone(), ns);
            return self
                .list(api, cached(), what, Lane::Shared, self.every())
                .await;
        }
        let gvk = kube::api::GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget");
        let resource = kube::api::ApiResource::from_gvk(&gvk);
        let api =
            Api::<kube::api::DynamicObject>::namespaced_with(self.client.clone(), ns, &resource);
        self.list(api, cached(), what, Lane::Shared, self.every())
            .await?
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(&o)
                    .map_err(|e| Error::encode("PodDisruptionBudget", e))?;
                v["apiVersion"] = "policy/v1".into();
                serde_json::from_value(v).map_err(|e| Error::encode("PodDisruptionBudget", e))
            })
            .collect()
    }
}

/// The API server refused the read to the agent's role (403).
pub(super) fn is_forbidden(e: &Error) -> bool {
    matches!(e, Error::Api { source, .. } if matches!(source.as_ref(), kube::Error::Api(s) if s.code == 403))
}

/// An optional read the role does not allow (403): a warning, and nothing
/// read.
fn forbidden_is_nothing<T: Default>(got: Result<T>, what: &str) -> Result<T> {
    match got {
        Err(e) if is_forbidden(&e) => {
            tracing::warn!(what, "not allowed to read; continuing without it");
            Ok(T::default())
        }
        other => other,
    }
}

/// Reads what a run needs. `state` names the agent's state ConfigMap
/// (namespace, name), read when there is any suspect.
pub async fn read(
    client: &Client,
    scope: &Scope,
    state: (&str, &str),
    keep: Keep,
) -> Result<Inventory> {
    let reader = Reader::new(client, keep);
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let grouper = Grouper {
        out: tx,
        current: None,
        listed: 0,
        suspects: 0,
    };
    // The grouper (and with it the channel's sender) lives in the scan, so
    // the group reads end when the scan has.
    let groups = rx
        .map(|g| reader.read_group(g))
        .buffered(IN_FLIGHT)
        .try_collect::<Vec<Part>>();
    let (stateful_sets, mut parts) = futures::try_join!(reader.scan(scope, grouper), groups)?;
    let mut inv = Inventory {
        stateful_sets,
        ..Inventory::default()
    };
    if parts.is_empty() {
        return Ok(inv);
    }
    inv.pods = concat(&mut parts, |p| &mut p.pods);
    inv.controller_revisions = concat(&mut parts, |p| &mut p.revisions);
    inv.pvcs = concat(&mut parts, |p| &mut p.pvcs);
    inv.pvs = concat(&mut parts, |p| &mut p.pvs);
    inv.logs = concat(&mut parts, |p| &mut p.logs);
    inv.events = concat(&mut parts, |p| &mut p.events);
    inv.hpas = concat(&mut parts, |p| &mut p.hpas);
    inv.pdbs = concat(&mut parts, |p| &mut p.pdbs);
    inv.limit_ranges = concat(&mut parts, |p| &mut p.limit_ranges);
    inv.resource_quotas = concat(&mut parts, |p| &mut p.resource_quotas);
    inv.namespaces = parts
        .iter_mut()
        .filter_map(|p| p.namespace.take())
        .collect();

    // PriorityClasses are not read: a missing one shows in the
    // controller's FailedCreate events, which is what the diagnosis reads
    // (tests/e2e/rbac.rs found the read changed no report).
    let c = || client.clone();
    let (nodes, storage_classes, config_maps, lease, webhooks) = futures::try_join!(
        reader.list(
            Api::<Node>::all(c()),
            paged(),
            "nodes".into(),
            Lane::Shared,
            |n| {
                if keep == Keep::Facts {
                    crate::trim::node(n);
                }
                true
            },
        ),
        reader.list(
            Api::<StorageClass>::all(c()),
            paged(),
            "storageclasses".into(),
            Lane::Shared,
            reader.every(),
        ),
        futures::future::try_join_all(
            [AUTOSCALER_STATUS, state, (state.0, crate::undo::CONFIG_MAP)]
                .into_iter()
                .map(|(ns, name)| {
                    let reader = &reader;
                    async move {
                        reader
                            .get_optional(
                                Api::<ConfigMap>::namespaced(c(), ns),
                                name,
                                &format!("configmap {ns}/{name}"),
                            )
                            .await
                    }
                }),
        ),
        reader.get_optional(
            Api::<Lease>::namespaced(c(), CONTROLLER_LEASE.0),
            CONTROLLER_LEASE.1,
            "controller-manager lease",
        ),
        reader.webhooks(&inv.events),
    )?;
    (inv.validating_webhooks, inv.mutating_webhooks) = webhooks;
    inv.nodes = nodes;
    inv.storage_classes = storage_classes;
    inv.config_maps = config_maps.into_iter().flatten().collect();
    inv.leases = lease.into_iter().collect();
    dedup(&mut inv);
    Ok(inv)
}

/// One kind's objects from every part, in order, in a buffer of their size:
/// a hundred namespaces' worth of growing by doubling held twice the memory.
fn concat<T>(parts: &mut [Part], kind: impl Fn(&mut Part) -> &mut Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(parts.iter_mut().map(|p| kind(p).len()).sum());
    for p in parts {
        out.append(kind(p));
    }
    out
}

/// Two suspects with overlapping selectors read some objects twice, and a
/// namespace the LIST came back to is read again.
fn dedup(inv: &mut Inventory) {
    fn by_uid<K: kube::Resource>(v: &mut Vec<K>) {
        let mut seen = BTreeSet::new();
        v.retain(|o| {
            let key = o
                .meta()
                .uid
                .clone()
                .unwrap_or_else(|| format!("{:?}/{:?}", o.meta().namespace, o.meta().name));
            seen.insert(key)
        });
    }
    by_uid(&mut inv.pods);
    by_uid(&mut inv.controller_revisions);
    by_uid(&mut inv.pvcs);
    by_uid(&mut inv.pvs);
    by_uid(&mut inv.events);
    by_uid(&mut inv.hpas);
    by_uid(&mut inv.pdbs);
    by_uid(&mut inv.limit_ranges);
    by_uid(&mut inv.resource_quotas);
    by_uid(&mut inv.namespaces);
    let mut seen = BTreeSet::new();
    inv.logs
        .retain(|l| seen.insert((l.namespace.clone(), l.pod.clone(), l.container.clone())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt as _;

    fn sts(ns: &str, name: &str) -> StatefulSet {
        let mut s = StatefulSet::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s
    }

    #[test]
    fn groups_suspects_by_namespace_as_the_list_moves_on() {
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let mut g = Grouper {
            out: tx,
            current: None,
            listed: 0,
            suspects: 0,
        };
        g.add(&sts("a", "x"), true);
        g.add(&sts("a", "y"), false);
        assert!(rx.try_recv().is_err(), "namespace a is not complete yet");
        g.add(&sts("b", "z"), false);
        g.add(&sts("c", "w"), true);
        // Out of key order: namespace a comes back and is read again.
        g.add(&sts("a", "v"), true);
        g.flush();
        drop(g);
        let groups: Vec<(String, Vec<String>)> = futures::executor::block_on_stream(rx)
            .map(|g| {
                (
                    g.namespace,
                    g.suspects.iter().map(|s| s.name_any()).collect(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("a".to_string(), vec!["x".to_string()]),
                ("c".to_string(), vec!["w".to_string()]),
                ("a".to_string(), vec!["v".to_string()]),
            ]
        );
    }

    #[test]
    fn dedup_drops_objects_read_twice() {
        let mut inv = Inventory::default();
        let mut e = Event::default();
        e.metadata.uid = Some("u1".into());
        inv.events = vec![e.clone(), e.clone()];
        let mut q = ResourceQuota::default();
        q.metadata.uid = Some("q1".into());
        inv.resource_quotas = vec![q.clone(), q];
        dedup(&mut inv);
        assert_eq!(inv.events.len(), 1);
        assert_eq!(inv.resource_quotas.len(), 1);
    }
}
