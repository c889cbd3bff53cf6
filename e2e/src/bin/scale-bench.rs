//! The scale benchmark of issue 7: `stsmend plan -A -o json` against a real
//! control plane holding N StatefulSets (3 pods each, a few percent failing
//! in different ways), side by side with a bare `kubectl get statefulsets -A
//! -o json` and with scripts/baseline.sh, the naive kubectl+jq runbook script.
//!
//! Per size it records, for the agent: wall time (median of `--runs`), peak
//! RSS (`wait4` rusage of the child), CPU time, and its API requests by verb
//! and resource three ways: as the agent counts them (the report's
//! `apiRequests`), from the API server's audit log (only the agent's and the
//! kubectl runs' users are audited), and as the API server's
//! `apiserver_request_total` delta across the run, less the background rate
//! measured in an idle window just before.
//!
//! Setup: the simulated kubelet (`stsmend_e2e::sim`) plays every pod until
//! the cluster is stable, then it is stopped, so its 400 ms pod LIST does not
//! load the 2-core machine during the measurement; the bench then renews the
//! nodes' Leases itself (as a kubelet does every 10 s) so the node lifecycle
//! controller keeps the nodes Ready and the pods stay exactly as they were.
//!
//! Usage (scripts/bench.sh runs it):
//!
//! ```text
//! scale-bench [--sizes 500,2000,5000] [--runs 5] [--smoke] [--no-baseline]
//!             [--baseline-max 2000] [--per-namespace 50] [--fail-percent 4]
//!             [--stsmend PATH] [--baseline-script PATH]
//!             [--json FILE] [--markdown FILE] [--wait-idle SECONDS]
//! ```
//!
//! `--stsmend` defaults to `$STSMEND_BIN`, else the release binary under
//! `$CARGO_TARGET_DIR` (or `target/`). `--smoke` is N=20, one run, no
//! baseline. Before measuring each size the bench waits up to `--wait-idle`
//! (default 1200 s, 0 with `--smoke`) for other builds, tests and control
//! planes on the machine to end, and records any still running.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod, ResourceQuota};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use stsmend_e2e::sim::{NodeSpec, Sim};
use stsmend_e2e::{AGENT_USER, ControlPlane, ControlPlaneOptions, StaticUser, wait};

/// The static user kubectl runs as (the bare `kubectl get` and the baseline),
/// audited like the agent.
const KUBECTL_USER: &str = "bench-kubectl";
/// Label on a broken StatefulSet and on its pods of the broken revision.
const FAULT_LABEL: &str = "bench.stsmend.io/fault";
const REPLICAS: i32 = 3;
/// Pods per simulated node; nodes are added to fit N×3 pods.
const PODS_PER_NODE: usize = 3000;
/// Image of the healthy revision.
const IMAGE: &str = "registry.example/app:1";
/// How often the bench renews the node Leases once the simulation stopped.
const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// Idle window that measures the API server's background request rate.
const IDLE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Fault {
    /// Rollout to an image tag that cannot be pulled (ImagePullBackOff).
    BadImage,
    /// Rollout to an image whose container exits (CrashLoopBackOff).
    CrashLoop,
    /// Rollout requesting a GPU no node has (Pending, Unschedulable).
    Gpu,
    /// Rollout whose pod never passes its readiness probe.
    NeverReady,
    /// Rollout requesting more memory than the namespace's LimitRange
    /// allows, then a second template change while the pod is missing: a
    /// generation mismatch (ENVIRONMENT.md).
    LimitRange,
    /// A template change under a ResourceQuota on
    /// `count/controllerrevisions.apps` that is used up: the revision cannot
    /// be created, a generation mismatch on any version.
    Quota,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::BadImage,
        Fault::CrashLoop,
        Fault::Gpu,
        Fault::NeverReady,
        Fault::LimitRange,
        Fault::Quota,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::BadImage => "bad-image",
            Fault::CrashLoop => "crash-loop",
            Fault::Gpu => "gpu",
            Fault::NeverReady => "never-ready",
            Fault::LimitRange => "limit-range",
            Fault::Quota => "quota",
        }
    }

    /// The template change that breaks the StatefulSet (the first one, for
    /// `LimitRange`).
    fn patch(self) -> Value {
        let label = json!({"metadata": {"labels": {FAULT_LABEL: self.name()}}});
        let mut template = match self {
            Fault::BadImage => {
                json!({"spec": {"containers": [{"name": "app", "image": "registry.example/app:2-broken"}]}})
            }
            Fault::CrashLoop => {
                json!({"spec": {"containers": [{"name": "app", "image": "registry.example/app:2-crash"}]}})
            }
            Fault::Gpu => {
                json!({"spec": {"containers": [{"name": "app", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}})
            }
            Fault::NeverReady => {
                json!({"metadata": {"annotations": {"e2e.stsmend.io/fault": "never-ready"}}})
            }
            Fault::LimitRange => {
                json!({"spec": {"containers": [{"name": "app", "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}}}]}})
            }
            Fault::Quota => {
                json!({"spec": {"containers": [{"name": "app", "image": "registry.example/app:2"}]}})
            }
        };
        merge(&mut template, &label);
        let mut patch = label;
        patch["spec"] = json!({"template": template});
        patch
    }
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[derive(Debug, Clone)]
struct Opts {
    sizes: Vec<usize>,
    runs: usize,
    baseline: bool,
    baseline_max: usize,
    per_namespace: usize,
    fail_percent: f64,
    stsmend: PathBuf,
    baseline_script: PathBuf,
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    smoke: bool,
    /// Before measuring, wait up to this long for other builds, tests and
    /// control planes on the machine to end (see [`foreign_load`]).
    wait_idle: Duration,
    /// Set up each size, then hold it (nodes kept Ready) until interrupted
    /// instead of measuring: for profiling the agent by hand.
    hold: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

fn parse_args() -> Result<Opts> {
    let mut sizes = None;
    let mut runs = None;
    let mut baseline = None;
    let mut baseline_max = 2000;
    let mut per_namespace = 50;
    let mut fail_percent = 4.0;
    let mut stsmend = std::env::var_os("STSMEND_BIN").map(PathBuf::from);
    let mut baseline_script = repo_root().join("scripts/baseline.sh");
    let mut json = None;
    let mut markdown = None;
    let mut smoke = false;
    let mut wait_idle = None;
    let mut hold = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--sizes" => {
                sizes = Some(
                    value("--sizes")?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>())
                        .collect::<Result<Vec<_>, _>>()
                        .context("--sizes: a comma-separated list of numbers")?,
                )
            }
            "--runs" => runs = Some(value("--runs")?.parse().context("--runs")?),
            "--no-baseline" => baseline = Some(false),
            "--baseline" => baseline = Some(true),
            "--baseline-max" => baseline_max = value("--baseline-max")?.parse()?,
            "--per-namespace" => per_namespace = value("--per-namespace")?.parse()?,
            "--fail-percent" => fail_percent = value("--fail-percent")?.parse()?,
            "--stsmend" => stsmend = Some(value("--stsmend")?.into()),
            "--baseline-script" => baseline_script = value("--baseline-script")?.into(),
            "--json" => json = Some(value("--json")?.into()),
            "--markdown" => markdown = Some(value("--markdown")?.into()),
            "--smoke" => smoke = true,
            "--hold" => hold = true,
            "--wait-idle" => {
                wait_idle = Some(Duration::from_secs(
                    value("--wait-idle")?
                        .parse()
                        .context("--wait-idle: seconds")?,
                ))
            }
            "-h" | "--help" => {
                println!(
                    "scale-bench [--sizes 500,2000,5000] [--runs 5] [--smoke] [--no-baseline] \
                     [--baseline-max 2000] [--per-namespace 50] [--fail-percent 4] \
                     [--stsmend PATH] [--baseline-script PATH] [--json FILE] [--markdown FILE] \
                     [--wait-idle SECONDS] [--hold]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let stsmend = match stsmend {
        Some(p) => p,
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("release/stsmend")
        }
    };
    if !stsmend.is_file() {
        bail!(
            "no stsmend binary at {} (build it with `cargo build --release --bin stsmend`, \
             or pass --stsmend / STSMEND_BIN)",
            stsmend.display()
        );
    }
    let opts = Opts {
        sizes: sizes.unwrap_or_else(|| {
            if smoke {
                vec![20]
            } else {
                vec![500, 2000, 5000]
            }
        }),
        runs: runs.unwrap_or(if smoke { 1 } else { 5 }).max(1),
        baseline: baseline.unwrap_or(!smoke),
        baseline_max,
        per_namespace: per_namespace.max(1),
        fail_percent,
        stsmend,
        baseline_script,
        json,
        markdown,
        smoke,
        wait_idle: wait_idle.unwrap_or(Duration::from_secs(if smoke { 0 } else { 1200 })),
        hold,
    };
    if opts.sizes.contains(&0) {
        bail!("--sizes: every size must be at least 1");
    }
    Ok(opts)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(MEASURE_CHILD) {
        return measure_child(&args[2..]);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "scale_bench=info,stsmend_e2e=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(opts))
}

async fn run(opts: Opts) -> Result<()> {
    let machine = machine();
    tracing::info!(
        ?machine,
        "scale benchmark: sizes {:?}, {} runs",
        opts.sizes,
        opts.runs
    );
    let version = Command::new(&opts.stsmend)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    tracing::info!("measuring {version} ({})", opts.stsmend.display());
    let mut results = Vec::new();
    for &n in &opts.sizes {
        let r = bench_size(n, &opts)
            .await
            .with_context(|| format!("N={n}"))?;
        eprintln!("{}\n{}", markdown_header(), markdown_row(&r));
        results.push(r);
    }
    let table = std::iter::once(markdown_header())
        .chain(results.iter().map(markdown_row))
        .collect::<Vec<_>>()
        .join("\n");
    println!("\n{table}\n");
    let doc = json!({
        "benchmark": "stsmend scale (issue 7)",
        "smoke": opts.smoke,
        "machine": machine,
        "stsmend": opts.stsmend,
        "stsmendVersion": version,
        "runs": opts.runs,
        "perNamespace": opts.per_namespace,
        "failPercent": opts.fail_percent,
        "results": results,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    match &opts.json {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("JSON results: {}", p.display());
        }
        None => println!("{text}"),
    }
    if let Some(p) = &opts.markdown {
        std::fs::write(p, format!("{table}\n"))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

// --- results --------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SizeResult {
    n: usize,
    namespaces: usize,
    pods: usize,
    nodes: usize,
    failing_created: BTreeMap<&'static str, usize>,
    failing_total: usize,
    setup_seconds: BTreeMap<&'static str, f64>,
    load_before: String,
    load_after: String,
    /// Other builds, tests or control planes running on the machine when the
    /// measurement started and when it ended (empty: none).
    other_work_before: Vec<String>,
    other_work_after: Vec<String>,
    /// StatefulSets that were not healthy before and after the runs (a check
    /// that the cluster held still): should equal `failingTotal`.
    suspects_before: usize,
    suspects_after: usize,
    stsmend: AgentResult,
    kubectl_get: ToolResult,
    baseline: Option<BaselineResult>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AgentResult {
    wall_seconds: Vec<f64>,
    wall_median: f64,
    max_rss_mib: Vec<f64>,
    max_rss_mib_max: f64,
    cpu_seconds: Vec<f64>,
    exit_codes: Vec<i32>,
    /// From the report's `apiRequests` (the agent's own count), first run.
    requests_agent: Value,
    /// Per run: the agent's count, the audit log's, and the metrics delta.
    requests_total_agent: Vec<u64>,
    requests_total_audit: Vec<u64>,
    requests_audit: BTreeMap<String, u64>,
    metrics_delta_raw: Vec<i64>,
    metrics_delta_adjusted: Vec<f64>,
    metrics_by_request: BTreeMap<String, f64>,
    metrics_background_per_second: f64,
    /// Runs measured again because other work ran on the machine meanwhile.
    discarded_runs: u32,
    scanned: u64,
    failing: u64,
    pending: u64,
    finding_kinds: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult {
    wall_seconds: Vec<f64>,
    wall_median: f64,
    max_rss_mib_max: f64,
    requests_audit: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BaselineResult {
    wall_seconds: f64,
    exit_code: i32,
    summary: String,
    requests_total_audit: u64,
    requests_audit: BTreeMap<String, u64>,
    kubectl_invocations: u64,
}

fn markdown_header() -> String {
    "| N | failing | stsmend wall (median) | stsmend peak RSS | API requests (agent / audit / metrics Δ) | kubectl get sts -A wall | baseline wall | baseline ÷ stsmend | stsmend ÷ kubectl get |\n|---:|---:|---:|---:|---|---:|---:|---:|---:|".to_string()
}

fn markdown_row(r: &SizeResult) -> String {
    let s = &r.stsmend;
    let audit = median_u64(&s.requests_total_audit);
    let agent = median_u64(&s.requests_total_agent);
    let metrics = median_f64(&s.metrics_delta_adjusted);
    let (baseline, ratio) = match &r.baseline {
        Some(b) => (
            format!("{:.1} s", b.wall_seconds),
            format!("{:.0}x", b.wall_seconds / s.wall_median),
        ),
        None => ("not run".to_string(), "—".to_string()),
    };
    format!(
        "| {} | {} | {:.3} s | {:.1} MiB | {} / {} / {:.0} | {:.3} s | {} | {} | {:.2} |",
        r.n,
        r.failing_total,
        s.wall_median,
        s.max_rss_mib_max,
        agent,
        audit,
        metrics,
        r.kubectl_get.wall_median,
        baseline,
        ratio,
        s.wall_median / r.kubectl_get.wall_median,
    )
}

fn median_f64(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn median_u64(v: &[u64]) -> u64 {
    let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    median_f64(&f).round() as u64
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpuModel": cpu,
        "memoryGiB": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// What makes wall times noisy on a shared 2-core machine: compilers, test
/// runners and other control planes (any but this bench's own components).
fn foreign_load() -> Vec<String> {
    const BUSY: [&str; 8] = [
        "rustc",
        "cargo",
        "cargo-nextest",
        "cc1",
        "kube-apiserver",
        "kube-controller",
        "kube-scheduler",
        "etcd",
    ];
    let stat_of = |pid: &str| -> Option<(String, u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may contain spaces.
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let ppid = stat[close + 1..].split_whitespace().nth(1)?.parse().ok()?;
        Some((stat[open + 1..close].to_string(), ppid))
    };
    let me = std::process::id();
    // This process and its ancestors (a `cargo run` that started it).
    let mut ours = vec![me];
    let mut pid = me;
    while let Some((_, ppid)) = stat_of(&pid.to_string()) {
        if ppid <= 1 || ours.contains(&ppid) {
            break;
        }
        ours.push(ppid);
        pid = ppid;
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let Some((comm, ppid)) = stat_of(&name) else {
            continue;
        };
        if BUSY.contains(&comm.as_str()) && !ours.contains(&pid) && ppid != me {
            out.push(format!("{comm}[{pid}]"));
        }
    }
    out.sort();
    out
}

/// Waits up to `max` until [`foreign_load`] is empty; returns what still
/// runs.
async fn wait_idle(max: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut logged: Option<Instant> = None;
    loop {
        let busy = foreign_load();
        if busy.is_empty() || start.elapsed() >= max {
            if !busy.is_empty() && !max.is_zero() {
                tracing::warn!("measuring while other work runs: {}", busy.join(" "));
            }
            return busy;
        }
        if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            tracing::info!(
                "waiting for other work on the machine to end before measuring \
                 ({:.0?} so far, at most {max:?}): {}",
                start.elapsed(),
                busy.join(" ")
            );
            logged = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

// --- one size -------------------------------------------------------------

struct Layout {
    n: usize,
    per_namespace: usize,
    /// (index of the StatefulSet, fault)
    failing: Vec<(usize, Fault)>,
}

impl Layout {
    fn new(n: usize, per_namespace: usize, fail_percent: f64) -> Self {
        // A few percent, but at least one of each kind so every path runs.
        let wanted = ((n as f64 * fail_percent / 100.0).ceil() as usize)
            .max(Fault::ALL.len())
            .min(n);
        let stride = n as f64 / wanted as f64;
        let failing = (0..wanted)
            .map(|k| {
                let i = ((k as f64 + 0.5) * stride) as usize;
                (i.min(n - 1), Fault::ALL[k % Fault::ALL.len()])
            })
            .collect();
        Self {
            n,
            per_namespace,
            failing,
        }
    }

    fn namespaces(&self) -> usize {
        self.n.div_ceil(self.per_namespace)
    }

    fn namespace(&self, i: usize) -> String {
        format!("bench-{:03}", i / self.per_namespace)
    }

    fn name(i: usize) -> String {
        format!("db-{i:05}")
    }

    fn of(&self, fault: Fault) -> impl Iterator<Item = (String, String)> + '_ {
        self.failing
            .iter()
            .filter(move |(_, f)| *f == fault)
            .map(|&(i, _)| (self.namespace(i), Self::name(i)))
    }
}

fn stateful_set(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "scale-bench"}},
        "spec": {
            "replicas": REPLICAS,
            "serviceName": name,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "app",
                        "image": IMAGE,
                        "ports": [{"name": "db", "containerPort": 5432}],
                        "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                    }],
                },
            },
        },
    })
}

struct Bench {
    cp: ControlPlane,
    client: kube::Client,
    work: PathBuf,
    audit_log: PathBuf,
    agent_kubeconfig: PathBuf,
    kubectl_kubeconfig: PathBuf,
    kubectl_cache: PathBuf,
}

async fn bench_size(n: usize, opts: &Opts) -> Result<SizeResult> {
    let layout = Layout::new(n, opts.per_namespace, opts.fail_percent);
    let mut setup = BTreeMap::new();
    let t = Instant::now();
    let bench = start_cluster(n).await?;
    setup.insert("controlPlane", t.elapsed().as_secs_f64());

    let pods = n * REPLICAS as usize;
    let node_count = pods.div_ceil(PODS_PER_NODE).max(2);
    let node_names: Vec<String> = (1..=node_count).map(|i| format!("node-{i}")).collect();
    let t = Instant::now();
    let sim = Sim::start(
        bench.client.clone(),
        node_names
            .iter()
            .map(|name| {
                NodeSpec::new(name.clone())
                    .capacity("pods", PODS_PER_NODE.to_string())
                    .capacity("cpu", "64")
                    .capacity("memory", "256Gi")
            })
            .collect(),
    )
    .await?;
    setup.insert("nodes", t.elapsed().as_secs_f64());

    let t = Instant::now();
    create_all(&bench, &layout).await?;
    setup.insert("createStatefulSets", t.elapsed().as_secs_f64());
    let t = Instant::now();
    wait_all_healthy(&bench.client, n).await?;
    setup.insert("untilHealthy", t.elapsed().as_secs_f64());
    let t = Instant::now();
    break_some(&bench, &layout).await?;
    setup.insert("untilFailing", t.elapsed().as_secs_f64());
    let mut failing_created = BTreeMap::new();
    for (_, f) in &layout.failing {
        *failing_created.entry(f.name()).or_insert(0) += 1;
    }

    // Freeze the cluster: no more kubelet pod syncs; Leases keep the nodes
    // Ready. Give the controllers a moment to settle on what they see.
    sim.stop().await;
    let leases = keep_leases(bench.client.clone(), node_names.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let other_work_before = wait_idle(opts.wait_idle).await;
    let suspects_before = suspects(&bench.client).await?;
    tracing::info!(
        n,
        suspects = suspects_before,
        failing = layout.failing.len(),
        "cluster ready for measurement; setup took {:.0} s",
        setup.values().sum::<f64>()
    );

    if opts.hold {
        eprintln!(
            "HOLD N={n}: agent kubeconfig {}\nHOLD kubectl kubeconfig {}\nHOLD audit log {}\n\
             HOLD interrupt (SIGINT) to tear down",
            bench.agent_kubeconfig.display(),
            bench.kubectl_kubeconfig.display(),
            bench.audit_log.display()
        );
        tokio::signal::ctrl_c().await?;
        leases.abort();
        let Bench { cp, work, .. } = bench;
        cp.shutdown().await;
        let _ = std::fs::remove_dir_all(&work);
        bail!("--hold: N={n} was set up and held, not measured");
    }

    let measured = measure(&bench, opts, n, &layout).await;
    let other_work_after = foreign_load();
    keep_outputs(&bench, opts, n);
    let suspects_after = suspects(&bench.client).await?;
    leases.abort();
    let (stsmend, kubectl_get, baseline, load_before, load_after) = measured?;
    if suspects_before != layout.failing.len() || suspects_after != suspects_before {
        tracing::warn!(
            expected = layout.failing.len(),
            suspects_before,
            suspects_after,
            "the number of unhealthy StatefulSets is not what the bench created"
        );
    }
    let result = SizeResult {
        n,
        namespaces: layout.namespaces(),
        pods,
        nodes: node_count,
        failing_created,
        failing_total: layout.failing.len(),
        setup_seconds: setup,
        load_before,
        load_after,
        other_work_before,
        other_work_after,
        suspects_before,
        suspects_after,
        stsmend,
        kubectl_get,
        baseline,
    };
    let Bench { cp, work, .. } = bench;
    cp.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
    Ok(result)
}

type Measured = (
    AgentResult,
    ToolResult,
    Option<BaselineResult>,
    String,
    String,
);

/// The commands measured, each writing to files named by run (0: warm-up).
struct Commands<'a> {
    bench: &'a Bench,
    stsmend: &'a Path,
    kubectl_bin: PathBuf,
    out: PathBuf,
}

impl Commands<'_> {
    fn agent(&self, i: usize) -> (Command, PathBuf, PathBuf) {
        let mut c = Command::new(self.stsmend);
        c.args(["plan", "-A", "-o", "json", "--for", "0s", "--kubeconfig"])
            .arg(&self.bench.agent_kubeconfig)
            .args(["--log-format", "json"])
            .env_remove("KUBECONFIG");
        (
            c,
            self.out.join(format!("stsmend-{i}.json")),
            self.out.join(format!("stsmend-{i}.log")),
        )
    }

    fn kubectl(&self, i: usize) -> (Command, PathBuf, PathBuf) {
        let mut c = Command::new(&self.kubectl_bin);
        c.arg(format!(
            "--kubeconfig={}",
            self.bench.kubectl_kubeconfig.display()
        ))
        .arg(format!(
            "--cache-dir={}",
            self.bench.kubectl_cache.display()
        ))
        .args(["get", "statefulsets", "-A", "-o", "json"])
        .env_remove("KUBECONFIG");
        (
            c,
            self.out.join(format!("kubectl-{i}.json")),
            self.out.join(format!("kubectl-{i}.log")),
        )
    }
}

/// The API server's request rate with nothing of ours running.
struct Background {
    /// Requests by verb and resource over [`IDLE_WINDOW`].
    idle: BTreeMap<String, i64>,
    per_second: f64,
}

impl Background {
    /// What the idle rate of `request` accounts for over `wall`.
    fn of(&self, request: &str, wall: Duration) -> f64 {
        let rate = self.idle.get(request).copied().unwrap_or(0) as f64 / IDLE_WINDOW.as_secs_f64();
        rate * wall.as_secs_f64()
    }
}

impl AgentResult {
    fn new(background: f64) -> Self {
        AgentResult {
            wall_seconds: Vec::new(),
            wall_median: 0.0,
            max_rss_mib: Vec::new(),
            max_rss_mib_max: 0.0,
            cpu_seconds: Vec::new(),
            exit_codes: Vec::new(),
            requests_agent: Value::Null,
            requests_total_agent: Vec::new(),
            requests_total_audit: Vec::new(),
            requests_audit: BTreeMap::new(),
            metrics_delta_raw: Vec::new(),
            metrics_delta_adjusted: Vec::new(),
            metrics_by_request: BTreeMap::new(),
            metrics_background_per_second: background,
            discarded_runs: 0,
            scanned: 0,
            failing: 0,
            pending: 0,
            finding_kinds: BTreeMap::new(),
        }
    }

    /// The first run's report, audit and metrics, kept whole.
    fn record_first(
        &mut self,
        report: &Value,
        audit: &BTreeMap<String, u64>,
        delta: &BTreeMap<String, i64>,
        background: &Background,
        wall: Duration,
    ) {
        self.requests_agent = report["apiRequests"].clone();
        self.requests_audit = audit.clone();
        self.metrics_by_request = delta
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| (k.clone(), *v as f64 - background.of(k, wall)))
            .collect();
        self.scanned = report["scanned"].as_u64().unwrap_or(0);
        self.failing = report["failing"].as_array().map_or(0, |a| a.len() as u64);
        self.pending = report["pending"].as_array().map_or(0, |a| a.len() as u64);
        for a in report["failing"].as_array().into_iter().flatten() {
            for f in a["findings"].as_array().into_iter().flatten() {
                if let Some(k) = f["kind"].as_str() {
                    *self.finding_kinds.entry(k.to_string()).or_default() += 1;
                }
            }
        }
    }

    /// Forgets the per-run figures from run index `mark` on.
    fn truncate_runs(&mut self, mark: usize) {
        self.wall_seconds.truncate(mark);
        self.max_rss_mib.truncate(mark);
        self.cpu_seconds.truncate(mark);
        self.exit_codes.truncate(mark);
        self.requests_total_agent.truncate(mark);
        self.requests_total_audit.truncate(mark);
        self.metrics_delta_raw.truncate(mark);
        self.metrics_delta_adjusted.truncate(mark);
    }
}

async fn measure(bench: &Bench, opts: &Opts, n: usize, layout: &Layout) -> Result<Measured> {
    let cmds = Commands {
        bench,
        stsmend: &opts.stsmend,
        kubectl_bin: bench.cp.assets().bin("kubectl"),
        out: bench.work.join("out"),
    };
    std::fs::create_dir_all(&cmds.out)?;
    warm_up(&cmds).await?;
    let background = background_rate(&bench.client).await?;

    let load_before = loadavg();
    let mut agent = AgentResult::new(background.per_second);
    let mut kubectl = ToolResult {
        wall_seconds: Vec::new(),
        wall_median: 0.0,
        max_rss_mib_max: 0.0,
        requests_audit: BTreeMap::new(),
    };
    // A run (the agent, then kubectl) during which other work was seen on
    // the machine is done again, while the --wait-idle budget lasts.
    let budget_end = Instant::now() + opts.wait_idle;
    let mut i = 1;
    while i <= opts.runs {
        wait_idle(budget_end.saturating_duration_since(Instant::now())).await;
        let busy_before = foreign_load();
        let mark = agent.wall_seconds.len();
        measure_agent(&cmds, i, &background, &mut agent).await?;
        // The bare kubectl get, right after, in the same conditions.
        measure_kubectl(&cmds, i, &mut kubectl).await?;
        let busy_after = foreign_load();
        if (!busy_before.is_empty() || !busy_after.is_empty()) && Instant::now() < budget_end {
            tracing::info!(
                run = i,
                "other work ran during this run; measuring it again: {}",
                [busy_before, busy_after].concat().join(" ")
            );
            agent.truncate_runs(mark);
            kubectl.wall_seconds.truncate(mark);
            agent.discarded_runs += 1;
            continue;
        }
        i += 1;
    }
    agent.wall_median = median_f64(&agent.wall_seconds);
    agent.max_rss_mib_max = agent.max_rss_mib.iter().copied().fold(0.0, f64::max);
    kubectl.wall_median = median_f64(&kubectl.wall_seconds);
    if agent.failing as usize != layout.failing.len() {
        tracing::warn!(
            expected = layout.failing.len(),
            reported = agent.failing,
            "stsmend reports a different number of failing StatefulSets than the bench broke"
        );
    }

    let baseline = if opts.baseline && n <= opts.baseline_max {
        Some(run_baseline(bench, opts, &cmds.kubectl_bin, &cmds.out).await?)
    } else {
        None
    };
    let load_after = loadavg();
    Ok((agent, kubectl, baseline, load_before, load_after))
}

/// Runs the agent and kubectl once each, not measured: kubectl's discovery
/// cache, the API server's and the page cache's view of the data, like any
/// later CronJob run.
async fn warm_up(cmds: &Commands<'_>) -> Result<()> {
    let (c, o, e) = cmds.agent(0);
    let warm = run_measured(c, o.clone(), e.clone()).await?;
    if warm.exit > 1 {
        bail!("stsmend plan failed (exit {}): {}", warm.exit, tail(&e, 20));
    }
    let (c, o, e) = cmds.kubectl(0);
    let warm = run_measured(c, o, e.clone()).await?;
    if warm.exit != 0 {
        bail!("kubectl get failed: {}", tail(&e, 20));
    }
    Ok(())
}

async fn background_rate(client: &kube::Client) -> Result<Background> {
    let m0 = metrics(client).await?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let m1 = metrics(client).await?;
    let idle = delta(&m0, &m1);
    let idle_total: i64 = idle.values().sum();
    let per_second = idle_total as f64 / IDLE_WINDOW.as_secs_f64();
    tracing::info!(
        "background API rate: {per_second:.2} requests/s ({:?})",
        idle.iter().filter(|(_, v)| **v != 0).collect::<Vec<_>>()
    );
    Ok(Background { idle, per_second })
}

/// Run `i` of the agent, counted by itself, the audit log and the metrics.
async fn measure_agent(
    cmds: &Commands<'_>,
    i: usize,
    background: &Background,
    agent: &mut AgentResult,
) -> Result<()> {
    let bench = cmds.bench;
    let offset = audit_offset(&bench.audit_log)?;
    let before = metrics(&bench.client).await?;
    let (c, o, e) = cmds.agent(i);
    let m = run_measured(c, o.clone(), e.clone()).await?;
    let after = metrics(&bench.client).await?;
    if m.exit > 1 {
        bail!("stsmend plan failed (exit {}): {}", m.exit, tail(&e, 20));
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&o)?)
        .with_context(|| format!("stsmend printed no JSON report; see {}", e.display()))?;
    let audit = audit_counts(&bench.audit_log, offset, AGENT_USER).await?;
    let d = delta(&before, &after);
    let raw: i64 = d.values().sum();
    // Less the background: the idle window's rate over the span between
    // the two metric reads (which the wall time approximates), and the
    // one /metrics read of ours that falls inside.
    let adjusted = raw as f64 - background.per_second * m.wall.as_secs_f64();
    let agent_total = report["apiRequests"]["total"].as_u64().unwrap_or(0);
    tracing::info!(
        run = i,
        wall = format!("{:.3}s", m.wall.as_secs_f64()),
        rss_mib = format!("{:.1}", m.max_rss_mib()),
        requests_agent = agent_total,
        requests_audit = audit.values().sum::<u64>(),
        metrics_delta = raw,
        "stsmend plan"
    );
    if i == 1 {
        agent.record_first(&report, &audit, &d, background, m.wall);
    }
    agent.wall_seconds.push(m.wall.as_secs_f64());
    agent.max_rss_mib.push(m.max_rss_mib());
    agent.cpu_seconds.push(m.cpu.as_secs_f64());
    agent.exit_codes.push(m.exit);
    agent.requests_total_agent.push(agent_total);
    agent.requests_total_audit.push(audit.values().sum());
    agent.metrics_delta_raw.push(raw);
    agent.metrics_delta_adjusted.push(adjusted);
    Ok(())
}

/// Run `i` of the bare `kubectl get statefulsets -A -o json`.
async fn measure_kubectl(cmds: &Commands<'_>, i: usize, kubectl: &mut ToolResult) -> Result<()> {
    let audit_log = &cmds.bench.audit_log;
    let offset = audit_offset(audit_log)?;
    let (c, o, e) = cmds.kubectl(i);
    let m = run_measured(c, o, e.clone()).await?;
    if m.exit != 0 {
        bail!("kubectl get failed: {}", tail(&e, 20));
    }
    let audit = audit_counts(audit_log, offset, KUBECTL_USER).await?;
    tracing::info!(
        run = i,
        wall = format!("{:.3}s", m.wall.as_secs_f64()),
        "kubectl get statefulsets -A -o json"
    );
    kubectl.wall_seconds.push(m.wall.as_secs_f64());
    kubectl.max_rss_mib_max = kubectl.max_rss_mib_max.max(m.max_rss_mib());
    if i == 1 {
        kubectl.requests_audit = audit;
    }
    Ok(())
}

async fn run_baseline(
    bench: &Bench,
    opts: &Opts,
    kubectl_bin: &Path,
    out: &Path,
) -> Result<BaselineResult> {
    tracing::info!("running the naive baseline once (slow)");
    let offset = audit_offset(&bench.audit_log)?;
    let mut c = Command::new("bash");
    c.arg(&opts.baseline_script)
        .env("KUBECTL", kubectl_bin)
        .env("KUBECONFIG", &bench.kubectl_kubeconfig)
        .env(
            "KUBECTL_FLAGS",
            format!("--cache-dir={}", bench.kubectl_cache.display()),
        );
    let o = out.join("baseline.txt");
    let e = out.join("baseline.log");
    let m = run_measured(c, o.clone(), e.clone()).await?;
    let text = std::fs::read_to_string(&o).unwrap_or_default();
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("baseline:"))
        .unwrap_or_default()
        .to_string();
    if m.exit != 0 {
        tracing::warn!(exit = m.exit, "baseline failed: {}", tail(&e, 20));
    }
    let audit = audit_counts(&bench.audit_log, offset, KUBECTL_USER).await?;
    let invocations = std::fs::read_to_string(&e)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("kubectl invocations: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    tracing::info!(
        wall = format!("{:.1}s", m.wall.as_secs_f64()),
        %summary,
        "baseline"
    );
    Ok(BaselineResult {
        wall_seconds: m.wall.as_secs_f64(),
        exit_code: m.exit,
        summary,
        requests_total_audit: audit.values().sum(),
        requests_audit: audit,
        kubectl_invocations: invocations,
    })
}

/// Keeps the first measured report and the baseline's output next to the
/// JSON results (`stsmend-report-N.json`, `baseline-N.txt`): the evidence
/// behind the figures.
fn keep_outputs(bench: &Bench, opts: &Opts, n: usize) {
    let Some(dir) = opts.json.as_ref().and_then(|p| p.parent()) else {
        return;
    };
    let out = bench.work.join("out");
    for (from, to) in [
        ("stsmend-1.json", format!("stsmend-report-{n}.json")),
        ("baseline.txt", format!("baseline-{n}.txt")),
    ] {
        if out.join(from).is_file()
            && let Err(e) = std::fs::copy(out.join(from), dir.join(&to))
        {
            tracing::warn!("keeping {to}: {e}");
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// --- the cluster ------------------------------------------------------------

async fn start_cluster(n: usize) -> Result<Bench> {
    let work = std::env::temp_dir().join(format!(
        "stsmend-scale-bench-{}-{n}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ));
    std::fs::create_dir_all(&work)?;
    let audit_policy = work.join("audit-policy.yaml");
    let audit_log = work.join("audit.log");
    // Only the measured clients are audited: one line per request, no load
    // from the controllers' and the simulation's traffic.
    std::fs::write(
        &audit_policy,
        format!(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
             - level: Metadata\n  users: [\"{AGENT_USER}\", \"{KUBECTL_USER}\"]\n\
             - level: None\n"
        ),
    )?;
    std::fs::write(&audit_log, "")?;
    let opts = ControlPlaneOptions {
        name: Some(format!("scale-bench-{n}")),
        // Setup speed only: v1.20's defaults (20 QPS for the
        // controller-manager, 50 for the scheduler) would take most of an
        // hour to create 15,000 pods. The measured clients are not limited
        // by these.
        extra_controller_manager_args: vec![
            "--kube-api-qps=300".into(),
            "--kube-api-burst=600".into(),
        ],
        extra_scheduler_args: vec!["--kube-api-qps=300".into(), "--kube-api-burst=600".into()],
        extra_apiserver_args: vec![
            format!("--audit-policy-file={}", audit_policy.display()),
            format!("--audit-log-path={}", audit_log.display()),
            "--audit-log-format=json".into(),
            "--audit-log-maxsize=0".into(),
        ],
        ..ControlPlaneOptions::default()
    }
    .user(StaticUser::new(KUBECTL_USER, &["system:masters"]));
    let cp = ControlPlane::start_with(opts).await?;
    let client = cp.client();

    // The agent runs as the static user `stsmend-agent` bound to
    // deploy/manifests/rbac.yaml's read roles, as in production.
    let rbac = std::fs::read_to_string(repo_root().join("deploy/manifests/rbac.yaml"))?;
    cp.apply(&rbac).await?;
    let user =
        format!("- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: {AGENT_USER}\n");
    cp.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: bench-stsmend-read}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: stsmend-read}}\nsubjects:\n{user}\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: bench-cluster-status, namespace: kube-system}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: stsmend-cluster-status}}\nsubjects:\n{user}\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: bench-state, namespace: stsmend}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: stsmend-state}}\nsubjects:\n{user}"
    ))
    .await?;
    let kubeconfig = |user: &str| -> Result<PathBuf> {
        let token = &cp
            .static_user(user)
            .with_context(|| format!("the static user {user}"))?
            .token;
        Ok(cp.kubeconfig_for_token(user, token)?)
    };
    let agent_kubeconfig = kubeconfig(AGENT_USER)?;
    let kubectl_kubeconfig = kubeconfig(KUBECTL_USER)?;
    let kubectl_cache = work.join("kubectl-cache");
    Ok(Bench {
        cp,
        client,
        work,
        audit_log,
        agent_kubeconfig,
        kubectl_kubeconfig,
        kubectl_cache,
    })
}

/// Namespaces (each with a LimitRange capping container memory at 1Gi, as
/// many clusters have), then the StatefulSets, a few clients at a time.
async fn create_all(bench: &Bench, layout: &Layout) -> Result<()> {
    let client = &bench.client;
    let namespaces: Vec<String> = (0..layout.namespaces())
        .map(|k| layout.namespace(k * layout.per_namespace))
        .collect();
    for ns in &namespaces {
        bench.cp.kubectl(&["create", "namespace", ns]).await?;
    }
    let limit_range = |ns: &str| {
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": ns},
               "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}})
    };
    for ns in &namespaces {
        let api: Api<k8s_openapi::api::core::v1::LimitRange> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(limit_range(ns))?,
        )
        .await?;
    }
    for ns in &namespaces {
        wait::service_account(client, ns, "default").await?;
    }
    tracing::info!(
        namespaces = namespaces.len(),
        "namespaces ready; creating {} StatefulSets",
        layout.n
    );
    const WORKERS: usize = 6;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let client = client.clone();
        let items: Vec<(String, String)> = (0..layout.n)
            .filter(|i| i % WORKERS == w)
            .map(|i| (layout.namespace(i), Layout::name(i)))
            .collect();
        tasks.spawn(async move {
            for (ns, name) in items {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
                let sts: StatefulSet = serde_json::from_value(stateful_set(&ns, &name))?;
                api.create(&PostParams::default(), &sts)
                    .await
                    .with_context(|| format!("create {ns}/{name}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn list_all<K>(api: &Api<K>, lp: ListParams) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut lp = lp.limit(500);
    let mut out = Vec::new();
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => lp.continue_token = Some(t),
            _ => return Ok(out),
        }
    }
}

fn healthy(s: &StatefulSet) -> bool {
    let st = s.status.clone().unwrap_or_default();
    let want = s.spec.replicas.unwrap_or(1);
    st.observed_generation == s.metadata.generation
        && st.ready_replicas.unwrap_or(0) == want
        && st.updated_replicas.unwrap_or(0) == want
        && st.current_revision.is_some()
        && st.current_revision == st.update_revision
}

async fn suspects(client: &kube::Client) -> Result<usize> {
    let all = list_all(
        &Api::<StatefulSet>::all(client.clone()),
        ListParams::default(),
    )
    .await?;
    Ok(all.iter().filter(|s| !healthy(s)).count())
}

async fn wait_all_healthy(client: &kube::Client, n: usize) -> Result<()> {
    let api = Api::<StatefulSet>::all(client.clone());
    let timeout = Duration::from_secs(300) + Duration::from_millis(600 * n as u64);
    let start = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let ready = match list_all(&api, ListParams::default()).await {
            Ok(all) => all.iter().filter(|s| healthy(s)).count(),
            Err(e) => {
                tracing::warn!("listing StatefulSets: {e}");
                0
            }
        };
        if ready == n {
            tracing::info!("all {n} StatefulSets healthy after {:.0?}", start.elapsed());
            return Ok(());
        }
        if last_log.elapsed() >= Duration::from_secs(30) {
            tracing::info!(
                "{ready}/{n} StatefulSets healthy after {:.0?}",
                start.elapsed()
            );
            last_log = Instant::now();
        }
        if start.elapsed() > timeout {
            bail!("only {ready}/{n} StatefulSets became healthy in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

async fn patch_sts(client: &kube::Client, ns: &str, name: &str, patch: &Value) -> Result<()> {
    Api::<StatefulSet>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .with_context(|| format!("patch {ns}/{name}"))?;
    Ok(())
}

/// Breaks the chosen StatefulSets the way rollouts break, and waits until
/// each shows its failure. The quota case comes last: its ResourceQuota on
/// ControllerRevisions would block every later template change in its
/// namespace.
async fn break_some(bench: &Bench, layout: &Layout) -> Result<()> {
    let client = &bench.client;
    for &(i, fault) in &layout.failing {
        if fault != Fault::Quota {
            patch_sts(
                client,
                &layout.namespace(i),
                &Layout::name(i),
                &fault.patch(),
            )
            .await?;
        }
    }
    // The LimitRange case: once the updated pod is rejected, a second
    // template change while it is missing leaves observedGeneration behind.
    let limit: Vec<(String, String)> = layout.of(Fault::LimitRange).collect();
    for (ns, name) in &limit {
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        let fields = format!("involvedObject.name={name},reason=FailedCreate");
        let (events, fields) = (&events, &fields);
        wait_for(
            &format!("FailedCreate on {ns}/{name}"),
            move || async move {
                let list = events.list(&ListParams::default().fields(fields)).await?;
                Ok(!list.items.is_empty())
            },
        )
        .await?;
        let restarted = jiff::Timestamp::now().to_string();
        patch_sts(
            client,
            ns,
            name,
            &json!({"spec": {"template": {"metadata": {"annotations": {"example.com/restartedAt": restarted}}}}}),
        )
        .await?;
    }
    let others: Vec<(usize, Fault)> = layout
        .failing
        .iter()
        .copied()
        .filter(|(_, f)| *f != Fault::Quota)
        .collect();
    let others = &others;
    wait_for(
        "the broken rollouts to show their failures",
        move || async move {
            for &(i, f) in others {
                if !shows_failure(client, &layout.namespace(i), &Layout::name(i), f).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;

    // The quota case: a quota on ControllerRevisions at exactly what the
    // namespace uses, then a template change.
    let quota: Vec<(String, String)> = layout.of(Fault::Quota).collect();
    let mut quota_namespaces: Vec<String> = quota.iter().map(|(ns, _)| ns.clone()).collect();
    quota_namespaces.dedup();
    const KEY: &str = "count/controllerrevisions.apps";
    for ns in &quota_namespaces {
        let api: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
        let rq: ResourceQuota = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "revisions", "namespace": ns},
            "spec": {"hard": {KEY: "100000"}},
        }))?;
        api.create(&PostParams::default(), &rq).await?;
        let api = &api;
        let used = wait_for_value(&format!("quota usage in {ns}"), move || async move {
            let rq = api.get("revisions").await?;
            Ok(rq
                .status
                .and_then(|s| s.used)
                .and_then(|u| u.get(KEY).cloned())
                .map(|q| q.0))
        })
        .await?;
        api.patch(
            "revisions",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {KEY: used}}})),
        )
        .await?;
        wait_for(
            &format!("quota in {ns} to be at its limit"),
            move || async move {
                let rq = api.get("revisions").await?;
                let st = rq.status.unwrap_or_default();
                let hard = st.hard.and_then(|h| h.get(KEY).cloned()).map(|q| q.0);
                let used = st.used.and_then(|h| h.get(KEY).cloned()).map(|q| q.0);
                Ok(hard.is_some() && hard == used)
            },
        )
        .await?;
    }
    for (ns, name) in &quota {
        patch_sts(client, ns, name, &Fault::Quota.patch()).await?;
    }
    let quota = &quota;
    wait_for(
        "the quota-blocked StatefulSets to show a mismatch",
        move || async move {
            for (ns, name) in quota {
                if !shows_failure(client, ns, name, Fault::Quota).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    // The crash loop and pull failures have run at least one back-off by
    // now; a last pause lets the mismatches hold and the events land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

/// Whether `ns/name` shows the failure `fault` causes.
async fn shows_failure(client: &kube::Client, ns: &str, name: &str, fault: Fault) -> Result<bool> {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let st = sts.status.clone().unwrap_or_default();
    let mismatch = st.observed_generation != sts.metadata.generation;
    if matches!(fault, Fault::LimitRange | Fault::Quota) {
        return Ok(mismatch);
    }
    let Some(update) = st.update_revision.clone() else {
        return Ok(false);
    };
    if st.current_revision.as_ref() == Some(&update) {
        return Ok(false);
    }
    let pod = match Api::<Pod>::namespaced(client.clone(), ns)
        .get_opt(&format!("{name}-{}", REPLICAS - 1))
        .await?
    {
        Some(p) => p,
        None => return Ok(false),
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    if labels.get("controller-revision-hash") != Some(&update) {
        return Ok(false);
    }
    let status = pod.status.unwrap_or_default();
    let container = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .next();
    let waiting = container
        .as_ref()
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
        .unwrap_or_default();
    Ok(match fault {
        Fault::BadImage => waiting == "ImagePullBackOff",
        Fault::CrashLoop => container.is_some_and(|c| c.restart_count >= 1),
        Fault::Gpu => status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "False"),
        Fault::NeverReady => container
            .is_some_and(|c| !c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some())),
        Fault::LimitRange | Fault::Quota => mismatch,
    })
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    wait_for_value(what, || {
        let f = check();
        async move { Ok(f.await?.then_some(())) }
    })
    .await
}

async fn wait_for_value<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let timeout = wait::scaled(Duration::from_secs(300));
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_string(),
            Err(e) => e.to_string(),
        };
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Renews every node's Lease every 10 s, as a kubelet does, so the node
/// lifecycle controller keeps the nodes Ready once the simulation stopped.
fn keep_leases(client: kube::Client, nodes: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        let mut tick = tokio::time::interval(LEASE_RENEWAL);
        loop {
            tick.tick().await;
            let now = jiff::Timestamp::now();
            let renew = format!(
                "{}.{:06}Z",
                now.strftime("%Y-%m-%dT%H:%M:%S"),
                now.subsec_microsecond()
            );
            for n in &nodes {
                let patch = json!({"spec": {"renewTime": renew}});
                if let Err(e) = leases
                    .patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(node = %n, "renewing lease: {e}");
                }
            }
        }
    })
}

// --- measuring --------------------------------------------------------------

struct Run {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
    exit: i32,
}

impl Run {
    fn max_rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}

/// The argument that turns this binary into the measuring helper.
const MEASURE_CHILD: &str = "--measure-child";

/// Runs `cmd` with stdout and stderr to files, for its wall time, CPU time
/// and peak RSS, through a fresh exec of this binary (see [`measure_child`]).
///
/// Not spawned from here directly: Linux records the hiwater RSS of the
/// address space a process leaves at `exec` into its `ru_maxrss`, and a child
/// spawned from this process (vfork or fork) leaves a view of the bench's own
/// memory, hundreds of MiB with thousands of StatefulSets listed. The helper
/// is a new small process, so what `wait4` reports is the program's own peak.
async fn run_measured(cmd: Command, stdout: PathBuf, stderr: PathBuf) -> Result<Run> {
    let result = stdout.with_extension("rusage");
    let mut helper = Command::new(std::env::current_exe()?);
    helper
        .arg(MEASURE_CHILD)
        .arg(&stdout)
        .arg(&stderr)
        .arg(&result)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => helper.env(k, v),
            None => helper.env_remove(k),
        };
    }
    let status = tokio::task::spawn_blocking(move || helper.status()).await??;
    if !status.success() {
        bail!(
            "the measuring helper failed ({status}); see {}",
            stderr.display()
        );
    }
    let text = std::fs::read_to_string(&result)?;
    let f: Vec<i64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: {text:?}", result.display()))?;
    let [wall_ns, cpu_us, max_rss_kib, exit] = f[..] else {
        bail!("{}: {text:?}", result.display());
    };
    Ok(Run {
        wall: Duration::from_nanos(wall_ns as u64),
        cpu: Duration::from_micros(cpu_us as u64),
        max_rss_kib,
        exit: exit as i32,
    })
}

/// The helper: `scale-bench --measure-child STDOUT STDERR RESULT -- PROGRAM
/// ARGS...` runs PROGRAM, reaps it with `wait4`, and writes `wall_ns cpu_us
/// max_rss_kib exit_code` to RESULT.
#[allow(unsafe_code)] // wait4(2) for the child's rusage: see the SAFETY notes below
fn measure_child(args: &[String]) -> Result<()> {
    let [stdout, stderr, result, sep, program, rest @ ..] = args else {
        bail!("usage: {MEASURE_CHILD} STDOUT STDERR RESULT -- PROGRAM ARGS...");
    };
    if sep != "--" {
        bail!("usage: {MEASURE_CHILD} STDOUT STDERR RESULT -- PROGRAM ARGS...");
    }
    let start = Instant::now();
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(File::create(stdout)?)
        .stderr(File::create(stderr)?)
        .spawn()
        .with_context(|| format!("spawn {program}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child, not reaped yet; the pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(anyhow::Error::new(err).context("wait4"));
        }
    }
    let wall = start.elapsed();
    // Reaped above; the handle has nothing left to wait for.
    drop(child);
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    };
    let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    std::fs::write(
        result,
        format!(
            "{} {} {} {exit}\n",
            wall.as_nanos(),
            us(usage.ru_utime) + us(usage.ru_stime),
            usage.ru_maxrss
        ),
    )?;
    Ok(())
}

fn audit_offset(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

/// Requests of `user` in the audit log after `offset`, by `verb resource`.
async fn audit_counts(path: &Path, offset: u64, user: &str) -> Result<BTreeMap<String, u64>> {
    // The ResponseComplete event is written as the response finishes, which
    // can be just after the client saw it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if ev["user"]["username"].as_str() != Some(user) || ev["stage"] != "ResponseComplete" {
            continue;
        }
        let verb = ev["verb"].as_str().unwrap_or("?");
        let key = match ev["objectRef"]["resource"].as_str() {
            Some(res) => match ev["objectRef"]["subresource"].as_str() {
                Some(sub) => format!("{verb} {res}/{sub}"),
                None => format!("{verb} {res}"),
            },
            None => {
                let uri = ev["requestURI"].as_str().unwrap_or("?");
                format!("{verb} {}", uri.split('?').next().unwrap_or(uri))
            }
        };
        *out.entry(key).or_default() += 1;
    }
    Ok(out)
}

/// `apiserver_request_total` by `VERB resource[/subresource]` (resource
/// requests only; discovery and /metrics are left out).
async fn metrics(client: &kube::Client) -> Result<BTreeMap<String, i64>> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(parse_metrics(&text))
}

fn parse_metrics(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let labels = parse_labels(labels);
        let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        let resource = get("resource");
        if resource.is_empty() {
            continue;
        }
        let key = match get("subresource") {
            "" => format!("{} {resource}", get("verb")),
            sub => format!("{} {resource}/{sub}", get("verb")),
        };
        *out.entry(key).or_default() += value as i64;
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

fn delta(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_metrics() {
        let text = "# HELP apiserver_request_total x\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"statefulsets\",scope=\"cluster\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 3\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"statefulsets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 2\n\
            apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 7\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"\",scope=\"\",subresource=\"/metrics\",verb=\"GET\",version=\"\"} 9\n";
        let m = parse_metrics(text);
        assert_eq!(m.get("LIST statefulsets"), Some(&5));
        assert_eq!(m.get("PATCH pods/status"), Some(&7));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn failing_layout_spreads_every_kind() {
        let l = Layout::new(2000, 50, 4.0);
        assert_eq!(l.failing.len(), 80);
        for f in Fault::ALL {
            assert!(l.of(f).count() >= 13, "{f:?}");
        }
        let mut idx: Vec<usize> = l.failing.iter().map(|(i, _)| *i).collect();
        idx.dedup();
        assert_eq!(idx.len(), 80);
        let small = Layout::new(20, 50, 4.0);
        assert_eq!(small.failing.len(), 6);
        assert_eq!(small.namespaces(), 1);
    }

    #[test]
    fn fault_patches_label_the_template() {
        let p = Fault::CrashLoop.patch();
        assert_eq!(p["metadata"]["labels"][FAULT_LABEL], "crash-loop");
        assert_eq!(
            p["spec"]["template"]["metadata"]["labels"][FAULT_LABEL],
            "crash-loop"
        );
        assert_eq!(
            p["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example/app:2-crash"
        );
        let p = Fault::NeverReady.patch();
        assert_eq!(
            p["spec"]["template"]["metadata"]["annotations"]["e2e.stsmend.io/fault"],
            "never-ready"
        );
    }
}
