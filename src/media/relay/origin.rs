//! The origin's end of a relay link: a peer subscribed to every track, sending what the edge
//! needs, sealed, to the edge's relay address.

use super::super::command::Event;
use super::super::command::Output;
use super::super::downtrack::Incoming;
use super::super::forwarder::DropReason;
use super::super::peer::Peer;
use super::super::router::Router;
use super::super::simulcast::Layer;
use super::repair::{RepairStore, MAX_RESEND};
use super::wire::{self, RelayPacket, RelaySealer};
use super::{LayerSet, RelayAnnounce, RelayCounters, RelayId, RelayKey, RelayTrack};
use crate::media::fast::srtp::SrtpError;
use crate::model::{Kind, TrackId};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;
use str0m::media::{KeyframeRequestKind, Pt};
use str0m::net::{Protocol, Transmit};

/// Most announcements waiting for the node layer. Past it the oldest go: a room's track
/// changes come from its publishers' offers and mutes, far fewer than this between two drains.
pub const MAX_ANNOUNCE: usize = 4096;

/// What the link does with one track.
#[derive(Debug, Default)]
struct Relayed {
    /// Video layers the edge needs (audio is always sent).
    needs: LayerSet,
    /// Last (publisher payload type → relay payload type, or none in the room's table).
    pt: Option<(Pt, Option<u8>)>,
}

/// One edge link of an origin room.
pub struct RelayPeer {
    link: RelayId,
    source: SocketAddr,
    destination: SocketAddr,
    sealer: RelaySealer,
    tracks: HashMap<TrackId, Relayed>,
    counters: RelayCounters,
    /// What was sent, per source, for the edge's resend requests.
    repair: RepairStore,
}

impl RelayPeer {
    /// The link.
    pub fn link(&self) -> RelayId {
        self.link
    }

    /// What it sent so far.
    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }

    /// Seals one packet for the edge if it needs it; the packet keeps the publisher's numbers.
    pub fn forward(&mut self, p: &Incoming, out: &mut VecDeque<Output>) -> Result<(), DropReason> {
        // One lookup per packet, as a browser peer's m-line lookup; the entry exists after the
        // track's first packet.
        let t = self.tracks.entry(p.track).or_default();
        if p.view.video && !t.needs.contains(p.layer) {
            self.counters.not_needed += 1;
            return Err(DropReason::LayerMismatch);
        }
        let pt = match t.pt {
            Some((i, o)) if i == p.pt => o,
            _ => {
                let o = wire::relay_pt(p.params).map(|pt| *pt);
                t.pt = Some((p.pt, o));
                o
            }
        }
        .ok_or(DropReason::NoMatchingCodec)?;
        let audio_level = match (p.ext.audio_level, p.view.video) {
            (Some(level), false) => {
                let active = p.ext.voice_activity.unwrap_or(false);
                Some((u8::from(active) << 7) | (level.unsigned_abs() & 0x7f))
            }
            _ => None,
        };
        let packet = RelayPacket {
            track: p.track,
            layer: p.layer,
            pt,
            marker: p.marker,
            seq: p.view.seq,
            time: p.view.time,
            audio_level,
            capture_us: crate::media::fast::clock::nanos(p.view.capture) / 1000,
        };
        let datagram = self
            .sealer
            .seal(&packet, &p.payload)
            .ok_or(DropReason::NoSendStream)?;
        self.counters.packets += 1;
        self.counters.bytes += datagram.len() as u64;
        out.push_back(Output::Transmit(Transmit {
            proto: Protocol::Udp,
            source: self.source,
            destination: self.destination,
            contents: datagram.into(),
        }));
        self.repair.keep(&packet, &p.payload, p.view.arrival);
        Ok(())
    }

    /// Seals again the packets of one source the edge says did not arrive, each under the
    /// link's next index (never a used nonce); numbers no longer held are skipped.
    fn resend(
        &mut self,
        track: TrackId,
        layer: Layer,
        seqs: &[u64],
        now: Instant,
        out: &mut VecDeque<Output>,
    ) {
        for &seq in seqs.iter().take(MAX_RESEND) {
            // Each number asked costs a token, held or not: the budget bounds the work.
            if !self.repair.allow(now) {
                return;
            }
            let Some((packet, payload)) = self.repair.get(track, layer, seq, now) else {
                continue;
            };
            let Some(datagram) = self.sealer.seal(&packet, payload) else {
                continue;
            };
            self.counters.packets += 1;
            self.counters.bytes += datagram.len() as u64;
            self.counters.resent += 1;
            out.push_back(Output::Transmit(Transmit {
                proto: Protocol::Udp,
                source: self.source,
                destination: self.destination,
                contents: datagram.into(),
            }));
        }
    }

    /// Adds the layers it needs to `needed` (what publishers must encode).
    pub(in crate::media) fn add_needs(&self, needed: &mut BTreeMap<TrackId, BTreeSet<Layer>>) {
        for (track, t) in &self.tracks {
            if !t.needs.is_empty() {
                needed.entry(*track).or_default().extend(t.needs.iter());
            }
        }
    }

    /// Forgets tracks that are gone.
    pub(in crate::media) fn retain(&mut self, keep: impl Fn(&TrackId) -> bool) {
        self.tracks.retain(|t, _| keep(t));
        self.repair.retain(keep);
    }
}

impl Router {
    /// Adds an edge link: from now on every track's audio, and the video layers the edge asks
    /// for ([`Router::relay_needs`]), go to `destination` sealed under `key`, sent from the
    /// room's media address `source`.
    pub fn add_relay(
        &mut self,
        link: RelayId,
        key: &RelayKey,
        source: SocketAddr,
        destination: SocketAddr,
        now: Instant,
    ) -> Result<(), SrtpError> {
        let peer = RelayPeer {
            link,
            source,
            destination,
            sealer: RelaySealer::new(link.0, key)?,
            tracks: HashMap::new(),
            counters: RelayCounters::default(),
            repair: RepairStore::new(now),
        };
        // A link added again starts over: its old state (and key) is gone.
        self.peers.insert(link.peer_id(), Peer::Relay(peer));
        self.index_dirty = true;
        self.pump(now);
        Ok(())
    }

    /// Removes a link; returns whether it existed.
    pub fn remove_relay(&mut self, link: RelayId, now: Instant) -> bool {
        let gone = self.remove(link.peer_id());
        self.pump(now);
        gone
    }

    /// The edge's viewers need these video layers now (replacing what it said before).
    /// Unknown tracks and layers are ignored; a newly needed layer is asked a keyframe of.
    pub fn relay_needs(&mut self, link: RelayId, needs: &[(TrackId, LayerSet)], now: Instant) {
        let Some(Peer::Relay(r)) = self.peers.get_mut(&link.peer_id()) else {
            return;
        };
        let mut fresh = vec![];
        for t in r.tracks.values_mut() {
            t.needs = LayerSet::NONE;
        }
        for &(track, set) in needs {
            let Some(up) = self.tracks.get(&track) else {
                continue;
            };
            if up.info.kind != Kind::Video {
                continue;
            }
            let valid: LayerSet = set
                .iter()
                .filter(|l| usize::from(*l) < up.layers.len().min(wire::MAX_LAYERS))
                .collect();
            let t = r.tracks.entry(track).or_default();
            fresh.extend(
                valid
                    .iter()
                    .filter(|l| !t.needs.contains(*l))
                    .map(|l| (track, l)),
            );
            t.needs = LayerSet(t.needs.0 | valid.0);
        }
        // Layers the edge stopped needing are dropped from what publishers encode, and new
        // ones added, by the next allocation.
        self.alloc_dirty = true;
        for (track, layer) in fresh {
            self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
        }
        self.pump(now);
    }

    /// The edge asks for a keyframe of one layer (one of its viewers waits for one); it goes
    /// through the same coalescing throttle as a local subscriber's request.
    pub fn relay_keyframe(&mut self, link: RelayId, track: TrackId, layer: Layer, now: Instant) {
        if self.peers.contains_key(&link.peer_id()) {
            self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
            self.pump(now);
        }
    }

    /// The receiving end says these packets of one source did not arrive: they are sealed
    /// again from the link's history (see `relay::repair`), within its resend budget. On an
    /// origin `link` is an edge link; on an edge it is the uplink's id (the origin asked).
    pub fn relay_resend(
        &mut self,
        link: RelayId,
        track: TrackId,
        layer: Layer,
        seqs: &[u64],
        now: Instant,
    ) {
        if let Some(Peer::Relay(r)) = self.peers.get_mut(&link.peer_id()) {
            r.resend(track, layer, seqs, now, &mut self.out);
        }
    }

    /// A link's counters: packets and bytes sent once per edge.
    pub fn relay_counters(&self, link: RelayId) -> Option<&RelayCounters> {
        match self.peers.get(&link.peer_id()) {
            Some(Peer::Relay(r)) => Some(r.counters()),
            _ => None,
        }
    }

    /// The links of this room.
    pub fn relay_links(&self) -> impl Iterator<Item = RelayId> + '_ {
        self.peers
            .values()
            .filter_map(Peer::relay)
            .map(RelayPeer::link)
    }

    /// The next track change to tell every edge of this room, if any (drain after each input).
    pub fn poll_relay_announce(&mut self) -> Option<RelayAnnounce> {
        self.announce.pop_front()
    }

    /// Mirrors a track change into the announcements while the room has edge links.
    pub(in crate::media) fn relay_mirror(&mut self, e: &Event) {
        let linked = self.peers.range(RelayId(0).peer_id()..).next().is_some();
        if !linked {
            return;
        }
        let a = match e {
            Event::TrackPublished(info) => match self.relay_track(info.id) {
                Some(t) => RelayAnnounce::Added(t),
                None => return,
            },
            Event::TrackUnpublished { track, .. } => RelayAnnounce::Removed(*track),
            Event::TrackMuted { track, muted, .. } => RelayAnnounce::Muted {
                track: *track,
                muted: *muted,
            },
            _ => return,
        };
        if self.announce.len() >= MAX_ANNOUNCE {
            self.announce.pop_front();
        }
        self.announce.push_back(a);
    }

    /// What an edge must be told of a track (for its announcement on the control link).
    pub fn relay_track(&self, track: TrackId) -> Option<RelayTrack> {
        let t = self.tracks.get(&track)?;
        Some(RelayTrack {
            info: t.info.clone(),
            rids: t
                .layers
                .iter()
                .filter_map(|l| l.rid.map(|r| r.to_string()))
                .collect(),
        })
    }

    /// Every track, as an edge must be told of them when its link starts.
    pub fn relay_tracks(&self) -> Vec<RelayTrack> {
        self.tracks
            .keys()
            .filter_map(|t| self.relay_track(*t))
            .collect()
    }
}
