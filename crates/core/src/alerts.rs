//! Alertmanager alerts from a run's outcome, and which of them stay open.
//!
//! One alert per StatefulSet: `StsmendEscalation` when its plan escalated
//! to a person, `StsmendActionFailed` when an action failed or the API
//! server refused it, `StsmendSyncSuspended` when the agent suspended the
//! GitOps sync that applies it (open until the sync is resumed). Every run sends the open alerts again with `endsAt`
//! ahead while the StatefulSet still fails, and sends them with `endsAt`
//! now once it no longer does: that resolved alert is how Alertmanager
//! learns the set healed. The open alerts are remembered in the state
//! ConfigMap ([`crate::state::Record::alert`]) because a healed set is no
//! longer in the outcome to rebuild them from.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::config::notify::AlertmanagerConfig;
use crate::diagnose::Kind;
use crate::execution::Status;
use crate::kinds::Data;
use crate::pipeline::{Assessment, Outcome};
pub use crate::state::OpenAlert;

pub const ESCALATION: &str = "StsmendEscalation";
pub const ACTION_FAILED: &str = "StsmendActionFailed";
/// The agent suspended a GitOps sync before rolling back: it stays open
/// while the sync stays suspended as the agent left it, healed set or not.
pub const SYNC_SUSPENDED: &str = "StsmendSyncSuspended";

/// What an alert's annotation keeps of its text (summaries and finding
/// lists quote the cluster), so alerts and the state that remembers them
/// stay small.
pub const ANNOTATION_MAX: usize = 4096;

/// The runbooks of the alerts whose conditions the agent handles.
pub const RUNBOOK_GENERATION_MISMATCH: &str = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubestatefulsetgenerationmismatch";
pub const RUNBOOK_UPDATE_NOT_ROLLED_OUT: &str = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubestatefulsetupdatenotrolledout";

/// One element of the body of `POST /api/v2/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
}

/// An alert to send about one StatefulSet.
#[derive(Debug, Clone, PartialEq)]
pub struct Posting {
    /// `namespace/name`.
    pub statefulset: String,
    pub alert: Alert,
    /// Firing (`endsAt` ahead) or resolved (`endsAt` now).
    pub firing: bool,
}

impl Posting {
    fn open(&self) -> OpenAlert {
        OpenAlert {
            labels: self.alert.labels.clone(),
            annotations: self.alert.annotations.clone(),
            starts_at: self.alert.starts_at,
        }
    }
}

/// What a run sends: new and refreshed alerts, and the resolutions of
/// those whose StatefulSet no longer fails (or whose labels changed).
///
/// `suspended` names the StatefulSets whose GitOps sync the agent
/// suspended and that is still suspended as it left it: their
/// `StsmendSyncSuspended` stays open after they heal.
pub fn plan(
    outcome: &Outcome,
    open: &BTreeMap<String, OpenAlert>,
    suspended: &BTreeSet<String>,
    now: Timestamp,
    config: &AlertmanagerConfig,
) -> Vec<Posting> {
    let ends_at = now
        .checked_add(SignedDuration::from_secs(
            i64::try_from(config.resend_within.as_secs()).unwrap_or(i64::MAX / 2),
        ))
        .unwrap_or(Timestamp::MAX);
    let firing = |id: &str, labels, annotations, starts_at| Posting {
        statefulset: id.to_string(),
        alert: Alert {
            labels,
            annotations,
            starts_at,
            ends_at,
        },
        firing: true,
    };
    let resolved = |id: &str, old: &OpenAlert| Posting {
        statefulset: id.to_string(),
        alert: Alert {
            labels: old.labels.clone(),
            annotations: old.annotations.clone(),
            starts_at: old.starts_at,
            ends_at: now,
        },
        firing: false,
    };
    let mut postings = Vec::new();
    let mut seen = BTreeSet::new();
    for a in outcome.failing.iter().chain(&outcome.pending) {
        let id = a.id();
        seen.insert(id.clone());
        let old = open.get(&id);
        match (candidate(a, config), old) {
            (Some((labels, annotations)), old) => {
                let starts_at = match old {
                    Some(o) if o.labels == labels => o.starts_at,
                    Some(o) => {
                        postings.push(resolved(&id, o));
                        now
                    }
                    None => now,
                };
                postings.push(firing(&id, labels, annotations, starts_at));
            }
            // Still failing, or pending again: the person is still needed.
            (None, Some(o)) => postings.push(firing(
                &id,
                o.labels.clone(),
                o.annotations.clone(),
                o.starts_at,
            )),
            (None, None) => {}
        }
    }
    for (id, o) in open {
        if seen.contains(id) {
            continue;
        }
        let still_suspended = suspended.contains(id)
            && o.labels.get("alertname").map(String::as_str) == Some(SYNC_SUSPENDED);
        if still_suspended {
            postings.push(firing(
                id,
                o.labels.clone(),
                o.annotations.clone(),
                o.starts_at,
            ));
        } else {
            postings.push(resolved(id, o));
        }
    }
    postings
}

/// The alerts open after the run, by StatefulSet: the firing ones, and a
/// resolution that could not be delivered (so the next run sends it
/// again).
pub fn still_open(postings: &[Posting], delivered: bool) -> BTreeMap<String, OpenAlert> {
    let mut open = BTreeMap::new();
    for p in postings.iter().filter(|p| p.firing) {
        open.insert(p.statefulset.clone(), p.open());
    }
    if !delivered {
        for p in postings.iter().filter(|p| !p.firing) {
            open.entry(p.statefulset.clone())
                .or_insert_with(|| p.open());
        }
    }
    open
}

/// The body of `POST /api/v2/alerts`.
pub fn body(postings: &[Posting]) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&postings.iter().map(|p| &p.alert).collect::<Vec<_>>())
}

/// Which alert `a` raises and its summary: an escalation first, then a
/// failed action, then a suspended sync; none without any.
fn headline(a: &Assessment) -> Option<(&'static str, String)> {
    let escalation = a.executed.iter().find(|e| {
        e.action == "escalate" && matches!(e.status, Status::Done | Status::ServerDryRun)
    });
    let failed: Vec<_> = a
        .executed
        .iter()
        .filter(|e| matches!(e.status, Status::Failed | Status::Disallowed))
        .collect();
    let id = a.id();
    let suspend = a
        .executed
        .iter()
        .flat_map(|e| &e.steps)
        .find(|s| s.step == "suspend" && s.status == Status::Done);
    Some(match (escalation, failed.first()) {
        (None, None) if suspend.is_some() => (
            SYNC_SUSPENDED,
            format!(
                "StatefulSet {id}: {}",
                suspend.map(|s| s.detail.as_str()).unwrap_or_default()
            ),
        ),
        (Some(_), _) => {
            let why = a
                .plan
                .as_ref()
                .and_then(|d| {
                    d.actions
                        .iter()
                        .find(|x| x.name() == "escalate")
                        .map(|x| x.why().to_string())
                })
                .unwrap_or_default();
            (
                ESCALATION,
                format!("StatefulSet {id} needs a person: {why}"),
            )
        }
        (None, Some(e)) => (
            ACTION_FAILED,
            format!(
                "StatefulSet {id}: {} {}: {}",
                e.action,
                e.status.as_str(),
                e.detail
            ),
        ),
        (None, None) => return None,
    })
}

/// The alert this run raises for `a`, as labels and annotations: none
/// unless an escalation was recorded or an action failed or was refused.
/// Escalations follow the Events: a dry run records none.
fn candidate(
    a: &Assessment,
    config: &AlertmanagerConfig,
) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let (alertname, summary) = headline(a)?;
    let kinds: BTreeSet<&str> = a.findings.iter().map(|f| f.kind.as_str()).collect();
    let mut labels = config.labels.clone();
    labels.insert("alertname".into(), alertname.into());
    labels.insert("namespace".into(), a.namespace.clone());
    labels.insert("statefulset".into(), a.name.clone());
    labels.insert("severity".into(), config.severity.clone());
    labels.insert(
        "findings".into(),
        kinds.into_iter().collect::<Vec<_>>().join(","),
    );
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), summary);
    let findings: Vec<String> = a
        .findings
        .iter()
        .map(|f| format!("- {}: {}", f.kind.as_str(), f.summary))
        .collect();
    annotations.insert("description".into(), findings.join("\n"));
    let cause = a
        .findings
        .iter()
        .find(|f| !f.kind.is_symptom() && !f.kind.is_context())
        .or(a.findings.first());
    if let Some(f) = cause {
        annotations.insert("cause".into(), f.summary.clone());
    }
    owner(a, &mut labels, &mut annotations);
    if let Some(d) = &a.plan {
        let steps: Vec<String> = d
            .actions
            .iter()
            .enumerate()
            .map(|(i, action)| match a.executed.get(i) {
                Some(e) if e.detail.is_empty() || e.detail == action.describe() => {
                    format!("{} ({})", action.describe(), e.status.as_str())
                }
                Some(e) => format!(
                    "{} ({}: {})",
                    action.describe(),
                    e.status.as_str(),
                    e.detail
                ),
                None => action.describe(),
            })
            .collect();
        annotations.insert(
            "plan".into(),
            format!(
                "{} by policy {}: {}",
                d.rung.as_deref().unwrap_or("no rung"),
                d.policy,
                steps.join("; ")
            ),
        );
    }
    let runbook = config.runbook_url.clone().unwrap_or_else(|| {
        let mismatch = a
            .detection
            .symptoms
            .iter()
            .any(|h| h.symptom.kind() == Kind::GenerationMismatch);
        if mismatch {
            RUNBOOK_GENERATION_MISMATCH
        } else {
            RUNBOOK_UPDATE_NOT_ROLLED_OUT
        }
        .to_string()
    });
    annotations.insert("runbook_url".into(), runbook);
    for text in annotations.values_mut() {
        crate::caps::head(text, ANNOTATION_MAX);
    }
    Some((labels, annotations))
}

/// Who owns the spec decides where the fix belongs: a label to route on
/// (the team that owns the Kustomization, say), the summary to read.
fn owner(
    a: &Assessment,
    labels: &mut BTreeMap<String, String>,
    annotations: &mut BTreeMap<String, String>,
) {
    for f in &a.findings {
        match &f.data {
            Data::SpecOwner(d) => {
                labels.insert("managed_by".into(), d.managed_by.clone());
                if let Some(owner) = &d.owner {
                    labels.insert("owner".into(), owner.clone());
                }
                annotations.insert("owner".into(), f.summary.clone());
            }
            Data::TemplateReapplied(_) => {
                annotations.insert("reapplied".into(), f.summary.clone());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::Executed;
    use crate::pipeline::Options;
    use crate::policy::Policies;

    /// A StatefulSet on a revision whose image does not pull, decided by
    /// the ladder: its outcome, with `executed` as a run would leave it.
    fn outcome(executed: &[(&str, Status)]) -> Outcome {
        outcome_of("", executed)
    }

    /// As [`outcome`], with `metadata` (YAML flow entries) added to the
    /// StatefulSet's.
    fn outcome_of(metadata: &str, executed: &[(&str, Status)]) -> Outcome {
        let mut inv = crate::inventory::Inventory::default();
        crate::source::files::parse_into(
            &mut inv,
            std::path::Path::new("t.yaml"),
            &format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: shop, uid: u1, generation: 3{metadata}}}\nspec: {{replicas: 1, selector: {{matchLabels: {{app: db}}}}, serviceName: db, template: {{metadata: {{labels: {{app: db}}}}, spec: {{containers: [{{name: db, image: db}}]}}}}}}\nstatus: {{replicas: 1, readyReplicas: 1, observedGeneration: 2}}\n"),
        )
        .unwrap();
        let opts = Options::new(
            "2026-11-22T10:00:00Z".parse().unwrap(),
            crate::duration::Span::minutes(10),
        );
        let prior = crate::pipeline::observe(
            &crate::state::State::default(),
            &crate::pipeline::evaluate(&inv, None, &opts),
            "2026-11-22T09:30:00Z".parse().unwrap(),
        );
        let mut settings = crate::pipeline::Settings::with(opts);
        settings.decide.rollback_unsafe_annotations.clear();
        let mut o =
            crate::pipeline::run(&inv, Some(&prior), &settings, &Policies::builtin()).outcome;
        assert_eq!(o.failing.len(), 1, "the fixture fails");
        o.failing[0].executed = executed
            .iter()
            .map(|(action, status)| {
                let action: crate::policy::Action = serde_json::from_value(match *action {
                    "escalate" => serde_json::json!({"action": "escalate", "why": "no rung applies"}),
                    "rollback" => serde_json::json!({"action": "rollback", "revision": 1, "name": "db-1", "why": "w"}),
                    _ => serde_json::json!({"action": "delete_pods", "pods": ["db-0"], "why": "w"}),
                })
                .unwrap();
                let detail = if *status == Status::Failed { "API said no" } else { "" };
                Executed::new(&action, *status, detail)
            })
            .collect();
        o
    }

    fn healthy() -> Outcome {
        Outcome {
            scanned: 1,
            failing: vec![],
            pending: vec![],
            exempt: vec![],
        }
    }

    fn config() -> AlertmanagerConfig {
        serde_saphyr::from_str("url: http://am:9093\nlabels: {team: db}\n").unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn every_annotation_is_capped() {
        let mut o = outcome(&[("escalate", Status::Done)]);
        o.failing[0].plan.as_mut().unwrap().actions = vec![crate::policy::Action::Escalate {
            why: "x".repeat(100_000),
        }];
        let p = plan(
            &o,
            &BTreeMap::new(),
            &BTreeSet::new(),
            t("2026-11-22T10:00:00Z"),
            &config(),
        );
        for (key, text) in &p[0].alert.annotations {
            assert!(text.len() <= ANNOTATION_MAX, "{key}: {}", text.len());
        }
        assert!(p[0].alert.annotations["summary"].ends_with("more bytes]"));
    }

    #[test]
    fn an_escalation_names_the_specs_owner_to_route_on() {
        let now = t("2026-11-22T10:00:00Z");
        let o = outcome_of(
            ", labels: {app.kubernetes.io/managed-by: Helm}, annotations: {meta.helm.sh/release-name: db, meta.helm.sh/release-namespace: shop}",
            &[("escalate", Status::Done)],
        );
        let p = plan(&o, &BTreeMap::new(), &BTreeSet::new(), now, &config());
        let alert = &p[0].alert;
        assert_eq!(alert.labels["managed_by"], "helm");
        assert_eq!(alert.labels["owner"], "Helm release shop/db");
        assert!(
            alert.annotations["owner"].contains("Helm release shop/db"),
            "{:?}",
            alert.annotations
        );
        // The owner is context, never the cause.
        assert!(!alert.annotations["cause"].contains("Helm release"));
        assert!(!alert.annotations.contains_key("reapplied"));
        // Without an owner: no owner labels.
        let plain = plan(
            &outcome(&[("escalate", Status::Done)]),
            &BTreeMap::new(),
            &BTreeSet::new(),
            now,
            &config(),
        );
        assert!(!plain[0].alert.labels.contains_key("owner"));
    }

    #[test]
    fn an_escalation_fires_with_routing_labels_and_the_findings() {
        let now = t("2026-11-22T10:00:00Z");
        let o = outcome(&[("escalate", Status::Done)]);
        let p = plan(&o, &BTreeMap::new(), &BTreeSet::new(), now, &config());
        assert_eq!(p.len(), 1);
        let a = &p[0];
        assert!(a.firing);
        assert_eq!(a.statefulset, "shop/db");
        assert_eq!(a.alert.labels["alertname"], ESCALATION);
        assert_eq!(a.alert.labels["namespace"], "shop");
        assert_eq!(a.alert.labels["statefulset"], "db");
        assert_eq!(a.alert.labels["severity"], "critical");
        assert_eq!(a.alert.labels["team"], "db");
        let kinds: Vec<&str> = o.failing[0]
            .findings
            .iter()
            .map(|f| f.kind.as_str())
            .collect();
        assert!(kinds.contains(&"generation_mismatch"), "{kinds:?}");
        for k in &kinds {
            assert!(a.alert.labels["findings"].split(',').any(|x| x == *k));
        }
        assert!(a.alert.annotations["summary"].starts_with("StatefulSet shop/db needs a person"));
        assert!(
            a.alert.annotations["plan"].contains("escalate"),
            "{:?}",
            a.alert.annotations
        );
        assert!(a.alert.annotations.contains_key("cause"));
        assert_eq!(
            a.alert.annotations["runbook_url"],
            RUNBOOK_GENERATION_MISMATCH
        );
        assert_eq!(a.alert.starts_at, now);
        assert_eq!(a.alert.ends_at, t("2026-11-22T10:30:00Z"));
        let body: serde_json::Value = serde_json::from_slice(&body(&p).unwrap()).unwrap();
        assert_eq!(body[0]["startsAt"], "2026-11-22T10:00:00Z");
        assert_eq!(body[0]["endsAt"], "2026-11-22T10:30:00Z");
        assert_eq!(body[0]["labels"]["alertname"], ESCALATION);
    }

    #[test]
    fn dry_runs_blocked_plans_and_done_writes_raise_nothing() {
        for executed in [
            vec![("escalate", Status::DryRun)],
            vec![("escalate", Status::Blocked)],
            vec![("rollback", Status::Done)],
            vec![("delete_pods", Status::Conflict)],
            vec![],
        ] {
            let p = plan(
                &outcome(&executed),
                &BTreeMap::new(),
                &BTreeSet::new(),
                t("2026-11-22T10:00:00Z"),
                &config(),
            );
            assert!(p.is_empty(), "{executed:?}: {p:?}");
        }
    }

    #[test]
    fn a_failed_or_refused_action_fires_its_own_alert() {
        for status in [Status::Failed, Status::Disallowed] {
            let p = plan(
                &outcome(&[("rollback", status)]),
                &BTreeMap::new(),
                &BTreeSet::new(),
                t("2026-11-22T10:00:00Z"),
                &config(),
            );
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].alert.labels["alertname"], ACTION_FAILED);
            assert!(
                p[0].alert.annotations["summary"]
                    .contains(&format!("rollback {}", status.as_str())),
                "{:?}",
                p[0].alert.annotations
            );
        }
    }

    #[test]
    fn an_open_alert_is_refreshed_while_failing_and_resolved_once_healthy() {
        let t1 = t("2026-11-22T10:00:00Z");
        let t2 = t("2026-11-22T10:05:00Z");
        let first = plan(
            &outcome(&[("escalate", Status::Done)]),
            &BTreeMap::new(),
            &BTreeSet::new(),
            t1,
            &config(),
        );
        let open = still_open(&first, true);
        assert_eq!(open.len(), 1);

        // Still failing, the plan escalated again: same alert, same start,
        // a later end.
        let again = plan(
            &outcome(&[("escalate", Status::Done)]),
            &open,
            &BTreeSet::new(),
            t2,
            &config(),
        );
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].alert.labels, first[0].alert.labels);
        assert_eq!(again[0].alert.starts_at, t1);
        assert_eq!(again[0].alert.ends_at, t("2026-11-22T10:35:00Z"));

        // Still failing, this run's plan is held back: refreshed all the same.
        let held = plan(
            &outcome(&[("escalate", Status::Blocked)]),
            &open,
            &BTreeSet::new(),
            t2,
            &config(),
        );
        assert_eq!(held.len(), 1);
        assert!(held[0].firing);
        assert_eq!(held[0].alert.ends_at, t("2026-11-22T10:35:00Z"));

        // Healed: resolved now, and no longer open once delivered.
        let healed = plan(&healthy(), &open, &BTreeSet::new(), t2, &config());
        assert_eq!(healed.len(), 1);
        assert!(!healed[0].firing);
        assert_eq!(healed[0].alert.labels, first[0].alert.labels);
        assert_eq!(healed[0].alert.ends_at, t2);
        assert!(still_open(&healed, true).is_empty());
        // Not delivered: kept, so the next run resolves it again.
        assert_eq!(still_open(&healed, false).len(), 1);
        assert!(
            plan(
                &healthy(),
                &BTreeMap::new(),
                &BTreeSet::new(),
                t2,
                &config()
            )
            .is_empty()
        );
    }

    #[test]
    fn a_suspended_sync_stays_alerted_until_it_is_resumed() {
        let t1 = t("2026-11-22T10:00:00Z");
        let t2 = t("2026-11-22T10:05:00Z");
        let mut o = outcome(&[("rollback", Status::Done)]);
        let e = &mut o.failing[0].executed[0];
        e.steps = vec![
            crate::execution::Step::new(
                "suspend",
                Status::Done,
                "suspended the sync of Kustomization flux-system/apps (spec.suspend: true)",
            ),
            crate::execution::Step::new("revert", Status::Done, ""),
        ];
        let first = plan(&o, &BTreeMap::new(), &BTreeSet::new(), t1, &config());
        assert_eq!(first[0].alert.labels["alertname"], SYNC_SUSPENDED);
        assert!(
            first[0].alert.annotations["summary"].contains("Kustomization flux-system/apps"),
            "{:?}",
            first[0].alert.annotations
        );
        let open = still_open(&first, true);
        // Healed, the sync still suspended as the agent left it: open.
        let suspended = BTreeSet::from(["shop/db".to_string()]);
        let later = plan(&healthy(), &open, &suspended, t2, &config());
        assert!(later[0].firing);
        assert_eq!(later[0].alert.starts_at, t1);
        // Resumed: resolved.
        let resumed = plan(&healthy(), &open, &BTreeSet::new(), t2, &config());
        assert!(!resumed[0].firing);
        // A suspend that did not go through raises no such alert.
        let mut o = outcome(&[("rollback", Status::Conflict)]);
        o.failing[0].executed[0].steps = vec![crate::execution::Step::new(
            "suspend",
            Status::Conflict,
            "gone",
        )];
        assert!(plan(&o, &BTreeMap::new(), &suspended, t1, &config()).is_empty());
    }

    #[test]
    fn new_labels_resolve_the_old_alert() {
        let t1 = t("2026-11-22T10:00:00Z");
        let t2 = t("2026-11-22T10:05:00Z");
        let open = still_open(
            &plan(
                &outcome(&[("escalate", Status::Done)]),
                &BTreeMap::new(),
                &BTreeSet::new(),
                t1,
                &config(),
            ),
            true,
        );
        let p = plan(
            &outcome(&[("rollback", Status::Failed)]),
            &open,
            &BTreeSet::new(),
            t2,
            &config(),
        );
        assert_eq!(p.len(), 2);
        assert!(!p[0].firing && p[0].alert.labels["alertname"] == ESCALATION);
        assert!(p[1].firing && p[1].alert.labels["alertname"] == ACTION_FAILED);
        assert_eq!(p[1].alert.starts_at, t2);
        let open = still_open(&p, true);
        assert_eq!(open["shop/db"].labels["alertname"], ACTION_FAILED);
    }
}
