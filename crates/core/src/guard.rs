//! The guards between a plan and a write. Pure: they see the run's outcome,
//! the agent's records and the clock, and say which objects may be acted on,
//! and why not for the others. Dry-run evaluates them the same way, so its
//! report is exactly what an apply run would do.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::selector::{NO_LABELS, Selector};

/// The label (value `true`) that opts a StatefulSet or its namespace in.
pub const OPT_IN_LABEL: &str = "stsmend.io/remediate";
/// The annotation (value `true`) on a StatefulSet or namespace that pauses
/// every write to it.
pub const PAUSE_ANNOTATION: &str = "stsmend.io/pause";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Remediations per run, across all StatefulSets: each admitted plan
    /// with writes is one (a forced rollback's revert and evictions too).
    pub max_actions: usize,
    /// After acting on a StatefulSet, leave it alone this long.
    pub cooldown: Span,
    /// Runs in a row a StatefulSet must be failing before the first action.
    pub debounce_runs: u32,
    /// Storm: more failing StatefulSets than this means the cause is the
    /// cluster; report and escalate only.
    pub storm_max_failing: usize,
    /// Storm, as a share of the StatefulSets scanned (0 to 1).
    pub storm_max_share: f64,
    /// Fewer failing than this is never a storm, whatever the share: two
    /// broken of two in a namespace-scoped run are two broken workloads.
    pub storm_min_failing: usize,
    /// Judge causes, not only counts: a StatefulSet failing on its own
    /// template change (a bad release) does not count towards a storm;
    /// those that share a cause outside the workload, or have no cause
    /// found, do. `false` counts every failing StatefulSet.
    pub storm_judges_causes: bool,
    /// Undo records are kept this long after their action...
    pub undo_keep: Span,
    /// ...and at most this many (the newest), so `stsmend-undo` never
    /// fills.
    pub undo_max_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_actions: 5,
            cooldown: Span::minutes(30),
            debounce_runs: 2,
            storm_max_failing: 10,
            storm_max_share: 0.5,
            storm_min_failing: 3,
            storm_judges_causes: true,
            undo_keep: Span::days(30),
            undo_max_records: 200,
        }
    }
}

/// Why an object's plan was not carried out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
pub enum Blocked {
    NotOptedIn,
    Paused {
        by: String,
    },
    Storm {
        /// The StatefulSets that count towards the storm.
        failing: usize,
        scanned: usize,
        /// The cause outside the workload most of them share, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        shared_cause: Option<String>,
        /// How many of them share it.
        #[serde(skip_serializing_if = "is_zero")]
        sharing: usize,
        /// How many have no cause found at all.
        #[serde(skip_serializing_if = "is_zero")]
        unexplained: usize,
        /// StatefulSets failing on their own template change besides,
        /// not counted: a bad release.
        #[serde(skip_serializing_if = "is_zero")]
        own_change: usize,
    },
    MaxActions {
        limit: usize,
    },
    Cooldown {
        until: Timestamp,
    },
    Debounce {
        seen_runs: u32,
        needed: u32,
    },
    /// The plan writes the template back, or evicts pods to force it,
    /// while another writer has put back the template the agent rolled
    /// back from: the write would only start a fight.
    Reapplied {
        writer: String,
        revision: String,
    },
    /// The plan suspends a GitOps sync, which the config does not allow
    /// (`gitops.suspendSync`).
    SuspendSyncOff {
        sync: String,
    },
    /// The plan scales the set down while its claim retention policy
    /// deletes the claims of the removed ordinals (`whenScaled: Delete`):
    /// data the agent must not destroy.
    DeletesClaims {
        claims: Vec<String>,
    },
}

impl Blocked {
    pub fn describe(&self) -> String {
        match self {
            Blocked::NotOptedIn => format!(
                "not opted in (label {OPT_IN_LABEL}=true on the StatefulSet or its namespace, or the configured selector)"
            ),
            Blocked::Paused { by } => format!("paused by {by}"),
            Blocked::Storm {
                failing,
                scanned,
                shared_cause,
                sharing,
                unexplained,
                own_change,
            } => {
                let mut why = Vec::new();
                if let Some(cause) = shared_cause {
                    why.push(format!(
                        "{sharing} share a cause outside the workload: {cause}"
                    ));
                }
                if *unexplained > 0 {
                    why.push(format!(
                        "{unexplained} fail with no cause in their own template change"
                    ));
                }
                let besides = if *own_change > 0 {
                    format!(
                        "; {own_change} more fail on their own template change (a bad release), and are held too while the cluster is in doubt"
                    )
                } else {
                    String::new()
                };
                format!(
                    "storm protection: {failing} of {scanned} StatefulSets failing at once{}{besides}; the cause is likely the cluster",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join("; "))
                    }
                )
            }
            Blocked::MaxActions { limit } => {
                format!("the run's limit of {limit} actions is used up")
            }
            Blocked::Cooldown { until } => {
                format!("cooling down after the last action until {until}")
            }
            Blocked::Debounce { seen_runs, needed } => {
                format!("seen failing in {seen_runs} run(s) in a row; acting needs {needed}")
            }
            Blocked::Reapplied { writer, revision } => format!(
                "{writer} put back the template of revision {revision} after the agent rolled back from it: the agent does not roll back from it again (or patch the template) until the template changes"
            ),
            Blocked::SuspendSyncOff { sync } => format!(
                "the plan suspends the sync of {sync}, and the config does not allow it (gitops.suspendSync: false)"
            ),
            Blocked::DeletesClaims { claims } => format!(
                "the plan scales the set down, and its persistentVolumeClaimRetentionPolicy (whenScaled: Delete) would have the controller delete {}: the agent never deletes data; scale it down by hand if that is meant",
                claims.join(", ")
            ),
        }
    }
}

/// One object's standing before the guards.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub opted_in: bool,
    /// What paused it, if anything: the config, the namespace or the object.
    pub paused: Option<String>,
    pub last_action_at: Option<Timestamp>,
    /// Consecutive runs (this one included) it has been failing.
    pub seen_runs: u32,
    /// How many mutating actions its plan holds; zero needs no admission.
    pub writes: usize,
    /// Its plan finishes the agent's own forced rollback (only evictions,
    /// after the agent's rollback whose evictions did not happen then):
    /// part of that remediation, so its cooldown does not hold it.
    pub finishes_own: bool,
    /// Another writer put back the template the agent rolled back from
    /// (writer, revision), and the plan would write the template or
    /// evict pods to force a revision.
    pub fights: Option<(String, String)>,
    /// The GitOps object the plan would suspend the sync of, when the
    /// config does not allow it.
    pub suspend_off: Option<String>,
    /// The claims the plan would have the controller delete.
    pub deletes_claims: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What a failing StatefulSet's findings blame, as storm protection needs
/// it (see [`crate::pipeline::cause_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A failure its own template change explains: one broken workload,
    /// however many others break beside it.
    OwnChange,
    /// Causes outside the workload, each as a key another StatefulSet
    /// failing on the same cause has too (`webhook x`, `node n cordoned`,
    /// `zone z`, `kube-controller-manager`).
    Outside(Vec<String>),
    /// No cause found: nothing in its own template change, nothing named
    /// outside it.
    Unexplained,
}

/// Whether the run as a whole is a storm: many StatefulSets failing that
/// share a cause outside the workload or have no cause found. Those each
/// failing on their own template change are a bad release and do not
/// count (unless `storm_judges_causes` is off). The count is the sets with
/// the most shared cause plus the unexplained ones, judged against
/// `storm_min_failing`, `storm_max_failing` and `storm_max_share`.
pub fn storm(limits: &Limits, causes: &[Cause], scanned: usize) -> Option<Blocked> {
    let own_change = causes.iter().filter(|c| **c == Cause::OwnChange).count();
    let unexplained = causes.iter().filter(|c| **c == Cause::Unexplained).count();
    let mut shared: BTreeMap<&str, usize> = BTreeMap::new();
    for c in causes {
        if let Cause::Outside(keys) = c {
            let distinct: std::collections::BTreeSet<&str> =
                keys.iter().map(String::as_str).collect();
            for k in distinct {
                *shared.entry(k).or_default() += 1;
            }
        }
    }
    // The most shared cause; the first by name on a tie, so reports are
    // stable.
    let top = shared
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(k, n)| (k.to_string(), *n));
    let (failing, shared_cause, sharing, unexplained, own) = if limits.storm_judges_causes {
        let sharing = top.as_ref().map_or(0, |t| t.1);
        (
            sharing + unexplained,
            top.map(|t| t.0),
            sharing,
            unexplained,
            own_change,
        )
    } else {
        (causes.len(), None, 0, 0, 0)
    };
    let share = if scanned == 0 {
        0.0
    } else {
        failing as f64 / scanned as f64
    };
    (failing >= limits.storm_min_failing
        && (failing > limits.storm_max_failing || share > limits.storm_max_share))
        .then_some(Blocked::Storm {
            failing,
            scanned,
            shared_cause,
            sharing,
            unexplained,
            own_change: own,
        })
}

/// Admits subjects in order until the run's action budget is spent. The
/// budget counts remediations: a plan's writes are admitted whole, and a
/// forced rollback (revert, then evictions) is one.
pub fn admit(
    limits: &Limits,
    subjects: &[Subject],
    now: Timestamp,
    storm: Option<&Blocked>,
) -> Vec<Result<(), Blocked>> {
    let mut budget = limits.max_actions;
    subjects
        .iter()
        .map(|s| {
            if s.writes == 0 {
                return Ok(());
            }
            if let Some(by) = &s.paused {
                return Err(Blocked::Paused { by: by.clone() });
            }
            if !s.opted_in {
                return Err(Blocked::NotOptedIn);
            }
            if let Some((writer, revision)) = &s.fights {
                return Err(Blocked::Reapplied {
                    writer: writer.clone(),
                    revision: revision.clone(),
                });
            }
            if let Some(sync) = &s.suspend_off {
                return Err(Blocked::SuspendSyncOff { sync: sync.clone() });
            }
            if !s.deletes_claims.is_empty() {
                return Err(Blocked::DeletesClaims {
                    claims: s.deletes_claims.clone(),
                });
            }
            if let Some(storm) = storm {
                return Err(storm.clone());
            }
            if s.seen_runs < limits.debounce_runs {
                return Err(Blocked::Debounce {
                    seen_runs: s.seen_runs,
                    needed: limits.debounce_runs,
                });
            }
            if let Some(last) = s.last_action_at
                && !s.finishes_own
            {
                let until = last
                    .checked_add(jiff::SignedDuration::from_secs(
                        limits.cooldown.as_secs() as i64
                    ))
                    .unwrap_or(last);
                if now < until {
                    return Err(Blocked::Cooldown { until });
                }
            }
            if budget == 0 {
                return Err(Blocked::MaxActions {
                    limit: limits.max_actions,
                });
            }
            budget -= 1;
            Ok(())
        })
        .collect()
}

/// Opt-in: the label on the StatefulSet or its namespace, or the operator's
/// selector on the StatefulSet's labels.
pub fn opted_in(
    sts_labels: Option<&BTreeMap<String, String>>,
    namespace_labels: Option<&BTreeMap<String, String>>,
    selector: Option<&Selector>,
) -> bool {
    let labelled = |l: Option<&BTreeMap<String, String>>| {
        l.and_then(|l| l.get(OPT_IN_LABEL))
            .is_some_and(|v| v == "true")
    };
    labelled(sts_labels)
        || labelled(namespace_labels)
        || selector.is_some_and(|s| !s.is_empty() && s.matches(sts_labels.unwrap_or(&NO_LABELS)))
}

/// The pause switch: the config key, or the annotation on the namespace or
/// the StatefulSet.
pub fn paused(
    config_pause: bool,
    sts_annotations: Option<&BTreeMap<String, String>>,
    namespace_annotations: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let set = |a: Option<&BTreeMap<String, String>>| {
        a.and_then(|a| a.get(PAUSE_ANNOTATION))
            .is_some_and(|v| v == "true")
    };
    if config_pause {
        Some("the config (pause: true)".into())
    } else if set(namespace_annotations) {
        Some(format!("the namespace annotation {PAUSE_ANNOTATION}"))
    } else if set(sts_annotations) {
        Some(format!("the StatefulSet annotation {PAUSE_ANNOTATION}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    fn ready() -> Subject {
        Subject {
            opted_in: true,
            paused: None,
            last_action_at: None,
            seen_runs: 2,
            writes: 1,
            finishes_own: false,
            fights: None,
            suspend_off: None,
            deletes_claims: Vec::new(),
        }
    }

    #[test]
    fn a_suspend_the_config_does_not_allow_is_blocked() {
        let r = one(Subject {
            suspend_off: Some("Kustomization flux-system/shop".into()),
            seen_runs: 9,
            ..ready()
        });
        let blocked = r.unwrap_err();
        assert_eq!(
            blocked,
            Blocked::SuspendSyncOff {
                sync: "Kustomization flux-system/shop".into()
            }
        );
        assert!(
            blocked.describe().contains("gitops.suspendSync: false"),
            "{}",
            blocked.describe()
        );
        // Nothing to suspend: admitted.
        assert_eq!(one(ready()), Ok(()));
    }

    #[test]
    fn a_write_that_would_fight_another_writer_is_blocked_before_any_limit() {
        let fights = Subject {
            fights: Some(("kustomize-controller".into(), "db-7f9c".into())),
            // Even a set whose cooldown ran out and that is due.
            seen_runs: 9,
            ..ready()
        };
        assert_eq!(
            one(fights.clone()),
            Err(Blocked::Reapplied {
                writer: "kustomize-controller".into(),
                revision: "db-7f9c".into()
            })
        );
        let described = one(fights).unwrap_err().describe();
        assert!(
            described.contains("kustomize-controller put back"),
            "{described}"
        );
        // Not opted in says so first: nothing would be written anyway.
        let r = one(Subject {
            opted_in: false,
            fights: Some(("argocd-controller".into(), "db-1".into())),
            ..ready()
        });
        assert_eq!(r, Err(Blocked::NotOptedIn));
    }

    fn one(s: Subject) -> Result<(), Blocked> {
        admit(&Limits::default(), &[s], now(), None).remove(0)
    }

    #[test]
    fn a_ready_subject_is_admitted() {
        assert_eq!(one(ready()), Ok(()));
    }

    #[test]
    fn opt_in_is_required() {
        assert_eq!(
            one(Subject {
                opted_in: false,
                ..ready()
            }),
            Err(Blocked::NotOptedIn)
        );
    }

    #[test]
    fn pause_wins_over_everything() {
        let r = one(Subject {
            paused: Some("x".into()),
            ..ready()
        });
        assert_eq!(r, Err(Blocked::Paused { by: "x".into() }));
    }

    #[test]
    fn debounce_waits_for_consecutive_runs() {
        let r = one(Subject {
            seen_runs: 1,
            ..ready()
        });
        assert_eq!(
            r,
            Err(Blocked::Debounce {
                seen_runs: 1,
                needed: 2
            })
        );
    }

    #[test]
    fn cooldown_holds_after_an_action() {
        let recent = Subject {
            last_action_at: Some("2026-11-22T09:50:00Z".parse().unwrap()),
            ..ready()
        };
        assert!(matches!(one(recent), Err(Blocked::Cooldown { .. })));
        let old = Subject {
            last_action_at: Some("2026-11-22T09:00:00Z".parse().unwrap()),
            ..ready()
        };
        assert_eq!(one(old), Ok(()));
    }

    #[test]
    fn max_actions_caps_the_run() {
        let limits = Limits {
            max_actions: 2,
            ..Limits::default()
        };
        let subjects = vec![ready(), ready(), ready()];
        let r = admit(&limits, &subjects, now(), None);
        assert_eq!(r[0], Ok(()));
        assert_eq!(r[1], Ok(()));
        assert_eq!(r[2], Err(Blocked::MaxActions { limit: 2 }));
    }

    fn unexplained(n: usize) -> Vec<Cause> {
        vec![Cause::Unexplained; n]
    }

    fn outside(keys: &[&str]) -> Cause {
        Cause::Outside(keys.iter().map(|k| k.to_string()).collect())
    }

    #[test]
    fn storm_blocks_every_write() {
        let limits = Limits::default();
        assert_eq!(
            storm(&limits, &unexplained(1), 1),
            None,
            "one failure is never a storm"
        );
        assert_eq!(storm(&limits, &unexplained(3), 100), None);
        let s = storm(&limits, &unexplained(11), 100).expect("over the count");
        assert!(
            storm(&limits, &unexplained(6), 10).is_some(),
            "over the share"
        );
        assert_eq!(
            storm(&limits, &unexplained(2), 2),
            None,
            "two of two is under the minimum"
        );
        assert!(storm(&limits, &unexplained(3), 4).is_some());
        let two = Limits {
            storm_min_failing: 2,
            ..Limits::default()
        };
        assert!(storm(&two, &unexplained(2), 2).is_some());
        let r = admit(&limits, &[ready()], now(), Some(&s));
        assert_eq!(r[0], Err(s));
    }

    #[test]
    fn a_bad_release_is_no_storm() {
        // Issue 13: six of nine broken, each by its own template change.
        let limits = Limits::default();
        let release = vec![Cause::OwnChange; 6];
        assert_eq!(storm(&limits, &release, 9), None);
        // Counted as before when the operator turns judging off.
        let counting = Limits {
            storm_judges_causes: false,
            ..Limits::default()
        };
        let s = storm(&counting, &release, 9).expect("six of nine by count");
        assert!(s.describe().contains("6 of 9"), "{}", s.describe());
    }

    #[test]
    fn a_shared_cause_outside_the_workload_is_a_storm() {
        let limits = Limits::default();
        let causes = vec![
            outside(&["webhook policy.example.com"]),
            outside(&["webhook policy.example.com", "node n1 cordoned"]),
            outside(&["webhook policy.example.com"]),
            outside(&["webhook policy.example.com"]),
            Cause::OwnChange,
        ];
        let s = storm(&limits, &causes, 6).expect("four of six share the webhook");
        assert_eq!(
            s,
            Blocked::Storm {
                failing: 4,
                scanned: 6,
                shared_cause: Some("webhook policy.example.com".into()),
                sharing: 4,
                unexplained: 0,
                own_change: 1,
            }
        );
        let why = s.describe();
        assert!(
            why.contains("4 share a cause outside the workload: webhook policy.example.com"),
            "{why}"
        );
        assert!(
            why.contains("1 more fail on their own template change"),
            "{why}"
        );
        // Causes outside the workload that are each a different one are
        // separate troubles, not one storm.
        let apart = vec![
            outside(&["webhook a"]),
            outside(&["webhook b"]),
            outside(&["node n1 cordoned"]),
            outside(&["zone z1"]),
        ];
        assert_eq!(storm(&limits, &apart, 6), None);
        // Unexplained failures join the largest shared cause.
        let mixed = vec![
            outside(&["zone z1"]),
            outside(&["zone z1"]),
            Cause::Unexplained,
            Cause::OwnChange,
            Cause::OwnChange,
        ];
        let s = storm(&limits, &mixed, 5).expect("three of five");
        assert!(
            matches!(
                s,
                Blocked::Storm {
                    failing: 3,
                    sharing: 2,
                    unexplained: 1,
                    ..
                }
            ),
            "{s:?}"
        );
    }

    #[test]
    fn the_budget_counts_remediations_and_a_forced_rollback_is_one() {
        let limits = Limits {
            max_actions: 2,
            ..Limits::default()
        };
        let forced = Subject {
            writes: 2,
            ..ready()
        };
        let r = admit(
            &limits,
            &[forced.clone(), forced.clone(), forced],
            now(),
            None,
        );
        assert_eq!(r[0], Ok(()));
        assert_eq!(r[1], Ok(()));
        assert_eq!(r[2], Err(Blocked::MaxActions { limit: 2 }));
    }

    #[test]
    fn finishing_the_own_forced_rollback_is_not_held_by_its_cooldown() {
        let recent = Subject {
            last_action_at: Some("2026-11-22T09:50:00Z".parse().unwrap()),
            finishes_own: true,
            fights: None,
            ..ready()
        };
        assert_eq!(one(recent.clone()), Ok(()));
        assert!(matches!(
            one(Subject {
                finishes_own: false,
                ..recent
            }),
            Err(Blocked::Cooldown { .. })
        ));
    }

    #[test]
    fn plans_without_writes_need_no_admission() {
        assert_eq!(
            one(Subject {
                opted_in: false,
                writes: 0,
                ..ready()
            }),
            Ok(())
        );
    }

    #[test]
    fn opt_in_by_label_namespace_or_selector() {
        let yes: BTreeMap<String, String> = [(OPT_IN_LABEL.to_string(), "true".to_string())].into();
        let tier: BTreeMap<String, String> = [("tier".to_string(), "db".to_string())].into();
        assert!(opted_in(Some(&yes), None, None));
        assert!(opted_in(None, Some(&yes), None));
        assert!(!opted_in(Some(&tier), None, None));
        let sel = Selector::parse("tier=db").unwrap();
        assert!(opted_in(Some(&tier), None, Some(&sel)));
        assert!(!opted_in(Some(&tier), None, Some(&Selector::default())));
    }

    #[test]
    fn pause_by_config_namespace_or_object() {
        let p: BTreeMap<String, String> =
            [(PAUSE_ANNOTATION.to_string(), "true".to_string())].into();
        assert!(paused(true, None, None).is_some());
        assert!(paused(false, None, Some(&p)).unwrap().contains("namespace"));
        assert!(
            paused(false, Some(&p), None)
                .unwrap()
                .contains("StatefulSet")
        );
        assert_eq!(paused(false, None, None), None);
    }
}
