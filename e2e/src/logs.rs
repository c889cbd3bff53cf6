//! Component logs per test in `e2e/logs/<test>/`: written live (so they can be
//! tailed while a test runs), kept and printed when the test fails, removed
//! when it passes.

use std::path::{Path, PathBuf};

use crate::control_plane::sanitize;
use crate::error::{Result, io};

/// Root of all log directories: `STSMEND_E2E_LOG_DIR`, else `e2e/logs`.
pub fn root() -> PathBuf {
    match std::env::var_os("STSMEND_E2E_LOG_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("logs"),
    }
}

/// Whether logs are kept even for passing tests (`STSMEND_E2E_KEEP_LOGS=1`).
pub fn keep_always() -> bool {
    std::env::var("STSMEND_E2E_KEEP_LOGS").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[derive(Debug)]
pub struct LogDir {
    path: PathBuf,
    passed: bool,
}

impl LogDir {
    pub fn create(name: &str) -> Result<Self> {
        let path = root().join(sanitize(name));
        // Logs of an earlier run of the same test would mix with this one's.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(io(format!("create {}", path.display())))?;
        Ok(Self {
            path,
            passed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mark_passed(&mut self) {
        self.passed = true;
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if self.passed && !keep_always() {
            let _ = std::fs::remove_dir_all(&self.path);
            return;
        }
        let why = if std::thread::panicking() {
            "the test panicked"
        } else if self.passed {
            "STSMEND_E2E_KEEP_LOGS is set"
        } else {
            "the control plane was not shut down by a passing test"
        };
        eprintln!(
            "stsmend-e2e: component logs kept in {} ({why})",
            self.path.display()
        );
    }
}
