//! Reading times out of objects: the agent's only clock besides `now`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// When an event last happened: its `lastTimestamp`, `eventTime`,
/// `firstTimestamp` or creation, whichever the writer filled in.
pub fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub fn created(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// The last time anyone but a status writer changed the object's spec, from
/// `managedFields`. Metadata-only writes by the same manager move it later,
/// never earlier, so it is a safe (late) bound for when the generation changed.
pub fn last_spec_write(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref().unwrap_or_default().is_empty())
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
        })
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
}

/// Whole seconds from `since` to `now`, never negative.
pub fn seconds_between(since: Timestamp, now: Timestamp) -> u64 {
    let d = now.as_second() - since.as_second();
    d.max(0) as u64
}
