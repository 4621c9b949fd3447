//! What the conference asks its owner to do, and the media events it turns into messages.

use super::Conference;
use crate::media::{self, Event};
use crate::model::{LeaveReason, ParticipantId};
use crate::protocol::{ErrorCode, ServerMsg};
use std::sync::Arc;
use std::time::Instant;
use str0m::net::Transmit;

/// What the conference asks its owner (the room task, or the simulator) to do, in order.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Transmit(Transmit),
    /// Send a signalling message to one session. A broadcast queues the same `Arc` for each
    /// recipient, so that its owner can serialise it once.
    Signal(ParticipantId, Arc<ServerMsg>),
    /// Route STUN carrying this local ufrag to this participant.
    RouteUfrag(ParticipantId, String),
    /// The participant is gone: stop routing to it and end its session.
    Removed(ParticipantId, LeaveReason),
    /// A host (or, with `by: None`, the room API) asks to start or stop recording: the owner
    /// starts the writer and reports back with `Conference::recording_started` and friends.
    Record {
        /// Start or stop.
        on: bool,
        /// The host who asked.
        by: Option<ParticipantId>,
    },
    /// A host asks for the room's recordings: answer with `Conference::recordings_listed`.
    ListRecordings(ParticipantId),
    /// Nothing more until this time (or the next input).
    Timeout(Instant),
}

impl Conference {
    /// The next thing to do; [`Output::Timeout`] when there is nothing more for now. Media
    /// events become messages here, in the order the room reported them.
    pub fn poll_output(&mut self, now: Instant) -> Output {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            match self.room.poll_output(now) {
                media::Output::Event(e) => self.on_event(e),
                media::Output::Transmit(t) => return Output::Transmit(t),
                media::Output::Timeout(t) => {
                    if self.flush_poll(now) {
                        continue;
                    }
                    // The conference's own tick (lobby waits, coalesced list changes) rides
                    // on the room's: due work first, then the earliest of the three.
                    if self.lists.next_tick(now).is_some_and(|d| d <= now) {
                        self.tick(now);
                        if !self.out.is_empty() {
                            continue;
                        }
                    }
                    let next = self.lists.next_tick(now).map_or(t, |d| d.min(t));
                    let next = self.polls.next_flush(now).map_or(next, |p| p.min(next));
                    return Output::Timeout(next);
                }
            }
        }
    }

    /// Takes what the media room reported during a command, so that what the conference says
    /// next comes after it.
    pub(super) fn absorb(&mut self) {
        while let Some(e) = self.room.poll_event() {
            self.on_event(e);
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::RouteUfrag(id, ufrag) => self.push(Output::RouteUfrag(id, ufrag)),
            Event::Answer { to, sdp } => self.signal(to, ServerMsg::Answer { sdp }),
            Event::TrackPublished(track) => {
                let owner = track.participant;
                self.broadcast(Some(owner), ServerMsg::TrackPublished { track });
            }
            Event::TrackUnpublished { track, owner } => {
                self.broadcast(Some(owner), ServerMsg::TrackUnpublished { id: track });
            }
            Event::TrackMuted {
                track,
                owner,
                source,
                muted,
                forced,
            } => {
                let msg = ServerMsg::TrackMuted {
                    id: track,
                    participant: owner,
                    source,
                    muted,
                    forced,
                };
                self.broadcast(None, msg);
            }
            Event::Forwarded { to, tracks } => self.signal(to, ServerMsg::Forwarded { tracks }),
            Event::PublishLayers {
                to,
                track,
                source,
                active,
            } => {
                let msg = ServerMsg::PublishLayers {
                    track,
                    source,
                    active,
                };
                self.signal(to, msg);
            }
            Event::AudioSlots { to, slots } => self.signal(to, ServerMsg::AudioSlots { slots }),
            Event::ActiveSpeaker(participant) => {
                self.broadcast(None, ServerMsg::ActiveSpeaker { participant });
            }
            Event::PeerRemoved { id, reason } => {
                if reason == LeaveReason::Timeout {
                    let msg = ServerMsg::error(ErrorCode::TimedOut, "Your connection timed out.");
                    self.signal(id, msg);
                }
                self.gone(id, reason);
            }
        }
    }
}
