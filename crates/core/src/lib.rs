//! stsmend's core: everything between reading a cluster and writing to it,
//! as functions of plain data.
//!
//! The pipeline is `detect -> gather facts -> diagnose -> decide (policies)
//! -> guard`, run by [`pipeline::run`] from an [`inventory::Inventory`] to a
//! [`pipeline::Outcome`]. This crate has no Kubernetes client and no async
//! runtime (the compiler holds it to that): the `stsmend` crate reads the
//! inventory, acts on the outcome and reports it.

pub mod alerts;
pub mod caps;
pub mod cases;
pub mod claims;
pub mod config;
pub mod detect;
pub mod diagnose;
pub mod duration;
pub mod error;
pub mod execution;
pub mod facts;
pub mod gitops;
pub mod guard;
pub mod inventory;
pub mod kinds;
pub mod pipeline;
pub mod policy;
pub mod preflight;
pub mod quantity;
pub mod scope;
pub mod selector;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod time;
pub mod trim;
pub mod undo;

pub use error::{Error, Result};

/// The version printed in reports, snapshots and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
