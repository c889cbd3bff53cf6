//! Pods the scheduler cannot place, split by the scheduler's own reasons, and
//! what the cluster-autoscaler says about adding nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Confidence, Evidence, Finding, Input, Kind, pod_ref};

/// One reason the scheduler gave, classified.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Insufficient(String),
    NodeAffinity,
    Taint(String),
    PodAffinity,
    Volume,
    Unschedulable,
    Other(String),
}

impl Reason {
    fn class(&self) -> &'static str {
        match self {
            Reason::Insufficient(_) => "insufficient_resource",
            Reason::NodeAffinity => "node_affinity",
            Reason::Taint(_) => "taints",
            Reason::PodAffinity => "pod_affinity",
            Reason::Volume => "volume",
            Reason::Unschedulable => "node_unschedulable",
            Reason::Other(_) => "other",
        }
    }
}

/// Reads "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had taint
/// {dedicated: db}, that the pod didn't tolerate." (v1.20 and later wordings).
pub fn parse_reasons(message: &str) -> Vec<Reason> {
    let body = message
        .split_once("are available:")
        .map(|(_, b)| b)
        .unwrap_or(message);
    // Newer schedulers append "preemption: 0/3 nodes are available: ...".
    let body = body.split(" preemption:").next().unwrap_or(body);
    let mut reasons = Vec::new();
    for part in split_reasons(body) {
        let part = part.trim().trim_end_matches('.').trim();
        // Drop the leading node count.
        let text = part
            .split_once(' ')
            .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
            .map(|(_, t)| t)
            .unwrap_or(part)
            .trim();
        // "had taint {k: v}, that the pod didn't tolerate" splits in two.
        if text.is_empty() || text.starts_with("that ") {
            continue;
        }
        let lower = text.to_ascii_lowercase();
        let reason = if let Some(res) = text.strip_prefix("Insufficient ") {
            Reason::Insufficient(res.trim().to_string())
        } else if lower.contains("taint") {
            let taint = text
                .split_once('{')
                .and_then(|(_, r)| r.split_once('}'))
                .map(|(t, _)| t.trim().to_string())
                .unwrap_or_default();
            Reason::Taint(taint)
        } else if lower.contains("pod affinity") || lower.contains("anti-affinity") {
            Reason::PodAffinity
        } else if lower.contains("node selector") || lower.contains("node affinity") {
            Reason::NodeAffinity
        } else if lower.contains("volume") || lower.contains("persistentvolumeclaim") {
            Reason::Volume
        } else if lower.contains("unschedulable") {
            Reason::Unschedulable
        } else {
            Reason::Other(text.to_string())
        };
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    reasons
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

/// Pods, evidence and details (resource or taint names) of one reason class.
type Group = (BTreeSet<String>, Vec<Evidence>, BTreeSet<String>);

pub fn unschedulable(input: &Input<'_>, out: &mut Vec<Finding>) {
    let facts = input.facts;
    let ns = input.namespace();
    // Reason class -> (pods, evidence, detail values)
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
        let mut messages: Vec<(Evidence, String)> = Vec::new();
        if let Some(c) = condition
            && let Some(m) = &c.message
        {
            messages.push((
                Evidence::field(
                    pod_ref(ns, &pname),
                    "status.conditions[PodScheduled].message",
                    m.clone(),
                ),
                m.clone(),
            ));
        }
        if messages.is_empty()
            && let Some(e) = facts.events.iter().rev().find(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.involved_object.name.as_deref() == Some(&pname)
            })
        {
            let m = e.message.clone().unwrap_or_default();
            messages.push((Evidence::event(pod_ref(ns, &pname), m.clone()), m));
        }
        for (evidence, message) in messages {
            for reason in parse_reasons(&message) {
                let entry = groups.entry(reason.class()).or_default();
                entry.0.insert(pname.clone());
                if !entry.1.contains(&evidence) {
                    entry.1.push(evidence.clone());
                }
                match &reason {
                    Reason::Insufficient(r) | Reason::Taint(r) | Reason::Other(r) => {
                        entry.2.insert(r.clone());
                    }
                    _ => {}
                }
            }
        }
    }
    for (class, (pods, evidence, details)) in groups {
        let pods: Vec<String> = pods.into_iter().collect();
        let details: Vec<String> = details.into_iter().collect();
        let what = match class {
            "insufficient_resource" => format!("not enough {} on any node", details.join(", ")),
            "node_affinity" => "no node matches the node selector or node affinity".into(),
            "taints" => format!(
                "nodes have taints the pods do not tolerate ({})",
                details.join(", ")
            ),
            "pod_affinity" => "pod affinity or anti-affinity rules cannot be met".into(),
            "volume" => "their volumes cannot be bound or reached".into(),
            "node_unschedulable" => "nodes are cordoned".into(),
            _ => details.join("; "),
        };
        let mut f = Finding::new(
            Kind::Unschedulable,
            Confidence::High,
            format!("{} unschedulable: {what}", pods.join(", ")),
        )
        .data("reason", class)
        .data(
            "resources",
            if class == "insufficient_resource" {
                details.clone()
            } else {
                Vec::new()
            },
        )
        .data("details", details)
        .data("scalable_groups", scalable_groups(input, class));
        f.evidence = evidence;
        f.pods = pods;
        out.push(f);
    }
}

/// Configured node groups whose nodes would satisfy what is missing, where
/// the class of reason is one that adding nodes can fix.
fn scalable_groups(input: &Input<'_>, class: &str) -> Vec<Value> {
    if class != "insufficient_resource" && class != "pod_affinity" {
        return Vec::new();
    }
    let template = input
        .facts
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
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
    .data("health", first_word(&parsed.cluster_health))
    .data("scale_up", first_word(&parsed.cluster_scale_up))
    .data(
        "backoff_groups",
        troubled
            .iter()
            .filter(|(_, _, s)| s.starts_with("Backoff"))
            .map(|(n, _, _)| n.clone())
            .collect::<Vec<_>>(),
    );
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
}
