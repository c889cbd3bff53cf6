//! Blame only what changed. A rollback or a spec fix rewrites a team's spec,
//! so it needs evidence that the update revision is what fails: either the
//! template diff touches what the failure depends on, or pods of the update
//! revision fail while pods of the current revision, at the same time, do
//! not. Every failure finding gets a [`Change`] saying which, so policies
//! decide on evidence instead of guessing from kinds.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use k8s_openapi::api::core::v1::Pod;

use super::blame::depends_on;
use super::{Data, Finding, Input, Kind};
use crate::facts::REVISION_LABEL;

/// One aspect of a pod template, as far as failures depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// Container images, pull policy, imagePullSecrets.
    Image,
    /// Container requests and limits, pod overhead.
    Resources,
    /// nodeSelector, affinity, tolerations, topology spread, priority.
    Scheduling,
    /// Volumes, volume mounts, and Secret/ConfigMap references (env
    /// valueFrom, envFrom).
    Volumes,
    /// Probes, command, args, env, ports, security context: how the
    /// containers run.
    Runtime,
    /// The ServiceAccount the pods run as.
    ServiceAccount,
    /// Labels and annotations of the template only.
    Metadata,
    /// Anything else in the pod spec.
    Other,
}

impl Aspect {
    pub const ALL: [Aspect; 8] = [
        Aspect::Image,
        Aspect::Resources,
        Aspect::Scheduling,
        Aspect::Volumes,
        Aspect::Runtime,
        Aspect::ServiceAccount,
        Aspect::Metadata,
        Aspect::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Image => "image",
            Aspect::Resources => "resources",
            Aspect::Scheduling => "scheduling",
            Aspect::Volumes => "volumes",
            Aspect::Runtime => "runtime",
            Aspect::ServiceAccount => "service_account",
            Aspect::Metadata => "metadata",
            Aspect::Other => "other",
        }
    }
}

/// What the evidence that blames the update revision is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The template diff touches an aspect the failure depends on.
    Template,
    /// Pods of the update revision fail where Ready pods of the current
    /// revision do not.
    Comparison,
    /// No evidence: the update revision is not shown to be the cause.
    None,
}

/// Whether the update revision's template change can explain a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Change {
    pub explains: bool,
    pub by: Basis,
    /// One sentence a person can check.
    pub why: String,
    /// Every aspect the template change touched (empty: no change known).
    pub changed: Vec<Aspect>,
    /// The aspects whose change could cause this finding.
    pub depends_on: Vec<Aspect>,
}

/// Which aspect a changed path of the template belongs to. Paths are those
/// of [`super::rollout::diff`]: `spec.containers[0].image`,
/// `metadata.annotations.x`. `old` and `new` are the values at the path, for
/// changes that replace a whole list (an env list grew).
pub fn aspects_of(path: &str, old: &Value, new: &Value) -> BTreeSet<Aspect> {
    use Aspect::*;
    let mut out = BTreeSet::new();
    if path == "metadata" || path.starts_with("metadata.") {
        out.insert(Metadata);
        return out;
    }
    let Some(rest) = path.strip_prefix("spec.").or(path.strip_prefix("spec")) else {
        out.insert(Other);
        return out;
    };
    if rest.is_empty() {
        // The whole spec appeared or went: everything may have changed.
        out.extend(Aspect::ALL.iter().filter(|a| **a != Metadata));
        return out;
    }
    let head = field(rest);
    if matches!(
        head,
        "containers" | "initContainers" | "ephemeralContainers"
    ) {
        // `containers[0].env[1].valueFrom...` -> `env`; a whole container
        // (or a list that changed length) brings every container aspect.
        let inner = rest
            .split_once("].")
            .map(|(_, r)| field(r))
            .unwrap_or_default();
        match inner {
            "" => {
                out.extend([Image, Resources, Runtime, Volumes]);
            }
            "image" | "imagePullPolicy" => {
                out.insert(Image);
            }
            "resources" => {
                out.insert(Resources);
            }
            "volumeMounts" | "volumeDevices" | "envFrom" => {
                out.insert(Volumes);
            }
            "env" => {
                out.insert(Runtime);
                let refs = |v: &Value| {
                    let s = v.to_string();
                    s.contains("secretKeyRef") || s.contains("configMapKeyRef")
                };
                if path.contains("secretKeyRef")
                    || path.contains("configMapKeyRef")
                    || refs(old)
                    || refs(new)
                {
                    out.insert(Volumes);
                }
            }
            _ => {
                out.insert(Runtime);
            }
        }
        return out;
    }
    out.insert(match head {
        "imagePullSecrets" => Image,
        "overhead" => Resources,
        "nodeSelector"
        | "affinity"
        | "tolerations"
        | "topologySpreadConstraints"
        | "priorityClassName"
        | "priority"
        | "preemptionPolicy"
        | "schedulerName"
        | "nodeName"
        | "runtimeClassName" => Scheduling,
        "volumes" => Volumes,
        "serviceAccountName" | "serviceAccount" | "automountServiceAccountToken" => ServiceAccount,
        "securityContext"
        | "hostNetwork"
        | "hostPID"
        | "hostIPC"
        | "shareProcessNamespace"
        | "dnsPolicy"
        | "dnsConfig"
        | "hostAliases"
        | "hostname"
        | "subdomain"
        | "readinessGates"
        | "enableServiceLinks"
        | "setHostnameAsFQDN"
        | "terminationGracePeriodSeconds"
        | "activeDeadlineSeconds"
        | "restartPolicy" => Runtime,
        _ => Other,
    });
    out
}

/// The field name at the start of a path: `containers` of `containers[0].x`.
fn field(path: &str) -> &str {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    &path[..end]
}

/// The aspects the update revision changed, from the revision_change
/// finding's diff (current vs update revision, or the last recorded
/// revision vs the live template when the controller recorded none).
pub fn changed_aspects(findings: &[Finding]) -> BTreeSet<Aspect> {
    findings
        .iter()
        .flat_map(|f| match &f.data {
            Data::RevisionChange(r) => r.changes.as_slice(),
            _ => &[],
        })
        .flat_map(|c| {
            aspects_of(
                c.get("path").and_then(Value::as_str).unwrap_or_default(),
                c.get("old").unwrap_or(&Value::Null),
                c.get("new").unwrap_or(&Value::Null),
            )
        })
        .collect()
}

/// Kinds where pods of the current revision running fine at the same time
/// are evidence: the failure happens inside a running pod. Not scheduling
/// or admission (old pods were placed and admitted before, under other
/// conditions), nor image pulls (old pods pulled before a registry broke).
fn comparable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::CrashLoop | Kind::NeverReady | Kind::ContainerConfig
    )
}

/// Decides, for one finding, whether the update revision explains it.
/// `changed` is empty when no template change is known.
pub fn judge(
    f: &Finding,
    changed: &BTreeSet<Aspect>,
    revisions: &PodRevisions<'_>,
) -> Option<Change> {
    let depends = depends_on(f)?;
    let changed_list: Vec<Aspect> = changed.iter().copied().collect();
    let names = |list: &[Aspect]| {
        list.iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let change = |explains, by, why: String| Change {
        explains,
        by,
        why,
        changed: changed_list.clone(),
        depends_on: depends.clone(),
    };
    // Pod-level findings about pods that are not on the update revision
    // (an old pod, or one left behind by a rollback) are not its doing.
    let off_update: Vec<&str> = f
        .pods
        .iter()
        .filter(|p| revisions.known(p) && !revisions.on_update(p))
        .map(String::as_str)
        .collect();
    if !f.pods.is_empty() && off_update.len() == f.pods.len() {
        return Some(change(
            false,
            Basis::None,
            format!(
                "{} {} not on the update revision",
                off_update.join(", "),
                if off_update.len() == 1 { "is" } else { "are" }
            ),
        ));
    }
    if depends.is_empty() {
        return Some(change(
            false,
            Basis::None,
            "a cause outside the pod template: no template change can cause or cure it".into(),
        ));
    }
    let touched: Vec<Aspect> = depends
        .iter()
        .copied()
        .filter(|a| changed.contains(a))
        .collect();
    if !touched.is_empty() {
        return Some(change(
            true,
            Basis::Template,
            format!(
                "the template change touched {}, which this depends on",
                names(&touched)
            ),
        ));
    }
    if comparable(f.kind)
        && let Some(healthy) = revisions.healthy_on_current()
    {
        return Some(change(
            true,
            Basis::Comparison,
            format!(
                "pods of the update revision fail while {healthy} of the current revision {} Ready",
                if healthy.contains(',') { "are" } else { "is" }
            ),
        ));
    }
    Some(change(
        false,
        Basis::None,
        if changed.is_empty() {
            "no template change is known".to_string()
        } else {
            format!(
                "the template change touched only {}; this depends on {}",
                names(&changed_list),
                names(&depends)
            )
        },
    ))
}

/// Which revision each pod runs, and which pods of the current revision are
/// Ready and not failing.
pub struct PodRevisions<'a> {
    pods: &'a [Pod],
    update: Option<&'a str>,
    current: Option<&'a str>,
    failing: BTreeSet<&'a str>,
}

impl<'a> PodRevisions<'a> {
    pub fn new(input: &Input<'a>, findings: &'a [Finding]) -> Self {
        let status = input.facts.stateful_set.status.as_ref();
        Self {
            pods: &input.facts.pods,
            update: status.and_then(|s| s.update_revision.as_deref()),
            current: status.and_then(|s| s.current_revision.as_deref()),
            failing: findings
                .iter()
                .filter(|f| comparable(f.kind))
                .flat_map(|f| f.pods.iter().map(String::as_str))
                .collect(),
        }
    }

    /// No pods known: judges on the template diff alone.
    pub fn none() -> Self {
        Self {
            pods: &[],
            update: None,
            current: None,
            failing: BTreeSet::new(),
        }
    }

    fn revision(&self, pod: &str) -> Option<&'a str> {
        self.pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod))?
            .metadata
            .labels
            .as_ref()?
            .get(REVISION_LABEL)
            .map(String::as_str)
    }

    fn known(&self, pod: &str) -> bool {
        self.revision(pod).is_some() && self.update.is_some()
    }

    fn on_update(&self, pod: &str) -> bool {
        self.revision(pod).is_some() && self.revision(pod) == self.update
    }

    /// Pods of the current revision, different from the update revision,
    /// Ready now and in no crash loop or readiness finding.
    fn healthy_on_current(&self) -> Option<String> {
        let current = self.current.filter(|c| Some(*c) != self.update)?;
        let names: Vec<&str> = self
            .pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| super::pods::is_ready(p))
            .filter_map(|p| p.metadata.name.as_deref())
            .filter(|n| self.revision(n) == Some(current) && !self.failing.contains(n))
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    }
}

/// Sets `change` on every finding it applies to.
pub fn attribute(input: &Input<'_>, findings: &mut [Finding]) {
    let changed = changed_aspects(findings);
    let judged: Vec<Option<Change>> = {
        let revisions = PodRevisions::new(input, findings);
        findings
            .iter()
            .map(|f| judge(f, &changed, &revisions))
            .collect()
    };
    for (f, c) in findings.iter_mut().zip(judged) {
        f.change = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Confidence;
    use serde_json::json;

    fn aspects(path: &str) -> Vec<Aspect> {
        aspects_of(path, &Value::Null, &Value::Null)
            .into_iter()
            .collect()
    }

    #[test]
    fn paths_map_to_aspects() {
        use Aspect::*;
        let table: &[(&str, &[Aspect])] = &[
            ("spec.containers[0].image", &[Image]),
            ("spec.initContainers[1].image", &[Image]),
            ("spec.imagePullSecrets", &[Image]),
            ("spec.containers[0].resources.requests.memory", &[Resources]),
            ("spec.containers[0].resources", &[Resources]),
            ("spec.nodeSelector.disktype", &[Scheduling]),
            (
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
                &[Scheduling],
            ),
            ("spec.tolerations", &[Scheduling]),
            ("spec.topologySpreadConstraints[0].maxSkew", &[Scheduling]),
            ("spec.priorityClassName", &[Scheduling]),
            ("spec.volumes[0].secret.secretName", &[Volumes]),
            ("spec.containers[0].volumeMounts[0].mountPath", &[Volumes]),
            ("spec.containers[0].envFrom", &[Volumes]),
            (
                "spec.containers[0].env[0].valueFrom.secretKeyRef.key",
                &[Volumes, Runtime],
            ),
            ("spec.containers[0].env[0].value", &[Runtime]),
            ("spec.containers[0].livenessProbe.httpGet.path", &[Runtime]),
            ("spec.containers[0].command", &[Runtime]),
            ("spec.containers[0].args[1]", &[Runtime]),
            ("spec.serviceAccountName", &[ServiceAccount]),
            ("metadata.annotations.team", &[Metadata]),
            ("metadata.labels.tier", &[Metadata]),
            ("spec.containers", &[Image, Resources, Volumes, Runtime]),
            ("spec.dnsPolicy", &[Runtime]),
            ("spec.somethingNew", &[Other]),
        ];
        for (path, expected) in table {
            assert_eq!(aspects(path), expected.to_vec(), "{path}");
        }
        // An env list that grew is a Secret reference when an entry is.
        let grown = aspects_of(
            "spec.containers[0].env",
            &json!([]),
            &json!([{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]),
        );
        assert_eq!(
            grown.into_iter().collect::<Vec<_>>(),
            [Aspect::Volumes, Aspect::Runtime]
        );
    }

    /// A finding with the one key `depends_on` reads of its kind.
    fn finding(kind: Kind, values: &[(&str, &str)]) -> Finding {
        use crate::diagnose::data;
        let f = Finding::new(kind, Confidence::High, "x");
        let value = |key: &str| {
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        match kind {
            Kind::AdmissionDenied => f.data(data::AdmissionDenied {
                base: data::Admission {
                    admission: value("admission"),
                    ..Default::default()
                },
                ..Default::default()
            }),
            Kind::Unschedulable => f.data(data::Unschedulable {
                base: data::Scheduling {
                    reason: value("reason"),
                    ..Default::default()
                },
            }),
            Kind::QuotaExhausted => f.data(data::QuotaExhausted {
                resource: value("resource"),
                ..Default::default()
            }),
            _ => {
                assert!(values.is_empty(), "{kind:?} {values:?}");
                f
            }
        }
    }

    /// The table the issue asks for: which template diffs can explain which
    /// causes. Each row: a changed path, a finding, whether it explains.
    #[test]
    fn template_diffs_explain_only_the_causes_that_depend_on_them() {
        let image = "spec.containers[0].image";
        let resources = "spec.containers[0].resources.limits.memory";
        let selector = "spec.nodeSelector.zone";
        let tolerations = "spec.tolerations";
        let spread = "spec.topologySpreadConstraints";
        let priority = "spec.priorityClassName";
        let volume = "spec.volumes[1].configMap.name";
        let secret_env = "spec.containers[0].env[2].valueFrom.secretKeyRef.key";
        let probe = "spec.containers[0].readinessProbe.httpGet.port";
        let command = "spec.containers[0].command[0]";
        let account = "spec.serviceAccountName";
        let annotation = "metadata.annotations.checksum";
        let pull = finding(Kind::ImagePull, &[]);
        let crash = finding(Kind::CrashLoop, &[]);
        let never_ready = finding(Kind::NeverReady, &[]);
        let limit_range = finding(Kind::AdmissionDenied, &[("admission", "limit_range")]);
        let quota = finding(Kind::AdmissionDenied, &[("admission", "resource_quota")]);
        let webhook_denied = finding(Kind::AdmissionDenied, &[("admission", "webhook")]);
        let insufficient = finding(Kind::Unschedulable, &[("reason", "insufficient_resource")]);
        let affinity = finding(Kind::Unschedulable, &[("reason", "node_affinity")]);
        let taints = finding(Kind::Unschedulable, &[("reason", "taints")]);
        let spread_f = finding(Kind::Unschedulable, &[("reason", "topology_spread")]);
        let no_priority = finding(Kind::PriorityClassMissing, &[]);
        let no_account = finding(Kind::ServiceAccountMissing, &[]);
        let webhook_down = finding(Kind::WebhookUnavailable, &[]);
        let cordoned = finding(Kind::NodesCordoned, &[]);
        let not_ready = finding(Kind::NodesNotReady, &[]);
        let full = finding(Kind::NodesFull, &[]);
        let volume_conflict = finding(Kind::VolumeNodeConflict, &[]);
        let pvc = finding(Kind::PvcPending, &[]);
        let rows: &[(&str, &Finding, bool)] = &[
            (image, &pull, true),
            (image, &crash, true),
            (image, &never_ready, true),
            (image, &limit_range, false),
            (image, &affinity, false),
            (image, &webhook_denied, true),
            (resources, &limit_range, true),
            (resources, &quota, true),
            (resources, &insufficient, true),
            (resources, &full, true),
            (resources, &crash, true),
            (resources, &pull, false),
            (resources, &affinity, false),
            (selector, &affinity, true),
            (selector, &volume_conflict, true),
            (selector, &insufficient, false),
            (selector, &crash, false),
            (tolerations, &taints, true),
            (spread, &spread_f, true),
            (priority, &no_priority, true),
            (priority, &pull, false),
            (volume, &crash, true),
            (volume, &affinity, false),
            (secret_env, &crash, true),
            (probe, &never_ready, true),
            (probe, &crash, true),
            (probe, &pull, false),
            (command, &crash, true),
            (command, &limit_range, false),
            (account, &no_account, true),
            (account, &pull, true),
            (account, &affinity, false),
            (annotation, &pull, false),
            (annotation, &crash, false),
            (annotation, &never_ready, false),
            (annotation, &limit_range, false),
            (annotation, &affinity, false),
            (annotation, &spread_f, true),
            (annotation, &webhook_denied, true),
            // Causes outside the workload: nothing a template says moves them.
            (image, &webhook_down, false),
            (annotation, &webhook_down, false),
            (selector, &cordoned, false),
            (tolerations, &not_ready, false),
            (resources, &pvc, false),
        ];
        for (path, f, explains) in rows {
            let changed = aspects(path).into_iter().collect();
            let c = judge(f, &changed, &PodRevisions::none()).expect("a failure");
            assert_eq!(
                c.explains,
                *explains,
                "{path} vs {} {:?}: {}",
                f.kind.as_str(),
                f.data.to_json(),
                c.why
            );
            assert_eq!(
                c.by,
                if *explains {
                    Basis::Template
                } else {
                    Basis::None
                }
            );
        }
        // Nothing changed: nothing is explained.
        let c = judge(&crash, &BTreeSet::new(), &PodRevisions::none()).unwrap();
        assert!(!c.explains);
        assert_eq!(c.why, "no template change is known");
    }

    #[test]
    fn symptoms_and_facts_are_not_judged() {
        for kind in [
            Kind::RolloutStuck,
            Kind::RevisionChange,
            Kind::Partition,
            Kind::Hpa,
        ] {
            assert_eq!(depends_on(&finding(kind, &[])), None, "{kind:?}");
        }
        // A full quota on pods only fills the namespace.
        let q = finding(Kind::QuotaExhausted, &[("resource", "pods")]);
        assert_eq!(depends_on(&q), None);
        let q = finding(
            Kind::QuotaExhausted,
            &[("resource", "count/controllerrevisions.apps")],
        );
        assert_eq!(depends_on(&q).map(|d| d.len()), Some(Aspect::ALL.len()));
    }
}
