//! The fan-out: one up-track's incoming packets (one, or a burst's), every down-track of it.
//!
//! Called by the router with what it needs; it knows nothing of the router itself.

use super::command::{Output, RoomCounters};
use super::downtrack::{Incoming, Wishes};
use super::forward_log::ForwardLog;
use super::forwarder::DropReason;
use super::peer::Stage;
use super::peer_table::{PeerTable, Subscriber};
use crate::model::ParticipantId;
use std::collections::VecDeque;
use str0m::net::Transmit;

/// Most packets of one up-track fanned out together (stack arrays of this size hold their
/// wishes and counts). A burst is at most the room task's `MEDIA_BURST` datagrams (8), so a
/// track's packets of a burst are one group; more would go in several.
pub(super) const MAX_GROUP: usize = 16;

/// Most packets held for one burst's fan-out ([`Held`]): a backstop for a caller that holds
/// without releasing (past it, what is held is fanned out at once).
pub(super) const MAX_HELD: usize = 32;

/// Packets routed while the room task reads a burst of datagrams, fanned out when it ends
/// (see `Router::hold_fan_outs`): each up-track's packets of the burst together, subscriber
/// by subscriber, so that a subscriber's state (peer, down-track, sender, cipher: cold again
/// after a fan-out to a few hundred others) is brought in once per burst, not once per
/// packet, and its packets of a frame are next to each other for one GSO message.
#[derive(Default)]
pub struct Held {
    /// The room task reads a burst: packets wait here.
    pub(super) on: bool,
    pub(super) packets: Vec<Incoming>,
    /// Copies the held packets will make, at most (their up-tracks' subscribers).
    pub(super) copies: u32,
}

/// Where a release hands over the datagrams its fan-outs queued before it ends (see
/// `Router::release_fan_outs_spilling`): a keyframe to a few hundred viewers is a couple of
/// thousand sealed copies, and the first of them need not wait for the last to be sealed.
pub struct Spill<'a> {
    /// Hand over once this many datagrams were queued since the last hand-over.
    every: usize,
    /// Takes the queue (every datagram in it) and the log of its copies' arrivals.
    to: &'a mut dyn FnMut(&mut VecDeque<Output>, &mut ForwardLog),
    /// Queue length after the last hand-over.
    pub(super) base: usize,
}

impl<'a> Spill<'a> {
    /// Hands over to `to` every `every` datagrams queued.
    pub fn new(
        every: usize,
        to: &'a mut dyn FnMut(&mut VecDeque<Output>, &mut ForwardLog),
    ) -> Self {
        Spill {
            every: every.max(1),
            to,
            base: 0,
        }
    }

    /// Subscribers to fan `per` packets out to before the next hand-over is due (at least
    /// one: a hand-over falls between two subscribers, never inside one's packets).
    pub(super) fn subscribers_before_due(&self, queued: usize, per: usize) -> usize {
        let room = self.every.saturating_sub(queued.saturating_sub(self.base));
        room.div_ceil(per.max(1)).max(1)
    }

    /// The datagrams at the front of a handed-over queue, taken in order; stops at anything
    /// else (left for the caller's next poll).
    pub fn transmits(q: &mut VecDeque<Output>) -> impl Iterator<Item = Transmit> + '_ {
        std::iter::from_fn(move || match q.pop_front()? {
            Output::Transmit(t) => Some(t),
            other => {
                q.push_front(other);
                None
            }
        })
    }

    /// Hands the queue over if `every` datagrams were queued since the last time.
    pub(super) fn maybe(&mut self, out: &mut VecDeque<Output>, log: &mut ForwardLog) {
        if out.len().saturating_sub(self.base) >= self.every {
            (self.to)(out, log);
            self.base = out.len();
        }
    }
}

/// For each subscriber of the up-track of `ps` (one up-track's packets, in arrival order, at
/// most [`MAX_GROUP`]): decide, write, count, each packet in turn. Leaves in `wishes` (one
/// per packet) what the down-tracks asked of the router (a keyframe, a reallocation). A
/// subscriber whose write made it want time sooner is pushed to `sooner` (see `timers.rs`).
#[allow(clippy::too_many_arguments)]
pub(super) fn fan_out(
    ps: &[Incoming],
    wishes: &mut [Wishes],
    subscribers: &[Subscriber],
    peers: &mut PeerTable,
    counters: &mut RoomCounters,
    log: &mut ForwardLog,
    out: &mut VecDeque<Output>,
    sooner: &mut Vec<(ParticipantId, u32)>,
) {
    debug_assert!(
        ps.len() <= MAX_GROUP.min(wishes.len()),
        "a group of {}",
        ps.len()
    );
    let ps = &ps[..ps.len().min(MAX_GROUP).min(wishes.len())];
    // Copies put out at once and marked due, per packet.
    let mut counts = [(0u32, 0u32); MAX_GROUP];
    for (i, s) in subscribers.iter().enumerate() {
        // The next subscribers' state is cold (see `peer_table::prefetch`): four stages
        // ahead, each reading only what the one before brought in. Written out, not looped,
        // so each call's stage is a constant its `match` folds away.
        prefetch_ahead(subscribers, peers, i + 4, Stage::Head);
        prefetch_ahead(subscribers, peers, i + 3, Stage::Far);
        prefetch_ahead(subscribers, peers, i + 2, Stage::Mid);
        prefetch_ahead(subscribers, peers, i + 1, Stage::Near);
        // By the slot the list remembers: no map walk per copy.
        let Some(peer) = peers.at_mut(s.slot, s.id) else {
            for _ in ps {
                counters.count(DropReason::SubscriptionGone);
            }
            continue;
        };
        for ((p, w), (now, later)) in ps.iter().zip(wishes.iter_mut()).zip(&mut counts) {
            match peer.forward(s.mid, s.at, p, w, out) {
                Ok(wake) => {
                    counters.rtp_forwarded += 1;
                    if wake {
                        sooner.push((s.id, s.slot));
                        *later += 1;
                    } else {
                        *now += 1;
                    }
                }
                Err(reason) => counters.count(reason),
            }
        }
    }
    for (p, &(now, later)) in ps.iter().zip(&counts) {
        log.fanned_out(p.view.arrival, now, later);
    }
}

/// One prefetch stage for the subscriber at `index`, if there is one and its slot still holds it.
#[inline(always)]
fn prefetch_ahead(subscribers: &[Subscriber], peers: &PeerTable, index: usize, stage: Stage) {
    if let Some(n) = subscribers.get(index) {
        if let Some(peer) = peers.peek(n.slot, n.id) {
            peer.prefetch(stage, n.at);
        }
    }
}
