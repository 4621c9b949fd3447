//! Room settings as each role sees them, removal with bans, and the room API's calls.

use super::Conference;
use super::Output;
use crate::model::{LeaveReason, ParticipantId, ParticipantInfo, Role};
use crate::protocol::{ErrorCode, ServerMsg};

/// What the room API asks of a live room.
#[derive(Debug, Clone, Copy)]
pub enum ApiCall {
    /// Who is in and who waits.
    Participants,
    /// Remove a participant (and ban its identity), as a host would.
    Remove(ParticipantId),
    /// End the room for everyone and forget it.
    End,
    /// Start (`true`) or stop recording: carried out by the room's owner, which opens the file.
    Record(bool),
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
    /// The recording started or stopped, or why not.
    Recording(Result<(), String>),
}

const REMOVED: &str = "A host removed you from this room.";

impl Conference {
    pub(super) fn host_present(&self) -> bool {
        self.roster.values().any(|m| m.role == Role::Host)
    }

    /// Tells everyone waiting whether a host is there to let them in.
    pub(super) fn tell_waiting(&mut self) {
        let host_present = self.host_present();
        let waiting: Vec<ParticipantId> = self.lobby.keys().copied().collect();
        for w in waiting {
            self.signal(w, ServerMsg::Waiting { host_present });
        }
    }

    /// The room's settings as a participant of `role` may see them: keys only for hosts.
    pub(super) fn settings_for(&self, role: Role) -> ServerMsg {
        let host = role == Role::Host;
        ServerMsg::RoomSettings {
            mode: self.record.mode,
            locked: self.record.locked,
            has_password: self.record.password.is_some(),
            host_key: host.then(|| self.record.host_key.as_str().to_string()),
            presenter_key: host.then(|| self.record.presenter_key.as_str().to_string()),
            join_muted_above: self.record.join_muted_above,
        }
    }

    pub(super) fn broadcast_settings(&mut self) {
        let members: Vec<(ParticipantId, Role)> =
            self.roster.values().map(|m| (m.id, m.role)).collect();
        for (id, role) in members {
            let msg = self.settings_for(role);
            self.signal(id, msg);
        }
    }

    /// Removes `participant` and every other session (in the room or waiting) of the same
    /// identity, and bans that identity for the room's life. False when the ban list is full
    /// (the participant is still removed).
    pub(super) fn remove_identity_of(&mut self, participant: ParticipantId) -> bool {
        let Some(identity) = self.identities.get(&participant).cloned() else {
            return true;
        };
        let banned = self.record.ban(&identity);
        let msg = ServerMsg::error(ErrorCode::Removed, REMOVED);
        let sessions: Vec<ParticipantId> = self
            .identities
            .iter()
            .filter(|(_, i)| **i == identity)
            .map(|(p, _)| *p)
            .collect();
        for p in sessions {
            self.signal(p, msg.clone());
            self.leave(p, LeaveReason::Removed);
        }
        let waiting: Vec<ParticipantId> = self
            .lobby
            .iter()
            .filter(|(_, w)| w.identity == identity)
            .map(|(p, _)| *p)
            .collect();
        for p in waiting {
            self.dismiss(p, msg.clone());
        }
        banned
    }

    /// Sends someone in the lobby away with `msg`.
    fn dismiss(&mut self, p: ParticipantId, msg: ServerMsg) {
        self.lobby_changing();
        self.lobby.remove(&p);
        self.signal(p, msg);
        self.push(Output::Removed(p, LeaveReason::Removed));
    }

    /// The room API's view and actions (the server's `/api`, already authorised).
    pub fn api(&mut self, call: ApiCall) -> ApiReply {
        match call {
            ApiCall::Participants => ApiReply::Participants {
                joined: self.roster.values().cloned().collect(),
                waiting: self.lobby.values().map(|w| w.info.clone()).collect(),
            },
            ApiCall::Remove(p) => {
                if let Some(w) = self.lobby.get(&p) {
                    let identity = w.identity.clone();
                    self.record.ban(&identity);
                    self.dismiss(p, ServerMsg::error(ErrorCode::Removed, REMOVED));
                    return ApiReply::Done(true);
                }
                if !self.roster.contains_key(&p) {
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
            ApiCall::Record(on) => {
                self.push(Output::Record { on, by: None });
                ApiReply::Done(true)
            }
        }
    }
}
