//! Causes outside the StatefulSet: the controller not running, and an HPA
//! steering its replicas.

use super::{Confidence, Data, Evidence, Finding, Input, Kind, data};
use crate::time::{event_time, seconds_between};

/// Slack on top of the lease duration before a lease counts as stale, so a
/// leader change in progress is not mistaken for an outage.
const LEASE_SLACK_SECONDS: u64 = 30;
/// How long the API server keeps events (kube-apiserver `--event-ttl`,
/// default one hour). Beyond it, no events is no evidence of anything.
pub const EVENT_TTL_SECONDS: u64 = 3600;

pub fn controller(input: &Input<'_>, out: &mut Vec<Finding>) {
    if !input.has_mismatch() {
        return;
    }
    let facts = input.facts;
    if let Some(lease) = &facts.controller_lease {
        let spec = lease.spec.as_ref();
        let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let duration = spec
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(15)
            .max(0) as u64;
        let holder = spec
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        if let Some(renewed) = renewed {
            let age = seconds_between(renewed, input.now);
            if age > duration + LEASE_SLACK_SECONDS {
                out.push(
                    Finding::new(
                        Kind::ControllerNotProcessing,
                        Confidence::High,
                        format!(
                            "kube-controller-manager is not running: its leader lease was last renewed {} ago (duration {duration}s)",
                            crate::duration::Span(age)
                        ),
                    )
                    .with(Evidence::field(
                        "Lease kube-system/kube-controller-manager",
                        "spec.renewTime",
                        format!("{renewed} by {holder}"),
                    ))
                    .data(data::ControllerNotProcessing {
                        source: "lease".into(),
                        lease_age_seconds: Some(age),
                    }),
                );
            }
            return;
        }
    }
    // Without a lease to read, an unexplained mismatch with no controller
    // activity since it began points at the controller.
    let explained = out.iter().any(|f| {
        f.kind.refuses_pods()
            || matches!(&f.data, Data::QuotaExhausted(q) if q.resource == "count/controllerrevisions.apps")
    });
    if explained {
        return;
    }
    let since = input
        .detection
        .symptoms
        .iter()
        .filter(|h| matches!(h.symptom, crate::detect::Symptom::GenerationMismatch { .. }))
        .find_map(|h| h.since);
    let Some(since) = since else { return };
    // Events expire: a controller that wrote its events more than the TTL
    // ago and one that never ran look the same. Without a lease there is
    // then no evidence either way, and standing aside on none would hold
    // every later rung back for good.
    if seconds_between(since, input.now) > EVENT_TTL_SECONDS {
        return;
    }
    let active = facts.events.iter().any(|e| {
        e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("statefulset-controller")
            && event_time(e).is_some_and(|t| t >= since)
    });
    if !active {
        out.push(
            Finding::new(
                Kind::ControllerNotProcessing,
                Confidence::Medium,
                format!("no sign that the StatefulSet controller has processed this object since {since}"),
            )
            .with(Evidence::field(input.sts_ref(), "status.observedGeneration", "unchanged; no statefulset-controller events since"))
            .data(data::ControllerNotProcessing {
                source: "events".into(),
                lease_age_seconds: None,
            }),
        );
    }
}

pub fn hpa(input: &Input<'_>, out: &mut Vec<Finding>) {
    let ns = input.namespace();
    for h in &input.facts.hpas {
        let name = h.metadata.name.as_deref().unwrap_or_default();
        let spec = &h.spec;
        let status = h.status.as_ref();
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let current = status.map(|s| s.current_replicas).unwrap_or_default();
        let desired = status.map(|s| s.desired_replicas).unwrap_or_default();
        let target = spec.target_cpu_utilization_percentage;
        let at_max = desired >= max && max > 0;
        out.push(
            Finding::new(
                Kind::Hpa,
                if at_max { Confidence::Medium } else { Confidence::Low },
                format!(
                    "HorizontalPodAutoscaler {name} sets the replicas: {current} now, {desired} desired, range {min}..{max}{}",
                    if at_max { "; it is at its maximum, perhaps driven by untested requests" } else { "" }
                ),
            )
            .with(Evidence::field(
                format!("HorizontalPodAutoscaler {ns}/{name}"),
                "status.desiredReplicas",
                desired.to_string(),
            ))
            .data(data::Hpa {
                hpa: name.into(),
                min,
                max,
                current,
                desired,
                target_cpu_percent: target.unwrap_or_default(),
            }),
        );
    }
}
