//! Pods the scheduler cannot place, split by the scheduler's own reasons, and
//! what the cluster-autoscaler says about adding nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use k8s_openapi::api::core::v1::PersistentVolume;

use super::{Confidence, Evidence, Finding, Input, Kind, data, pod_ref};
use crate::facts::NodeSummary;

/// One reason the scheduler gave, classified.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Insufficient(String),
    NodeAffinity,
    Taint(String),
    PodAffinity,
    TopologySpread,
    /// "node(s) had volume node affinity conflict", "had no available
    /// volume zone": the pod's volume lives where no usable node is.
    VolumeNodeConflict,
    Volume,
    /// Cordoned: `spec.unschedulable`, or its taint in newer versions.
    Unschedulable,
    /// The node lifecycle taints of a node that stopped reporting.
    NotReady(String),
    Other(String),
}

/// Node-lifecycle taints: the node controller's, not anyone's choice for the
/// workload.
const NOT_READY_TAINTS: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
];

impl Reason {
    pub fn class(&self) -> &'static str {
        match self {
            Reason::Insufficient(_) => "insufficient_resource",
            Reason::NodeAffinity => "node_affinity",
            Reason::Taint(_) => "taints",
            Reason::PodAffinity => "pod_affinity",
            Reason::TopologySpread => "topology_spread",
            Reason::VolumeNodeConflict => "volume_node_conflict",
            Reason::Volume => "volume",
            Reason::Unschedulable => "node_unschedulable",
            Reason::NotReady(_) => "node_not_ready",
            Reason::Other(_) => "other",
        }
    }
}

/// One part of the scheduler's message: how many nodes gave the reason
/// (where it says), the reason, and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub count: Option<u32>,
    pub reason: Reason,
    pub text: String,
}

/// The scheduler's whole message: "0/N nodes are available: ...".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// N, the nodes the scheduler considered.
    pub nodes: Option<u32>,
    pub reasons: Vec<Counted>,
}

/// Reads "0/3 nodes are available: 1 node(s) were unschedulable, 2
/// Insufficient memory." (the v1.20 wording, and the newer one with
/// "untolerated taint" and a "preemption: ..." suffix), every reason with
/// its node count.
pub fn parse_message(message: &str) -> Message {
    let (head, body) = message
        .split_once("are available:")
        .unwrap_or(("", message));
    let nodes = head
        .rsplit_once('/')
        .and_then(|(_, n)| n.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    // Newer schedulers append "preemption: 0/3 nodes are available: ...";
    // that part says what preempting would do, not why the pod waits.
    let body = body.split(" preemption:").next().unwrap_or(body);
    let mut reasons = Vec::new();
    for part in split_reasons(body) {
        let part = part.trim().trim_end_matches('.').trim();
        let (count, text) = match part.split_once(' ') {
            Some((n, t)) if n.chars().all(|c| c.is_ascii_digit()) => (n.parse().ok(), t.trim()),
            _ => (None, part),
        };
        // "had taint {k: v}, that the pod didn't tolerate" splits in two.
        if text.is_empty() || text.starts_with("that ") {
            continue;
        }
        reasons.push(Counted {
            count,
            reason: classify(text),
            text: text.to_string(),
        });
    }
    Message { nodes, reasons }
}

fn classify(text: &str) -> Reason {
    let lower = text.to_ascii_lowercase();
    if let Some(res) = text.strip_prefix("Insufficient ") {
        Reason::Insufficient(res.trim().to_string())
    } else if lower.contains("taint") {
        let taint = text
            .split_once('{')
            .and_then(|(_, r)| r.split_once('}'))
            .map(|(t, _)| t.trim().to_string())
            .unwrap_or_default();
        let key = taint.split(':').next().unwrap_or_default().trim();
        if key == "node.kubernetes.io/unschedulable" {
            Reason::Unschedulable
        } else if NOT_READY_TAINTS.contains(&key) {
            Reason::NotReady(key.to_string())
        } else {
            Reason::Taint(taint)
        }
    } else if lower.contains("pod affinity") || lower.contains("anti-affinity") {
        Reason::PodAffinity
    } else if lower.contains("topology spread") {
        Reason::TopologySpread
    } else if lower.contains("volume node affinity conflict")
        || lower.contains("no available volume zone")
    {
        Reason::VolumeNodeConflict
    } else if lower.contains("node selector") || lower.contains("node affinity") {
        Reason::NodeAffinity
    } else if lower.contains("volume") || lower.contains("persistentvolumeclaim") {
        Reason::Volume
    } else if lower.contains("were unschedulable") || lower.contains("node(s) unschedulable") {
        Reason::Unschedulable
    } else if lower.contains("not ready") || lower.contains("notready") {
        Reason::NotReady(String::new())
    } else {
        Reason::Other(text.to_string())
    }
}

/// The classified reasons of a message, each once, in order.
#[cfg(test)]
fn parse_reasons(message: &str) -> Vec<Reason> {
    let mut out: Vec<Reason> = Vec::new();
    for c in parse_message(message).reasons {
        if !out.contains(&c.reason) {
            out.push(c.reason);
        }
    }
    out
}

/// Splits on commas outside braces, since taints print as `{key: value}`.
fn split_reasons(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
}

/// What one reason class gathered over the pods: pods, evidence, details
/// (resource or taint names) and the parsed reasons with their counts.
#[derive(Default)]
struct Group {
    pods: BTreeSet<String>,
    evidence: Vec<Evidence>,
    details: BTreeSet<String>,
    reasons: Vec<Value>,
    nodes: Option<u32>,
}

/// Unscheduled pods' reasons, gathered by class: the pod's own
/// condition, or its last FailedScheduling event where that carries no
/// message.
fn groups(input: &Input<'_>) -> BTreeMap<&'static str, Group> {
    let facts = input.facts;
    let ns = input.namespace();
    let mut groups: BTreeMap<&'static str, Group> = BTreeMap::new();
    for pod in &facts.pods {
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some()
        {
            continue;
        }
        let pname = pod.metadata.name.clone().unwrap_or_default();
        let condition = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        // The pod's own condition is the scheduler's latest word; its last
        // FailedScheduling event (of this pod, this rollout) where the
        // condition carries no message.
        let message = match condition.and_then(|c| c.message.clone()) {
            Some(m) => Some((
                Evidence::field(
                    pod_ref(ns, &pname),
                    "status.conditions[PodScheduled].message",
                    m.clone(),
                ),
                m,
            )),
            None => input
                .events()
                .filter(|e| {
                    e.reason.as_deref() == Some("FailedScheduling")
                        && e.involved_object.name.as_deref() == Some(&pname)
                })
                .last()
                .map(|e| {
                    let m = e.message.clone().unwrap_or_default();
                    (Evidence::event(pod_ref(ns, &pname), m.clone()), m)
                }),
        };
        let Some((evidence, message)) = message else {
            continue;
        };
        let parsed = parse_message(&message);
        let all: Vec<Value> = parsed
            .reasons
            .iter()
            .map(|c| {
                serde_json::json!({
                    "reason": c.reason.class(),
                    "count": c.count,
                    "text": c.text,
                })
            })
            .collect();
        for c in &parsed.reasons {
            let entry = groups.entry(c.reason.class()).or_default();
            entry.pods.insert(pname.clone());
            if !entry.evidence.contains(&evidence) {
                entry.evidence.push(evidence.clone());
            }
            match &c.reason {
                Reason::Insufficient(r) | Reason::Taint(r) | Reason::Other(r) => {
                    entry.details.insert(r.clone());
                }
                Reason::NotReady(r) if !r.is_empty() => {
                    entry.details.insert(r.clone());
                }
                _ => {}
            }
            for r in &all {
                if !entry.reasons.contains(r) {
                    entry.reasons.push(r.clone());
                }
            }
            entry.nodes = entry.nodes.or(parsed.nodes);
        }
    }
    groups
}

pub fn unschedulable(input: &Input<'_>, out: &mut Vec<Finding>) {
    let changed = super::change::changed_aspects(out);
    let groups = groups(input);
    for (class, g) in groups {
        let pods: Vec<String> = g.pods.into_iter().collect();
        let details: Vec<String> = g.details.into_iter().collect();
        let who = pods.join(", ");
        let mut f = match class {
            "insufficient_resource" => insufficient(input, &changed, &who, &details),
            "node_unschedulable" => nodes_cordoned(input, &who),
            "node_not_ready" => nodes_not_ready(input, &who),
            "volume_node_conflict" => volume_conflict(input, &pods),
            _ => {
                let what = match class {
                    "node_affinity" => "no node matches the node selector or node affinity".into(),
                    "taints" => format!(
                        "nodes have taints the pods do not tolerate ({})",
                        details.join(", ")
                    ),
                    "pod_affinity" => "pod affinity or anti-affinity rules cannot be met".into(),
                    "topology_spread" => "the topology spread constraints cannot be met".into(),
                    "volume" => "their volumes cannot be bound or reached".into(),
                    _ => details.join("; "),
                };
                Finding::new(
                    Kind::Unschedulable,
                    Confidence::High,
                    format!("{who} unschedulable: {what}"),
                )
                .data(data::Unschedulable::default())
            }
        };
        let scheduling = data::Scheduling {
            reason: class.into(),
            resources: if class == "insufficient_resource" {
                details.clone()
            } else {
                Vec::new()
            },
            details,
            reasons: g.reasons,
            scalable_groups: scalable_groups(input, class),
            nodes: g.nodes,
        };
        debug_assert!(f.data.scheduling().is_some(), "{:?}", f.kind);
        if let Some(s) = f.data.scheduling_mut() {
            *s = scheduling;
        }
        f.evidence.extend(g.evidence);
        f.pods = pods;
        out.push(f);
    }
}

/// Pods lacking cpu, memory or another resource: the template's doing when
/// its change touched resources, or when no node offers the resource at all
/// (a GPU nobody has); otherwise the nodes have it but other workloads hold
/// it.
fn insufficient(
    input: &Input<'_>,
    changed: &BTreeSet<super::change::Aspect>,
    who: &str,
    resources: &[String],
) -> Finding {
    let offered = |r: &String| {
        input.facts.nodes.iter().any(|n| {
            n.allocatable
                .get(r)
                .and_then(|q| crate::quantity::parse(q))
                .is_some_and(|q| q > 0.0)
        })
    };
    let raised = changed.contains(&super::change::Aspect::Resources);
    if raised || !resources.iter().all(offered) {
        return Finding::new(
            Kind::Unschedulable,
            Confidence::High,
            format!(
                "{who} unschedulable: not enough {} on any node",
                resources.join(", ")
            ),
        )
        .data(data::Unschedulable::default());
    }
    let ready = input.facts.nodes.iter().filter(|n| n.ready).count();
    Finding::new(
        Kind::NodesFull,
        Confidence::High,
        format!(
            "{who} unschedulable: the nodes ({ready} Ready) have no free {} left, and no template change raised the requests: other workloads hold it",
            resources.join(", ")
        ),
    )
    .data(data::NodesFull {
        ready_nodes: ready as i64,
        ..Default::default()
    })
}

fn nodes_cordoned(input: &Input<'_>, who: &str) -> Finding {
    nodes_out_of_service(
        input,
        who,
        NodesOut {
            kind: Kind::NodesCordoned,
            are: "cordoned",
            data: |nodes| {
                data::NodesCordoned {
                    nodes_cordoned: nodes,
                    ..Default::default()
                }
                .into()
            },
            out: |n| n.unschedulable,
            field: "spec.unschedulable",
            value: "true",
        },
    )
}

fn nodes_not_ready(input: &Input<'_>, who: &str) -> Finding {
    nodes_out_of_service(
        input,
        who,
        NodesOut {
            kind: Kind::NodesNotReady,
            are: "not Ready",
            data: |nodes| {
                data::NodesNotReady {
                    nodes_not_ready: nodes,
                    ..Default::default()
                }
                .into()
            },
            out: |n| !n.ready,
            field: "status.conditions[Ready]",
            value: "not True",
        },
    )
}

/// One way nodes are out of service, and how a finding names it.
struct NodesOut {
    kind: Kind,
    are: &'static str,
    /// The finding's data, naming the nodes.
    data: fn(Vec<String>) -> super::Data,
    out: fn(&crate::facts::NodeSummary) -> bool,
    field: &'static str,
    value: &'static str,
}

/// The nodes out of service in `how`'s way, each with its field as evidence.
fn nodes_out_of_service(input: &Input<'_>, who: &str, how: NodesOut) -> Finding {
    let names: Vec<&str> = input
        .facts
        .nodes
        .iter()
        .filter(|n| (how.out)(n))
        .map(|n| n.name.as_str())
        .collect();
    let mut f = Finding::new(
        how.kind,
        Confidence::High,
        format!(
            "{who} unschedulable: nodes are {}{}",
            how.are,
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            }
        ),
    )
    .data((how.data)(names.iter().map(|n| n.to_string()).collect()));
    for n in names {
        f = f.with(Evidence::field(format!("Node {n}"), how.field, how.value));
    }
    f
}

/// The zone label of a node, in its current or its beta spelling.
fn zone_of(labels: &BTreeMap<String, String>) -> Option<&String> {
    labels
        .get("topology.kubernetes.io/zone")
        .or_else(|| labels.get("failure-domain.beta.kubernetes.io/zone"))
}

/// What a PersistentVolume's required node affinity asks of a node,
/// `key in (a, b)` terms (any one term suffices), and which nodes of the
/// cluster satisfy it. `None` when the volume has no node affinity.
struct Pinned {
    requires: String,
    nodes: Vec<String>,
}

fn pinned(pv: &PersistentVolume, nodes: &[NodeSummary]) -> Option<Pinned> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    let said = |r: &k8s_openapi::api::core::v1::NodeSelectorRequirement| {
        let values = r.values.clone().unwrap_or_default().join(", ");
        match r.operator.as_str() {
            "In" => format!("{} in ({values})", r.key),
            "NotIn" => format!("{} notin ({values})", r.key),
            "Exists" => r.key.clone(),
            "DoesNotExist" => format!("!{}", r.key),
            op => format!("{} {op} {values}", r.key),
        }
    };
    let holds = |r: &k8s_openapi::api::core::v1::NodeSelectorRequirement, v: Option<&String>| {
        let values = r.values.as_deref().unwrap_or_default();
        let number = |x: &str| x.parse::<i64>().ok();
        match r.operator.as_str() {
            "In" => v.is_some_and(|v| values.contains(v)),
            "NotIn" => v.is_none_or(|v| !values.contains(v)),
            "Exists" => v.is_some(),
            "DoesNotExist" => v.is_none(),
            "Gt" | "Lt" => match (
                v.and_then(|v| number(v)),
                values.first().and_then(|x| number(x)),
            ) {
                (Some(have), Some(bound)) => (r.operator == "Gt") == (have > bound),
                _ => false,
            },
            _ => false,
        }
    };
    let requires = terms
        .iter()
        .map(|t| {
            let exprs = t.match_expressions.iter().flatten().map(said);
            let fields = t.match_fields.iter().flatten().map(said);
            exprs.chain(fields).collect::<Vec<_>>().join(", ")
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let fits = |n: &NodeSummary| {
        terms.iter().any(|t| {
            t.match_expressions
                .iter()
                .flatten()
                .all(|r| holds(r, n.labels.get(&r.key)))
                && t.match_fields.iter().flatten().all(|r| {
                    let name = (r.key == "metadata.name").then(|| n.name.clone());
                    holds(r, name.as_ref())
                })
        })
    };
    Some(Pinned {
        requires,
        nodes: nodes
            .iter()
            .filter(|n| fits(n))
            .map(|n| n.name.clone())
            .collect(),
    })
}

/// Where one claim's volume is pinned: its entry in `volumes`, the words
/// for the summary, and the PersistentVolume's node affinity as evidence.
fn pinned_claim(
    facts: &crate::facts::Facts,
    ns: &str,
    pvc: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    evidence: &mut Vec<Evidence>,
) -> (Value, String) {
    let cname = pvc.metadata.name.as_deref().unwrap_or_default();
    let pv = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    let node = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.kubernetes.io/selected-node"))
        .cloned();
    let known = node
        .as_deref()
        .and_then(|n| facts.nodes.iter().find(|x| x.name == n));
    let zone = known
        .and_then(|n| zone_of(&n.labels))
        .cloned()
        .or_else(|| pvc.metadata.labels.as_ref().and_then(zone_of).cloned());
    let volume = facts
        .pvs
        .iter()
        .find(|v| v.metadata.name.as_deref() == Some(pv.as_str()));
    let pin = volume.and_then(|v| pinned(v, &facts.nodes));
    let zone = zone.or_else(|| {
        volume
            .and_then(|v| v.metadata.labels.as_ref())
            .and_then(zone_of)
            .cloned()
    });
    let mut where_ = Vec::new();
    if let Some(p) = &pin {
        where_.push(format!(
            "its volume requires {}: {}",
            p.requires,
            if p.nodes.is_empty() {
                "no node has it".to_string()
            } else {
                format!("only {}", p.nodes.join(", "))
            }
        ));
        evidence.push(Evidence::field(
            format!("PersistentVolume {pv}"),
            "spec.nodeAffinity.required",
            p.requires.clone(),
        ));
    }
    if let Some(n) = &node {
        where_.push(format!(
            "provisioned for node {n}{}",
            if known.is_none() {
                ", which no longer exists"
            } else {
                ""
            }
        ));
    }
    if let Some(z) = &zone {
        where_.push(format!("zone {z}"));
    }
    let word = format!(
        "claim {cname}{}{}",
        if pv.is_empty() {
            String::new()
        } else {
            format!(" (PersistentVolume {pv})")
        },
        if where_.is_empty() {
            String::new()
        } else {
            format!(": {}", where_.join(", "))
        }
    );
    evidence.push(Evidence::field(
        format!("PersistentVolumeClaim {ns}/{cname}"),
        "spec.volumeName",
        if pv.is_empty() {
            "<unbound>".into()
        } else {
            pv.clone()
        },
    ));
    let volume = serde_json::json!({
        "claim": cname,
        "volume": pv,
        "node": node,
        "node_exists": known.is_some(),
        "zone": zone,
        "requires": pin.as_ref().map(|p| p.requires.clone()),
        "nodes_matching": pin.map(|p| p.nodes),
    });
    (volume, word)
}

/// Pods whose volume is pinned where no usable node is: names each claim,
/// its volume, and where the volume was provisioned (the node the claim
/// was bound for and its zone), as far as the claims say.
fn volume_conflict(input: &Input<'_>, pods: &[String]) -> Finding {
    let facts = input.facts;
    let ns = input.namespace();
    let sts = facts
        .stateful_set
        .metadata
        .name
        .as_deref()
        .unwrap_or_default();
    let mut volumes = Vec::new();
    let mut evidence = Vec::new();
    let mut words = Vec::new();
    for pod in pods {
        let Some(ordinal) = crate::facts::ordinal(sts, pod) else {
            continue;
        };
        for pvc in &facts.pvcs {
            let cname = pvc.metadata.name.as_deref().unwrap_or_default();
            if !cname.ends_with(&format!("-{sts}-{ordinal}")) {
                continue;
            }
            let (volume, word) = pinned_claim(facts, ns, pvc, &mut evidence);
            volumes.push(volume);
            words.push(word);
        }
    }
    let mut f = Finding::new(
        Kind::VolumeNodeConflict,
        Confidence::High,
        format!(
            "{} unschedulable: the volume is pinned to nodes the pod cannot use{}",
            pods.join(", "),
            if words.is_empty() {
                String::new()
            } else {
                format!(" ({})", words.join("; "))
            }
        ),
    )
    .data(data::VolumeNodeConflict {
        volumes,
        ..Default::default()
    });
    f.evidence = evidence;
    f
}

/// Configured node groups whose nodes would satisfy what is missing, where
/// the class of reason is one that adding nodes can fix.
fn scalable_groups(input: &Input<'_>, class: &str) -> Vec<Value> {
    if !matches!(
        class,
        "insufficient_resource" | "pod_affinity" | "topology_spread"
    ) {
        return Vec::new();
    }
    let template = input.facts.stateful_set.spec.template.spec.as_ref();
    let selector = template
        .and_then(|t| t.node_selector.clone())
        .unwrap_or_default();
    let requests: BTreeSet<String> = template
        .map(|t| {
            t.containers
                .iter()
                .filter_map(|c| c.resources.as_ref())
                .flat_map(|r| {
                    r.requests
                        .iter()
                        .chain(r.limits.iter())
                        .flat_map(|m| m.keys().cloned())
                })
                .collect()
        })
        .unwrap_or_default();
    input
        .facts
        .node_groups
        .iter()
        .filter(|g| {
            selector
                .iter()
                .all(|(k, v)| g.provides.labels.get(k) == Some(v))
        })
        .filter(|g| {
            // Extended resources (GPUs) must be provided explicitly; cpu and
            // memory every node has.
            requests
                .iter()
                .filter(|r| *r != "cpu" && *r != "memory" && *r != "ephemeral-storage")
                .all(|r| g.provides.resources.contains_key(r))
        })
        .map(|g| serde_json::json!({"name": g.name, "max": g.max}))
        .collect()
}

/// The cluster-autoscaler's own status: cluster health, and whether scale-up
/// is in backoff or failing for some node group.
pub fn autoscaler(input: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(cm) = input.facts.autoscaler_status.as_ref() else {
        return;
    };
    let Some(status) = cm.data.as_ref().and_then(|d| d.get("status")) else {
        return;
    };
    let parsed = parse_autoscaler_status(status);
    let troubled: Vec<&(String, String, String)> = parsed
        .groups
        .iter()
        .filter(|(_, health, scale_up)| {
            !health.starts_with("Healthy") || scale_up.starts_with("Backoff")
        })
        .collect();
    let healthy = parsed.cluster_health.starts_with("Healthy");
    let confidence = if troubled.is_empty() && healthy {
        Confidence::Low
    } else {
        Confidence::High
    };
    let mut f = Finding::new(
        Kind::AutoscalerStatus,
        confidence,
        format!(
            "cluster-autoscaler: {}; scale-up {}{}",
            first_word(&parsed.cluster_health),
            first_word(&parsed.cluster_scale_up),
            if troubled.is_empty() {
                String::new()
            } else {
                format!(
                    "; node groups in trouble: {}",
                    troubled
                        .iter()
                        .map(|(n, h, s)| format!(
                            "{n} ({}, scale-up {})",
                            first_word(h),
                            first_word(s)
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    )
    .with(Evidence::field(
        "ConfigMap kube-system/cluster-autoscaler-status",
        "data.status",
        format!(
            "Health: {}; ScaleUp: {}",
            parsed.cluster_health, parsed.cluster_scale_up
        ),
    ))
    .data(data::AutoscalerStatus {
        health: first_word(&parsed.cluster_health),
        scale_up: first_word(&parsed.cluster_scale_up),
        backoff_groups: troubled
            .iter()
            .filter(|(_, _, s)| s.starts_with("Backoff"))
            .map(|(n, _, _)| n.clone())
            .collect(),
    });
    for (name, health, scale_up) in &troubled {
        f = f.with(Evidence::field(
            "ConfigMap kube-system/cluster-autoscaler-status",
            format!("data.status NodeGroups[{name}]"),
            format!("Health: {health}; ScaleUp: {scale_up}"),
        ));
    }
    out.push(f);
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("unknown").to_string()
}

#[derive(Debug, Default, PartialEq)]
pub struct AutoscalerStatus {
    pub cluster_health: String,
    pub cluster_scale_up: String,
    /// (name, health, scale-up) per node group.
    pub groups: Vec<(String, String, String)>,
}

/// Reads the plain-text status cluster-autoscaler writes:
/// ```text
/// Cluster-wide:
///   Health:      Healthy (ready=3 ...)
///   ScaleUp:     NoActivity (ready=3 registered=3)
/// NodeGroups:
///   Name:        gpu-pool
///   Health:      Healthy (...)
///   ScaleUp:     Backoff (...)
/// ```
/// and the YAML form of newer releases (`clusterWide.health.status`...).
pub fn parse_autoscaler_status(text: &str) -> AutoscalerStatus {
    if let Ok(v) = serde_saphyr::from_str::<Value>(text)
        && let Some(cw) = v.get("clusterWide")
    {
        let status = |node: Option<&Value>, key: &str| {
            node.and_then(|n| n.get(key))
                .and_then(|h| h.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string()
        };
        let groups = v
            .get("nodeGroups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|g| {
                (
                    g.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    status(Some(g), "health"),
                    status(Some(g), "scaleUp"),
                )
            })
            .collect();
        return AutoscalerStatus {
            cluster_health: status(Some(cw), "health"),
            cluster_scale_up: status(Some(cw), "scaleUp"),
            groups,
        };
    }
    let mut out = AutoscalerStatus::default();
    let mut in_groups = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("NodeGroups:") {
            in_groups = true;
            continue;
        }
        let Some((key, value)) = t.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match (in_groups, key.trim()) {
            (false, "Health") => out.cluster_health = value,
            (false, "ScaleUp") => out.cluster_scale_up = value,
            (true, "Name") => out.groups.push((value, String::new(), String::new())),
            (true, "Health") => {
                if let Some(g) = out.groups.last_mut() {
                    g.1 = value;
                }
            }
            (true, "ScaleUp") => {
                if let Some(g) = out.groups.last_mut() {
                    g.2 = value;
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v1_20_scheduler_reasons() {
        let r = parse_reasons("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.");
        assert_eq!(r, vec![Reason::Insufficient("nvidia.com/gpu".into())]);
        let r = parse_reasons(
            "0/4 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match node selector, 2 node(s) had taint {dedicated: db}, that the pod didn't tolerate.",
        );
        assert_eq!(
            r,
            vec![
                Reason::Insufficient("cpu".into()),
                Reason::NodeAffinity,
                Reason::Taint("dedicated: db".into())
            ]
        );
        let r = parse_reasons(
            "0/3 nodes are available: 3 node(s) didn't match pod affinity/anti-affinity, 3 node(s) didn't satisfy existing pods anti-affinity rules.",
        );
        assert_eq!(r, vec![Reason::PodAffinity]);
    }

    #[test]
    fn counts_every_reason() {
        let m = parse_message(
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient memory.",
        );
        assert_eq!(m.nodes, Some(3));
        assert_eq!(
            m.reasons
                .iter()
                .map(|c| (c.count, c.reason.clone()))
                .collect::<Vec<_>>(),
            vec![
                (Some(1), Reason::Unschedulable),
                (Some(2), Reason::Insufficient("memory".into()))
            ]
        );
        let m = parse_message(
            "0/4 nodes are available: 1 node(s) had taint {node.kubernetes.io/unreachable: }, that the pod didn't tolerate, 2 node(s) had volume node affinity conflict, 1 node(s) didn't match pod topology spread constraints.",
        );
        assert_eq!(m.nodes, Some(4));
        assert_eq!(
            m.reasons
                .iter()
                .map(|c| (c.count, c.reason.clone()))
                .collect::<Vec<_>>(),
            vec![
                (
                    Some(1),
                    Reason::NotReady("node.kubernetes.io/unreachable".into())
                ),
                (Some(2), Reason::VolumeNodeConflict),
                (Some(1), Reason::TopologySpread),
            ]
        );
        // Newer: cordoning shows as a taint, and preemption has its say.
        let m = parse_message(
            "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/unschedulable: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
        );
        assert_eq!(m.nodes, Some(2));
        assert_eq!(m.reasons.len(), 1);
        assert_eq!(m.reasons[0].reason, Reason::Unschedulable);
        assert_eq!(m.reasons[0].count, Some(2));
    }

    #[test]
    fn reads_newer_wordings() {
        let r = parse_reasons(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
        );
        assert_eq!(r, vec![Reason::NodeAffinity]);
        let r = parse_reasons(
            "0/2 nodes are available: 2 node(s) had untolerated taint {gpu: true}. preemption: ...",
        );
        assert_eq!(r, vec![Reason::Taint("gpu: true".into())]);
    }

    #[test]
    fn reads_autoscaler_text_status() {
        let s = parse_autoscaler_status(
            "Cluster-autoscaler status at 2026-11-22 10:00:00 +0000 UTC:\nCluster-wide:\n  Health:      Healthy (ready=3 unready=0 notStarted=0 longNotStarted=0 registered=3 longUnregistered=0)\n  ScaleUp:     InProgress (ready=3 registered=3)\n\nNodeGroups:\n  Name:        gpu-pool\n  Health:      Healthy (ready=0 unready=0 notStarted=0 longNotStarted=0 registered=0 longUnregistered=0 cloudProviderTarget=1 (minSize=0, maxSize=4))\n  ScaleUp:     Backoff (ready=0 cloudProviderTarget=1)\n",
        );
        assert_eq!(first_word(&s.cluster_health), "Healthy");
        assert_eq!(first_word(&s.cluster_scale_up), "InProgress");
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.groups[0].0, "gpu-pool");
        assert!(s.groups[0].2.starts_with("Backoff"));
    }

    #[test]
    fn reads_autoscaler_yaml_status() {
        let s = parse_autoscaler_status(
            "time: 2026-11-22 10:00:00\nautoscalerStatus: Running\nclusterWide:\n  health:\n    status: Unhealthy\n  scaleUp:\n    status: NoActivity\nnodeGroups:\n- name: gpu\n  health:\n    status: Healthy\n  scaleUp:\n    status: Backoff\n",
        );
        assert_eq!(s.cluster_health, "Unhealthy");
        assert_eq!(
            s.groups,
            vec![("gpu".into(), "Healthy".into(), "Backoff".into())]
        );
    }

    #[test]
    fn a_volumes_node_affinity_names_what_it_requires_and_who_has_it() {
        let pv = |terms: serde_json::Value| -> PersistentVolume {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "pv"},
                "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": terms}}}}))
            .unwrap()
        };
        let node = |name: &str, zone: &str| NodeSummary {
            name: name.into(),
            labels: [
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                ("topology.kubernetes.io/zone".to_string(), zone.to_string()),
            ]
            .into(),
            ..NodeSummary::default()
        };
        let nodes = [node("a-1", "zone-a"), node("b-1", "zone-b")];
        let lost = pinned(
            &pv(serde_json::json!([{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gone-7"]}]}])),
            &nodes,
        )
        .unwrap();
        assert_eq!(lost.requires, "kubernetes.io/hostname in (gone-7)");
        assert!(lost.nodes.is_empty());
        let zonal = pinned(
            &pv(serde_json::json!([
                {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-b"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a-1"]}]}])),
            &nodes,
        )
        .unwrap();
        assert_eq!(
            zonal.requires,
            "topology.kubernetes.io/zone in (zone-b) or metadata.name in (a-1)"
        );
        assert_eq!(zonal.nodes, ["a-1", "b-1"]);
        let unpinned: PersistentVolume =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "pv"}, "spec": {}}))
                .unwrap();
        assert!(pinned(&unpinned, &nodes).is_none());
    }
}
