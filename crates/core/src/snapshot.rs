//! `stsmend snapshot`: what a live run read, written so that `stsmend plan
//! --from` replays the same decisions. The time it was taken travels with it
//! in a marker ConfigMap, so a replay uses the same `now`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::{Error, Result};
use crate::inventory::Inventory;

pub const MARKER: &str = "stsmend-snapshot";
const TAKEN_AT: &str = "takenAt";

/// Adds the marker that records when the snapshot was taken.
pub fn mark(inv: &mut Inventory, namespace: &str, taken_at: Timestamp) {
    inv.config_maps
        .retain(|c| c.metadata.name.as_deref() != Some(MARKER));
    inv.config_maps.push(ConfigMap {
        metadata: ObjectMeta {
            name: Some(MARKER.into()),
            namespace: Some(namespace.into()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "stsmend".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        data: Some(
            [
                (TAKEN_AT.to_string(), taken_at.to_string()),
                ("stsmendVersion".to_string(), crate::VERSION.to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    });
}

/// When the snapshot in this inventory was taken, if it is one.
pub fn taken_at(inv: &Inventory) -> Result<Option<Timestamp>> {
    let Some(cm) = inv
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(MARKER))
    else {
        return Ok(None);
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(TAKEN_AT)) else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|e| {
        Error::invalid(
            "snapshot time",
            text.clone(),
            format!("ConfigMap {MARKER} data.{TAKEN_AT}: {e}"),
        )
    })
}

/// The snapshot as YAML, a `v1 List`.
pub fn to_yaml(inv: &Inventory) -> Result<String> {
    let list = inv.to_list()?;
    serde_saphyr::to_string(&list).map_err(|e| Error::encode("snapshot", e))
}
