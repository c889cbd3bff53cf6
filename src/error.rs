//! The I/O layer's error: the core's errors (bad input, named where it is)
//! and what only talking to a cluster or the disk can fail with. Each keeps
//! its source, and [`Error::exit_code`] says how the process ends.

use std::path::PathBuf;

use stsmend_core::cases::CaseError;
pub use stsmend_core::error::{EXIT_BAD_INPUT, EXIT_FAILURE};
use stsmend_core::policy::PolicyError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] stsmend_core::Error),

    #[error(transparent)]
    Policy(#[from] PolicyError),

    #[error(transparent)]
    Case(#[from] CaseError),

    /// `what` names the kubeconfig file, the context or how the config was
    /// looked for.
    #[error("kubeconfig: {what}: {source}")]
    Kubeconfig {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("Kubernetes API: {context}: {source}")]
    Api {
        context: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// 2 when the input stopped the run (a file, flag, config, kubeconfig or
    /// policy), 3 when the run failed on its own.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Core(e) => e.exit_code(),
            Error::Policy(_) | Error::Case(_) | Error::Kubeconfig { .. } => EXIT_BAD_INPUT,
            Error::Api { .. } | Error::Write { .. } => EXIT_FAILURE,
        }
    }

    pub fn kubeconfig(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Kubeconfig {
            what: what.into(),
            source: Box::new(source),
        }
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
        Error::Core(stsmend_core::Error::invalid(what, value, message))
    }

    pub fn encode(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Core(stsmend_core::Error::encode(what, source))
    }

    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }
}
