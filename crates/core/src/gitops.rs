//! GitOps objects whose sync a rollback may suspend (opt-in,
//! `gitops.suspendSync`): which they are, how each kind is suspended, and
//! the patches that suspend and resume one. Pure; the acting layer reads
//! and writes them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::diagnose::owner;
use crate::kinds::data::SpecOwner;

/// A GitOps object whose sync a rollback suspends: a Flux Kustomization
/// or HelmRelease, or an Argo CD Application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRef {
    pub kind: String,
    pub api_group: String,
    pub namespace: String,
    pub name: String,
}

/// The kinds whose sync the agent knows how to suspend: kind, API group,
/// and the field that suspends it.
pub const SUSPENDABLE: [(&str, &str, SyncSwitch); 3] = [
    (
        "Kustomization",
        "kustomize.toolkit.fluxcd.io",
        SyncSwitch::FluxSuspend,
    ),
    (
        "HelmRelease",
        "helm.toolkit.fluxcd.io",
        SyncSwitch::FluxSuspend,
    ),
    ("Application", "argoproj.io", SyncSwitch::ArgoAutomated),
];

/// How a kind's sync is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncSwitch {
    /// Flux: `spec.suspend: true`.
    FluxSuspend,
    /// Argo CD: `spec.syncPolicy.automated` removed (manual sync only).
    ArgoAutomated,
}

impl SyncRef {
    /// How this object's sync is suspended, if the agent knows its kind.
    pub fn switch(&self) -> Option<SyncSwitch> {
        SUSPENDABLE
            .iter()
            .find(|(k, g, _)| *k == self.kind && *g == self.api_group)
            .map(|(_, _, s)| *s)
    }

    /// `Kind namespace/name`.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// The command a person runs to resume the sync.
    pub fn resume_command(&self) -> String {
        match self.kind.as_str() {
            "Kustomization" => format!(
                "flux resume kustomization {} -n {}",
                self.name, self.namespace
            ),
            "HelmRelease" => format!(
                "flux resume helmrelease {} -n {}",
                self.name, self.namespace
            ),
            _ => format!(
                "argocd app set {}/{} --sync-policy automated (with its earlier prune and self-heal settings)",
                self.namespace, self.name
            ),
        }
    }
}

/// The GitOps object whose sync could be suspended so that a rollback of
/// the set it applies holds: a Flux Kustomization or HelmRelease, or an
/// Argo CD Application (in `argocd_namespace` unless its tracking id
/// names another). `None` for any other owner, or one not named.
pub fn sync_ref(d: &SpecOwner, argocd_namespace: &str) -> Option<SyncRef> {
    if !matches!(d.managed_by.as_str(), "flux" | "argocd") {
        return None;
    }
    let namespace = match (&d.owner_namespace, d.managed_by.as_str()) {
        (Some(ns), _) => ns.clone(),
        (None, "argocd") => argocd_namespace.to_string(),
        (None, _) => return None,
    };
    let r = SyncRef {
        kind: d.owner_kind.clone()?,
        api_group: d.owner_api_group.clone()?,
        namespace,
        name: d.owner_name.clone()?,
    };
    r.switch().map(|_| r)
}

/// What suspending a sync wrote, kept in the StatefulSet's undo record so
/// that `stsmend undo` resumes exactly it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Suspended {
    pub object: SyncRef,
    /// The API version it was read and written at.
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The JSON pointer of the field that suspends it.
    pub path: String,
    /// The field before the suspend (`None`: absent) and after it.
    pub prior: Option<Value>,
    pub after: Option<Value>,
}

impl SyncSwitch {
    /// The field that suspends the sync, as a JSON pointer.
    pub fn path(self) -> &'static str {
        match self {
            SyncSwitch::FluxSuspend => "/spec/suspend",
            SyncSwitch::ArgoAutomated => "/spec/syncPolicy/automated",
        }
    }
}

/// The JSON patch that suspends `object`'s sync and what it records, or
/// `None` when the sync is already suspended (nothing to write, and
/// nothing for an undo to resume: someone else suspended it). An error
/// when `object` is not the one `sync` names.
pub fn suspend_patch(sync: &SyncRef, object: &Value) -> Result<Option<(Value, Suspended)>, String> {
    let switch = sync.switch().ok_or_else(|| {
        format!(
            "{}: the agent does not know how to suspend it",
            sync.describe()
        )
    })?;
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let meta = object.get("metadata");
    let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    if object.get("kind").and_then(Value::as_str) != Some(sync.kind.as_str())
        || group != sync.api_group
        || text("name") != Some(sync.name.as_str())
        || text("namespace") != Some(sync.namespace.as_str())
    {
        return Err(format!(
            "{}: the object read is {api_version} {} {}/{}",
            sync.describe(),
            object.get("kind").and_then(Value::as_str).unwrap_or("?"),
            text("namespace").unwrap_or("?"),
            text("name").unwrap_or("?")
        ));
    }
    let path = switch.path();
    let current = object.pointer(path).filter(|v| !v.is_null()).cloned();
    let (ops, after) = match switch {
        SyncSwitch::FluxSuspend => {
            if current == Some(Value::Bool(true)) {
                return Ok(None);
            }
            let ops = match &current {
                Some(v) => {
                    json!([{"op": "test", "path": path, "value": v}, {"op": "replace", "path": path, "value": true}])
                }
                None => json!([{"op": "add", "path": path, "value": true}]),
            };
            (ops, Some(Value::Bool(true)))
        }
        SyncSwitch::ArgoAutomated => {
            // Argo CD 3 can keep the block with `enabled: false`: manual.
            let Some(v) = current
                .as_ref()
                .filter(|v| v.get("enabled") != Some(&Value::Bool(false)))
            else {
                return Ok(None);
            };
            (
                json!([{"op": "test", "path": path, "value": v}, {"op": "remove", "path": path}]),
                None,
            )
        }
    };
    Ok(Some((
        ops,
        Suspended {
            object: sync.clone(),
            api_version: api_version.to_string(),
            uid: text("uid").map(str::to_string),
            path: path.to_string(),
            prior: current,
            after,
        },
    )))
}

/// The JSON patch that resumes the sync `record` suspended, checked
/// against the object as it is now: the record must be about a kind the
/// agent suspends, at that kind's field, with a prior value of the field's
/// type, about this very object (uid), which must still be suspended as
/// the agent left it (someone who resumed it since decided for it).
pub fn resume_patch(record: &Suspended, object: &Value) -> Result<Value, String> {
    let sync = &record.object;
    let switch = sync.switch().ok_or_else(|| {
        format!(
            "{}: not a kind whose sync the agent suspends",
            sync.describe()
        )
    })?;
    let path = switch.path();
    if record.path != path {
        return Err(format!(
            "the record names field {}, not {path}, the one that suspends a {}",
            record.path, sync.kind
        ));
    }
    let prior_ok = match (switch, &record.prior) {
        (_, None) => switch == SyncSwitch::FluxSuspend,
        (SyncSwitch::FluxSuspend, Some(v)) => v.is_boolean(),
        (SyncSwitch::ArgoAutomated, Some(v)) => v.is_object(),
    };
    if !prior_ok {
        return Err(format!(
            "the record's earlier {path} is not what a {} holds there",
            sync.kind
        ));
    }
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str);
    if record.uid.is_some() && record.uid.as_deref() != uid {
        return Err(format!(
            "{} was deleted and re-created since",
            sync.describe()
        ));
    }
    let current = object.pointer(path).filter(|v| !v.is_null()).cloned();
    let expected = match switch {
        SyncSwitch::FluxSuspend => Some(Value::Bool(true)),
        SyncSwitch::ArgoAutomated => None,
    };
    if current != expected {
        return Err(format!(
            "its sync was changed since the agent suspended it ({path} is {}): left as it is",
            current.map_or("absent".into(), |v| v.to_string())
        ));
    }
    Ok(match (switch, &record.prior) {
        (SyncSwitch::FluxSuspend, None) => {
            json!([{"op": "test", "path": path, "value": true}, {"op": "remove", "path": path}])
        }
        (SyncSwitch::FluxSuspend, Some(v)) => {
            json!([{"op": "test", "path": path, "value": true}, {"op": "replace", "path": path, "value": v}])
        }
        (SyncSwitch::ArgoAutomated, prior) => {
            if object
                .pointer("/spec/syncPolicy")
                .is_some_and(Value::is_object)
            {
                json!([{"op": "add", "path": path, "value": prior}])
            } else {
                json!([{"op": "add", "path": "/spec/syncPolicy", "value": {"automated": prior}}])
            }
        }
    })
}

/// Whether `object`'s sync is still suspended as the agent left it.
pub fn still_suspended(record: &Suspended, object: &Value) -> bool {
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str);
    (record.uid.is_none() || record.uid.as_deref() == uid)
        && object.pointer(&record.path).filter(|v| !v.is_null()) == record.after.as_ref()
}

/// Whether the StatefulSet's labels and annotations still name `sync` as
/// what applies it: an undo record that names another object is not
/// trusted to resume it.
pub fn named_by(meta: &ObjectMeta, sync: &SyncRef, argocd_namespace: &str) -> bool {
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let own_ns = meta.namespace.as_deref().unwrap_or_default();
    let flux = |(name_key, ns_key): (&str, &str)| {
        labels.get(name_key) == Some(&sync.name)
            && labels.get(ns_key).map_or(own_ns, String::as_str) == sync.namespace
    };
    match sync.kind.as_str() {
        "Kustomization" => flux(owner::FLUX_KUSTOMIZATION),
        "HelmRelease" => flux(owner::FLUX_HELM_RELEASE),
        "Application" => {
            let app = annotations
                .get(owner::ARGOCD_TRACKING_ID)
                .map(|id| id.split(':').next().unwrap_or_default().to_string())
                .or_else(|| labels.get(owner::INSTANCE_LABEL).cloned())
                .unwrap_or_default();
            let (ns, name) = app
                .split_once('_')
                .unwrap_or((argocd_namespace, app.as_str()));
            ns == sync.namespace && name == sync.name
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kustomization() -> SyncRef {
        SyncRef {
            kind: "Kustomization".into(),
            api_group: "kustomize.toolkit.fluxcd.io".into(),
            namespace: "flux-system".into(),
            name: "apps".into(),
        }
    }

    fn application() -> SyncRef {
        SyncRef {
            kind: "Application".into(),
            api_group: "argoproj.io".into(),
            namespace: "argocd".into(),
            name: "shop-db".into(),
        }
    }

    fn object(sync: &SyncRef, version: &str, spec: Value) -> Value {
        json!({
            "apiVersion": format!("{}/{version}", sync.api_group),
            "kind": sync.kind,
            "metadata": {"name": sync.name, "namespace": sync.namespace, "uid": "u-1"},
            "spec": spec,
        })
    }

    fn apply(obj: &Value, ops: &Value) -> Value {
        let mut o = obj.clone();
        let patch: json_patch::Patch = serde_json::from_value(ops.clone()).unwrap();
        json_patch::patch(&mut o, &patch).unwrap();
        o
    }

    #[test]
    fn a_flux_sync_is_suspended_and_resumed_to_what_it_was() {
        let k = kustomization();
        for before in [json!({"interval": "1m"}), json!({"suspend": false})] {
            let obj = object(&k, "v1", before.clone());
            let (ops, rec) = suspend_patch(&k, &obj).unwrap().expect("a write");
            let suspended = apply(&obj, &ops);
            assert_eq!(suspended["spec"]["suspend"], json!(true));
            assert_eq!(rec.api_version, "kustomize.toolkit.fluxcd.io/v1");
            let resumed = apply(&suspended, &resume_patch(&rec, &suspended).unwrap());
            assert_eq!(resumed["spec"], before);
        }
        // Already suspended by someone: nothing to write or resume.
        let obj = object(&k, "v1", json!({"suspend": true}));
        assert_eq!(suspend_patch(&k, &obj).unwrap(), None);
    }

    #[test]
    fn an_argo_cd_automated_sync_is_turned_off_and_back_on() {
        let a = application();
        let automated = json!({"prune": true, "selfHeal": true});
        let obj = object(
            &a,
            "v1alpha1",
            json!({"syncPolicy": {"automated": automated, "syncOptions": ["ServerSideApply=true"]}}),
        );
        let (ops, rec) = suspend_patch(&a, &obj).unwrap().expect("a write");
        let off = apply(&obj, &ops);
        assert_eq!(
            off["spec"]["syncPolicy"],
            json!({"syncOptions": ["ServerSideApply=true"]})
        );
        let on = apply(&off, &resume_patch(&rec, &off).unwrap());
        assert_eq!(on["spec"], obj["spec"]);
        // Manual sync already: nothing to do.
        for manual in [
            json!({}),
            json!({"syncPolicy": {"automated": {"enabled": false}}}),
        ] {
            assert_eq!(
                suspend_patch(&a, &object(&a, "v1alpha1", manual)).unwrap(),
                None
            );
        }
    }

    #[test]
    fn the_object_read_must_be_the_one_named() {
        let k = kustomization();
        let mut other = object(&k, "v1", json!({}));
        other["metadata"]["name"] = json!("infra");
        let e = suspend_patch(&k, &other).unwrap_err();
        assert!(e.contains("the object read is"), "{e}");
        let unknown = SyncRef {
            kind: "Deployment".into(),
            api_group: "apps".into(),
            ..k
        };
        assert!(suspend_patch(&unknown, &json!({})).is_err());
    }

    #[test]
    fn a_resume_is_refused_when_the_record_or_the_object_is_not_as_left() {
        let k = kustomization();
        let obj = object(&k, "v1", json!({}));
        let (ops, rec) = suspend_patch(&k, &obj).unwrap().unwrap();
        let suspended = apply(&obj, &ops);
        // Resumed by a person since.
        let e = resume_patch(&rec, &obj).unwrap_err();
        assert!(e.contains("changed since the agent suspended it"), "{e}");
        // Re-created.
        let mut again = suspended.clone();
        again["metadata"]["uid"] = json!("u-2");
        assert!(
            resume_patch(&rec, &again)
                .unwrap_err()
                .contains("re-created")
        );
        // Forged: another field, a value of another type, an unknown kind.
        let forged = Suspended {
            path: "/spec/sourceRef".into(),
            ..rec.clone()
        };
        assert!(
            resume_patch(&forged, &suspended)
                .unwrap_err()
                .contains("not /spec/suspend")
        );
        let forged = Suspended {
            prior: Some(json!({"path": "./evil"})),
            ..rec.clone()
        };
        assert!(
            resume_patch(&forged, &suspended)
                .unwrap_err()
                .contains("not what a Kustomization holds")
        );
        let forged = Suspended {
            object: SyncRef {
                kind: "Secret".into(),
                api_group: "".into(),
                ..k
            },
            ..rec
        };
        assert!(resume_patch(&forged, &suspended).is_err());
    }

    #[test]
    fn the_set_must_still_name_the_object() {
        let meta = |labels: &[(&str, &str)], annotations: &[(&str, &str)]| ObjectMeta {
            namespace: Some("shop".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        let flux = meta(
            &[
                (owner::FLUX_KUSTOMIZATION.0, "apps"),
                (owner::FLUX_KUSTOMIZATION.1, "flux-system"),
            ],
            &[],
        );
        assert!(named_by(&flux, &kustomization(), "argocd"));
        let other = meta(&[(owner::FLUX_KUSTOMIZATION.0, "infra")], &[]);
        assert!(!named_by(&other, &kustomization(), "argocd"));
        let argo = meta(
            &[],
            &[(
                owner::ARGOCD_TRACKING_ID,
                "shop-db:apps/StatefulSet:shop/db",
            )],
        );
        assert!(named_by(&argo, &application(), "argocd"));
        assert!(!named_by(&argo, &application(), "gitops"));
        let anywhere = meta(
            &[],
            &[(
                owner::ARGOCD_TRACKING_ID,
                "argocd_shop-db:apps/StatefulSet:shop/db",
            )],
        );
        assert!(named_by(&anywhere, &application(), "elsewhere"));
    }
}
