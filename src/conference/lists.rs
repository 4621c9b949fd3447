//! Raised hands and the lobby as others see them: changes go out as coalesced deltas, and a
//! wait in the lobby ends after `LOBBY_WAIT`. Both run on the conference's tick.

use super::Conference;
use crate::model::{LeaveReason, ParticipantId};
use crate::protocol::{ErrorCode, HandsDelta, LobbyDelta, ServerMsg};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// At most one hands change and one lobby change message per this period: a flood of
/// toggles or joins costs each recipient a bounded number of messages. The first change after
/// a quiet period goes out at once.
pub const LISTS_EVERY: Duration = Duration::from_millis(250);

/// Longest wait in a locked room's lobby; then the person is told and their session closed.
pub const LOBBY_WAIT: Duration = Duration::from_secs(600);

/// What changed since the lists were last sent.
#[derive(Debug, Default)]
pub(super) struct ListChanges {
    /// The hands queue as last sent, if it changed since.
    hands_sent: Option<Vec<ParticipantId>>,
    /// Who waited as last told to hosts, if the lobby changed since.
    lobby_sent: Option<BTreeSet<ParticipantId>>,
    /// When the last change went out.
    last_flush: Option<Instant>,
    /// Earliest end of a wait in the lobby (a hint: may be early, never late).
    next_expiry: Option<Instant>,
}

impl ListChanges {
    /// When the conference next wants its tick.
    pub(super) fn next_tick(&self, now: Instant) -> Option<Instant> {
        let flush = (self.hands_sent.is_some() || self.lobby_sent.is_some())
            .then(|| self.last_flush.map_or(now, |t| t + LISTS_EVERY));
        [flush, self.next_expiry].into_iter().flatten().min()
    }
}

impl Conference {
    /// The hands queue is about to change.
    pub(super) fn hands_changing(&mut self) {
        if self.lists.hands_sent.is_none() {
            self.lists.hands_sent = Some(self.hands.clone());
        }
    }

    /// The lobby is about to change.
    pub(super) fn lobby_changing(&mut self) {
        if self.lists.lobby_sent.is_none() {
            self.lists.lobby_sent = Some(self.lobby.keys().copied().collect());
        }
    }

    /// Someone entered the lobby at `now`: their wait ends at `now + LOBBY_WAIT`.
    pub(super) fn lobby_entered(&mut self, now: Instant) {
        let end = now + LOBBY_WAIT;
        self.lists.next_expiry = Some(self.lists.next_expiry.map_or(end, |t| t.min(end)));
    }

    /// Runs what is due: waits that ended, then the coalesced deltas.
    pub(super) fn tick(&mut self, now: Instant) {
        if self.lists.next_expiry.is_some_and(|t| t <= now) {
            self.expire_lobby(now);
        }
        let due = self.lists.next_tick(now).is_some_and(|t| t <= now);
        if due && (self.lists.hands_sent.is_some() || self.lists.lobby_sent.is_some()) {
            self.lists.last_flush = Some(now);
            self.flush_hands();
            self.flush_lobby();
        }
    }

    fn expire_lobby(&mut self, now: Instant) {
        let over: Vec<ParticipantId> = self
            .lobby
            .iter()
            .filter(|(_, w)| now >= w.since + LOBBY_WAIT)
            .map(|(id, _)| *id)
            .collect();
        if !over.is_empty() {
            self.lobby_changing();
        }
        let mins = LOBBY_WAIT.as_secs() / 60;
        for id in over {
            self.lobby.remove(&id);
            let msg = format!("Nobody let you in within {mins} minutes; try again later.");
            self.signal(id, ServerMsg::error(ErrorCode::Closed, msg));
            self.push(super::Output::Removed(id, LeaveReason::Timeout));
        }
        self.lists.next_expiry = self.lobby.values().map(|w| w.since + LOBBY_WAIT).min();
    }

    fn flush_hands(&mut self) {
        let Some(before) = self.lists.hands_sent.take() else {
            return;
        };
        // The queue only loses entries anywhere and gains them at its end: what is still
        // there in the old order is the kept prefix, the rest was raised since.
        let mut kept = 0;
        let mut at = 0;
        for id in &self.hands {
            match before[at..].iter().position(|b| b == id) {
                Some(i) => {
                    at += i + 1;
                    kept += 1;
                }
                None => break,
            }
        }
        let stays: BTreeSet<ParticipantId> = self.hands[..kept].iter().copied().collect();
        let delta = HandsDelta {
            lowered: before.into_iter().filter(|b| !stays.contains(b)).collect(),
            raised: self.hands[kept..].to_vec(),
        };
        if !delta.lowered.is_empty() || !delta.raised.is_empty() {
            self.broadcast(None, ServerMsg::HandsChanged(delta));
        }
    }

    fn flush_lobby(&mut self) {
        let Some(before) = self.lists.lobby_sent.take() else {
            return;
        };
        let delta = LobbyDelta {
            left: before
                .iter()
                .filter(|id| !self.lobby.contains_key(id))
                .copied()
                .collect(),
            waiting: self
                .lobby
                .iter()
                .filter(|(id, _)| !before.contains(id))
                .map(|(_, w)| w.info.clone())
                .collect(),
        };
        if delta.left.is_empty() && delta.waiting.is_empty() {
            return;
        }
        // One message, serialised once, whatever the number of hosts.
        self.tell_hosts(ServerMsg::LobbyChanged(delta));
    }
}
