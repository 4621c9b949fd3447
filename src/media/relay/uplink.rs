//! Promotion from an edge: a viewer promoted to the stage publishes where it is, and its tracks
//! go up to the origin over the same relay, the other way.
//!
//! **Edge**: [`Router::uplink_start`] adds a [`Peer::Relay`] toward the origin's relay socket,
//! sealed under the link's uplink key ([`RelayKey::derive_uplink`]). It takes the edge's own
//! tracks only, never the relayed ones ([`Uplinks::takes`]), and the layers the origin asks for
//! ([`Router::relay_needs`], [`Router::relay_keyframe`], as on an origin). Local tracks get ids
//! from a block the origin handed this link ([`UPLINK_BLOCK`] ids from [`UPLINK_BASE`] up),
//! so an id means the same track on every node and no mapping exists anywhere.
//!
//! **Origin**: [`Router::uplink_attach`] opens the link's uplink datagrams;
//! [`Router::uplink_tracks`] makes the edge's announced tracks relayed up-tracks owned by the
//! promoted participant's id (the conference checks its role first), so local viewers, the
//! roster, the active speaker and the other edges' relay peers see a normal stage track. The
//! link they came from is never sent them back ([`Router::relay_tracks_for`], [`Uplinks::takes`]).
//! What their publisher must hear goes out of [`Router::poll_uplink_event`]. A host's mute and
//! a demotion act here as for a local publisher; the node layer mirrors them on the edge.
//!
//! **Repair** works as the other way round ([`super::repair`]), with the roles swapped: the
//! origin finds gaps in each uplinked source ([`Gaps`], per link) and asks the edge with a
//! [`RelayEvent::Resend`] out of [`Router::poll_uplink_event`] (`stage_resend` on the control
//! link); the edge's uplink peer is a relay peer like any other, so it keeps the same bounded
//! history and reseals under its next index ([`Router::relay_resend`] with the uplink's id).
//! Same bounds both ways; a second copy is dropped and counted (`duplicates`).

use super::super::command::Event;
use super::super::config::SendPath;
use super::super::lipsync::CaptureClock;
use super::super::peer::Peer;
use super::super::router::Router;
use super::super::simulcast::Layer;
use super::super::track::UpTrack;
use super::repair::{Arrival, Gaps};
use super::wire::{self, RelayDrop, RelayOpener, RelayPacket, HEADER_LEN, MAX_TRACK};
use super::{LayerSet, RelayCounters, RelayEvent, RelayId, RelayKey, RelayTrack};
use crate::media::fast::srtp::SrtpError;
use crate::model::{Kind, ParticipantId, Source, TrackId};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use str0m::format::Codec;
use str0m::media::{Mid, Pt};

/// First track id of the edges' blocks: origin rooms number their own tracks from 1 and
/// never get this far.
pub const UPLINK_BASE: u64 = 1 << 29;
/// Track ids per link: a promoted viewer's republications for the link's whole life.
pub const UPLINK_BLOCK: u64 = 1 << 16;
/// Blocks that fit under the wire's [`MAX_TRACK`]: that many edge links per room at most.
const BLOCKS: u64 = (MAX_TRACK + 1 - UPLINK_BASE) / UPLINK_BLOCK;
/// Most events waiting for the node layer (needs are coalesced per link).
const MAX_EVENTS: usize = 256;

/// An origin's end of one link's uplink.
struct UplinkIn {
    link: RelayId,
    /// The id its datagrams carry (this node's relay socket routes by it).
    up: u32,
    opener: RelayOpener,
    /// First id of the link's block.
    first: u64,
    counters: RelayCounters,
    /// Needs last queued for the edge.
    announced: Option<Vec<(TrackId, LayerSet)>>,
    /// Each uplinked source's numbers: what is missing and asked of the edge again.
    gaps: Gaps,
    /// The edge's clock carried onto ours, for the captures the datagrams carry.
    clock: CaptureClock,
}

/// A router's uplink state: an origin's ends, or an edge's own.
#[derive(Default)]
pub struct Uplinks {
    ins: Vec<UplinkIn>,
    events: VecDeque<(RelayId, RelayEvent)>,
    /// Edge: the uplink peer's link.
    edge_up: Option<RelayId>,
    /// Edge: the next id for a local track.
    next_local: Option<u64>,
    /// Origin: (link, uplinked track) pairs whose edge was not yet told of the track.
    untold: Vec<(RelayId, TrackId)>,
}

impl Uplinks {
    /// Whether the relay peer of `link` takes track `t`: an edge's uplink its local tracks
    /// only; an origin's link every track but those its own edge published, and those of
    /// other edges once it has been told of them (before that the edge would refuse them).
    pub(in crate::media) fn takes(&self, link: RelayId, t: &UpTrack) -> bool {
        if self.edge_up == Some(link) {
            !t.relayed
        } else {
            t.uplink != Some(link.0) && !self.untold.contains(&(link, t.info.id))
        }
    }

    /// An id for a newly published local track: from the link's block on an edge, else the
    /// room's own count (`next_track`).
    pub(in crate::media) fn mint(&mut self, next_track: &mut u64) -> TrackId {
        let next = self.next_local.as_mut().unwrap_or(next_track);
        let id = *next;
        *next += 1;
        TrackId(id)
    }

    fn push(&mut self, link: RelayId, e: RelayEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back((link, e));
    }
}

impl Router {
    /// Edge: local tracks (a promoted viewer's) go up to the origin at `destination`, sealed
    /// under `key` with `up` as the datagrams' link id, and are numbered from `first_track`
    /// (the block the origin gave this link).
    pub fn uplink_start(
        &mut self,
        up: RelayId,
        first_track: u64,
        key: &RelayKey,
        source: SocketAddr,
        destination: SocketAddr,
        now: Instant,
    ) -> Result<(), SrtpError> {
        self.add_relay(up, key, source, destination, now)?;
        self.uplink.edge_up = Some(up);
        self.uplink.next_local = Some(first_track);
        self.index_dirty = true;
        Ok(())
    }

    /// Edge: the local tracks, as the origin must be told of them (owners are the origin's
    /// participant ids: an edge room's viewers have the ids the origin gave them).
    pub fn uplink_local_tracks(&self) -> Vec<RelayTrack> {
        self.tracks
            .values()
            .filter(|t| !t.relayed)
            .filter_map(|t| self.relay_track(t.info.id))
            .collect()
    }

    /// Origin: opens `link`'s uplink datagrams (id `up`) with `key`; returns the first id of
    /// the block the edge numbers its tracks from. Attaching a link again starts it over.
    pub fn uplink_attach(
        &mut self,
        link: RelayId,
        up: u32,
        key: &RelayKey,
        now: Instant,
    ) -> Result<u64, String> {
        self.uplink_detach(link, now);
        let used: Vec<u64> = self.uplink.ins.iter().map(|u| u.first).collect();
        let first = (0..BLOCKS)
            .map(|b| UPLINK_BASE + b * UPLINK_BLOCK)
            .find(|f| !used.contains(f))
            .ok_or("every track block is taken")?;
        let opener = RelayOpener::new(up, key).map_err(|e| format!("{e:?}"))?;
        self.uplink.ins.push(UplinkIn {
            link,
            up,
            opener,
            first,
            counters: RelayCounters::default(),
            announced: None,
            gaps: Gaps::default(),
            clock: CaptureClock::default(),
        });
        Ok(first)
    }

    /// Origin: the link is gone; the tracks its edge published go too.
    pub fn uplink_detach(&mut self, link: RelayId, now: Instant) {
        self.uplink.ins.retain(|u| u.link != link);
        let gone: Vec<TrackId> = self
            .tracks
            .values()
            .filter(|t| t.uplink == Some(link.0))
            .map(|t| t.info.id)
            .collect();
        for t in gone {
            self.unpublish(t);
        }
        self.alloc_dirty = true;
        self.pump(now);
    }

    /// Origin: the tracks `link`'s edge publishes now (the whole list; the caller has checked
    /// their owners may publish). New ones become up-tracks announced to the room, missing
    /// ones are unpublished; mutes stay the origin's. Returns how many were refused (outside
    /// the link's block, an id in use, a bad shape).
    pub fn uplink_tracks(&mut self, link: RelayId, tracks: Vec<RelayTrack>, now: Instant) -> usize {
        let Some(first) = self
            .uplink
            .ins
            .iter()
            .find(|u| u.link == link)
            .map(|u| u.first)
        else {
            return tracks.len();
        };
        let gone: Vec<TrackId> = self
            .tracks
            .values()
            .filter(|t| t.uplink == Some(link.0))
            .filter(|t| !tracks.iter().any(|n| n.info.id == t.info.id))
            .map(|t| t.info.id)
            .collect();
        for t in gone {
            self.uplink_forget(t);
            self.unpublish(t);
        }
        let tracks_now = &self.tracks;
        self.uplink
            .untold
            .retain(|(_, t)| tracks_now.contains_key(t));
        let mut refused = 0;
        for t in tracks {
            let id = t.info.id;
            if let Some(known) = self.tracks.get(&id) {
                refused += usize::from(known.uplink != Some(link.0));
                continue;
            }
            let video = t.info.kind == Kind::Video;
            let fits = (first..first + UPLINK_BLOCK).contains(&id.0)
                && t.rids.len() <= wire::MAX_LAYERS
                && video == t.info.source.is_video()
                && (video || t.rids.is_empty());
            if !fits {
                refused += 1;
                continue;
            }
            let mut up = UpTrack::new(t.info.clone(), Mid::from("relay"), &t.rids);
            up.relayed = true;
            up.uplink = Some(link.0);
            self.tracks.insert(id, up);
            let others = self
                .peers
                .values()
                .filter_map(Peer::relay)
                .map(|r| r.link());
            let untold: Vec<_> = others.filter(|l| *l != link).map(|l| (l, id)).collect();
            self.uplink.untold.extend(untold);
            self.emit(Event::TrackPublished(t.info));
        }
        self.slots_dirty = true;
        self.index_dirty = true;
        self.alloc_dirty = true;
        self.pump(now);
        refused
    }

    /// Origin: `link`'s edge was told of these tracks (a [`Router::relay_tracks_for`] list it
    /// was sent): from now on it gets their packets.
    pub fn relay_told(&mut self, link: RelayId, told: &[RelayTrack]) {
        let before = self.uplink.untold.len();
        self.uplink
            .untold
            .retain(|(l, t)| *l != link || !told.iter().any(|k| k.info.id == *t));
        if self.uplink.untold.len() != before {
            self.index_dirty = true;
        }
    }

    /// Origin: every track but those `link`'s edge publishes (what that edge is told).
    pub fn relay_tracks_for(&self, link: RelayId) -> Vec<RelayTrack> {
        self.tracks
            .values()
            .filter(|t| t.uplink != Some(link.0))
            .filter_map(|t| self.relay_track(t.info.id))
            .collect()
    }

    /// Origin: what to tell an edge about the tracks it publishes (needs, keyframe requests).
    pub fn poll_uplink_event(&mut self) -> Option<(RelayId, RelayEvent)> {
        self.uplink.events.pop_front()
    }

    /// Origin: an uplinked track is gone; no gap of it is asked for any more.
    fn uplink_forget(&mut self, track: TrackId) {
        for u in &mut self.uplink.ins {
            u.gaps.forget(track);
        }
    }

    /// Origin: what `link`'s uplink received and refused so far (repairs included: asked,
    /// repaired, duplicates dropped).
    pub fn uplink_counters(&self, link: RelayId) -> Option<&RelayCounters> {
        let u = self.uplink.ins.iter().find(|u| u.link == link)?;
        Some(&u.counters)
    }

    /// A datagram from the relay socket: an edge opens the origin's, an origin its edges'
    /// uplinks.
    pub fn handle_link_datagram(&mut self, datagram: &[u8], now: Instant) {
        if self.relay_edge().is_some() {
            self.handle_relay_datagram(datagram, now);
        } else {
            self.handle_uplink_datagram(datagram, now);
        }
    }

    /// Origin: an uplink datagram (the id in its first bytes names the link). Opened,
    /// checked, and fanned out as a local publisher's packet; refusals are counted.
    pub fn handle_uplink_datagram(&mut self, datagram: &[u8], now: Instant) {
        let up = wire::link_of(datagram);
        let Some(u) = self.uplink.ins.iter_mut().find(|u| Some(u.up) == up) else {
            return;
        };
        let link = u.link;
        let (pkt, clear) = match u.opener.open(datagram) {
            Ok(opened) => opened,
            Err(reason) => return u.counters.dropped[reason as usize] += 1,
        };
        let capture = u.clock.place(i128::from(pkt.capture_us) * 1000, now);
        let fed = self.feed_uplinked(link, &pkt, &clear, (capture, now));
        let Some(u) = self.uplink.ins.iter_mut().find(|u| u.link == link) else {
            return;
        };
        match fed {
            Ok(Arrival::Duplicate) => u.counters.duplicates += 1,
            Ok(arrival) => {
                u.counters.repaired += u64::from(arrival == Arrival::Repaired);
                u.counters.packets += 1;
                u.counters.bytes += datagram.len() as u64;
            }
            Err(reason) => u.counters.dropped[reason as usize] += 1,
        }
        // Asked after every datagram of the link: retries need no timer of their own while
        // the edge's audio flows.
        let mut asks = vec![];
        u.counters.repair_requests += u.gaps.due(now, &mut asks);
        for e in asks {
            self.uplink.push(link, e);
        }
        self.pump(now);
    }

    fn feed_uplinked(
        &mut self,
        link: RelayId,
        pkt: &RelayPacket,
        clear: &[u8],
        (capture, now): (Instant, Instant),
    ) -> Result<Arrival, RelayDrop> {
        let track = self
            .tracks
            .get_mut(&pkt.track)
            .filter(|t| t.uplink == Some(link.0))
            .ok_or(RelayDrop::UnknownTrack)?;
        let pt = Pt::from(pkt.pt);
        let params = wire::params_of(pt).ok_or(RelayDrop::UnknownCodec)?;
        let codec = params.spec().codec;
        let video = codec.is_video();
        if video != (track.info.kind == Kind::Video) {
            return Err(RelayDrop::UnknownCodec);
        }
        let layer = track
            .layers
            .get_mut(usize::from(pkt.layer))
            .ok_or(RelayDrop::UnknownTrack)?;
        let gaps = self
            .uplink
            .ins
            .iter_mut()
            .find(|u| u.link == link)
            .map(|u| &mut u.gaps)
            .ok_or(RelayDrop::UnknownLink)?;
        let arrival = gaps.on_packet(pkt.track, pkt.layer, pkt.seq, now);
        if arrival == Arrival::Duplicate {
            return Ok(arrival);
        }
        self.counters.rtp_in += 1;
        if track.forced_mute {
            // The origin is the authority: the edge may still send until it hears of it.
            self.counters
                .count(super::super::forwarder::DropReason::Muted);
            return Ok(arrival);
        }
        let payload: Arc<[u8]> = Arc::from(&clear[HEADER_LEN..]);
        layer.meter.add(payload.len(), now);
        if video && self.config.send_path == SendPath::Lean {
            track
                .histories
                .store(now, pkt.layer, pkt.seq, pkt.marker, &payload);
        }
        let (publisher, subscribers) = (track.info.participant, track.subscribers.len());
        if let Some(tap) = &mut self.tap {
            // The recording hears an edge's stage like a local one.
            let known = if video {
                codec == Codec::Vp8
            } else {
                codec == Codec::Opus
            };
            let (seq, time, marker) = (pkt.seq, pkt.time as u32, pkt.marker);
            let at = Some(capture);
            tap.packet(
                pkt.track, pkt.layer, video, known, seq, time, marker, &payload, now, at,
            );
        }
        let at = (capture, now);
        self.deliver_relayed(pkt, publisher, subscribers, &payload, pt, params, at);
        Ok(arrival)
    }

    /// Origin: the layers the room needs of uplinked tracks, queued per link when changed.
    pub(in crate::media) fn uplink_needs_now(&mut self, needs: &[(TrackId, LayerSet)]) {
        for i in 0..self.uplink.ins.len() {
            let link = self.uplink.ins[i].link;
            let mine: Vec<(TrackId, LayerSet)> = needs
                .iter()
                .filter(|(t, s)| {
                    !s.is_empty() && self.tracks.get(t).is_some_and(|t| t.uplink == Some(link.0))
                })
                .copied()
                .collect();
            let u = &mut self.uplink.ins[i];
            if u.announced.as_ref() != Some(&mine) {
                u.announced = Some(mine.clone());
                self.uplink.push(link, RelayEvent::Needs { needs: mine });
            }
        }
    }

    /// Origin: someone here needs a keyframe of an uplinked track: its edge must ask.
    pub(in crate::media) fn uplink_keyframe_wanted(
        &mut self,
        link: u32,
        track: TrackId,
        layer: Layer,
    ) {
        self.uplink
            .push(RelayId(link), RelayEvent::Keyframe { track, layer });
        self.counters.keyframe_requests += 1;
    }

    /// Origin: a participant may no longer publish: its uplinked tracks go.
    pub(in crate::media) fn uplink_revoke(&mut self, id: ParticipantId) {
        let gone: Vec<TrackId> = self
            .tracks
            .values()
            .filter(|t| t.uplink.is_some() && t.info.participant == id)
            .map(|t| t.info.id)
            .collect();
        for t in gone {
            self.uplink_forget(t);
            self.unpublish(t);
        }
        self.alloc_dirty = true;
    }

    /// Origin: a participant's uplinked tracks of one source (for mutes).
    pub(in crate::media) fn uplinked_of(
        &self,
        id: ParticipantId,
        source: Source,
    ) -> impl Iterator<Item = TrackId> + '_ {
        self.tracks
            .values()
            .filter(move |t| {
                t.uplink.is_some() && t.info.participant == id && t.info.source == source
            })
            .map(|t| t.info.id)
    }
}
