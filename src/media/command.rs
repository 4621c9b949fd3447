//! What the media core tells the layer above: [`Event`]s in the media's own words, errors of
//! its commands, and the [`Output`]s its owner carries out. It never speaks the wire protocol.

use super::forwarder::DropReason;
use crate::model::{LeaveReason, ParticipantId, Source, TrackId, TrackInfo};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;
use str0m::net::Transmit;

/// What the room asks its owner to do, in order.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Transmit(Transmit),
    /// Something the conference above should know (and usually tell someone).
    Event(Event),
    /// Nothing more until this time (or the next input).
    Timeout(Instant),
}

/// What happened in the media room.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Route STUN carrying this local ufrag to this peer (a new peer, or an ICE restart).
    RouteUfrag(ParticipantId, String),
    /// The answer to a peer's offer.
    Answer {
        /// The offerer.
        to: ParticipantId,
        /// The answer SDP.
        sdp: String,
    },
    /// A peer started sending a new track.
    TrackPublished(TrackInfo),
    /// A track is gone (its publisher stopped it, left, or lost the right to publish).
    TrackUnpublished {
        /// Which.
        track: TrackId,
        /// Whose it was.
        owner: ParticipantId,
    },
    /// A track was muted or unmuted (by its owner, or `forced` by a host).
    TrackMuted {
        /// Which.
        track: TrackId,
        /// Whose.
        owner: ParticipantId,
        /// Which of the owner's sources.
        source: Source,
        /// Muted or not.
        muted: bool,
        /// Muted by a host: forwarding stopped.
        forced: bool,
    },
    /// The video tracks forwarded to a subscriber changed (last-N and bandwidth decide).
    Forwarded {
        /// The subscriber.
        to: ParticipantId,
        /// Tracks whose video it receives now.
        tracks: Vec<TrackId>,
    },
    /// The simulcast layers anyone receives of a publisher's track changed.
    PublishLayers {
        /// The publisher.
        to: ParticipantId,
        /// Its track.
        track: TrackId,
        /// The track's source.
        source: Source,
        /// The rids wanted (`[""]` for a track without simulcast; empty: pause).
        active: Vec<String>,
    },
    /// What a subscriber's audio slots carry changed (`mid` → track).
    AudioSlots {
        /// The subscriber.
        to: ParticipantId,
        /// `mid` → track.
        slots: BTreeMap<String, TrackId>,
    },
    /// The dominant speaker changed.
    ActiveSpeaker(ParticipantId),
    /// The media core removed a peer on its own (its path went silent, or its `Rtc` failed).
    PeerRemoved {
        /// Who.
        id: ParticipantId,
        /// Why: `timeout` or `error`.
        reason: LeaveReason,
    },
}

/// Why a peer could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The room holds its maximum of peers already.
    Full(usize),
    /// The WebRTC endpoint could not be set up.
    Media(String),
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferError {
    /// The peer is not in the room.
    NotJoined,
    /// The offer is not valid SDP.
    BadSdp(String),
    /// str0m refused the offer.
    Refused(String),
    /// str0m panicked on the offer (it asserts on some payload-type clashes): the peer's
    /// `Rtc` may be half-updated, so the peer must go.
    Crashed,
}

impl fmt::Display for OfferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfferError::NotJoined => write!(f, "You are not in this room."),
            OfferError::BadSdp(e) => write!(f, "The offer is not valid SDP: {e}"),
            OfferError::Refused(e) => write!(f, "The offer was refused: {e}"),
            OfferError::Crashed => write!(f, "The offer was refused: its payload types clash."),
        }
    }
}

/// Counters of what the room did with packets.
#[derive(Debug, Default, Clone)]
pub struct RoomCounters {
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets handed to subscribers' send streams.
    pub rtp_forwarded: u64,
    /// Packets dropped, indexed by `DropReason as usize`: an array, because the packet path
    /// counts a drop for most subscribers of every simulcast packet (the other layers).
    pub dropped: [u64; DropReason::COUNT],
    /// Datagrams str0m refused.
    pub bad_datagrams: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// SRTCP compounds authenticated before str0m could see them (opened by the lean path, or
    /// let through to str0m by a peer's replay guard, `fast::srtcp_guard`), and those refused.
    pub srtcp_opened: u64,
    pub srtcp_refused: u64,
    /// Of those refused, the replays (RFC 3711 replay list), on either path.
    pub srtcp_replayed: u64,
    /// Compounds from lean subscribers whose transport-cc feedback reached their estimator.
    pub twcc_feedbacks: u64,
    /// Subscribers' layer allocations decided (one per subscriber per re-decision).
    pub allocations: u64,
    /// Retransmissions the lean path sent answering subscribers' NACKs.
    pub rtx_sent: u64,
    /// Packets lean subscribers NACKed that were not retransmitted, by why.
    pub nacks_unanswered: NacksUnanswered,
}

/// Packets a subscriber NACKed that the lean path did not retransmit, by why (one per packet
/// named). Beside [`RoomCounters::rtx_sent`] they tell a repair the server left undone from
/// one the network or the receiver lost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NacksUnanswered {
    /// Not held (any more): a stream that is not the subscriber's, a number older than its
    /// sequence map or the source's history keeps (about 1 s), or one that carried nothing;
    /// also every packet named before the subscriber's keys and path are ready.
    pub gone: u64,
    /// Retransmitted already within the last round trip: asked again before the first
    /// retransmission could have arrived.
    pub repeated: u64,
    /// Its m-line has no RTX stream, so it is never repaired (see
    /// [`FastSender::answer_nacks`](crate::media::fast::sender::FastSender::answer_nacks)).
    pub no_rtx: u64,
}

impl RoomCounters {
    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason as usize).copied().unwrap_or(0)
    }

    /// Counts one packet dropped for `reason`.
    pub fn count(&mut self, reason: DropReason) {
        if let Some(n) = self.dropped.get_mut(reason as usize) {
            *n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_reason_has_a_counter() {
        use DropReason::*;
        let all = DropReason::ALL;
        for r in all {
            // Exhaustive on purpose: a new reason does not compile here until it is listed.
            match r {
                NotKeyframeYet | Stale | NoSendStream | NoMatchingCodec | NotConnected | Muted
                | Paused | LayerMismatch | Congested | UnknownStream | NotPublished
                | UnknownPayloadType | SubscriptionGone => {}
            }
        }
        assert_eq!(all.len(), DropReason::COUNT);
        let mut seen = [false; DropReason::COUNT];
        for r in all {
            seen[*r as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        // Counting each reason once fills each counter once: none falls outside the array
        // (where the packet path would lose it) and none shares another's slot.
        let mut counters = RoomCounters::default();
        for (i, r) in all.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} is out of place in ALL");
            counters.count(*r);
        }
        for r in all {
            assert_eq!(counters.dropped(*r), 1, "{r:?} has no counter of its own");
        }
        assert_eq!(
            counters.dropped.iter().sum::<u64>(),
            DropReason::COUNT as u64
        );
    }
}
