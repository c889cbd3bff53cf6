//! stsmend finds StatefulSets whose rollout failed and mends them by policy.
//!
//! The pipeline is `source -> detect -> gather facts -> diagnose -> decide
//! (policies) -> report`.
//! Everything between the source and the report is a pure function of plain
//! data ([`inventory::Inventory`] in, [`pipeline::Outcome`] out); the
//! Kubernetes client lives in [`cluster`] alone.

pub mod cluster;
pub mod config;
pub mod detect;
pub mod diagnose;
pub mod duration;
pub mod error;
pub mod execution;
pub mod facts;
pub mod guard;
pub mod inventory;
pub mod notify;
pub mod pipeline;
pub mod policy;
pub mod quantity;
pub mod report;
pub mod scope;
pub mod selector;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod time;
pub mod trim;
pub mod undo;

pub use error::{Error, Result};

/// The version printed in reports and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
