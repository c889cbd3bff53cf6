//! The library's error type: every variant names the input it came from, so a
//! bad file, object or flag is reported where it is, never as a bare parse error.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

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

    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("kubeconfig: {0}")]
    Kubeconfig(String),

    #[error("Kubernetes API: {context}: {source}")]
    Api {
        context: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("encoding {what}: {message}")]
    Encode { what: &'static str, message: String },
}

impl Error {
    /// Whether the error is the user's input (exit code 2) rather than a failure
    /// of the run itself (exit code 3).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::Api { .. } | Error::Encode { .. })
    }

    pub fn api(context: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            context: context.into(),
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
