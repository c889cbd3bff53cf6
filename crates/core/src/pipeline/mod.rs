//! The pure middle of a run: from an inventory to a report. Both sources end
//! here, which is what makes a live decision replayable offline.

use jiff::Timestamp;
use serde::Serialize;

use crate::config::{Config, NodeGroup};
use crate::detect::{self, Detection, Exemption, Screen};
use crate::diagnose::{self, Confidence, Finding};
use crate::duration::Span;
use crate::facts::{self, Facts};
use crate::guard::{self, Blocked, Limits};
use crate::inventory::Inventory;
use crate::policy::{Decision, Policies, RunContext};
use crate::scope::Scope;
use crate::state::State;

mod observe;
pub use observe::observe;

/// Everything a run's decisions depend on besides the objects.
#[derive(Debug, Clone)]
pub struct Options {
    pub now: Timestamp,
    pub threshold: Span,
    pub scope: Scope,
    pub node_groups: Vec<NodeGroup>,
    pub migration_annotations: Vec<String>,
}

impl Options {
    /// A run at `now` that confirms a symptom after `threshold`, on every
    /// namespace, with no node group and no migration annotation: what a
    /// config sets is added with the methods below.
    pub fn new(now: Timestamp, threshold: Span) -> Self {
        Self {
            now,
            threshold,
            scope: Scope::default(),
            node_groups: Vec::new(),
            migration_annotations: Vec::new(),
        }
    }

    pub fn migration_annotations(mut self, keys: &[&str]) -> Self {
        self.migration_annotations = keys.iter().map(|k| k.to_string()).collect();
        self
    }
}

/// One StatefulSet that shows a symptom.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    pub generation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub detection: Detection,
    pub findings: Vec<Finding>,
    /// The policy's plan and trace; failing StatefulSets only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Decision>,
    /// Whether the guards let the plan's writes through; failing only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// What became of each action of the plan (`stsmend run` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub executed: Vec<crate::execution::Executed>,
    #[serde(skip)]
    pub facts: Box<Facts>,
}

impl Assessment {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exempt {
    pub namespace: String,
    pub name: String,
    pub reason: Exemption,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// StatefulSets in scope.
    pub scanned: usize,
    /// Symptoms held for the threshold: the findings.
    pub failing: Vec<Assessment>,
    /// Symptoms not yet held for the threshold.
    pub pending: Vec<Assessment>,
    pub exempt: Vec<Exempt>,
}

/// Screens every StatefulSet in scope, gathers the facts of suspects, and
/// diagnoses them.
pub fn evaluate(inv: &Inventory, state: Option<&State>, opts: &Options) -> Outcome {
    let ctx = facts::Context {
        nodes: inv
            .nodes
            .iter()
            .map(facts::NodeSummary::from_node)
            .collect(),
        node_groups: &opts.node_groups,
        state,
    };
    let mut outcome = Outcome {
        scanned: 0,
        failing: Vec::new(),
        pending: Vec::new(),
        exempt: Vec::new(),
    };
    let mut sets: Vec<&k8s_openapi::api::apps::v1::StatefulSet> = inv
        .stateful_sets
        .iter()
        .filter(|s| opts.scope.includes(s))
        .collect();
    sets.sort_by_key(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()));
    for sts in sets {
        outcome.scanned += 1;
        let namespace = sts.metadata.namespace.clone().unwrap_or_default();
        let name = sts.metadata.name.clone().unwrap_or_default();
        let symptoms = match detect::screen(sts) {
            Screen::Healthy => continue,
            Screen::Exempt(reason) => {
                outcome.exempt.push(Exempt {
                    namespace,
                    name,
                    reason,
                });
                continue;
            }
            Screen::Suspect(symptoms) => symptoms,
        };
        let facts = facts::gather(inv, sts, &ctx);
        let detection = detect::confirm(&symptoms, &facts, opts.now, opts.threshold);
        let findings = diagnose::diagnose(&diagnose::Input {
            facts: &facts,
            detection: &detection,
            now: opts.now,
            threshold: opts.threshold,
            migration_annotations: &opts.migration_annotations,
        });
        let assessment = Assessment {
            namespace,
            name,
            uid: sts.metadata.uid.clone(),
            resource_version: sts.metadata.resource_version.clone(),
            generation: sts.metadata.generation.unwrap_or(0),
            observed_generation: sts.status.as_ref().and_then(|s| s.observed_generation),
            findings,
            plan: None,
            gate: None,
            executed: Vec::new(),
            facts: Box::new(facts),
            detection: detection.clone(),
        };
        if detection.due {
            outcome.failing.push(assessment);
        } else {
            outcome.pending.push(assessment);
        }
    }
    outcome
}

/// What deciding needs beyond [`Options`].
#[derive(Debug, Clone)]
pub struct DecideOptions {
    /// StatefulSet annotations that mark rolling back as unsafe.
    pub rollback_unsafe_annotations: Vec<String>,
    /// The config's `gitops` section, for policies (`run.suspend_sync`).
    pub gitops: crate::config::GitOps,
}

impl Default for DecideOptions {
    fn default() -> Self {
        Self {
            rollback_unsafe_annotations: vec![crate::config::ROLLBACK_UNSAFE_ANNOTATION.into()],
            gitops: crate::config::GitOps::default(),
        }
    }
}

/// What a failing StatefulSet's findings blame, for storm protection: its
/// own template change (a failure of medium or high confidence whose
/// `change` explains it), else the causes outside the workload it names,
/// else nothing. Pure.
pub fn cause_of(findings: &[Finding]) -> guard::Cause {
    let mut keys = Vec::new();
    for f in findings {
        let Some(change) = &f.change else { continue };
        if f.confidence == Confidence::Low {
            continue;
        }
        if change.explains {
            return guard::Cause::OwnChange;
        }
        keys.extend(crate::diagnose::blame::outside_keys(f));
    }
    if keys.is_empty() {
        guard::Cause::Unexplained
    } else {
        keys.sort();
        keys.dedup();
        guard::Cause::Outside(keys)
    }
}

/// What storm protection judges: each failing StatefulSet's cause.
pub fn causes(outcome: &Outcome) -> Vec<guard::Cause> {
    outcome
        .failing
        .iter()
        .map(|a| cause_of(&a.findings))
        .collect()
}

/// What the whole run says to every policy: the time, whether so many
/// StatefulSets fail on a cause outside their workloads that the cluster
/// is likely the cause, and how many fail on their own template change.
pub fn run_context(
    outcome: &Outcome,
    opts: &Options,
    decide: &DecideOptions,
    limits: &Limits,
) -> RunContext {
    let failing = outcome.failing.len();
    let causes = causes(outcome);
    RunContext {
        now: opts.now,
        threshold: opts.threshold,
        failing,
        scanned: outcome.scanned,
        storm: guard::storm(limits, &causes, outcome.scanned),
        own_change: causes
            .iter()
            .filter(|c| **c == guard::Cause::OwnChange)
            .count(),
        migration_annotations: opts.migration_annotations.clone(),
        rollback_unsafe_annotations: decide.rollback_unsafe_annotations.clone(),
        gitops: decide.gitops.clone(),
    }
}

/// Runs the selected policy on every failing StatefulSet and keeps the plan
/// on its assessment. Pending ones get none: their symptom has not held
/// long enough to act on. Pure: nothing is written.
pub fn decide(
    outcome: &mut Outcome,
    policies: &Policies,
    opts: &Options,
    decide: &DecideOptions,
    limits: &Limits,
) {
    let run = run_context(outcome, opts, decide, limits);
    for a in &mut outcome.failing {
        a.plan = Some(policies.decide(&a.facts, &a.detection, &a.findings, &run));
    }
}

impl Outcome {
    /// Whether the run is a storm, as the policies were told.
    pub fn storm(&self, limits: &Limits) -> Option<Blocked> {
        guard::storm(limits, &causes(self), self.scanned)
    }

    /// Policy failures in this run's plans.
    pub fn policy_errors(&self) -> impl Iterator<Item = &crate::policy::PolicyError> {
        self.failing
            .iter()
            .filter_map(|a| a.plan.as_ref()?.error.as_ref())
    }
}

/// The guards' verdict on one StatefulSet's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// Its actions may be carried out in apply mode: its writes, and the
    /// Events that record waits and escalations (opted in, not paused).
    pub admitted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    pub opted_in: bool,
    /// Consecutive runs, this one included, it has been failing.
    pub seen_runs: u32,
}

/// What the guards need besides the outcome and the state.
#[derive(Debug, Clone, Default)]
pub struct GuardOptions {
    /// The config's pause switch.
    pub pause: bool,
    /// The config's opt-in selector.
    pub opt_in: Option<crate::selector::Selector>,
    /// The config's `gitops.suspendSync`: whether a plan may suspend a
    /// GitOps sync.
    pub suspend_sync: bool,
}

/// Puts every failing StatefulSet's plan through the guards, in report
/// order, so the action budget goes to the first ones. `state` is the state
/// after this run's observation (see [`observe`]), which is
/// what counts the runs for the debounce. Pure, and the same for a dry run
/// and an apply run, which is what makes a dry-run report faithful.
pub fn guard(
    outcome: &mut Outcome,
    inv: &Inventory,
    state: &State,
    opts: &GuardOptions,
    limits: &Limits,
    now: Timestamp,
) {
    let storm = guard::storm(limits, &causes(outcome), outcome.scanned);
    let subjects: Vec<guard::Subject> = outcome
        .failing
        .iter()
        .map(|a| {
            let sts = &a.facts.stateful_set.metadata;
            let ns = inv
                .namespaces
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(a.namespace.as_str()))
                .map(|n| &n.metadata);
            let record = state.get(&a.namespace, &a.name);
            guard::Subject {
                opted_in: guard::opted_in(
                    sts.labels.as_ref(),
                    ns.and_then(|m| m.labels.as_ref()),
                    opts.opt_in.as_ref(),
                ),
                paused: guard::paused(
                    opts.pause,
                    sts.annotations.as_ref(),
                    ns.and_then(|m| m.annotations.as_ref()),
                ),
                last_action_at: record.and_then(|r| r.last_action.as_ref()).map(|l| l.at),
                seen_runs: record.map_or(0, |r| r.failing_runs),
                writes: a.plan.as_ref().map_or(0, Decision::writes),
                finishes_own: finishes_own(a, record),
                fights: fights(a),
                suspend_off: if opts.suspend_sync { None } else { suspends(a) },
                deletes_claims: a.plan.as_ref().map_or_else(Vec::new, |d| {
                    crate::claims::deleted_by(&a.facts.stateful_set, &d.actions)
                }),
            }
        })
        .collect();
    let verdicts = guard::admit(limits, &subjects, now, storm.as_ref());
    for ((a, s), v) in outcome.failing.iter_mut().zip(&subjects).zip(verdicts) {
        a.gate = Some(Gate {
            admitted: v.is_ok() && s.opted_in && s.paused.is_none(),
            blocked: v.err(),
            opted_in: s.opted_in,
            seen_runs: s.seen_runs,
        });
    }
}

/// The writer and revision a plan would fight: it writes the template
/// (a rollback, a spec patch) while another writer has put back the
/// template the agent rolled back from (`template_reapplied`). Not a
/// policy's choice: a policy that ignores the finding is held here.
fn fights(a: &Assessment) -> Option<(String, String)> {
    let writes_template = a.plan.as_ref().is_some_and(|p| {
        p.actions.iter().any(|x| {
            matches!(
                x,
                crate::policy::Action::Rollback { .. } | crate::policy::Action::PatchSpec { .. }
            )
        })
    });
    if !writes_template {
        return None;
    }
    a.findings.iter().find_map(|f| match &f.data {
        crate::kinds::Data::TemplateReapplied(d) => Some((d.writer.clone(), d.revision.clone())),
        _ => None,
    })
}

/// The GitOps object a plan would suspend the sync of, as `Kind ns/name`.
fn suspends(a: &Assessment) -> Option<String> {
    a.plan.as_ref()?.actions.iter().find_map(|x| match x {
        crate::policy::Action::Rollback {
            suspend: Some(s), ..
        } => Some(s.describe()),
        _ => None,
    })
}

/// What a rollback the agent made leaves to remember: the revision whose
/// template it replaced and the one it went back to, for
/// [`crate::state::Record::remember_rollback`].
pub fn rolled_back(a: &Assessment) -> Option<(&str, &str)> {
    let to = a.plan.as_ref()?.actions.iter().find_map(|x| match x {
        crate::policy::Action::Rollback { name, .. } => Some(name.as_str()),
        _ => None,
    })?;
    let from = diagnose::rollout::live_revision(&a.facts)?;
    (from != to).then_some((from, to))
}

/// Whether a plan only evicts pods after the agent's own rollback: the
/// evictions of a forced rollback that its run could not finish (the
/// controller observed the revert too late), which belong to that
/// remediation and so are not held by its cooldown.
fn finishes_own(a: &Assessment, record: Option<&crate::state::Record>) -> bool {
    let own_rollback = record
        .and_then(|r| r.last_action.as_ref())
        .is_some_and(|l| l.action == "rollback");
    let only_evictions = a.plan.as_ref().is_some_and(|p| {
        !p.actions.is_empty()
            && p.actions
                .iter()
                .all(|x| matches!(x, crate::policy::Action::DeletePods { any_pod: false, .. }))
    });
    own_rollback && only_evictions
}

/// Everything a run is given besides the objects, the state and the
/// policies: the config's settings, resolved, and the clock.
#[derive(Debug, Clone)]
pub struct Settings {
    pub options: Options,
    /// The config's `limits`, read by storm protection when deciding and by
    /// every guard.
    pub limits: Limits,
    pub decide: DecideOptions,
    pub guards: GuardOptions,
}

impl Settings {
    /// The settings of a run with `options` and every other setting at its
    /// default (the default ladder's limits, no opt-in selector).
    pub fn with(options: Options) -> Self {
        Self {
            options,
            limits: Limits::default(),
            decide: DecideOptions::default(),
            guards: GuardOptions::default(),
        }
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The settings of a run at `now` under `config`, with the flags
    /// already folded in and the scope resolved.
    pub fn new(config: &Config, scope: Scope, now: Timestamp) -> crate::Result<Self> {
        Ok(Self {
            options: Options {
                now,
                threshold: config.threshold,
                scope,
                node_groups: config.node_groups.clone(),
                migration_annotations: config.migration_annotations.clone(),
            },
            limits: config.limits.clone(),
            decide: DecideOptions {
                rollback_unsafe_annotations: config.rollback_unsafe_annotations.clone(),
                gitops: config.gitops.clone(),
            },
            guards: GuardOptions {
                pause: config.pause,
                opt_in: config.opt_in()?,
                suspend_sync: config.gitops.suspend_sync,
            },
        })
    }
}

/// What a run comes to: every StatefulSet's assessment with its plan and
/// the guards' verdict, and the state to save for the next run.
#[derive(Debug, Clone)]
pub struct Run {
    pub outcome: Outcome,
    pub next_state: State,
}

/// One run of the pipeline, from the objects read to the plans and the
/// guards' verdicts: detect, gather facts and diagnose ([`evaluate`]), let
/// the policies decide ([`decide`]), remember what was seen ([`observe`]),
/// then guard ([`guard`]). Pure: `plan`, every mode of `run`, `policy test`
/// and the benchmarks all come here, so they decide alike.
pub fn run(
    inv: &Inventory,
    state: Option<&State>,
    settings: &Settings,
    policies: &Policies,
) -> Run {
    let mut outcome = evaluate(inv, state, &settings.options);
    decide(
        &mut outcome,
        policies,
        &settings.options,
        &settings.decide,
        &settings.limits,
    );
    let none = State::default();
    let next_state = observe(state.unwrap_or(&none), &outcome, settings.options.now);
    guard(
        &mut outcome,
        inv,
        &next_state,
        &settings.guards,
        &settings.limits,
        settings.options.now,
    );
    Run {
        outcome,
        next_state,
    }
}

#[cfg(test)]
mod tests {
    //! Storm protection's judgement of causes, on the shipped policy cases'
    //! objects (captured from a real API server).

    use std::path::Path;

    use super::*;
    use crate::guard::Cause;

    fn outcome(case: &str) -> Outcome {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("policies/tests/ladder")
            .join(case)
            .join("objects.yaml");
        let inv = crate::source::files::load(&[path]).expect("case objects");
        let opts = Options::new("2026-11-22T10:00:00Z".parse().unwrap(), Span::minutes(10));
        evaluate(&inv, None, &opts)
    }

    #[test]
    fn a_failure_the_template_change_explains_is_its_own() {
        let o = outcome("e-rollback-crash-loop");
        assert_eq!(causes(&o), [Cause::OwnChange]);
    }

    #[test]
    fn causes_outside_the_workload_are_named_by_what_they_share() {
        let o = causes(&outcome("e-escalate-webhook-unavailable"));
        let [Cause::Outside(keys)] = o.as_slice() else {
            panic!("{o:?}");
        };
        assert!(
            keys.iter()
                .any(|k| k.starts_with("webhook ") && k.ends_with("cannot be called")),
            "{keys:?}"
        );
        let o = causes(&outcome("e-escalate-nodes-cordoned"));
        let [Cause::Outside(keys)] = o.as_slice() else {
            panic!("{o:?}");
        };
        assert!(
            keys.iter()
                .any(|k| k.starts_with("node ") && k.ends_with(" cordoned")),
            "{keys:?}"
        );
    }

    #[test]
    fn three_of_four_broken_by_their_own_changes_are_a_bad_release() {
        let o = outcome("e-rollback-bad-release-not-a-storm");
        assert_eq!(o.failing.len(), 3);
        let decide = DecideOptions::default();
        assert_eq!(o.storm(&Limits::default()), None);
        let counting = Limits {
            storm_judges_causes: false,
            ..Limits::default()
        };
        assert!(o.storm(&counting).is_some(), "by count alone it is one");
        let opts = Options::new("2026-11-22T10:00:00Z".parse().unwrap(), Span::minutes(10));
        assert_eq!(
            run_context(&o, &opts, &decide, &Limits::default()).own_change,
            3
        );
    }

    #[test]
    fn a_set_with_no_cause_found_is_unexplained() {
        let mut o = outcome("e-rollback-crash-loop");
        let a = &mut o.failing[0];
        a.findings.retain(|f| f.change.is_none());
        assert_eq!(cause_of(&a.findings), Cause::Unexplained);
    }

    #[test]
    fn a_policy_that_rolls_back_into_a_fight_is_held_by_the_guards() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("policies/tests/ladder/e-escalate-template-reapplied/objects.yaml");
        let inv = crate::source::files::load(&[path]).expect("case objects");
        let state = State::in_inventory(&inv, "stsmend")
            .unwrap()
            .expect("saved state");
        let mut opt_in = inv.clone();
        opt_in.stateful_sets[0]
            .metadata
            .labels
            .get_or_insert_default()
            .insert(guard::OPT_IN_LABEL.into(), "true".into());
        // A team policy that reads no finding and always rolls back.
        let team =
            r#"rungs(["always"]); choose("always", [rollback(last_good_revision(), "always")])"#;
        let policies =
            Policies::from_sources(&[("ladder", team)], crate::policy::Origin::Config).unwrap();
        let mut config = Config::default();
        config.limits.cooldown = Span::minutes(1);
        let settings = Settings::new(
            &config,
            Scope::default(),
            "2026-11-22T10:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let run = run(&opt_in, Some(&state), &settings, &policies);
        let a = &run.outcome.failing[0];
        assert_eq!(a.plan.as_ref().unwrap().actions[0].name(), "rollback");
        let gate = a.gate.as_ref().unwrap();
        assert!(!gate.admitted, "{gate:?}");
        assert_eq!(
            gate.blocked,
            Some(Blocked::Reapplied {
                writer: "deploy-bot".into(),
                revision: "db-7c9d8f6b54".into()
            })
        );
        // The memory of the rollback is carried into the next state.
        assert_eq!(
            run.next_state.get("shop", "db").unwrap().reverted,
            state.get("shop", "db").unwrap().reverted
        );
    }
}
