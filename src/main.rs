//! The binary edge: flags, logging, exit codes. The work is in the library.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::{
    Cli, Command, DryRun, ExplainArgs, ExplainFormat, LogFormat, PlanArgs, PolicyCommand,
    PolicyTestArgs, PolicyTestFormat, RunArgs, ScopeArgs, SnapshotArgs, SourceArgs, UndoArgs,
};
use stsmend::cluster::{self, Target};
use stsmend::cluster::{act, write};
use stsmend::config::Config;
use stsmend::duration::Span;
use stsmend::execution::{self, Mode};
use stsmend::inventory::Inventory;
use stsmend::pipeline::{self, Outcome, Settings};
use stsmend::policy::{self, Origin, Policies, PolicyError};
use stsmend::report::Report;
use stsmend::scope::Scope;
use stsmend::selector::Selector;
use stsmend::state::{self, State};
use stsmend::{Error, notify, snapshot, source, undo};

use stsmend::error::{EXIT_BAD_INPUT, EXIT_FAILURE};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions(args) = &cli.command {
        use clap::CommandFactory as _;
        use std::io::Write as _;
        // Rendered to memory first: clap_complete panics on a write error,
        // and `stsmend completions bash | head` closes the pipe early.
        let mut script = Vec::new();
        clap_complete::generate(args.shell, &mut Cli::command(), "stsmend", &mut script);
        return match std::io::stdout().write_all(&script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stsmend: writing the completion script: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stsmend: starting the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("stsmend: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("stsmend=info"));
    let json = match cli.log_format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> stsmend::Result<u8> {
    match cli.command {
        Command::Plan(args) => plan(args).await,
        Command::Snapshot(args) => take_snapshot(args).await,
        Command::Explain(args) => explain(args).await,
        Command::Policy(PolicyCommand::Test(args)) => policy_test(args),
        Command::Run(args) => run_once(args).await,
        Command::Undo(args) => undo(args).await,
        // Answered in main, before logging and the runtime start.
        Command::Completions(_) => Ok(0),
    }
}

/// Flags win over the config file; both are validated before anything is read.
fn resolve_scope(args: &ScopeArgs, config: &Config) -> Result<Scope, Error> {
    let namespaces = if args.all_namespaces {
        Vec::new()
    } else if args.namespaces.is_empty() {
        config.scope.namespaces.clone()
    } else {
        args.namespaces.clone()
    };
    let mut exclude = config.scope.exclude_namespaces.clone();
    exclude.extend(args.exclude_namespaces.iter().cloned());
    let selector = match args
        .selector
        .as_deref()
        .or(config.scope.selector.as_deref())
    {
        Some(text) => Selector::parse(text)?,
        None => Selector::default(),
    };
    Ok(Scope {
        namespaces,
        exclude_namespaces: exclude,
        selector,
    })
}

fn load_config(args: &ScopeArgs) -> Result<Config, Error> {
    match &args.config {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::default()),
    }
}

fn state_of(inv: &Inventory, config: &Config) -> Result<Option<State>, Error> {
    inv.config_maps
        .iter()
        .find(|c| {
            c.metadata.name.as_deref() == Some(state::CONFIG_MAP)
                && c.metadata.namespace.as_deref() == Some(config.state_namespace.as_str())
        })
        .map(State::from_config_map)
        .transpose()
        .map_err(Error::from)
}

/// The policies a run decides with: `--policies` (strict: a policy that
/// does not load stops the run), else the config's (a broken one only costs
/// the StatefulSets it decides for), else the built-in ladder. Loaded before
/// anything is read, so a syntax error costs no API request.
fn load_policies(flag: Option<&std::path::Path>, config: &Config) -> Result<Policies, PolicyError> {
    let mut policies = match (flag, &config.policies) {
        (Some(path), _) => Policies::load(path, Origin::CommandLine)?,
        (None, Some(path)) => Policies::load(path, Origin::Config)?,
        (None, None) => Policies::builtin(),
    };
    policies.set_annotation(config.policy_annotation.clone());
    Ok(policies)
}

/// One read-only pass: read, detect, diagnose, decide.
struct Assessed {
    outcome: Outcome,
    source_label: String,
    now: jiff::Timestamp,
    threshold: stsmend::duration::Span,
    skipped: std::collections::BTreeMap<String, usize>,
    policies: Policies,
    config: Config,
    inv: Inventory,
    /// Where the StatefulSets read from files are declared.
    locations: source::files::Locations,
    /// The state after this run's observation: what `run` saves.
    next_state: State,
    /// The client of a live run, and its request counter.
    client: Option<(kube::Client, cluster::metrics::Counter)>,
    /// The alerts open in Alertmanager before this run, by StatefulSet.
    open_alerts: std::collections::BTreeMap<String, notify::alerts::OpenAlert>,
}

impl Assessed {
    /// The run's report; a live run's request count is read now, so it
    /// includes whatever the run wrote after assessing.
    fn into_report(self, mode: Option<Mode>) -> Report {
        Report {
            schema: stsmend::report::SCHEMA,
            version: stsmend::VERSION,
            generated_at: self.now,
            source: self.source_label,
            threshold: self.threshold,
            mode,
            policies: self.policies.infos(),
            outcome: self.outcome,
            skipped_kinds: self.skipped,
            api_requests: self.client.map(|(_, counter)| counter.snapshot()),
            alerts: None,
            incomplete: None,
        }
    }
}

async fn assess(
    source: &SourceArgs,
    scope_args: &ScopeArgs,
    policies_flag: Option<&std::path::Path>,
    threshold: Option<stsmend::duration::Span>,
    now: Option<jiff::Timestamp>,
    max_actions: Option<usize>,
) -> stsmend::Result<Assessed> {
    let mut config = load_config(scope_args)?;
    if let Some(n) = max_actions {
        config.limits.max_actions = n;
    }
    let scope = resolve_scope(scope_args, &config)?;
    let policies = load_policies(policies_flag, &config)?;
    let threshold = threshold.unwrap_or(config.threshold);
    let counter = cluster::metrics::Counter::default();
    let mut live = None;
    let (inv, locations, source_label) = if source.from.is_empty() {
        let target = Target {
            kubeconfig: source.kubeconfig.clone(),
            context: source.context.clone(),
        };
        let (client, label) = target.client(&counter).await?;
        let mut inv = cluster::read::read(
            &client,
            &scope,
            (&config.state_namespace, state::CONFIG_MAP),
            cluster::read::Keep::Facts,
        )
        .await?;
        // The reader skips the state when nothing is suspect; alerts still
        // open about StatefulSets that healed are resolved from it.
        if config.alertmanager.is_some() && state_of(&inv, &config)?.is_none() {
            let api = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
                client.clone(),
                &config.state_namespace,
            );
            let cm = api
                .get_opt(state::CONFIG_MAP)
                .await
                .map_err(|e| Error::api(format!("reading ConfigMap {}", state::CONFIG_MAP), e))?;
            inv.config_maps.extend(cm);
        }
        live = Some((client, counter.clone()));
        (inv, Default::default(), label)
    } else {
        let (inv, locations) = source::files::load_with_locations(&source.from)?;
        let label = source
            .from
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        (inv, locations, format!("files {label}"))
    };
    let now = match now {
        Some(t) => t,
        None => snapshot::taken_at(&inv)?.unwrap_or_else(jiff::Timestamp::now),
    };
    let state = state_of(&inv, &config)?;
    let open_alerts = state
        .iter()
        .flat_map(|s| &s.records)
        .filter_map(|(id, r)| Some((id.clone(), r.alert.clone()?)))
        .collect();
    config.threshold = threshold;
    let settings = Settings::new(&config, scope, now)?;
    let pipeline::Run {
        outcome,
        next_state,
    } = pipeline::run(&inv, state.as_ref(), &settings, &policies);
    Ok(Assessed {
        outcome,
        source_label,
        now,
        threshold,
        skipped: inv.skipped.clone(),
        policies,
        config,
        inv,
        locations,
        next_state,
        client: live,
        open_alerts,
    })
}

/// Exit code 2 when a policy given on the command line failed on some
/// StatefulSet: the report is still printed, with the others' plans.
fn policy_failed(a: &Assessed) -> bool {
    a.policies.origin() == Some(Origin::CommandLine)
        && a.outcome
            .policy_errors()
            .any(|e| e.kind != policy::ErrorKind::UnknownPolicy)
}

async fn plan(args: PlanArgs) -> stsmend::Result<u8> {
    let mut a = assess(
        &args.source,
        &args.scope,
        args.policy.policies.as_deref(),
        args.threshold,
        args.now,
        None,
    )
    .await?;
    let failed = policy_failed(&a);
    for e in a.outcome.policy_errors() {
        tracing::warn!(error = %e, "policy failed; no actions for this StatefulSet");
    }
    let locations = std::mem::take(&mut a.locations);
    let report = a.into_report(None);
    let text = report.render_with_locations(args.output, &locations)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &text).map_err(|e| Error::write(path, e))?;
    }
    print!("{text}");
    Ok(if failed {
        EXIT_BAD_INPUT
    } else {
        report.exit_code()
    })
}

async fn explain(args: ExplainArgs) -> stsmend::Result<u8> {
    let (ns, name) = split_target(&args.target)?;
    let a = assess(
        &args.source,
        &args.scope,
        args.policy.policies.as_deref(),
        args.threshold,
        args.now,
        None,
    )
    .await?;
    let id = format!("{ns}/{name}");
    let o = &a.outcome;
    let failing = o.failing.iter().find(|x| x.id() == id);
    let found = failing.or_else(|| o.pending.iter().find(|x| x.id() == id));
    let exempt = o
        .exempt
        .iter()
        .find(|e| e.namespace == ns && e.name == name);
    match args.output {
        ExplainFormat::Json => {
            let value = serde_json::json!({
                "statefulSet": id,
                "status": if failing.is_some() { "failing" } else if found.is_some() { "pending" } else if exempt.is_some() { "exempt" } else { "not_failing" },
                "assessment": found,
                "exempt": exempt,
            });
            let text = serde_json::to_string_pretty(&value)
                .map_err(|e| Error::encode("explanation", e))?;
            println!("{text}");
        }
        ExplainFormat::Text => match (found, exempt) {
            (Some(assessment), _) => print!(
                "{}",
                stsmend::report::explain(assessment, failing.is_some(), a.threshold)
            ),
            (None, Some(e)) => println!("{id}: exempt by design: {}", e.reason.describe()),
            (None, None) => println!(
                "{id}: no failed or stuck rollout in {} ({} StatefulSet(s) scanned)",
                a.source_label, o.scanned
            ),
        },
    }
    Ok(if policy_failed(&a) {
        EXIT_BAD_INPUT
    } else if failing.is_some() {
        1
    } else {
        0
    })
}

/// What a run leaves for its metrics, however far it got.
#[derive(Default)]
struct Ran {
    report: Option<Report>,
    open_alerts: Option<usize>,
    alert_delivery_failures: Option<usize>,
}

/// One CronJob run, then its figures pushed to the Pushgateway (if
/// configured), whether it succeeded or not.
async fn run_once(args: RunArgs) -> stsmend::Result<u8> {
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
        ),
    )
    .await;
    let Ok(assessed) = assessed else {
        // Nothing was decided, so nothing was written and the state stays
        // as the last run left it: the next run reads again. The report
        // says so, where the CronJob's log and --report put it.
        tracing::error!(deadline = %Span(budget), "the run's deadline passed while reading the cluster");
        let report = Report {
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
            outcome: stsmend::pipeline::Outcome {
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
        };
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
    let undo_book = a
        .inv
        .config_maps
        .iter()
        .find(|c| {
            c.metadata.name.as_deref() == Some(undo::CONFIG_MAP)
                && c.metadata.namespace.as_deref() == Some(a.config.state_namespace.as_str())
        })
        .map(undo::Book::from_config_map)
        .transpose()?
        .unwrap_or_default();
    let writer_mode = if mode == Mode::ServerDryRun {
        write::Mode::ServerDryRun
    } else {
        write::Mode::Apply
    };
    let node_groups = a.config.node_groups.clone();
    let mut actor = act::Actor {
        mode,
        writer: write::Writer::new(client.clone(), writer_mode),
        own: write::Writer::new(client.clone(), write::Mode::Apply),
        node_groups: &node_groups,
        state_namespace: a.config.state_namespace.clone(),
        undo: undo_book,
        now: a.now,
        retry_delay: cluster::retry::WRITE_DELAY,
    };
    let mut failed = false;
    for assessment in &mut a.outcome.failing {
        // Past the deadline, what is left waits for the next run: the
        // report and state still get written in the time kept for them.
        let left = deadline.for_work();
        if left.is_zero() {
            assessment.executed = act::not_started(assessment, &deadline_note(budget));
            continue;
        }
        let Ok(done) = tokio::time::timeout(left, actor.carry_out(assessment)).await else {
            tracing::error!(statefulset = %assessment.id(), "the run's deadline passed while acting");
            assessment.executed = act::interrupted(assessment, &deadline_note(budget));
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
            record.last_action = Some(last);
        }
        assessment.executed = done.executed;
    }
    // Alerts before the state, which remembers the ones left open.
    let mut delivery = None;
    match &a.config.alertmanager {
        Some(am) => {
            let postings = notify::alerts::plan(&a.outcome, &a.open_alerts, a.now, am);
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
            delivery = Some(d);
        }
        None => {
            for record in a.next_state.records.values_mut() {
                record.alert = None;
            }
        }
    }
    // The state is saved in every mode: a dry run must count runs for the
    // debounce the same way, or its report would differ from an apply run's.
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
        Err(stsmend::error::Error::invalid(
            "state",
            state::CONFIG_MAP,
            "the run's deadline passed while saving it",
        ))
    });
    if let Err(e) = &saved {
        tracing::error!(error = %e, "state not saved; the next run starts its timers again");
        failed = true;
    }
    let mut report = a.into_report(Some(mode));
    report.alerts = delivery;
    write_report(&args, &report)?;
    ran.report = Some(report);
    Ok(if failed { EXIT_FAILURE } else { 0 })
}

/// The report on stdout, and in `--report` when given.
fn write_report(args: &RunArgs, report: &Report) -> stsmend::Result<()> {
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
struct Deadline {
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

fn deadline_note(budget: u64) -> String {
    format!(
        "the run's deadline ({}) left no time for it; the next run decides again",
        Span(budget)
    )
}

fn split_target(target: &str) -> Result<(&str, &str), Error> {
    target
        .split_once('/')
        .filter(|(n, s)| !n.is_empty() && !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| Error::invalid("StatefulSet", target, "expected NAMESPACE/NAME"))
}

/// Restores what the last action on one StatefulSet changed, under the same
/// guards as a run: opted in, not paused, and conditional on the object not
/// having moved on since.
async fn undo(args: UndoArgs) -> stsmend::Result<u8> {
    let (ns, name) = split_target(&args.target)?;
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let target = Target {
        kubeconfig: args.cluster.kubeconfig.clone(),
        context: args.cluster.context.clone(),
    };
    let counter = cluster::metrics::Counter::default();
    let (client, _) = target.client(&counter).await?;
    let outcome = cluster::undo::undo(
        &client,
        &config,
        ns,
        name,
        if args.apply {
            Mode::Apply
        } else {
            Mode::DryRun
        },
    )
    .await?;
    println!("{}", outcome.message);
    Ok(if outcome.refused { 1 } else { 0 })
}

fn policy_test(args: PolicyTestArgs) -> stsmend::Result<u8> {
    let results = stsmend::cases::run_dir(&args.dir)?;
    match args.output {
        PolicyTestFormat::Text => print!("{}", results.render(args.verbose)),
        PolicyTestFormat::Junit => print!("{}", stsmend::report::junit::policy_tests(&results)?),
    }
    Ok(if results.failed() == 0 { 0 } else { 1 })
}

async fn take_snapshot(args: SnapshotArgs) -> stsmend::Result<u8> {
    let config = load_config(&args.scope)?;
    let scope = resolve_scope(&args.scope, &config)?;
    let target = Target {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let counter = cluster::metrics::Counter::default();
    let (client, _) = target.client(&counter).await?;
    let mut inv = cluster::read::read(
        &client,
        &scope,
        (&config.state_namespace, state::CONFIG_MAP),
        cluster::read::Keep::Whole,
    )
    .await?;
    snapshot::mark(&mut inv, &config.state_namespace, jiff::Timestamp::now());
    let yaml = snapshot::to_yaml(&inv)?;
    tracing::info!(requests = counter.snapshot().total, "snapshot taken");
    match &args.output {
        Some(path) => std::fs::write(path, yaml).map_err(|e| Error::write(path, e))?,
        None => print!("{yaml}"),
    }
    Ok(0)
}
