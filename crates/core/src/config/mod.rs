//! The operator's config file (`--config`, YAML). Unknown keys and wrong types
//! are errors naming the key, so a typo never silently changes behaviour.

pub mod notify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::error::{Error, Result};

/// The StatefulSet annotation that names the policy deciding for it.
pub const POLICY_ANNOTATION: &str = "stsmend.io/policy";
/// The StatefulSet annotation that marks rolling back as unsafe (an
/// irreversible migration ran); the ladder escalates instead.
pub const ROLLBACK_UNSAFE_ANNOTATION: &str = "stsmend.io/rollback-unsafe";
/// The field manager of every write the agent makes: how its own writes
/// are told from another writer's in `managedFields`.
pub const FIELD_MANAGER: &str = "stsmend";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// Where the agent keeps its state between runs.
    pub state_namespace: String,
    /// How long a mismatch or stuck rollout must hold before it is a finding.
    #[serde(rename = "for")]
    pub threshold: Span,
    pub scope: Scope,
    /// Node groups the agent may scale, and what their nodes provide.
    pub node_groups: Vec<NodeGroup>,
    /// Pod annotations whose presence says a migration runs in that pod.
    pub migration_annotations: Vec<String>,
    /// Team policies: a `.rhai` file or a directory of them (in-cluster, a
    /// mounted ConfigMap). Relative to the config file. `--policies` wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<PathBuf>,
    /// The StatefulSet annotation that names the policy deciding for it.
    pub policy_annotation: String,
    /// StatefulSet annotations that mark rolling back as unsafe (an
    /// irreversible migration ran); any value but `false` counts.
    pub rollback_unsafe_annotations: Vec<String>,
    /// Action budget, cooldown, debounce and storm protection.
    pub limits: crate::guard::Limits,
    /// StatefulSets whose labels match this selector (kubectl `-l` syntax)
    /// are opted in, besides those labelled `stsmend.io/remediate=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_in_selector: Option<String>,
    /// Stops every write at once; the run still detects and reports.
    pub pause: bool,
    /// How long one `stsmend run` may take, its report and state included:
    /// shorter than the CronJob's schedule, so runs never overlap.
    pub deadline: Span,
    /// Where escalations and failed actions are posted as alerts; none:
    /// Events only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<notify::AlertmanagerConfig>,
    /// Where the run's figures are pushed.
    #[serde(skip_serializing_if = "notify::MetricsConfig::is_empty")]
    pub metrics: notify::MetricsConfig,
    /// What the agent may do to a GitOps sync that would put a rollback
    /// back (docs/operations.md, "Beside operators, GitOps and Helm").
    pub gitops: GitOps,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GitOps {
    /// Suspend the Flux Kustomization or HelmRelease (`spec.suspend`), or
    /// turn off the Argo CD Application's automated sync, before rolling
    /// back a StatefulSet it applies; `stsmend undo` resumes it. Off: such
    /// a set is escalated, never rolled back. Needs the chart's
    /// `gitops.suspendSync` RBAC.
    pub suspend_sync: bool,
    /// Where Argo CD's Applications live when the tracking annotation does
    /// not say (`argocd`, Argo CD's own namespace, by default).
    pub argocd_namespace: String,
}

impl Default for GitOps {
    fn default() -> Self {
        Self {
            suspend_sync: false,
            argocd_namespace: "argocd".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_namespace: "stsmend".into(),
            threshold: Span::minutes(10),
            scope: Scope::default(),
            node_groups: Vec::new(),
            migration_annotations: vec!["stsmend.io/migration".into()],
            policies: None,
            policy_annotation: POLICY_ANNOTATION.into(),
            rollback_unsafe_annotations: vec![ROLLBACK_UNSAFE_ANNOTATION.into()],
            limits: crate::guard::Limits::default(),
            opt_in_selector: None,
            pause: false,
            deadline: Span::minutes(4),
            alertmanager: None,
            metrics: notify::MetricsConfig::default(),
            gitops: GitOps::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Scope {
    /// Namespaces to look in; empty means all.
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    /// A label selector on StatefulSets, in kubectl's `-l` syntax.
    pub selector: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroup {
    pub name: String,
    /// The object whose `/scale` subresource sizes the group.
    pub resource: ScaleTarget,
    #[serde(default)]
    pub min: i32,
    pub max: i32,
    #[serde(default)]
    pub provides: Provides,
    /// How long the nodes a scale-out adds may take to turn Ready and take
    /// the pods; past it the group is not scaled again (escalate).
    #[serde(default = "default_ready_within")]
    pub ready_within: Span,
}

fn default_ready_within() -> Span {
    Span::minutes(10)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleTarget {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ScaleTarget {
    /// `apiVersion Kind namespace/name`, the `/scale` subresource of which
    /// is written.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}{}",
            self.api_version,
            self.kind,
            self.namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            self.name
        )
    }
}

/// What one node of a group brings: the labels and taints a pod's scheduling
/// constraints are checked against, and its allocatable resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Provides {
    pub labels: BTreeMap<String, String>,
    pub resources: BTreeMap<String, String>,
    pub taints: Vec<String>,
}

impl Config {
    /// The opt-in selector, parsed (validated at load, so this cannot fail
    /// on a loaded config).
    pub fn opt_in(&self) -> Result<Option<crate::selector::Selector>> {
        self.opt_in_selector
            .as_deref()
            .map(|s| {
                crate::selector::Selector::parse(s)
                    .map_err(|e| Error::invalid("optInSelector", s, e.to_string()))
            })
            .transpose()
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(text).map_err(|source| Error::ConfigSyntax {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?
        };
        if let Some(p) = &config.policies
            && p.is_relative()
            && let Some(dir) = path.parent()
        {
            config.policies = Some(dir.join(p));
        }
        if let Some(dir) = path.parent() {
            if let Some(am) = &mut config.alertmanager {
                am.resolve_paths(dir);
            }
            if let Some(pg) = &mut config.metrics.pushgateway {
                pg.resolve_paths(dir);
            }
        }
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what the types alone do not; `path` names the source in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        if self.state_namespace.is_empty() {
            return Err(bad("stateNamespace: must not be empty".into()));
        }
        if let Some(sel) = &self.scope.selector {
            crate::selector::Selector::parse(sel)
                .map_err(|e| bad(format!("scope.selector: {e}")))?;
        }
        if let Some(sel) = &self.opt_in_selector {
            crate::selector::Selector::parse(sel)
                .map_err(|e| bad(format!("optInSelector: {e}")))?;
        }
        let annotation_key = |what: &str, key: &str| {
            let name = key.rsplit('/').next().unwrap_or_default();
            if name.is_empty()
                || key.chars().any(char::is_whitespace)
                || key.matches('/').count() > 1
            {
                Err(bad(format!("{what}: {key:?} is not an annotation key")))
            } else {
                Ok(())
            }
        };
        annotation_key("policyAnnotation", &self.policy_annotation)?;
        for (i, key) in self.rollback_unsafe_annotations.iter().enumerate() {
            annotation_key(&format!("rollbackUnsafeAnnotations[{i}]"), key)?;
        }
        for (i, key) in self.migration_annotations.iter().enumerate() {
            annotation_key(&format!("migrationAnnotations[{i}]"), key)?;
        }
        if self.limits.storm_min_failing < 2 {
            return Err(bad(format!(
                "limits.stormMinFailing: {} would make a single failing StatefulSet a storm; \
                 the least is 2",
                self.limits.storm_min_failing
            )));
        }
        if !(0.0..=1.0).contains(&self.limits.storm_max_share) {
            return Err(bad(format!(
                "limits.stormMaxShare: {} is not a share between 0 and 1",
                self.limits.storm_max_share
            )));
        }
        if let Some(am) = &self.alertmanager {
            am.validate()
                .map_err(|m| bad(format!("alertmanager.{m}")))?;
        }
        if let Some(pg) = &self.metrics.pushgateway {
            pg.validate()
                .map_err(|m| bad(format!("metrics.pushgateway.{m}")))?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, g) in self.node_groups.iter().enumerate() {
            if !names.insert(&g.name) {
                return Err(bad(format!(
                    "nodeGroups[{i}].name: {:?} is used twice",
                    g.name
                )));
            }
            if g.max < g.min || g.min < 0 {
                return Err(bad(format!(
                    "nodeGroups[{i}]: need 0 <= min <= max, got min {} max {}",
                    g.min, g.max
                )));
            }
            for (res, qty) in &g.provides.resources {
                if crate::quantity::parse(qty).is_none() {
                    return Err(bad(format!(
                        "nodeGroups[{i}].provides.resources.{res}: {qty:?} is not a quantity"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_config() {
        let c = Config::parse(
            Path::new("c.yaml"),
            "stateNamespace: ops\nfor: 15m\nscope:\n  namespaces: [a, b]\n  selector: tier=db\nnodeGroups:\n- name: gpu\n  resource: {apiVersion: cluster.x-k8s.io/v1beta1, kind: MachineDeployment, namespace: kube-system, name: gpu}\n  max: 4\n  provides:\n    labels: {accelerator: nvidia}\n    resources: {nvidia.com/gpu: \"1\"}\n",
        )
        .unwrap();
        assert_eq!(c.threshold, Span::minutes(15));
        assert_eq!(c.node_groups[0].max, 4);
        assert_eq!(c.scope.namespaces, ["a", "b"]);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let err = Config::parse(Path::new("c.yaml"), "scope:\n  namespace: [a]\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config c.yaml:"), "{err}");
        assert!(err.contains("namespace"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        let err = Config::parse(Path::new("c.yaml"), "for: soon\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn reads_policy_keys_relative_to_the_config_file() {
        let c = Config::parse(
            Path::new("/etc/stsmend/config.yaml"),
            "policies: team\npolicyAnnotation: example.com/policy\nrollbackUnsafeAnnotations: [example.com/irreversible]\nlimits:\n  stormMaxFailing: 3\n",
        )
        .unwrap();
        assert_eq!(c.policies, Some(PathBuf::from("/etc/stsmend/team")));
        assert_eq!(c.policy_annotation, "example.com/policy");
        assert_eq!(c.rollback_unsafe_annotations, ["example.com/irreversible"]);
        assert_eq!(c.limits.storm_max_failing, 3);
        assert_eq!(
            c.limits.max_actions,
            crate::guard::Limits::default().max_actions
        );
        let d = Config::default();
        assert_eq!(d.policy_annotation, "stsmend.io/policy");
        assert_eq!(
            d.rollback_unsafe_annotations,
            ["stsmend.io/rollback-unsafe"]
        );
    }

    #[test]
    fn bad_policy_keys_are_errors_naming_them() {
        for (text, needle) in [
            ("policyAnnotation: 'a b'\n", "policyAnnotation"),
            (
                "rollbackUnsafeAnnotations: ['x/y/z']\n",
                "rollbackUnsafeAnnotations[0]",
            ),
            ("limits: {stormMaxShare: 2}\n", "limits.stormMaxShare"),
            ("limits: {stormMinFailing: 1}\n", "limits.stormMinFailing"),
            ("limits: {stormMax: 2}\n", "stormMax"),
            ("policy: x.rhai\n", "policy"),
        ] {
            let err = Config::parse(Path::new("c.yaml"), text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn reads_alertmanager_and_pushgateway() {
        let c = Config::parse(
            Path::new("/etc/stsmend/config.yaml"),
            "alertmanager:\n  url: https://am.monitoring:9093\n  bearerTokenFile: token\n  labels: {team: db}\nmetrics:\n  pushgateway:\n    url: http://pgw:9091\n    instance: prod\n",
        )
        .unwrap();
        let am = c.alertmanager.unwrap();
        assert_eq!(am.url, "https://am.monitoring:9093");
        assert_eq!(
            am.bearer_token_file,
            Some(PathBuf::from("/etc/stsmend/token"))
        );
        assert_eq!(am.labels["team"], "db");
        assert_eq!(am.resend_within, Span::minutes(30));
        let pg = c.metrics.pushgateway.unwrap();
        assert_eq!(pg.job, "stsmend");
        assert_eq!(pg.instance.as_deref(), Some("prod"));
    }

    #[test]
    fn bad_notification_keys_are_errors_naming_them() {
        for (text, needle) in [
            ("alertmanager: {url: 'am:9093'}\n", "alertmanager.url"),
            ("alertmanager: {}\n", "url"),
            (
                "alertmanager: {url: 'http://am', labels: {alertname: x}}\n",
                "alertmanager.labels.alertname",
            ),
            (
                "alertmanager: {url: 'http://am', resendWithin: 0s}\n",
                "alertmanager.resendWithin",
            ),
            (
                "metrics: {pushgateway: {url: 'ftp://x'}}\n",
                "metrics.pushgateway.url",
            ),
            (
                "metrics: {pushgateway: {url: 'http://x', job: ''}}\n",
                "metrics.pushgateway.job",
            ),
            ("metrics: {pushgatway: {}}\n", "pushgatway"),
        ] {
            let err = Config::parse(Path::new("c.yaml"), text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn node_group_bounds_are_checked() {
        let err = Config::parse(
            Path::new("c.yaml"),
            "nodeGroups:\n- name: g\n  resource: {apiVersion: v1, kind: X, name: g}\n  min: 3\n  max: 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nodeGroups[0]"), "{err}");
    }
}
