//! Every client message, in one exhaustive match: who may send it, and what it does.

use super::{Conference, Output};
use crate::media::{sdp_check, OfferError};
use crate::model::{LeaveReason, ParticipantId, Permission};
use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};
use std::time::Instant;

/// What a message needs its sender to be allowed. Exhaustive: a new message does not compile
/// until it says.
fn needs(msg: &ClientMsg) -> Option<Permission> {
    match msg {
        ClientMsg::Chat { .. } | ClientMsg::React(_) => Some(Permission::Chat),
        ClientMsg::RaiseHand { .. }
        | ClientMsg::Ask { .. }
        | ClientMsg::Vote { .. }
        | ClientMsg::PollVote(_) => Some(Permission::Ask),
        ClientMsg::MarkAnswered { .. }
        | ClientMsg::SetRole { .. }
        | ClientMsg::MuteParticipant { .. }
        | ClientMsg::RemoveParticipant { .. }
        | ClientMsg::LockRoom { .. }
        | ClientMsg::SetPassword { .. }
        | ClientMsg::SetMode { .. }
        | ClientMsg::Admit { .. }
        | ClientMsg::EndMeeting {}
        | ClientMsg::Spotlight(_)
        | ClientMsg::AskUnmute(_)
        | ClientMsg::MuteAll {}
        | ClientMsg::InviteToStage(_)
        | ClientMsg::SetJoinMuted(_)
        | ClientMsg::CreatePoll(_)
        | ClientMsg::ClosePoll {} => Some(Permission::Moderate),
        ClientMsg::Record { .. } | ClientMsg::ListRecordings {} => Some(Permission::Record),
        // Publishing is checked against what the offer sends (a receive-only offer is fine).
        ClientMsg::Offer { .. }
        | ClientMsg::Join { .. }
        | ClientMsg::Mute { .. }
        | ClientMsg::Leave {}
        | ClientMsg::VideoSizes { .. }
        | ClientMsg::Pin { .. }
        // Only someone invited may answer; checked by the handler.
        | ClientMsg::StageAnswer(_) => None,
    }
}

impl Conference {
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
        let Some(role) = self.roster.get(&id).map(|i| i.role) else {
            return;
        };
        if let Some(p) = needs(&msg) {
            if !role.allows(p) {
                let what = if matches!(p, Permission::Moderate | Permission::Record) {
                    "Only a host can do that."
                } else {
                    "Your role does not allow that."
                };
                self.refuse(id, ErrorCode::Forbidden, what);
                return;
            }
        }
        match msg {
            ClientMsg::Join { .. } => {
                self.refuse(id, ErrorCode::NotJoined, "You have already joined.")
            }
            ClientMsg::Leave {} => self.leave(id, LeaveReason::Left),
            ClientMsg::Offer {
                sdp,
                publish,
                subscribe,
                audio_slots,
            } => {
                // Before anything reads the SDP: an oversized offer would stall the whole room.
                if let Err(why) = super::offer_limits::check(&sdp) {
                    return self.refuse(id, ErrorCode::SdpRejected, &why);
                }
                let sends = !publish.is_empty() || !sdp_check::sending_mids(&sdp).is_empty();
                if sends && !role.allows(Permission::Publish) {
                    return self.refuse(
                        id,
                        ErrorCode::Forbidden,
                        "Your role cannot publish media; offer receive-only m-lines.",
                    );
                }
                let result = self
                    .room
                    .offer(id, &sdp, &publish, &subscribe, &audio_slots, now);
                self.absorb();
                if let Err(e) = result {
                    // str0m's error texts carry parser internals (a memory address among
                    // them): they go to the log, and the client gets a plain sentence.
                    let (code, text) = match &e {
                        OfferError::NotJoined => (ErrorCode::NotJoined, e.to_string()),
                        OfferError::BadSdp(detail) => {
                            tracing::debug!(%id, error = %detail, "offer is not valid SDP");
                            (ErrorCode::SdpRejected, "The offer is not valid SDP.".into())
                        }
                        OfferError::Refused(detail) => {
                            tracing::debug!(%id, error = %detail, "offer refused");
                            (
                                ErrorCode::SdpRejected,
                                "The offer was refused: its media sections could not be \
                                 negotiated."
                                    .into(),
                            )
                        }
                        OfferError::Crashed => {
                            tracing::warn!(%id, "str0m panicked on an offer; removing the offerer");
                            (ErrorCode::SdpRejected, e.to_string())
                        }
                    };
                    self.refuse(id, code, &text);
                    if matches!(e, OfferError::Crashed) {
                        self.leave(id, LeaveReason::Error);
                    }
                }
            }
            ClientMsg::Mute { source, muted } => {
                self.room.mute(id, source, muted, now);
                self.absorb();
            }
            ClientMsg::VideoSizes { sizes } => {
                self.room.video_sizes(id, &sizes, now);
                self.absorb();
            }
            ClientMsg::Record { on } => self.push(Output::Record { on, by: Some(id) }),
            ClientMsg::ListRecordings {} => self.push(Output::ListRecordings(id)),
            ClientMsg::Pin { participant } => {
                self.room.pin(id, participant, now);
                self.absorb();
            }
            ClientMsg::RaiseHand { raised } => {
                if raised {
                    self.raise_hand(id);
                } else {
                    self.lower_hand(id);
                }
            }
            ClientMsg::Chat { text } => {
                if self.talk_allowed(id, now) {
                    let name = self.name(id);
                    match self.chat.post(id, &name, &text) {
                        Ok(entry) => self.broadcast(None, ServerMsg::Chat { entry }),
                        Err(e) => self.refuse(id, ErrorCode::BadMessage, &e.to_string()),
                    }
                }
            }
            ClientMsg::Ask { text } => {
                if self.talk_allowed(id, now) {
                    let name = self.name(id);
                    match self.qna.ask(id, &name, &text) {
                        Ok(q) => self.broadcast_question(q),
                        Err(e) => self.refuse(id, ErrorCode::BadMessage, &e.to_string()),
                    }
                }
            }
            ClientMsg::Vote { question, up } => {
                if self.qna.vote(question, id, up) {
                    self.broadcast_question(question);
                }
            }
            ClientMsg::MarkAnswered { question } => {
                if self.qna.mark_answered(question) {
                    self.broadcast_question(question);
                }
            }
            ClientMsg::SetRole { participant, role } => {
                if !self.roster.contains_key(&participant) {
                    return self.refuse(id, ErrorCode::BadMessage, "No such participant.");
                }
                self.change_role(participant, role);
            }
            ClientMsg::MuteParticipant {
                participant,
                source,
            } => {
                self.room.force_mute(participant, source);
                self.absorb();
            }
            ClientMsg::RemoveParticipant { participant } => {
                if participant == id || !self.roster.contains_key(&participant) {
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
                    self.broadcast(None, ServerMsg::RoomLocked { locked });
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
            ClientMsg::React(r) => self.react(id, r.emoji, now),
            ClientMsg::Spotlight(s) => self.spotlight(id, s.participant),
            ClientMsg::AskUnmute(ask) => self.ask_unmute(id, ask),
            ClientMsg::MuteAll {} => self.mute_all(),
            ClientMsg::InviteToStage(i) => self.invite_to_stage(id, i.participant),
            ClientMsg::StageAnswer(a) => self.stage_answer(id, a.accept),
            ClientMsg::SetJoinMuted(setting) => self.set_join_muted(id, setting),
            ClientMsg::CreatePoll(new) => self.create_poll(id, new),
            ClientMsg::PollVote(vote) => self.poll_vote(id, vote),
            ClientMsg::ClosePoll {} => self.close_poll(id),
        }
    }

    /// Whether anything is queued (poll before sleeping).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.room.has_output()
    }

    /// Queues `o` for the owner: used by [`Conference::poll_output`] and the handlers.
    pub(super) fn push(&mut self, o: Output) {
        self.out.push_back(o);
    }
}
