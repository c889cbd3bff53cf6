//! What a policy sees of one StatefulSet: a compact copy of its facts and
//! findings as Rhai values, built once per StatefulSet and reused by every
//! policy evaluated on it. Compact on purpose: whole objects carry
//! managedFields, last-applied annotations and status noise that no policy
//! decides on, and converting them would cost more than the decision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use rhai::{Array, Dynamic, ImmutableString, Map};
use serde_json::Value;

use crate::detect::Detection;
use crate::diagnose::pods::is_ready;
use crate::diagnose::rollout::{number, revision_template, same_template};
use crate::diagnose::{Data, Finding, Kind};
use crate::facts::{Facts, REVISION_LABEL};
use crate::guard::Blocked;

/// Annotations too large and too irrelevant to copy into every view.
const DROPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// What the whole run knows that one StatefulSet's facts do not.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The time decisions are judged against; policies have no other clock.
    pub now: Timestamp,
    pub threshold: crate::duration::Span,
    /// StatefulSets failing in this run, and scanned.
    pub failing: usize,
    pub scanned: usize,
    /// Set when so many StatefulSets fail at once that the cause is likely
    /// the cluster.
    pub storm: Option<Blocked>,
    /// Failing StatefulSets whose own template change explains their
    /// failure: a bad release, handled one by one, not a storm.
    pub own_change: usize,
    /// Pod annotations that say a migration runs in the pod.
    pub migration_annotations: Vec<String>,
    /// StatefulSet annotations that say rolling back is unsafe (an
    /// irreversible migration ran).
    pub rollback_unsafe_annotations: Vec<String>,
    /// The config's `gitops` section: whether a rollback may suspend the
    /// GitOps sync that would put it back, and Argo CD's namespace.
    pub gitops: crate::config::GitOps,
}

impl Default for RunContext {
    fn default() -> Self {
        Self {
            now: Timestamp::UNIX_EPOCH,
            threshold: crate::duration::Span::minutes(10),
            failing: 1,
            scanned: 1,
            storm: None,
            own_change: 0,
            migration_annotations: vec!["stsmend.io/migration".into()],
            rollback_unsafe_annotations: vec![super::ROLLBACK_UNSAFE_ANNOTATION.into()],
            gitops: crate::config::GitOps::default(),
        }
    }
}

/// The StatefulSet, a pod and a finding reach policies as read-only objects
/// with properties (`sts.name`, `p.ready`, `f.data`): cloning one into each
/// evaluation's scope is a reference count, not a copy, and a property read
/// copies only that property. No setter is registered, so nothing a policy
/// does reaches the view another evaluation sees.
macro_rules! record {
    ($name:ident, $rhai:literal, $fields:ident: [$($field:literal),* $(,)?]) => {
        #[derive(Debug, Clone)]
        pub struct $name(pub(crate) Arc<Map>);

        impl $name {
            /// The name policies see in type errors.
            pub const TYPE_NAME: &'static str = $rhai;
        }

        /// Its properties, registered as getters.
        pub const $fields: &[&str] = &[$($field),*];
    };
}

record!(StatefulSetView, "StatefulSet", STS_FIELDS: [
    "namespace", "name", "uid", "generation", "observed_generation", "replicas",
    "ready_replicas", "updated_replicas", "current_replicas", "current_revision",
    "update_revision", "pod_management_policy", "update_strategy", "partition", "labels",
    "annotations", "rollback_unsafe", "rollback_unsafe_reason", "containers",
    "init_containers", "node_selector",
]);
record!(PodView, "Pod", POD_FIELDS: [
    "name", "ordinal", "revision", "on_update_revision", "phase", "ready", "terminating",
    "migration", "node", "restarts", "waiting", "created", "labels", "annotations",
]);
record!(FindingView, "Finding", FINDING_FIELDS: [
    "kind", "summary", "confidence", "symptom", "pods", "data", "change",
]);

/// A finding's `data`: every key its kind has, `()` where unset. Not a
/// plain map, so that a key the kind does not have (a typo, another kind's
/// key) is an error naming it rather than a silent `()`.
#[derive(Debug, Clone)]
pub struct DataView {
    pub(crate) kind: Kind,
    pub(crate) map: Arc<Map>,
}

impl DataView {
    /// The name policies see in type errors.
    pub const TYPE_NAME: &'static str = "FindingData";

    fn new(f: &Finding) -> Self {
        let json = f.data.to_json();
        let map = f
            .kind
            .fields()
            .into_iter()
            .map(|k| (k.into(), json.get(k).map_or(Dynamic::UNIT, from_json)))
            .collect();
        DataView {
            kind: f.kind,
            map: Arc::new(map),
        }
    }

    /// What a key the kind does not have is told.
    pub(crate) fn unknown(&self, key: &str) -> String {
        let fields = self.kind.fields();
        if fields.is_empty() {
            format!("{key} ({} data has no keys)", self.kind.as_str())
        } else {
            format!(
                "{key} ({} data has: {})",
                self.kind.as_str(),
                fields.join(", ")
            )
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FindingFacts {
    pub kind: Kind,
    pub summary: String,
    pub symptom: bool,
    pub confidence: crate::diagnose::Confidence,
    /// `data.revision`: the revision of the pod it is about.
    pub revision: Option<String>,
    pub value: Dynamic,
}

#[derive(Debug, Clone)]
pub(crate) struct PodFacts {
    pub name: String,
    pub revision: Option<String>,
    pub ready: bool,
    pub terminating: bool,
    pub migration: bool,
    pub value: Dynamic,
}

#[derive(Debug, Clone)]
pub(crate) struct RevisionFacts {
    pub name: String,
    pub revision: i64,
    /// Whether it records a pod template (rollback needs one).
    pub has_template: bool,
    /// Whether its template equals the StatefulSet's template now.
    pub matches_template: bool,
}

impl RevisionFacts {
    pub fn to_dynamic(&self) -> Dynamic {
        let mut m = Map::new();
        m.insert("name".into(), str_value(&self.name));
        m.insert("revision".into(), Dynamic::from_int(self.revision));
        Dynamic::from_map(m)
    }
}

/// One StatefulSet, ready for policies.
#[derive(Debug, Clone)]
pub struct View {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// Scope constants, in the order they are pushed.
    pub(crate) values: Vec<(&'static str, Dynamic)>,
    pub(crate) findings: Vec<FindingFacts>,
    /// Paths the template change touched (revision_change's `changes`).
    pub(crate) changed_paths: Vec<String>,
    pub(crate) pods: Vec<PodFacts>,
    pub(crate) revisions: Vec<RevisionFacts>,
    pub(crate) current_revision: Option<String>,
    pub(crate) update_revision: Option<String>,
    /// Configured node groups: name and max size.
    pub(crate) node_groups: Vec<(String, i32)>,
    pub(crate) now: Timestamp,
    /// The GitOps object that applies the StatefulSet, where its kind's
    /// sync can be suspended (`rollback(..., #{ suspend_sync: true })`).
    pub(crate) sync: Option<super::action::SyncRef>,
    /// The spec as JSON, to compare templates, check patches against and
    /// for `spec()`.
    spec_json: Value,
}

/// The names of the scope constants every policy sees, so policies can be
/// compiled (with strict variables) before any StatefulSet is known.
pub const SCOPE_NAMES: &[&str] = &[
    "now",
    "sts",
    "pods",
    "revisions",
    "findings",
    "detection",
    "node_groups",
    "limit_ranges",
    "quotas",
    "history",
    "run",
];

pub(crate) fn str_value(s: &str) -> Dynamic {
    Dynamic::from(ImmutableString::from(s))
}

fn opt_str(s: Option<&str>) -> Dynamic {
    s.map_or(Dynamic::UNIT, str_value)
}

fn int(i: impl Into<i64>) -> Dynamic {
    Dynamic::from_int(i.into())
}

fn string_map<'a>(entries: impl IntoIterator<Item = (&'a String, &'a String)>) -> Dynamic {
    Dynamic::from_map(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_str().into(), str_value(v)))
            .collect(),
    )
}

fn quantity_map(
    m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Dynamic {
    Dynamic::from_map(
        m.into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str().into(), str_value(&v.0)))
            .collect(),
    )
}

/// JSON to Rhai: integers stay integers so `data.max == 4` holds.
pub fn from_json(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => str_value(s),
        Value::Array(a) => Dynamic::from_array(a.iter().map(from_json).collect()),
        Value::Object(o) => Dynamic::from_map(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), from_json(v)))
                .collect(),
        ),
    }
}

/// Rhai to JSON, for patches. Only data converts: a function pointer or an
/// action inside a patch is an error naming where it is.
pub fn to_json(v: &Dynamic, path: &str) -> Result<Value, String> {
    if v.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = v.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = v.as_float() {
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{path}: {f} is not a JSON number"));
    }
    if v.is_string() || v.is_char() {
        return Ok(Value::String(v.to_string()));
    }
    if v.is_array() {
        let a = v
            .read_lock::<Array>()
            .ok_or_else(|| format!("{path}: unreadable array"))?;
        return a
            .iter()
            .enumerate()
            .map(|(i, x)| to_json(x, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if v.is_map() {
        let m = v
            .read_lock::<Map>()
            .ok_or_else(|| format!("{path}: unreadable map"))?;
        let mut out = serde_json::Map::new();
        for (k, x) in m.iter() {
            out.insert(k.to_string(), to_json(x, &format!("{path}.{k}"))?);
        }
        return Ok(Value::Object(out));
    }
    Err(format!(
        "{path}: a {} cannot be part of a patch",
        v.type_name()
    ))
}

fn containers(list: &[Container]) -> Dynamic {
    Dynamic::from_array(
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                let r = c.resources.as_ref();
                let mut m = Map::new();
                m.insert("index".into(), int(i as i64));
                m.insert("name".into(), str_value(&c.name));
                m.insert("image".into(), opt_str(c.image.as_deref()));
                m.insert(
                    "requests".into(),
                    quantity_map(r.and_then(|r| r.requests.as_ref())),
                );
                m.insert(
                    "limits".into(),
                    quantity_map(r.and_then(|r| r.limits.as_ref())),
                );
                Dynamic::from_map(m)
            })
            .collect(),
    )
}

/// A finding's `change`, with the snake_case names policies use elsewhere.
fn change_value(c: &crate::diagnose::change::Change) -> Dynamic {
    let aspects = |list: &[crate::diagnose::change::Aspect]| {
        Dynamic::from_array(list.iter().map(|a| str_value(a.as_str())).collect())
    };
    let mut m = Map::new();
    m.insert("explains".into(), Dynamic::from_bool(c.explains));
    m.insert(
        "by".into(),
        str_value(match c.by {
            crate::diagnose::change::Basis::Template => "template",
            crate::diagnose::change::Basis::Comparison => "comparison",
            crate::diagnose::change::Basis::None => "none",
        }),
    );
    m.insert("why".into(), str_value(&c.why));
    m.insert("changed".into(), aspects(&c.changed));
    m.insert("depends_on".into(), aspects(&c.depends_on));
    Dynamic::from_map(m)
}

/// The StatefulSet's properties (`sts`).
fn sts_value(facts: &Facts, run: &RunContext) -> Map {
    let sts = &facts.stateful_set;
    let meta = &sts.metadata;
    let spec = &sts.spec;
    let status = sts.status.as_ref();
    let pod_spec = spec.template.spec.as_ref();
    let policy = spec
        .pod_management_policy
        .clone()
        .unwrap_or_else(|| "OrderedReady".into());
    let strategy = spec.update_strategy.as_ref();
    let annotations = meta.annotations.as_ref();
    let unsafe_marker = run.rollback_unsafe_annotations.iter().find_map(|key| {
        annotations
            .and_then(|a| a.get(key))
            .filter(|v| v.as_str() != "false")
            .map(|v| format!("{key}={v}"))
    });

    let mut s = Map::new();
    s.insert(
        "namespace".into(),
        opt_str_or_empty(meta.namespace.as_deref()),
    );
    s.insert("name".into(), opt_str_or_empty(meta.name.as_deref()));
    s.insert("uid".into(), opt_str(meta.uid.as_deref()));
    s.insert("generation".into(), int(meta.generation.unwrap_or(0)));
    s.insert(
        "observed_generation".into(),
        status
            .and_then(|s| s.observed_generation)
            .map_or(Dynamic::UNIT, int),
    );
    s.insert("replicas".into(), int(spec.replicas.unwrap_or(1)));
    for (key, value) in [
        ("ready_replicas", status.and_then(|s| s.ready_replicas)),
        ("updated_replicas", status.and_then(|s| s.updated_replicas)),
        ("current_replicas", status.and_then(|s| s.current_replicas)),
    ] {
        s.insert(key.into(), int(value.unwrap_or(0)));
    }
    s.insert(
        "current_revision".into(),
        opt_str(status.and_then(|s| s.current_revision.as_deref())),
    );
    s.insert(
        "update_revision".into(),
        opt_str(status.and_then(|s| s.update_revision.as_deref())),
    );
    s.insert("pod_management_policy".into(), str_value(&policy));
    s.insert(
        "update_strategy".into(),
        str_value(
            strategy
                .and_then(|s| s.type_.as_deref())
                .unwrap_or("RollingUpdate"),
        ),
    );
    s.insert(
        "partition".into(),
        int(strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0)),
    );
    s.insert("labels".into(), string_map(meta.labels.iter().flatten()));
    s.insert("annotations".into(), kept_annotations(annotations));
    s.insert(
        "rollback_unsafe".into(),
        Dynamic::from_bool(unsafe_marker.is_some()),
    );
    s.insert(
        "rollback_unsafe_reason".into(),
        str_value(unsafe_marker.as_deref().unwrap_or_default()),
    );
    s.insert(
        "containers".into(),
        containers(
            pod_spec
                .map(|p| p.containers.as_slice())
                .unwrap_or_default(),
        ),
    );
    s.insert(
        "init_containers".into(),
        containers(
            pod_spec
                .and_then(|p| p.init_containers.as_deref())
                .unwrap_or_default(),
        ),
    );
    s.insert(
        "node_selector".into(),
        string_map(
            pod_spec
                .and_then(|p| p.node_selector.as_ref())
                .into_iter()
                .flatten(),
        ),
    );
    s
}

fn opt_str_or_empty(s: Option<&str>) -> Dynamic {
    str_value(s.unwrap_or_default())
}

/// Annotations without the ones too large to copy.
fn kept_annotations(annotations: Option<&BTreeMap<String, String>>) -> Dynamic {
    string_map(
        annotations
            .into_iter()
            .flatten()
            .filter(|(k, _)| !DROPPED_ANNOTATIONS.contains(&k.as_str())),
    )
}

/// One pod's properties, and what the helpers read of it.
fn pod_facts(p: &Pod, sts_name: &str, update: Option<&str>, run: &RunContext) -> PodFacts {
    let pname = p.metadata.name.clone().unwrap_or_default();
    let revision = p
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .cloned();
    let ready = is_ready(p);
    let terminating = p.metadata.deletion_timestamp.is_some();
    let pstatus = p.status.as_ref();
    let statuses = pstatus
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            pstatus
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten(),
        );
    let mut restarts = 0i64;
    let mut waiting = Array::new();
    for c in statuses {
        restarts += i64::from(c.restart_count);
        if let Some(r) = c
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
        {
            waiting.push(str_value(r));
        }
    }
    let pod_annotations = p.metadata.annotations.as_ref();
    let migration = run
        .migration_annotations
        .iter()
        .any(|key| pod_annotations.is_some_and(|a| a.contains_key(key)));
    let mut m = Map::new();
    m.insert("name".into(), str_value(&pname));
    m.insert(
        "ordinal".into(),
        crate::facts::ordinal(sts_name, &pname).map_or(Dynamic::UNIT, int),
    );
    m.insert("revision".into(), opt_str(revision.as_deref()));
    m.insert(
        "on_update_revision".into(),
        Dynamic::from_bool(revision.is_some() && revision.as_deref() == update),
    );
    m.insert(
        "phase".into(),
        opt_str(pstatus.and_then(|s| s.phase.as_deref())),
    );
    m.insert("ready".into(), Dynamic::from_bool(ready));
    m.insert("terminating".into(), Dynamic::from_bool(terminating));
    m.insert("migration".into(), Dynamic::from_bool(migration));
    m.insert(
        "node".into(),
        opt_str(p.spec.as_ref().and_then(|s| s.node_name.as_deref())),
    );
    m.insert("restarts".into(), int(restarts));
    m.insert("waiting".into(), Dynamic::from_array(waiting));
    m.insert(
        "created".into(),
        opt_str(
            p.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .as_deref(),
        ),
    );
    m.insert(
        "labels".into(),
        string_map(p.metadata.labels.iter().flatten()),
    );
    m.insert("annotations".into(), kept_annotations(pod_annotations));
    PodFacts {
        name: pname,
        revision,
        ready,
        terminating,
        migration,
        value: Dynamic::from(PodView(Arc::new(m))),
    }
}

fn revision_facts(facts: &Facts, live: Option<&Value>) -> Vec<RevisionFacts> {
    facts
        .revisions
        .iter()
        .map(|r| {
            let template = revision_template(r);
            RevisionFacts {
                name: r.metadata.name.clone().unwrap_or_default(),
                revision: number(r),
                has_template: template.is_some(),
                matches_template: match (template, live) {
                    (Some(t), Some(l)) => same_template(t, l),
                    _ => false,
                },
            }
        })
        .collect()
}

/// `revisions`, as policies see them.
fn revision_values(
    facts: &Facts,
    revisions: &[RevisionFacts],
    current: Option<&str>,
    update: Option<&str>,
) -> Array {
    facts
        .revisions
        .iter()
        .zip(revisions)
        .map(|(r, f)| {
            let mut m = Map::new();
            m.insert("name".into(), str_value(&f.name));
            m.insert("revision".into(), int(f.revision));
            m.insert(
                "created".into(),
                opt_str(
                    r.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .as_deref(),
                ),
            );
            m.insert(
                "current".into(),
                Dynamic::from_bool(current == Some(f.name.as_str())),
            );
            m.insert(
                "update".into(),
                Dynamic::from_bool(update == Some(f.name.as_str())),
            );
            m.insert(
                "matches_template".into(),
                Dynamic::from_bool(f.matches_template),
            );
            Dynamic::from_map(m)
        })
        .collect()
}

/// One finding's properties, and what the helpers read of it.
fn finding_facts(f: &Finding) -> FindingFacts {
    let mut m = Map::new();
    m.insert("kind".into(), str_value(f.kind.as_str()));
    m.insert("summary".into(), str_value(&f.summary));
    m.insert(
        "confidence".into(),
        str_value(match f.confidence {
            crate::diagnose::Confidence::Low => "low",
            crate::diagnose::Confidence::Medium => "medium",
            crate::diagnose::Confidence::High => "high",
        }),
    );
    m.insert("symptom".into(), Dynamic::from_bool(f.kind.is_symptom()));
    m.insert(
        "pods".into(),
        Dynamic::from_array(f.pods.iter().map(|p| str_value(p)).collect()),
    );
    m.insert("data".into(), Dynamic::from(DataView::new(f)));
    // `()` where the finding is no failure to blame on a
    // revision: `f.change != () && f.change.explains`.
    m.insert(
        "change".into(),
        f.change.as_ref().map_or(Dynamic::UNIT, change_value),
    );
    FindingFacts {
        kind: f.kind,
        summary: f.summary.clone(),
        symptom: f.kind.is_symptom(),
        confidence: f.confidence,
        revision: f
            .data
            .revision()
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        value: Dynamic::from(FindingView(Arc::new(m))),
    }
}

fn detection_value(detection: &Detection) -> Dynamic {
    let mut d = Map::new();
    d.insert("due".into(), Dynamic::from_bool(detection.due));
    d.insert(
        "threshold_seconds".into(),
        int(detection.threshold.as_secs() as i64),
    );
    d.insert(
        "symptoms".into(),
        Dynamic::from_array(
            detection
                .symptoms
                .iter()
                .map(|h| {
                    let mut m = Map::new();
                    m.insert("kind".into(), str_value(h.symptom.name()));
                    m.insert("held_seconds".into(), int(h.held_seconds as i64));
                    m.insert("due".into(), Dynamic::from_bool(h.due));
                    m.insert(
                        "since".into(),
                        opt_str(h.since.map(|t| t.to_string()).as_deref()),
                    );
                    Dynamic::from_map(m)
                })
                .collect(),
        ),
    );
    Dynamic::from_map(d)
}

fn node_group_values(facts: &Facts) -> Dynamic {
    Dynamic::from_array(
        facts
            .node_groups
            .iter()
            .map(|g| {
                let mut m = Map::new();
                m.insert("name".into(), str_value(&g.name));
                m.insert("min".into(), int(g.min));
                m.insert("max".into(), int(g.max));
                m.insert(
                    "ready_within_seconds".into(),
                    int(g.ready_within.as_secs() as i64),
                );
                m.insert("labels".into(), string_map(&g.provides.labels));
                m.insert("resources".into(), string_map(&g.provides.resources));
                Dynamic::from_map(m)
            })
            .collect(),
    )
}

fn limit_range_values(facts: &Facts) -> Dynamic {
    Dynamic::from_array(
        facts
            .limit_ranges
            .iter()
            .map(|l| {
                let items: Array = l
                    .spec
                    .as_ref()
                    .map(|s| s.limits.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|i| {
                        let mut m = Map::new();
                        m.insert("type".into(), str_value(&i.type_));
                        m.insert("max".into(), quantity_map(i.max.as_ref()));
                        m.insert("min".into(), quantity_map(i.min.as_ref()));
                        m.insert("default".into(), quantity_map(i.default.as_ref()));
                        m.insert(
                            "default_request".into(),
                            quantity_map(i.default_request.as_ref()),
                        );
                        m.insert(
                            "max_limit_request_ratio".into(),
                            quantity_map(i.max_limit_request_ratio.as_ref()),
                        );
                        Dynamic::from_map(m)
                    })
                    .collect();
                let mut m = Map::new();
                m.insert("name".into(), opt_str(l.metadata.name.as_deref()));
                m.insert("limits".into(), Dynamic::from_array(items));
                Dynamic::from_map(m)
            })
            .collect(),
    )
}

fn quota_values(facts: &Facts) -> Dynamic {
    Dynamic::from_array(
        facts
            .resource_quotas
            .iter()
            .map(|q| {
                let st = q.status.as_ref();
                let mut m = Map::new();
                m.insert("name".into(), opt_str(q.metadata.name.as_deref()));
                m.insert(
                    "hard".into(),
                    quantity_map(st.and_then(|s| s.hard.as_ref())),
                );
                m.insert(
                    "used".into(),
                    quantity_map(st.and_then(|s| s.used.as_ref())),
                );
                Dynamic::from_map(m)
            })
            .collect(),
    )
}

fn history_value(facts: &Facts) -> Dynamic {
    let mut h = Map::new();
    let record = facts.history.as_ref();
    h.insert(
        "failing_runs".into(),
        int(record.map_or(0, |r| r.failing_runs)),
    );
    h.insert(
        "last_action".into(),
        record
            .and_then(|r| r.last_action.as_ref())
            .map_or(Dynamic::UNIT, |a| {
                let mut m = Map::new();
                m.insert("at".into(), str_value(&a.at.to_string()));
                m.insert("action".into(), str_value(&a.action));
                m.insert("why".into(), str_value(&a.why));
                Dynamic::from_map(m)
            }),
    );
    h.insert(
        "reverted".into(),
        Dynamic::from_array(
            record
                .into_iter()
                .flat_map(|r| &r.reverted)
                .map(|r| {
                    let mut m = Map::new();
                    m.insert("at".into(), str_value(&r.at.to_string()));
                    m.insert("from".into(), str_value(&r.from));
                    m.insert("to".into(), str_value(&r.to));
                    Dynamic::from_map(m)
                })
                .collect(),
        ),
    );
    Dynamic::from_map(h)
}

fn run_value(run: &RunContext) -> Dynamic {
    let mut r = Map::new();
    r.insert("now".into(), str_value(&run.now.to_string()));
    r.insert("failing".into(), int(run.failing as i64));
    r.insert("scanned".into(), int(run.scanned as i64));
    r.insert("storm".into(), Dynamic::from_bool(run.storm.is_some()));
    r.insert(
        "storm_reason".into(),
        str_value(
            &run.storm
                .as_ref()
                .map(Blocked::describe)
                .unwrap_or_default(),
        ),
    );
    r.insert("own_change".into(), int(run.own_change as i64));
    r.insert(
        "suspend_sync".into(),
        Dynamic::from_bool(run.gitops.suspend_sync),
    );
    let (shared, sharing) = match &run.storm {
        Some(Blocked::Storm {
            shared_cause,
            sharing,
            ..
        }) => (shared_cause.clone().unwrap_or_default(), *sharing),
        _ => (String::new(), 0),
    };
    r.insert("storm_cause".into(), str_value(&shared));
    r.insert("storm_sharing".into(), int(sharing as i64));
    r.insert(
        "threshold_seconds".into(),
        int(run.threshold.as_secs() as i64),
    );
    Dynamic::from_map(r)
}

impl View {
    pub fn new(
        facts: &Facts,
        detection: &Detection,
        findings: &[Finding],
        run: &RunContext,
    ) -> Self {
        let meta = &facts.stateful_set.metadata;
        let status = facts.stateful_set.status.as_ref();
        let current = status.and_then(|s| s.current_revision.clone());
        let update = status.and_then(|s| s.update_revision.clone());
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();

        let sts = sts_value(facts, run);
        let pods: Vec<PodFacts> = facts
            .pods
            .iter()
            .map(|p| pod_facts(p, &name, update.as_deref(), run))
            .collect();
        let spec_json = serde_json::to_value(&facts.stateful_set.spec).unwrap_or(Value::Null);
        let revisions = revision_facts(facts, spec_json.get("template"));
        let revision_values =
            revision_values(facts, &revisions, current.as_deref(), update.as_deref());
        let finding_values: Vec<FindingFacts> = findings.iter().map(finding_facts).collect();

        let values = vec![
            ("now", int(run.now.as_second())),
            ("sts", Dynamic::from(StatefulSetView(Arc::new(sts)))),
            (
                "pods",
                Dynamic::from_array(pods.iter().map(|p| p.value.clone()).collect()),
            ),
            ("revisions", Dynamic::from_array(revision_values)),
            (
                "findings",
                Dynamic::from_array(finding_values.iter().map(|f| f.value.clone()).collect()),
            ),
            ("detection", detection_value(detection)),
            ("node_groups", node_group_values(facts)),
            ("limit_ranges", limit_range_values(facts)),
            ("quotas", quota_values(facts)),
            ("history", history_value(facts)),
            ("run", run_value(run)),
        ];
        debug_assert_eq!(
            values.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            SCOPE_NAMES
        );

        View {
            namespace,
            name,
            values,
            findings: finding_values,
            changed_paths: findings
                .iter()
                .flat_map(|f| match &f.data {
                    Data::RevisionChange(r) => r.changes.as_slice(),
                    _ => &[],
                })
                .filter_map(|c| c.get("path").and_then(Value::as_str).map(str::to_string))
                .collect(),
            pods,
            revisions,
            current_revision: current,
            update_revision: update,
            node_groups: facts
                .node_groups
                .iter()
                .map(|g| (g.name.clone(), g.max))
                .collect(),
            now: run.now,
            sync: findings.iter().find_map(|f| match &f.data {
                Data::SpecOwner(d) => crate::gitops::sync_ref(d, &run.gitops.argocd_namespace),
                _ => None,
            }),
            spec_json,
        }
    }

    pub(crate) fn spec_json(&self) -> &Value {
        &self.spec_json
    }

    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub(crate) fn revision_by_number(&self, n: i64) -> Option<&RevisionFacts> {
        self.revisions.iter().find(|r| r.revision == n)
    }

    pub(crate) fn revision_by_name(&self, name: &str) -> Option<&RevisionFacts> {
        self.revisions.iter().find(|r| r.name == name)
    }

    pub(crate) fn known_revisions(&self) -> String {
        if self.revisions.is_empty() {
            return "none".into();
        }
        self.revisions
            .iter()
            .map(|r| format!("{} ({})", r.revision, r.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn findings_of(&self, kind: &str) -> impl Iterator<Item = &FindingFacts> {
        self.findings
            .iter()
            .filter(move |f| f.kind.as_str() == kind)
    }

    /// Crash loops, image pull errors and never-Ready pods on the update
    /// revision: the new revision failing.
    pub(crate) fn failures_on_update(&self) -> impl Iterator<Item = &FindingFacts> {
        self.findings.iter().filter(|f| {
            f.kind.is_pod_failure() && f.revision.is_some() && f.revision == self.update_revision
        })
    }

    /// Pods not terminating that carry a configured migration marker.
    pub(crate) fn migration_pods(&self) -> impl Iterator<Item = &PodFacts> {
        self.pods.iter().filter(|p| p.migration && !p.terminating)
    }

    /// The causes found: findings other than symptoms, of medium or high
    /// confidence.
    pub(crate) fn causes(&self) -> impl Iterator<Item = &FindingFacts> {
        self.findings.iter().filter(|f| {
            !f.symptom && !f.kind.is_context() && f.confidence != crate::diagnose::Confidence::Low
        })
    }

    /// Pods on the update revision that are not Ready: the new revision's
    /// casualties.
    pub(crate) fn not_ready_on_update(&self) -> impl Iterator<Item = &PodFacts> {
        self.pods.iter().filter(|p| {
            !p.ready && !p.terminating && p.revision.is_some() && p.revision == self.update_revision
        })
    }

    /// Pods left behind by a rollback: not Ready, on a revision that is
    /// neither the current nor the update revision, while the template
    /// already equals the update revision (so the controller adopted the
    /// rolled-back template). Under OrderedReady the controller waits for
    /// them forever (kubernetes#67250).
    pub(crate) fn stuck_after_rollback(&self) -> Vec<&PodFacts> {
        let adopted = self
            .update_revision
            .as_deref()
            .and_then(|u| self.revision_by_name(u))
            .is_some_and(|r| r.matches_template);
        if !adopted {
            return Vec::new();
        }
        self.pods
            .iter()
            .filter(|p| {
                !p.ready
                    && !p.terminating
                    && p.revision.as_ref().is_some_and(|r| {
                        Some(r) != self.update_revision.as_ref()
                            && Some(r) != self.current_revision.as_ref()
                    })
            })
            .collect()
    }

    /// The last revision whose pods were all Ready: `status.currentRevision`
    /// (the controller moves it only when a rollout completed), provided its
    /// template differs from the StatefulSet's now, so rolling back to it
    /// changes something.
    pub(crate) fn last_good_revision(&self) -> Option<&RevisionFacts> {
        self.current_revision
            .as_deref()
            .and_then(|c| self.revision_by_name(c))
            .filter(|r| r.has_template && !r.matches_template)
    }

    pub(crate) fn pod(&self, name: &str) -> Option<&PodFacts> {
        self.pods.iter().find(|p| p.name == name)
    }

    pub(crate) fn kinds(&self) -> BTreeSet<&'static str> {
        self.findings.iter().map(|f| f.kind.as_str()).collect()
    }
}
