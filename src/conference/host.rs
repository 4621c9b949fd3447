//! Host tools beyond the basics (spotlight, ask to unmute, mute all, stage invitations, the
//! join-muted setting), role changes, and reactions.

use super::Conference;
use crate::model::{ParticipantId, Role, Source};
use crate::protocol::host::{
    AskUnmute, JoinMuted, Reaction, Spotlight, StageAnswered, StageInvite, UnmuteRequest,
    MAX_JOIN_MUTED_ABOVE, REACTIONS, REACTIONS_BURST, REACTIONS_PER_SEC,
};
use crate::protocol::{ErrorCode, ServerMsg};
use crate::rate::TokenBucket;
use std::sync::Arc;
use std::time::Instant;

impl Conference {
    /// Sets someone's role; everyone learns it, and they get the settings their role sees.
    pub(super) fn change_role(&mut self, participant: ParticipantId, role: Role) {
        let Some(info) = self.roster.get_mut(&participant) else {
            return;
        };
        if info.role != role {
            info.role = role;
            let info = info.clone();
            // A role that may not publish loses its tracks at once.
            self.room.set_may_publish(participant, role.may_publish());
            self.absorb();
            let msg = ServerMsg::ParticipantUpdated { participant: info };
            self.broadcast(None, msg);
        }
        if role.may_publish() {
            // On stage, the hand has been answered (and any invitation too).
            self.lower_hand(participant);
            self.invited.remove(&participant);
        }
        // A co-host gets the keys (so a reload keeps them host); a demoted one
        // learns the settings without them.
        let settings = self.settings_for(role);
        self.signal(participant, settings);
    }

    pub(super) fn react(&mut self, id: ParticipantId, emoji: String, now: Instant) {
        if !REACTIONS.contains(&emoji.as_str()) {
            let msg = format!("Reactions are one of {}.", REACTIONS.join(" "));
            return self.refuse(id, ErrorCode::BadMessage, &msg);
        }
        let bucket = self
            .react_rate
            .entry(id)
            .or_insert_with(|| TokenBucket::new(REACTIONS_PER_SEC, REACTIONS_BURST, now));
        if !bucket.allow(now) {
            let msg = "You are reacting too fast; wait a moment.";
            return self.refuse(id, ErrorCode::RateLimited, msg);
        }
        let reaction = Reaction {
            participant: id,
            emoji,
        };
        self.broadcast(None, ServerMsg::Reaction(reaction));
    }

    pub(super) fn spotlight(&mut self, id: ParticipantId, participant: Option<ParticipantId>) {
        if participant.is_some_and(|p| !self.roster.contains_key(&p)) {
            return self.refuse(id, ErrorCode::BadMessage, "No such participant.");
        }
        if self.spotlight != participant {
            self.spotlight = participant;
            self.broadcast(None, ServerMsg::Spotlight(Spotlight { participant }));
        }
    }

    pub(super) fn ask_unmute(&mut self, id: ParticipantId, ask: AskUnmute) {
        if !matches!(ask.source, Source::Microphone | Source::Camera) {
            let msg = "Only a microphone or a camera can be asked for.";
            return self.refuse(id, ErrorCode::BadMessage, msg);
        }
        let on_stage = self
            .roster
            .get(&ask.participant)
            .map(|i| i.role.may_publish());
        match on_stage {
            None => self.refuse(id, ErrorCode::BadMessage, "No such participant."),
            Some(false) => {
                let msg = "They are in the audience: invite them on stage first.";
                self.refuse(id, ErrorCode::BadMessage, msg)
            }
            Some(true) => {
                let request = UnmuteRequest {
                    source: ask.source,
                    from: id,
                };
                self.signal(ask.participant, ServerMsg::UnmuteRequest(request));
            }
        }
    }

    /// Mutes every microphone but the hosts', as `mute_participant` does one.
    pub(super) fn mute_all(&mut self) {
        let others: Vec<ParticipantId> = self
            .roster
            .values()
            .filter(|i| i.role != Role::Host)
            .map(|i| i.id)
            .collect();
        for p in others {
            self.room.force_mute(p, Source::Microphone);
        }
        self.absorb();
    }

    pub(super) fn invite_to_stage(&mut self, id: ParticipantId, participant: ParticipantId) {
        match self.roster.get(&participant).map(|i| i.role) {
            None => self.refuse(id, ErrorCode::BadMessage, "No such participant."),
            Some(Role::Audience) => {
                self.invited.insert(participant);
                self.signal(
                    participant,
                    ServerMsg::StageInvite(StageInvite { from: id }),
                );
            }
            Some(_) => self.refuse(id, ErrorCode::BadMessage, "They are on stage already."),
        }
    }

    pub(super) fn stage_answer(&mut self, id: ParticipantId, accept: bool) {
        if !self.invited.remove(&id) {
            let msg = "There is no invitation to answer.";
            return self.refuse(id, ErrorCode::BadMessage, msg);
        }
        if accept && self.roster.get(&id).map(|i| i.role) == Some(Role::Audience) {
            self.change_role(id, Role::Presenter);
        }
        let answer = ServerMsg::StageAnswered(StageAnswered {
            participant: id,
            accept,
        });
        self.tell_hosts(answer);
    }

    pub(super) fn set_join_muted(&mut self, id: ParticipantId, setting: JoinMuted) {
        if setting.above.is_some_and(|n| n > MAX_JOIN_MUTED_ABOVE) {
            let msg = format!("The join-muted threshold is at most {MAX_JOIN_MUTED_ABOVE}.");
            return self.refuse(id, ErrorCode::BadMessage, &msg);
        }
        if self.record.join_muted_above != setting.above {
            self.record.join_muted_above = setting.above;
            self.broadcast_settings();
        }
    }

    /// What a newcomer learns after `joined` besides the settings: the spotlight, the poll.
    pub(super) fn greet(&mut self, id: ParticipantId, host: bool) {
        if let Some(participant) = self.spotlight {
            let msg = ServerMsg::Spotlight(Spotlight {
                participant: Some(participant),
            });
            self.signal(id, msg);
        }
        for msg in self.polls.snapshot(host) {
            self.signal(id, msg);
        }
    }

    /// Forgets what a leaver had here: their spotlight, invitation, rate and poll vote.
    pub(super) fn forget_host_state(&mut self, id: ParticipantId) {
        self.invited.remove(&id);
        self.react_rate.remove(&id);
        self.polls.forget(id);
        if self.spotlight == Some(id) {
            self.spotlight = None;
            let msg = ServerMsg::Spotlight(Spotlight { participant: None });
            self.broadcast(None, msg);
        }
    }

    /// One message, serialised once, to every host.
    pub(super) fn tell_hosts(&mut self, msg: ServerMsg) {
        let msg = Arc::new(msg);
        let hosts: Vec<ParticipantId> = self
            .roster
            .values()
            .filter(|m| m.role == Role::Host)
            .map(|m| m.id)
            .collect();
        for h in hosts {
            self.push(super::Output::Signal(h, msg.clone()));
        }
    }
}
