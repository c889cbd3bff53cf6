//! What a run keeps of objects it reads but does not look into. A fleet's
//! healthy StatefulSets are screened and counted, never diagnosed; kept
//! whole (managed fields, pod templates, the last-applied copy) they made a
//! run's memory grow by about 23 KB per StatefulSet. Nodes are only ever
//! summarised ([`crate::facts::NodeSummary`]); their image lists are the
//! bulk of them.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// kubectl's copy of the whole object as last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Managed fields and the last-applied copy: read only from a suspect
/// StatefulSet (when its spec was last written), which is kept whole.
pub fn metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// Keeps of a StatefulSet what screening and scoping read: metadata (less
/// managed fields), replicas, update strategy, status. For StatefulSets that
/// screened healthy or exempt; a suspect is kept whole.
pub fn screened(sts: &mut StatefulSet) {
    metadata(&mut sts.metadata);
    sts.spec.template = PodTemplateSpec::default();
    sts.spec.volume_claim_templates = None;
}

/// Keeps of a Node what its summary reads.
pub fn node(node: &mut Node) {
    metadata(&mut node.metadata);
    if let Some(status) = node.status.as_mut() {
        status.images = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::detect::screen;
    use crate::facts::NodeSummary;
    use crate::scope::Scope;
    use crate::selector::Selector;

    fn fixtures() -> Vec<crate::inventory::Inventory> {
        let dir =
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("tests/fixtures");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "fixtures in {}", dir.display());
        files
            .iter()
            .map(|f| crate::source::files::load(std::slice::from_ref(f)).unwrap())
            .collect()
    }

    #[test]
    fn a_trimmed_stateful_set_screens_and_scopes_as_before() {
        let scopes = [
            Scope::default(),
            Scope {
                selector: Selector::parse("stsmend.io/enabled=true").unwrap(),
                ..Default::default()
            },
        ];
        let mut seen = 0;
        for inv in fixtures() {
            for sts in &inv.stateful_sets {
                let mut t = sts.clone();
                screened(&mut t);
                assert_eq!(screen(&t), screen(sts), "{:?}", sts.metadata.name);
                for scope in &scopes {
                    assert_eq!(scope.includes(&t), scope.includes(sts));
                }
                assert!(t.metadata.managed_fields.is_none());
                assert!(t.spec.template.spec.is_none());
                seen += 1;
            }
        }
        assert!(seen >= 10, "only {seen} StatefulSets in the fixtures");
    }

    #[test]
    fn a_trimmed_stateful_set_is_much_smaller() {
        let inv = fixtures().remove(0);
        let sts = inv
            .stateful_sets
            .iter()
            .find(|s| s.metadata.managed_fields.is_some())
            .expect("captured StatefulSets carry managed fields");
        let mut t = sts.clone();
        screened(&mut t);
        let size = |s: &StatefulSet| serde_json::to_vec(s).unwrap().len();
        assert!(size(&t) * 2 < size(sts), "{} of {}", size(&t), size(sts));
    }

    #[test]
    fn a_trimmed_node_summarises_as_before() {
        let mut seen = 0;
        for inv in fixtures() {
            for n in &inv.nodes {
                let mut t = n.clone();
                node(&mut t);
                assert_eq!(
                    serde_json::to_value(NodeSummary::from_node(&t)).unwrap(),
                    serde_json::to_value(NodeSummary::from_node(n)).unwrap()
                );
                seen += 1;
            }
        }
        assert!(seen > 0);
    }
}
