//! Writes the API server refused: pod or claim creations denied by admission
//! (FailedCreate events), and quotas used up.

use std::collections::BTreeMap;

use super::{Confidence, Data, Evidence, Finding, Input, Kind, data};

/// Which admission step denied a creation, read from the error text the
/// controller copies into its FailedCreate event.
pub fn classify(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("exceeded quota") {
        "resource_quota"
    } else if m.contains("failed calling webhook") {
        // The API server could not reach the webhook or it did not answer
        // in time: nothing about the pod was judged.
        "webhook_unavailable"
    } else if m.contains("admission webhook") {
        "webhook"
    } else if m.contains("priorityclass") {
        "priority_class"
    } else if m.contains("service account") || m.contains("serviceaccount") {
        "service_account"
    } else if m.contains("podsecurity") || m.contains("pod security") {
        "pod_security"
    } else if m.contains("usage per container")
        || m.contains("usage per pod")
        || m.contains("limit to request ratio")
        || m.contains("usage per persistentvolumeclaim")
        || m.contains("minimum ") && m.contains("usage per")
    {
        "limit_range"
    } else if m.contains(" is invalid") {
        "invalid"
    } else {
        "other"
    }
}

/// The first double-quoted name after `marker`: `failed calling webhook
/// "x.example.com": ...` gives `x.example.com`.
pub(super) fn quoted_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &message[message.find(marker)? + marker.len()..];
    let rest = rest.trim_start().strip_prefix('"')?;
    rest.split_once('"').map(|(name, _)| name)
}

/// Why a webhook could not be called, in the words of Go's net/http:
/// the last part of `Post "https://...": dial tcp ...: connect: connection
/// refused`.
fn call_failure(message: &str) -> String {
    let after = message
        .split_once("failed calling webhook")
        .map(|(_, r)| r)
        .unwrap_or(message);
    // Skip the quoted webhook name and the quoted URL.
    let tail = after.rsplit_once("\": ").map(|(_, t)| t).unwrap_or(after);
    let lower = tail.to_ascii_lowercase();
    for known in [
        "connection refused",
        "context deadline exceeded",
        "i/o timeout",
        "no endpoints available",
        "no route to host",
        "certificate",
        "not found",
    ] {
        if lower.contains(known) {
            return known.to_string();
        }
    }
    tail.trim().to_string()
}

/// A name in `no PriorityClass with name gold was found`.
fn priority_class_of(message: &str) -> Option<&str> {
    let rest = &message[message.find("PriorityClass with name ")? + 24..];
    rest.split_whitespace().next()
}

/// A name in `serviceaccount "db" not found`.
fn service_account_of(message: &str) -> Option<&str> {
    quoted_after(message, "serviceaccount").or_else(|| quoted_after(message, "service account"))
}

pub fn denials(input: &Input<'_>, out: &mut Vec<Finding>) {
    let sts = input.sts_ref();
    // admission class -> (latest message, count, objects it was about)
    let mut by_class: BTreeMap<&'static str, (String, i32, Vec<String>)> = BTreeMap::new();
    for e in input.events() {
        if e.involved_object.kind.as_deref() != Some("StatefulSet") {
            continue;
        }
        let reason = e.reason.as_deref().unwrap_or_default();
        if reason != "FailedCreate" && reason != "FailedUpdate" {
            continue;
        }
        let message = e.message.clone().unwrap_or_default();
        let class = classify(&message);
        let target = message
            .strip_prefix("create ")
            .and_then(|r| r.split(" in StatefulSet").next())
            .unwrap_or_default()
            .to_string();
        let entry = by_class.entry(class).or_default();
        entry.0 = message;
        entry.1 += e.count.unwrap_or(1);
        if !target.is_empty() && !entry.2.contains(&target) {
            entry.2.push(target);
        }
    }
    for (class, (message, count, targets)) in by_class {
        let pods: Vec<String> = targets
            .iter()
            .filter_map(|t| t.strip_prefix("Pod ").map(str::to_string))
            .collect();
        let objects = if targets.is_empty() {
            "objects".to_string()
        } else {
            targets.join(", ")
        };
        let mut f = refusal(input, class, &message, count, &objects)
            .with(Evidence::event(&sts, message.clone()));
        f.pods = pods;
        out.push(f);
    }
}

/// The finding for one class of refusal, from its latest message and how
/// often it happened.
fn refusal(input: &Input<'_>, class: &str, message: &str, count: i32, objects: &str) -> Finding {
    let times = format!("{count} time{}", if count == 1 { "" } else { "s" });
    let base = data::Admission {
        admission: class.into(),
        count,
        message: message.to_string(),
    };
    match class {
        "webhook_unavailable" => {
            let webhook = quoted_after(message, "failed calling webhook").unwrap_or("unknown");
            let failure = call_failure(message);
            let registered = input.facts.webhooks.iter().find(|w| w.webhook == webhook);
            let f = Finding::new(
                Kind::WebhookUnavailable,
                Confidence::High,
                format!(
                    "creating {objects} fails: admission webhook {webhook}{} cannot be called ({failure}; {times})",
                    registered
                        .map(|w| format!(
                            " ({} {}, calling {}, failurePolicy {})",
                            w.kind,
                            w.configuration,
                            w.calls,
                            w.failure_policy.as_deref().unwrap_or("Fail")
                        ))
                        .unwrap_or_default()
                ),
            )
            .data(data::WebhookUnavailable {
                base,
                webhook: webhook.into(),
                failure,
                configuration: registered.map(|w| w.configuration.clone()),
                configuration_kind: registered.map(|w| w.kind.to_string()),
                calls: registered.map(|w| w.calls.clone()),
            });
            match registered {
                Some(w) => f.with(Evidence::field(
                    format!("{} {}", w.kind, w.configuration),
                    format!("webhooks[{}].clientConfig", w.webhook),
                    w.calls.clone(),
                )),
                None => f,
            }
        }
        "priority_class" => {
            let name = priority_class_of(message).unwrap_or("unknown");
            Finding::new(
                Kind::PriorityClassMissing,
                Confidence::High,
                format!("creating {objects} fails: PriorityClass {name} does not exist ({times})"),
            )
            .data(data::PriorityClassMissing {
                base,
                priority_class: name.into(),
            })
        }
        "service_account" => {
            let name = service_account_of(message).unwrap_or("unknown");
            Finding::new(
                Kind::ServiceAccountMissing,
                Confidence::High,
                format!(
                    "creating {objects} fails: ServiceAccount {}/{name} does not exist ({times})",
                    input.namespace()
                ),
            )
            .data(data::ServiceAccountMissing {
                base,
                service_account: name.into(),
            })
        }
        _ => denied(input, class, message, base, objects, &times),
    }
}

/// A denial that names no missing object: a quota, a LimitRange, a
/// webhook's verdict, Pod Security, or the pod's own validation (with the
/// LimitRange whose default limit made it invalid).
fn denied(
    input: &Input<'_>,
    class: &str,
    message: &str,
    base: data::Admission,
    objects: &str,
    times: &str,
) -> Finding {
    let what = match class {
        "resource_quota" => "a ResourceQuota".to_string(),
        "limit_range" => "a LimitRange".to_string(),
        "webhook" => format!(
            "admission webhook {}",
            quoted_after(message, "admission webhook").unwrap_or("unknown")
        ),
        "pod_security" => "Pod Security admission".to_string(),
        "invalid" => "validation (the spec is invalid)".to_string(),
        _ => "the API server".to_string(),
    };
    let webhook = (class == "webhook")
        .then(|| quoted_after(message, "admission webhook"))
        .flatten();
    let quota = (class == "resource_quota")
        .then(|| message.split("exceeded quota: ").nth(1))
        .flatten()
        .map(|q| q.split(',').next().unwrap_or_default().trim());
    let gives = (class == "invalid")
        .then(|| limit_given(input, message))
        .flatten();
    let what = match &gives {
        Some((range, resource, limit, from)) => format!(
            "validation: the {resource} request is above the limit {limit} that LimitRange {range} gives containers that set none (its {from})"
        ),
        None => what,
    };
    let mut f = Finding::new(
        Kind::AdmissionDenied,
        Confidence::High,
        format!("creating {objects} is denied by {what} ({times})"),
    )
    .data(data::AdmissionDenied {
        base,
        quota: quota.map(Into::into),
        webhook: webhook.map(Into::into),
        limit_range: gives.as_ref().map(|g| g.0.clone()),
    });
    if let Some((range, resource, limit, from)) = gives {
        f = f.with(Evidence::field(
            format!("LimitRange {range}"),
            format!("spec.limits[type=Container].{from}.{resource}"),
            limit,
        ));
    }
    f
}

/// The LimitRange that gives a container the limit its request is above,
/// for the API's "must be less than or equal to memory limit": its
/// `namespace/name`, the resource, the limit, and where it comes from
/// (`default`, or `max`, which the server makes the default when none is
/// set).
fn limit_given(input: &Input<'_>, message: &str) -> Option<(String, String, String, &'static str)> {
    let rest = message.split("must be less than or equal to ").nth(1)?;
    let resource = rest.split(" limit").next()?.trim().to_string();
    input.facts.limit_ranges.iter().find_map(|r| {
        let item = r
            .spec
            .as_ref()?
            .limits
            .iter()
            .find(|i| i.type_ == "Container")?;
        let (limit, from) = match item.default.as_ref().and_then(|d| d.get(&resource)) {
            Some(q) => (q, "default"),
            None => (item.max.as_ref()?.get(&resource)?, "max"),
        };
        Some((
            format!(
                "{}/{}",
                r.metadata.namespace.as_deref().unwrap_or_default(),
                r.metadata.name.as_deref().unwrap_or_default()
            ),
            resource.clone(),
            limit.0.clone(),
            from,
        ))
    })
}

/// Quotas at their limit in the namespace. A full
/// `count/controllerrevisions.apps` quota blocks every template change
/// without any FailedCreate event, on every Kubernetes version. It is this
/// StatefulSet's cause (high confidence) when its newest template has no
/// revision, or when its generation is not observed and no admission denial
/// explains that; a StatefulSet of the same namespace that fails for
/// another reason (a pod its quota denies) only shares the namespace.
pub fn quotas(input: &Input<'_>, out: &mut Vec<Finding>) {
    let ns = input.namespace();
    let unrecorded = out
        .iter()
        .any(|f| matches!(&f.data, Data::RevisionChange(r) if r.unrecorded == Some(true)));
    let denied = out.iter().any(|f| f.kind.refuses_pods());
    let blocks_this_rollout = unrecorded || (input.has_mismatch() && !denied);
    for q in &input.facts.resource_quotas {
        let qname = q.metadata.name.as_deref().unwrap_or_default();
        let Some(status) = q.status.as_ref() else {
            continue;
        };
        let (Some(hard), Some(used)) = (status.hard.as_ref(), status.used.as_ref()) else {
            continue;
        };
        for (resource, limit) in hard {
            let Some(u) = used.get(resource) else {
                continue;
            };
            let (Some(l), Some(uv)) = (
                crate::quantity::parse(&limit.0),
                crate::quantity::parse(&u.0),
            ) else {
                continue;
            };
            if uv < l {
                continue;
            }
            let revisions = resource == "count/controllerrevisions.apps";
            let confidence = if revisions && blocks_this_rollout {
                Confidence::High
            } else {
                Confidence::Medium
            };
            out.push(
                Finding::new(
                    Kind::QuotaExhausted,
                    confidence,
                    format!(
                        "ResourceQuota {qname}: {resource} used {} of {}{}",
                        u.0,
                        limit.0,
                        if revisions { "; the controller cannot record a new revision, so template changes are not rolled out" } else { "" }
                    ),
                )
                .with(Evidence::field(
                    format!("ResourceQuota {ns}/{qname}"),
                    format!("status.used[{resource}]"),
                    format!("{} (hard {})", u.0, limit.0),
                ))
                .data(data::QuotaExhausted {
                    quota: qname.into(),
                    resource: resource.clone(),
                    used: u.0.clone(),
                    hard: limit.0.clone(),
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_webhook_and_why_it_cannot_be_called() {
        let refused = r#"create Pod db-1 in StatefulSet db failed error: Internal error occurred: failed calling webhook "guard.example.com": Post "https://guard.webhooks.svc:443/validate?timeout=5s": dial tcp 10.96.0.12:443: connect: connection refused"#;
        assert_eq!(classify(refused), "webhook_unavailable");
        assert_eq!(
            quoted_after(refused, "failed calling webhook"),
            Some("guard.example.com")
        );
        assert_eq!(call_failure(refused), "connection refused");
        let slow = r#"create Pod db-1 in StatefulSet db failed error: Internal error occurred: failed calling webhook "slow.example.com": Post "https://slow.webhooks.svc:443/?timeout=10s": context deadline exceeded"#;
        assert_eq!(classify(slow), "webhook_unavailable");
        assert_eq!(call_failure(slow), "context deadline exceeded");
        let denied = r#"create Pod db-0 in StatefulSet db failed error: admission webhook "deny.example.com" denied the request: images from docker.io are not allowed"#;
        assert_eq!(classify(denied), "webhook");
        assert_eq!(
            quoted_after(denied, "admission webhook"),
            Some("deny.example.com")
        );
        assert_eq!(
            priority_class_of(
                r#"pods "db-0" is forbidden: no PriorityClass with name gold was found"#
            ),
            Some("gold")
        );
        assert_eq!(
            service_account_of(
                r#"pods "db-0" is forbidden: error looking up service account shop/db: serviceaccount "db" not found"#
            ),
            Some("db")
        );
    }

    #[test]
    fn classifies_admission_messages() {
        assert_eq!(
            classify(
                r#"create Pod db-2 in StatefulSet db failed error: pods "db-2" is forbidden: maximum memory usage per Container is 1Gi, but limit is 4Gi"#
            ),
            "limit_range"
        );
        assert_eq!(
            classify(
                r#"create Pod db-3 in StatefulSet db failed error: pods "db-3" is forbidden: exceeded quota: compute, requested: cpu=1, used: cpu=2, limited: cpu=2"#
            ),
            "resource_quota"
        );
        assert_eq!(
            classify(
                r#"create Pod db-0 in StatefulSet db failed error: pods "db-0" is forbidden: no PriorityClass with name gold was found"#
            ),
            "priority_class"
        );
        assert_eq!(
            classify(
                r#"create Pod db-0 in StatefulSet db failed error: admission webhook "deny.example.com" denied the request: no"#
            ),
            "webhook"
        );
        assert_eq!(
            classify(
                r#"create Pod db-0 in StatefulSet db failed error: Pod "db-0" is invalid: spec.containers[0].image: Required value"#
            ),
            "invalid"
        );
        assert_eq!(
            classify(
                r#"create Pod db-0 in StatefulSet db failed error: pods "db-0" is forbidden: error looking up service account shop/db: serviceaccount "db" not found"#
            ),
            "service_account"
        );
    }
}
