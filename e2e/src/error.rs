use std::path::PathBuf;
use std::time::Duration;

/// Everything the harness can fail with. Tests usually wrap it in `anyhow`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "control-plane binary `{name}` not found or not executable in {dir} \
         (set STSMEND_E2E_ASSETS, or run scripts/control-plane.sh to build the cache)"
    )]
    AssetMissing { name: &'static str, dir: PathBuf },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("openssl {step} failed: {stderr}")]
    Openssl { step: &'static str, stderr: String },

    #[error("{component} exited unexpectedly ({status}); last lines of {log}:\n{tail}")]
    ComponentExited {
        component: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("timed out after {after:?} waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },

    #[error(transparent)]
    Kube(#[from] kube::Error),

    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    #[error("kubectl {args} failed: {stderr}")]
    Kubectl { args: String, stderr: String },

    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        operation: &'static str,
        backend: &'static str,
    },

    #[error("E2E_BACKEND={0:?} is not a backend this build knows (local{k3s})", k3s = if cfg!(feature = "k3s") { ", k3s" } else { "; k3s needs --features k3s" })]
    UnknownBackend(String),

    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
