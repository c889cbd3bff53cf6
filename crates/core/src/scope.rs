//! Which StatefulSets a run looks at: namespaces, exclusions and a label
//! selector, from flags and the config file.

use kube_core::ResourceExt as _;

use k8s_openapi::api::apps::v1::StatefulSet;

use crate::selector::Selector;

#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Empty means every namespace.
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub selector: Selector,
}

impl Scope {
    pub fn includes_namespace(&self, ns: &str) -> bool {
        (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns))
            && !self.exclude_namespaces.iter().any(|n| n == ns)
    }

    pub fn includes(&self, sts: &StatefulSet) -> bool {
        self.includes_namespace(sts.metadata.namespace.as_deref().unwrap_or_default())
            && self.selector.matches(sts.labels())
    }
}
