//! `stsmend policy test DIR`: policy test cases, each a directory with a
//! `case.yaml` (what to run, what to expect) beside the input objects as
//! `kubectl get -o yaml` prints them. Every case runs the whole offline
//! pipeline, so a case tests the policy on what diagnosis really finds.
//!
//! ```yaml
//! description: crash loop after a template change rolls back
//! policies: ../../../ladder.rhai   # file or directory, relative to this file; default: built-in ladder
//! objects: [objects.yaml]          # default: every other .yaml/.yml/.json here
//! now: 2026-11-22T10:00:00Z
//! for: 10m                         # default: the config's, else 10m
//! config: {nodeGroups: []}         # the --config schema, inline
//! expect:
//! - statefulSet: shop/db
//!   policy: ladder                 # optional
//!   selectedBy: default            # optional, a substring
//!   rung: rollback                 # optional
//!   actions:                       # in order; keys given must match, `why` is a substring
//!   - {action: rollback, revision: 1, name: db-5d8f7c9b6d}
//!   trace:                         # optional: rung -> status, or "status: why substring"
//!     scale_nodes: "skipped: no pod is unschedulable"
//!   blocked: "substring"           # optional: what the guards hold the plan by ("none": admitted)
//!   error: "substring"             # expect a policy error instead of actions
//!   failing: false                 # expect no plan: the StatefulSet is not failing
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::config::Config;
use crate::duration::Span;
use crate::pipeline::{self, Settings};
use crate::policy::{Decision, Origin, Policies, Status};

/// The name of a case's description file.
pub const CASE_FILE: &str = "case.yaml";

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Syntax {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The case's objects, config or policies do not load.
    #[error("{path}: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: crate::Error,
    },
    #[error("{path}: policies: {source}")]
    Policies {
        path: PathBuf,
        #[source]
        source: crate::policy::PolicyError,
    },
    #[error("{0}: no {CASE_FILE} found in it or below")]
    Empty(PathBuf),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    policies: Option<PathBuf>,
    #[serde(default)]
    objects: Option<Vec<PathBuf>>,
    now: jiff::Timestamp,
    #[serde(default, rename = "for")]
    threshold: Option<Span>,
    #[serde(default)]
    config: Option<Config>,
    expect: Vec<Expectation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expectation {
    stateful_set: String,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    selected_by: Option<String>,
    #[serde(default)]
    rung: Option<String>,
    #[serde(default)]
    actions: Option<Vec<serde_json::Map<String, Value>>>,
    #[serde(default)]
    trace: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    blocked: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default = "yes")]
    failing: bool,
}

fn yes() -> bool {
    true
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: String,
    pub description: String,
    pub stateful_set: String,
    pub policy: String,
    pub rung: String,
    pub passed: bool,
    /// What differed, when it failed.
    pub problems: Vec<String>,
    /// The decision, shown with failures.
    pub decision: Option<Decision>,
}

#[derive(Debug, Clone, Default)]
pub struct Results {
    pub rows: Vec<Row>,
}

impl Results {
    pub fn passed(&self) -> usize {
        self.rows.iter().filter(|r| r.passed).count()
    }
    pub fn failed(&self) -> usize {
        self.rows.len() - self.passed()
    }

    /// The table `kyverno test` users know, then the failures in detail.
    pub fn render(&self, verbose: bool) -> String {
        let headers = ["ID", "CASE", "STATEFULSET", "POLICY", "RUNG", "RESULT"];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                [
                    (i + 1).to_string(),
                    r.case.clone(),
                    r.stateful_set.clone(),
                    r.policy.clone(),
                    r.rung.clone(),
                    if r.passed { "Pass" } else { "Fail" }.to_string(),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let rule = {
            let mut s = String::from("│");
            for w in widths {
                s.push_str(&"─".repeat(w + 2));
                s.push('│');
            }
            s
        };
        let line = |cols: &[String]| {
            let mut s = String::from("│");
            for (c, w) in cols.iter().zip(widths) {
                let _ = write!(s, " {c:<w$} │");
            }
            s
        };
        let mut out = String::new();
        let _ = writeln!(out, "{rule}");
        let _ = writeln!(out, "{}", line(&headers.map(String::from)));
        let _ = writeln!(out, "{rule}");
        for row in &cells {
            let _ = writeln!(out, "{}", line(row));
        }
        let _ = writeln!(out, "{rule}");
        for (i, r) in self.rows.iter().enumerate() {
            if r.passed && !verbose {
                continue;
            }
            let _ = writeln!(
                out,
                "\n{} {}: {} {}",
                i + 1,
                if r.passed { "PASS" } else { "FAIL" },
                r.case,
                r.stateful_set
            );
            if !r.description.is_empty() {
                let _ = writeln!(out, "  ({})", r.description);
            }
            for p in &r.problems {
                let _ = writeln!(out, "  - {p}");
            }
            if let Some(d) = &r.decision {
                let _ = writeln!(out, "  plan:");
                for a in &d.actions {
                    let _ = writeln!(out, "    {}", serde_json::to_string(a).unwrap_or_default());
                }
                if let Some(e) = &d.error {
                    let _ = writeln!(out, "    error: {e}");
                }
                let _ = writeln!(out, "  trace:");
                for s in &d.trace {
                    let _ = writeln!(
                        out,
                        "    {}/{}: {}: {}",
                        s.policy,
                        s.rung,
                        s.status.as_str(),
                        s.why
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\nSummary: {} passed, {} failed",
            self.passed(),
            self.failed()
        );
        out
    }
}

/// Every directory with a `case.yaml` under `dir` (or `dir` itself), sorted.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, CaseError> {
    let bad = |p: &Path, e: std::io::Error| CaseError::Invalid {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join(CASE_FILE).is_file() {
            found.push(d.clone());
        }
        for entry in std::fs::read_dir(&d).map_err(|e| bad(&d, e))? {
            let p = entry.map_err(|e| bad(&d, e))?.path();
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(CaseError::Empty(dir.to_path_buf()));
    }
    Ok(found)
}

/// Runs every case under `dir`. A case that cannot be read is an error;
/// a case whose expectations fail is a failed row.
pub fn run_dir(dir: &Path) -> Result<Results, CaseError> {
    let mut results = Results::default();
    for case in discover(dir)? {
        let label = case
            .strip_prefix(dir)
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(&case)
            .display()
            .to_string();
        results.rows.extend(run_case(dir, &case, &label)?);
    }
    Ok(results)
}

fn invalid(path: &Path, message: impl Into<String>) -> CaseError {
    CaseError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// `path` of the case's `objects:`, resolved in `dir`: only a file below
/// `root` (symbolic links resolved first), never an absolute path.
fn below(root: &Path, dir: &Path, case_path: &Path, path: &Path) -> Result<PathBuf, CaseError> {
    let refuse = |why: String| invalid(case_path, format!("objects: {}: {why}", path.display()));
    if path.is_absolute() {
        return Err(refuse(
            "is absolute; a case names its objects relative to its directory".into(),
        ));
    }
    let joined = dir.join(path);
    let (Ok(top), Ok(real)) = (root.canonicalize(), joined.canonicalize()) else {
        // Missing: loading it says so, naming the file.
        return Ok(joined);
    };
    if real.starts_with(&top) {
        Ok(joined)
    } else {
        Err(refuse(format!(
            "resolves outside {}, the directory under test (run policy test on one that holds both)",
            root.display()
        )))
    }
}

/// Runs one case directory.
///
/// Its files are read only below `root`, the directory `policy test` was
/// given: a case from an untrusted pull request cannot have it read and
/// quote `/proc/self/environ` or a kubeconfig.
pub fn run_case(root: &Path, dir: &Path, label: &str) -> Result<Vec<Row>, CaseError> {
    let case_path = dir.join(CASE_FILE);
    let text = std::fs::read_to_string(&case_path).map_err(|source| CaseError::Read {
        path: case_path.clone(),
        source,
    })?;
    let case: CaseFile = serde_saphyr::from_str(&text).map_err(|source| CaseError::Syntax {
        path: case_path.clone(),
        source: Box::new(source),
    })?;
    let mut config = case.config.unwrap_or_default();
    config.threshold = case.threshold.unwrap_or(config.threshold);
    config
        .validate(&case_path)
        .map_err(|source| CaseError::Input {
            path: case_path.clone(),
            source,
        })?;
    if case.expect.is_empty() {
        return Err(invalid(&case_path, "expect: at least one expectation"));
    }

    let objects = match &case.objects {
        Some(list) => list
            .iter()
            .map(|p| below(root, dir, &case_path, p))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(|source| CaseError::Read {
                path: dir.to_path_buf(),
                source,
            })? {
                let p = entry
                    .map_err(|source| CaseError::Read {
                        path: dir.to_path_buf(),
                        source,
                    })?
                    .path();
                let data = matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                );
                if let Some(name) = p.file_name().filter(|n| data && *n != CASE_FILE) {
                    files.push(below(root, dir, &case_path, Path::new(name))?);
                }
            }
            files.sort();
            files
        }
    };
    if objects.is_empty() {
        return Err(invalid(
            dir,
            "no input objects (objects: or .yaml files beside case.yaml)",
        ));
    }
    let mut inventory =
        crate::source::files::load(&objects).map_err(|source| CaseError::Input {
            path: case_path.clone(),
            source,
        })?;
    crate::caps::inventory(&mut inventory);

    let mut policies = match &case.policies {
        Some(p) if p.is_absolute() => {
            return Err(invalid(
                &case_path,
                format!(
                    "policies: {} is absolute; a case names its policies relative to its directory",
                    p.display()
                ),
            ));
        }
        Some(p) => {
            Policies::load(&dir.join(p), Origin::Config).map_err(|source| CaseError::Policies {
                path: case_path.clone(),
                source,
            })?
        }
        None => Policies::builtin(),
    };
    policies.set_annotation(config.policy_annotation.clone());

    let settings =
        Settings::new(&config, crate::scope::Scope::default(), case.now).map_err(|source| {
            CaseError::Input {
                path: case_path.clone(),
                source,
            }
        })?;
    // The agent's records, when the objects hold its state ConfigMap (a
    // rollback it remembers, a first sighting).
    let state = crate::state::State::in_inventory(&inventory, &config.state_namespace).map_err(
        |source| CaseError::Input {
            path: case_path.clone(),
            source,
        },
    )?;
    let outcome = pipeline::run(&inventory, state.as_ref(), &settings, &policies).outcome;

    Ok(case
        .expect
        .iter()
        .map(|e| {
            let mut row = check(label, e, &outcome);
            row.description = case.description.clone();
            row
        })
        .collect())
}

fn check(label: &str, e: &Expectation, outcome: &pipeline::Outcome) -> Row {
    let mut problems = Vec::new();
    let assessment = outcome.failing.iter().find(|a| a.id() == e.stateful_set);
    let decision = assessment.and_then(|a| a.plan.clone());
    let mut row = Row {
        case: label.to_string(),
        description: String::new(),
        stateful_set: e.stateful_set.clone(),
        policy: decision
            .as_ref()
            .map(|d| d.policy.clone())
            .unwrap_or_default(),
        rung: decision
            .as_ref()
            .and_then(|d| d.rung.clone())
            .unwrap_or_else(|| "-".into()),
        passed: false,
        problems: Vec::new(),
        decision: decision.clone(),
    };
    if !e.failing {
        if assessment.is_some() {
            problems.push("expected not failing (no plan), but it is failing".into());
        }
        row.passed = problems.is_empty();
        row.problems = problems;
        return row;
    }
    let Some(d) = decision else {
        let state = if outcome.pending.iter().any(|a| a.id() == e.stateful_set) {
            "pending (its symptom has not held for --for)"
        } else if outcome
            .exempt
            .iter()
            .any(|x| format!("{}/{}", x.namespace, x.name) == e.stateful_set)
        {
            "exempt"
        } else {
            "healthy or absent"
        };
        row.problems = vec![format!("expected a plan, but the StatefulSet is {state}")];
        return row;
    };
    if let Some(p) = &e.policy
        && *p != d.policy
    {
        problems.push(format!("policy: expected {p}, got {}", d.policy));
    }
    if let Some(want) = &e.selected_by
        && !d.selected_by.contains(want.as_str())
    {
        problems.push(format!(
            "selectedBy: expected one containing {want:?}, got {:?}",
            d.selected_by
        ));
    }
    if let Some(r) = &e.rung
        && Some(r) != d.rung.as_ref()
    {
        problems.push(format!(
            "rung: expected {r}, got {}",
            d.rung.as_deref().unwrap_or("none")
        ));
    }
    match (&e.error, &d.error) {
        (Some(want), Some(got)) if !got.to_string().contains(want.as_str()) => problems.push(
            format!("error: expected one containing {want:?}, got {got}"),
        ),
        (Some(want), None) => {
            problems.push(format!("error: expected one containing {want:?}, got none"))
        }
        (None, Some(got)) => problems.push(format!("unexpected policy error: {got}")),
        _ => {}
    }
    check_blocked(e.blocked.as_deref(), assessment, &mut problems);
    if let Some(expected) = &e.actions {
        compare_actions(expected, &d.actions, &mut problems);
    } else if e.error.is_none() {
        problems
            .push("actions: the expectation lists no actions (use `actions: []` for none)".into());
    }
    for (rung, want) in &e.trace {
        let (status, why) = match want.split_once(':') {
            Some((s, w)) => (s.trim(), Some(w.trim())),
            None => (want.trim(), None),
        };
        let Some(step) = d.trace.iter().find(|s| s.rung == *rung) else {
            problems.push(format!("trace: no step for rung {rung}"));
            continue;
        };
        let status_ok = match status.replace('_', " ").as_str() {
            "chosen" => step.status == Status::Chosen,
            "skipped" => step.status == Status::Skipped,
            "not reached" => step.status == Status::NotReached,
            "overridden" => step.status == Status::Overridden,
            other => {
                problems.push(format!("trace: {rung}: unknown status {other:?}"));
                continue;
            }
        };
        if !status_ok {
            problems.push(format!(
                "trace: {rung}: expected {status}, got {} ({})",
                step.status.as_str(),
                step.why
            ));
        } else if let Some(w) = why
            && !step.why.contains(w)
        {
            problems.push(format!(
                "trace: {rung}: why {:?} does not contain {w:?}",
                step.why
            ));
        }
    }
    row.passed = problems.is_empty();
    row.problems = problems;
    row
}

/// `blocked:` of a case: a substring of what the guards hold the plan by,
/// or `none` for a plan they admit.
fn check_blocked(want: Option<&str>, a: Option<&pipeline::Assessment>, problems: &mut Vec<String>) {
    let Some(want) = want else { return };
    let got = a
        .and_then(|a| a.gate.as_ref())
        .and_then(|g| g.blocked.as_ref())
        .map(|b| b.describe());
    match (want, got) {
        ("none", None) => {}
        ("none", Some(got)) => problems.push(format!("blocked: expected none, got {got}")),
        (want, None) => problems.push(format!(
            "blocked: expected one containing {want:?}, got none (admitted)"
        )),
        (want, Some(got)) if !got.contains(want) => problems.push(format!(
            "blocked: expected one containing {want:?}, got {got}"
        )),
        _ => {}
    }
}

fn compare_actions(
    expected: &[serde_json::Map<String, Value>],
    actual: &[crate::policy::Action],
    problems: &mut Vec<String>,
) {
    if expected.len() != actual.len() {
        problems.push(format!(
            "actions: expected {}, got {}: {}",
            expected.len(),
            actual.len(),
            actual
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return;
    }
    for (i, (want, got)) in expected.iter().zip(actual).enumerate() {
        let got = serde_json::to_value(got).unwrap_or_default();
        if !want.contains_key("action") {
            problems.push(format!("actions[{i}]: the expectation needs `action`"));
        }
        for (key, value) in want {
            let actual = got.get(key).unwrap_or(&Value::Null);
            let ok = if key == "why" {
                match (value.as_str(), actual.as_str()) {
                    (Some(w), Some(a)) => a.contains(w),
                    _ => false,
                }
            } else {
                actual == value
            };
            if !ok {
                problems.push(format!(
                    "actions[{i}].{key}: expected {value}, got {actual}"
                ));
            }
        }
    }
}
