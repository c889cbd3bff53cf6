//! Carries out one StatefulSet's plan: each action re-checked, written with
//! its precondition, retried only where a retry is safe, recorded as an
//! Event, with an undo record saved before every write.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;

use super::retry::{retry, transient};
use crate::cluster::write::{self, Writer};
use crate::config::NodeGroup;
use crate::error::Result;
use crate::execution::{self, Executed, Mode, Status, Step, event_reason, pod_not_deletable};
use crate::pipeline::Assessment;
use crate::policy::Action;
use crate::state::LastAction;
use crate::undo::{self, Book, Prior};

/// [`execution::OBSERVE_WITHIN_SECS`], as the client waits it.
pub const OBSERVE_WITHIN: Duration = Duration::from_secs(execution::OBSERVE_WITHIN_SECS);
const OBSERVE_POLL: Duration = Duration::from_secs(1);

/// How many times an eviction refused as a conflict reads its pod again,
/// checks it again and retries, before the next run is left to finish.
const EVICT_LOOKS: usize = 3;

/// The Event that says a GitOps sync was suspended and must be resumed.
pub const SUSPENDED_SYNC: &str = "StsmendSuspendedSync";

pub struct Actor<'a> {
    pub mode: Mode,
    /// Workload writes: apply, or `dryRun=All` in server dry-run mode.
    pub writer: Writer,
    /// The agent's own ConfigMaps; always persisted.
    pub own: Writer,
    pub node_groups: &'a [NodeGroup],
    pub state_namespace: String,
    pub undo: Book,
    /// How long, and how many, undo records are kept (`limits.undoKeep`,
    /// `limits.undoMaxRecords`).
    pub undo_keep: crate::duration::Span,
    pub undo_max_records: usize,
    pub now: Timestamp,
    pub retry_delay: Duration,
}

/// What carrying out a plan did.
pub struct Done {
    pub executed: Vec<Executed>,
    /// Set when a write went through in apply mode: starts the cooldown.
    pub last_action: Option<LastAction>,
}

impl Actor<'_> {
    pub async fn carry_out(&mut self, a: &Assessment) -> Done {
        let mut done = Done {
            executed: Vec::new(),
            last_action: None,
        };
        let Some(plan) = &a.plan else {
            return done;
        };
        let started = std::time::Instant::now();
        let gate = a.gate.as_ref();
        let rung = plan.rung.as_deref().unwrap_or("-");
        let blocked = !gate.is_some_and(|g| g.admitted);
        for action in &plan.actions {
            if blocked {
                let why = gate
                    .and_then(|g| g.blocked.as_ref())
                    .map(|b| b.describe())
                    .unwrap_or_else(|| "report only: not opted in".into());
                done.executed
                    .push(Executed::new(action, Status::Blocked, why));
                continue;
            }
            if let Some(prev) = done.executed.last()
                && !prev.went_through()
            {
                done.executed.push(Executed::new(
                    action,
                    Status::Skipped,
                    "the action before it did not go through",
                ));
                continue;
            }
            let result = match self.mode {
                Mode::DryRun => {
                    execution::dry_run::dry_run(&a.facts, action, &self.node_group_names())
                }
                _ => self.execute(a, rung, action).await,
            };
            if action.is_mutating() && result.wrote() {
                // The cooldown starts when the remediation ends: a forced
                // rollback's wait and evictions are part of it.
                let elapsed = jiff::SignedDuration::from_secs(started.elapsed().as_secs() as i64);
                done.last_action = Some(LastAction {
                    at: self.now.checked_add(elapsed).unwrap_or(self.now),
                    action: action.name().to_string(),
                    why: action.why().to_string(),
                });
            }
            tracing::info!(
                statefulset = %a.id(),
                action = action.name(),
                status = ?result.status,
                detail = %result.detail,
                "action"
            );
            done.executed.push(result);
        }
        done
    }

    fn node_group_names(&self) -> Vec<&str> {
        self.node_groups.iter().map(|g| g.name.as_str()).collect()
    }

    async fn execute(&mut self, a: &Assessment, rung: &str, action: &Action) -> Executed {
        let result = match action {
            Action::Wait { .. } | Action::Escalate { .. } => {
                Ok(Executed::new(action, self.applied(), action.describe()))
            }
            Action::Rollback { name, evict, .. } if !evict.is_empty() => {
                // Records an Event per step itself.
                return self.forced_rollback(a, rung, action, name, evict).await;
            }
            Action::Rollback { name, .. } => self.rollback(a, action, name).await.map(|(e, _)| e),
            Action::PatchSpec { patch, .. } => self.patch(a, action, patch).await,
            Action::DeletePods { pods, any_pod, .. } => {
                self.delete_pods(a, action, pods, *any_pod).await
            }
            Action::ScaleNodes { group, delta, .. } => {
                self.scale_nodes(a, action, group, *delta).await
            }
        };
        let executed =
            result.unwrap_or_else(|e| Executed::new(action, Status::Failed, e.to_string()));
        self.record_event(a, rung, action, &executed).await;
        executed
    }

    fn applied(&self) -> Status {
        match self.mode {
            Mode::ServerDryRun => Status::ServerDryRun,
            _ => Status::Done,
        }
    }

    fn status_of(&self, outcome: &write::Outcome) -> (Status, String) {
        match outcome {
            write::Outcome::Done => (self.applied(), String::new()),
            write::Outcome::Conflict(m) => (Status::Conflict, m.clone()),
            write::Outcome::Disallowed(m) => (Status::Disallowed, m.clone()),
        }
    }

    /// The revert: the revision's template written back. Also returns the
    /// generation the write produced.
    async fn rollback(
        &mut self,
        a: &Assessment,
        action: &Action,
        name: &str,
    ) -> Result<(Executed, Option<i64>)> {
        let sts = &a.facts.stateful_set;
        let Some(revision) = a
            .facts
            .revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
        else {
            return Ok((
                Executed::new(
                    action,
                    Status::Conflict,
                    format!("ControllerRevision {name} is gone"),
                ),
                None,
            ));
        };
        let mut steps = Vec::new();
        let mut suspended = None;
        if let Action::Rollback {
            suspend: Some(sync),
            ..
        } = action
        {
            let (step, record) = self.suspend_sync(a, action, sync).await?;
            let went = matches!(step.status, Status::Done | Status::ServerDryRun);
            steps.push(step);
            if !went {
                let last = steps
                    .last()
                    .cloned()
                    .unwrap_or_else(|| Step::new("suspend", Status::Failed, ""));
                steps.push(Step::new(
                    "revert",
                    Status::Skipped,
                    "the sync was not suspended: a rollback would be put back",
                ));
                return Ok((
                    Executed::new(action, last.status, last.detail).with_steps(steps),
                    None,
                ));
            }
            suspended = record;
        }
        if suspended.is_none() {
            self.save_spec_undo(a, action, None).await?;
        }
        let (outcome, generation) =
            retry(self.retry_delay, || self.writer.rollback(sts, revision)).await?;
        self.after_spec_write(a, action, &outcome, generation).await;
        let (status, detail) = self.status_of(&outcome);
        let detail = or(detail, action.describe());
        if !steps.is_empty() {
            steps.push(Step::new("revert", status, detail.clone()));
        }
        Ok((
            Executed::new(action, status, detail).with_steps(steps),
            generation,
        ))
    }

    /// Suspends the GitOps sync a rollback would otherwise be reverted by,
    /// its undo record saved first (with the spec the rollback replaces):
    /// the step, and what was suspended. A sync already suspended is left
    /// as it is, and not resumed by an undo.
    async fn suspend_sync(
        &mut self,
        a: &Assessment,
        action: &Action,
        sync: &crate::policy::SyncRef,
    ) -> Result<(Step, Option<crate::gitops::Suspended>)> {
        let what = sync.describe();
        let Some(object) = retry(self.retry_delay, || self.writer.read_sync(sync)).await? else {
            return Ok((
                Step::new(
                    "suspend",
                    Status::Conflict,
                    format!(
                        "{what} is not there: nothing to suspend, and no rollback that its sync would put back"
                    ),
                ),
                None,
            ));
        };
        let (ops, record) = match crate::gitops::suspend_patch(sync, &object.value) {
            Ok(Some(p)) => p,
            Ok(None) => {
                // Suspended by the agent's own earlier run (whose rollback
                // was refused, say): still the agent's to resume, so its
                // record carries over into this remediation's.
                let ours = self
                    .undo
                    .records
                    .get(&a.id())
                    .and_then(|r| r.sync.clone())
                    .filter(|s| {
                        s.object == *sync && crate::gitops::still_suspended(s, &object.value)
                    });
                let Some(record) = ours else {
                    return Ok((
                        Step::new(
                            "suspend",
                            self.applied(),
                            format!(
                                "the sync of {what} is already suspended; left as it is (an undo does not resume it)"
                            ),
                        ),
                        None,
                    ));
                };
                self.save_spec_undo(a, action, Some(record.clone())).await?;
                return Ok((
                    Step::new(
                        "suspend",
                        self.applied(),
                        format!(
                            "the sync of {what} is still suspended by the agent's earlier run; stsmend undo {} resumes it",
                            a.id()
                        ),
                    ),
                    Some(record),
                ));
            }
            Err(e) => return Ok((Step::new("suspend", Status::Failed, e), None)),
        };
        self.save_spec_undo(a, action, Some(record.clone())).await?;
        let outcome = retry(self.retry_delay, || {
            self.writer.patch_sync(sync, &object, &ops)
        })
        .await?;
        let (status, detail) = self.status_of(&outcome);
        let detail = or(
            detail,
            format!(
                "suspended the sync of {what} ({}); it stays suspended until Git is fixed and it is resumed: stsmend undo {} resumes it, or {}",
                match record.after {
                    Some(_) => "spec.suspend: true".to_string(),
                    None => "automated sync off".to_string(),
                },
                a.id(),
                sync.resume_command()
            ),
        );
        let step = Step::new("suspend", status, detail);
        if matches!(status, Status::Done | Status::ServerDryRun) {
            self.suspend_event(a, &step).await;
        }
        Ok((step, Some(record)))
    }

    /// The StatefulSets whose GitOps sync the agent suspended (its undo
    /// records say) and that is still suspended as it left it. A sync that
    /// cannot be read counts as suspended: its alert stays until it can.
    pub async fn still_suspended(&self) -> std::collections::BTreeSet<String> {
        let mut ids = std::collections::BTreeSet::new();
        for (id, record) in &self.undo.records {
            let Some(sync) = &record.sync else { continue };
            let still = match self.writer.read_sync(&sync.object).await {
                Ok(Some(object)) => crate::gitops::still_suspended(sync, &object.value),
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(statefulset = %id, error = %e, "suspended sync not read");
                    true
                }
            };
            if still {
                ids.insert(id.clone());
            }
        }
        ids
    }

    async fn suspend_event(&self, a: &Assessment, step: &Step) {
        if let Err(err) = retry(self.retry_delay, || {
            self.writer.event(
                &a.facts.stateful_set,
                "Warning",
                SUSPENDED_SYNC,
                &step.detail,
            )
        })
        .await
        {
            tracing::warn!(error = %err, "event not recorded");
        }
    }

    /// The forced rollback as one remediation: revert the template, wait
    /// (at most [`OBSERVE_WITHIN`]) until the controller has observed the
    /// revert, then evict the pods stuck on the abandoned revision, each
    /// checked again as it is now. Each step is an Event and a line of the
    /// report; the undo record lists them.
    async fn forced_rollback(
        &mut self,
        a: &Assessment,
        rung: &str,
        action: &Action,
        name: &str,
        evict: &[String],
    ) -> Executed {
        let sts = &a.facts.stateful_set;
        let (revert, generation) = match self.rollback(a, action, name).await {
            Ok(r) => r,
            Err(e) => (Executed::new(action, Status::Failed, e.to_string()), None),
        };
        self.record_event(a, rung, action, &revert).await;
        let mut steps: Vec<Step> = revert
            .steps
            .iter()
            .filter(|s| s.step == "suspend")
            .cloned()
            .collect();
        steps.push(Step::new("revert", revert.status, revert.detail.clone()));
        if !revert.went_through() {
            steps.push(Step::new(
                "evict",
                Status::Skipped,
                "the revert did not go through",
            ));
            return Executed::new(action, revert.status, revert.detail).with_steps(steps);
        }
        let evicting = Action::DeletePods {
            pods: evict.to_vec(),
            any_pod: false,
            why: action.why().to_string(),
        };
        // What the evictions are checked against: the StatefulSet as the
        // controller has it after the revert.
        let after = if self.mode == Mode::Apply {
            let (observed, step) = self.observe(a, name, generation).await;
            steps.push(step);
            match observed {
                Some(s) => s,
                None => {
                    steps.push(Step::new(
                        "evict",
                        Status::Skipped,
                        format!(
                            "not evicted: {} would be re-created from the abandoned revision until the controller observes the revert; the delete_stuck_pods rung evicts {} in a later run",
                            evict.join(", "),
                            if evict.len() == 1 { "it" } else { "them" }
                        ),
                    ));
                    return self.finish_forced(a, action, steps).await;
                }
            }
        } else {
            steps.push(Step::new(
                "observe",
                Status::Skipped,
                "a server-side dry run keeps no revert for the controller to observe",
            ));
            execution::as_observed(sts, name)
        };
        let mut pods = Vec::new();
        for pod in evict {
            let now = if self.mode == Mode::Apply {
                match retry(self.retry_delay, || self.writer.read_pod(&a.namespace, pod)).await {
                    Ok(p) => p,
                    Err(e) => {
                        steps.push(Step::new("evict", Status::Failed, e.to_string()));
                        return self.finish_forced(a, action, steps).await;
                    }
                }
            } else {
                a.facts.pod(pod).cloned()
            };
            pods.push((pod.clone(), now));
        }
        let evicted = match self.evict_all(a, &after, &pods, false).await {
            Ok(e) => e,
            Err(e) => Executed::new(&evicting, Status::Failed, e.to_string()),
        };
        self.record_event(a, rung, &evicting, &evicted).await;
        steps.push(Step::new("evict", evicted.status, evicted.detail));
        self.finish_forced(a, action, steps).await
    }

    /// Polls the StatefulSet until its controller has observed the revert:
    /// `observedGeneration` caught up with the write and `updateRevision`
    /// is the revision rolled back to. Returns it as observed, or `None`.
    async fn observe(
        &self,
        a: &Assessment,
        name: &str,
        generation: Option<i64>,
    ) -> (Option<StatefulSet>, Step) {
        let started = std::time::Instant::now();
        let mut last;
        loop {
            match self.writer.read_stateful_set(&a.namespace, &a.name).await {
                Ok(s) => {
                    let status = s.status.as_ref();
                    let seen = status.and_then(|st| st.observed_generation);
                    let update = status.and_then(|st| st.update_revision.clone());
                    let caught_up = match (generation, seen) {
                        (Some(g), Some(o)) => o >= g,
                        (None, _) => true,
                        (Some(_), None) => false,
                    };
                    if caught_up && update.as_deref() == Some(name) {
                        let took = started.elapsed().as_secs_f64();
                        return (
                            Some(s),
                            Step::new(
                                "observe",
                                self.applied(),
                                format!(
                                    "the controller observed the revert in {took:.1}s (generation {}, update revision {name})",
                                    seen.unwrap_or_default()
                                ),
                            ),
                        );
                    }
                    last = format!(
                        "observed generation {}, update revision {}",
                        seen.map_or("none".into(), |g| g.to_string()),
                        update.unwrap_or_else(|| "none".into())
                    );
                }
                Err(e) if transient(&e) => last = e.to_string(),
                Err(e) => return (None, Step::new("observe", Status::Failed, e.to_string())),
            }
            if started.elapsed() >= OBSERVE_WITHIN {
                return (
                    None,
                    Step::new(
                        "observe",
                        Status::Skipped,
                        format!(
                            "the controller had not observed the revert after {}s ({last}; the write made generation {})",
                            OBSERVE_WITHIN.as_secs(),
                            generation.map_or("unknown".into(), |g| g.to_string())
                        ),
                    ),
                );
            }
            tokio::time::sleep(OBSERVE_POLL).await;
        }
    }

    /// The forced rollback's outcome from its steps: it rolled back (the
    /// revert went through); a refused or failed eviction is its status.
    /// The undo record lists the steps.
    async fn finish_forced(
        &mut self,
        a: &Assessment,
        action: &Action,
        steps: Vec<Step>,
    ) -> Executed {
        let evict = steps.iter().rev().find(|s| s.step == "evict");
        let status = match evict.map(|s| s.status) {
            Some(s @ (Status::Disallowed | Status::Failed)) => s,
            _ => self.applied(),
        };
        let lines: Vec<String> = steps
            .iter()
            .map(|s| format!("{} {}: {}", s.step, s.status.as_str(), s.detail))
            .collect();
        if self.mode == Mode::Apply
            && let Some(r) = self.undo.records.get_mut(&a.id())
        {
            r.steps = lines.clone();
            if let Err(e) = self.persist_undo().await {
                tracing::warn!(statefulset = %a.id(), action = action.name(), error = %e, "undo record not updated");
            }
        }
        Executed::new(action, status, lines.join("; ")).with_steps(steps)
    }

    async fn patch(
        &mut self,
        a: &Assessment,
        action: &Action,
        patch: &serde_json::Value,
    ) -> Result<Executed> {
        let sts = &a.facts.stateful_set;
        self.save_undo(a, action, undo::prior_spec(sts)?, None, None)
            .await?;
        let (outcome, generation) =
            retry(self.retry_delay, || self.writer.patch_spec(sts, patch)).await?;
        self.after_spec_write(a, action, &outcome, generation).await;
        let (status, detail) = self.status_of(&outcome);
        Ok(Executed::new(action, status, or(detail, action.describe())))
    }

    /// Records the generation the write produced, so an undo can tell
    /// whether someone changed the spec since.
    async fn after_spec_write(
        &mut self,
        a: &Assessment,
        action: &Action,
        outcome: &write::Outcome,
        generation: Option<i64>,
    ) {
        if self.mode != Mode::Apply {
            return;
        }
        if *outcome != write::Outcome::Done {
            // The spec did not change: the saved record must not offer to
            // restore it, only to resume a sync suspended before.
            match self.undo.records.get_mut(&a.id()) {
                Some(r) if r.sync.is_some() => r.generation_after = None,
                _ => {
                    self.undo.records.remove(&a.id());
                }
            }
        } else if let Some(r) = self.undo.records.get_mut(&a.id()) {
            r.generation_after = generation;
        }
        if let Err(e) = self.persist_undo().await {
            tracing::warn!(statefulset = %a.id(), action = action.name(), error = %e, "undo record not updated");
        }
    }

    async fn delete_pods(
        &mut self,
        a: &Assessment,
        action: &Action,
        pods: &[String],
        any_pod: bool,
    ) -> Result<Executed> {
        let named: Vec<(String, Option<k8s_openapi::api::core::v1::Pod>)> = pods
            .iter()
            .map(|name| (name.clone(), a.facts.pod(name).cloned()))
            .collect();
        let done = self
            .evict_all(a, &a.facts.stateful_set, &named, any_pod)
            .await?;
        Ok(Executed::new(action, done.status, done.detail))
    }

    /// Evicts each named pod that may be deleted as checked against `sts`;
    /// the result's action is a placeholder, its status and detail count.
    async fn evict_all(
        &self,
        a: &Assessment,
        sts: &StatefulSet,
        pods: &[(String, Option<k8s_openapi::api::core::v1::Pod>)],
        any_pod: bool,
    ) -> Result<Executed> {
        let mut lines = Vec::new();
        let mut evicted = 0;
        let mut disallowed = false;
        for (name, pod) in pods {
            let mut pod = pod.clone();
            let mut looked_again = 0;
            loop {
                if let Some(why) = pod_not_deletable(sts, pod.as_ref(), any_pod) {
                    lines.push(format!("{name}: not deleted: {why}"));
                    break;
                }
                let Some(p) = &pod else { break };
                match retry(self.retry_delay, || self.writer.evict_pod(p)).await? {
                    write::Outcome::Done => {
                        evicted += 1;
                        lines.push(format!("{name}: evicted"));
                    }
                    // A crash-looping pod's status moves under the
                    // resourceVersion the eviction is conditional on: read
                    // it again and check it again, a few times.
                    write::Outcome::Conflict(_)
                        if looked_again < EVICT_LOOKS && self.mode == Mode::Apply =>
                    {
                        looked_again += 1;
                        pod = retry(self.retry_delay, || {
                            self.writer.read_pod(&a.namespace, name)
                        })
                        .await?;
                        continue;
                    }
                    write::Outcome::Conflict(m) => lines.push(format!("{name}: {m}")),
                    write::Outcome::Disallowed(m) => {
                        disallowed = true;
                        let ready = crate::diagnose::pods::is_ready(p);
                        lines.push(format!(
                            "{name}: {m}{}",
                            execution::budgets(&a.facts.pdbs, ready)
                        ));
                    }
                }
                break;
            }
        }
        let status = if evicted == pods.len() {
            self.applied()
        } else if disallowed {
            Status::Disallowed
        } else if evicted > 0 {
            // Part went through; what remains is re-planned next run.
            self.applied()
        } else {
            Status::Conflict
        };
        let placeholder = Action::DeletePods {
            pods: Vec::new(),
            any_pod,
            why: String::new(),
        };
        Ok(Executed::new(&placeholder, status, lines.join("; ")))
    }

    async fn scale_nodes(
        &mut self,
        a: &Assessment,
        action: &Action,
        group: &str,
        delta: i32,
    ) -> Result<Executed> {
        let Some(g) = self.node_groups.iter().find(|g| g.name == group) else {
            return Ok(Executed::new(
                action,
                Status::Failed,
                format!("node group {group} is not configured"),
            ));
        };
        let now = retry(self.retry_delay, || self.writer.read_scale(&g.resource)).await?;
        let to = (now.replicas + delta).clamp(g.min, g.max);
        if to == now.replicas {
            return Ok(Executed::new(
                action,
                Status::Conflict,
                format!(
                    "node group {group} has {} replicas; its bounds ({}..{}) leave no room",
                    now.replicas, g.min, g.max
                ),
            ));
        }
        let prior = Prior::NodeGroup {
            group: group.to_string(),
            target: g.resource.clone(),
            replicas: now.replicas,
            replicas_after: to,
        };
        self.save_undo(a, action, prior, None, None).await?;
        let outcome = retry(self.retry_delay, || {
            self.writer.set_scale(&g.resource, &now, to)
        })
        .await?;
        if outcome != write::Outcome::Done && self.mode == Mode::Apply {
            self.undo.records.remove(&a.id());
            let _ = self.persist_undo().await;
        }
        let (status, detail) = self.status_of(&outcome);
        Ok(Executed::new(
            action,
            status,
            or(
                detail,
                format!("node group {group}: {} -> {to} replicas", now.replicas),
            ),
        ))
    }

    /// Saves what the write is about to change, before the write: a write
    /// whose undo record could not be saved is not made.
    async fn save_undo(
        &mut self,
        a: &Assessment,
        action: &Action,
        prior: Prior,
        generation_after: Option<i64>,
        sync: Option<crate::gitops::Suspended>,
    ) -> Result<()> {
        if self.mode != Mode::Apply {
            return Ok(());
        }
        self.undo.records.insert(
            a.id(),
            undo::Record {
                at: self.now,
                action: action.describe(),
                uid: a.uid.clone(),
                generation_after,
                prior,
                steps: Vec::new(),
                fields: undo::fields_of(action),
                sync,
            },
        );
        self.undo.prune(
            self.now,
            self.undo_keep,
            self.undo_max_records,
            undo::MAX_BYTES,
        );
        self.persist_undo().await
    }

    /// Saves the spec a rollback replaces (and the sync it suspended, if
    /// any) before its first write.
    async fn save_spec_undo(
        &mut self,
        a: &Assessment,
        action: &Action,
        sync: Option<crate::gitops::Suspended>,
    ) -> Result<()> {
        let prior = undo::prior_spec(&a.facts.stateful_set)?;
        self.save_undo(a, action, prior, None, sync).await
    }

    async fn persist_undo(&self) -> Result<()> {
        let data = self.undo.to_data()?;
        retry(self.retry_delay, || {
            self.own
                .save_config_map(&self.state_namespace, undo::CONFIG_MAP, data.clone())
        })
        .await
    }

    async fn record_event(&self, a: &Assessment, rung: &str, action: &Action, e: &Executed) {
        let sts = &a.facts.stateful_set;
        let (type_, reason) = match e.status {
            Status::Done | Status::ServerDryRun => (
                if matches!(action, Action::Escalate { .. }) {
                    "Warning"
                } else {
                    "Normal"
                },
                event_reason(action),
            ),
            Status::Failed => ("Warning", "StsmendActionFailed"),
            Status::Conflict | Status::Disallowed => ("Normal", "StsmendActionDeferred"),
            Status::DryRun | Status::Blocked | Status::Skipped => return,
        };
        let message = format!("rung {rung}: {}; {}", action.describe(), e.detail);
        // The same escalation run after run is one Event with a count.
        if matches!(action, Action::Escalate { .. })
            && let Some(earlier) = execution::earlier_escalation(&a.facts.events, sts)
        {
            match self.writer.event_again(earlier, &message).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::info!(error = %err, "earlier escalation event not updated; recording a new one")
                }
            }
        }
        if let Err(err) = retry(self.retry_delay, || {
            self.writer.event(sts, type_, reason, &message)
        })
        .await
        {
            tracing::warn!(error = %err, reason, "event not recorded");
        }
    }
}

/// `detail`, or `default` where it says nothing.
fn or(detail: String, default: String) -> String {
    if detail.is_empty() { default } else { detail }
}
