//! Whether the API server will let the agent evict the set's stuck pods:
//! a forced rollback and a stuck-pod deletion go through the Eviction API,
//! which checks the PodDisruptionBudgets over the pod. Predicting the
//! refusal lets the plan leave out a write the API server would refuse and
//! say what would allow it, instead of trying it.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::pods::is_ready;
use super::{Confidence, Evidence, Finding, Input, Kind, data};

/// The Eviction API's rule for a pod that is not Ready (pkg/registry/core/
/// pod/storage/eviction.go, 1.27+): a pod that is Pending, finished or
/// already being deleted is evicted whatever the budgets say; under
/// `unhealthyPodEvictionPolicy: AlwaysAllow` a running pod that is not
/// Ready is too; under `IfHealthyBudget` (the default) only while the
/// budget is healthy (`currentHealthy >= desiredHealthy > 0`, as last
/// observed), or while it allows a disruption.
fn refuses(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if pod.metadata.deletion_timestamp.is_some()
        || matches!(phase, Some("Pending" | "Succeeded" | "Failed"))
        || is_ready(pod)
    {
        return false;
    }
    if policy(pdb) == "AlwaysAllow" {
        return false;
    }
    let observed =
        pdb.status.as_ref().and_then(|s| s.observed_generation) == pdb.metadata.generation;
    let (allowed, healthy, desired) = counts(pdb);
    !(observed && desired > 0 && healthy >= desired) && allowed <= 0
}

/// `disruptionsAllowed`, `currentHealthy`, `desiredHealthy`; 0 where the
/// status has none (v1.37's schema leaves them optional).
pub(crate) fn counts(pdb: &PodDisruptionBudget) -> (i32, i32, i32) {
    let st = pdb.status.as_ref();
    (
        st.and_then(|s| s.disruptions_allowed).unwrap_or(0),
        st.and_then(|s| s.current_healthy).unwrap_or(0),
        st.and_then(|s| s.desired_healthy).unwrap_or(0),
    )
}

fn policy(pdb: &PodDisruptionBudget) -> &str {
    pdb.spec
        .as_ref()
        .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref())
        .unwrap_or("IfHealthyBudget")
}

/// One finding per budget that would refuse to evict a stuck pod of the
/// set, naming the pods, the budget's counts and its eviction policy.
pub fn eviction(input: &Input<'_>, out: &mut Vec<Finding>) {
    let facts = input.facts;
    let ns = input.namespace();
    for pdb in &facts.pdbs {
        let refused: Vec<&str> = facts
            .pods
            .iter()
            .filter(|p| refuses(pdb, p))
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        if refused.is_empty() {
            continue;
        }
        let name = pdb.metadata.name.clone().unwrap_or_default();
        let (allowed, healthy, desired) = counts(pdb);
        let written = pdb
            .spec
            .as_ref()
            .and_then(|s| s.unhealthy_pod_eviction_policy.clone());
        let policy_text = written
            .clone()
            .unwrap_or_else(|| "IfHealthyBudget (the default)".into());
        let pods = refused.join(", ");
        let mut f = Finding::new(
            Kind::EvictionBlocked,
            Confidence::High,
            format!(
                "PodDisruptionBudget {ns}/{name} would refuse to evict {pods} (not Ready): it allows {allowed} disruption(s) with {healthy} healthy of {desired} wanted, and under unhealthyPodEvictionPolicy {policy_text} a pod that is not Ready is evicted only while the budget is healthy; AlwaysAllow on the budget would let {} be evicted",
                if refused.len() == 1 { "it" } else { "them" }
            ),
        )
        .with(Evidence::field(
            format!("PodDisruptionBudget {ns}/{name}"),
            "status",
            format!(
                "disruptionsAllowed {allowed}, currentHealthy {healthy}, desiredHealthy {desired}"
            ),
        ))
        .with(Evidence::field(
            format!("PodDisruptionBudget {ns}/{name}"),
            "spec.unhealthyPodEvictionPolicy",
            policy_text,
        ))
        .data(data::EvictionBlocked {
            budget: name,
            unhealthy_pod_eviction_policy: written.unwrap_or_default(),
            pods: refused.iter().map(|p| p.to_string()).collect(),
            disruptions_allowed: i64::from(allowed),
            current_healthy: i64::from(healthy),
            desired_healthy: i64::from(desired),
        });
        for p in &refused {
            f = f.pod(*p);
        }
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(policy: Option<&str>, healthy: i32, desired: i32, allowed: i32) -> PodDisruptionBudget {
        let mut spec = json!({"minAvailable": desired});
        if let Some(p) = policy {
            spec["unhealthyPodEvictionPolicy"] = json!(p);
        }
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "shop", "generation": 1},
            "spec": spec,
            "status": {"observedGeneration": 1, "currentHealthy": healthy, "desiredHealthy": desired,
                       "disruptionsAllowed": allowed, "expectedPods": 3}}))
        .unwrap()
    }

    fn pod(phase: &str, ready: bool) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "db-1"}, "status": {"phase": phase,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}),
        )
        .unwrap()
    }

    #[test]
    fn an_unhealthy_budget_refuses_a_pod_that_is_not_ready_unless_always_allow() {
        let crashing = pod("Running", false);
        // One healthy of two wanted: the budget is unhealthy.
        assert!(refuses(&pdb(None, 1, 2, 0), &crashing));
        assert!(refuses(&pdb(Some("IfHealthyBudget"), 1, 2, 0), &crashing));
        assert!(!refuses(&pdb(Some("AlwaysAllow"), 1, 2, 0), &crashing));
        // A healthy budget lets a pod that is not Ready go, although it
        // allows no disruption.
        assert!(!refuses(&pdb(None, 2, 2, 0), &crashing));
        // A disruption allowed lets it go too.
        assert!(!refuses(&pdb(None, 1, 2, 1), &crashing));
        // Pending pods are not checked against budgets; a Ready pod is not
        // what the agent evicts.
        assert!(!refuses(&pdb(None, 1, 2, 0), &pod("Pending", false)));
        assert!(!refuses(&pdb(None, 1, 2, 0), &pod("Running", true)));
        // A budget whose status is of an older generation is not healthy.
        let mut stale = pdb(None, 2, 2, 0);
        stale.metadata.generation = Some(2);
        assert!(refuses(&stale, &crashing));
    }
}
