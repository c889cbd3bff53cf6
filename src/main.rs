//! The binary edge: flags, logging, exit codes. The work is in the library.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use cli::{Cli, Command, LogFormat, PlanArgs, ScopeArgs, SnapshotArgs};
use stsmend::cluster::{self, Target};
use stsmend::config::Config;
use stsmend::inventory::Inventory;
use stsmend::pipeline::{self, Options};
use stsmend::report::Report;
use stsmend::scope::Scope;
use stsmend::selector::Selector;
use stsmend::state::{self, State};
use stsmend::{Error, snapshot, source};

const EXIT_BAD_INPUT: u8 = 2;
const EXIT_FAILURE: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("stsmend: {err:#}");
            let bad_input = err
                .chain()
                .find_map(|e| e.downcast_ref::<Error>())
                .is_some_and(Error::is_bad_input);
            ExitCode::from(if bad_input {
                EXIT_BAD_INPUT
            } else {
                EXIT_FAILURE
            })
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

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Plan(args) => plan(args).await,
        Command::Snapshot(args) => take_snapshot(args).await,
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
        Some(path) => Config::load(path),
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
}

async fn plan(args: PlanArgs) -> anyhow::Result<u8> {
    let config = load_config(&args.scope)?;
    let scope = resolve_scope(&args.scope, &config)?;
    let threshold = args.threshold.unwrap_or(config.threshold);
    let counter = cluster::metrics::Counter::default();
    let (inv, source_label) = if args.source.from.is_empty() {
        let target = Target {
            kubeconfig: args.source.kubeconfig.clone(),
            context: args.source.context.clone(),
        };
        let (client, label) = target.client(&counter).await?;
        let inv = cluster::read::read(
            &client,
            &scope,
            (&config.state_namespace, state::CONFIG_MAP),
        )
        .await?;
        (inv, label)
    } else {
        let inv = source::files::load(&args.source.from)?;
        let label = args
            .source
            .from
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        (inv, format!("files {label}"))
    };
    let now = match args.now {
        Some(t) => t,
        None => snapshot::taken_at(&inv)?.unwrap_or_else(jiff::Timestamp::now),
    };
    let state = state_of(&inv, &config)?;
    let opts = Options {
        now,
        threshold,
        scope,
        node_groups: config.node_groups.clone(),
        migration_annotations: config.migration_annotations.clone(),
    };
    let outcome = pipeline::evaluate(&inv, state.as_ref(), &opts);
    let report = Report {
        schema: stsmend::report::SCHEMA,
        version: stsmend::VERSION,
        generated_at: now,
        source: source_label,
        threshold,
        outcome,
        skipped_kinds: inv.skipped.clone(),
        api_requests: args.source.from.is_empty().then(|| counter.snapshot()),
    };
    let text = report.render(args.output)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &text)
            .with_context(|| format!("writing report {}", path.display()))?;
    }
    print!("{text}");
    Ok(report.exit_code())
}

async fn take_snapshot(args: SnapshotArgs) -> anyhow::Result<u8> {
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
    )
    .await?;
    snapshot::mark(&mut inv, &config.state_namespace, jiff::Timestamp::now());
    let yaml = snapshot::to_yaml(&inv)?;
    tracing::info!(requests = counter.snapshot().total, "snapshot taken");
    match &args.output {
        Some(path) => {
            std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{yaml}"),
    }
    Ok(0)
}
