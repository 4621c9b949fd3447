//! Payloads of the host tools, stage invitations, reactions and the join-muted setting.
//!
//! - `react` `{emoji}`: one of [`REACTIONS`]; everyone (the sender too) gets `reaction`
//!   `{participant, emoji}`. At most [`REACTIONS_PER_SEC`] a second on average, bursts of
//!   [`REACTIONS_BURST`]; more earn `rate_limited`.
//! - Host `spotlight` `{participant | null}`: a pin for everyone; everyone gets `spotlight`
//!   (also right after `joined` while one is set). It ends when that person leaves.
//! - Host `ask_unmute` `{participant, source}`: they get `unmute_request` `{source, from}` and
//!   decide; the server never turns a microphone or camera on.
//! - Host `mute_all` `{}`: every microphone but the hosts' is muted as by `mute_participant`.
//! - Host `invite_to_stage` `{participant}` (an audience member): they get `stage_invite`
//!   `{from}` and answer `stage_answer` `{accept}`; accepting makes them a presenter (with
//!   camera and microphone off until they turn them on); hosts get `stage_answered`
//!   `{participant, accept}`. An answer without a pending invitation gets `bad_message`.
//! - Host `set_join_muted` `{above: n | null}`: people who join a room already holding `n` or
//!   more others start with their microphone off (the client honours it; default
//!   [`DEFAULT_JOIN_MUTED_ABOVE`], `null` turns it off). Carried in `room_settings` as
//!   `join_muted_above`.

use crate::model::{ParticipantId, Source};
use serde::{Deserialize, Serialize};

/// The reactions a client may send.
pub const REACTIONS: [&str; 6] = ["👍", "👏", "❤️", "😂", "😮", "🎉"];
/// Reactions one participant may send per second on average.
pub const REACTIONS_PER_SEC: f64 = 2.0;
/// Reactions one participant may send at once.
pub const REACTIONS_BURST: f64 = 6.0;
/// The join-muted threshold of a new room (like Jitsi's `startAudioMuted`).
pub const DEFAULT_JOIN_MUTED_ABOVE: u32 = 6;
/// Highest threshold a host may set.
pub const MAX_JOIN_MUTED_ABOVE: u32 = 10_000;

/// `react`: send a reaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct React {
    /// One of [`REACTIONS`].
    pub emoji: String,
}

/// `reaction`: someone reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// Who.
    pub participant: ParticipantId,
    /// One of [`REACTIONS`].
    pub emoji: String,
}

/// `spotlight`, both ways: the participant everyone's grid pins, or nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spotlight {
    /// Whom, or nobody.
    #[serde(default)]
    pub participant: Option<ParticipantId>,
}

/// `ask_unmute`: a host asks someone to turn a source on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskUnmute {
    /// Whom.
    pub participant: ParticipantId,
    /// Microphone or camera.
    pub source: Source,
}

/// `unmute_request`: a host asks you to turn a source on; you decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmuteRequest {
    /// Microphone or camera.
    pub source: Source,
    /// The host who asks.
    pub from: ParticipantId,
}

/// `invite_to_stage`: a host invites an audience member to present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteToStage {
    /// Whom.
    pub participant: ParticipantId,
}

/// `stage_invite`: a host invites you on stage; answer with `stage_answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageInvite {
    /// The host who invites.
    pub from: ParticipantId,
}

/// `stage_answer`: accept or decline the pending invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageAnswer {
    /// Accept or decline.
    pub accept: bool,
}

/// `stage_answered`: to hosts, what an invited person answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageAnswered {
    /// Who answered.
    pub participant: ParticipantId,
    /// Accepted or declined.
    pub accept: bool,
}

/// `set_join_muted`: the join-muted threshold, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinMuted {
    /// Others already in from which a joiner starts muted; `null`: never.
    #[serde(default)]
    pub above: Option<u32>,
}
