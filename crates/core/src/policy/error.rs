//! What can go wrong with a policy, always said with the file, line and
//! column, so whoever wrote the policy can go straight to the mistake.

use std::fmt;

use rhai::{EvalAltResult, ParseError, Position};
use serde::Serialize;

use super::returns::ReturnSite;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The file cannot be read.
    Io,
    /// A `//! @...` directive in the header is malformed.
    Header,
    /// Rhai cannot parse the policy; found when policies are loaded, before
    /// any StatefulSet is looked at.
    Syntax,
    /// The policy failed while it ran: an unknown function, a type mismatch,
    /// a `throw`.
    Runtime,
    /// A sandbox limit stopped the policy: operations, call depth, sizes.
    Limit,
    /// The policy returned something other than an array of actions.
    ReturnType,
    /// An action or policy API call with wrong arguments: a revision that
    /// does not exist, a pod of another StatefulSet, a missing why.
    InvalidAction,
    /// A StatefulSet's annotation names a policy that is not loaded.
    UnknownPolicy,
    /// A StatefulSet's annotation names a policy whose `@namespaces` leave
    /// its namespace out: a tenant cannot pick another team's policy.
    OutOfScope,
    /// The run's deadline passed while the policy ran: nothing decided for
    /// that StatefulSet this run.
    Deadline,
}

impl ErrorKind {
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::Io => "cannot read policy",
            ErrorKind::Header => "bad policy header",
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Runtime => "runtime error",
            ErrorKind::Limit => "sandbox limit exceeded",
            ErrorKind::ReturnType => "wrong return type",
            ErrorKind::InvalidAction => "invalid action",
            ErrorKind::UnknownPolicy => "unknown policy",
            ErrorKind::OutOfScope => "policy out of scope",
            ErrorKind::Deadline => "run deadline passed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// One policy failure. `Display` reads like a compiler's:
/// `policies/team.rhai:12:5: runtime error: ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{}: {kind}: {message}", self.location())]
pub struct PolicyError {
    /// The policy file, as given, or `policies/ladder.rhai (built in)`.
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub kind: ErrorKind,
    pub message: String,
}

impl PolicyError {
    pub fn new(file: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: None,
            column: None,
            kind,
            message: message.into(),
        }
    }

    pub fn at(mut self, pos: Position) -> Self {
        self.line = pos.line();
        self.column = pos.position();
        self
    }

    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// `file:line:column`, or as much of it as is known.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }

    pub fn syntax(file: &str, err: &ParseError) -> Self {
        // ParseError's own Display appends "(line x, position y)"; the
        // location is ours to print, so only the error type is kept.
        Self::new(file, ErrorKind::Syntax, err.err_type().to_string()).at(err.position())
    }

    /// Turns an evaluation error into a report entry at the innermost
    /// position, naming the functions it happened in.
    pub fn from_eval(file: &str, err: &EvalAltResult, limits: &super::SandboxLimits) -> Self {
        let mut calls = Vec::new();
        let mut inner = err;
        while let EvalAltResult::ErrorInFunctionCall(name, _, next, pos) = inner {
            calls.push(call_site(name, *pos));
            inner = next;
        }
        let (kind, message) = classify(inner, limits);
        let message = if calls.is_empty() {
            message
        } else {
            format!("{message} (in {})", calls.join(", in "))
        };
        Self::new(file, kind, message).at(inner.position())
    }

    /// A returned value that is not an array of actions.
    pub fn return_type(file: &str, message: String, sites: &[&ReturnSite]) -> Self {
        let Some(first) = sites.first() else {
            return Self::new(file, ErrorKind::ReturnType, message);
        };
        let message = if sites.len() > 1 {
            let others: Vec<String> = sites[1..]
                .iter()
                .map(|s| {
                    format!(
                        "{}:{}",
                        s.pos.line().unwrap_or(0),
                        s.pos.position().unwrap_or(0)
                    )
                })
                .collect();
            format!("{message} (returned here or at {})", others.join(", "))
        } else {
            message
        };
        Self::new(file, ErrorKind::ReturnType, message).at(first.pos)
    }
}

fn call_site(name: &str, pos: Position) -> String {
    let shown = if name.starts_with("anon$") {
        "a closure".to_string()
    } else {
        format!("fn {name}")
    };
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{shown} called at {l}:{c}"),
        _ => shown,
    }
}

/// The marker a policy API function raises for a call with wrong arguments,
/// so the report can tell an invalid action from any other runtime error.
#[derive(Debug, Clone)]
pub struct ApiError(pub String);

impl ApiError {
    pub fn raise<T>(message: impl Into<String>) -> Result<T, Box<EvalAltResult>> {
        Err(Box::new(EvalAltResult::ErrorRuntime(
            rhai::Dynamic::from(ApiError(message.into())),
            Position::NONE,
        )))
    }
}

fn classify(err: &EvalAltResult, limits: &super::SandboxLimits) -> (ErrorKind, String) {
    use EvalAltResult as E;
    match err {
        E::ErrorTooManyOperations(_) => (
            ErrorKind::Limit,
            format!(
                "more than {} operations: an endless or very long loop?",
                limits.operations
            ),
        ),
        E::ErrorTerminated(value, _) if value.is::<super::engine::PastDeadline>() => (
            ErrorKind::Deadline,
            "the run's deadline passed while the policy ran: nothing is decided for this StatefulSet this run; the next run decides again".to_string(),
        ),
        E::ErrorTerminated(value, _) if value.is::<super::engine::OverTime>() => (
            ErrorKind::Limit,
            format!(
                "ran longer than {} ms: copies of large maps or arrays, or a very long loop?",
                limits.time.as_millis()
            ),
        ),
        E::ErrorStackOverflow(_) => (
            ErrorKind::Limit,
            format!(
                "calls nested deeper than {}: unbounded recursion?",
                limits.call_depth
            ),
        ),
        E::ErrorDataTooLarge(what, _) => (
            ErrorKind::Limit,
            format!(
                "{what} exceeds the sandbox limit (strings {} bytes, arrays {} items, maps {} entries)",
                limits.string_size, limits.array_size, limits.map_size
            ),
        ),
        E::ErrorTooManyVariables(_) => (
            ErrorKind::Limit,
            format!("more than {} variables", limits.variables),
        ),
        E::ErrorTooManyModules(_) | E::ErrorModuleNotFound(..) => (
            ErrorKind::Runtime,
            "policies cannot import modules".to_string(),
        ),
        E::ErrorRuntime(value, _) if value.is::<ApiError>() => {
            let ApiError(message) = value.clone().cast::<ApiError>();
            (ErrorKind::InvalidAction, message)
        }
        E::ErrorRuntime(value, _) => (ErrorKind::Runtime, format!("thrown: {value}")),
        E::ErrorParsing(p, _) => (ErrorKind::Syntax, p.to_string()),
        other => {
            // Rhai's Display appends the position; ours is in the location.
            let text = other.to_string();
            let text = match text.rfind(" (line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (ErrorKind::Runtime, text)
        }
    }
}
