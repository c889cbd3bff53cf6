//! The pods: containers that crash or cannot pull, pods never Ready, pods
//! terminating (perhaps running a migration), evicted or preempted pods.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::{Confidence, Evidence, Finding, Input, Kind, data, pod_ref};
use crate::facts::{NodeSummary, REVISION_LABEL};
use crate::time::seconds_between;

const PULL_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];
/// Restarts past which a container that is momentarily running still counts
/// as crash looping.
const CRASH_RESTARTS: i32 = 3;
/// A grace period past this is long enough to hold a rollout noticeably.
const LONG_GRACE_SECONDS: i64 = 300;

fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

/// The revision a pod runs, from the controller's label.
pub(crate) fn revision(p: &Pod) -> Option<&String> {
    p.metadata.labels.as_ref()?.get(REVISION_LABEL)
}

fn statuses(p: &Pod) -> impl Iterator<Item = (&'static str, &ContainerStatus)> {
    let s = p.status.as_ref();
    let init = s
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten();
    let main = s
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten();
    init.map(|c| ("initContainerStatuses", c))
        .chain(main.map(|c| ("containerStatuses", c)))
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn containers(input: &Input<'_>, out: &mut Vec<Finding>) {
    let ns = input.namespace();
    for pod in &input.facts.pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let pname = name(pod);
        let obj = pod_ref(ns, pname);
        let mut troubled = false;
        for (list, c) in statuses(pod) {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            let reason = waiting
                .and_then(|w| w.reason.as_deref())
                .unwrap_or_default();
            let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
            let field = format!("status.{list}[{}].state.waiting.reason", c.name);
            if PULL_REASONS.contains(&reason) {
                troubled = true;
                out.push(image_pull(pod, c, &obj, field, reason, &message));
            } else if reason == "CreateContainerConfigError" {
                troubled = true;
                out.push(container_config(input, pod, c, &obj, field, &message));
            } else if let Some(kill) = restarted(input, pod, c, reason) {
                troubled = true;
                out.push(crash_loop(input, pod, list, c, kill));
            }
        }
        if troubled || is_ready(pod) || unready_node(input.facts, pod).is_some() {
            // On a NotReady node the kubelet no longer reports readiness:
            // node_not_ready names that cause, not the pod.
            continue;
        }
        // Running but not Ready for the whole threshold: a readiness probe that
        // never passes, or an app that never starts serving.
        let status = pod.status.as_ref();
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        let not_ready_since = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Ready" && c.status != "True")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
        if running
            && let Some(since) = not_ready_since
            && seconds_between(since, input.now) >= input.threshold.as_secs()
        {
            out.push(
                Finding::new(
                    Kind::NeverReady,
                    Confidence::Medium,
                    format!(
                        "{pname}: running but not Ready for {}",
                        crate::duration::Span(seconds_between(since, input.now))
                    ),
                )
                .with(Evidence::field(
                    &obj,
                    "status.conditions[Ready]",
                    format!("False since {since}"),
                ))
                .pod(pname)
                .data(data::NeverReady {
                    revision: revision(pod).cloned().unwrap_or_default(),
                }),
            );
        }
    }
}

/// The node the pod is bound to, where it is known not to be Ready.
fn unready_node<'a>(facts: &'a crate::facts::Facts, pod: &Pod) -> Option<&'a NodeSummary> {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())?;
    facts.nodes.iter().find(|x| x.name == node && !x.ready)
}

/// Pods being deleted: inside their grace period they may be running a
/// migration on shutdown (wait); past it they are stuck.
pub fn termination(input: &Input<'_>, out: &mut Vec<Finding>) {
    let ns = input.namespace();
    for pod in &input.facts.pods {
        let Some(deadline) = pod.metadata.deletion_timestamp.as_ref().map(|t| t.0) else {
            continue;
        };
        let pname = name(pod);
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        let marker = input.migration_annotations.iter().find_map(|key| {
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .map(|v| format!("{key}={v}"))
        });
        let within = input.now < deadline;
        let remaining = deadline.as_second() - input.now.as_second();
        let summary = if within {
            format!(
                "{pname} is terminating, {remaining}s left of its {grace}s grace period{}",
                if marker.is_some() {
                    "; a migration marker is set"
                } else {
                    ""
                }
            )
        } else {
            format!(
                "{pname} is stuck terminating, {}s past its deadline",
                -remaining
            )
        };
        let mut f = Finding::new(Kind::PodTerminating, Confidence::High, summary)
            .with(Evidence::field(
                pod_ref(ns, pname),
                "metadata.deletionTimestamp",
                deadline.to_string(),
            ))
            .pod(pname)
            .data(data::PodTerminating {
                within_grace: within,
                grace_seconds: grace,
                remaining_seconds: remaining,
                migration: marker.is_some() || (within && grace > LONG_GRACE_SECONDS),
            });
        if let Some(m) = marker {
            f = f.with(Evidence::field(
                pod_ref(ns, pname),
                "metadata.annotations",
                m,
            ));
        }
        out.push(f);
    }
    let grace = input
        .facts
        .stateful_set
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds);
    if let Some(g) = grace.filter(|g| *g > LONG_GRACE_SECONDS) {
        out.push(
            Finding::new(
                Kind::LongGracePeriod,
                Confidence::Medium,
                format!(
                    "terminationGracePeriodSeconds is {g}: each pod replaced may take up to {}",
                    crate::duration::Span(g as u64)
                ),
            )
            .with(Evidence::field(
                input.sts_ref(),
                "spec.template.spec.terminationGracePeriodSeconds",
                g.to_string(),
            ))
            .data(data::LongGracePeriod { grace_seconds: g }),
        );
    }
}

/// Evictions, preemptions and pods on nodes that stopped reporting.
pub fn disruption(input: &Input<'_>, out: &mut Vec<Finding>) {
    let ns = input.namespace();
    let facts = input.facts;
    for pod in &facts.pods {
        let pname = name(pod);
        let status = pod.status.as_ref();
        if status.and_then(|s| s.reason.as_deref()) == Some("Evicted") {
            out.push(
                Finding::new(
                    Kind::Evicted,
                    Confidence::High,
                    format!("{pname} was evicted"),
                )
                .with(Evidence::field(
                    pod_ref(ns, pname),
                    "status.reason",
                    status
                        .and_then(|s| s.message.clone())
                        .unwrap_or_else(|| "Evicted".into()),
                ))
                .pod(pname),
            );
        }
        if let Some(n) = unready_node(facts, pod) {
            out.push(
                Finding::new(
                    Kind::NodeNotReady,
                    Confidence::High,
                    format!("{pname} runs on node {} which is not Ready", n.name),
                )
                .with(Evidence::field(
                    format!("Node {}", n.name),
                    "status.conditions[Ready]",
                    "not True",
                ))
                .pod(pname)
                .data(data::NodeNotReady {
                    node: n.name.clone(),
                }),
            );
        }
    }
    // A preempted pod was replaced since, so its events name an earlier
    // incarnation: only the time window applies.
    let since = input.evidence_since();
    let mut preempted: Vec<&k8s_openapi::api::core::v1::Event> = facts
        .events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Preempted"))
        .filter(|e| since.is_none_or(|s| crate::time::event_time(e).is_none_or(|t| t >= s)))
        .collect();
    preempted.dedup_by_key(|e| e.involved_object.name.clone());
    for e in preempted {
        let pname = e.involved_object.name.clone().unwrap_or_default();
        let priority = facts
            .stateful_set
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.clone());
        out.push(
            Finding::new(
                Kind::Preempted,
                Confidence::High,
                format!(
                    "{pname} was preempted by a higher-priority pod (template priority class: {})",
                    priority.as_deref().unwrap_or("none")
                ),
            )
            .with(Evidence::event(
                pod_ref(ns, &pname),
                e.message.clone().unwrap_or_default(),
            ))
            .pod(pname)
            .data(data::Preempted {
                priority_class: priority.unwrap_or_default(),
            }),
        );
    }
}

/// Whether the container crash loops: `Some(why the kubelet ended it, if
/// it did)`. A container its startup or liveness probe got restarted counts
/// from its first restart while it is still not ready: a v1.20 kubelet
/// restarts it only at the pod's next periodic sync, so it may never show
/// CrashLoopBackOff nor reach the restarts a crashing program does.
fn restarted(
    input: &Input<'_>,
    pod: &Pod,
    c: &ContainerStatus,
    reason: &str,
) -> Option<Option<Kill>> {
    let Some(last) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) else {
        return (reason == "CrashLoopBackOff").then_some(None);
    };
    let term_reason = last.reason.as_deref().unwrap_or_default();
    let kill = killed_by(input, pod, c, term_reason);
    let probe_killed = kill.as_ref().is_some_and(|k| k.by != "oom");
    let looping = reason == "CrashLoopBackOff"
        || (!c.ready
            && (c.restart_count >= CRASH_RESTARTS || (probe_killed && c.restart_count >= 1)));
    looping.then_some(kill)
}

/// Of a previous log, the lines a finding quotes, and how much of each: a
/// program's last words say why it quit; a long trace is for `kubectl logs`.
const LOG_QUOTE_LINES: usize = 5;
const LOG_QUOTE_CHARS: usize = 200;

/// The last non-blank lines the container's previous run wrote, where its
/// log was read, each cut to [`LOG_QUOTE_CHARS`].
fn last_lines(input: &Input<'_>, pod: &str, container: &str) -> Option<Vec<String>> {
    let log = input
        .facts
        .logs
        .iter()
        .find(|l| l.pod == pod && l.container == container)?;
    let lines: Vec<&str> = log
        .text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let quoted: Vec<String> = lines[lines.len().saturating_sub(LOG_QUOTE_LINES)..]
        .iter()
        .map(|l| match l.char_indices().nth(LOG_QUOTE_CHARS) {
            Some((cut, _)) => format!("{}…", &l[..cut]),
            None => l.to_string(),
        })
        .collect();
    (!quoted.is_empty()).then_some(quoted)
}

/// Why the kubelet, not the program, ended a crash-looping container.
struct Kill {
    /// `oom`, `startup_probe` or `liveness_probe`.
    by: &'static str,
    /// What the summary says about it.
    said: String,
    memory_limit: Option<String>,
    evidence: Option<Evidence>,
}

/// An OOM kill (with the limit it hit), or a startup or liveness probe
/// that failed and made the kubelet restart the container (the kubelet's
/// `Killing` event, and its `Unhealthy` event with the probe's output). A
/// container killed for a probe often exits cleanly: without this it would
/// look like an application that quits.
fn killed_by(input: &Input<'_>, pod: &Pod, c: &ContainerStatus, term_reason: &str) -> Option<Kill> {
    let obj = pod_ref(input.namespace(), name(pod));
    if term_reason == "OOMKilled" {
        let limit = container_spec(pod, &c.name)
            .and_then(|spec| {
                spec.resources
                    .as_ref()?
                    .limits
                    .as_ref()?
                    .get("memory")
                    .cloned()
            })
            .map(|q| q.0);
        return Some(Kill {
            by: "oom",
            said: match &limit {
                Some(l) => format!("killed for memory at its {l} limit"),
                None => "killed for memory (no limit of its own: the node ran out)".into(),
            },
            evidence: limit.as_ref().map(|l| {
                Evidence::field(
                    &obj,
                    format!("spec.containers[{}].resources.limits.memory", c.name),
                    l.clone(),
                )
            }),
            memory_limit: limit,
        });
    }
    let about_pod = |e: &&k8s_openapi::api::core::v1::Event| {
        e.involved_object.kind.as_deref() == Some("Pod")
            && e.involved_object.name.as_deref() == Some(name(pod))
    };
    for (probe, by) in [("startup", "startup_probe"), ("liveness", "liveness_probe")] {
        let killing = format!("Container {} failed {probe} probe", c.name);
        let killed = input.events().filter(about_pod).any(|e| {
            e.reason.as_deref() == Some("Killing")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(&killing))
        });
        if !killed {
            continue;
        }
        let prefix = format!(
            "{}{} probe failed: ",
            probe[..1].to_uppercase(),
            &probe[1..]
        );
        let output = input
            .events()
            .filter(about_pod)
            .filter(|e| e.reason.as_deref() == Some("Unhealthy"))
            .filter_map(|e| e.message.as_deref()?.strip_prefix(&prefix))
            .last()
            .map(|m| m.trim().to_string());
        return Some(Kill {
            by,
            said: format!(
                "restarted by the kubelet for failing its {probe} probe{}",
                output
                    .as_ref()
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default()
            ),
            memory_limit: None,
            evidence: Some(Evidence::field(
                &obj,
                "events[Killing]",
                format!(
                    "{killing}, will be restarted{}",
                    output
                        .map(|o| format!("; {probe} probe output: {o}"))
                        .unwrap_or_default()
                ),
            )),
        });
    }
    None
}

fn container_spec<'p>(
    pod: &'p Pod,
    container: &str,
) -> Option<&'p k8s_openapi::api::core::v1::Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container)
}

/// The object a CreateContainerConfigError message names, as
/// (kind, name, key): the kubelet's messages for env and envFrom
/// references (`couldn't find key K in Secret NS/NAME`, `secret "NAME" not
/// found`, `configmap "NAME" not found`, and the ConfigMap twins).
pub fn config_reference(message: &str) -> Option<(&'static str, String, Option<String>)> {
    if let Some(rest) = message.strip_prefix("couldn't find key ") {
        let (key, rest) = rest.split_once(" in ")?;
        let (kind, object) = rest.split_once(' ')?;
        let kind = match kind {
            "Secret" => "Secret",
            "ConfigMap" => "ConfigMap",
            _ => return None,
        };
        let name = object.rsplit_once('/').map_or(object, |(_, n)| n);
        return Some((kind, name.trim().to_string(), Some(key.to_string())));
    }
    for (prefix, kind) in [("secret \"", "Secret"), ("configmap \"", "ConfigMap")] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (name, tail) = rest.split_once('"')?;
            if tail.trim() == "not found" {
                return Some((kind, name.to_string(), None));
            }
        }
    }
    None
}

/// A container whose image the kubelet cannot pull.
fn image_pull(
    pod: &Pod,
    c: &ContainerStatus,
    obj: &str,
    field: String,
    reason: &str,
    message: &str,
) -> Finding {
    let pname = name(pod);
    Finding::new(
        Kind::ImagePull,
        Confidence::High,
        format!(
            "{pname}: container {} cannot pull image {}: {reason}",
            c.name, c.image
        ),
    )
    .with(Evidence::field(
        obj,
        field,
        if message.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}: {message}")
        },
    ))
    .pod(pname)
    .data(data::ImagePull {
        container: c.name.clone(),
        image: c.image.clone(),
        reason: reason.into(),
        revision: revision(pod).cloned().unwrap_or_default(),
    })
}

/// A container that crash loops: its restarts, how it last ended, what
/// ended it and what it last wrote.
fn crash_loop(
    input: &Input<'_>,
    pod: &Pod,
    list: &str,
    c: &ContainerStatus,
    kill: Option<Kill>,
) -> Finding {
    let pname = name(pod);
    let obj = pod_ref(input.namespace(), pname);
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let term_reason = last.and_then(|t| t.reason.clone()).unwrap_or_default();
    let exit = last.map(|t| t.exit_code);
    let mut f = Finding::new(
        Kind::CrashLoop,
        Confidence::High,
        format!(
            "{pname}: container {} crash loops ({} restarts, last exit {}{}){}",
            c.name,
            c.restart_count,
            exit.map_or("unknown".into(), |e| e.to_string()),
            if term_reason.is_empty() {
                String::new()
            } else {
                format!(", {term_reason}")
            },
            kill.as_ref()
                .map(|k| format!(": {}", k.said))
                .unwrap_or_default()
        ),
    )
    .with(Evidence::field(
        &obj,
        format!("status.{list}[{}].restartCount", c.name),
        c.restart_count.to_string(),
    ))
    .pod(pname);
    let mut data = data::CrashLoop {
        container: c.name.clone(),
        restarts: c.restart_count,
        reason: term_reason.clone(),
        revision: revision(pod).cloned().unwrap_or_default(),
        exit_code: exit,
        ..Default::default()
    };
    if let Some(kill) = kill {
        data.killed_by = Some(kill.by.into());
        data.memory_limit = kill.memory_limit;
        if let Some(e) = kill.evidence {
            f = f.with(e);
        }
    }
    if let Some(lines) = last_lines(input, pname, &c.name) {
        f.summary
            .push_str(&format!("; it last wrote: {}", lines[lines.len() - 1]));
        f = f.with(Evidence::field(
            &obj,
            format!("log[{}] --previous", c.name),
            lines.join("\n"),
        ));
        data.log = Some(lines);
    }
    f = f.data(data);
    if let Some(exit) = exit {
        f = f.with(Evidence::field(
            &obj,
            format!("status.{list}[{}].lastState.terminated", c.name),
            format!(
                "exitCode {exit}{}{}",
                if term_reason.is_empty() {
                    String::new()
                } else {
                    format!(", reason {term_reason}")
                },
                last.and_then(|t| t.message.as_deref())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ));
    }
    f
}

/// A container the kubelet cannot even create: CreateContainerConfigError.
fn container_config(
    input: &Input<'_>,
    pod: &Pod,
    c: &ContainerStatus,
    obj: &str,
    field: String,
    message: &str,
) -> Finding {
    let pname = name(pod);
    let what = match config_reference(message) {
        Some((kind, object, Some(key))) => format!(
            "key {key} of {kind} {}/{object} is missing",
            input.namespace()
        ),
        Some((kind, object, None)) => {
            format!("{kind} {}/{object} does not exist", input.namespace())
        }
        None if message.is_empty() => "the kubelet cannot build its configuration".to_string(),
        None => message.to_string(),
    };
    let f = Finding::new(
        Kind::ContainerConfig,
        Confidence::High,
        format!("{pname}: container {} cannot be created: {what}", c.name),
    )
    .with(Evidence::field(
        obj,
        field,
        if message.is_empty() {
            "CreateContainerConfigError".to_string()
        } else {
            format!("CreateContainerConfigError: {message}")
        },
    ))
    .pod(pname);
    let mut data = data::ContainerConfig {
        container: c.name.clone(),
        message: message.to_string(),
        revision: revision(pod).cloned().unwrap_or_default(),
        ..Default::default()
    };
    if let Some((kind, object, key)) = config_reference(message) {
        data.object_kind = Some(kind.into());
        data.object = Some(object);
        data.key = key;
    }
    f.data(data)
}

#[cfg(test)]
mod kubelet_messages {
    use super::config_reference;

    #[test]
    fn config_errors_name_their_object_and_key() {
        assert_eq!(
            config_reference("couldn't find key password in Secret shop/db-creds"),
            Some(("Secret", "db-creds".into(), Some("password".into())))
        );
        assert_eq!(
            config_reference("couldn't find key LEVEL in ConfigMap shop/app-config"),
            Some(("ConfigMap", "app-config".into(), Some("LEVEL".into())))
        );
        assert_eq!(
            config_reference("secret \"db-creds\" not found"),
            Some(("Secret", "db-creds".into(), None))
        );
        assert_eq!(
            config_reference("configmap \"app-config\" not found"),
            Some(("ConfigMap", "app-config".into(), None))
        );
        assert_eq!(
            config_reference("container has runAsNonRoot and image will run as root"),
            None
        );
    }
}
