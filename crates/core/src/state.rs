//! What the agent remembers about each StatefulSet between CronJob runs.
//!
//! It lives in a ConfigMap in the agent's own namespace, never on the
//! StatefulSet, so that keeping it can never start a rollout. Losing it only
//! delays action: detection then falls back to the timestamps in the objects.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The ConfigMap that holds the state.
pub const CONFIG_MAP: &str = "stsmend-state";

/// What the records may take of the ConfigMap's 1 MiB, the rest left to
/// its metadata: a state that no longer fits would fail every run.
pub const MAX_BYTES: usize = 900 * 1024;

/// What an open alert keeps of its summary when the state is too full to
/// keep its annotations whole (its labels, which Alertmanager resolves
/// it by, are always kept).
pub const SLIM_SUMMARY_MAX: usize = 256;

/// An alert the agent sent and has not resolved yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// The object the record is about; a StatefulSet deleted and re-created
    /// under the same name starts afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// When a generation mismatch was first seen, and for which generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Seen>,
    /// Runs in a row, this one included, that found it failing (debounce).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failing_runs: u32,
    /// The agent's last write to it (cooldown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
    /// The alert open in Alertmanager about it, kept until it is resolved
    /// (crates/core/src/alerts.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<OpenAlert>,
    /// The agent's rollbacks, newest last: what it rolled back from, so a
    /// template another writer puts back is never rolled back from again
    /// (crate::diagnose::owner::reapplied). Kept while the set is healthy,
    /// for [`REVERTED_KEPT`], at most [`REVERTED_MAX`] of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverted: Vec<Reverted>,
}

/// How long a rollback is remembered after it was made.
pub const REVERTED_KEPT: crate::duration::Span = crate::duration::Span::days(7);
/// How many rollbacks of one StatefulSet are remembered.
pub const REVERTED_MAX: usize = 8;

/// One rollback the agent made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reverted {
    pub at: Timestamp,
    /// The update revision it rolled back from: the bad template.
    pub from: String,
    /// The revision it rolled back to.
    pub to: String,
}

impl Record {
    /// Remembers a rollback from `from` to `to` made at `at`.
    pub fn remember_rollback(&mut self, at: Timestamp, from: &str, to: &str) {
        self.reverted.retain(|r| r.from != from);
        self.reverted.push(Reverted {
            at,
            from: from.to_string(),
            to: to.to_string(),
        });
        let over = self.reverted.len().saturating_sub(REVERTED_MAX);
        self.reverted.drain(..over);
    }

    /// Forgets rollbacks older than [`REVERTED_KEPT`] (and any dated after
    /// `now`, which no run of the agent can have made).
    pub fn prune_reverted(&mut self, now: Timestamp) {
        let oldest = now
            .checked_sub(jiff::SignedDuration::from_secs(
                REVERTED_KEPT.as_secs() as i64
            ))
            .unwrap_or(now);
        let leeway = jiff::SignedDuration::from_secs(300);
        let latest = now.checked_add(leeway).unwrap_or(now);
        self.reverted.retain(|r| r.at >= oldest && r.at <= latest);
    }

    /// Takes in another run's rollbacks (two runs at once), newest last.
    fn merge_reverted(&mut self, theirs: &[Reverted]) {
        for r in theirs {
            if !self.reverted.contains(r) {
                self.reverted.push(r.clone());
            }
        }
        self.reverted.sort_by_key(|r| r.at);
        let mut seen = std::collections::BTreeSet::new();
        // The newest rollback from each revision.
        let mut kept: Vec<Reverted> = self
            .reverted
            .iter()
            .rev()
            .filter(|r| seen.insert(r.from.clone()))
            .cloned()
            .collect();
        kept.reverse();
        let over = kept.len().saturating_sub(REVERTED_MAX);
        kept.drain(..over);
        self.reverted = kept;
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LastAction {
    pub at: Timestamp,
    /// The action, as the report names it (`rollback`, `delete_pods`...).
    pub action: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seen {
    pub generation: i64,
    pub first_seen: Timestamp,
}

/// All records, keyed by `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub records: BTreeMap<String, Record>,
}

impl State {
    /// Reads the state ConfigMap. A record that cannot be read is an error
    /// naming its key: silently dropping it would reset a timer.
    pub fn from_config_map(cm: &ConfigMap) -> Result<Self> {
        Ok(Self {
            records: read_records(cm, CONFIG_MAP)?,
        })
    }

    /// The state saved in the objects read (or a snapshot), if any: the
    /// ConfigMap [`CONFIG_MAP`] in `namespace`.
    pub fn in_inventory(
        inv: &crate::inventory::Inventory,
        namespace: &str,
    ) -> Result<Option<Self>> {
        inv.config_maps
            .iter()
            .find(|c| {
                c.metadata.name.as_deref() == Some(CONFIG_MAP)
                    && c.metadata.namespace.as_deref() == Some(namespace)
            })
            .map(Self::from_config_map)
            .transpose()
    }

    /// The ConfigMap data that stores these records, within
    /// [`MAX_BYTES`]: past it, the open alerts keep only their labels and
    /// a short summary (a resolution needs only the labels); past that,
    /// records that only count failing runs and first sight are dropped
    /// (losing one only delays an action). The
    /// records of an action or a rollback, which hold a cooldown and the
    /// memory of a fight, are never dropped for room.
    pub fn to_data(&self) -> Result<BTreeMap<String, String>> {
        let data = write_records(&self.records, "state")?;
        if data_size(&data) <= MAX_BYTES {
            return Ok(data);
        }
        let mut slim = self.clone();
        for alert in slim.records.values_mut().filter_map(|r| r.alert.as_mut()) {
            let mut summary = alert.annotations.remove("summary").unwrap_or_default();
            crate::caps::head(&mut summary, SLIM_SUMMARY_MAX);
            alert.annotations = BTreeMap::from([("summary".to_string(), summary)]);
        }
        let mut data = write_records(&slim.records, "state")?;
        let mut size = data_size(&data);
        let droppable: Vec<String> = slim
            .records
            .iter()
            .filter(|(_, r)| r.last_action.is_none() && r.reverted.is_empty() && r.alert.is_none())
            .map(|(id, _)| id.replacen('/', ".", 1))
            .collect();
        for key in droppable.iter().rev() {
            if size <= MAX_BYTES {
                break;
            }
            if let Some(v) = data.remove(key) {
                size -= key.len() + v.len();
            }
        }
        if size > MAX_BYTES {
            return Err(Error::invalid(
                "state",
                CONFIG_MAP,
                format!(
                    "{size} bytes of records that hold actions, rollbacks and open alerts do not fit in {MAX_BYTES}"
                ),
            ));
        }
        Ok(data)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&Record> {
        self.records.get(&format!("{namespace}/{name}"))
    }

    /// Takes in what another run saved since this one read the state (two
    /// runs at once: a manual run during the CronJob's): of each
    /// StatefulSet both know, the later last action is kept, so a cooldown
    /// another run started still holds. The rest is this run's.
    pub fn merge_saved(&mut self, saved: &State) {
        for (id, record) in &mut self.records {
            let Some(theirs) = saved.records.get(id) else {
                continue;
            };
            if theirs.uid.is_some() && record.uid.is_some() && theirs.uid != record.uid {
                continue;
            }
            let later = match (&theirs.last_action, &record.last_action) {
                (Some(t), Some(o)) => t.at > o.at,
                (Some(_), None) => true,
                _ => false,
            };
            if later {
                record.last_action = theirs.last_action.clone();
            }
            record.merge_reverted(&theirs.reverted);
        }
        // A healthy set whose record only the other run kept (it rolled
        // back and the set healed): its memory of the rollback stays.
        for (id, theirs) in &saved.records {
            if !theirs.reverted.is_empty() && !self.records.contains_key(id) {
                self.records.insert(id.clone(), theirs.clone());
            }
        }
    }
}

/// Reads per-StatefulSet records from one of the agent's ConfigMaps: one
/// JSON value per key `namespace.name` (a namespace has no dots), keyed
/// `namespace/name` in memory.
pub(crate) fn read_records<T: serde::de::DeserializeOwned>(
    cm: &ConfigMap,
    name: &str,
) -> Result<BTreeMap<String, T>> {
    let mut records = BTreeMap::new();
    for (key, value) in cm.data.iter().flatten() {
        let record = serde_json::from_str(value).map_err(|source| Error::Record {
            object: format!(
                "ConfigMap {}/{name} key {key}",
                cm.metadata.namespace.as_deref().unwrap_or_default()
            ),
            source,
        })?;
        records.insert(key.replacen('.', "/", 1), record);
    }
    Ok(records)
}

/// The ConfigMap data for records read by [`read_records`].
fn data_size(data: &BTreeMap<String, String>) -> usize {
    data.iter().map(|(k, v)| k.len() + v.len()).sum()
}

pub(crate) fn write_records<T: Serialize>(
    records: &BTreeMap<String, T>,
    what: &'static str,
) -> Result<BTreeMap<String, String>> {
    records
        .iter()
        .map(|(id, record)| {
            serde_json::to_string(record)
                .map(|v| (id.replacen('/', ".", 1), v))
                .map_err(|e| Error::encode(what, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    fn failing_only(i: usize) -> (String, Record) {
        (
            format!("ns/set-{i:05}"),
            Record {
                uid: Some(format!("uid-{i:05}-{}", "u".repeat(200))),
                failing_runs: 3,
                ..Default::default()
            },
        )
    }

    fn alerted(i: usize) -> (String, Record) {
        let annotations = BTreeMap::from([
            (
                "summary".to_string(),
                format!("set-{i} needs a person: {}", "why ".repeat(400)),
            ),
            ("description".to_string(), "- finding\n".repeat(300)),
        ]);
        (
            format!("ns/alerted-{i:05}"),
            Record {
                alert: Some(OpenAlert {
                    labels: BTreeMap::from([(
                        "alertname".to_string(),
                        "StsmendEscalation".to_string(),
                    )]),
                    annotations,
                    starts_at: "2026-12-03T10:00:00Z".parse().unwrap(),
                }),
                ..Default::default()
            },
        )
    }

    fn size(data: &BTreeMap<String, String>) -> usize {
        data.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    #[test]
    fn a_state_within_the_limit_is_kept_whole() {
        let state = State {
            records: (0..50)
                .map(alerted)
                .chain((0..50).map(failing_only))
                .collect(),
        };
        let data = state.to_data().unwrap();
        assert!(size(&data) <= MAX_BYTES);
        let back = State::from_config_map(&ConfigMap {
            data: Some(data),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn a_state_past_the_limit_slims_its_alerts_then_drops_counts_only() {
        // 400 open alerts of ~4.5 KiB each: 1.8 MB whole.
        let mut state = State {
            records: (0..400).map(alerted).collect(),
        };
        let last = Record {
            last_action: Some(LastAction {
                at: "2026-12-03T10:00:00Z".parse().unwrap(),
                action: "rollback".into(),
                why: "w".into(),
            }),
            ..Default::default()
        };
        state.records.insert("ns/acted".into(), last.clone());
        let data = state.to_data().unwrap();
        assert!(size(&data) <= MAX_BYTES, "{}", size(&data));
        let back = State::from_config_map(&ConfigMap {
            data: Some(data),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(back.records.len(), 401, "every alert kept");
        let a = back.records["ns/alerted-00007"].alert.as_ref().unwrap();
        assert_eq!(a.labels["alertname"], "StsmendEscalation");
        assert_eq!(a.annotations.keys().collect::<Vec<_>>(), ["summary"]);
        assert!(a.annotations["summary"].len() <= SLIM_SUMMARY_MAX);
        assert_eq!(back.records["ns/acted"], last);

        // Thousands of sets that only count failing runs besides: some
        // counts go; the alerts and the action stay.
        state.records.extend((0..5000).map(failing_only));
        let data = state.to_data().unwrap();
        assert!(size(&data) <= MAX_BYTES, "{}", size(&data));
        assert!(data.contains_key("ns.acted"));
        assert_eq!(
            data.keys().filter(|k| k.starts_with("ns.alerted-")).count(),
            400
        );
        let counts = data.keys().filter(|k| k.starts_with("ns.set-")).count();
        assert!(counts > 0 && counts < 5000, "{counts}");
    }

    use super::*;

    #[test]
    fn round_trips_through_config_map_data() {
        let mut state = State::default();
        state.records.insert(
            "shop/db".into(),
            Record {
                uid: Some("u1".into()),
                mismatch: Some(Seen {
                    generation: 3,
                    first_seen: "2026-11-22T10:00:00Z".parse().unwrap(),
                }),
                failing_runs: 2,
                last_action: Some(LastAction {
                    at: "2026-11-22T10:05:00Z".parse().unwrap(),
                    action: "rollback".into(),
                    why: "crash loop".into(),
                }),
                alert: Some(OpenAlert {
                    labels: [("alertname".to_string(), "StsmendEscalation".to_string())].into(),
                    annotations: Default::default(),
                    starts_at: "2026-11-22T10:05:00Z".parse().unwrap(),
                }),
                reverted: vec![Reverted {
                    at: "2026-11-22T10:05:00Z".parse().unwrap(),
                    from: "db-7c9d8f6b54".into(),
                    to: "db-5d8f7c9b6d".into(),
                }],
            },
        );
        let data = state.to_data().unwrap();
        assert!(data.contains_key("shop.db"));
        let cm = ConfigMap {
            data: Some(data),
            ..Default::default()
        };
        assert_eq!(State::from_config_map(&cm).unwrap(), state);
    }

    #[test]
    fn merging_keeps_the_later_action_of_another_run() {
        let action = |at: &str, what: &str| LastAction {
            at: at.parse().unwrap(),
            action: what.into(),
            why: String::new(),
        };
        let record = |last: Option<LastAction>| Record {
            uid: Some("u1".into()),
            failing_runs: 1,
            last_action: last,
            ..Default::default()
        };
        // This run saw db failing and did nothing (its revert conflicted);
        // the other run rolled it back meanwhile.
        let mut ours = State::default();
        ours.records.insert("shop/db".into(), record(None));
        ours.records.insert(
            "shop/web".into(),
            record(Some(action("2026-11-22T10:00:00Z", "rollback"))),
        );
        let mut saved = State::default();
        saved.records.insert(
            "shop/db".into(),
            record(Some(action("2026-11-22T10:05:00Z", "rollback"))),
        );
        saved.records.insert(
            "shop/web".into(),
            record(Some(action("2026-11-22T09:00:00Z", "delete_pods"))),
        );
        saved.records.insert("shop/gone".into(), record(None));
        ours.merge_saved(&saved);
        assert_eq!(
            ours.records["shop/db"].last_action,
            Some(action("2026-11-22T10:05:00Z", "rollback"))
        );
        assert_eq!(
            ours.records["shop/web"].last_action,
            Some(action("2026-11-22T10:00:00Z", "rollback")),
            "ours is later"
        );
        assert!(
            !ours.records.contains_key("shop/gone"),
            "this run's records only"
        );
        // A set re-created under the same name starts afresh.
        let mut fresh = State::default();
        let mut r = record(None);
        r.uid = Some("u2".into());
        fresh.records.insert("shop/db".into(), r);
        fresh.merge_saved(&saved);
        assert_eq!(fresh.records["shop/db"].last_action, None);
    }

    #[test]
    fn an_unreadable_record_is_an_error_naming_the_key() {
        let cm = ConfigMap {
            data: Some([("shop.db".to_string(), "{nope".to_string())].into()),
            ..Default::default()
        };
        let err = State::from_config_map(&cm).unwrap_err().to_string();
        assert!(err.contains("key shop.db"), "{err}");
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn rollbacks_are_remembered_once_per_revision_newest_last_and_capped() {
        let mut r = Record::default();
        r.remember_rollback(t("2026-11-22T10:00:00Z"), "db-bad", "db-good");
        r.remember_rollback(t("2026-11-22T11:00:00Z"), "db-worse", "db-good");
        r.remember_rollback(t("2026-11-22T12:00:00Z"), "db-bad", "db-good");
        let froms: Vec<&str> = r.reverted.iter().map(|x| x.from.as_str()).collect();
        assert_eq!(froms, ["db-worse", "db-bad"]);
        assert_eq!(r.reverted[1].at, t("2026-11-22T12:00:00Z"));
        for i in 0..20 {
            r.remember_rollback(t("2026-11-23T10:00:00Z"), &format!("db-{i}"), "db-good");
        }
        assert_eq!(r.reverted.len(), REVERTED_MAX);
        assert_eq!(r.reverted.last().unwrap().from, "db-19");
    }

    #[test]
    fn old_and_future_dated_rollbacks_are_forgotten() {
        let mut r = Record::default();
        r.remember_rollback(t("2026-11-10T10:00:00Z"), "db-old", "db-good");
        r.remember_rollback(t("2026-11-22T09:00:00Z"), "db-recent", "db-good");
        r.remember_rollback(t("2027-01-01T00:00:00Z"), "db-forged", "db-good");
        r.prune_reverted(t("2026-11-22T10:00:00Z"));
        let froms: Vec<&str> = r.reverted.iter().map(|x| x.from.as_str()).collect();
        assert_eq!(froms, ["db-recent"]);
    }

    #[test]
    fn merging_keeps_both_runs_rollbacks_and_a_healed_sets_memory() {
        let mut ours = State::default();
        let mut mine = Record {
            uid: Some("u1".into()),
            ..Default::default()
        };
        mine.remember_rollback(t("2026-11-22T09:00:00Z"), "db-a", "db-good");
        ours.records.insert("shop/db".into(), mine);
        let mut saved = State::default();
        let mut theirs = Record {
            uid: Some("u1".into()),
            ..Default::default()
        };
        theirs.remember_rollback(t("2026-11-22T09:30:00Z"), "db-b", "db-good");
        theirs.remember_rollback(t("2026-11-22T09:40:00Z"), "db-a", "db-good");
        saved.records.insert("shop/db".into(), theirs.clone());
        // Another set the other run rolled back, healthy in this run.
        saved.records.insert("shop/web".into(), theirs);
        ours.merge_saved(&saved);
        let db = &ours.records["shop/db"];
        let got: Vec<(&str, Timestamp)> = db
            .reverted
            .iter()
            .map(|x| (x.from.as_str(), x.at))
            .collect();
        assert_eq!(
            got,
            [
                ("db-b", t("2026-11-22T09:30:00Z")),
                ("db-a", t("2026-11-22T09:40:00Z"))
            ]
        );
        assert_eq!(ours.records["shop/web"].reverted.len(), 2);
    }

    #[test]
    fn a_record_that_names_an_unknown_field_is_refused() {
        let cm = ConfigMap {
            data: Some(
                [(
                    "shop.db".to_string(),
                    r#"{"reverted":[{"at":"2026-11-22T09:00:00Z","from":"a","to":"b","by":"x"}]}"#
                        .to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let err = State::from_config_map(&cm).unwrap_err().to_string();
        assert!(err.contains("key shop.db"), "{err}");
    }
}
