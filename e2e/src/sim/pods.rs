//! The pod half of the simulated kubelet: for every pod bound to a simulated
//! node it computes the status a v1.20 kubelet would report at this moment,
//! from the pod's faults (see [`super::faults`]) and how long the pod has
//! existed, patches it when it differs from what the API holds, records the
//! kubelet's events, and finishes deletions.
//!
//! Status is a function of time rather than a stored state machine, so a
//! restarted API server, a missed tick or a restarted simulation converges to
//! the same answer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, Preconditions};
use serde_json::{Value, json};

use super::events::{EventType, Involved};
use super::faults::{PodFaults, normalize_image};
use super::nodes::{hash128, patch_params};
use super::{POD_SYNC_INTERVAL, Shared, not_found, time};

/// How long a failed pull reports ErrImagePull before ImagePullBackOff.
const PULL_FAILS_FOR: SignedDuration = SignedDuration::from_secs(2);
/// How often a failing pull is retried (each retry is another set of events).
const PULL_RETRY: SignedDuration = SignedDuration::from_secs(10);
/// How long a crashing container runs before it exits with code 1.
const CRASH_AFTER: SignedDuration = SignedDuration::from_millis(1500);
/// The cap of the doubling restart back-off (1 s, 2 s, 4 s, 8 s, 8 s, ...):
/// a real kubelet's 10 s to 5 min, compressed so scenarios stay short.
const BACKOFF_CAP: SignedDuration = SignedDuration::from_secs(8);
/// How often a never-ready container's readiness probe fails (an event each).
const PROBE_PERIOD: SignedDuration = SignedDuration::from_secs(10);

/// The conditions the kubelet owns; PodScheduled is the scheduler's.
const KUBELET_CONDITIONS: [&str; 3] = ["Initialized", "ContainersReady", "Ready"];

/// What the simulation remembers per pod (by uid) between ticks.
struct PodState {
    /// When the kubelet "started" the pod: status.startTime.
    started: Timestamp,
    /// (pod IP, host IP), allocated once.
    ips: Option<(String, String)>,
    /// Condition type -> (status, lastTransitionTime).
    transitions: HashMap<String, (String, String)>,
    /// Event marks already recorded, so each happens once.
    emitted: HashSet<String>,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let mut states: HashMap<String, PodState> = HashMap::new();
    let mut failing = false;
    let mut tick = tokio::time::interval(POD_SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let active: HashSet<String> = shared
            .nodes()
            .nodes
            .values()
            .filter(|n| n.registered && n.heartbeats)
            .map(|n| n.spec.name.clone())
            .collect();
        let pods = match api
            .list(&ListParams::default().fields("spec.nodeName!="))
            .await
        {
            Ok(list) => {
                if failing {
                    tracing::info!("listing pods works again");
                    failing = false;
                }
                list.items
            }
            Err(e) => {
                // Warn once per outage: an API server restart would otherwise
                // log this every tick.
                if !failing {
                    tracing::warn!("listing pods (retrying every tick): {e}");
                    failing = true;
                }
                continue;
            }
        };
        let mut seen = HashSet::new();
        for pod in pods {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            seen.insert(uid.clone());
            let on_ours = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| active.contains(n));
            if on_ours {
                sync(&shared, &api, &mut states, uid, pod).await;
            }
        }
        states.retain(|uid, _| {
            let keep = seen.contains(uid);
            if !keep {
                shared.recorder.forget(uid);
            }
            keep
        });
    }
}

async fn sync(
    shared: &Shared,
    all: &Api<Pod>,
    states: &mut HashMap<String, PodState>,
    uid: String,
    pod: Pod,
) {
    let now = Timestamp::now();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let state = states.entry(uid.clone()).or_insert_with(|| PodState {
        // A pod the simulation finds already started (the simulation was
        // restarted) keeps its clock.
        started: status.start_time.as_ref().map_or(now, |t| t.0),
        ips: status.pod_ip.clone().zip(status.host_ip.clone()),
        transitions: HashMap::new(),
        emitted: HashSet::new(),
    });
    let faults = PodFaults::of(&pod);
    let subject = Involved {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: ns.clone(),
        name: name.clone(),
        uid: uid.clone(),
        field_path: None,
    };

    if let Some(deleted) = &pod.metadata.deletion_timestamp {
        emit_kills(shared, state, &pod, &subject, &node).await;
        // deletionTimestamp is already "deleted at + grace period": the time a
        // container that takes its whole grace period to stop would be gone.
        let done_at = if faults.slow_terminate {
            deleted.0
        } else {
            now
        };
        if now >= done_at {
            finish_deletion(all, &ns, &name, &uid).await;
        }
        return;
    }

    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        // Terminal: the API rejects moving back, and nothing here ends pods.
        return;
    }

    if state.ips.is_none() {
        state.ips = shared.allocate_pod_ip(&node);
    }
    let Some(ips) = state.ips.clone() else {
        return;
    };

    let plan = plan(&pod, &faults, state.started, now);
    emit_marks(shared, state, &plan, &subject, &node).await;
    let desired = desired_status(state, &status, &plan, &ips, now);
    write_status(all, &ns, &name, &status, desired, plan.phase).await;
}

/// `subject` (the pod) narrowed to one of its containers.
fn at(subject: &Involved, field_path: String) -> Involved {
    Involved {
        field_path: Some(field_path),
        ..subject.clone()
    }
}

/// The kubelet's Killing event for each container of a pod being deleted.
async fn emit_kills(
    shared: &Shared,
    state: &mut PodState,
    pod: &Pod,
    subject: &Involved,
    node: &str,
) {
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        if state.emitted.insert(format!("{}/kill", c.name)) {
            let message = format!("Stopping container {}", c.name);
            shared
                .recorder
                .emit(
                    &at(subject, field_path(false, &c.name)),
                    Some(node),
                    EventType::Normal,
                    "Killing",
                    &message,
                )
                .await;
        }
    }
}

/// The events of the plan's marks not recorded on an earlier tick.
async fn emit_marks(
    shared: &Shared,
    state: &mut PodState,
    plan: &Plan,
    subject: &Involved,
    node: &str,
) {
    for mark in &plan.marks {
        if !state.emitted.insert(mark.key.clone()) {
            continue;
        }
        for (kind, reason, message) in &mark.events {
            shared
                .recorder
                .emit(
                    &at(subject, mark.field_path.clone()),
                    Some(node),
                    *kind,
                    reason,
                    message,
                )
                .await;
        }
    }
}

/// The status the kubelet would report now, as the JSON of the patch.
fn desired_status(
    state: &mut PodState,
    actual: &PodStatus,
    plan: &Plan,
    (pod_ip, host_ip): &(String, String),
    now: Timestamp,
) -> Value {
    let mut conditions = Vec::new();
    let not_ready = (!plan.unready.is_empty()).then(|| {
        (
            "ContainersNotReady",
            format!(
                "containers with unready status: [{}]",
                plan.unready.join(" ")
            ),
        )
    });
    let not_initialized = (!plan.uninitialized.is_empty()).then(|| {
        (
            "ContainersNotInitialized",
            format!(
                "containers with incomplete status: [{}]",
                plan.uninitialized.join(" ")
            ),
        )
    });
    for (type_, failed) in [
        ("Initialized", &not_initialized),
        ("ContainersReady", &not_ready),
        ("Ready", &not_ready),
    ] {
        let value = if failed.is_some() { "False" } else { "True" };
        let since = transition_time(state, actual, type_, value, now);
        let mut c = json!({"type": type_, "status": value, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some((reason, message)) = failed {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        conditions.push(c);
    }
    let mut desired = json!({
        "phase": plan.phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": time(state.started),
        "containerStatuses": plan.statuses,
    });
    if !plan.init_statuses.is_empty() {
        desired["initContainerStatuses"] = json!(plan.init_statuses);
    }
    desired
}

/// Patches `desired` over `actual` unless the API already holds it.
async fn write_status(
    all: &Api<Pod>,
    ns: &str,
    name: &str,
    actual: &PodStatus,
    desired: Value,
    phase: &str,
) {
    let typed: PodStatus = match serde_json::from_value(desired.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(pod = %name, "built an invalid pod status: {e}");
            return;
        }
    };
    if fingerprint(&typed) == fingerprint(actual) {
        return;
    }
    let api: Api<Pod> = Api::namespaced(all.clone().into_client(), ns);
    // Strategic merge: conditions merge by type, so PodScheduled and
    // readiness-gate conditions written by others survive; container status
    // lists have no merge key and are replaced whole.
    match api
        .patch_status(
            name,
            &patch_params(),
            &Patch::Strategic(json!({"status": desired})),
        )
        .await
    {
        Ok(_) => {
            tracing::debug!(pod = %format!("{ns}/{name}"), phase, "status written")
        }
        Err(e) if not_found(&e) => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), "writing status: {e}"),
    }
}

async fn finish_deletion(all: &Api<Pod>, ns: &str, name: &str, uid: &str) {
    let api: Api<Pod> = Api::namespaced(all.clone().into_client(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        // Never delete a successor that reuses the name (StatefulSet pods).
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => tracing::debug!(pod = %format!("{ns}/{name}"), "deletion finished"),
        Err(e) if not_found(&e) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), "finishing deletion: {e}"),
    }
}

/// lastTransitionTime of a kubelet condition: kept while its status stays.
fn transition_time(
    state: &mut PodState,
    actual: &PodStatus,
    type_: &str,
    value: &str,
    now: Timestamp,
) -> String {
    if let Some((s, t)) = state.transitions.get(type_)
        && s == value
    {
        return t.clone();
    }
    let from_api = actual
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == value)
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| time(t.0));
    let t = from_api.unwrap_or_else(|| time(now));
    state
        .transitions
        .insert(type_.to_string(), (value.to_string(), t.clone()));
    t
}

/// What decides whether the status needs writing: everything a reader of
/// pod state looks at, nothing that only moves with the clock.
fn fingerprint(s: &PodStatus) -> String {
    let mut out = format!("{:?} {:?} {:?}|", s.phase, s.pod_ip, s.host_ip);
    let mut conds: Vec<String> = s
        .conditions
        .iter()
        .flatten()
        .filter(|c| KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    conds.sort();
    out.push_str(&conds.join(","));
    for cs in s
        .init_container_statuses
        .iter()
        .flatten()
        .chain(s.container_statuses.iter().flatten())
    {
        let state = cs.state.clone().unwrap_or_default();
        let kind = match (&state.running, &state.waiting, &state.terminated) {
            (Some(_), _, _) => "running".to_string(),
            (_, Some(w), _) => format!("waiting:{:?}", w.reason),
            (_, _, Some(t)) => format!("terminated:{:?}", t.reason),
            _ => "none".to_string(),
        };
        out.push_str(&format!(
            "|{} {} {} {} {}",
            cs.name, cs.image, cs.ready, cs.restart_count, kind
        ));
    }
    out
}

/// The kubelet's view of one pod at one moment.
struct Plan {
    phase: &'static str,
    init_statuses: Vec<Value>,
    statuses: Vec<Value>,
    /// Init containers not completed (Initialized False).
    uninitialized: Vec<String>,
    /// Containers not ready (Ready and ContainersReady False).
    unready: Vec<String>,
    marks: Vec<Mark>,
}

/// Events that happen once: the key identifies the occurrence (e.g. the
/// third restart of container `db`).
struct Mark {
    key: String,
    field_path: String,
    events: Vec<(EventType, &'static str, String)>,
}

#[derive(Debug, Clone, Copy)]
struct Terminated {
    started: Timestamp,
    finished: Timestamp,
    exit_code: i32,
    reason: &'static str,
    /// Which run of the container (0 for the first): its containerID.
    instance: u32,
}

#[derive(Debug, Clone)]
enum Run {
    /// Never started.
    Waiting {
        reason: &'static str,
        message: Option<String>,
    },
    Running {
        since: Timestamp,
        ready: bool,
        restarts: u32,
        last: Option<Terminated>,
    },
    CrashLoopBackOff {
        restarts: u32,
        last: Terminated,
    },
    Completed(Terminated),
}

fn plan(pod: &Pod, faults: &PodFaults, started: Timestamp, now: Timestamp) -> Plan {
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let elapsed = now.duration_since(started);
    let mut plan = Plan {
        phase: "Running",
        init_statuses: Vec::new(),
        statuses: Vec::new(),
        uninitialized: Vec::new(),
        unready: Vec::new(),
        marks: Vec::new(),
    };

    // Init containers run one after another; the simulation lets a pullable
    // one complete at once, and an unpullable one blocks the rest.
    let mut blocked = false;
    for c in spec.init_containers.iter().flatten() {
        let run = if blocked {
            Run::Waiting {
                reason: "PodInitializing",
                message: None,
            }
        } else if faults.unpullable.contains(&c.name) {
            blocked = true;
            pull_failure(c, elapsed, true, &mut plan.marks)
        } else {
            plan.marks.push(start_mark(c, true, 0));
            Run::Completed(Terminated {
                started,
                finished: started,
                exit_code: 0,
                reason: "Completed",
                instance: 0,
            })
        };
        if !matches!(run, Run::Completed(_)) {
            plan.uninitialized.push(c.name.clone());
        }
        plan.init_statuses.push(container_status(&uid, c, &run));
    }

    let mut never_started = 0;
    for c in &spec.containers {
        let run = if blocked {
            Run::Waiting {
                reason: "PodInitializing",
                message: None,
            }
        } else if faults.unpullable.contains(&c.name) {
            pull_failure(c, elapsed, false, &mut plan.marks)
        } else if faults.crashing.contains(&c.name) {
            crash_loop(c, started, elapsed, &mut plan.marks)
        } else {
            plan.marks.push(start_mark(c, false, 0));
            if faults.never_ready {
                let n = elapsed.as_millis() / PROBE_PERIOD.as_millis();
                plan.marks.push(Mark {
                    key: format!("{}/unhealthy-{n}", c.name),
                    field_path: field_path(false, &c.name),
                    events: vec![(
                        EventType::Warning,
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503"
                            .to_string(),
                    )],
                });
            }
            Run::Running {
                since: started,
                ready: !faults.never_ready,
                restarts: 0,
                last: None,
            }
        };
        match &run {
            Run::Running { ready: true, .. } => {}
            Run::Waiting { .. } => {
                never_started += 1;
                plan.unready.push(c.name.clone());
            }
            _ => plan.unready.push(c.name.clone()),
        }
        plan.statuses.push(container_status(&uid, c, &run));
    }
    // As v1.20's getPhase: Pending while initialising or while a container
    // has never started; a container restarting after a crash is Running.
    if blocked || never_started > 0 {
        plan.phase = "Pending";
    }
    plan
}

fn field_path(init: bool, name: &str) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

fn image(c: &Container) -> &str {
    c.image.as_deref().unwrap_or_default()
}

fn start_mark(c: &Container, init: bool, instance: u32) -> Mark {
    Mark {
        key: format!("{}/start-{instance}", c.name),
        field_path: field_path(init, &c.name),
        events: vec![
            (
                EventType::Normal,
                "Pulled",
                format!(
                    "Container image \"{}\" already present on machine",
                    image(c)
                ),
            ),
            (
                EventType::Normal,
                "Created",
                format!("Created container {}", c.name),
            ),
            (
                EventType::Normal,
                "Started",
                format!("Started container {}", c.name),
            ),
        ],
    }
}

/// ErrImagePull for [`PULL_FAILS_FOR`], then ImagePullBackOff with a retry
/// (and its events) every [`PULL_RETRY`]. The status stays ImagePullBackOff
/// between retries, so a scenario sampling it sees a stable reason.
fn pull_failure(c: &Container, elapsed: SignedDuration, init: bool, marks: &mut Vec<Mark>) -> Run {
    let image = image(c);
    let reference = normalize_image(image);
    let pull_error = format!(
        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \
         \"{reference}\": failed to resolve reference \"{reference}\": {reference}: not found"
    );
    let attempt = |key: String| Mark {
        key,
        field_path: field_path(init, &c.name),
        events: vec![
            (
                EventType::Normal,
                "Pulling",
                format!("Pulling image \"{image}\""),
            ),
            (EventType::Warning, "Failed", pull_error.clone()),
            (
                EventType::Warning,
                "Failed",
                "Error: ErrImagePull".to_string(),
            ),
        ],
    };
    marks.push(attempt(format!("{}/pull-0", c.name)));
    if elapsed < PULL_FAILS_FOR {
        return Run::Waiting {
            reason: "ErrImagePull",
            message: Some(pull_error),
        };
    }
    let retry = (elapsed - PULL_FAILS_FOR).as_millis() / PULL_RETRY.as_millis();
    if retry > 0 {
        marks.push(attempt(format!("{}/pull-{retry}", c.name)));
    }
    marks.push(Mark {
        key: format!("{}/pull-backoff-{retry}", c.name),
        field_path: field_path(init, &c.name),
        events: vec![
            (
                EventType::Normal,
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            ),
            (
                EventType::Warning,
                "Failed",
                "Error: ImagePullBackOff".to_string(),
            ),
        ],
    });
    Run::Waiting {
        reason: "ImagePullBackOff",
        message: Some(format!("Back-off pulling image \"{image}\"")),
    }
}

/// Run k starts, runs [`CRASH_AFTER`], exits 1, and waits a back-off of
/// min(2^k s, [`BACKOFF_CAP`]) before run k+1. restartCount is k during run
/// k and its back-off, like `kubectl get pods` shows it. A crashing
/// container is never ready: it dies before any readiness probe passes.
fn crash_loop(
    c: &Container,
    started: Timestamp,
    elapsed: SignedDuration,
    marks: &mut Vec<Mark>,
) -> Run {
    let mut run_start = SignedDuration::ZERO;
    let mut k: u32 = 0;
    let mut last = None;
    // Only the current run's events are recorded: a pod seen late (the
    // simulation restarted) must not replay its whole history in one tick.
    loop {
        let crash = run_start + CRASH_AFTER;
        if elapsed < crash {
            marks.push(start_mark(c, false, k));
            return Run::Running {
                since: started + run_start,
                ready: false,
                restarts: k,
                last,
            };
        }
        let exited = Terminated {
            started: started + run_start,
            finished: started + crash,
            exit_code: 1,
            reason: "Error",
            instance: k,
        };
        let backoff = backoff(k);
        if elapsed < crash + backoff {
            marks.push(start_mark(c, false, k));
            marks.push(Mark {
                key: format!("{}/backoff-{k}", c.name),
                field_path: field_path(false, &c.name),
                events: vec![(
                    EventType::Warning,
                    "BackOff",
                    "Back-off restarting failed container".to_string(),
                )],
            });
            return Run::CrashLoopBackOff {
                restarts: k,
                last: exited,
            };
        }
        last = Some(exited);
        run_start = crash + backoff;
        k += 1;
    }
}

/// The wait after run `k` of a crashing container exits.
fn backoff(k: u32) -> SignedDuration {
    SignedDuration::from_secs(1i64 << k.min(10)).min(BACKOFF_CAP)
}

fn container_id(pod_uid: &str, name: &str, instance: u32) -> String {
    let seed = format!("{pod_uid}/{name}/{instance}");
    format!(
        "containerd://{:032x}{:032x}",
        hash128(&seed),
        hash128(&format!("{seed}#"))
    )
}

fn image_id(image: &str) -> String {
    let reference = normalize_image(image);
    let repo = match reference.rfind('@') {
        Some(i) => &reference[..i],
        None => {
            let last = reference.rfind('/').map_or(0, |i| i + 1);
            reference[last..]
                .rfind(':')
                .map_or(reference.as_str(), |i| &reference[..last + i])
        }
    };
    format!(
        "{repo}@sha256:{:032x}{:032x}",
        hash128(&reference),
        hash128(&format!("{reference}#"))
    )
}

fn terminated(pod_uid: &str, name: &str, t: &Terminated) -> Value {
    json!({"terminated": {
        "exitCode": t.exit_code,
        "reason": t.reason,
        "startedAt": time(t.started),
        "finishedAt": time(t.finished),
        "containerID": container_id(pod_uid, name, t.instance),
    }})
}

fn container_status(pod_uid: &str, c: &Container, run: &Run) -> Value {
    let name = &c.name;
    let pulled = json!({
        "name": name,
        "image": normalize_image(image(c)),
        "imageID": image_id(image(c)),
    });
    let with = |mut base: Value, fields: Value| {
        if let (Some(b), Some(f)) = (base.as_object_mut(), fields.as_object()) {
            b.extend(f.clone());
        }
        base
    };
    match run {
        Run::Waiting { reason, message } => {
            let mut waiting = json!({"reason": reason});
            if let Some(m) = message {
                waiting["message"] = json!(m);
            }
            json!({
                "name": name,
                "image": image(c),
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "started": false,
                "state": {"waiting": waiting},
                "lastState": {},
            })
        }
        Run::Running {
            since,
            ready,
            restarts,
            last,
        } => with(
            pulled,
            json!({
                "ready": ready,
                "restartCount": restarts,
                "started": true,
                "containerID": container_id(pod_uid, name, *restarts),
                "state": {"running": {"startedAt": time(*since)}},
                "lastState": last.as_ref().map_or(json!({}), |t| terminated(pod_uid, name, t)),
            }),
        ),
        Run::CrashLoopBackOff { restarts, last } => with(
            pulled,
            json!({
                "ready": false,
                "restartCount": restarts,
                "started": false,
                "containerID": container_id(pod_uid, name, last.instance),
                "state": {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": format!(
                        "back-off {}s restarting failed container={name} pod={}",
                        backoff(last.instance).as_secs(),
                        pod_uid,
                    ),
                }},
                "lastState": terminated(pod_uid, name, last),
            }),
        ),
        Run::Completed(t) => with(
            pulled,
            json!({
                "ready": true,
                "restartCount": 0,
                "started": false,
                "containerID": container_id(pod_uid, name, t.instance),
                "state": terminated(pod_uid, name, t),
                "lastState": {},
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotation: Option<&str>, image: &str) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "db-0", "namespace": "ns", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "db", "image": image}]},
        }))
        .unwrap();
        if let Some(a) = annotation {
            p.metadata.annotations =
                Some([(super::super::FAULT_ANNOTATION.to_string(), a.to_string())].into());
        }
        p
    }

    fn at(pod: &Pod, secs: f64) -> Plan {
        let start: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let now = start + SignedDuration::from_secs_f64(secs);
        plan(pod, &PodFaults::of(pod), start, now)
    }

    fn state(plan: &Plan) -> (String, i64, bool) {
        let s = &plan.statuses[0];
        let st = &s["state"];
        let kind = if st.get("running").is_some() {
            "running".to_string()
        } else {
            st["waiting"]["reason"].as_str().unwrap_or("?").to_string()
        };
        (
            kind,
            s["restartCount"].as_i64().unwrap(),
            s["ready"].as_bool().unwrap(),
        )
    }

    #[test]
    fn healthy_pod_runs_and_is_ready() {
        let p = pod(None, "registry.example/app:1");
        let plan = at(&p, 0.1);
        assert_eq!(plan.phase, "Running");
        assert_eq!(state(&plan), ("running".into(), 0, true));
        assert!(plan.unready.is_empty());
        assert_eq!(plan.statuses[0]["image"], "registry.example/app:1");
    }

    #[test]
    fn unpullable_image_backs_off_and_stays_pending() {
        let p = pod(None, "registry.example/app:2-broken");
        let early = at(&p, 0.5);
        assert_eq!(early.phase, "Pending");
        assert_eq!(state(&early).0, "ErrImagePull");
        let later = at(&p, 25.0);
        assert_eq!(state(&later), ("ImagePullBackOff".into(), 0, false));
        let keys: Vec<&str> = later.marks.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["db/pull-0", "db/pull-2", "db/pull-backoff-2"]);
        let failed = &later.marks[0].events[1].2;
        assert!(
            failed.starts_with("Failed to pull image \"registry.example/app:2-broken\""),
            "{failed}"
        );
    }

    #[test]
    fn crash_loop_restarts_with_growing_count() {
        let p = pod(Some("crashloop"), "registry.example/app:1");
        // run 0: [0, 1.5) back-off 1 s; run 1: [2.5, 4) back-off 2 s; run 2 from 6.
        assert_eq!(state(&at(&p, 1.0)), ("running".into(), 0, false));
        assert_eq!(state(&at(&p, 2.0)), ("CrashLoopBackOff".into(), 0, false));
        assert_eq!(state(&at(&p, 3.0)), ("running".into(), 1, false));
        let backing_off = at(&p, 5.0);
        assert_eq!(state(&backing_off), ("CrashLoopBackOff".into(), 1, false));
        assert_eq!(
            backing_off.statuses[0]["lastState"]["terminated"]["exitCode"],
            1
        );
        assert_eq!(backing_off.phase, "Running");
        assert_eq!(state(&at(&p, 6.5)).1, 2);
        let keys: Vec<String> = backing_off.marks.iter().map(|m| m.key.clone()).collect();
        assert_eq!(keys, ["db/start-1", "db/backoff-1"]);
    }

    #[test]
    fn crash_tag_crashes_without_the_annotation() {
        let p = pod(None, "registry.example/app:1-crash");
        assert_eq!(state(&at(&p, 2.0)).0, "CrashLoopBackOff");
    }

    #[test]
    fn never_ready_runs_unready() {
        let p = pod(Some("never-ready"), "registry.example/app:1");
        let plan = at(&p, 12.0);
        assert_eq!(plan.phase, "Running");
        assert_eq!(state(&plan), ("running".into(), 0, false));
        assert!(plan.marks.iter().any(|m| m.key == "db/unhealthy-1"));
    }

    #[test]
    fn unpullable_init_container_blocks_the_pod() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "db-0", "namespace": "ns", "uid": "u1"},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox:does-not-exist"}],
                "containers": [{"name": "db", "image": "postgres:15"}],
            },
        }))
        .unwrap();
        let plan = at(&p, 5.0);
        assert_eq!(plan.phase, "Pending");
        assert_eq!(plan.uninitialized, ["init"]);
        assert_eq!(
            plan.statuses[0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
    }

    #[test]
    fn image_ids_are_digests_of_the_repository() {
        assert!(image_id("postgres:15").starts_with("docker.io/library/postgres@sha256:"));
        assert!(image_id("localhost:5000/db").starts_with("localhost:5000/db@sha256:"));
    }
}
