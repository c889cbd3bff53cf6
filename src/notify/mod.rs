//! Where a run's outcome reaches people and dashboards: escalations and
//! failed actions as Alertmanager alerts (API v2), the run's figures as
//! Prometheus metrics pushed to a Pushgateway (a CronJob cannot be scraped).
//!
//! The settings and the alerts are the core's ([`alerts`]); [`metrics`]
//! builds the figures from the report, and [`http`] alone sends both.

pub use stsmend_core::alerts;
pub use stsmend_core::config::notify::*;

pub mod http;
pub mod metrics;
