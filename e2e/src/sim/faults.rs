//! The fault rules of the simulated kubelet: which pods fail, and how. They
//! are declared on the pod (its images or an annotation), so a scenario breaks
//! a StatefulSet the way a real one breaks: by changing its template.
//! e2e/README.md lists them; keep the two in step.

use k8s_openapi::api::core::v1::{Container, Pod};

/// Pod annotation (usually set in a StatefulSet's pod template) naming
/// faults, comma-separated: `crashloop`, `never-ready`, `slow-terminate`.
pub const FAULT_ANNOTATION: &str = "e2e.stsmend.io/fault";

pub const CRASHLOOP: &str = "crashloop";
pub const NEVER_READY: &str = "never-ready";
pub const SLOW_TERMINATE: &str = "slow-terminate";

/// MachineDeployment annotation value (same key) whose machines never become
/// Nodes, as when a cloud is out of capacity for an instance type.
pub const PROVISION_FAILS: &str = "provision-fails";

/// What the simulated kubelet does with one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFaults {
    /// Containers (regular) that exit with code 1 shortly after each start.
    pub crashing: Vec<String>,
    /// Containers (init or regular) whose image cannot be pulled.
    pub unpullable: Vec<String>,
    pub never_ready: bool,
    pub slow_terminate: bool,
}

impl PodFaults {
    pub fn of(pod: &Pod) -> Self {
        let listed = annotation_faults(pod);
        let has = |f: &str| listed.iter().any(|l| l == f);
        let spec = pod.spec.as_ref();
        let containers: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
        let inits: &[Container] = spec
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default();
        let crashing = containers
            .iter()
            .filter(|c| has(CRASHLOOP) || image_crashes(c.image.as_deref().unwrap_or_default()))
            .map(|c| c.name.clone())
            .collect();
        let unpullable = inits
            .iter()
            .chain(containers)
            .filter(|c| image_unpullable(c.image.as_deref().unwrap_or_default()))
            .map(|c| c.name.clone())
            .collect();
        Self {
            crashing,
            unpullable,
            never_ready: has(NEVER_READY),
            slow_terminate: has(SLOW_TERMINATE),
        }
    }
}

fn annotation_faults(pod: &Pod) -> Vec<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FAULT_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The image's tag, if it has one (`repo:tag` or `repo:tag@digest`).
fn tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, t)| t)
}

/// Image rule: a reference containing `does-not-exist`, or a tag that is
/// `broken` or ends in `-broken`.
pub fn image_unpullable(image: &str) -> bool {
    image.contains("does-not-exist")
        || tag(image).is_some_and(|t| t == "broken" || t.ends_with("-broken"))
}

/// Image rule: a tag containing `crash`.
pub fn image_crashes(image: &str) -> bool {
    tag(image).is_some_and(|t| t.contains("crash"))
}

/// The fully qualified reference the container runtime reports, e.g.
/// `postgres:15` → `docker.io/library/postgres:15`.
pub fn normalize_image(image: &str) -> String {
    // The tag or digest starts after the last '/': a ':' before it is a
    // registry port.
    let last = image.rfind('/').map_or(0, |i| i + 1);
    let (name, rest) = match image[last..].find(['@', ':']) {
        Some(i) => image.split_at(last + i),
        None => (image, ""),
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let rest = if rest.is_empty() { ":latest" } else { rest };
    format!("{name}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_rules() {
        assert!(image_unpullable("postgres:16-does-not-exist"));
        assert!(image_unpullable("registry.example.com:5000/db:broken"));
        assert!(image_unpullable("db:1.2-broken"));
        assert!(!image_unpullable("registry.example.com:5000/broken/db:1.2"));
        assert!(image_crashes("db:1.2-crash"));
        assert!(!image_crashes("crash/db:1.2"));
    }

    #[test]
    fn normalizes_like_containerd() {
        assert_eq!(
            normalize_image("postgres:15.4"),
            "docker.io/library/postgres:15.4"
        );
        assert_eq!(
            normalize_image("bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
        assert_eq!(
            normalize_image("localhost:5000/db:1"),
            "localhost:5000/db:1"
        );
        assert_eq!(
            normalize_image("ghcr.io/acme/db@sha256:ab"),
            "ghcr.io/acme/db@sha256:ab"
        );
    }
}
