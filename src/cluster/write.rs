//! Every write stsmend makes, each pre-conditioned on the resourceVersion (or
//! UID) the decision was made on: a conflict means the object changed since,
//! and the write is skipped, never forced.

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::config::ScaleTarget;
use crate::error::{Error, Result};
use crate::policy::SyncRef;

/// The field manager and event source of every write.
pub const MANAGER: &str = crate::config::FIELD_MANAGER;

/// How writes reach the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Persisted.
    Apply,
    /// Sent with `dryRun=All`: admission and RBAC are checked, nothing is kept.
    ServerDryRun,
}

/// What became of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The object changed since the decision (409) or is gone (404).
    Conflict(String),
    /// A PodDisruptionBudget does not allow the eviction now (429 with the
    /// budget's message).
    Disallowed(String),
}

/// A write's outcome and the StatefulSet's generation after it.
pub type Written = (Outcome, Option<i64>);

/// A GitOps object as read, with the API it was read through.
pub struct SyncObject {
    pub value: Value,
    api: Api<DynamicObject>,
}

/// A node group's `/scale` as read before scaling it.
pub struct NodeGroupScale {
    pub replicas: i32,
    resource_version: Option<String>,
    api: Api<DynamicObject>,
}

pub struct Writer {
    client: Client,
    mode: Mode,
    /// How long, and how many, undo records a save keeps once merged
    /// with another run's (`limits.undoKeep`, `limits.undoMaxRecords`).
    undo_keep: (crate::duration::Span, usize),
}

/// A refused write: the object changed (409) or went away (404) since the
/// decision, which the next run re-reads. Everything else is an error; a
/// 429 (throttling) or 5xx one is retried by the caller.
fn classify(e: kube::Error, context: &str) -> Result<Outcome> {
    match &e {
        kube::Error::Api(s) if s.code == 409 || s.code == 404 => {
            Ok(Outcome::Conflict(format!("{context}: {}", s.message)))
        }
        _ => Err(Error::api(context.to_string(), e)),
    }
}

impl Writer {
    pub fn new(client: Client, mode: Mode) -> Self {
        let limits = crate::guard::Limits::default();
        Self {
            client,
            mode,
            undo_keep: (limits.undo_keep, limits.undo_max_records),
        }
    }

    /// The undo records' pruning, from the config's limits.
    pub fn with_undo_limits(mut self, limits: &crate::guard::Limits) -> Self {
        self.undo_keep = (limits.undo_keep, limits.undo_max_records);
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Reads a StatefulSet again, for a check between two steps of one
    /// remediation (has the controller observed the revert?).
    pub async fn read_stateful_set(&self, ns: &str, name: &str) -> Result<StatefulSet> {
        Api::<StatefulSet>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .map_err(|e| Error::api(format!("get StatefulSet {ns}/{name}"), e))
    }

    /// Reads a pod again, or `None` when it is gone. A LIST by name: the
    /// read role lists pods and gets none.
    pub async fn read_pod(&self, ns: &str, name: &str) -> Result<Option<Pod>> {
        let params = kube::api::ListParams::default().fields(&format!("metadata.name={name}"));
        Ok(Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&params)
            .await
            .map_err(|e| Error::api(format!("list Pod {ns}/{name}"), e))?
            .items
            .into_iter()
            .next())
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.mode == Mode::ServerDryRun,
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.mode == Mode::ServerDryRun,
            field_manager: Some(MANAGER.into()),
        }
    }

    /// What `kubectl rollout undo statefulset` does: the revision's recorded
    /// template (a strategic merge patch with `$patch: replace`) written back,
    /// plus the resourceVersion the decision saw, which makes it conditional.
    pub async fn rollback(
        &self,
        sts: &StatefulSet,
        revision: &ControllerRevision,
    ) -> Result<Written> {
        let (ns, name) = ids(&sts.metadata);
        // v1.37's schema requires data, but a `null` still reads as one.
        let mut patch = Some(revision.data.0.clone())
            .filter(Value::is_object)
            .ok_or_else(|| {
                Error::invalid(
                    "revision",
                    revision.metadata.name.clone().unwrap_or_default(),
                    "has no data",
                )
            })?;
        patch["metadata"] = json!({ "resourceVersion": sts.metadata.resource_version });
        let api = Api::<StatefulSet>::namespaced(self.client.clone(), ns);
        match api
            .patch(name, &self.patch_params(), &Patch::Strategic(patch))
            .await
        {
            Ok(s) => Ok((Outcome::Done, s.metadata.generation)),
            Err(e) => Ok((
                classify(e, &format!("rollback StatefulSet {ns}/{name}"))?,
                None,
            )),
        }
    }

    /// A JSON merge patch (an object) or JSON patch (an array of operations)
    /// from a policy, conditional on the resourceVersion.
    pub async fn patch_spec(&self, sts: &StatefulSet, patch: &Value) -> Result<Written> {
        let (ns, name) = ids(&sts.metadata);
        let rv = sts.metadata.resource_version.clone().unwrap_or_default();
        let api = Api::<StatefulSet>::namespaced(self.client.clone(), ns);
        let context = format!("patch StatefulSet {ns}/{name}");
        let result = match patch {
            Value::Object(_) => {
                let mut p = patch.clone();
                p["metadata"]["resourceVersion"] = json!(rv);
                api.patch(name, &self.patch_params(), &Patch::Merge(p))
                    .await
            }
            Value::Array(ops) => {
                let mut all =
                    vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
                all.extend(ops.iter().cloned());
                let ops: json_patch::Patch = serde_json::from_value(Value::Array(all))
                    .map_err(|e| Error::invalid("JSON patch", patch.to_string(), e.to_string()))?;
                api.patch(name, &self.patch_params(), &Patch::<()>::Json(ops))
                    .await
            }
            _ => {
                return Err(Error::invalid(
                    "patch",
                    patch.to_string(),
                    "expected an object or an array",
                ));
            }
        };
        match result {
            Ok(s) => Ok((Outcome::Done, s.metadata.generation)),
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("test") => Ok((
                Outcome::Conflict(format!("{context}: resourceVersion changed")),
                None,
            )),
            Err(e) => Ok((classify(e, &context)?, None)),
        }
    }

    /// Deletes a pod through the eviction API, so PodDisruptionBudgets are
    /// respected, pre-conditioned on the pod's UID and resourceVersion.
    pub async fn evict_pod(&self, pod: &Pod) -> Result<Outcome> {
        let (ns, name) = ids(&pod.metadata);
        let context = format!("evict Pod {ns}/{name}");
        let mut last = None;
        // policy/v1 Eviction from Kubernetes 1.22, policy/v1beta1 before.
        for version in ["policy/v1", "policy/v1beta1"] {
            let body = json!({
                "apiVersion": version,
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": ns},
                "deleteOptions": {
                    "preconditions": {"uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version},
                    "dryRun": if self.mode == Mode::ServerDryRun { json!(["All"]) } else { Value::Null },
                },
            });
            let mut url = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
            if self.mode == Mode::ServerDryRun {
                url.push_str("?dryRun=All");
            }
            let req = http::Request::post(url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default())
                .map_err(|e| Error::invalid("eviction request", name, e.to_string()))?;
            match self.client.request::<Value>(req).await {
                Ok(_) => return Ok(Outcome::Done),
                Err(kube::Error::Api(s)) if s.code == 400 && version == "policy/v1" => {
                    last = Some(s.message)
                }
                // The eviction API answers 429 when a PodDisruptionBudget
                // forbids it now; other 429s are throttling, retried.
                Err(kube::Error::Api(s))
                    if s.code == 429 && s.message.to_lowercase().contains("disruption budget") =>
                {
                    return Ok(Outcome::Disallowed(format!("{context}: {}", s.message)));
                }
                Err(e) => return classify(e, &context),
            }
        }
        Err(Error::invalid("eviction", name, last.unwrap_or_default()))
    }

    /// Reads a node group's `/scale` subresource: its replicas now and the
    /// resourceVersion a following [`Writer::set_scale`] is conditional on.
    pub async fn read_scale(&self, target: &ScaleTarget) -> Result<NodeGroupScale> {
        let (group, version) = match target.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", target.api_version.as_str()),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &target.kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| {
                Error::api(
                    format!("discover {}/{}", target.api_version, target.kind),
                    e,
                )
            })?;
        let api: Api<DynamicObject> = match &target.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let scale = api
            .get_scale(&target.name)
            .await
            .map_err(|e| Error::api(format!("read scale of {} {}", target.kind, target.name), e))?;
        Ok(NodeGroupScale {
            replicas: scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            resource_version: scale.metadata.resource_version,
            api,
        })
    }

    /// Sets a node group's replicas, conditional on the Scale read before.
    pub async fn set_scale(
        &self,
        target: &ScaleTarget,
        now: &NodeGroupScale,
        replicas: i32,
    ) -> Result<Outcome> {
        let patch = json!({
            "metadata": {"resourceVersion": now.resource_version},
            "spec": {"replicas": replicas},
        });
        match now
            .api
            .patch_scale(&target.name, &self.patch_params(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => classify(e, &format!("scale {} {}", target.kind, target.name)),
        }
    }

    /// Reads a GitOps object (a Flux Kustomization or HelmRelease, an Argo
    /// CD Application) at its API group's preferred version; `None` when
    /// it (or its CRD) is not there.
    pub async fn read_sync(&self, sync: &SyncRef) -> Result<Option<SyncObject>> {
        let context = format!("read {}", sync.describe());
        let group = match kube::discovery::group(&self.client, &sync.api_group).await {
            Ok(g) => g,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(Error::api(context, e)),
        };
        let Some((resource, _)) = group.recommended_kind(&sync.kind) else {
            return Ok(None);
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &sync.namespace, &resource);
        let object = api
            .get_opt(&sync.name)
            .await
            .map_err(|e| Error::api(context.clone(), e))?;
        let Some(object) = object else {
            return Ok(None);
        };
        let mut value =
            serde_json::to_value(&object).map_err(|e| Error::encode("GitOps object", e))?;
        // DynamicObject leaves the type out when it was not in the reply.
        value["apiVersion"] = json!(resource.api_version);
        value["kind"] = json!(resource.kind);
        Ok(Some(SyncObject { api, value }))
    }

    /// A JSON patch to a GitOps object read by [`Writer::read_sync`],
    /// conditional on its resourceVersion as read.
    pub async fn patch_sync(
        &self,
        sync: &SyncRef,
        object: &SyncObject,
        ops: &Value,
    ) -> Result<Outcome> {
        let rv = object
            .value
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        let mut all = vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
        all.extend(ops.as_array().into_iter().flatten().cloned());
        let ops: json_patch::Patch = serde_json::from_value(Value::Array(all))
            .map_err(|e| Error::invalid("JSON patch", ops.to_string(), e.to_string()))?;
        let context = format!("patch {}", sync.describe());
        match object
            .api
            .patch(&sync.name, &self.patch_params(), &Patch::<()>::Json(ops))
            .await
        {
            Ok(_) => Ok(Outcome::Done),
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("test") => Ok(
                Outcome::Conflict(format!("{context}: it changed since it was read")),
            ),
            Err(e) => classify(e, &context),
        }
    }

    /// Records an action on the StatefulSet as a Kubernetes Event.
    pub async fn event(
        &self,
        sts: &StatefulSet,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        let (ns, name) = ids(&sts.metadata);
        let now = jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}.stsmend.")),
                namespace: Some(ns.to_string()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some("StatefulSet".into()),
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                uid: sts.metadata.uid.clone(),
                resource_version: sts.metadata.resource_version.clone(),
                ..Default::default()
            },
            type_: Some(type_.into()),
            reason: Some(reason.into()),
            // The API server caps messages at 1 KiB.
            message: Some(message.chars().take(1000).collect()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some(MANAGER.into()),
            reporting_instance: Some(MANAGER.into()),
            action: Some(reason.into()),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some(MANAGER.into()),
                host: None,
            }),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), ns)
            .create(&self.post_params(), &event)
            .await
            .map_err(|e| Error::api(format!("record event on StatefulSet {ns}/{name}"), e))?;
        Ok(())
    }

    /// Records an escalation again on the Event an earlier run created for
    /// it: its count and last time moved on, its message the latest.
    pub async fn event_again(&self, earlier: &Event, message: &str) -> Result<()> {
        let ns = earlier.metadata.namespace.as_deref().unwrap_or_default();
        let name = earlier.metadata.name.as_deref().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let patch = json!({
            "count": earlier.count.unwrap_or(1).saturating_add(1),
            "lastTimestamp": Time(now),
            "message": message.chars().take(1000).collect::<String>(),
        });
        Api::<Event>::namespaced(self.client.clone(), ns)
            .patch(name, &self.patch_params(), &Patch::Merge(patch))
            .await
            .map_err(|e| Error::api(format!("update event {ns}/{name}"), e))?;
        Ok(())
    }

    /// Writes the agent's own ConfigMap (state or undo records): the data
    /// given replaces what the agent wrote before, after taking in what
    /// another run saved since (two runs at once: a manual run during the
    /// CronJob's; [`crate::state::State::merge_saved`],
    /// [`crate::undo::Book::merge_saved`]). The write is conditional on the
    /// ConfigMap as just read (its resourceVersion; created only if still
    /// absent), so a save that crossed another is merged again, never lost.
    pub async fn save_config_map(
        &self,
        ns: &str,
        name: &str,
        data: std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        self.save_own(ns, name, data, true).await
    }

    /// Writes the agent's own ConfigMap as given, without taking in another
    /// run's records (`stsmend undo` removes the record it undid), still
    /// conditional on the ConfigMap as just read.
    pub async fn replace_config_map(
        &self,
        ns: &str,
        name: &str,
        data: std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        self.save_own(ns, name, data, false).await
    }

    async fn save_own(
        &self,
        ns: &str,
        name: &str,
        data: std::collections::BTreeMap<String, String>,
        merge: bool,
    ) -> Result<()> {
        /// Saves that crossed another run's before this one gives up.
        const ATTEMPTS: u32 = 5;
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), ns);
        let context = || format!("write ConfigMap {ns}/{name}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let saved = api
                .get_opt(name)
                .await
                .map_err(|e| Error::api(format!("read ConfigMap {ns}/{name}"), e))?;
            let data = match &saved {
                Some(cm) if merge => merged(name, &data, cm, self.undo_keep)?,
                _ => data.clone(),
            };
            let mut cm = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/managed-by": MANAGER},
                },
                "data": data,
            });
            let written = match &saved {
                None => {
                    let cm: ConfigMap =
                        serde_json::from_value(cm).map_err(|e| Error::encode("ConfigMap", e))?;
                    api.create(&self.post_params(), &cm).await.map(|_| ())
                }
                // A merge patch conditional on the resourceVersion as read,
                // that also removes every key the agent no longer keeps: its
                // data is all of the ConfigMap's, whoever wrote a key (a
                // server-side apply would keep keys written by its create
                // or by another field manager).
                Some(current) => {
                    cm["metadata"]["resourceVersion"] = json!(current.metadata.resource_version);
                    for gone in current.data.iter().flatten().map(|(k, _)| k) {
                        if !data.contains_key(gone) {
                            cm["data"][gone] = Value::Null;
                        }
                    }
                    let params = PatchParams {
                        dry_run: self.mode == Mode::ServerDryRun,
                        field_manager: Some(MANAGER.into()),
                        ..PatchParams::default()
                    };
                    api.patch(name, &params, &Patch::Merge(cm))
                        .await
                        .map(|_| ())
                }
            };
            match written {
                Ok(()) => return Ok(()),
                // Another run saved (or created it) in between: read again.
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < ATTEMPTS => {
                    tracing::info!(configmap = name, "saved by another run meanwhile; merging");
                }
                Err(e) => return Err(Error::api(context(), e)),
            }
        }
    }
}

/// This run's records of the agent's ConfigMap `name` with what another run
/// saved in `saved` taken in.
fn merged(
    name: &str,
    ours: &std::collections::BTreeMap<String, String>,
    saved: &ConfigMap,
    (keep, max): (crate::duration::Span, usize),
) -> Result<std::collections::BTreeMap<String, String>> {
    let as_ours = ConfigMap {
        metadata: saved.metadata.clone(),
        data: Some(ours.clone()),
        ..Default::default()
    };
    match name {
        crate::state::CONFIG_MAP => {
            let mut state = crate::state::State::from_config_map(&as_ours)?;
            state.merge_saved(&crate::state::State::from_config_map(saved)?);
            Ok(state.to_data()?)
        }
        crate::undo::CONFIG_MAP => {
            let mut book = crate::undo::Book::from_config_map(&as_ours)?;
            let now = jiff::Timestamp::now();
            book.merge_saved(&crate::undo::Book::from_config_map(saved)?, now);
            // What the other run kept must fit too: the ConfigMap never
            // fills, whoever saved last.
            book.prune(now, keep, max, crate::undo::MAX_BYTES);
            Ok(book.to_data()?)
        }
        _ => Ok(ours.clone()),
    }
}

fn ids(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}
