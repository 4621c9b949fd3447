//! The conference: the room as people see it. Admission (mode, password, lock, lobby, bans),
//! the roster and roles, moderation and host tools, raised hands, chat, Q&A, polls and reactions. Sans-IO like the media room
//! it owns, and the only producer of [`ServerMsg`]: the media room reports [`media::Event`]s,
//! which [`Conference::poll_output`] turns into messages.
//!
//! [`media::Event`]: crate::media::Event

mod admin;
mod handle;
mod host;
mod lists;
pub mod offer_limits;
mod output;
pub mod polls;
pub mod record;
mod recording;
mod stage;
pub mod talk;
#[cfg(test)]
mod tests;

pub use admin::{ApiCall, ApiReply};
pub use output::Output;

use crate::media::{track, JoinError, Router};
use crate::model::{LeaveReason, ParticipantId, ParticipantInfo, QuestionId, Role, RoomMode};
use crate::protocol::{ErrorCode, Limits, ServerMsg, PROTOCOL_VERSION};
use crate::rate::TokenBucket;
use record::{Credentials, RoomRecord};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use talk::{Chat, QnA};

/// The numbers every client gets in `joined`, from the constants the server enforces.
fn limits() -> Limits {
    Limits {
        camera: track::encodings(crate::model::Source::Camera),
        screen: track::encodings(crate::model::Source::Screen),
        chat_max_chars: talk::CHAT_MAX_CHARS,
        question_max_chars: talk::QUESTION_MAX_CHARS,
        max_audio_slots: crate::model::MAX_AUDIO_SLOTS,
    }
}

/// Chat and questions a participant may post per second on average, and the burst.
const TALK_PER_SEC: f64 = 1.0;
const TALK_BURST: f64 = 5.0;

/// Most people waiting in one room's lobby: as many as a room holds by default. The next one
/// is refused (`room_full`, "The lobby is full"), so hosts' lobby updates stay bounded too.
pub const MAX_LOBBY: usize = 300;

/// A session asking to enter, after its token (if any) was checked.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Its participant id.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Token role, link key and asked role: the room's record decides what they grant
    /// (see [`RoomRecord::grant`]).
    pub credentials: Credentials,
    /// Who this is across reconnects (token `sub`, else the name): what a removal bans.
    pub identity: String,
    /// Meeting or webinar, taken only from a host's join into a room no host configured yet.
    pub mode: Option<RoomMode>,
    /// The password given (or set, as for `mode`).
    pub password: Option<String>,
}

/// What became of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// In the room.
    Joined,
    /// In the lobby until a host decides.
    Waiting,
    /// Turned away.
    Refused(ErrorCode, String),
}

struct Waiting {
    info: ParticipantInfo,
    identity: String,
    /// When the wait began (it ends after `lists::LOBBY_WAIT`).
    since: Instant,
}

/// One conference: its people and the media room that carries their media.
pub struct Conference {
    /// The media room.
    pub room: Router,
    /// Who is in, as the others see them.
    roster: BTreeMap<ParticipantId, ParticipantInfo>,
    /// Mode, password, lock, bans and keys: handed back to the registry when the room empties.
    record: RoomRecord,
    /// Ended by the room API: the registry forgets the record instead of keeping it.
    ended: bool,
    identities: HashMap<ParticipantId, String>,
    lobby: BTreeMap<ParticipantId, Waiting>,
    hands: Vec<ParticipantId>,
    /// Hands and lobby changes not yet sent, and the lobby's wait timer.
    lists: lists::ListChanges,
    chat: Chat,
    qna: QnA,
    talk_rate: HashMap<ParticipantId, TokenBucket>,
    react_rate: HashMap<ParticipantId, TokenBucket>,
    /// Pinned for everyone by a host.
    spotlight: Option<ParticipantId>,
    /// Audience members a host invited on stage who have not answered.
    invited: HashSet<ParticipantId>,
    polls: polls::Polls,
    out: VecDeque<Output>,
    /// Whether the room records now (told in `joined`; see `recording.rs`).
    recording: bool,
    /// Admitted with their media on an edge node (cluster relay): in the roster, not in
    /// this node's media room.
    elsewhere: HashSet<ParticipantId>,
}

impl Conference {
    /// A conference around an empty media room.
    pub fn new(room: Router, record: RoomRecord) -> Self {
        Conference {
            room,
            roster: BTreeMap::new(),
            record,
            ended: false,
            identities: HashMap::new(),
            lobby: BTreeMap::new(),
            hands: vec![],
            lists: lists::ListChanges::default(),
            chat: Chat::default(),
            qna: QnA::default(),
            talk_rate: HashMap::new(),
            react_rate: HashMap::new(),
            spotlight: None,
            invited: HashSet::new(),
            polls: polls::Polls::default(),
            out: VecDeque::new(),
            recording: false,
            elsewhere: HashSet::new(),
        }
    }

    /// Someone asks to enter whose media an edge node carries (the cluster relay): admitted
    /// like anyone, counted in the roster, never joined to this node's media room.
    pub fn join_elsewhere(&mut self, req: JoinRequest, now: Instant) -> Admission {
        let id = req.id;
        self.elsewhere.insert(id);
        let admission = self.join(req, now);
        if matches!(admission, Admission::Refused(..)) {
            self.elsewhere.remove(&id);
        }
        admission
    }

    /// Whether this participant's media is on an edge node.
    pub fn is_elsewhere(&self, id: ParticipantId) -> bool {
        self.elsewhere.contains(&id)
    }

    /// Audience members whose media this node carries (what `--max-audience-per-node` caps).
    pub fn local_audience(&self) -> usize {
        self.roster
            .values()
            .filter(|i| !i.role.may_publish() && !self.elsewhere.contains(&i.id))
            .count()
    }

    /// Nobody in the room and nobody waiting.
    pub fn is_empty(&self) -> bool {
        self.roster.is_empty() && self.lobby.is_empty()
    }

    /// How many are in (not counting the lobby).
    pub fn len(&self) -> usize {
        self.roster.len()
    }

    /// Meeting or webinar.
    pub fn mode(&self) -> RoomMode {
        self.record.mode
    }

    /// The room's lasting record (for the registry, when the room empties).
    pub fn record(&self) -> &RoomRecord {
        &self.record
    }

    /// Whether the room API ended this room (its record is not kept).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Everyone in, as the others see them.
    pub fn members(&self) -> impl Iterator<Item = &ParticipantInfo> {
        self.roster.values()
    }

    /// Someone asks to enter.
    pub fn join(&mut self, req: JoinRequest, now: Instant) -> Admission {
        if self.record.banned.contains(&req.identity) {
            return Admission::Refused(
                ErrorCode::Removed,
                "A host removed you from this room.".into(),
            );
        }
        let role = self.record.grant(&req.credentials);
        let host = role == Role::Host;
        // Only a host configures a room; everyone else's mode and password are ignored
        // (an audience token arriving first cannot lock presenters out).
        if host && !self.record.configured {
            self.record.configured = true;
            self.record.mode = req.mode.unwrap_or(self.record.mode);
            if let Err(e) = self.record.set_password(req.password.clone()) {
                return Admission::Refused(ErrorCode::BadMessage, e.into());
            }
        }
        if !host && !self.record.password_ok(req.password.as_deref()) {
            return Admission::Refused(
                ErrorCode::WrongPassword,
                "This room needs a password, and the one given is not it.".into(),
            );
        }
        let info = ParticipantInfo {
            id: req.id,
            name: req.name,
            role,
        };
        if self.record.locked && !host {
            if self.lobby.len() >= MAX_LOBBY {
                return Admission::Refused(
                    ErrorCode::RoomFull,
                    format!(
                        "The lobby is full ({MAX_LOBBY} people wait already); try again later."
                    ),
                );
            }
            self.lobby_changing();
            self.lobby.insert(
                req.id,
                Waiting {
                    info,
                    identity: req.identity,
                    since: now,
                },
            );
            self.lobby_entered(now);
            let host_present = self.host_present();
            self.signal(req.id, ServerMsg::Waiting { host_present });
            return Admission::Waiting;
        }
        self.enter(info, req.identity, now)
    }

    fn enter(&mut self, info: ParticipantInfo, identity: String, now: Instant) -> Admission {
        let id = info.id;
        let joined = if self.elsewhere.contains(&id) {
            Ok(())
        } else {
            self.room.join(id, info.role.may_publish(), now)
        };
        if let Err(e) = joined {
            return match e {
                JoinError::Full(max) => Admission::Refused(
                    ErrorCode::RoomFull,
                    format!("Room {} is full ({max} participants).", self.room.name()),
                ),
                JoinError::Media(e) => {
                    // The detail is for the log, not the client.
                    tracing::warn!(error = %e, "participant media setup failed");
                    Admission::Refused(
                        ErrorCode::Internal,
                        "Could not set up media for you.".into(),
                    )
                }
            };
        }
        let role = info.role;
        let host = role == Role::Host;
        let had_host = self.host_present();
        self.record.emptied_at = None;
        self.absorb();
        self.broadcast(
            None,
            ServerMsg::ParticipantJoined {
                participant: info.clone(),
            },
        );
        let joined = self.joined(info.clone());
        self.roster.insert(id, info);
        self.signal(id, joined);
        if let Some(speaker) = self.room.dominant_speaker() {
            // A newcomer learns who is talking now, not only at the next change.
            let msg = ServerMsg::ActiveSpeaker {
                participant: speaker,
            };
            self.signal(id, msg);
        }
        self.identities.insert(id, identity);
        let settings = self.settings_for(role);
        self.signal(id, settings);
        self.greet(id, host);
        if host && !self.lobby.is_empty() {
            let waiting = self.lobby.values().map(|w| w.info.clone()).collect();
            self.signal(id, ServerMsg::Lobby { waiting });
            if !had_host {
                self.tell_waiting();
            }
        }
        Admission::Joined
    }

    /// The one place `joined` is built: what a newcomer needs to know about the room.
    fn joined(&self, you: ParticipantInfo) -> ServerMsg {
        ServerMsg::Joined {
            version: PROTOCOL_VERSION,
            room: self.room.name().to_string(),
            you,
            participants: self.roster.values().cloned().collect(),
            tracks: self.room.tracks().cloned().collect(),
            mode: self.record.mode,
            locked: self.record.locked,
            chat: self.chat.history(),
            questions: self.qna.list(),
            hands: self.hands.clone(),
            recording: self.recording,
            limits: limits(),
        }
    }

    /// A session ended, or the conference ends it: the one place a participant leaves.
    pub fn leave(&mut self, id: ParticipantId, reason: LeaveReason) {
        if self.lobby.contains_key(&id) {
            self.lobby_changing();
            self.lobby.remove(&id);
            self.elsewhere.remove(&id);
            return;
        }
        if self.room.remove(id) {
            self.absorb();
        }
        self.gone(id, reason);
    }

    /// Forgets someone the media room no longer carries, and tells the others.
    fn gone(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some(info) = self.roster.remove(&id) else {
            return;
        };
        self.identities.remove(&id);
        self.elsewhere.remove(&id);
        self.talk_rate.remove(&id);
        self.forget_host_state(id);
        self.out.push_back(Output::Removed(id, reason));
        self.broadcast(None, ServerMsg::ParticipantLeft { id, reason });
        self.lower_hand(id);
        if info.role == Role::Host && !self.lobby.is_empty() && !self.host_present() {
            // The last host left a locked room: those waiting learn that they wait for a
            // host, who will find them on return.
            self.tell_waiting();
        }
        if self.is_empty() {
            self.record.emptied_at = Some(Instant::now());
        }
    }

    fn admit(&mut self, id: ParticipantId, admit: bool, now: Instant) {
        if !self.lobby.contains_key(&id) {
            return;
        }
        self.lobby_changing();
        let Some(w) = self.lobby.remove(&id) else {
            return;
        };
        if admit {
            if let Admission::Refused(code, message) = self.enter(w.info, w.identity, now) {
                self.signal(id, ServerMsg::error(code, message));
                self.out.push_back(Output::Removed(id, LeaveReason::Error));
            }
        } else {
            let msg = ServerMsg::error(ErrorCode::Refused, "A host did not let you in.");
            self.signal(id, msg);
            self.out
                .push_back(Output::Removed(id, LeaveReason::Removed));
        }
    }

    fn end(&mut self) {
        let msg = ServerMsg::error(ErrorCode::Closed, "The host ended the meeting.");
        let everyone: Vec<ParticipantId> = self.roster.keys().copied().collect();
        for id in everyone {
            self.signal(id, msg.clone());
            self.leave(id, LeaveReason::Removed);
        }
        let waiting: Vec<ParticipantId> = self.lobby.keys().copied().collect();
        for id in waiting {
            self.lobby.remove(&id);
            self.signal(id, msg.clone());
            self.out
                .push_back(Output::Removed(id, LeaveReason::Removed));
        }
    }

    fn name(&self, id: ParticipantId) -> String {
        self.roster
            .get(&id)
            .map(|i| i.name.clone())
            .unwrap_or_default()
    }

    /// Queues a message to one session (in the room or in the lobby).
    fn signal(&mut self, to: ParticipantId, msg: ServerMsg) {
        self.out.push_back(Output::Signal(to, Arc::new(msg)));
    }

    /// Queues a message to everyone in the room except `except`.
    fn broadcast(&mut self, except: Option<ParticipantId>, msg: ServerMsg) {
        let msg = Arc::new(msg);
        for id in self.roster.keys() {
            if Some(*id) != except {
                self.out.push_back(Output::Signal(*id, msg.clone()));
            }
        }
    }

    fn refuse(&mut self, id: ParticipantId, code: ErrorCode, message: &str) {
        self.signal(id, ServerMsg::error(code, message));
    }

    fn talk_allowed(&mut self, id: ParticipantId, now: Instant) -> bool {
        let bucket = self
            .talk_rate
            .entry(id)
            .or_insert_with(|| TokenBucket::new(TALK_PER_SEC, TALK_BURST, now));
        if bucket.allow(now) {
            return true;
        }
        self.refuse(
            id,
            ErrorCode::RateLimited,
            "You are posting too fast; wait a moment.",
        );
        false
    }

    fn lower_hand(&mut self, id: ParticipantId) {
        if self.hands.contains(&id) {
            self.hands_changing();
            self.hands.retain(|h| *h != id);
        }
    }

    fn raise_hand(&mut self, id: ParticipantId) {
        if !self.hands.contains(&id) {
            self.hands_changing();
            self.hands.push(id);
        }
    }

    /// One question changed: only it goes out (a vote must not cost the whole board).
    fn broadcast_question(&mut self, id: QuestionId) {
        if let Some(question) = self.qna.get(id) {
            self.broadcast(None, ServerMsg::Question { question });
        }
    }
}
