//! The conference layer above the media room: admission (mode, password, lock, lobby, bans),
//! roles and moderation, raised hands, chat and Q&A. Sans-IO like the room it owns.

pub mod record;
pub mod roles;
pub mod talk;

use crate::media::{Room, Welcome};
use crate::protocol::{
    ClientMsg, ErrorCode, LeaveReason, ParticipantId, ParticipantInfo, Role, RoomMode, ServerMsg,
};
use record::{Credentials, RoomRecord};
use roles::{allows, Permission};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use talk::{Chat, QnA};

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

/// What the room API asks of a live room.
#[derive(Debug, Clone, Copy)]
pub enum ApiCall {
    /// Who is in and who waits.
    Participants,
    /// Remove a participant (and ban its identity), as a host would.
    Remove(ParticipantId),
    /// End the room for everyone and forget it.
    End,
}

/// A live room's answer to the room API.
#[derive(Debug, Clone)]
pub enum ApiReply {
    /// Who is in and who waits.
    Participants {
        /// In the room, with roles.
        joined: Vec<ParticipantInfo>,
        /// In the lobby.
        waiting: Vec<ParticipantInfo>,
    },
    /// Whether the action found its target.
    Done(bool),
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
    /// Mode, password, lock, bans and keys: handed back to the registry when the room empties.
    record: RoomRecord,
    /// Ended by the room API: the registry forgets the record instead of keeping it.
    ended: bool,
    identities: HashMap<ParticipantId, String>,
    lobby: BTreeMap<ParticipantId, Waiting>,
    hands: Vec<ParticipantId>,
    chat: Chat,
    qna: QnA,
    talk_rate: HashMap<ParticipantId, (f64, Instant)>,
}

impl Conference {
    /// A conference around an empty media room.
    pub fn new(room: Room, record: RoomRecord) -> Self {
        Conference {
            room,
            record,
            ended: false,
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
            self.lobby.insert(
                req.id,
                Waiting {
                    info,
                    identity: req.identity,
                },
            );
            let host_present = self.host_present();
            self.room
                .signal(req.id, ServerMsg::Waiting { host_present });
            self.tell_hosts_lobby();
            return Admission::Waiting;
        }
        self.enter(info, req.identity, now)
    }

    fn host_present(&self) -> bool {
        self.room.members().any(|m| m.role == Role::Host)
    }

    /// Tells everyone waiting whether a host is there to let them in.
    fn tell_waiting(&mut self) {
        let host_present = self.host_present();
        let waiting: Vec<ParticipantId> = self.lobby.keys().copied().collect();
        for w in waiting {
            self.room.signal(w, ServerMsg::Waiting { host_present });
        }
    }

    /// The room's settings as `to` may see them: keys only for hosts.
    fn settings_for(&self, role: Role) -> ServerMsg {
        let host = role == Role::Host;
        ServerMsg::RoomSettings {
            mode: self.record.mode,
            locked: self.record.locked,
            has_password: self.record.password.is_some(),
            host_key: host.then(|| self.record.host_key.as_str().to_string()),
            presenter_key: host.then(|| self.record.presenter_key.as_str().to_string()),
        }
    }

    fn broadcast_settings(&mut self) {
        let members: Vec<(ParticipantId, Role)> =
            self.room.members().map(|m| (m.id, m.role)).collect();
        for (id, role) in members {
            let msg = self.settings_for(role);
            self.room.signal(id, msg);
        }
    }

    fn enter(&mut self, info: ParticipantInfo, identity: String, now: Instant) -> Admission {
        let welcome = Welcome {
            mode: self.record.mode,
            locked: self.record.locked,
            chat: self.chat.history(),
            questions: self.qna.list(),
            hands: self.hands.clone(),
        };
        let id = info.id;
        let role = info.role;
        let host = role == Role::Host;
        let had_host = self.host_present();
        match self.room.join(info, welcome, now) {
            Ok(()) => {
                self.record.emptied_at = None;
                self.identities.insert(id, identity);
                let settings = self.settings_for(role);
                self.room.signal(id, settings);
                if host && !self.lobby.is_empty() {
                    let waiting = self.lobby.values().map(|w| w.info.clone()).collect();
                    self.room.signal(id, ServerMsg::Lobby { waiting });
                    if !had_host {
                        self.tell_waiting();
                    }
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
        let was_host = self.room.info(id).is_some_and(|i| i.role == Role::Host);
        self.room.leave(id, reason);
        self.identities.remove(&id);
        self.talk_rate.remove(&id);
        self.lower_hand(id);
        if was_host && !self.lobby.is_empty() && !self.host_present() {
            // The last host left a locked room: those waiting learn that they wait for a
            // host, who will find them on return.
            self.tell_waiting();
        }
        if self.is_empty() {
            self.record.emptied_at = Some(Instant::now());
        }
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
            | ClientMsg::SetPassword { .. }
            | ClientMsg::SetMode { .. }
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
                // A co-host gets the keys (so a reload keeps them host); a demoted one
                // learns the settings without them.
                let settings = self.settings_for(role);
                self.room.signal(participant, settings);
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
                if !self.remove_identity_of(participant) {
                    self.refuse(
                        id,
                        ErrorCode::BadMessage,
                        "This room has banned as many people as it can hold.",
                    );
                }
            }
            ClientMsg::SetPassword { password } => match self.record.set_password(password) {
                Ok(()) => self.broadcast_settings(),
                Err(e) => self.refuse(id, ErrorCode::BadMessage, e),
            },
            ClientMsg::SetMode { mode } => {
                // Decides the role of later joiners; those present keep theirs.
                if self.record.mode != mode {
                    self.record.mode = mode;
                    self.broadcast_settings();
                }
            }
            ClientMsg::LockRoom { locked } => {
                if self.record.locked != locked {
                    self.record.locked = locked;
                    self.room.broadcast(None, ServerMsg::RoomLocked { locked });
                    self.broadcast_settings();
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

    /// Removes `participant` and every other session (in the room or waiting) of the same
    /// identity, and bans that identity for the room's life. False when the ban list is full
    /// (the participant is still removed).
    fn remove_identity_of(&mut self, participant: ParticipantId) -> bool {
        let Some(identity) = self.identities.get(&participant).cloned() else {
            return true;
        };
        let banned = self.record.ban(&identity);
        let msg = ServerMsg::error(ErrorCode::Removed, "A host removed you from this room.");
        let sessions: Vec<ParticipantId> = self
            .identities
            .iter()
            .filter(|(_, i)| **i == identity)
            .map(|(p, _)| *p)
            .collect();
        for p in sessions {
            self.room.signal(p, msg.clone());
            self.leave(p, LeaveReason::Removed);
        }
        let waiting: Vec<ParticipantId> = self
            .lobby
            .iter()
            .filter(|(_, w)| w.identity == identity)
            .map(|(p, _)| *p)
            .collect();
        for p in waiting {
            self.lobby.remove(&p);
            self.room.signal(p, msg.clone());
            self.room.dismiss(p, LeaveReason::Removed);
        }
        self.tell_hosts_lobby();
        banned
    }

    /// The room API's view and actions (the server's `/api`, already authorised).
    pub fn api(&mut self, call: ApiCall) -> ApiReply {
        match call {
            ApiCall::Participants => ApiReply::Participants {
                joined: self.room.members().cloned().collect(),
                waiting: self.lobby.values().map(|w| w.info.clone()).collect(),
            },
            ApiCall::Remove(p) => {
                if let Some(w) = self.lobby.get(&p) {
                    let identity = w.identity.clone();
                    self.record.ban(&identity);
                    self.lobby.remove(&p);
                    self.room.signal(
                        p,
                        ServerMsg::error(ErrorCode::Removed, "A host removed you from this room."),
                    );
                    self.room.dismiss(p, LeaveReason::Removed);
                    self.tell_hosts_lobby();
                    return ApiReply::Done(true);
                }
                if !self.room.contains(p) {
                    return ApiReply::Done(false);
                }
                self.remove_identity_of(p);
                ApiReply::Done(true)
            }
            ApiCall::End => {
                self.ended = true;
                self.end();
                ApiReply::Done(true)
            }
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
