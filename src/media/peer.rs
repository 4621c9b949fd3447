//! A peer of the router: anything that publishes or receives tracks, as one enum of kinds.
//!
//! Today every peer is a browser ([`WebRtcPeer`]). Each kind owns its down-tracks (one per
//! track it receives) and its way of writing what they decide; the router and the fan-out
//! only see this enum, and a `match` per packet is all the dispatch there is.
//!
//! How a recorder plugs in: a `Recorder(RecorderPeer)` variant whose down-tracks are the same
//! [`super::downtrack::DownTrack`] (layer selector and forwarder; no payload-type map, no
//! congestion gate). Its `forward` hands each forwarded packet (payload, rewritten numbers,
//! track) to a bounded channel (`try_send`; a full channel is a named drop, never a wait)
//! read by a writer task outside the sans-IO core, and its `next_timeout` is `None`: it has
//! no `Rtc` to drive. A node-to-node relay is that shape: [`Peer::Relay`] seals each packet
//! into a datagram for its edge node itself (see `media::relay`).

use super::command::Output;
use super::downtrack::{Incoming, Wishes};
use super::forwarder::DropReason;
use super::relay::RelayPeer;
use super::webrtc::WebRtcPeer;
use std::collections::VecDeque;
use std::time::Instant;
use str0m::media::Mid;

/// How far ahead of its copy a prefetch is (see [`Peer::prefetch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The peer's first line, by address only: `Far` reads the kind's tag there, which a
    /// cold peer would make it wait for (perf: most of the fan-out's own samples).
    Head,
    /// The peer's own fields.
    Far,
    /// What the peer's fields point to.
    Mid,
    /// What that points to.
    Near,
}

/// One peer of a room, by kind.
// Browsers are nearly every peer: boxing theirs would add a pointer chase per packet to save
// the few relay links' space.
#[allow(clippy::large_enum_variant)]
pub enum Peer {
    /// A browser (or a headless str0m client) over ICE/DTLS/SRTP.
    WebRtc(WebRtcPeer),
    /// An edge node's relay link (see `media::relay`): every track, sealed toward the edge.
    Relay(RelayPeer),
}

impl Peer {
    /// The browser behind this peer, if it is one.
    pub fn webrtc(&self) -> Option<&WebRtcPeer> {
        match self {
            Peer::WebRtc(p) => Some(p),
            Peer::Relay(_) => None,
        }
    }

    /// The browser behind this peer, if it is one.
    pub fn webrtc_mut(&mut self) -> Option<&mut WebRtcPeer> {
        match self {
            Peer::WebRtc(p) => Some(p),
            Peer::Relay(_) => None,
        }
    }

    /// The relay link behind this peer, if it is one.
    pub fn relay(&self) -> Option<&RelayPeer> {
        match self {
            Peer::Relay(r) => Some(r),
            Peer::WebRtc(_) => None,
        }
    }

    /// When the peer wants time next.
    pub fn next_timeout(&self) -> Option<Instant> {
        match self {
            Peer::WebRtc(p) => Some(match &p.fast {
                Some(f) => p.next_timeout.min(f.next_wake()),
                None => p.next_timeout,
            }),
            // No `Rtc` to drive: it only seals what the fan-out hands it.
            Peer::Relay(_) => None,
        }
    }

    /// Prefetches what a copy to this peer reads, one stage of four per call, so each stage
    /// reads only what the stage before brought in: `Head` the line holding the kind's tag
    /// (reading nothing), `Far` the peer's own fields, `Mid` the down-track at index `at` and
    /// the lean sender's fields, `Near` the sender's stream, pacer, send register and AES-GCM
    /// context.
    #[inline]
    pub fn prefetch(&self, stage: Stage, at: u32) {
        if stage == Stage::Head {
            super::peer_table::prefetch(self, 1);
            return;
        }
        if let Peer::WebRtc(w) = self {
            w.prefetch(stage, at);
        }
    }

    /// Lets the down-track on `mid` (index `at`, see [`WebRtcPeer::forward`]) decide about one
    /// packet and writes it if forwarded; `Ok(true)` when the write made the peer want time
    /// sooner than it did.
    pub fn forward(
        &mut self,
        mid: Mid,
        at: u32,
        p: &Incoming,
        wishes: &mut Wishes,
        out: &mut VecDeque<Output>,
    ) -> Result<bool, DropReason> {
        match self {
            Peer::WebRtc(w) => w.forward(mid, at, p, wishes, out),
            Peer::Relay(r) => r.forward(p, out).map(|()| false),
        }
    }
}
