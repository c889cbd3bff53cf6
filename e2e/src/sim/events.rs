//! Events as the components the simulation stands in for write them (core/v1,
//! like v1.20's kubelet): a repeat of the same reason and message on the same
//! object bumps `count` and `lastTimestamp` instead of adding an event.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::time;

/// The object an event is about.
#[derive(Debug, Clone)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// e.g. `spec.containers{postgres}` for container events.
    pub field_path: Option<String>,
}

/// (object uid, field path, reason, message): what makes two events "the
/// same" for the kubelet's event correlator.
type EventKey = (String, String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

pub struct Recorder {
    client: kube::Client,
    component: String,
    /// The events recorded so far, so a repeat bumps their count.
    seen: Mutex<HashMap<EventKey, (String, i32)>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(client: kube::Client, component: impl Into<String>) -> Self {
        Self {
            client,
            component: component.into(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event; failures are logged, never returned: an event is
    /// evidence for the agent, not something the simulation depends on.
    pub async fn emit(
        &self,
        obj: &Involved,
        host: Option<&str>,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        let key = (
            obj.uid.clone(),
            obj.field_path.clone().unwrap_or_default(),
            reason.to_string(),
            message.to_string(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &obj.namespace);
        let now = time(jiff::Timestamp::now());
        let existing = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some((name, count)) = existing {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.remember(key, name, count + 1);
                return;
            }
            // The event expired (TTL) or was deleted: start a new one.
        }
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!("{}.{:x}", obj.name, nanos);
        let mut source = json!({"component": self.component});
        if let Some(h) = host {
            source["host"] = json!(h);
        }
        let mut involved = json!({
            "apiVersion": obj.api_version,
            "kind": obj.kind,
            "namespace": obj.namespace,
            "name": obj.name,
            "uid": obj.uid,
        });
        if let Some(fp) = &obj.field_path {
            involved["fieldPath"] = json!(fp);
        }
        let ev = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": obj.namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
            "eventTime": null,
            "reportingComponent": "",
            "reportingInstance": "",
        });
        let ev: Event = match serde_json::from_value(ev) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("building event: {e}");
                return;
            }
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => self.remember(key, name, 1),
            Err(e) => tracing::debug!(reason, object = obj.name, "event not recorded: {e}"),
        }
    }

    fn remember(&self, key: EventKey, name: String, count: i32) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (name, count));
    }

    /// Forgets the events of objects that are gone, so the map stays small.
    pub fn forget(&self, uid: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| k.0 != uid);
    }
}
