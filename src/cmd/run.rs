//! `stsmend run`: the CronJob's run, which acts on what the guards admit.

use super::*;

/// What a run leaves for its metrics, however far it got.
#[derive(Default)]
pub(crate) struct Ran {
    report: Option<Report>,
    open_alerts: Option<usize>,
    alert_delivery_failures: Option<usize>,
}

/// One CronJob run, then its figures pushed to the Pushgateway (if
/// configured), whether it succeeded or not.
pub(crate) async fn run_once(args: RunArgs) -> stsmend::Result<u8> {
    let started = std::time::Instant::now();
    let config = load_config(&args.scope)?;
    let mut ran = Ran::default();
    let result = run_and_act(args, &config, &mut ran).await;
    if let Some(pushgateway) = &config.metrics.pushgateway {
        let finished_at = jiff::Timestamp::now();
        let succeeded = matches!(result, Ok(0));
        let text = notify::metrics::run(
            ran.report.as_ref(),
            &notify::metrics::RunFigures {
                duration_seconds: started.elapsed().as_secs_f64(),
                succeeded,
                open_alerts: ran.open_alerts,
                alert_delivery_failures: ran.alert_delivery_failures,
                finished_at,
            },
        );
        let success = succeeded.then(|| notify::metrics::success(finished_at));
        let instance = pushgateway.instance_or(&config.state_namespace);
        match notify::http::push_metrics(pushgateway, instance, text, success).await {
            Ok(()) => tracing::debug!(url = %pushgateway.url, "metrics pushed"),
            Err(e) => tracing::warn!(error = %e, "metrics not pushed"),
        }
    }
    result
}

/// Assess, then carry out admitted plans, send alerts, then save state.
async fn run_and_act(args: RunArgs, config: &Config, ran: &mut Ran) -> stsmend::Result<u8> {
    let mode = match (args.apply, args.dry_run) {
        (true, _) => Mode::Apply,
        (false, Some(DryRun::Server)) => Mode::ServerDryRun,
        (false, _) => Mode::DryRun,
    };
    let source = SourceArgs {
        from: Vec::new(),
        kubeconfig: args.cluster.kubeconfig.clone(),
        context: args.cluster.context.clone(),
    };
    let budget = args.deadline.unwrap_or(config.deadline).as_secs();
    let deadline = Deadline::new(std::time::Duration::from_secs(budget));
    let assessed = tokio::time::timeout(
        deadline.for_work(),
        assess(
            &source,
            &args.scope,
            args.policy.policies.as_deref(),
            args.threshold,
            None,
            args.max_actions,
            Some(std::time::Instant::now() + deadline.for_work()),
        ),
    )
    .await;
    let Ok(assessed) = assessed else {
        // Nothing was decided, so nothing was written and the state stays
        // as the last run left it: the next run reads again. The report
        // says so, where the CronJob's log and --report put it.
        tracing::error!(deadline = %Span(budget), "the run's deadline passed while reading the cluster");
        let report = unread_report(&args, config, &source, mode, budget);
        write_report(&args, &report)?;
        ran.report = Some(report);
        return Ok(EXIT_FAILURE);
    };
    let mut a = assessed?;
    if policy_failed(&a) {
        // A broken policy given on the command line: decide nothing, act on
        // nothing; the report names the file and line.
        for e in a.outcome.policy_errors() {
            tracing::error!(error = %e, "policy failed");
        }
        return Ok(EXIT_BAD_INPUT);
    }
    let Some((client, _)) = a.client.clone() else {
        return Err(Error::invalid(
            "source",
            "files",
            "stsmend run reads a cluster",
        ));
    };
    let node_groups = a.config.node_groups.clone();
    let mut actor = actor(&a, &node_groups, client, mode)?;
    let mut failed = act_on_plans(&mut a, &mut actor, &deadline, budget).await;
    let delivery = send_alerts(&mut a, ran, &actor).await;
    failed |= !save_state(&a, &actor, &deadline).await;
    let mut report = a.into_report(Some(mode));
    report.alerts = delivery;
    write_report(&args, &report)?;
    ran.report = Some(report);
    Ok(if failed { EXIT_FAILURE } else { 0 })
}

/// The report of a run whose deadline passed before it had read the
/// cluster: nothing decided, nothing written.
fn unread_report(
    args: &RunArgs,
    config: &Config,
    source: &SourceArgs,
    mode: Mode,
    budget: u64,
) -> Report {
    Report {
        schema: stsmend::report::SCHEMA,
        version: stsmend::VERSION,
        generated_at: jiff::Timestamp::now(),
        source: format!(
            "cluster{}",
            source
                .context
                .as_deref()
                .map(|c| format!(" (context {c})"))
                .unwrap_or_default()
        ),
        threshold: args.threshold.unwrap_or(config.threshold),
        mode: Some(mode),
        policies: Vec::new(),
        outcome: Outcome {
            scanned: 0,
            failing: Vec::new(),
            pending: Vec::new(),
            exempt: Vec::new(),
        },
        skipped_kinds: Default::default(),
        api_requests: None,
        alerts: None,
        incomplete: Some(format!(
            "the run's deadline ({}) passed while it read the cluster: nothing was decided or written; the next run reads again",
            Span(budget)
        )),
    }
}

/// The acting layer for this run: its writes in `mode`, its own ConfigMaps
/// always for real, and the undo records read with the state.
fn actor<'g>(
    a: &Assessed,
    node_groups: &'g [stsmend::config::NodeGroup],
    client: kube::Client,
    mode: Mode,
) -> stsmend::Result<act::Actor<'g>> {
    let undo_book = a
        .inv
        .config_maps
        .iter()
        .find(|c| {
            c.metadata.name.as_deref() == Some(stsmend::undo::CONFIG_MAP)
                && c.metadata.namespace.as_deref() == Some(a.config.state_namespace.as_str())
        })
        .map(stsmend::undo::Book::from_config_map)
        .transpose()?
        .unwrap_or_default();
    let writer_mode = if mode == Mode::ServerDryRun {
        write::Mode::ServerDryRun
    } else {
        write::Mode::Apply
    };
    Ok(act::Actor {
        mode,
        writer: write::Writer::new(client.clone(), writer_mode),
        own: write::Writer::new(client, write::Mode::Apply).with_undo_limits(&a.config.limits),
        node_groups,
        state_namespace: a.config.state_namespace.clone(),
        undo: undo_book,
        undo_keep: a.config.limits.undo_keep,
        undo_max_records: a.config.limits.undo_max_records,
        now: a.now,
        retry_delay: cluster::retry::WRITE_DELAY,
    })
}

/// Carries out every admitted plan in report order, within the deadline;
/// true when an action failed or was cut short.
async fn act_on_plans(
    a: &mut Assessed,
    actor: &mut act::Actor<'_>,
    deadline: &Deadline,
    budget: u64,
) -> bool {
    let mut failed = false;
    for assessment in &mut a.outcome.failing {
        // Past the deadline, what is left waits for the next run: the
        // report and state still get written in the time kept for them.
        let left = deadline.for_work();
        if left.is_zero() {
            assessment.executed =
                stsmend::execution::not_started(assessment.plan.as_ref(), &deadline_note(budget));
            continue;
        }
        let Ok(done) = tokio::time::timeout(left, actor.carry_out(assessment)).await else {
            tracing::error!(statefulset = %assessment.id(), "the run's deadline passed while acting");
            assessment.executed =
                stsmend::execution::interrupted(assessment.plan.as_ref(), &deadline_note(budget));
            failed = true;
            continue;
        };
        failed |= done
            .executed
            .iter()
            .any(|e| e.status == execution::Status::Failed);
        if let Some(last) = done.last_action
            && let Some(record) = a.next_state.records.get_mut(&assessment.id())
        {
            if last.action == "rollback"
                && let Some((from, to)) = stsmend::pipeline::rolled_back(assessment)
            {
                record.remember_rollback(last.at, from, to);
            }
            record.last_action = Some(last);
        }
        assessment.executed = done.executed;
    }
    failed
}

/// Sends the run's alerts (before the state is saved: it remembers the
/// ones left open) and records in the next state which stay open.
async fn send_alerts(
    a: &mut Assessed,
    ran: &mut Ran,
    actor: &act::Actor<'_>,
) -> Option<notify::Delivery> {
    let Some(am) = &a.config.alertmanager else {
        for record in a.next_state.records.values_mut() {
            record.alert = None;
        }
        return None;
    };
    let suspended = actor.still_suspended().await;
    let postings = notify::alerts::plan(&a.outcome, &a.open_alerts, &suspended, a.now, am);
    let d = notify::http::deliver_alerts(am, &postings).await;
    match &d.error {
        Some(e) => tracing::error!(
            error = %e,
            "alerts not delivered; the next run sends them again"
        ),
        None if !postings.is_empty() => {
            tracing::info!(firing = d.firing, resolved = d.resolved, "alerts delivered")
        }
        None => {}
    }
    let mut open = notify::alerts::still_open(&postings, d.delivered);
    ran.open_alerts = Some(open.len());
    ran.alert_delivery_failures = Some(usize::from(!d.delivered));
    for (id, record) in &mut a.next_state.records {
        record.alert = open.remove(id);
    }
    // A healed set whose resolution did not go out.
    for (id, alert) in open {
        a.next_state.records.insert(
            id,
            state::Record {
                alert: Some(alert),
                ..Default::default()
            },
        );
    }
    Some(d)
}

/// Saves the next state, in every mode: a dry run must count runs for the
/// debounce the same way, or its report would differ from an apply run's.
/// False when it could not be saved.
async fn save_state(a: &Assessed, actor: &act::Actor<'_>, deadline: &Deadline) -> bool {
    let saved = tokio::time::timeout(deadline.left().max(CLOSING_MIN), async {
        let data = a.next_state.to_data()?;
        cluster::retry::retry(cluster::retry::WRITE_DELAY, || {
            actor
                .own
                .save_config_map(&a.config.state_namespace, state::CONFIG_MAP, data.clone())
        })
        .await
    })
    .await
    .unwrap_or_else(|_| {
        Err(Error::invalid(
            "state",
            state::CONFIG_MAP,
            "the run's deadline passed while saving it",
        ))
    });
    match saved {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "state not saved; the next run starts its timers again");
            false
        }
    }
}

/// The report on stdout, and in `--report` when given.
pub(crate) fn write_report(args: &RunArgs, report: &Report) -> stsmend::Result<()> {
    if let Some(path) = &args.report {
        std::fs::write(path, report.render(args.report_format)?)
            .map_err(|e| Error::write(path, e))?;
    }
    print!("{}", report.render(args.output)?);
    Ok(())
}

/// The least time kept to save the state, however late the run is.
const CLOSING_MIN: std::time::Duration = std::time::Duration::from_secs(5);

/// When a run must be done, and how much of that is kept for writing its
/// state and report (a quarter, at most 30 seconds): acting stops early
/// enough that the run still ends with a record of what it did.
pub(crate) struct Deadline {
    at: tokio::time::Instant,
    closing: std::time::Duration,
}

impl Deadline {
    fn new(total: std::time::Duration) -> Self {
        Self {
            at: tokio::time::Instant::now() + total,
            closing: (total / 4).min(std::time::Duration::from_secs(30)),
        }
    }

    fn left(&self) -> std::time::Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Time left for reading and acting.
    fn for_work(&self) -> std::time::Duration {
        self.left().saturating_sub(self.closing)
    }
}

pub(crate) fn deadline_note(budget: u64) -> String {
    format!(
        "the run's deadline ({}) left no time for it; the next run decides again",
        Span(budget)
    )
}
