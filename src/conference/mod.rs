//! The conference layer above the media room: admission (mode, password, lock, lobby, bans),
//! roles and moderation, raised hands, chat and Q&A. Sans-IO like the room it owns.

pub mod roles;
pub mod talk;

use crate::media::{track, Room, Welcome};
use crate::protocol::{
    ClientMsg, ErrorCode, LeaveReason, Limits, ParticipantId, ParticipantInfo, Role, RoomMode,
    ServerMsg, Source, MAX_AUDIO_SLOTS,
};
use roles::{allows, Permission};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use talk::{Chat, QnA};

/// The numbers every client gets in `joined`, from the constants the server enforces.
fn limits() -> Limits {
    Limits {
        camera: track::encodings(Source::Camera),
        screen: track::encodings(Source::Screen),
        chat_max_chars: talk::CHAT_MAX_CHARS,
        question_max_chars: talk::QUESTION_MAX_CHARS,
        max_audio_slots: MAX_AUDIO_SLOTS,
    }
}

/// Chat and questions a participant may post per second on average, and the burst.
const TALK_PER_SEC: f64 = 1.0;
const TALK_BURST: f64 = 5.0;

/// A session asking to enter, after its token (if any) was checked.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Its participant id.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Role from the token, or as asked in open mode; `None` takes the room's default.
    pub role: Option<Role>,
    /// Who this is across reconnects (token `sub`, else the name): what a removal bans.
    pub identity: String,
    /// Meeting or webinar, if this join opens the room.
    pub mode: Option<RoomMode>,
    /// The password given.
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
}

/// One conference: its media room and everything around it.
pub struct Conference {
    /// The media room.
    pub room: Room,
    mode: RoomMode,
    opened: bool,
    locked: bool,
    password: Option<String>,
    banned: HashSet<String>,
    identities: HashMap<ParticipantId, String>,
    lobby: BTreeMap<ParticipantId, Waiting>,
    hands: Vec<ParticipantId>,
    chat: Chat,
    qna: QnA,
    talk_rate: HashMap<ParticipantId, (f64, Instant)>,
}

impl Conference {
    /// A conference around an empty media room.
    pub fn new(room: Room) -> Self {
        Conference {
            room,
            mode: RoomMode::Meeting,
            opened: false,
            locked: false,
            password: None,
            banned: HashSet::new(),
            identities: HashMap::new(),
            lobby: BTreeMap::new(),
            hands: vec![],
            chat: Chat::default(),
            qna: QnA::default(),
            talk_rate: HashMap::new(),
        }
    }

    /// Nobody in the room and nobody waiting.
    pub fn is_empty(&self) -> bool {
        self.room.is_empty() && self.lobby.is_empty()
    }

    /// Meeting or webinar.
    pub fn mode(&self) -> RoomMode {
        self.mode
    }

    /// Someone asks to enter.
    pub fn join(&mut self, req: JoinRequest, now: Instant) -> Admission {
        let first = !self.opened;
        if first {
            self.opened = true;
            self.mode = req.mode.unwrap_or_default();
            self.password = req.password.clone().filter(|p| !p.is_empty());
        }
        if self.banned.contains(&req.identity) {
            return Admission::Refused(
                ErrorCode::Removed,
                "A host removed you from this room.".into(),
            );
        }
        let role = req.role.unwrap_or(self.mode.default_role());
        let host = role == Role::Host;
        if !first && !host && self.password.is_some() && req.password != self.password {
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
        if self.locked && !host {
            self.lobby.insert(
                req.id,
                Waiting {
                    info,
                    identity: req.identity,
                },
            );
            self.room.signal(req.id, ServerMsg::Waiting {});
            self.tell_hosts_lobby();
            return Admission::Waiting;
        }
        self.enter(info, req.identity, now)
    }

    fn enter(&mut self, info: ParticipantInfo, identity: String, now: Instant) -> Admission {
        let welcome = Welcome {
            mode: self.mode,
            locked: self.locked,
            chat: self.chat.history(),
            questions: self.qna.list(),
            hands: self.hands.clone(),
            limits: limits(),
        };
        let id = info.id;
        let host = info.role == Role::Host;
        match self.room.join(info, welcome, now) {
            Ok(()) => {
                self.identities.insert(id, identity);
                if host && !self.lobby.is_empty() {
                    let waiting = self.lobby.values().map(|w| w.info.clone()).collect();
                    self.room.signal(id, ServerMsg::Lobby { waiting });
                }
                Admission::Joined
            }
            Err((code, message)) => Admission::Refused(code, message),
        }
    }

    /// A session ended.
    pub fn leave(&mut self, id: ParticipantId, reason: LeaveReason) {
        if self.lobby.remove(&id).is_some() {
            self.tell_hosts_lobby();
            return;
        }
        self.room.leave(id, reason);
        self.identities.remove(&id);
        self.talk_rate.remove(&id);
        self.lower_hand(id);
    }

    /// A signalling message from a session in this conference.
    pub fn handle(&mut self, id: ParticipantId, msg: ClientMsg, now: Instant) {
        if self.lobby.contains_key(&id) {
            if matches!(msg, ClientMsg::Leave {}) {
                self.leave(id, LeaveReason::Left);
            } else {
                self.refuse(id, ErrorCode::NotJoined, "You are waiting in the lobby.");
            }
            return;
        }
        let Some(role) = self.room.info(id).map(|i| i.role) else {
            return;
        };
        let needed = match &msg {
            ClientMsg::Chat { .. } => Some(Permission::Chat),
            ClientMsg::RaiseHand { .. } | ClientMsg::Ask { .. } | ClientMsg::Vote { .. } => {
                Some(Permission::Ask)
            }
            ClientMsg::MarkAnswered { .. }
            | ClientMsg::SetRole { .. }
            | ClientMsg::MuteParticipant { .. }
            | ClientMsg::RemoveParticipant { .. }
            | ClientMsg::LockRoom { .. }
            | ClientMsg::Admit { .. }
            | ClientMsg::EndMeeting {} => Some(Permission::Moderate),
            _ => None,
        };
        if let Some(p) = needed {
            if !allows(role, p) {
                let what = if p == Permission::Moderate {
                    "Only a host can do that."
                } else {
                    "Your role does not allow that."
                };
                self.refuse(id, ErrorCode::Forbidden, what);
                return;
            }
        }
        match msg {
            ClientMsg::Leave {} => self.leave(id, LeaveReason::Left),
            ClientMsg::RaiseHand { raised } => {
                if raised && !self.hands.contains(&id) {
                    self.hands.push(id);
                    self.broadcast_hands();
                } else if !raised {
                    self.lower_hand(id);
                }
            }
            ClientMsg::Chat { text } => {
                if self.talk_allowed(id, now) {
                    let name = self.name(id);
                    match self.chat.post(id, &name, &text) {
                        Ok(entry) => self.room.broadcast(None, ServerMsg::Chat { entry }),
                        Err(e) => self.refuse(id, ErrorCode::BadMessage, &e.to_string()),
                    }
                }
            }
            ClientMsg::Ask { text } => {
                if self.talk_allowed(id, now) {
                    let name = self.name(id);
                    match self.qna.ask(id, &name, &text) {
                        Ok(()) => self.broadcast_questions(),
                        Err(e) => self.refuse(id, ErrorCode::BadMessage, &e.to_string()),
                    }
                }
            }
            ClientMsg::Vote { question, up } => {
                if self.qna.vote(question, id, up) {
                    self.broadcast_questions();
                }
            }
            ClientMsg::MarkAnswered { question } => {
                if self.qna.mark_answered(question) {
                    self.broadcast_questions();
                }
            }
            ClientMsg::SetRole { participant, role } => {
                if !self.room.contains(participant) {
                    return self.refuse(id, ErrorCode::BadMessage, "No such participant.");
                }
                self.room.set_role(participant, role);
                if role.may_publish() {
                    // On stage, the hand has been answered.
                    self.lower_hand(participant);
                }
            }
            ClientMsg::MuteParticipant {
                participant,
                source,
            } => self.room.force_mute(participant, source),
            ClientMsg::RemoveParticipant { participant } => {
                if participant == id || !self.room.contains(participant) {
                    return self.refuse(
                        id,
                        ErrorCode::BadMessage,
                        "No such participant to remove.",
                    );
                }
                if let Some(identity) = self.identities.get(&participant) {
                    self.banned.insert(identity.clone());
                }
                self.room.signal(
                    participant,
                    ServerMsg::error(ErrorCode::Removed, "A host removed you from this room."),
                );
                self.leave(participant, LeaveReason::Removed);
            }
            ClientMsg::LockRoom { locked } => {
                if self.locked != locked {
                    self.locked = locked;
                    self.room.broadcast(None, ServerMsg::RoomLocked { locked });
                }
                if !locked {
                    let waiting: Vec<ParticipantId> = self.lobby.keys().copied().collect();
                    for w in waiting {
                        self.admit(w, true, now);
                    }
                }
            }
            ClientMsg::Admit { participant, admit } => self.admit(participant, admit, now),
            ClientMsg::EndMeeting {} => self.end(),
            other => self.room.handle_client(id, other, now),
        }
    }

    fn admit(&mut self, id: ParticipantId, admit: bool, now: Instant) {
        let Some(w) = self.lobby.remove(&id) else {
            return;
        };
        if admit {
            if let Admission::Refused(code, message) = self.enter(w.info, w.identity, now) {
                self.room.signal(id, ServerMsg::error(code, message));
                self.room.dismiss(id, LeaveReason::Error);
            }
        } else {
            self.room.signal(
                id,
                ServerMsg::error(ErrorCode::Refused, "A host did not let you in."),
            );
            self.room.dismiss(id, LeaveReason::Removed);
        }
        self.tell_hosts_lobby();
    }

    fn end(&mut self) {
        let msg = ServerMsg::error(ErrorCode::Closed, "The host ended the meeting.");
        let everyone: Vec<ParticipantId> = self.room.members().map(|m| m.id).collect();
        for id in everyone {
            self.room.signal(id, msg.clone());
            self.leave(id, LeaveReason::Removed);
        }
        let waiting: Vec<ParticipantId> = self.lobby.keys().copied().collect();
        for id in waiting {
            self.lobby.remove(&id);
            self.room.signal(id, msg.clone());
            self.room.dismiss(id, LeaveReason::Removed);
        }
    }

    fn name(&self, id: ParticipantId) -> String {
        self.room
            .info(id)
            .map(|i| i.name.clone())
            .unwrap_or_default()
    }

    fn refuse(&mut self, id: ParticipantId, code: ErrorCode, message: &str) {
        self.room.signal(id, ServerMsg::error(code, message));
    }

    fn talk_allowed(&mut self, id: ParticipantId, now: Instant) -> bool {
        let (tokens, at) = self.talk_rate.entry(id).or_insert((TALK_BURST, now));
        let dt = now.saturating_duration_since(*at).as_secs_f64();
        *at = now;
        *tokens = (*tokens + dt * TALK_PER_SEC).min(TALK_BURST);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            self.refuse(
                id,
                ErrorCode::RateLimited,
                "You are posting too fast; wait a moment.",
            );
            false
        }
    }

    fn lower_hand(&mut self, id: ParticipantId) {
        let before = self.hands.len();
        self.hands.retain(|h| *h != id);
        if self.hands.len() != before {
            self.broadcast_hands();
        }
    }

    fn broadcast_hands(&mut self) {
        let queue = self.hands.clone();
        self.room.broadcast(None, ServerMsg::Hands { queue });
    }

    fn broadcast_questions(&mut self) {
        let list = self.qna.list();
        self.room.broadcast(None, ServerMsg::Questions { list });
    }

    fn tell_hosts_lobby(&mut self) {
        let waiting: Vec<ParticipantInfo> = self.lobby.values().map(|w| w.info.clone()).collect();
        let hosts: Vec<ParticipantId> = self
            .room
            .members()
            .filter(|m| m.role == Role::Host)
            .map(|m| m.id)
            .collect();
        for h in hosts {
            self.room.signal(
                h,
                ServerMsg::Lobby {
                    waiting: waiting.clone(),
                },
            );
        }
    }
}
