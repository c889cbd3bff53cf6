//! The pure middle of a run: from an inventory to a report. Both sources end
//! here, which is what makes a live decision replayable offline.

use jiff::Timestamp;
use serde::Serialize;

use crate::config::NodeGroup;
use crate::detect::{self, Detection, Exemption, Screen};
use crate::diagnose::{self, Finding};
use crate::duration::Span;
use crate::facts::{self, Facts};
use crate::guard::{self, Blocked, Limits};
use crate::inventory::Inventory;
use crate::policy::{Decision, Policies, RunContext};
use crate::scope::Scope;
use crate::state::State;

/// Everything a run's decisions depend on besides the objects.
#[derive(Debug, Clone)]
pub struct Options {
    pub now: Timestamp,
    pub threshold: Span,
    pub scope: Scope,
    pub node_groups: Vec<NodeGroup>,
    pub migration_annotations: Vec<String>,
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
    /// Storm protection's thresholds (and the guards' other limits).
    pub limits: Limits,
}

impl Default for DecideOptions {
    fn default() -> Self {
        Self {
            rollback_unsafe_annotations: vec![crate::policy::ROLLBACK_UNSAFE_ANNOTATION.into()],
            limits: Limits::default(),
        }
    }
}

/// What the whole run says to every policy: the time, and whether so many
/// StatefulSets fail that the cause is likely the cluster.
pub fn run_context(outcome: &Outcome, opts: &Options, decide: &DecideOptions) -> RunContext {
    let failing = outcome.failing.len();
    RunContext {
        now: opts.now,
        threshold: opts.threshold,
        failing,
        scanned: outcome.scanned,
        storm: guard::storm(&decide.limits, failing, outcome.scanned),
        migration_annotations: opts.migration_annotations.clone(),
        rollback_unsafe_annotations: decide.rollback_unsafe_annotations.clone(),
    }
}

/// Runs the selected policy on every failing StatefulSet and keeps the plan
/// on its assessment. Pending ones get none: their symptom has not held
/// long enough to act on. Pure: nothing is written.
pub fn decide(outcome: &mut Outcome, policies: &Policies, opts: &Options, decide: &DecideOptions) {
    let run = run_context(outcome, opts, decide);
    for a in &mut outcome.failing {
        a.plan = Some(policies.decide(a, &run));
    }
}

impl Outcome {
    /// Whether the run is a storm, as the policies were told.
    pub fn storm(&self, decide: &DecideOptions) -> Option<Blocked> {
        guard::storm(&decide.limits, self.failing.len(), self.scanned)
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
    pub limits: Limits,
    /// The config's pause switch.
    pub pause: bool,
    /// The config's opt-in selector.
    pub opt_in: Option<crate::selector::Selector>,
}

/// Puts every failing StatefulSet's plan through the guards, in report
/// order, so the action budget goes to the first ones. `state` is the state
/// after this run's observation (see [`crate::state::observe`]), which is
/// what counts the runs for the debounce. Pure, and the same for a dry run
/// and an apply run, which is what makes a dry-run report faithful.
pub fn guard(
    outcome: &mut Outcome,
    inv: &Inventory,
    state: &State,
    opts: &GuardOptions,
    now: Timestamp,
) {
    let storm = guard::storm(&opts.limits, outcome.failing.len(), outcome.scanned);
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
            }
        })
        .collect();
    let verdicts = guard::admit(&opts.limits, &subjects, now, storm.as_ref());
    for ((a, s), v) in outcome.failing.iter_mut().zip(&subjects).zip(verdicts) {
        a.gate = Some(Gate {
            admitted: v.is_ok() && s.opted_in && s.paused.is_none(),
            blocked: v.err(),
            opted_in: s.opted_in,
            seen_runs: s.seen_runs,
        });
    }
}
