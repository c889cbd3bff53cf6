//! Reports of a run: concise text for a terminal, Markdown for pull requests,
//! JSON with a versioned schema (docs/report-schema.md) for machines, JUnit
//! XML and SARIF for CI systems to show natively.

mod explain;
mod json;
pub mod junit;
mod markdown;
pub mod preflight;
mod sanitize;
pub mod sarif;
mod text;

pub use explain::explain;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::duration::Span;
use crate::pipeline::Outcome;

/// Bumped on any change a consumer of the JSON could notice.
pub const SCHEMA: &str = "stsmend.io/report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
    /// JUnit XML: one test case per failing, pending or exempt StatefulSet.
    Junit,
    /// SARIF 2.1.0: one result per finding.
    Sarif,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: &'static str,
    pub version: &'static str,
    pub generated_at: Timestamp,
    /// What was read: a cluster context or the input files.
    pub source: String,
    pub threshold: Span,
    /// How plans were carried out (`stsmend run` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<crate::execution::Mode>,
    /// The policies the run decided with, the default ladder first.
    pub policies: Vec<crate::policy::PolicyInfo>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Kinds in the input that stsmend does not read.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped_kinds: BTreeMap<String, usize>,
    /// API requests the run made (live runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_requests: Option<crate::cluster::metrics::Counts>,
    /// What became of the run's Alertmanager alerts (`stsmend run` with
    /// `alertmanager` configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::notify::Delivery>,
    /// Why the run ended before it had decided on everything in scope (its
    /// deadline passed while it read the cluster): the counts and lists
    /// are then of what it got to, not of the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// One line on the guards' verdict and what became of each action, shared
/// by the text and Markdown renderers.
pub(crate) fn gate_line(a: &crate::pipeline::Assessment) -> Option<String> {
    let g = a.gate.as_ref()?;
    let writes = a.plan.as_ref().map_or(0, |d| d.writes());
    Some(match (&g.blocked, g.admitted) {
        (Some(b), _) => format!("guards: held back: {}", b.describe()),
        (None, true) if writes > 0 => format!(
            "guards: admitted (opted in, failing in {} run(s) in a row)",
            g.seen_runs
        ),
        (None, true) => "guards: admitted (no writes; Events only)".to_string(),
        (None, false) => "guards: report only (not opted in)".to_string(),
    })
}

impl Report {
    pub fn render(&self, format: Format) -> crate::error::Result<String> {
        self.render_with_locations(format, &Default::default())
    }

    /// As `render`; `locations` are where the StatefulSets read from files
    /// are declared, which SARIF results point at.
    pub fn render_with_locations(
        &self,
        format: Format,
        locations: &crate::source::files::Locations,
    ) -> crate::error::Result<String> {
        match format {
            Format::Text => Ok(text::render(self)),
            Format::Markdown => Ok(markdown::render(self)),
            Format::Json => json::render(self),
            Format::Junit => junit::render(self),
            Format::Sarif => sarif::render(self, locations),
        }
    }

    /// 0 when nothing failed, 1 when findings are present.
    pub fn exit_code(&self) -> u8 {
        if self.outcome.failing.is_empty() {
            0
        } else {
            1
        }
    }
}
