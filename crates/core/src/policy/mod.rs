//! Decide: turn a failing StatefulSet's facts and findings into an ordered
//! plan of actions, by a policy written in Rhai (docs/policies.md).
//!
//! Policies are compiled once per run ([`Policies::load`]) and evaluated per
//! StatefulSet in a sandbox ([`engine`]). Each gets a compact, read-only view
//! of the StatefulSet ([`View`]) and returns actions from a fixed vocabulary
//! ([`Action`]); what it considered is kept as a trace ([`Step`]). A policy
//! that fails yields no actions for that StatefulSet and a report entry
//! ([`PolicyError`]) naming the file, line and column.

pub mod action;
pub mod engine;
pub mod error;
mod returns;
pub mod select;
pub mod trace;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use rhai::Engine;
use serde::Serialize;

pub use action::{Action, PatchType, SyncRef};
pub use engine::SandboxLimits;
pub use error::{ErrorKind, PolicyError};
pub use select::{Header, PolicyInfo};
pub use trace::{Status, Step};
pub use view::{RunContext, View};

use engine::{Compiled, LadderRef};

/// The default ladder, built into the binary; a `ladder.rhai` among the
/// loaded policies replaces it.
pub const LADDER_SOURCE: &str = include_str!("../../../../policies/ladder.rhai");
pub const LADDER: &str = "ladder";
const LADDER_FILE: &str = "policies/ladder.rhai (built in)";

pub use crate::config::{POLICY_ANNOTATION, ROLLBACK_UNSAFE_ANNOTATION};

/// The plan for one StatefulSet and how it came about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The policy that decided: `ladder` or a team policy's name.
    pub policy: String,
    pub file: String,
    /// Why this policy: the annotation, the header's namespace or selector,
    /// or the default.
    pub selected_by: String,
    /// The rung whose actions are the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rung: Option<String>,
    /// In order. Empty when the policy failed.
    pub actions: Vec<Action>,
    pub trace: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<PolicyError>,
}

impl Decision {
    /// Mutating actions in the plan: what the guards' budget counts.
    pub fn writes(&self) -> usize {
        self.actions.iter().filter(|a| a.is_mutating()).count()
    }
}

#[derive(Debug)]
enum Entry {
    Ready(Arc<Compiled>),
    Broken {
        name: String,
        file: String,
        header: Header,
        // Boxed: an error is much larger than the common Ready entry.
        error: Box<PolicyError>,
    },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Ready(c) => &c.name,
            Entry::Broken { name, .. } => name,
        }
    }
    fn file(&self) -> &str {
        match self {
            Entry::Ready(c) => &c.file,
            Entry::Broken { file, .. } => file,
        }
    }
    fn header(&self) -> &Header {
        match self {
            Entry::Ready(c) => &c.header,
            Entry::Broken { header, .. } => header,
        }
    }
    fn info(&self) -> PolicyInfo {
        let h = self.header();
        PolicyInfo {
            name: self.name().to_string(),
            file: self.file().to_string(),
            description: h.description.clone(),
            namespaces: h.namespaces.clone(),
            selector: h.selector.as_ref().map(|s| s.as_query().to_string()),
            error: match self {
                Entry::Broken { error, .. } => Some((**error).clone()),
                Entry::Ready(_) => None,
            },
        }
    }
}

/// Where the policies came from decides how a broken one is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--policies` on the command line: a policy that cannot be loaded
    /// stops the run before anything is read (exit code 2), and one that
    /// fails on a StatefulSet makes the exit code 2.
    CommandLine,
    /// The config file's `policies` (in-cluster, a mounted ConfigMap): a
    /// broken policy only costs the StatefulSets it decides for.
    Config,
}

/// The policies of a run: compiled once, shared by every StatefulSet.
pub struct Policies {
    engine: Engine,
    limits: SandboxLimits,
    ladder: Entry,
    /// Team policies, by name.
    team: Vec<Entry>,
    annotation: String,
    origin: Option<Origin>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("ladder", &self.ladder)
            .field("team", &self.team)
            .field("annotation", &self.annotation)
            .field("origin", &self.origin)
            .finish()
    }
}

impl Policies {
    /// The built-in ladder alone.
    pub fn builtin() -> Self {
        Self::with_limits(SandboxLimits::default())
    }

    pub fn with_limits(limits: SandboxLimits) -> Self {
        let engine = engine::new_engine(&limits);
        let ladder = load_text(&engine, LADDER, LADDER_FILE, LADDER_SOURCE);
        Self {
            engine,
            limits,
            ladder,
            team: Vec::new(),
            annotation: POLICY_ANNOTATION.to_string(),
            origin: None,
        }
    }

    /// Loads a policy file, or every `.rhai` file of a directory (not its
    /// subdirectories). A file named `ladder.rhai` replaces the built-in
    /// ladder. From the command line, the first policy that cannot be
    /// loaded is the error.
    pub fn load(path: &Path, origin: Origin) -> Result<Self, PolicyError> {
        Self::load_with_limits(path, origin, SandboxLimits::default())
    }

    pub fn load_with_limits(
        path: &Path,
        origin: Origin,
        limits: SandboxLimits,
    ) -> Result<Self, PolicyError> {
        let mut policies = Self::with_limits(limits);
        policies.origin = Some(origin);
        let io = |p: &Path, e: std::io::Error| {
            PolicyError::new(&p.display().to_string(), ErrorKind::Io, e.to_string())
        };
        let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
        let files: Vec<PathBuf> = if meta.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
                let p = entry.map_err(|e| io(path, e))?.path();
                if p.extension().is_some_and(|e| e == "rhai") && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(PolicyError::new(
                    &path.display().to_string(),
                    ErrorKind::Io,
                    "the directory holds no .rhai policy",
                ));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let shown = file.display().to_string();
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let entry = match std::fs::read_to_string(&file) {
                Ok(text) => load_text(&policies.engine, &name, &shown, &text),
                Err(e) => Entry::Broken {
                    name: name.clone(),
                    file: shown.clone(),
                    header: Header::default(),
                    error: Box::new(io(&file, e)),
                },
            };
            policies.add(entry, origin)?;
        }
        Ok(policies)
    }

    /// Policies from text, each named and shown as `NAME.rhai`: for tests
    /// and for programs that keep policies elsewhere than in files.
    pub fn from_sources(sources: &[(&str, &str)], origin: Origin) -> Result<Self, PolicyError> {
        Self::from_sources_with_limits(sources, origin, SandboxLimits::default())
    }

    pub fn from_sources_with_limits(
        sources: &[(&str, &str)],
        origin: Origin,
        limits: SandboxLimits,
    ) -> Result<Self, PolicyError> {
        let mut policies = Self::with_limits(limits);
        policies.origin = Some(origin);
        for (name, text) in sources {
            let entry = load_text(&policies.engine, name, &format!("{name}.rhai"), text);
            policies.add(entry, origin)?;
        }
        Ok(policies)
    }

    fn add(&mut self, entry: Entry, origin: Origin) -> Result<(), PolicyError> {
        if let (Origin::CommandLine, Entry::Broken { error, .. }) = (origin, &entry) {
            return Err((**error).clone());
        }
        if entry.name() == LADDER {
            self.ladder = entry;
        } else {
            self.team.retain(|e| e.name() != entry.name());
            self.team.push(entry);
            self.team.sort_by(|a, b| a.name().cmp(b.name()));
        }
        Ok(())
    }

    /// The annotation that names a StatefulSet's policy.
    pub fn set_annotation(&mut self, key: impl Into<String>) -> &mut Self {
        self.annotation = key.into();
        self
    }

    pub fn origin(&self) -> Option<Origin> {
        self.origin
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// Stops every evaluation still running at `at` (the run's deadline
    /// for deciding).
    pub fn set_deadline(&mut self, at: std::time::Instant) -> &mut Self {
        self.limits.deadline = Some(at);
        self
    }

    /// The loaded policies, the ladder first.
    pub fn infos(&self) -> Vec<PolicyInfo> {
        std::iter::once(&self.ladder)
            .chain(&self.team)
            .map(Entry::info)
            .collect()
    }

    fn select(&self, sts: &StatefulSet) -> Result<(&Entry, String), PolicyError> {
        let meta = &sts.metadata;
        if let Some(name) = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(&self.annotation))
        {
            let by = format!("annotation {}={name}", self.annotation);
            if name == LADDER {
                return Ok((&self.ladder, by));
            }
            let namespace = meta.namespace.as_deref().unwrap_or_default();
            return match self.team.iter().find(|e| e.name() == name) {
                Some(e) => {
                    let scope = &e.header().namespaces;
                    if scope.is_empty() || scope.iter().any(|n| n == namespace) {
                        Ok((e, by))
                    } else {
                        Err(PolicyError::new(
                            &format!("annotation {}", self.annotation),
                            ErrorKind::OutOfScope,
                            format!(
                                "the StatefulSet names policy {name:?}, whose @namespaces ({}) leave out namespace {namespace:?} (header of {})",
                                scope.join(", "),
                                e.file()
                            ),
                        ))
                    }
                }
                None => {
                    let known: Vec<&str> = std::iter::once(LADDER)
                        .chain(self.team.iter().map(Entry::name))
                        .collect();
                    Err(PolicyError::new(
                        &format!("annotation {}", self.annotation),
                        ErrorKind::UnknownPolicy,
                        format!(
                            "the StatefulSet names policy {name:?}, which is not loaded (loaded: {})",
                            known.join(", ")
                        ),
                    ))
                }
            };
        }
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        for entry in &self.team {
            if let Some(why) = entry.header().matches(namespace, meta.labels.as_ref()) {
                return Ok((entry, format!("{why} (header of {})", entry.file())));
            }
        }
        Ok((
            &self.ladder,
            "default: no team policy selects it".to_string(),
        ))
    }

    fn ladder_ref(&self) -> LadderRef {
        match &self.ladder {
            Entry::Ready(c) => Ok(c.clone()),
            Entry::Broken { error, .. } => Err((**error).clone()),
        }
    }

    /// The plan for one failing StatefulSet.
    pub fn decide(
        &self,
        facts: &crate::facts::Facts,
        detection: &crate::detect::Detection,
        findings: &[crate::diagnose::Finding],
        run: &RunContext,
    ) -> Decision {
        let view = Arc::new(View::new(facts, detection, findings, run));
        self.decide_view(&facts.stateful_set, &view)
    }

    /// The plan from a view built beforehand: a view can be reused, say to
    /// evaluate again after a policy change, or in a benchmark.
    pub fn decide_view(&self, sts: &StatefulSet, view: &Arc<View>) -> Decision {
        let (entry, selected_by) = match self.select(sts) {
            Ok(s) => s,
            Err(error) => {
                return Decision {
                    policy: String::new(),
                    file: error.file.clone(),
                    selected_by: String::new(),
                    rung: None,
                    actions: Vec::new(),
                    trace: Vec::new(),
                    error: Some(error),
                };
            }
        };
        let compiled = match entry {
            Entry::Ready(c) => c,
            Entry::Broken {
                name, file, error, ..
            } => {
                return Decision {
                    policy: name.clone(),
                    file: file.clone(),
                    selected_by,
                    rung: None,
                    actions: Vec::new(),
                    trace: Vec::new(),
                    error: Some((**error).clone()),
                };
            }
        };
        let is_ladder = std::ptr::eq(entry, &self.ladder);
        let ladder = (!is_ladder).then(|| self.ladder_ref());
        let evaluation = engine::evaluate(&self.engine, &self.limits, compiled, view, ladder);
        let (actions, error) = match evaluation.result {
            Ok(actions) => (actions, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Decision {
            policy: compiled.name.clone(),
            file: compiled.file.clone(),
            selected_by,
            rung: if error.is_some() {
                None
            } else {
                evaluation.rung
            },
            actions,
            trace: evaluation.steps,
            error,
        }
    }
}

fn load_text(engine: &Engine, name: &str, file: &str, text: &str) -> Entry {
    let header = match Header::parse(file, text) {
        Ok(h) => h,
        Err(error) => {
            return Entry::Broken {
                name: name.to_string(),
                file: file.to_string(),
                header: Header::default(),
                error: Box::new(error),
            };
        }
    };
    match engine::compile(engine, name, file, text, header.clone()) {
        Ok(c) => Entry::Ready(Arc::new(c)),
        Err(error) => Entry::Broken {
            name: name.to_string(),
            file: file.to_string(),
            header,
            error: Box::new(error),
        },
    }
}

#[cfg(test)]
mod docs_check;
#[cfg(test)]
mod tests;
