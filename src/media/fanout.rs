//! The per-packet fan-out: one incoming packet, every down-track of its up-track.
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

/// For each subscriber of the packet's up-track: decide, write, count. Returns what the
/// down-tracks asked of the router (a keyframe, a reallocation). A subscriber whose write
/// made it want time sooner is pushed to `sooner` (see `timers.rs`).
pub(super) fn fan_out(
    p: &Incoming,
    subscribers: &[Subscriber],
    peers: &mut PeerTable,
    counters: &mut RoomCounters,
    log: &mut ForwardLog,
    out: &mut VecDeque<Output>,
    sooner: &mut Vec<(ParticipantId, u32)>,
) -> Wishes {
    let mut wishes = Wishes::default();
    let (mut now, mut later) = (0, 0);
    for (i, s) in subscribers.iter().enumerate() {
        // The next subscribers' state is cold (see `peer_table::prefetch`): four stages
        // ahead, each reading only what the one before brought in. Written out, not looped,
        // so each call's stage is a constant its `match` folds away.
        prefetch_ahead(subscribers, peers, i + 4, Stage::Head);
        prefetch_ahead(subscribers, peers, i + 3, Stage::Far);
        prefetch_ahead(subscribers, peers, i + 2, Stage::Mid);
        prefetch_ahead(subscribers, peers, i + 1, Stage::Near);
        // By the slot the list remembers: no map walk per copy.
        let sent = match peers.at_mut(s.slot, s.id) {
            Some(peer) => peer.forward(s.mid, s.at, p, &mut wishes, out),
            None => Err(DropReason::SubscriptionGone),
        };
        match sent {
            Ok(wake) => {
                counters.rtp_forwarded += 1;
                if wake {
                    sooner.push((s.id, s.slot));
                    later += 1;
                } else {
                    now += 1;
                }
            }
            Err(reason) => counters.count(reason),
        }
    }
    log.fanned_out(p.view.arrival, now, later);
    wishes
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
