//! Serde helpers for maps keyed by ids, which JSON can only key by strings.

use crate::model::TrackId;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Reads a JSON object keyed by track ids. Inside an internally tagged enum serde hands map
/// keys over as strings, so they are parsed here.
pub(super) fn track_keyed<'de, D>(d: D) -> Result<BTreeMap<TrackId, u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = BTreeMap::<String, u32>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            k.parse::<u64>()
                .map(|id| (TrackId(id), v))
                .map_err(|_| serde::de::Error::custom(format!("track id {k:?} is not a number")))
        })
        .collect()
}
