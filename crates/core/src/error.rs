//! The library's error type: every variant names the input it came from, so a
//! bad file, object or flag is reported where it is, never as a bare parse error.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code of a run stopped by its input: a file, flag, config or policy.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of a run that failed on its own: the API, a write, a deadline.
pub const EXIT_FAILURE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },

    #[error("{path}: document {document}: {message}")]
    Document {
        path: PathBuf,
        document: usize,
        message: String,
    },

    #[error("{path}: {object}: {message}")]
    Object {
        path: PathBuf,
        object: String,
        message: String,
    },

    #[error("invalid {what} {value:?}: {message}")]
    Invalid {
        what: &'static str,
        value: String,
        message: String,
    },

    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("config {path}: {source}")]
    ConfigSyntax {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },

    #[error("{path}: invalid YAML: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },

    #[error("{path}: invalid JSON at line {} column {}: {source}", .source.line(), .source.column())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A record the agent saved and cannot read back.
    #[error("cluster: {object}: {source}")]
    Record {
        object: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether the error is the user's input (exit code 2) rather than a failure
    /// of the run itself (exit code 3).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::Encode { .. })
    }

    /// The process exit code the error ends a run with.
    pub fn exit_code(&self) -> u8 {
        if self.is_bad_input() {
            EXIT_BAD_INPUT
        } else {
            EXIT_FAILURE
        }
    }

    pub fn encode(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Encode {
            what,
            source: Box::new(source),
        }
    }

    pub fn invalid(
        what: &'static str,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what,
            value: value.into(),
            message: message.into(),
        }
    }
}
