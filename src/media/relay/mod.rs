//! The cross-node relay's media half: one origin router feeding edge routers, each stage
//! packet crossing once per edge node.
//!
//! **Origin** (the node owning the room): [`Router::add_relay`] adds a
//! [`Peer::Relay`](super::peer::Peer::Relay) per edge link. It subscribes to every track of the
//! room, present and future, and sends each packet of audio, and of the video layers the edge
//! said it needs ([`Router::relay_needs`]), unchanged (the publisher's numbers, marker,
//! payload; the audio level kept), sealed for the link ([`wire`]) as an
//! [`Output::Transmit`](super::Output::Transmit) to the edge's relay address: the room's
//! egress sends it in the same burst as everything else. No per-layer renumbering happens
//! here: each edge's own down-tracks do it for their viewers.
//!
//! **Edge** (a node serving part of the audience): [`Router::relay_attach`] gives a router the
//! link's opener; [`Router::relay_track_added`] makes relayed up-tracks that keep the origin's
//! ids and publishers; [`Router::handle_relay_datagram`] opens a datagram and feeds the normal
//! fan-out, so local viewers get layer switching, rewriting, the congestion gate and either
//! send path as for a local publisher. What the origin must hear comes out of
//! [`Router::poll_relay_event`]: the union of the viewers' layer needs when it changes, and
//! keyframe requests (after the same throttle as a local publisher's).
//!
//! The node layer carries [`RelayTrack`]s (from [`Router::relay_track`] on the origin) and
//! [`RelayEvent`]s over its control link, and datagrams over UDP.

mod edge;
mod origin;
pub mod repair;
mod uplink;
pub mod wire;

use super::simulcast::Layer;
use crate::model::{ParticipantId, TrackId, TrackInfo};
use serde::{Deserialize, Serialize};

pub use edge::EdgeLink;
pub use origin::RelayPeer;
pub use origin::MAX_ANNOUNCE;
pub use uplink::{Uplinks, UPLINK_BASE, UPLINK_BLOCK};
pub use wire::{RelayDrop, RelayKey};

#[allow(unused_imports)]
use super::router::Router;

/// One relay link: a (room, edge node) pair, named by the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RelayId(pub u32);

impl RelayId {
    /// The id the link's peer has among the origin router's peers: above every id the
    /// conference hands out (those count up from 1).
    pub fn peer_id(self) -> ParticipantId {
        ParticipantId(RELAY_PEERS + u64::from(self.0))
    }

    /// The link behind a peer id, if it names one.
    pub fn of_peer(id: ParticipantId) -> Option<RelayId> {
        id.0.checked_sub(RELAY_PEERS)
            .and_then(|l| u32::try_from(l).ok())
            .map(RelayId)
    }
}

const RELAY_PEERS: u64 = 1 << 62;

/// A set of simulcast layers (bit `n` = layer `n`); audio is layer 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LayerSet(pub u8);

impl LayerSet {
    /// No layer.
    pub const NONE: LayerSet = LayerSet(0);

    /// Whether `layer` is in.
    pub fn contains(self, layer: Layer) -> bool {
        layer < 8 && self.0 & (1 << layer) != 0
    }

    /// Adds `layer` (layers past 7 do not exist).
    pub fn insert(&mut self, layer: Layer) {
        if layer < 8 {
            self.0 |= 1 << layer;
        }
    }

    /// The layers in, lowest first.
    pub fn iter(self) -> impl Iterator<Item = Layer> {
        (0..8).filter(move |l| self.contains(*l))
    }

    /// Whether no layer is in.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Layer> for LayerSet {
    fn from_iter<I: IntoIterator<Item = Layer>>(iter: I) -> Self {
        let mut s = LayerSet::NONE;
        for l in iter {
            s.insert(l);
        }
        s
    }
}

/// What an edge must know of an origin track to relay it: its info and simulcast shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayTrack {
    /// The origin's track info (id, publisher, kind, source, muted).
    pub info: TrackInfo,
    /// Its simulcast rids, lowest first (empty without simulcast).
    pub rids: Vec<String>,
}

/// What an origin router tells its edges about tracks (read with
/// [`Router::poll_relay_announce`]; the same for every link of the room). A link that starts
/// late is first told [`Router::relay_tracks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayAnnounce {
    /// A track was published: [`Router::relay_track_added`] on the edge.
    Added(RelayTrack),
    /// A track is gone: [`Router::relay_track_removed`].
    Removed(TrackId),
    /// A track was muted or unmuted: [`Router::relay_track_muted`].
    Muted {
        /// Which.
        track: TrackId,
        /// Muted or not.
        muted: bool,
    },
}

/// What an edge router asks of its origin (read with [`Router::poll_relay_event`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayEvent {
    /// The layers the edge's viewers need now, for every relayed video track (a track not
    /// listed, or with no layer, is not needed). Coalesced: only the latest is kept.
    Needs {
        /// (track, layers).
        needs: Vec<(TrackId, LayerSet)>,
    },
    /// A local viewer needs a keyframe of this layer.
    Keyframe {
        /// The track.
        track: TrackId,
        /// Its layer.
        layer: Layer,
    },
    /// Relay datagrams of one source that did not arrive: the sending end seals them again
    /// ([`Router::relay_resend`]; see [`repair`]). From an edge's [`Router::poll_relay_event`]
    /// for the origin, or from an origin's [`Router::poll_uplink_event`] for an edge's uplink.
    Resend {
        /// The track.
        track: TrackId,
        /// Its layer.
        layer: Layer,
        /// The publisher's sequence numbers missing (at most [`repair::MAX_RESEND`]).
        seqs: Vec<u64>,
    },
}

/// Counters of one link's end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Datagrams sealed and sent (origin) or opened and routed (edge).
    pub packets: u64,
    /// Their bytes, as datagrams.
    pub bytes: u64,
    /// Packets the origin did not send because the edge needs none of their layer.
    pub not_needed: u64,
    /// Datagrams the edge refused, indexed like [`RelayDrop::ALL`].
    pub dropped: [u64; RelayDrop::ALL.len()],
    /// Sending end (origin, or an edge's uplink): packets sealed again on request (also in
    /// `packets`).
    pub resent: u64,
    /// Receiving end (edge, or an origin's uplink): packets asked for again (each try counts).
    pub repair_requests: u64,
    /// Receiving end: asked-for packets that arrived and filled their gap.
    pub repaired: u64,
    /// Receiving end: second copies of a packet already forwarded, dropped.
    pub duplicates: u64,
}

impl RelayCounters {
    /// Datagrams refused for `reason`.
    pub fn dropped(&self, reason: RelayDrop) -> u64 {
        self.dropped[reason as usize]
    }
}
