//! Where the scheduler can put a pod of the new template: each node taken
//! through the scheduler's filters in its order (cordon, taints, node
//! selector and affinity, resources), the first one a node fails being what
//! the scheduler says of it. The message is the scheduler's own wording
//! (v1.20), so the agent's diagnosis reads it as it reads a real one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint, Toleration};

use super::admission::requests;
use super::{Obstacle, Source, Stage};
use crate::diagnose::Evidence;
use crate::inventory::Inventory;
use crate::quantity;

/// Why one node does not fit, in the scheduler's words: its first failing
/// filter's reasons (resources give one reason each), empty when it fits.
fn failures(node: &Node, pod: &Pod, used: &BTreeMap<String, f64>) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let node_spec = node.spec.clone().unwrap_or_default();
    let taints = node_spec.taints.clone().unwrap_or_default();
    if node_spec.unschedulable == Some(true) {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerations.iter().any(|t| tolerates(t, &cordon)) {
            return vec!["node(s) were unschedulable".into()];
        }
    }
    for t in taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    {
        if !tolerations.iter().any(|tol| tolerates(tol, t)) {
            return vec![format!(
                "node(s) had taint {{{}: {}}}, that the pod didn't tolerate",
                t.key,
                t.value.as_deref().unwrap_or_default()
            )];
        }
    }
    if !matches_affinity(node, pod) {
        return vec!["node(s) didn't match Pod's node affinity".into()];
    }
    let allocatable = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap_or_default();
    let wants = requests(pod);
    let mut short = Vec::new();
    if let Some(pods) = allocatable.get("pods").and_then(|q| quantity::parse(&q.0))
        && used.get("pods").copied().unwrap_or(0.0) + 1.0 > pods
    {
        short.push("Too many pods".to_string());
    }
    for (k, want) in wants.iter().filter(|(_, v)| **v > 0.0) {
        let have = allocatable
            .get(k)
            .and_then(|q| quantity::parse(&q.0))
            .unwrap_or(0.0);
        if used.get(k).copied().unwrap_or(0.0) + want > have + 1e-9 {
            short.push(format!("Insufficient {k}"));
        }
    }
    short
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
    }
}

fn matches_requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.clone().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if op == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

fn matches_affinity(node: &Node, pod: &Pod) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = required.is_none_or(|r| {
        r.node_selector_terms.iter().any(|term| {
            let exprs = term
                .match_expressions
                .iter()
                .flatten()
                .all(|e| matches_requirement(e, labels.get(&e.key).map(String::as_str)));
            let fields = term.match_fields.iter().flatten().all(|e| {
                e.key == "metadata.name" && matches_requirement(e, node.metadata.name.as_deref())
            });
            let empty = term.match_expressions.as_ref().is_none_or(Vec::is_empty)
                && term.match_fields.as_ref().is_none_or(Vec::is_empty);
            !empty && exprs && fields
        })
    });
    selector_ok && affinity_ok
}

/// What the pods already on each node request, besides the pods the
/// rollout deletes first.
fn used_by_node(
    inv: &Inventory,
    leaving: &[String],
    ns: &str,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for p in &inv.pods {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let leaves = p.metadata.namespace.as_deref() == Some(ns)
            && leaving
                .iter()
                .any(|l| Some(l.as_str()) == p.metadata.name.as_deref());
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if leaves {
            continue;
        }
        let used = out.entry(node).or_default();
        *used.entry("pods".into()).or_default() += 1.0;
        for (k, v) in requests(p) {
            *used.entry(k).or_default() += v;
        }
    }
    out
}

/// The scheduler's verdict on one pod: `None` when some node fits.
pub fn place(pod: &Pod, inv: &Inventory, leaving: &[String]) -> Option<Obstacle> {
    if inv.nodes.is_empty() {
        return None;
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let used = used_by_node(inv, leaving, &ns);
    let none = BTreeMap::new();
    let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
    let mut evidence = Vec::new();
    for node in &inv.nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let why = failures(node, pod, used.get(&node_name).unwrap_or(&none));
        if why.is_empty() {
            return None;
        }
        evidence.push(Evidence::field(
            format!("Node {node_name}"),
            "scheduling filters",
            why.join("; "),
        ));
        for w in why {
            *reasons.entry(w).or_default() += 1;
        }
    }
    // As the scheduler joins them: "count reason", sorted as strings.
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    Some(Obstacle {
        stage: Stage::Scheduling,
        pods: vec![name],
        message: format!(
            "0/{} nodes are available: {}.",
            inv.nodes.len(),
            parts.join(", ")
        ),
        evidence,
        source: Source::Agent,
        detail: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, extra: serde_json::Value) -> Node {
        let mut v = json!({"metadata": {"name": name, "labels": {"zone": "a"}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}});
        if let Some(spec) = extra.get("spec") {
            v["spec"] = spec.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut s =
            json!({"containers": [{"name": "app", "resources": {"requests": {"cpu": "500m"}}}]});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(
            json!({"metadata": {"name": "db-0", "namespace": "shop"}, "spec": s}),
        )
        .unwrap()
    }

    fn inv(nodes: Vec<Node>) -> Inventory {
        Inventory {
            nodes,
            ..Inventory::default()
        }
    }

    #[test]
    fn a_pod_some_node_fits_meets_nothing() {
        assert!(place(&pod(json!({})), &inv(vec![node("n1", json!({}))]), &[]).is_none());
    }

    #[test]
    fn each_node_gives_its_first_failing_filter_in_the_schedulers_words() {
        let nodes = vec![
            node("n1", json!({"spec": {"unschedulable": true}})),
            node(
                "n2",
                json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
            ),
            node("n3", json!({})),
        ];
        let p = pod(json!({"nodeSelector": {"zone": "b"}}));
        let o = place(&p, &inv(nodes), &[]).unwrap();
        assert_eq!(
            o.message,
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity, 1 node(s) had taint {dedicated: db}, that the pod didn't tolerate, 1 node(s) were unschedulable."
        );
        assert_eq!(o.evidence.len(), 3);
    }

    #[test]
    fn a_gpu_no_node_offers_is_insufficient() {
        let p = pod(
            json!({"containers": [{"name": "app", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]}),
        );
        let o = place(
            &p,
            &inv(vec![node("n1", json!({})), node("n2", json!({}))]),
            &[],
        )
        .unwrap();
        assert_eq!(
            o.message,
            "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
        );
    }

    #[test]
    fn tolerations_and_affinity_terms_let_a_pod_in() {
        let n = node(
            "n1",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
        );
        let p = pod(json!({
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}}));
        assert!(place(&p, &inv(vec![n]), &[]).is_none());
    }
}
