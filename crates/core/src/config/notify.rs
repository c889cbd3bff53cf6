//! The config file's `alertmanager` and `metrics` keys: where escalations
//! and the run's figures go (see [`crate::alerts`] and `stsmend::notify`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::duration::Span;

/// What became of a run's alerts, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub url: String,
    /// Alerts sent firing (new or refreshed).
    pub firing: usize,
    /// Alerts sent resolved.
    pub resolved: usize,
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The config file's `alertmanager` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL; alerts go to `<url>/api/v2/alerts`.
    pub url: String,
    /// A file holding a bearer token (a mounted Secret); relative to the
    /// config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// PEM CA certificates trusted besides the system's; relative to the
    /// config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// How long one delivery may take.
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// A firing alert is sent with `endsAt` this far ahead and sent again
    /// by every run while its StatefulSet fails: longer than the schedule,
    /// so it stays firing between runs (a few missed runs included).
    #[serde(default = "default_resend_within")]
    pub resend_within: Span,
    /// The `severity` label, as the runbooks' alerts route it.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Labels added to every alert (`team`, `cluster`...), for routing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The `runbook_url` annotation; default: the runbook of the alert the
    /// StatefulSet's symptom raises (KubeStatefulSetGenerationMismatch or
    /// KubeStatefulSetUpdateNotRolledOut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
}

/// The config file's `metrics` key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MetricsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushgateway: Option<PushgatewayConfig>,
}

impl MetricsConfig {
    pub fn is_empty(&self) -> bool {
        self.pushgateway.is_none()
    }
}

/// Where the run's figures are pushed, under the grouping
/// `job=<job>, instance=<instance>`: fixed names, so a pod restart or the
/// next Job replaces the figures instead of adding a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushgatewayConfig {
    pub url: String,
    #[serde(default = "default_job")]
    pub job: String,
    /// Default: the state namespace (one installation per namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub timeout: Span,
}

fn default_timeout() -> Span {
    Span(10)
}

fn default_resend_within() -> Span {
    Span::minutes(30)
}

fn default_severity() -> String {
    "critical".into()
}

fn default_job() -> String {
    "stsmend".into()
}

/// Labels the agent sets itself; the config may not override them.
pub const OWN_LABELS: [&str; 5] = [
    "alertname",
    "namespace",
    "statefulset",
    "severity",
    "findings",
];

fn check_url(url: &str) -> Result<(), String> {
    let uri: ::http::Uri = url
        .parse()
        .map_err(|e| format!("url: {url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!("url: {url:?} needs http:// or https:// and a host"));
    }
    if uri.query().is_some() {
        return Err(format!("url: {url:?} must not have a query"));
    }
    Ok(())
}

fn check_timeout(timeout: Span) -> Result<(), String> {
    if timeout.as_secs() == 0 {
        return Err("timeout: must be more than 0s".into());
    }
    Ok(())
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Pushgateway grouping value goes into the URL path as it is.
fn is_grouping_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

fn resolve(path: &mut Option<PathBuf>, dir: &Path) {
    if let Some(p) = path
        && p.is_relative()
    {
        *p = dir.join(&*p);
    }
}

impl AlertmanagerConfig {
    /// Checks the values; the error starts with the key under
    /// `alertmanager`.
    pub fn validate(&self) -> Result<(), String> {
        check_url(&self.url)?;
        check_timeout(self.timeout)?;
        if self.resend_within.as_secs() < 60 {
            return Err(format!(
                "resendWithin: {} would let alerts resolve between runs; the least is 1m",
                self.resend_within
            ));
        }
        if self.severity.is_empty() {
            return Err("severity: must not be empty".into());
        }
        for (name, value) in &self.labels {
            if !is_label_name(name) {
                return Err(format!("labels.{name}: not a Prometheus label name"));
            }
            if OWN_LABELS.contains(&name.as_str()) {
                return Err(format!("labels.{name}: set by stsmend itself"));
            }
            if value.is_empty() {
                return Err(format!("labels.{name}: an empty value drops the label"));
            }
        }
        Ok(())
    }

    pub fn resolve_paths(&mut self, dir: &Path) {
        resolve(&mut self.bearer_token_file, dir);
        resolve(&mut self.ca_file, dir);
    }
}

impl PushgatewayConfig {
    pub fn validate(&self) -> Result<(), String> {
        check_url(&self.url)?;
        check_timeout(self.timeout)?;
        if !is_grouping_value(&self.job) {
            return Err(format!(
                "job: {:?} must be letters, digits, '_', '-', '.' or ':'",
                self.job
            ));
        }
        if let Some(instance) = &self.instance
            && !is_grouping_value(instance)
        {
            return Err(format!(
                "instance: {instance:?} must be letters, digits, '_', '-', '.' or ':'"
            ));
        }
        Ok(())
    }

    pub fn resolve_paths(&mut self, dir: &Path) {
        resolve(&mut self.bearer_token_file, dir);
        resolve(&mut self.ca_file, dir);
    }

    /// The instance grouping label: configured, or the state namespace.
    pub fn instance_or<'a>(&'a self, state_namespace: &'a str) -> &'a str {
        self.instance.as_deref().unwrap_or(state_namespace)
    }
}
