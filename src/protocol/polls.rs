//! Payloads of polls: a host asks, everyone votes once (changing their vote is allowed), all
//! see the counts live, the host closes it.
//!
//! - Host `create_poll` `{question, kind, choices, anonymous}`: `kind` `choice` (2 to
//!   [`POLL_MAX_CHOICES`] choices of 1 to [`POLL_CHOICE_MAX_CHARS`] characters) or `mood` (a
//!   1–5 scale; `choices` ignored); the question is 1 to [`POLL_QUESTION_MAX_CHARS`]
//!   characters. One poll at a time: a new one replaces the last. Everyone gets `poll` (the
//!   whole poll, also after `joined` while one exists).
//! - `poll_vote` `{poll, choice}` (index into `choices`): counts reach everyone as
//!   `poll_results` `{id, counts, voters}`, at most every [`POLL_RESULTS_EVERY_MS`] ms however
//!   many vote (coalesced). `voters` (who chose what) goes to hosts only, and only for a poll
//!   that is not anonymous.
//! - Host `close_poll` `{}`: voting ends; everyone gets the final `poll` with `open: false`.

use crate::model::ParticipantId;
use serde::{Deserialize, Serialize};

/// Longest poll question, in characters.
pub const POLL_QUESTION_MAX_CHARS: usize = 300;
/// Longest choice, in characters.
pub const POLL_CHOICE_MAX_CHARS: usize = 100;
/// Most choices a poll may offer.
pub const POLL_MAX_CHOICES: usize = 10;
/// The shortest interval between two `poll_results`.
pub const POLL_RESULTS_EVERY_MS: u64 = 500;

/// Choices given by the host, or the 1–5 mood scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// The host's choices.
    Choice,
    /// 1 (bad) to 5 (great).
    Mood,
}

/// `create_poll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPoll {
    /// The question.
    pub question: String,
    /// Choices or mood.
    pub kind: PollKind,
    /// The choices of a `choice` poll.
    #[serde(default)]
    pub choices: Vec<String>,
    /// Whether hosts are told who voted what (not when anonymous).
    #[serde(default)]
    pub anonymous: bool,
}

/// `poll_vote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollVote {
    /// Which poll.
    pub poll: u64,
    /// Index into its choices.
    pub choice: usize,
}

/// `poll`: the whole poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poll {
    /// Its id within the room.
    pub id: u64,
    /// The question.
    pub question: String,
    /// Choices or mood.
    pub kind: PollKind,
    /// What one votes for (`"1"`…`"5"` for mood).
    pub choices: Vec<String>,
    /// Whether voters stay unknown.
    pub anonymous: bool,
    /// Still taking votes.
    pub open: bool,
    /// Votes per choice.
    pub counts: Vec<u32>,
}

/// `poll_results`: the counts now (coalesced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResults {
    /// Which poll.
    pub id: u64,
    /// Votes per choice.
    pub counts: Vec<u32>,
    /// To hosts of a poll that is not anonymous: who chose which (participant, choice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<(ParticipantId, usize)>,
}
