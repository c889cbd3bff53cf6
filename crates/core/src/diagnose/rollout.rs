//! The StatefulSet itself: the symptoms, the rollout history and what changed
//! between revisions, and the update strategy's knobs.

use serde_json::Value;

use super::{Confidence, Data, Evidence, Finding, Input, Kind, data};
use crate::detect::Symptom;
use crate::facts::REVISION_LABEL;

pub fn symptoms(input: &Input<'_>, out: &mut Vec<Finding>) {
    let sts = input.sts_ref();
    for held in &input.detection.symptoms {
        let base = data::Held {
            held_seconds: held.held_seconds,
            due: held.due,
        };
        let (kind, field, data): (_, _, Data) = match held.symptom.clone() {
            Symptom::GenerationMismatch {
                generation,
                observed_generation,
            } => (
                Kind::GenerationMismatch,
                "status.observedGeneration",
                data::GenerationMismatch {
                    base,
                    generation,
                    observed_generation,
                }
                .into(),
            ),
            Symptom::RolloutStuck {
                current_revision,
                update_revision,
                replicas,
                updated_replicas,
                target,
            } => (
                Kind::RolloutStuck,
                "status.updatedReplicas",
                data::RolloutStuck {
                    base,
                    current_revision,
                    update_revision,
                    replicas,
                    updated_replicas,
                    target,
                }
                .into(),
            ),
            Symptom::ReplicasNotReady {
                replicas,
                ready_replicas,
            } => (
                Kind::ReplicasNotReady,
                "status.readyReplicas",
                data::ReplicasNotReady {
                    base,
                    replicas,
                    ready_replicas,
                }
                .into(),
            ),
        };
        let held_for = crate::duration::Span(held.held_seconds);
        let mut f = Finding::new(
            kind,
            Confidence::High,
            format!(
                "{} for {held_for} ({})",
                held.symptom.describe(),
                held.since_from
            ),
        )
        .with(Evidence::field(&sts, field, held.symptom.describe()))
        .data(data);
        f.evidence.extend(conditions(input, &sts));
        out.push(f);
    }
}

/// The StatefulSet's own status conditions (newer controllers write a
/// `Progressing` one, KEP-3541), each kept as written: whatever its type,
/// it is the controller's word on the rollout; and how its update strategy
/// reads a rollout that does not finish.
fn conditions(input: &Input<'_>, sts: &str) -> Vec<Evidence> {
    let status = input.facts.stateful_set.status.as_ref();
    strategy_reading(input, sts)
        .into_iter()
        .chain(
            status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .map(|c| {
                    let reason = c
                        .reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default();
                    let message = c
                        .message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default();
                    Evidence::field(
                        sts,
                        format!(
                            "status.conditions[{}]",
                            c.type_.as_deref().unwrap_or_default()
                        ),
                        format!(
                            "{}{reason}{message}",
                            c.status.as_deref().unwrap_or_default()
                        ),
                    )
                }),
        )
        .collect()
}

/// The strategy's own reading of "stuck", where it is not RollingUpdate's.
/// KEP-3541's `Recreate` (1.37 alpha) deletes every pod before it creates
/// any of the new revision: a stalled rollout there has either pods of an
/// earlier revision that will not go, or nothing serving at all. A strategy
/// newer than the agent is named as written, never taken for another.
fn strategy_reading(input: &Input<'_>, sts: &str) -> Option<Evidence> {
    let set = &input.facts.stateful_set;
    let kind = set.spec.update_strategy.as_ref()?.type_.as_deref()?;
    let message = match kind {
        "RollingUpdate" | "OnDelete" => return None,
        "Recreate" => {
            let update = set
                .status
                .as_ref()
                .and_then(|s| s.update_revision.as_deref());
            let earlier: Vec<&str> = input
                .facts
                .pods
                .iter()
                .filter(|p| {
                    update.is_some() && super::pods::revision(p).map(String::as_str) != update
                })
                .filter_map(|p| p.metadata.name.as_deref())
                .collect();
            if earlier.is_empty() {
                "Recreate (1.37 alpha, KEP-3541): every pod of the earlier revision was deleted before the new revision's were created, so none is left serving; the controller replaces pods itself, with no pod to force".to_string()
            } else {
                format!(
                    "Recreate (1.37 alpha, KEP-3541): {} of an earlier revision not yet gone; the controller creates no pod of the new revision until every earlier one is deleted",
                    earlier.join(", ")
                )
            }
        }
        other => format!("{other} (a strategy stsmend does not know: read as RollingUpdate)"),
    };
    Some(Evidence::field(sts, "spec.updateStrategy.type", message))
}

/// A ControllerRevision's number; the API server always sets it, v1.37's
/// schema leaves it optional.
pub fn number(rev: &k8s_openapi::api::apps::v1::ControllerRevision) -> i64 {
    rev.revision.unwrap_or_default()
}

/// The pod template a ControllerRevision recorded.
pub fn revision_template(rev: &k8s_openapi::api::apps::v1::ControllerRevision) -> Option<&Value> {
    rev.data.0.pointer("/spec/template")
}

/// Whether two templates are the same as the API server and the controller
/// each write them: the controller stores `$patch: replace` and a null
/// creationTimestamp that the live object does not carry. Compares in place;
/// templates are the largest part of a StatefulSet.
pub fn same_template(recorded: &Value, live: &Value) -> bool {
    fn present(o: &serde_json::Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
        o.iter()
            .filter(|(k, v)| !v.is_null() && k.as_str() != "$patch")
    }
    match (recorded, live) {
        (Value::Object(a), Value::Object(b)) => {
            present(a).count() == present(b).count()
                && present(a).all(|(k, v)| b.get(k).is_some_and(|w| same_template(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_template(x, y))
        }
        (a, b) => a == b,
    }
}

/// The revision whose template the StatefulSet has now: the recorded one
/// equal to the live template, newest first, else the update revision
/// (a template the controller has not recorded yet has none).
pub fn live_revision(facts: &crate::facts::Facts) -> Option<&str> {
    let sts = &facts.stateful_set;
    let live = serde_json::to_value(&sts.spec.template).ok();
    live.as_ref()
        .and_then(|live| {
            facts
                .revisions
                .iter()
                .rev()
                .find(|r| revision_template(r).is_some_and(|t| same_template(t, live)))
                .and_then(|r| r.metadata.name.as_deref())
        })
        .or_else(|| sts.status.as_ref()?.update_revision.as_deref())
}

/// Rollout history: which revision is current and which is being rolled out,
/// and what changed between their templates.
pub fn history(input: &Input<'_>, out: &mut Vec<Finding>) {
    let facts = input.facts;
    let status = facts.stateful_set.status.as_ref();
    let current = status.and_then(|s| s.current_revision.as_deref());
    let update = status.and_then(|s| s.update_revision.as_deref());
    let find = |name: Option<&str>| {
        facts
            .revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == name && name.is_some())
    };
    let sts_ref = input.sts_ref();
    let revisions: Vec<Value> = facts
        .revisions
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.metadata.name,
                "revision": r.revision,
                "current": r.metadata.name.as_deref() == current,
                "update": r.metadata.name.as_deref() == update,
            })
        })
        .collect();
    let live_template =
        serde_json::to_value(&facts.stateful_set.spec.template).unwrap_or(Value::Null);

    if let (Some(cur), Some(upd)) = (find(current), find(update))
        && cur.metadata.name != upd.metadata.name
    {
        let changes = match (revision_template(cur), revision_template(upd)) {
            (Some(a), Some(b)) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                strip_defaults(&mut a);
                strip_defaults(&mut b);
                diff(&a, &b)
            }
            _ => Vec::new(),
        };
        out.push(
            Finding::new(
                Kind::RevisionChange,
                Confidence::High,
                format!(
                    "rolling out revision {} ({}) over {} ({}){}",
                    number(upd),
                    upd.metadata.name.as_deref().unwrap_or_default(),
                    number(cur),
                    cur.metadata.name.as_deref().unwrap_or_default(),
                    summarise(&changes)
                ),
            )
            .with(Evidence::field(
                &sts_ref,
                "status.currentRevision/status.updateRevision",
                format!(
                    "{} -> {}",
                    current.unwrap_or_default(),
                    update.unwrap_or_default()
                ),
            ))
            .data(data::RevisionChange {
                current_revision: current.unwrap_or_default().into(),
                update_revision: update.unwrap_or_default().into(),
                last_good_revision: number(cur),
                changes,
                revisions: revisions.clone(),
                unrecorded: None,
            }),
        );
    } else if input.has_mismatch()
        && let Some(upd) = find(update)
        && let Some(recorded) = revision_template(upd)
    {
        // The controller has not recorded the newest template: compare the
        // StatefulSet's spec with the last revision it did record.
        let mut unrecorded = live_template.clone();
        strip_defaults(&mut unrecorded);
        let mut recorded = recorded.clone();
        strip_defaults(&mut recorded);
        let changes = diff(&recorded, &unrecorded);
        if !changes.is_empty() {
            out.push(
                Finding::new(
                    Kind::RevisionChange,
                    Confidence::High,
                    format!(
                        "the template was changed but no revision records it yet; last recorded is revision {} ({}){}",
                        number(upd),
                        upd.metadata.name.as_deref().unwrap_or_default(),
                        summarise(&changes)
                    ),
                )
                .with(Evidence::field(&sts_ref, "spec.template", "differs from the update revision"))
                .data(data::RevisionChange {
                    current_revision: current.unwrap_or_default().into(),
                    update_revision: update.unwrap_or_default().into(),
                    last_good_revision: number(upd),
                    changes,
                    revisions,
                    unrecorded: Some(true),
                }),
            );
        }
    }
}

fn summarise(changes: &[Value]) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let paths: Vec<&str> = changes
        .iter()
        .filter_map(|c| c.get("path").and_then(Value::as_str))
        .take(4)
        .collect();
    let more = changes.len().saturating_sub(paths.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("; changed: {}{tail}", paths.join(", "))
}

/// Fields the API server fills in on the live object but a revision may not
/// carry (the revision stores the template as the controller saw it).
fn strip_defaults(v: &mut Value) {
    if let Some(t) = v.as_object_mut() {
        // The strategic-merge directive a revision's template carries.
        t.remove("$patch");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("creationTimestamp");
    }
}

/// The leaf paths where two templates differ, with both values.
pub fn diff(old: &Value, new: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<Value>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(serde_json::json!({"path": path, "old": a, "new": b})),
        _ => {}
    }
}

/// Partition, maxUnavailable and pod management policy, as they bear on a
/// rollout that does not progress.
pub fn strategy(input: &Input<'_>, out: &mut Vec<Finding>) {
    let spec = &input.facts.stateful_set.spec;
    let sts = input.sts_ref();
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let replicas = spec.replicas.unwrap_or(1).max(0);
    // Pods are numbered from spec.ordinals.start (1.31): the partition
    // counts replicas from there, as the controller indexes them.
    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    if let Some(p) = rolling.and_then(|r| r.partition).filter(|p| *p > 0) {
        let first = start.saturating_add(p);
        let last = start.saturating_add(replicas).saturating_sub(1);
        let updated = if first > last {
            format!(
                "no pod is updated (replicas {replicas}{})",
                if start > 0 {
                    format!(" from ordinal {start}")
                } else {
                    String::new()
                }
            )
        } else if first == last {
            format!("only ordinal {first} is updated{}", from(start))
        } else {
            format!("only ordinals {first}..{last} are updated{}", from(start))
        };
        out.push(
            Finding::new(
                Kind::Partition,
                Confidence::High,
                format!("partition {p}: {updated}; the rest stay on the current revision"),
            )
            .with(Evidence::field(
                &sts,
                "spec.updateStrategy.rollingUpdate.partition",
                p.to_string(),
            ))
            .data(data::Partition { partition: p }),
        );
    }
    if let Some(mu) = rolling.and_then(|r| r.max_unavailable.as_ref()) {
        let text = match mu {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        };
        if text != "1" {
            let stuck = stuck_on_update(input);
            let summary = if stuck.len() > 1 {
                format!(
                    "maxUnavailable {text} (1.35 beta, KEP-961): the controller replaced several pods at once, and {} of the update revision are not Ready: every one must be replaced for the rollout, or a rollback, to go on",
                    stuck.join(", ")
                )
            } else {
                format!("maxUnavailable {text}: several pods may be replaced at once")
            };
            out.push(
                Finding::new(Kind::MaxUnavailable, Confidence::Medium, summary)
                    .with(Evidence::field(
                        &sts,
                        "spec.updateStrategy.rollingUpdate.maxUnavailable",
                        text.clone(),
                    ))
                    .data(data::MaxUnavailable {
                        max_unavailable: text,
                    }),
            );
        }
    }
}

/// Where ordinals start, when not at 0 (`spec.ordinals.start`, 1.31).
fn from(start: i32) -> String {
    if start > 0 {
        format!(" (ordinals.start {start})")
    } else {
        String::new()
    }
}

/// The pods of the update revision that are not Ready, in ordinal order.
fn stuck_on_update(input: &Input<'_>) -> Vec<String> {
    let set = &input.facts.stateful_set;
    let Some(update) = set
        .status
        .as_ref()
        .and_then(|s| s.update_revision.as_deref())
    else {
        return Vec::new();
    };
    input
        .facts
        .pods
        .iter()
        .filter(|p| {
            super::pods::revision(p).map(String::as_str) == Some(update)
                && !super::pods::is_ready(p)
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

/// With OrderedReady, the controller waits for a broken pod to become Ready
/// before it replaces it, so reverting the template alone does not heal the
/// set (the "forced rollback" of the StatefulSet docs, kubernetes#67250).
pub fn ordered_ready(input: &Input<'_>, out: &mut Vec<Finding>) {
    let facts = input.facts;
    let spec = &facts.stateful_set.spec;
    let policy = spec
        .pod_management_policy
        .as_deref()
        .unwrap_or("OrderedReady");
    // Recreate (KEP-3541) deletes every pod on a template change, broken
    // ones too: nothing waits for a pod to become Ready.
    let recreate = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate");
    if policy != "OrderedReady" || recreate {
        return;
    }
    let broken: std::collections::BTreeSet<&String> = out
        .iter()
        .filter(|f| f.kind.is_pod_failure())
        .flat_map(|f| f.pods.iter())
        .collect();
    let update = facts
        .stateful_set
        .status
        .as_ref()
        .and_then(|s| s.update_revision.as_deref());
    let ns = input.namespace();
    let blocked: Vec<(&str, Option<&str>)> = facts
        .pods
        .iter()
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            broken
                .contains(&name.to_string())
                .then(|| (name, super::pods::revision(p).map(String::as_str)))
        })
        .collect();
    if blocked.is_empty() {
        return;
    }
    let mut f = Finding::new(
        Kind::OrderedReadyBlocked,
        Confidence::High,
        format!(
            "OrderedReady: the controller waits for {} to become Ready; reverting the template alone will not replace {}",
            blocked.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            if blocked.len() == 1 { "it" } else { "them" }
        ),
    )
    .with(Evidence::field(input.sts_ref(), "spec.podManagementPolicy", policy));
    for (name, rev) in &blocked {
        f = f.pod(*name).with(Evidence::field(
            super::pod_ref(ns, name),
            format!("metadata.labels.{REVISION_LABEL}"),
            format!(
                "{}{}",
                rev.unwrap_or("unknown"),
                if *rev == update && update.is_some() {
                    " (update revision)"
                } else {
                    ""
                }
            ),
        ));
    }
    out.push(f);
}

#[cfg(test)]
mod tests {
    use crate::diagnose::Kind;

    /// The partition finding of a set of 5 replicas, partition 3, numbered
    /// from `start`.
    fn partition_summary(ordinals: &str) -> String {
        let mut inv = crate::inventory::Inventory::default();
        crate::source::files::parse_into(
            &mut inv,
            std::path::Path::new("t.yaml"),
            &format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: shop, uid: u1, generation: 3}}\nspec: {{replicas: 5, {ordinals}selector: {{matchLabels: {{app: db}}}}, serviceName: db, updateStrategy: {{type: RollingUpdate, rollingUpdate: {{partition: 3}}}}, template: {{metadata: {{labels: {{app: db}}}}, spec: {{containers: [{{name: db, image: db}}]}}}}}}\nstatus: {{replicas: 5, readyReplicas: 4, observedGeneration: 2, currentRevision: db-1, updateRevision: db-2}}\n"),
        )
        .unwrap();
        let opts = crate::pipeline::Options::new(
            "2026-12-03T10:00:00Z".parse().unwrap(),
            crate::duration::Span::minutes(0),
        );
        let o = crate::pipeline::evaluate(&inv, None, &opts);
        let a = o
            .failing
            .iter()
            .chain(&o.pending)
            .next()
            .expect("a candidate");
        a.findings
            .iter()
            .find(|f| f.kind == Kind::Partition)
            .expect("a partition finding")
            .summary
            .clone()
    }

    #[test]
    fn the_partition_counts_from_the_first_ordinal() {
        assert!(
            partition_summary("").contains("only ordinals 3..4 are updated"),
            "{}",
            partition_summary("")
        );
        // spec.ordinals.start: 10 names the pods db-10..db-14; the
        // controller updates replicas from index 3, db-13 and db-14.
        let s = partition_summary("ordinals: {start: 10}, ");
        assert!(s.contains("only ordinals 13..14 are updated"), "{s}");
    }
}
