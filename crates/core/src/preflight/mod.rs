//! `stsmend preflight`: a StatefulSet change judged before it lands.
//!
//! For each StatefulSet in the proposed manifests: what it changes against
//! the live object ([`spec`]), what the controller will do with it
//! ([`rollout`]), and what the pods of the new template will meet, in the
//! order they meet it: the API server's admission, the claims' storage,
//! the scheduler, the kubelet's references. Each obstacle is worded as the
//! component that raises it words it, and comes from the agent's own
//! reading of the cluster's objects or, live, from the API server itself
//! (a server-side dry run).
//!
//! The prediction does not have a diagnosis of its own: the obstacles are
//! turned into the objects the cluster would hold once the rollout failed
//! ([`simulate`]) and the agent's own pipeline runs on them, so the
//! findings, their data and the plan are the ones a run would give after
//! the fact. Pure: no I/O, the live source asks the server beforehand.

mod admission;
pub mod defaults;
mod placement;
mod references;
pub mod rollout;
mod simulate;
pub mod spec;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::diagnose::{Confidence, Evidence, Finding, Kind, data};
use crate::inventory::Inventory;
use crate::pipeline::{self, Gate, Settings};
use crate::policy::{Decision, Policies};

pub use rollout::Rollout;
pub use spec::Change;

/// One StatefulSet of the change, and where its manifest declares it.
#[derive(Debug, Clone)]
pub struct Proposed {
    pub object: StatefulSet,
    pub file: Option<String>,
    pub line: Option<usize>,
}

/// What the cluster's objects say and what they cannot: a reference is only
/// called missing where the objects of its kind were read.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Namespaces whose ServiceAccounts were read.
    pub service_accounts: BTreeSet<String>,
    /// Namespaces whose ConfigMaps the template names were read (live: each
    /// by name; a snapshot: any ConfigMap of the namespace).
    pub config_maps: BTreeSet<String>,
    pub priority_classes: bool,
}

impl Known {
    /// What a snapshot holds: a kind is known where any object of it is
    /// (every namespace has its `default` ServiceAccount and its
    /// `kube-root-ca.crt` ConfigMap; every cluster its system
    /// PriorityClasses).
    pub fn from_inventory(inv: &Inventory) -> Self {
        Self {
            service_accounts: inv
                .service_accounts
                .iter()
                .filter_map(|s| s.metadata.namespace.clone())
                .collect(),
            config_maps: inv
                .config_maps
                .iter()
                .filter(|c| c.metadata.name.as_deref() != Some(crate::snapshot::MARKER))
                .filter_map(|c| c.metadata.namespace.clone())
                .collect(),
            priority_classes: !inv.priority_classes.is_empty(),
        }
    }
}

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The agent's reading of the objects.
    #[default]
    Agent,
    /// The API server, answering a server-side dry run.
    Server,
}

/// Where in a pod's way an obstacle stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The StatefulSet update itself.
    Update,
    /// The ControllerRevision the new template needs (a quota on them).
    Revision,
    Admission,
    Storage,
    Scheduling,
    Mount,
    Container,
}

/// What the simulation needs beyond the message.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Detail {
    #[default]
    None,
    Claim {
        claim: String,
        class: String,
    },
    Volume {
        volume: String,
    },
    Container {
        container: String,
    },
}

/// One thing the new template's pods will not get past.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Obstacle {
    pub stage: Stage,
    pub pods: Vec<String>,
    /// In the words of the component that will say it.
    pub message: String,
    /// The objects that predict it.
    pub evidence: Vec<Evidence>,
    pub source: Source,
    #[serde(skip)]
    pub detail: Detail,
}

/// What the API server said to the dry runs of one StatefulSet.
#[derive(Debug, Clone, Default)]
pub struct Server {
    /// The dry-run update (or create) of the StatefulSet: the object as it
    /// would be stored, or the server's refusal.
    pub stateful_set: Option<std::result::Result<StatefulSet, String>>,
    /// The dry-run create of each first pod, by the pod's name: the pod as
    /// admission left it (defaults, mutating webhooks), or the refusal.
    pub pods: BTreeMap<String, std::result::Result<Pod, String>>,
    /// The dry runs the agent was not permitted to send.
    pub not_permitted: Vec<String>,
}

/// A finding of the predicted failure, and who predicted it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicted {
    #[serde(flatten)]
    pub finding: Finding,
    pub source: Source,
}

/// Everything preflight says of one StatefulSet.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub change: Change,
    /// What the controller will do; absent when the update is refused or
    /// changes no pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Whether the rollout is predicted to fail.
    pub fails: bool,
    pub obstacles: Vec<Obstacle>,
    /// The agent's findings on the failed rollout, as a run would report
    /// them.
    pub findings: Vec<Predicted>,
    /// The kinds of those findings that are causes (not symptoms, the
    /// rollout's shape or the owner): what is compared with a run's after
    /// the change lands.
    pub causes: Vec<Kind>,
    /// The plan the policies would make on that failure, and the guards'
    /// verdict: the safety net.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// What could not be checked, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
    /// What the API server answered to the dry runs (live only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_said: Vec<String>,
}

impl Prediction {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Kinds that say what the failure looks like or what surrounds it rather
/// than what causes it.
pub fn is_cause(kind: Kind) -> bool {
    !kind.is_symptom()
        && !kind.is_context()
        && !matches!(
            kind,
            Kind::RevisionChange
                | Kind::Partition
                | Kind::MaxUnavailable
                | Kind::OrderedReadyBlocked
                | Kind::TemplateReapplied
        )
}

/// Everything a prediction is made with besides the change.
pub struct Input<'a> {
    /// The objects the change lands among (live or a snapshot).
    pub inventory: &'a Inventory,
    pub known: &'a Known,
    pub settings: &'a Settings,
    pub policies: &'a Policies,
    /// When the change lands: the snapshot's time, or now.
    pub at: Timestamp,
}

fn namespace_name(sts: &StatefulSet) -> (String, String) {
    (
        sts.metadata.namespace.clone().unwrap_or_default(),
        sts.metadata.name.clone().unwrap_or_default(),
    )
}

/// The live StatefulSet of the proposed one's namespace and name.
pub fn live<'a>(inv: &'a Inventory, sts: &StatefulSet) -> Option<&'a StatefulSet> {
    let (ns, name) = namespace_name(sts);
    inv.stateful_sets.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(&ns) && s.metadata.name.as_deref() == Some(&name)
    })
}

/// The revision name the proposed template's pods get: the controller's
/// is a hash of the template no client can compute, so a name of its own.
pub fn proposed_revision(sts: &StatefulSet) -> String {
    format!(
        "{}-proposed",
        sts.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The pods of the new template the controller makes first, as it makes
/// them: what a live preflight asks the API server to admit.
pub fn first_pods(proposed: &Proposed, inv: &Inventory) -> Vec<Pod> {
    let sts = spec::defaulted(&proposed.object);
    let live = live(inv, &sts);
    let change = spec::compare(live, &sts);
    if !change.forbidden.is_empty() {
        return Vec::new();
    }
    let step = first_step(live, &sts, &change, inv);
    let revision = proposed_revision(&step.sts);
    step.first
        .iter()
        .map(|p| rollout::pod_for(&step.sts, p, &revision))
        .collect()
}

/// The rollout a change starts and its first step.
struct Step {
    rollout: Rollout,
    /// The proposed set with the live one's identity.
    sts: StatefulSet,
    /// The pods the new template meets first: none when the quota on
    /// revisions stops the controller before any pod.
    first: Vec<String>,
    blocked: Option<Obstacle>,
}

fn first_step(
    live: Option<&StatefulSet>,
    sts: &StatefulSet,
    change: &Change,
    inv: &Inventory,
) -> Step {
    let rollout = rollout::plan(live, sts, change);
    let sts = simulate::identity(live, sts);
    // The controller records the new template as a revision before it
    // touches a pod: a quota on revisions stops it there.
    let blocked = change
        .template_changed()
        .then(|| admission::revision_quota(&sts, inv))
        .flatten();
    let first = if blocked.is_some() {
        Vec::new()
    } else {
        rollout.first.clone()
    };
    Step {
        rollout,
        sts,
        first,
        blocked,
    }
}

/// Predicts what the change does to one StatefulSet.
pub fn predict(proposed: &Proposed, input: &Input<'_>, server: Option<&Server>) -> Prediction {
    let inv = input.inventory;
    let mut sts = spec::defaulted(&proposed.object);
    let mut update_refused = None;
    match server.and_then(|s| s.stateful_set.as_ref()) {
        Some(Ok(stored)) => sts.spec = spec::defaulted(stored).spec,
        Some(Err(message)) => update_refused = Some(message.clone()),
        None => {}
    }
    let (namespace, name) = namespace_name(&sts);
    let live = live(inv, &sts);
    let change = spec::compare(live, &sts);
    let mut out = Prediction {
        namespace,
        name,
        file: proposed.file.clone(),
        line: proposed.line,
        change,
        rollout: None,
        fails: false,
        obstacles: Vec::new(),
        findings: Vec::new(),
        causes: Vec::new(),
        plan: None,
        gate: None,
        unchecked: Vec::new(),
        server_said: server.map(answers).unwrap_or_default(),
    };
    if let Some(f) = forbidden(&out, update_refused.as_deref()) {
        out.fails = true;
        out.causes = vec![Kind::UpdateForbidden];
        out.findings = vec![f];
        return out;
    }
    if let Some(message) = update_refused {
        // Refused for another reason (a webhook on StatefulSets, a quota
        // on them): nothing rolls out.
        out.fails = true;
        out.obstacles.push(Obstacle {
            stage: Stage::Update,
            pods: Vec::new(),
            message,
            evidence: Vec::new(),
            source: Source::Server,
            detail: Detail::None,
        });
        return out;
    }
    let Step {
        rollout,
        sts,
        first,
        blocked,
    } = first_step(live, &sts, &out.change, inv);
    let revision = proposed_revision(&sts);
    let mut pods = Vec::new();
    out.obstacles.extend(blocked);
    for pod_name in &first {
        let mut pod = rollout::pod_for(&sts, pod_name, &revision);
        let replaced = inv.pods.iter().find(|p| {
            p.metadata.namespace == sts.metadata.namespace
                && p.metadata.name.as_deref() == Some(pod_name)
        });
        let obstacle = match server.and_then(|s| s.pods.get(pod_name)) {
            Some(Ok(admitted)) => {
                pod = admitted.clone();
                pod.metadata.name = Some(pod_name.clone());
                None
            }
            Some(Err(message)) => Some(Obstacle {
                stage: Stage::Admission,
                pods: vec![pod_name.clone()],
                message: message.clone(),
                evidence: Vec::new(),
                source: Source::Server,
                detail: Detail::None,
            }),
            None => admission::admit(&mut pod, inv, input.known, replaced),
        }
        .or_else(|| references::claims(pod_name, &sts, inv))
        .or_else(|| placement::place(&pod, inv, &rollout.replaced))
        .or_else(|| {
            let (found, secrets) = references::config(&pod, inv, input.known);
            for s in secrets {
                let note = format!("{s}: the agent reads no Secret");
                if !out.unchecked.contains(&note) {
                    out.unchecked.push(note);
                }
            }
            found
        });
        if let Some(o) = obstacle {
            out.obstacles.push(o);
        }
        pods.push(pod);
    }
    let admitted_by_server = server.is_some_and(|s| !s.pods.is_empty());
    if !rollout.first.is_empty() {
        unchecked(&mut out, &sts, input, admitted_by_server);
    }
    out.unchecked
        .extend(server.iter().flat_map(|s| s.not_permitted.iter().cloned()));
    merge_obstacles(&mut out.obstacles);
    out.fails = !out.obstacles.is_empty();
    if out.fails {
        let world = simulate::world(inv, &sts, &rollout, &out.obstacles, &pods, input.at);
        let mut settings = input.settings.clone();
        settings.options.now = input
            .at
            .checked_add(jiff::SignedDuration::from_secs(
                settings.options.threshold.as_secs() as i64 + 1,
            ))
            .unwrap_or(input.at);
        settings.options.scope = Default::default();
        let seen = simulate::first_seen(&world, input.at);
        let run = pipeline::run(&world, Some(&seen), &settings, input.policies);
        if let Some(a) = run.outcome.failing.into_iter().next() {
            out.findings = a
                .findings
                .into_iter()
                .map(|finding| Predicted {
                    source: source_of(&finding, &out.obstacles),
                    finding,
                })
                .collect();
            out.plan = a.plan;
            out.gate = a.gate;
        }
        let mut causes: Vec<Kind> = out
            .findings
            .iter()
            .map(|p| p.finding.kind)
            .filter(|k| is_cause(*k))
            .collect();
        causes.sort_by_key(|k| k.as_str());
        causes.dedup();
        out.causes = causes;
    }
    out.rollout = Some(rollout);
    out
}

/// The dry runs' answers, one line each.
fn answers(server: &Server) -> Vec<String> {
    let mut out = Vec::new();
    match &server.stateful_set {
        Some(Ok(_)) => out.push("the StatefulSet's update: accepted".to_string()),
        Some(Err(m)) => out.push(format!("the StatefulSet's update: refused: {m}")),
        None => {}
    }
    for (pod, answer) in &server.pods {
        out.push(match answer {
            Ok(_) => format!("Pod {pod}: admitted"),
            Err(m) => format!("Pod {pod}: refused: {m}"),
        });
    }
    out
}

/// The update the API server refuses outright.
fn forbidden(p: &Prediction, server: Option<&str>) -> Option<Predicted> {
    let server_says = server.filter(|m| m.contains("Forbidden: updates to statefulset spec"));
    if p.change.forbidden.is_empty() && server_says.is_none() {
        return None;
    }
    let message = match server_says {
        Some(m) => m.to_string(),
        None => format!(
            "StatefulSet.apps \"{}\" is invalid: {}",
            p.name,
            spec::FORBIDDEN
        ),
    };
    let object = format!("StatefulSet {}/{}", p.namespace, p.name);
    let fields = p.change.forbidden.clone();
    let finding = Finding::new(
        Kind::UpdateForbidden,
        Confidence::High,
        format!(
            "the API server will refuse the update: it changes {} , which no update may change (delete and recreate the StatefulSet, keeping its pods with --cascade=orphan, to change {})",
            if fields.is_empty() { "a field".to_string() } else { fields.join(", ") },
            if fields.len() == 1 { "it" } else { "them" }
        ),
    )
    .with(Evidence::event(&object, message.clone()))
    .data(data::UpdateForbidden { fields, message });
    Some(Predicted {
        finding,
        source: if server_says.is_some() {
            Source::Server
        } else {
            Source::Agent
        },
    })
}

/// One obstacle per stage and message: the pods of a Parallel step meet
/// the same one.
fn merge_obstacles(list: &mut Vec<Obstacle>) {
    let mut merged: Vec<Obstacle> = Vec::new();
    for o in list.drain(..) {
        let strip = |o: &Obstacle| {
            o.pods
                .iter()
                .fold(o.message.clone(), |m, p| m.replace(p.as_str(), "{pod}"))
        };
        match merged
            .iter_mut()
            .find(|m| m.stage == o.stage && strip(m) == strip(&o))
        {
            Some(m) => m.pods.extend(o.pods),
            None => merged.push(o),
        }
    }
    *list = merged;
}

/// Which obstacle a finding of the simulated failure comes from.
fn source_of(f: &Finding, obstacles: &[Obstacle]) -> Source {
    let stage = if f.data.admission().is_some() || f.kind == Kind::AdmissionDenied {
        Stage::Admission
    } else if f.kind == Kind::QuotaExhausted && obstacles.iter().any(|o| o.stage == Stage::Revision)
    {
        Stage::Revision
    } else if matches!(f.kind, Kind::StorageClassMissing | Kind::PvcPending) {
        Stage::Storage
    } else if f.data.scheduling().is_some() {
        Stage::Scheduling
    } else if f.kind == Kind::VolumeMount {
        Stage::Mount
    } else if f.kind == Kind::ContainerConfig {
        Stage::Container
    } else {
        return Source::Agent;
    };
    obstacles
        .iter()
        .find(|o| o.stage == stage)
        .map_or(Source::Agent, |o| o.source)
}

/// What the objects at hand could not tell; `asked` when the API server
/// answered for the pods' admission.
fn unchecked(out: &mut Prediction, sts: &StatefulSet, input: &Input<'_>, asked: bool) {
    let ns = &out.namespace;
    let known = input.known;
    let pod = sts.spec.template.spec.as_ref();
    if !asked {
        if !known.service_accounts.contains(ns) {
            out.unchecked.push(format!(
                "ServiceAccount: the objects hold no ServiceAccount of {ns}"
            ));
        }
        if pod.and_then(|p| p.priority_class_name.as_ref()).is_some() && !known.priority_classes {
            out.unchecked
                .push("PriorityClass: the objects hold no PriorityClass".into());
        }
        let hooks = crate::facts::WebhookSummary::all(input.inventory);
        if !hooks.is_empty() {
            out.unchecked.push(format!(
                "admission webhooks ({}): only a live preflight asks them (a server-side dry run)",
                hooks
                    .iter()
                    .map(|h| h.webhook.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if !known.config_maps.contains(ns)
        && pod.is_some_and(|p| serde_json::to_string(p).is_ok_and(|t| t.contains("configMap")))
    {
        out.unchecked
            .push(format!("ConfigMap: the objects hold no ConfigMap of {ns}"));
    }
    if let Some(p) = pod {
        let inter_pod = p
            .affinity
            .as_ref()
            .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        let spread = p
            .topology_spread_constraints
            .as_ref()
            .is_some_and(|t| !t.is_empty());
        let host_ports = p
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .any(|port| port.host_port.is_some());
        for (has, what) in [
            (inter_pod, "pod affinity and anti-affinity"),
            (spread, "topology spread constraints"),
            (host_ports, "host ports"),
        ] {
            if has {
                out.unchecked.push(format!(
                    "scheduling: {what} are not judged (only the scheduler does; a dry run does not schedule)"
                ));
            }
        }
    }
    if input.inventory.nodes.is_empty() {
        out.unchecked
            .push("scheduling: the objects hold no Node".into());
    }
}
