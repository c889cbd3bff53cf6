//! The operator's config file (`--config`, YAML). Unknown keys and wrong types
//! are errors naming the key, so a typo never silently changes behaviour.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::error::{Error, Result};

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_namespace: "stsmend".into(),
            threshold: Span::minutes(10),
            scope: Scope::default(),
            node_groups: Vec::new(),
            migration_annotations: vec!["stsmend.io/migration".into()],
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
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| Error::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
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
