//! Changes to the lists hosts and participants keep (raised hands, the lobby), sent as deltas
//! and coalesced instead of the whole list per change: a flood of joins or hand toggles costs
//! each recipient a bounded number of small messages, not a copy of the list each time.

use super::{ParticipantId, ParticipantInfo};
use serde::{Deserialize, Serialize};

/// The raised-hands queue changed: remove `lowered` from it, then append `raised` in order.
/// Changes within one coalescing period (`HANDS_EVERY`, 250 ms) come as one message; a hand
/// raised and lowered within it appears in neither list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandsDelta {
    /// Hands lowered (or their owners gone).
    #[serde(default)]
    pub lowered: Vec<ParticipantId>,
    /// Hands raised, in arrival order, after those already queued.
    #[serde(default)]
    pub raised: Vec<ParticipantId>,
}

/// To hosts: the lobby changed: remove `left` (let in, turned away, gone or timed out), then
/// add `waiting`. Coalesced like [`HandsDelta`]; the whole list comes as `lobby` once, when a
/// host enters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyDelta {
    /// No longer waiting.
    #[serde(default)]
    pub left: Vec<ParticipantId>,
    /// Newly waiting.
    #[serde(default)]
    pub waiting: Vec<ParticipantInfo>,
}
