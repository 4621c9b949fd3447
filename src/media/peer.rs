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
//! no `Rtc` to drive. A node-to-node relay is the same shape with a socket-side writer.

use super::command::Output;
use super::downtrack::{Incoming, Wishes};
use super::forwarder::DropReason;
use super::webrtc::WebRtcPeer;
use std::collections::VecDeque;
use std::time::Instant;
use str0m::media::Mid;

/// One peer of a room, by kind.
pub enum Peer {
    /// A browser (or a headless str0m client) over ICE/DTLS/SRTP.
    WebRtc(WebRtcPeer),
}

impl Peer {
    /// The browser behind this peer, if it is one.
    pub fn webrtc(&self) -> Option<&WebRtcPeer> {
        match self {
            Peer::WebRtc(p) => Some(p),
        }
    }

    /// The browser behind this peer, if it is one.
    pub fn webrtc_mut(&mut self) -> Option<&mut WebRtcPeer> {
        match self {
            Peer::WebRtc(p) => Some(p),
        }
    }

    /// When the peer wants time next.
    pub fn next_timeout(&self) -> Option<Instant> {
        match self {
            Peer::WebRtc(p) => Some(match &p.fast {
                Some(f) => p.next_timeout.min(f.next_wake()),
                None => p.next_timeout,
            }),
        }
    }

    /// Lets the down-track on `mid` decide about one packet and writes it if forwarded.
    pub fn forward(
        &mut self,
        mid: Mid,
        p: &Incoming,
        wishes: &mut Wishes,
        out: &mut VecDeque<Output>,
    ) -> Result<(), DropReason> {
        match self {
            Peer::WebRtc(w) => w.forward(mid, p, wishes, out),
        }
    }
}
