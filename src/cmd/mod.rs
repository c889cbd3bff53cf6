//! The subcommands, each in a module of its own; here what they share:
//! the config, scope and policies from flags, and one read-only assessment.

pub(crate) mod plan;
pub(crate) mod policy_test;
pub(crate) mod preflight;
pub(crate) mod run;
pub(crate) mod snapshot;
pub(crate) mod undo;

use stsmend::Error;
use stsmend::cluster::{self, Target};
use stsmend::cluster::{act, write};
use stsmend::config::Config;
use stsmend::duration::Span;
use stsmend::error::{EXIT_BAD_INPUT, EXIT_FAILURE};
use stsmend::execution::{self, Mode};
use stsmend::inventory::Inventory;
use stsmend::pipeline::{self, Outcome, Settings};
use stsmend::policy::{self, Origin, Policies, PolicyError};
use stsmend::report::Report;
use stsmend::scope::Scope;
use stsmend::selector::Selector;
use stsmend::state::{self, State};
use stsmend::{notify, source};

use crate::cli::{
    DryRun, ExplainArgs, ExplainFormat, PlanArgs, PolicyTestArgs, PolicyTestFormat, RunArgs,
    ScopeArgs, SnapshotArgs, SourceArgs, UndoArgs,
};

/// Flags win over the config file; both are validated before anything is read.
pub(crate) fn resolve_scope(args: &ScopeArgs, config: &Config) -> Result<Scope, Error> {
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

pub(crate) fn load_config(args: &ScopeArgs) -> Result<Config, Error> {
    match &args.config {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::default()),
    }
}

pub(crate) fn state_of(inv: &Inventory, config: &Config) -> Result<Option<State>, Error> {
    State::in_inventory(inv, &config.state_namespace).map_err(Error::from)
}

/// The policies a run decides with: `--policies` (strict: a policy that
/// does not load stops the run), else the config's (a broken one only costs
/// the StatefulSets it decides for), else the built-in ladder. Loaded before
/// anything is read, so a syntax error costs no API request.
pub(crate) fn load_policies(
    flag: Option<&std::path::Path>,
    config: &Config,
) -> Result<Policies, PolicyError> {
    let mut policies = match (flag, &config.policies) {
        (Some(path), _) => Policies::load(path, Origin::CommandLine)?,
        (None, Some(path)) => Policies::load(path, Origin::Config)?,
        (None, None) => Policies::builtin(),
    };
    policies.set_annotation(config.policy_annotation.clone());
    Ok(policies)
}

/// One read-only pass: read, detect, diagnose, decide.
pub(crate) struct Assessed {
    outcome: Outcome,
    source_label: String,
    now: jiff::Timestamp,
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
            threshold: self.config.threshold,
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

pub(crate) async fn assess(
    source: &SourceArgs,
    scope_args: &ScopeArgs,
    policies_flag: Option<&std::path::Path>,
    threshold: Option<stsmend::duration::Span>,
    now: Option<jiff::Timestamp>,
    max_actions: Option<usize>,
    decide_by: Option<std::time::Instant>,
) -> stsmend::Result<Assessed> {
    let mut config = load_config(scope_args)?;
    if let Some(n) = max_actions {
        config.limits.max_actions = n;
    }
    if let Some(t) = threshold {
        config.threshold = t;
    }
    let scope = resolve_scope(scope_args, &config)?;
    let mut policies = load_policies(policies_flag, &config)?;
    if let Some(at) = decide_by {
        policies.set_deadline(at);
    }
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
    let mut inv = inv;
    stsmend::caps::inventory(&mut inv);
    let now = match now {
        Some(t) => t,
        None => stsmend::snapshot::taken_at(&inv)?.unwrap_or_else(jiff::Timestamp::now),
    };
    let state = state_of(&inv, &config)?;
    let open_alerts = state
        .iter()
        .flat_map(|s| &s.records)
        .filter_map(|(id, r)| Some((id.clone(), r.alert.clone()?)))
        .collect();
    let settings = Settings::new(&config, scope, now)?;
    let pipeline::Run {
        outcome,
        next_state,
    } = pipeline::run(&inv, state.as_ref(), &settings, &policies);
    Ok(Assessed {
        outcome,
        source_label,
        now,
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
pub(crate) fn policy_failed(a: &Assessed) -> bool {
    a.policies.origin() == Some(Origin::CommandLine)
        && a.outcome.policy_errors().any(|e| {
            !matches!(
                e.kind,
                policy::ErrorKind::UnknownPolicy
                    | policy::ErrorKind::OutOfScope
                    | policy::ErrorKind::Deadline
            )
        })
}

pub(crate) fn split_target(target: &str) -> Result<(&str, &str), Error> {
    target
        .split_once('/')
        .filter(|(n, s)| !n.is_empty() && !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| Error::invalid("StatefulSet", target, "expected NAMESPACE/NAME"))
}
