//! The signalling protocol: every JSON message on the `/ws` WebSocket, defined once.
//!
//! # Transport
//! One WebSocket per participant at `/ws`, text frames, one JSON object per frame. Every object
//! has a `"type"` field naming the message (snake_case); the other fields are the message's own.
//! Frames larger than the server's `max_message_bytes` (default 512 KiB) are refused with an
//! `error` of code `too_large`; the session goes on.
//!
//! # Session
//! 1. The client opens `/ws` and sends [`ClientMsg::Join`] within 10 s.
//! 2. The server answers [`ServerMsg::Joined`] (your id, the others, their tracks, and the
//!    [`Limits`] a client follows: the encodings to send per source, text lengths) or an
//!    [`ServerMsg::Error`] (`room_full`, `invalid_room`, …) and closes. Both `join` and
//!    `joined` carry the protocol `version` ([`PROTOCOL_VERSION`]); a client that names another
//!    one gets `unsupported_version`, one that names none is taken to speak the current one.
//! 3. **The client is always the SDP offerer** (so there is never glare): whenever it wants to
//!    publish or to receive something new, it creates an offer and sends [`ClientMsg::Offer`],
//!    naming which of its m-lines (by `mid`) carry which of its sources (`publish`) and which
//!    m-lines should receive which remote track (`subscribe`). The server replies
//!    [`ServerMsg::Answer`]. A client sends its next offer only after the previous answer
//!    (or an error) arrived. An ICE restart is an offer made with `iceRestart: true`.
//!    The server is ICE-lite and gives its candidates inside the answer (no trickle): the
//!    UDP media port, and passive TCP candidates (RFC 6544, framing per RFC 4571) on the same
//!    port number and on the HTTP(S) port, which browsers use only when UDP is blocked.
//! 4. When others come and go the server sends `participant_joined` / `participant_left` and
//!    `track_published` / `track_unpublished`; the client renegotiates to (un)subscribe.
//! 5. [`ClientMsg::Leave`] (or closing the socket) ends the session. A peer whose media path
//!    dies (or never connects), or whose WebSocket goes silent, gets `error` `timed_out` and
//!    is reaped; the others are told (`participant_left` with `reason: "timeout"`).
//!
//! # Roles, webinars and moderation
//! A room is a [`RoomMode::Meeting`] (joiners are presenters unless they ask otherwise) or a
//! [`RoomMode::Webinar`] (joiners are audience); the join that opens the room decides. Roles:
//! `host` (publishes, moderates), `presenter` (publishes), `audience` (receives only). The
//! server enforces them: an audience member's offer with any sending m-line, or a `publish`
//! map, is refused with `forbidden` and nothing of theirs is forwarded.
//! - A host promotes/demotes live with `set_role`; everyone gets `participant_updated`. A
//!   promoted client renegotiates to publish; a demoted one's tracks are unpublished at once and
//!   its next offer must be receive-only.
//! - `raise_hand` keeps a queue in arrival order (`joined` has it; changes come as
//!   `hands_changed`, coalesced); promotion lowers the hand.
//! - Hosts: `mute_participant` (forwarding stops at once, `track_muted` with `forced: true`;
//!   the owner may unmute with `mute`), `remove_participant` (`error` `removed`, and the same
//!   identity is refused afterwards), `lock_room` (newcomers get `waiting`, hosts get `lobby`
//!   on entering, then `lobby_changed`, and answer with `admit`; at most 300 wait, the next
//!   gets `room_full`, and a wait ends after 10 minutes with `error` `closed`), `end_meeting`
//!   (everyone gets `error` `closed`).
//! - An `offer` may hold at most 128 m-lines and 384 KiB of SDP (`sdp_rejected` otherwise).
//! - `set_password` and `set_mode` (hosts, any time) change the room's lasting settings;
//!   everyone gets `room_settings` (hosts with the keys). Non-hosts must give the password.
//!
//! # Rooms, keys and tokens
//! Host rights are a secret: a join's `role` only ever lowers the role granted. A `key` from a
//! host link grants host, from a presenter link presenter, in that room only. The opener of an
//! ad-hoc room in open mode is given the host key (in `room_settings`). Only a host's join
//! configures an unconfigured room (its `mode` and `password`). A room's record (mode, password,
//! lock, bans, keys) outlives its last participant until it expires; a removed identity is
//! refused (`removed`) for that long, and all its sessions are removed. Rooms that do not exist
//! are refused with `no_such_room` when ad-hoc rooms are off.
//!
//! When the server runs with an auth secret, `join` needs a `token`: an HS256 JWT with claims
//! `room`, `name`, `role`, `exp` (and optional `sub`, the identity, and `mode`). The token's name
//! and role win over the message's; a token for another room, expired, or badly signed is
//! refused with `unauthorized`.
//!
//! # Simulcast, layers and last-N
//! A camera is published as up to three simulcast encodings with rids `q` (¼ size), `h` (½)
//! and `f` (full); a screen share as one encoding. Their scales and bitrates come in `joined`
//! (`limits.camera`, `limits.screen`): the server budgets exactly what it asks browsers to send.
//! Subscribers report the height at which they render each remote video (`video_sizes`); from
//! that, their bandwidth estimate (TWCC) and priority (screen share, active speaker, pinned,
//! recent speakers) the server picks one layer per subscriber, switching only on keyframes, and
//! forwards video for at most `last_n` tracks,
//! telling the subscriber which (`forwarded`). Publishers are told which layers anyone needs
//! (`publish_layers`) and should pause the rest. The dominant speaker, from the RFC 6464
//! audio-level extension smoothed over a second, is announced as `active_speaker`.
//!
//! # Receiving in large rooms
//! An m-line per remote track does not scale: a browser's offer with 100 remote cameras and
//! microphones is ~600 KB. So a browser subscribes video only for the tiles it shows (reusing
//! idle m-lines), and receives audio on a few `audio_slots`: receive-only audio m-lines the
//! server fills with the most recently heard voices (every remote microphone, while there are
//! no more of them than slots). `audio_slots` messages say which track each slot carries;
//! a slot switches to a new voice within about 100 ms of it being heard.
//!
//! # Chat and Q&A
//! `chat` is broadcast to the room (the last 100 messages come in `joined`); `ask` adds a
//! question, `vote` toggles your upvote, a host's `mark_answered` closes it; every change sends
//! that one `question` (clients replace the one with its id, or add it; `joined` carries the
//! whole list), so that a vote costs each client a few hundred bytes, not the whole board. Texts are limited (chat 2000, questions 500
//! characters) and rate-limited with `rate_limited` errors.
//!
//! # Host tools, reactions, polls
//! Spotlight, ask to unmute, mute all, stage invitations, join muted, reactions: [`host`];
//! polls: [`polls`].
//!
//! # Errors
//! Every problem the server finds in what a client sent is answered with an
//! [`ServerMsg::Error`] carrying a stable [`ErrorCode`] and a human sentence; unless the code is
//! fatal ([`ErrorCode::is_fatal`]) the session continues. `shutting_down` (the server is
//! restarting) is fatal too, but the same room is there again once `/healthz` answers: the web
//! client rejoins by itself.

pub use crate::model::{
    Encoding, Kind, LeaveReason, ParticipantId, ParticipantInfo, QuestionId, Role, RoomMode,
    Source, TrackId, TrackInfo, MAX_AUDIO_SLOTS,
};
pub use changes::{HandsDelta, LobbyDelta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod host;
mod keyed;
pub mod polls;
mod recording;
pub use recording::RecordingEntry;

/// The protocol's version, exchanged in `join` and `joined`. A client that names another
/// version is refused with `unsupported_version`; one that names none speaks this one.
/// 2: Q&A changes arrive one `question` at a time (1 sent the whole board as `questions`).
/// 3: a silent WebSocket or media that never connected or went away ends the session with
/// `timed_out` (2 said `closed`, which now means only that the meeting ended).
pub const PROTOCOL_VERSION: u32 = 3;

/// Messages from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Enter a room. Must be the first message.
    Join {
        /// Room name: 1–64 characters of `A–Z a–z 0–9 - _ .`
        room: String,
        /// Display name: 1–64 characters, no control, bidi or invisible characters.
        name: String,
        /// Wanted role: only ever lowers the role granted (a presenter may choose to watch);
        /// asking for `host` or `presenter` grants nothing.
        #[serde(default)]
        role: Option<Role>,
        /// A host or presenter key from a link: grants that role in this room only.
        #[serde(default)]
        key: Option<String>,
        /// Join token (JWT) when the server requires one.
        #[serde(default)]
        token: Option<String>,
        /// Meeting or webinar; decides only when a host's join opens an unconfigured room.
        #[serde(default)]
        mode: Option<RoomMode>,
        /// The room's password: set by a host's join into an unconfigured room; from anyone
        /// else it must match.
        #[serde(default)]
        password: Option<String>,
        /// The protocol version the client speaks ([`PROTOCOL_VERSION`] when absent).
        #[serde(default)]
        version: Option<u32>,
    },
    /// An SDP offer, with what its m-lines are for.
    Offer {
        /// The offer SDP.
        sdp: String,
        /// `mid` → source for each m-line this client sends on.
        #[serde(default)]
        publish: BTreeMap<String, Source>,
        /// `mid` → remote track for each m-line this client receives on.
        #[serde(default)]
        subscribe: BTreeMap<String, TrackId>,
        /// Receive-only audio m-lines (by `mid`) the server fills with the most recent voices
        /// (see [`ServerMsg::AudioSlots`]), so a client in a 300-person room needs a handful
        /// of audio m-lines instead of 300. At most [`MAX_AUDIO_SLOTS`] are used.
        #[serde(default)]
        audio_slots: Vec<String>,
    },
    /// Tell the others that one of your sources is muted or unmuted.
    Mute {
        /// Which of your sources.
        source: Source,
        /// Muted or not.
        muted: bool,
    },
    /// Leave the room; the server closes the socket.
    Leave {},
    /// Raise or lower your hand.
    RaiseHand {
        /// Raised or lowered.
        raised: bool,
    },
    /// Send a chat message to the room (1–2000 characters).
    Chat {
        /// The text.
        text: String,
    },
    /// Ask a question (Q&A; 1–500 characters).
    Ask {
        /// The question.
        text: String,
    },
    /// Upvote a question, or take the vote back.
    Vote {
        /// Which question.
        question: QuestionId,
        /// Vote or unvote.
        up: bool,
    },
    /// Host: mark a question answered.
    MarkAnswered {
        /// Which question.
        question: QuestionId,
    },
    /// Host: change someone's role live (promote to the stage, demote to the audience).
    SetRole {
        /// Whom.
        participant: ParticipantId,
        /// The new role.
        role: Role,
    },
    /// Host: stop forwarding someone's microphone or camera (they may unmute themselves).
    MuteParticipant {
        /// Whom.
        participant: ParticipantId,
        /// Which source.
        source: Source,
    },
    /// Host: remove someone; they cannot come back to this room under the same identity.
    RemoveParticipant {
        /// Whom.
        participant: ParticipantId,
    },
    /// Host: lock the room (newcomers wait in the lobby) or unlock it.
    LockRoom {
        /// Locked or not.
        locked: bool,
    },
    /// Host: let someone waiting in the lobby in, or turn them away.
    Admit {
        /// Who is waiting.
        participant: ParticipantId,
        /// Admit or refuse.
        admit: bool,
    },
    /// Host: end the meeting for everyone.
    EndMeeting {},
    /// Host: set, change (a string) or remove (`null` or empty) the room's password; those
    /// already in stay. Everyone gets `room_settings`.
    SetPassword {
        /// The new password, at most 128 bytes.
        #[serde(default)]
        password: Option<String>,
    },
    /// Host: make the room a meeting or a webinar (the role later joiners get by default).
    SetMode {
        /// The new mode.
        mode: RoomMode,
    },
    /// How tall (in device pixels) each remote video is rendered now; 0 or absent means not
    /// visible (another grid page, minimised). Drives layer choice and last-N.
    VideoSizes {
        /// Track → rendered height.
        #[serde(deserialize_with = "keyed::track_keyed")]
        sizes: BTreeMap<TrackId, u32>,
    },
    /// Keep this participant's video in your last-N whatever happens (or unpin with `null`).
    Pin {
        /// Whom, or nobody.
        participant: Option<ParticipantId>,
    },
    /// Send a reaction.
    React(host::React),
    /// Host: pin someone for everyone, or nobody.
    Spotlight(host::Spotlight),
    /// Host: ask someone to turn a source on (they decide).
    AskUnmute(host::AskUnmute),
    /// Host: mute every microphone but the hosts'.
    MuteAll {},
    /// Host: invite an audience member on stage.
    InviteToStage(host::InviteToStage),
    /// Accept or decline a stage invitation.
    StageAnswer(host::StageAnswer),
    /// Host: set the join-muted threshold.
    SetJoinMuted(host::JoinMuted),
    /// Host: start a poll (it replaces the last one).
    CreatePoll(polls::NewPoll),
    /// Vote in the open poll.
    PollVote(polls::PollVote),
    /// Host: close the poll.
    ClosePoll {},
    /// Host: start (`true`) or stop recording the room; everyone is told with `recording`.
    Record {
        /// Start or stop.
        on: bool,
    },
    /// Host: the room's recordings, answered with `recordings` (download links expire).
    ListRecordings {},
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEntry {
    /// Order within the room.
    pub id: u64,
    /// Who wrote it.
    pub from: ParticipantId,
    /// Their name at the time.
    pub name: String,
    /// The text.
    pub text: String,
}

/// One Q&A question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Its id.
    pub id: QuestionId,
    /// Who asked.
    pub from: ParticipantId,
    /// Their name.
    pub name: String,
    /// The question.
    pub text: String,
    /// Upvotes.
    pub votes: u32,
    /// Whether the host marked it answered.
    pub answered: bool,
}

/// The server's numbers a client follows instead of keeping copies, sent in `joined`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// The camera's simulcast encodings, lowest first (rids `q`, `h`, `f`).
    pub camera: Vec<Encoding>,
    /// The screen share's encodings (one, rid `""`).
    pub screen: Vec<Encoding>,
    /// Longest chat line, in characters; longer ones get `bad_message`.
    pub chat_max_chars: usize,
    /// Longest question, in characters.
    pub question_max_chars: usize,
    /// Most audio slots an offer may declare (see `audio_slots`).
    pub max_audio_slots: usize,
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// You are in.
    Joined {
        /// The protocol version the server speaks ([`PROTOCOL_VERSION`]).
        #[serde(default)]
        version: u32,
        /// The room's name.
        room: String,
        /// You, as the others see you.
        you: ParticipantInfo,
        /// Everyone else already there.
        participants: Vec<ParticipantInfo>,
        /// Every track already published.
        tracks: Vec<TrackInfo>,
        /// Meeting or webinar.
        #[serde(default)]
        mode: RoomMode,
        /// Whether newcomers wait in the lobby.
        #[serde(default)]
        locked: bool,
        /// Recent chat, oldest first.
        #[serde(default)]
        chat: Vec<ChatEntry>,
        /// Q&A, most votes first.
        #[serde(default)]
        questions: Vec<Question>,
        /// Raised hands in arrival order.
        #[serde(default)]
        hands: Vec<ParticipantId>,
        /// Whether the room is being recorded.
        #[serde(default)]
        recording: bool,
        /// What the client must send and may say: encodings and text limits.
        limits: Limits,
    },
    /// Someone entered.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        id: ParticipantId,
        /// Why: `left`, `timeout`, `error`.
        reason: LeaveReason,
    },
    /// A track can now be subscribed.
    TrackPublished {
        /// The track.
        track: TrackInfo,
    },
    /// A track is gone; free the m-line that received it.
    TrackUnpublished {
        /// Which.
        id: TrackId,
    },
    /// A track was muted or unmuted.
    TrackMuted {
        /// Which.
        id: TrackId,
        /// Whose (so the owner knows it is about one of its own tracks).
        participant: ParticipantId,
        /// Which of the owner's sources.
        source: Source,
        /// Muted or not.
        muted: bool,
        /// Muted by a host: the server stopped forwarding it.
        #[serde(default)]
        forced: bool,
    },
    /// Someone's role changed (promotion to the stage, demotion to the audience).
    ParticipantUpdated {
        /// Them, as they are now.
        participant: ParticipantInfo,
    },
    /// Raised hands, in arrival order. Not sent since `hands_changed` (kept for parsers).
    Hands {
        /// The queue.
        queue: Vec<ParticipantId>,
    },
    /// A new chat message.
    Chat {
        /// The message.
        entry: ChatEntry,
    },
    /// A question was asked or changed (votes, answered): replace the one with its id, or add
    /// it. Clients order the board as `joined` does: open first, most votes, oldest first.
    Question {
        /// The question as it is now.
        question: Question,
    },
    /// The room was locked or unlocked.
    RoomLocked {
        /// Locked or not.
        locked: bool,
    },
    /// To you: the room is locked and a host must let you in; wait. Sent again when the last
    /// host leaves (`host_present: false`) or one comes back.
    Waiting {
        /// Whether a host is in the room to let you in.
        #[serde(default)]
        host_present: bool,
    },
    /// The room's lasting settings: after `joined`, and to everyone when a host changes them.
    /// Hosts also get the keys, to build the host and presenter links.
    RoomSettings {
        /// Meeting or webinar.
        mode: RoomMode,
        /// Whether newcomers wait in the lobby.
        locked: bool,
        /// Whether joining needs a password.
        has_password: bool,
        /// To hosts only: the key of the host link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_key: Option<String>,
        /// To hosts only: the key of the presenter link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        presenter_key: Option<String>,
        /// Others already in from which a joiner starts muted (none: never).
        #[serde(default)]
        join_muted_above: Option<u32>,
    },
    /// To hosts: who waits in the lobby.
    Lobby {
        /// Waiting people.
        waiting: Vec<ParticipantInfo>,
    },
    /// To hosts: the lobby changed (coalesced; see [`LobbyDelta`]).
    LobbyChanged(LobbyDelta),
    /// Raised hands changed (coalesced; see [`HandsDelta`]).
    HandsChanged(HandsDelta),
    /// The dominant speaker changed.
    ActiveSpeaker {
        /// Who speaks now.
        participant: ParticipantId,
    },
    /// To a publisher: which simulcast layers (by rid) of its track someone receives; encode
    /// only those. An empty list means nobody watches: pause the track's encoder.
    PublishLayers {
        /// Which of your tracks.
        track: TrackId,
        /// Its source (you are not told your own track ids otherwise).
        source: Source,
        /// The rids wanted (or `[""]` for a track without simulcast).
        active: Vec<String>,
    },
    /// To a subscriber: the video tracks the server forwards to you now (last-N and bandwidth
    /// decide); show the others as avatars.
    Forwarded {
        /// Tracks whose video you receive.
        tracks: Vec<TrackId>,
    },
    /// To a subscriber: which remote audio track each of its audio slots carries now
    /// (`mid` → track; a slot not listed is silent). Sent whenever it changes.
    AudioSlots {
        /// `mid` → track.
        slots: BTreeMap<String, TrackId>,
    },
    /// The room started or stopped recording (`by`: a host's name; `error`, to hosts: why
    /// it stopped or could not start).
    Recording {
        /// Recording now.
        on: bool,
        /// Who started or stopped it (absent: the room API or the server).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// What went wrong.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// To a host who asked: the room's recordings, newest first.
    Recordings {
        /// The recordings.
        recordings: Vec<RecordingEntry>,
    },
    /// The answer to your last offer.
    Answer {
        /// The answer SDP.
        sdp: String,
    },
    /// Someone reacted.
    Reaction(host::Reaction),
    /// The participant pinned for everyone, or nobody.
    Spotlight(host::Spotlight),
    /// A host asks you to turn a source on.
    UnmuteRequest(host::UnmuteRequest),
    /// A host invites you on stage.
    StageInvite(host::StageInvite),
    /// To hosts: what an invited person answered.
    StageAnswered(host::StageAnswered),
    /// A poll, whole.
    Poll(polls::Poll),
    /// A poll's counts (coalesced).
    PollResults(polls::PollResults),
    /// Something you sent was refused, or the session is ending.
    Error {
        /// Stable, machine-readable code.
        code: ErrorCode,
        /// A sentence for humans.
        message: String,
    },
}

impl ServerMsg {
    /// An error message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }
}

/// Checks a room name: 1–64 of `A–Z a–z 0–9 - _ .`
pub fn valid_room_name(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= 64
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Normalises a display name: trimmed, 1–64 characters, no control, bidi or invisible
/// characters (the rules and their error texts: [`crate::names`]).
pub fn clean_display_name(name: &str) -> Option<String> {
    crate::names::check_display_name(name).ok()
}

mod changes;
mod errors;
pub use errors::ErrorCode;
#[cfg(test)]
mod tests;
