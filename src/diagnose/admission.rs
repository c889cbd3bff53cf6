//! Writes the API server refused: pod or claim creations denied by admission
//! (FailedCreate events), and quotas used up.

use std::collections::BTreeMap;

use super::{Confidence, Evidence, Finding, Input, Kind};

/// Which admission step denied a creation, read from the error text the
/// controller copies into its FailedCreate event.
pub fn classify(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("exceeded quota") {
        "resource_quota"
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

pub fn denials(input: &Input<'_>, out: &mut Vec<Finding>) {
    let facts = input.facts;
    let sts = input.sts_ref();
    // admission class -> (latest message, count, objects it was about)
    let mut by_class: BTreeMap<&'static str, (String, i32, Vec<String>)> = BTreeMap::new();
    for e in &facts.events {
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
        let what = match class {
            "resource_quota" => "a ResourceQuota",
            "limit_range" => "a LimitRange",
            "webhook" => "an admission webhook",
            "priority_class" => "a missing PriorityClass",
            "service_account" => "a missing ServiceAccount",
            "pod_security" => "Pod Security admission",
            "invalid" => "validation (the spec is invalid)",
            _ => "the API server",
        };
        let pods: Vec<String> = targets
            .iter()
            .filter_map(|t| t.strip_prefix("Pod ").map(str::to_string))
            .collect();
        let mut f = Finding::new(
            Kind::AdmissionDenied,
            Confidence::High,
            format!(
                "creating {} is denied by {what} ({count} time{})",
                if targets.is_empty() {
                    "objects".to_string()
                } else {
                    targets.join(", ")
                },
                if count == 1 { "" } else { "s" }
            ),
        )
        .with(Evidence::event(&sts, message.clone()))
        .data("admission", class)
        .data("count", count)
        .data("message", message.clone());
        if class == "resource_quota"
            && let Some(q) = message.split("exceeded quota: ").nth(1)
        {
            f = f.data("quota", q.split(',').next().unwrap_or_default().trim());
        }
        f.pods = pods;
        out.push(f);
    }
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
    let unrecorded = out.iter().any(|f| {
        f.kind == Kind::RevisionChange
            && f.data.get("unrecorded").and_then(|v| v.as_bool()) == Some(true)
    });
    let denied = out.iter().any(|f| f.kind == Kind::AdmissionDenied);
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
                .data("quota", qname)
                .data("resource", resource.clone())
                .data("used", u.0.clone())
                .data("hard", limit.0.clone()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::classify;

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
