//! stsmend finds StatefulSets whose rollout failed and mends them by policy.
//!
//! This crate is the I/O around [`stsmend_core`]: [`cluster`] reads the
//! inventory and writes (the only place with a Kubernetes client),
//! [`notify`] sends alerts and metrics, [`report`] renders the outcome.
//! The core's modules are re-exported, so `stsmend::pipeline` and the like
//! name the same items as `stsmend_core::pipeline`.

pub mod cluster;
pub mod error;
pub mod notify;
pub mod report;

pub use error::{Error, Result};
pub use stsmend_core::{
    alerts, caps, cases, config, detect, diagnose, duration, execution, facts, gitops, guard,
    inventory, kinds, pipeline, policy, preflight, quantity, scope, selector, snapshot, source,
    state, time, trim, undo,
};

pub use stsmend_core::VERSION;
