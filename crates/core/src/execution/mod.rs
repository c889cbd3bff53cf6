//! What became of a plan's actions, and the checks made again just before a
//! write. Pure: the acting layer ([`crate::cluster::act`]) does the I/O and
//! records its results in these types.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde::Serialize;

use crate::facts::REVISION_LABEL;
use crate::policy::Action;

pub mod dry_run;

/// How a run carries out plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Decide and report; write nothing but the agent's own state.
    DryRun,
    /// Send every write with `dryRun=All`: admission and RBAC are checked,
    /// nothing is kept.
    ServerDryRun,
    Apply,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::ServerDryRun => "server-dry-run",
            Mode::Apply => "apply",
        }
    }
}

/// One action's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Executed {
    pub action: String,
    pub status: Status,
    pub detail: String,
    /// The steps of an action that is more than one write: a forced
    /// rollback's revert, its wait for the controller, its evictions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// One step of a remediation and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// `revert`, `observe` or `evict`.
    pub step: String,
    pub status: Status,
    pub detail: String,
}

impl Step {
    pub fn new(step: &str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            step: step.to_string(),
            status,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Written (or, for wait and escalate, recorded as an Event).
    Done,
    /// Would have been written: a dry run.
    DryRun,
    /// Accepted by the API server with `dryRun=All`.
    ServerDryRun,
    /// The guards held it back; see the assessment's gate.
    Blocked,
    /// The object changed since the decision; the next run re-reads it.
    Conflict,
    /// The API server refused it for now (a PodDisruptionBudget).
    Disallowed,
    /// An earlier action of the same plan did not go through.
    Skipped,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::DryRun => "dry-run",
            Status::ServerDryRun => "server-dry-run",
            Status::Blocked => "blocked",
            Status::Conflict => "conflict",
            Status::Disallowed => "disallowed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

impl Executed {
    pub fn new(action: &Action, status: Status, detail: impl Into<String>) -> Self {
        Self {
            action: action.name().to_string(),
            status,
            detail: detail.into(),
            steps: Vec::new(),
        }
    }

    pub fn with_steps(mut self, steps: Vec<Step>) -> Self {
        self.steps = steps;
        self
    }

    /// Whether it changed the cluster: it was done, or a step of it was
    /// (a forced rollback whose revert landed and whose eviction a
    /// PodDisruptionBudget refused still rolled back).
    pub fn wrote(&self) -> bool {
        self.status == Status::Done || self.steps.iter().any(|s| s.status == Status::Done)
    }

    /// Whether the plan may go on to its next action.
    pub fn went_through(&self) -> bool {
        matches!(
            self.status,
            Status::Done | Status::DryRun | Status::ServerDryRun
        )
    }
}

/// The Event reason for an action: what a person filters `kubectl get
/// events` by.
pub fn event_reason(action: &Action) -> &'static str {
    match action {
        Action::Wait { .. } => "StsmendWaiting",
        Action::ScaleNodes { .. } => "StsmendScaledNodes",
        Action::PatchSpec { .. } => "StsmendPatchedSpec",
        Action::Rollback { .. } => "StsmendRolledBack",
        Action::DeletePods { .. } => "StsmendDeletedPods",
        Action::Escalate { .. } => "StsmendEscalated",
    }
}

/// What a refused eviction says of the PodDisruptionBudgets over the pods:
/// each budget's allowance, and its `unhealthyPodEvictionPolicy` (1.27+):
/// under the default `IfHealthyBudget` a pod that is not Ready is evicted
/// only while the budget allows a disruption, which `AlwaysAllow` would
/// change; under `AlwaysAllow` a refusal was of a pod still Ready. A Ready
/// pod (`ready`) goes only while a budget allows a disruption, whatever its
/// policy.
pub fn budgets(pdbs: &[k8s_openapi::api::policy::v1::PodDisruptionBudget], ready: bool) -> String {
    let named: Vec<String> = pdbs
        .iter()
        .map(|p| {
            let (allowed, healthy, desired) = crate::diagnose::budget::counts(p);
            let policy = p
                .spec
                .as_ref()
                .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
            let eviction = match policy {
                _ if ready => {
                    "; the pod refused is Ready, which goes only while the budget allows a disruption, whatever its unhealthyPodEvictionPolicy".to_string()
                }
                Some("AlwaysAllow") => {
                    "; its unhealthyPodEvictionPolicy AlwaysAllow lets pods that are not Ready go, so the pod refused was Ready".to_string()
                }
                Some(other) if other != "IfHealthyBudget" => {
                    format!("; unhealthyPodEvictionPolicy {other}")
                }
                _ => "; under its unhealthyPodEvictionPolicy IfHealthyBudget (the default) a pod that is not Ready goes only while the budget allows a disruption: AlwaysAllow on the budget would let the stuck pods be evicted".to_string(),
            };
            format!(
                "PodDisruptionBudget {}/{} allows {allowed} disruption(s) ({healthy} healthy, {desired} wanted){eviction}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    if named.is_empty() {
        String::new()
    } else {
        format!(
            "; {}; one attempt, not retried: a person decides",
            named.join("; ")
        )
    }
}

/// The agent's own escalation Event on `sts` from an earlier run, if any
/// (the latest): a repeated escalation updates it, its count and time, as
/// Kubernetes' own event recorder does, instead of adding one per run.
pub fn earlier_escalation<'a>(events: &'a [Event], sts: &StatefulSet) -> Option<&'a Event> {
    let reason = event_reason(&Action::Escalate { why: String::new() });
    events
        .iter()
        .filter(|e| {
            let o = &e.involved_object;
            let own = e.reporting_component.as_deref() == Some(crate::config::FIELD_MANAGER)
                || e.source.as_ref().and_then(|s| s.component.as_deref())
                    == Some(crate::config::FIELD_MANAGER);
            own && e.reason.as_deref() == Some(reason)
                && o.kind.as_deref() == Some("StatefulSet")
                && o.name == sts.metadata.name
                && o.uid.is_some()
                && o.uid == sts.metadata.uid
                && e.metadata.name.is_some()
        })
        .max_by_key(|e| crate::time::event_time(e))
}

/// Why a pod named by `delete_pods` may not be deleted now, checked on the
/// pod as read this run: it must still exist, belong to the StatefulSet, be
/// not Ready and run a revision other than the update revision, unless the
/// policy said any pod. `None`: it may go.
pub fn pod_not_deletable(sts: &StatefulSet, pod: Option<&Pod>, any_pod: bool) -> Option<String> {
    let Some(pod) = pod else {
        return Some("no longer exists".into());
    };
    let owned = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "StatefulSet" && Some(&o.uid) == sts.metadata.uid.as_ref());
    if !owned {
        return Some("is not owned by this StatefulSet".into());
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Some("is already terminating".into());
    }
    if any_pod {
        return None;
    }
    if crate::diagnose::pods::is_ready(pod) {
        return Some("is Ready".into());
    }
    let revision = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL));
    let update = sts.status.as_ref().and_then(|s| s.update_revision.as_ref());
    if revision.is_some() && revision == update {
        return Some("already runs the update revision".into());
    }
    None
}

/// How long, in seconds, a forced rollback waits for the controller to
/// observe its revert before it evicts the pods stuck on the abandoned
/// revision. The controller observes a spec change within a second when it
/// runs; past this the evictions are left to a later run (and the report
/// says so).
pub const OBSERVE_WITHIN_SECS: u64 = 60;

/// A plan the run had no time to start: every action skipped, saying why.
pub fn not_started(plan: Option<&crate::policy::Decision>, why: &str) -> Vec<Executed> {
    plan.into_iter()
        .flat_map(|p| &p.actions)
        .map(|action| Executed::new(action, Status::Skipped, why))
        .collect()
}

/// A plan cut off mid-way by the run's deadline: what it did is not known
/// here, so each action is reported failed; every write was conditional,
/// so the next run's read sees what landed and decides again.
pub fn interrupted(plan: Option<&crate::policy::Decision>, why: &str) -> Vec<Executed> {
    plan.into_iter()
        .flat_map(|p| &p.actions)
        .map(|action| {
            Executed::new(
                action,
                Status::Failed,
                format!("interrupted, outcome unknown: {why}"),
            )
        })
        .collect()
}

/// The StatefulSet as its controller has it once it observed a rollback to
/// `revision`: that revision is the update revision, so the pods stuck on
/// the abandoned one are "not on the update revision".
pub fn as_observed(sts: &StatefulSet, revision: &str) -> StatefulSet {
    let mut after = sts.clone();
    after
        .status
        .get_or_insert_with(Default::default)
        .update_revision = Some(revision.to_string());
    after
}

/// The pods of `names` that may be evicted as checked against `sts` (as
/// read this run), and why the others may not.
pub fn evictable(
    facts: &crate::facts::Facts,
    sts: &StatefulSet,
    names: &[String],
) -> (Vec<String>, Vec<String>) {
    deletable(facts, sts, names, false)
}

/// Why each of `pods` may not be deleted now, for those that may not.
pub fn refused_pods(facts: &crate::facts::Facts, pods: &[String], any_pod: bool) -> Vec<String> {
    deletable(facts, &facts.stateful_set, pods, any_pod).1
}

/// The pods of `names` that [`pod_not_deletable`] lets go, checked against
/// `sts`, and why each of the others may not.
fn deletable(
    facts: &crate::facts::Facts,
    sts: &StatefulSet,
    names: &[String],
    any_pod: bool,
) -> (Vec<String>, Vec<String>) {
    let mut may = Vec::new();
    let mut refused = Vec::new();
    for name in names {
        match pod_not_deletable(sts, facts.pod(name), any_pod) {
            None => may.push(name.clone()),
            Some(why) => refused.push(format!("{name}: {why}")),
        }
    }
    (may, refused)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_refused_eviction_names_each_budget_and_its_unhealthy_pod_policy() {
        let pdb = |name: &str,
                   policy: Option<&str>|
         -> k8s_openapi::api::policy::v1::PodDisruptionBudget {
            let mut spec = serde_json::json!({"maxUnavailable": 0});
            if let Some(p) = policy {
                spec["unhealthyPodEvictionPolicy"] = serde_json::json!(p);
            }
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "shop"},
                "spec": spec,
                "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 3, "expectedPods": 3},
            }))
            .unwrap()
        };
        assert_eq!(budgets(&[], false), "");
        let default = budgets(&[pdb("db", None)], false);
        assert!(
            default.contains(
                "PodDisruptionBudget shop/db allows 0 disruption(s) (2 healthy, 3 wanted)"
            ),
            "{default}"
        );
        assert!(
            default.contains("IfHealthyBudget (the default)")
                && default.contains("AlwaysAllow on the budget would let"),
            "{default}"
        );
        let always = budgets(&[pdb("db", Some("AlwaysAllow"))], false);
        assert!(always.contains("the pod refused was Ready"), "{always}");
        assert!(budgets(&[pdb("db", Some("IfHealthyBudget"))], false).contains("IfHealthyBudget"));
        let ready = budgets(&[pdb("db", None)], true);
        assert!(
            ready.contains("the pod refused is Ready") && !ready.contains("AlwaysAllow"),
            "{ready}"
        );
    }

    #[test]
    fn an_escalation_is_found_again_only_on_the_same_object() {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop", "uid": "u1"},
        }))
        .unwrap();
        let event = |name: &str, uid: &str, reason: &str, component: &str, at: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "shop"},
                "involvedObject": {"kind": "StatefulSet", "name": "db", "namespace": "shop", "uid": uid},
                "reason": reason,
                "source": {"component": component},
                "lastTimestamp": at,
                "count": 1,
            }))
            .unwrap()
        };
        let events = vec![
            event(
                "a",
                "u1",
                "StsmendEscalated",
                "stsmend",
                "2026-12-03T10:00:00Z",
            ),
            event(
                "b",
                "u1",
                "StsmendEscalated",
                "stsmend",
                "2026-12-03T10:05:00Z",
            ),
            event(
                "c",
                "u1",
                "StsmendRolledBack",
                "stsmend",
                "2026-12-03T10:06:00Z",
            ),
            event(
                "d",
                "u1",
                "StsmendEscalated",
                "forger",
                "2026-12-03T10:07:00Z",
            ),
            event(
                "e",
                "u0",
                "StsmendEscalated",
                "stsmend",
                "2026-12-03T10:08:00Z",
            ),
        ];
        let found = earlier_escalation(&events, &sts).expect("found");
        assert_eq!(
            found.metadata.name.as_deref(),
            Some("b"),
            "the latest of its own"
        );
        assert!(earlier_escalation(&events[2..], &sts).is_none());
    }

    use super::*;

    fn sts() -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop", "uid": "s1"},
            "status": {"replicas": 3, "updateRevision": "db-good"},
        }))
        .unwrap()
    }

    fn pod(revision: &str, ready: bool, owner: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "db-2", "namespace": "shop",
                "labels": {"controller-revision-hash": revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": owner}],
            },
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    #[test]
    fn only_unready_pods_on_another_revision_may_be_deleted() {
        let s = sts();
        assert_eq!(
            pod_not_deletable(&s, Some(&pod("db-bad", false, "s1")), false),
            None
        );
        assert_eq!(
            pod_not_deletable(&s, Some(&pod("db-bad", true, "s1")), false).as_deref(),
            Some("is Ready")
        );
        assert_eq!(
            pod_not_deletable(&s, Some(&pod("db-good", false, "s1")), false).as_deref(),
            Some("already runs the update revision")
        );
        assert_eq!(
            pod_not_deletable(&s, Some(&pod("db-bad", false, "other")), false).as_deref(),
            Some("is not owned by this StatefulSet")
        );
        assert_eq!(
            pod_not_deletable(&s, None, false).as_deref(),
            Some("no longer exists")
        );
    }

    #[test]
    fn any_pod_still_needs_an_owned_live_pod() {
        let s = sts();
        assert_eq!(
            pod_not_deletable(&s, Some(&pod("db-good", true, "s1")), true),
            None
        );
        assert!(pod_not_deletable(&s, Some(&pod("db-good", true, "x")), true).is_some());
    }
}
