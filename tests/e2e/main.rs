//! End-to-end scenarios (the catalogue: tests/e2e/README.md) on a real control plane:
//! each starts from a healthy StatefulSet, breaks it the way it breaks in
//! production, runs the `stsmend` binary as the CronJob would (a fresh
//! process per run, under the ServiceAccount bound to deploy/'s RBAC), and
//! checks the end state, the actions, and the Events the agent wrote.
//!
//! Needs the control-plane binaries: `bash scripts/test.sh` builds them, or
//! point STSMEND_E2E_ASSETS at them.

mod alerts;
mod capture;
mod chaos;
mod chaos_manifests;
mod cronjob;
mod deploy;
mod heal;
mod hostile;
mod kubelet;
mod owner;
mod preflight;
mod rbac;
mod rollback;
mod scale;
mod stand_aside;
mod state_faults;
mod storm;
mod trust;
mod world;

use std::time::Duration;

/// How long a rollout step may take on a loaded 2-core machine.
pub const ROLLOUT: Duration = Duration::from_secs(90);
