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
        let mut records = BTreeMap::new();
        for (key, value) in cm.data.iter().flatten() {
            let record: Record = serde_json::from_str(value).map_err(|e| Error::Object {
                path: "cluster".into(),
                object: format!(
                    "ConfigMap {}/{} key {key}",
                    cm.metadata.namespace.as_deref().unwrap_or_default(),
                    CONFIG_MAP
                ),
                message: e.to_string(),
            })?;
            let id = match key.split_once('.') {
                Some((ns, name)) => format!("{ns}/{name}"),
                None => key.clone(),
            };
            records.insert(id, record);
        }
        Ok(Self { records })
    }

    /// The ConfigMap data that stores these records.
    pub fn to_data(&self) -> Result<BTreeMap<String, String>> {
        self.records
            .iter()
            .map(|(id, record)| {
                let key = id.replacen('/', ".", 1);
                serde_json::to_string(record)
                    .map(|v| (key, v))
                    .map_err(|e| Error::Encode {
                        what: "state",
                        message: e.to_string(),
                    })
            })
            .collect()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&Record> {
        self.records.get(&format!("{namespace}/{name}"))
    }
}

#[cfg(test)]
mod tests {
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
    fn an_unreadable_record_is_an_error_naming_the_key() {
        let cm = ConfigMap {
            data: Some([("shop.db".to_string(), "{nope".to_string())].into()),
            ..Default::default()
        };
        let err = State::from_config_map(&cm).unwrap_err().to_string();
        assert!(err.contains("key shop.db"), "{err}");
    }
}
