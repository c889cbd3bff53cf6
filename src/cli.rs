//! Command-line flags (clap derive). Kept apart from `main.rs` so the flags
//! read as the user's reference.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use stsmend::duration::Span;
use stsmend::report::Format;

/// The version and the git revision it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("STSMEND_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "stsmend",
    version = VERSION,
    about = "Finds StatefulSets whose rollout failed and mends them, safely, by policy",
    after_help = "Examples:\n  stsmend plan --from examples/failing-rollout.yaml --for 0s --output markdown\n  stsmend run --config /etc/stsmend/config.yaml\n  stsmend completions bash > /etc/bash_completion.d/stsmend\n\nExit codes: 0 nothing found, 1 findings present, 2 bad input, 3 runtime failure."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format; defaults to human on a terminal and JSON otherwise.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter (RUST_LOG syntax), e.g. `stsmend=debug`.
    #[arg(
        long,
        global = true,
        env = "STSMEND_LOG",
        default_value = "stsmend=info"
    )]
    pub log: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Detect and diagnose failed rollouts, decide a plan for each by policy,
    /// and print a report. Never writes to the cluster.
    #[command(
        after_help = "Examples:\n  stsmend plan --from examples/failing-rollout.yaml --output markdown\n  kubectl get sts,pods,controllerrevisions,events -n shop -o yaml | stsmend plan --from -\n  stsmend plan -n shop --for 15m --output json\n  stsmend plan --from shop.yaml --policies policies/examples\n  stsmend plan --from snapshot.yaml --output sarif --report stsmend.sarif\n  stsmend plan --from snapshot.yaml --output junit > stsmend-junit.xml\n\nExit codes: 0 no failing StatefulSet, 1 findings present, 2 bad input, 3 runtime failure."
    )]
    Plan(PlanArgs),
    /// Predict, before a change lands, how the rollout of each StatefulSet
    /// in it will go: what it changes, the pods it replaces, what will stop
    /// them (admission, quotas, storage, scheduling, missing references, a
    /// forbidden update), what the agent would find and plan. Never writes:
    /// live, the API server is asked with server-side dry runs only.
    #[command(
        after_help = "Examples:\n  stsmend preflight manifests/ --from snapshots/prod.yaml --output markdown\n  kustomize build overlays/prod | stsmend preflight - --context prod\n  helm template db charts/db -n shop | stsmend preflight - -n shop --output sarif --report preflight.sarif\n\nExit codes: 0 nothing predicted to fail, 1 predicted failures, 2 bad input, 3 runtime failure."
    )]
    Preflight(PreflightArgs),
    /// Write the objects a live run reads, whole, as one YAML `v1 List`, so
    /// the run can be replayed with `stsmend plan --from`.
    #[command(
        after_help = "Example:\n  stsmend snapshot -A -o snapshot.yaml && stsmend plan --from snapshot.yaml"
    )]
    Snapshot(SnapshotArgs),
    /// Print how the policy decided for one StatefulSet: its findings, the
    /// policy selected and why, each rung considered, and the plan. Never
    /// writes to the cluster.
    #[command(
        after_help = "Examples:\n  stsmend explain shop/db --from snapshot.yaml\n  stsmend explain shop/db --policies policies/examples --now 2026-11-22T10:00:00Z --from shop.yaml"
    )]
    Explain(ExplainArgs),
    /// The CronJob entry point: detect, diagnose, decide, then carry out the
    /// plans of opted-in StatefulSets that pass the guards. A dry run (the
    /// default) writes nothing but the agent's own state ConfigMap.
    #[command(
        after_help = "Examples:\n  stsmend run                                  # dry run: report what would be done\n  stsmend run --dry-run=server                 # send each write with dryRun=All\n  stsmend run --apply --config /etc/stsmend/config.yaml --report /tmp/report.md -o markdown\n\nExit codes: 0 the run completed (findings or not), 2 bad input, 3 an action or the state write failed."
    )]
    Run(RunArgs),
    /// Restore what the agent's last action on a StatefulSet changed (its
    /// spec, or the node group it scaled). Dry run unless --apply.
    #[command(
        after_help = "Examples:\n  stsmend undo shop/db                    # show what would be restored\n  stsmend undo shop/db --apply --config /etc/stsmend/config.yaml\n\nExit codes: 0 restored (or would be), 1 refused (nothing to undo, paused, not opted in, or the object moved on), 2 bad input, 3 runtime failure."
    )]
    Undo(UndoArgs),
    /// Work with policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  stsmend completions bash > /etc/bash_completion.d/stsmend\n  stsmend completions zsh > \"${fpath[1]}/_stsmend\"\n  stsmend completions fish > ~/.config/fish/completions/stsmend.fish"
    )]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Write nothing (but the agent's own state).
    Client,
    /// Send every write with dryRun=All: admission and RBAC are checked.
    Server,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub scope: ScopeArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Carry out the plans. Without it the run is a dry run.
    #[arg(long, conflicts_with = "dry_run")]
    pub apply: bool,

    /// A dry run (the default): `client` writes nothing, `server` sends
    /// each write with dryRun=All.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", value_name = "WHERE")]
    pub dry_run: Option<DryRun>,

    /// At most this many writes in the run (default: the config's
    /// limits.maxActions).
    #[arg(long, value_name = "N")]
    pub max_actions: Option<usize>,

    /// The run ends within this time, report and state written (default:
    /// the config's `deadline`, 4m, for a CronJob every 5 minutes).
    #[arg(long, value_name = "DURATION")]
    pub deadline: Option<Span>,

    /// How long a mismatch or stuck rollout must hold before it is a finding.
    #[arg(long = "for", value_name = "DURATION")]
    pub threshold: Option<Span>,

    /// Report format on stdout.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Format,

    /// Also write the report to this file (format from --report-format).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Format of the --report file.
    #[arg(long, value_enum, default_value = "markdown")]
    pub report_format: Format,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The StatefulSet, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub target: String,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Config file (YAML): the state namespace, node groups, pause.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Restore for real. Without it, print what would be restored.
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run policy test cases: every directory under DIR with a case.yaml
    /// (input objects plus expected actions). Prints a pass/fail table; exits
    /// 1 when a case fails, 2 when a case cannot be read.
    #[command(
        after_help = "Examples:\n  stsmend policy test policies/tests\n  stsmend policy test policies/tests --verbose\n  stsmend policy test policies/tests --output junit > policy-tests.xml"
    )]
    Test(PolicyTestArgs),
}

#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// Directory of cases (searched recursively).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Show the plan and trace of passing cases too.
    #[arg(short, long)]
    pub verbose: bool,

    /// Output format: the table, or JUnit XML for a CI system.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: PolicyTestFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyTestFormat {
    Text,
    Junit,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Team policies: a .rhai file or a directory of them (default: the
    /// config file's `policies`). A policy that does not load is an error
    /// (exit code 2); a ladder.rhai replaces the built-in ladder.
    #[arg(long, value_name = "PATH")]
    pub policies: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The StatefulSet, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub target: String,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub scope: ScopeArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// How long a mismatch or stuck rollout must hold before it is a finding.
    #[arg(long = "for", value_name = "DURATION")]
    pub threshold: Option<Span>,

    /// The time to judge durations against (RFC 3339).
    #[arg(long)]
    pub now: Option<jiff::Timestamp>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: ExplainFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExplainFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Read objects from files or directories of `kubectl get -o yaml|json`
    /// output instead of a cluster (repeatable; `-` is standard input).
    #[arg(long, value_name = "PATH", num_args = 1)]
    pub from: Vec<PathBuf>,

    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use.
    #[arg(long, conflicts_with = "from")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Only this namespace (repeatable).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,

    /// All namespaces (the default when no -n is given).
    #[arg(short = 'A', long, conflicts_with = "namespaces")]
    pub all_namespaces: bool,

    /// Skip this namespace (repeatable).
    #[arg(long = "exclude-namespace", value_name = "NS")]
    pub exclude_namespaces: Vec<String>,

    /// Only StatefulSets matching this label selector (kubectl syntax).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,

    /// Config file (YAML): scope, node groups, state namespace...
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub scope: ScopeArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// How long a mismatch or stuck rollout must hold before it is a finding
    /// (default 10m, like the alert, or the config file's `for`).
    #[arg(long = "for", value_name = "DURATION")]
    pub threshold: Option<Span>,

    /// The time to judge durations against (RFC 3339). Defaults to the
    /// snapshot's time for a snapshot, otherwise the clock.
    #[arg(long)]
    pub now: Option<jiff::Timestamp>,

    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Format,

    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// The proposed manifests: files, directories (their .yaml, .yml and
    /// .json files, at any depth) or `-` for standard input (what
    /// `kustomize build` or `helm template` print). Multi-document YAML and
    /// Lists; objects other than StatefulSets are counted and left alone.
    #[arg(required = true, value_name = "MANIFESTS")]
    pub manifests: Vec<PathBuf>,

    /// The state the change lands in: `--from` snapshots (what `stsmend
    /// snapshot --preflight` writes), else the live cluster.
    #[command(flatten)]
    pub source: SourceArgs,

    /// The namespace of manifests that name none, as `kubectl apply -n`.
    #[arg(short = 'n', long, value_name = "NS", default_value = "default")]
    pub namespace: String,

    /// Config file (YAML): its threshold, limits and opt-in decide the plan
    /// shown for a predicted failure.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Format,

    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    #[arg(long)]
    pub context: Option<String>,

    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Where to write the snapshot (default: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write what `stsmend preflight --from` judges a change against:
    /// every pod, node, StorageClass and PriorityClass, and in each
    /// namespace with a StatefulSet (and each -n) its revisions, claims,
    /// LimitRanges, ResourceQuotas, ServiceAccounts and ConfigMaps (their
    /// keys; values are left out). Needs the stsmend-preflight role for the
    /// last three.
    #[arg(long)]
    pub preflight: bool,
}
