//! Which cluster a test runs against, chosen at run time with `E2E_BACKEND`:
//!
//! - `local` (the default): [`ControlPlane`], the v1.20.2 control plane as
//!   child processes on loopback with simulated kubelets;
//! - `k3s` (needs `--features k3s` and a reachable Docker engine):
//!   [`k3s::K3s`], a real single-node k3s cluster (v1.33) in a container,
//!   with a real kubelet and containerd.
//!
//! [`AnyCluster`] is what both can do; a test written against it runs on
//! either. Chaos on individual components is only possible on the local
//! backend ([`AnyCluster::as_local`]).

use std::path::{Path, PathBuf};

use crate::control_plane::ControlPlane;
use crate::error::{Error, Result};

#[cfg(feature = "k3s")]
#[path = "k3s.rs"]
pub mod k3s;

#[cfg(feature = "k3s")]
pub use k3s::K3s;

/// The environment variable that selects the backend.
pub const ENV: &str = "E2E_BACKEND";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// etcd, kube-apiserver, kube-controller-manager, kube-scheduler on
    /// loopback, nodes simulated.
    Local,
    /// k3s in a Docker container (feature `k3s`).
    K3s,
}

impl Backend {
    /// Reads `E2E_BACKEND`; see [`Backend::parse`].
    pub fn from_env() -> Result<Backend> {
        match std::env::var_os(ENV) {
            None => Self::parse(None),
            Some(v) => Self::parse(Some(&v.to_string_lossy())),
        }
    }

    /// Unset, empty or `local` is [`Backend::Local`]; `k3s` is
    /// [`Backend::K3s`] when this build has the `k3s` feature. Anything else,
    /// and `k3s` without the feature, is [`Error::UnknownBackend`], whose
    /// message says how to fix it.
    pub fn parse(value: Option<&str>) -> Result<Backend> {
        match value.map(str::trim) {
            None | Some("") | Some("local") => Ok(Backend::Local),
            Some("k3s") if cfg!(feature = "k3s") => Ok(Backend::K3s),
            Some(other) => Err(Error::UnknownBackend(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::K3s => "k3s",
        }
    }

    /// Starts a cluster of this backend with default options.
    pub async fn start(self) -> Result<AnyCluster> {
        match self {
            Backend::Local => Ok(AnyCluster::Local(ControlPlane::start().await?)),
            #[cfg(feature = "k3s")]
            Backend::K3s => Ok(AnyCluster::K3s(K3s::start().await?)),
            #[cfg(not(feature = "k3s"))]
            Backend::K3s => Err(Error::UnknownBackend(self.name().to_string())),
        }
    }
}

/// A running cluster of either backend. Dropping it tears the cluster down
/// and keeps its logs; [`AnyCluster::shutdown`] at the end of a passing test
/// drops them.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per test, moved only to start and shut down"
)]
pub enum AnyCluster {
    Local(ControlPlane),
    #[cfg(feature = "k3s")]
    K3s(K3s),
}

impl AnyCluster {
    pub fn backend(&self) -> Backend {
        match self {
            AnyCluster::Local(_) => Backend::Local,
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(_) => Backend::K3s,
        }
    }

    /// The local control plane, for what only it can do (stopping
    /// components, static token users).
    pub fn as_local(&self) -> Option<&ControlPlane> {
        match self {
            AnyCluster::Local(cp) => Some(cp),
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(_) => None,
        }
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        match self {
            AnyCluster::Local(cp) => cp.client(),
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.client(),
        }
    }

    pub fn server_url(&self) -> String {
        match self {
            AnyCluster::Local(cp) => cp.server_url(),
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.server_url().to_string(),
        }
    }

    /// A kubeconfig file with admin rights (for kubectl or the agent).
    pub fn admin_kubeconfig(&self) -> &Path {
        match self {
            AnyCluster::Local(cp) => cp.admin_kubeconfig(),
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.admin_kubeconfig(),
        }
    }

    /// Scratch space that lives as long as the cluster.
    pub fn work_dir(&self) -> &Path {
        match self {
            AnyCluster::Local(cp) => cp.work_dir(),
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.work_dir(),
        }
    }

    /// Where the cluster's logs go (`e2e/logs/<name>/`).
    pub fn log_dir(&self) -> &Path {
        match self {
            AnyCluster::Local(cp) => cp.log_dir(),
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.log_dir(),
        }
    }

    /// Runs kubectl with the admin kubeconfig: the v1.20 one from the assets
    /// on the local backend, the one on PATH on k3s.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_with_stdin(args, None).await
    }

    /// `kubectl apply -f -` of a YAML or JSON manifest.
    pub async fn apply(&self, manifest: &str) -> Result<String> {
        self.kubectl_with_stdin(&["apply", "-f", "-"], Some(manifest))
            .await
    }

    pub async fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        match self {
            AnyCluster::Local(cp) => cp.kubectl_with_stdin(args, stdin).await,
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.kubectl_with_stdin(args, stdin).await,
        }
    }

    /// Writes a kubeconfig for a bearer token (e.g. a ServiceAccount's) into
    /// the work directory and returns its path.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        match self {
            AnyCluster::Local(cp) => cp.kubeconfig_for_token(name, token),
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.kubeconfig_for_token(name, token),
        }
    }

    /// Restarts the API server and waits until it serves again; k3s runs it
    /// inside one process with everything else, so there it is
    /// [`Error::Unsupported`].
    pub async fn restart_apiserver(&self) -> Result<()> {
        match self {
            AnyCluster::Local(cp) => cp.restart_apiserver().await,
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.restart_apiserver().await,
        }
    }

    /// The last line of a passing test: stops the cluster and removes its
    /// logs (unless `STSMEND_E2E_KEEP_LOGS` is set).
    pub async fn shutdown(self) {
        match self {
            AnyCluster::Local(cp) => cp.shutdown().await,
            #[cfg(feature = "k3s")]
            AnyCluster::K3s(k) => k.shutdown().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_empty_and_local_are_the_local_backend() {
        assert_eq!(Backend::parse(None).unwrap(), Backend::Local);
        assert_eq!(Backend::parse(Some("")).unwrap(), Backend::Local);
        assert_eq!(Backend::parse(Some("local")).unwrap(), Backend::Local);
        assert_eq!(Backend::parse(Some(" local\n")).unwrap(), Backend::Local);
    }

    #[test]
    fn an_unknown_backend_is_named_in_the_error() {
        for v in ["kind", "K3S", "local,k3s"] {
            let err = Backend::parse(Some(v)).unwrap_err();
            assert!(
                matches!(&err, Error::UnknownBackend(b) if b == v),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("E2E_BACKEND={v:?}")), "{msg}");
        }
    }

    #[test]
    fn k3s_is_known_exactly_when_compiled_in() {
        let parsed = Backend::parse(Some("k3s"));
        if cfg!(feature = "k3s") {
            assert_eq!(parsed.unwrap(), Backend::K3s);
        } else {
            let msg = parsed.unwrap_err().to_string();
            assert!(msg.contains("k3s needs --features k3s"), "{msg}");
        }
    }

    #[test]
    fn names_parse_back() {
        for b in [Backend::Local, Backend::K3s] {
            if b == Backend::K3s && !cfg!(feature = "k3s") {
                continue;
            }
            assert_eq!(Backend::parse(Some(b.name())).unwrap(), b);
        }
    }
}
