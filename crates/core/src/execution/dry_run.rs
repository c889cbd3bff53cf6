//! What a dry run reports for each action: the same checks an apply run
//! makes on the same data (the pods it may evict, the node group it may
//! scale), as the steps it would take, without a request. Pure, so the
//! dry-run report is tested on plain data and cannot drift from the
//! decisions an apply run makes.

use super::{Executed, Status, Step};
use crate::facts::Facts;
use crate::policy::Action;

/// The same checks an apply run makes on the same data, without writing.
pub fn dry_run(facts: &Facts, action: &Action, node_groups: &[&str]) -> Executed {
    let executed = writes(facts, action, node_groups);
    match action {
        Action::Rollback {
            suspend: Some(sync),
            name,
            revision,
            ..
        } => {
            let mut steps = vec![Step::new(
                "suspend",
                Status::DryRun,
                format!(
                    "would suspend the sync of {} (read and checked when applied)",
                    sync.describe()
                ),
            )];
            if executed.steps.is_empty() {
                steps.push(Step::new(
                    "revert",
                    Status::DryRun,
                    format!("would roll back to revision {revision} ({name})"),
                ));
            }
            steps.extend(executed.steps.iter().cloned());
            let (status, detail) = (executed.status, executed.detail.clone());
            Executed::new(action, status, detail).with_steps(steps)
        }
        _ => executed,
    }
}

fn writes(facts: &Facts, action: &Action, node_groups: &[&str]) -> Executed {
    if let Action::Rollback {
        revision,
        name,
        evict,
        ..
    } = action
        && !evict.is_empty()
    {
        let after = super::as_observed(&facts.stateful_set, name);
        let (may, refused) = super::evictable(facts, &after, evict);
        let evict_step = if may.is_empty() {
            Step::new("evict", Status::Conflict, refused.join("; "))
        } else {
            Step::new(
                "evict",
                Status::DryRun,
                format!(
                    "would evict {}{}",
                    may.join(", "),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", refused.join("; "))
                    }
                ),
            )
        };
        let steps = vec![
            Step::new(
                "revert",
                Status::DryRun,
                format!("would roll back to revision {revision} ({name})"),
            ),
            Step::new(
                "observe",
                Status::DryRun,
                format!(
                    "would wait up to {}s until the controller has observed the revert",
                    super::OBSERVE_WITHIN_SECS
                ),
            ),
            evict_step,
        ];
        return Executed::new(
            action,
            Status::DryRun,
            format!("would {}", action.describe()),
        )
        .with_steps(steps);
    }
    if let Action::DeletePods { pods, any_pod, .. } = action {
        let refused = super::refused_pods(facts, pods, *any_pod);
        if !refused.is_empty() && refused.len() == pods.len() {
            return Executed::new(action, Status::Conflict, refused.join("; "));
        }
    }
    if let Action::ScaleNodes { group, .. } = action
        && !node_groups.contains(&group.as_str())
    {
        return Executed::new(
            action,
            Status::Failed,
            format!("node group {group} is not configured"),
        );
    }
    Executed::new(
        action,
        Status::DryRun,
        format!("would {}", action.describe()),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::config::Config;
    use crate::pipeline::{self, Assessment, Settings};
    use crate::policy::Policies;

    /// The assessment of shop/cache in a shipped policy case, as `plan`
    /// makes it.
    fn assessment(case: &str) -> Assessment {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("policies/tests/ladder")
            .join(case)
            .join("objects.yaml");
        let inv = crate::source::files::load(&[path]).expect("case objects");
        let config = Config {
            threshold: crate::duration::Span::minutes(0),
            ..Default::default()
        };
        let now = crate::snapshot::taken_at(&inv).unwrap().unwrap();
        let settings = Settings::new(&config, Default::default(), now).unwrap();
        let mut run = pipeline::run(&inv, None, &settings, &Policies::builtin());
        run.outcome.failing.remove(0)
    }

    fn first_action(a: &Assessment) -> Action {
        a.plan.as_ref().unwrap().actions[0].clone()
    }

    fn steps(e: &Executed) -> Vec<(&str, Status, &str)> {
        e.steps
            .iter()
            .map(|s| (s.step.as_str(), s.status, s.detail.as_str()))
            .collect()
    }

    #[test]
    fn a_forced_rollback_says_each_step_and_every_pod_it_would_evict() {
        let a = assessment("e-rollback-max-unavailable-evicts-every-stuck-pod");
        let e = dry_run(&a.facts, &first_action(&a), &[]);
        assert_eq!(e.status, Status::DryRun);
        assert_eq!(
            steps(&e),
            [
                (
                    "revert",
                    Status::DryRun,
                    "would roll back to revision 1 (cache-8589c9d556)"
                ),
                (
                    "observe",
                    Status::DryRun,
                    "would wait up to 60s until the controller has observed the revert"
                ),
                ("evict", Status::DryRun, "would evict cache-1, cache-2"),
            ]
        );
    }

    #[test]
    fn pods_an_apply_run_would_refuse_are_refused_in_the_dry_run_too() {
        let mut a = assessment("e-rollback-max-unavailable-evicts-every-stuck-pod");
        // cache-2 went away since the plan; cache-1 is being deleted.
        a.facts
            .pods
            .retain(|p| p.metadata.name.as_deref() != Some("cache-2"));
        for p in &mut a.facts.pods {
            if p.metadata.name.as_deref() == Some("cache-1") {
                p.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        "2026-12-02T00:00:00Z".parse().unwrap(),
                    ));
            }
        }
        let e = dry_run(&a.facts, &first_action(&a), &[]);
        assert_eq!(
            steps(&e)[2],
            (
                "evict",
                Status::Conflict,
                "cache-1: is already terminating; cache-2: no longer exists"
            )
        );
        let delete: Action = serde_json::from_value(json!(
            {"action": "delete_pods", "pods": ["cache-0", "cache-2"], "why": "w"}))
        .unwrap();
        let e = dry_run(&a.facts, &delete, &[]);
        assert_eq!(e.status, Status::Conflict);
        assert_eq!(e.detail, "cache-0: is Ready; cache-2: no longer exists");
        let delete_one: Action = serde_json::from_value(json!(
            {"action": "delete_pods", "pods": ["cache-0"], "why": "w", "anyPod": true}))
        .unwrap();
        assert_eq!(dry_run(&a.facts, &delete_one, &[]).status, Status::DryRun);
    }

    #[test]
    fn a_node_group_not_configured_fails_as_when_applied() {
        let a = assessment("e-rollback-max-unavailable-evicts-every-stuck-pod");
        let scale: Action = serde_json::from_value(json!(
            {"action": "scale_nodes", "group": "gpu", "delta": 1, "why": "w"}))
        .unwrap();
        let e = dry_run(&a.facts, &scale, &[]);
        assert_eq!(
            (e.status, e.detail.as_str()),
            (Status::Failed, "node group gpu is not configured")
        );
        assert_eq!(dry_run(&a.facts, &scale, &["gpu"]).status, Status::DryRun);
    }
}
