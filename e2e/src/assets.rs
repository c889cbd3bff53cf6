//! Where the control-plane binaries live: `STSMEND_E2E_ASSETS` (like envtest's
//! KUBEBUILDER_ASSETS), else the cache scripts/control-plane.sh fills.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The Kubernetes version scripts/control-plane.sh builds; part of the cache key.
pub const K8S_VERSION: &str = "1.20.2";
/// Bumped with `BUILD` in scripts/control-plane.sh when the build changes.
pub const BUILD: u32 = 2;

/// Names of the binaries a local control plane needs.
pub const BINARIES: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
];

#[derive(Debug, Clone)]
pub struct Assets {
    dir: PathBuf,
}

impl Assets {
    /// Finds the binaries and checks that all of them are there, so a missing
    /// build fails with a message naming the fix rather than a spawn error.
    pub fn locate() -> Result<Self> {
        let dir = match std::env::var_os("STSMEND_E2E_ASSETS") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => default_cache_dir(),
        };
        Self::from_dir(dir)
    }

    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        for name in BINARIES {
            let p = dir.join(name);
            let ok = std::fs::metadata(&p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            if !ok {
                return Err(Error::AssetMissing { name, dir });
            }
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Mirrors the cache location of scripts/control-plane.sh.
pub fn default_cache_dir() -> PathBuf {
    let root = if let Some(c) = std::env::var_os("STSMEND_CACHE").filter(|v| !v.is_empty()) {
        PathBuf::from(c)
    } else if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(x).join("stsmend")
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache").join("stsmend")
    };
    root.join(format!("control-plane-{K8S_VERSION}-{BUILD}"))
}
