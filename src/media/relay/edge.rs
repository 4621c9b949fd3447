//! The edge's end of a relay link: relayed up-tracks fed from opened datagrams into the
//! normal fan-out, and what the origin must hear (layer needs, keyframe requests).

use super::super::codec::VideoCodec;
use super::super::command::Event;
use super::super::config::SendPath;
use super::super::downtrack::Incoming;
use super::super::forwarder::PacketView;
use super::super::lipsync::CaptureClock;
use super::super::peer::Peer;
use super::super::router::Router;
use super::super::simulcast::Layer;
use super::super::track::UpTrack;
use super::repair::{Arrival, Gaps};
use super::wire::{self, RelayDrop, RelayOpener, RelayPacket, HEADER_LEN};
use super::{LayerSet, RelayCounters, RelayEvent, RelayId, RelayKey, RelayTrack};
use crate::media::fast::srtp::SrtpError;
use crate::model::{Kind, ParticipantId, TrackId};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt};
use str0m::rtp::ExtensionValues;

/// Most events waiting for the node layer; past it the oldest keyframe request goes (needs
/// are coalesced to one anyway, and the throttle bounds keyframe requests per track).
const MAX_EVENTS: usize = 256;

/// An edge router's link to its origin.
pub struct EdgeLink {
    link: RelayId,
    opener: RelayOpener,
    counters: RelayCounters,
    events: VecDeque<RelayEvent>,
    /// The needs last queued, so that only changes go out.
    announced: Option<Vec<(TrackId, LayerSet)>>,
    /// Each relayed source's numbers: what is missing and asked again.
    gaps: Gaps,
    /// The origin's clock carried onto ours, for the captures the datagrams carry.
    clock: CaptureClock,
}

impl EdgeLink {
    /// The link.
    pub fn link(&self) -> RelayId {
        self.link
    }

    fn push(&mut self, e: RelayEvent) {
        if let RelayEvent::Needs { .. } = e {
            self.events
                .retain(|q| !matches!(q, RelayEvent::Needs { .. }));
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn drop(&mut self, reason: RelayDrop) {
        self.counters.dropped[reason as usize] += 1;
    }
}

impl Router {
    /// Makes this router an edge of `link`: datagrams are opened with `key`. Replaces any
    /// link it had (tracks relayed so far stay until removed).
    pub fn relay_attach(&mut self, link: RelayId, key: &RelayKey) -> Result<(), SrtpError> {
        self.edge = Some(Box::new(EdgeLink {
            link,
            opener: RelayOpener::new(link.0, key)?,
            counters: RelayCounters::default(),
            events: VecDeque::new(),
            announced: None,
            gaps: Gaps::default(),
            clock: CaptureClock::default(),
        }));
        Ok(())
    }

    /// The link is gone: datagrams are no longer opened and its tracks are removed.
    pub fn relay_detach(&mut self, now: Instant) {
        self.edge = None;
        let relayed: Vec<TrackId> = self
            .tracks
            .values()
            .filter(|t| t.relayed)
            .map(|t| t.info.id)
            .collect();
        for track in relayed {
            self.unpublish(track);
        }
        self.alloc_dirty = true;
        self.pump(now);
    }

    /// The link this edge router is fed by, if any.
    pub fn relay_edge(&self) -> Option<&EdgeLink> {
        self.edge.as_deref()
    }

    /// What the edge received and refused so far.
    pub fn relay_edge_counters(&self) -> Option<&RelayCounters> {
        self.edge.as_deref().map(|e| &e.counters)
    }

    /// What to tell the origin next, if anything (drain after each input, like events).
    pub fn poll_relay_event(&mut self) -> Option<RelayEvent> {
        self.edge.as_deref_mut()?.events.pop_front()
    }

    /// The origin announced a track: it becomes an up-track here with the origin's id and
    /// publisher, announced to local viewers as `TrackPublished` (an edge room without a
    /// conference ignores that event). Returns false when refused (an id a local publisher
    /// uses, too many layers); announcing a known relayed track again updates its mute.
    pub fn relay_track_added(&mut self, track: RelayTrack, now: Instant) -> bool {
        let id = track.info.id;
        if let Some(t) = self.tracks.get(&id) {
            if !t.relayed {
                return false;
            }
            let muted = track.info.muted;
            self.relay_track_muted(id, muted, now);
            return true;
        }
        let video = track.info.kind == Kind::Video;
        if track.rids.len() > wire::MAX_LAYERS
            || video != track.info.source.is_video()
            || (!video && !track.rids.is_empty())
            || id.0 > wire::MAX_TRACK
        {
            return false;
        }
        let mut up = UpTrack::new(track.info.clone(), Mid::from("relay"), &track.rids);
        up.relayed = true;
        self.tracks.insert(id, up);
        // Local publishers (there should be none on an edge) never reuse an origin id.
        self.next_track = self.next_track.max(id.0 + 1);
        self.slots_dirty = true;
        self.index_dirty = true;
        self.alloc_dirty = true;
        self.emit(Event::TrackPublished(track.info));
        self.pump(now);
        true
    }

    /// The origin's track is gone.
    pub fn relay_track_removed(&mut self, track: TrackId, now: Instant) {
        if self.tracks.get(&track).is_some_and(|t| t.relayed) {
            if let Some(edge) = self.edge.as_deref_mut() {
                edge.gaps.forget(track);
            }
            self.unpublish(track);
            self.alloc_dirty = true;
            self.pump(now);
        }
    }

    /// The origin's track was muted or unmuted.
    pub fn relay_track_muted(&mut self, track: TrackId, muted: bool, now: Instant) {
        let Some(t) = self.tracks.get_mut(&track).filter(|t| t.relayed) else {
            return;
        };
        if t.info.muted == muted {
            return;
        }
        t.info.muted = muted;
        let (owner, source) = (t.info.participant, t.info.source);
        if !muted {
            // Packets resume after a gap: continue numbering, start on a keyframe.
            for p in self.peers.values_mut().filter_map(Peer::webrtc_mut) {
                for s in p.down_tracks.values_mut().filter(|s| s.track == track) {
                    s.forwarder.switch_source();
                }
            }
        }
        self.slots_dirty = true;
        self.emit(Event::TrackMuted {
            track,
            owner,
            source,
            muted,
            forced: false,
        });
        self.pump(now);
    }

    /// A relay datagram from the origin: opened, checked, and fanned out to local viewers as
    /// a local publisher's packet would be. Anything refused is counted, never a panic.
    pub fn handle_relay_datagram(&mut self, datagram: &[u8], now: Instant) {
        let Some(edge) = self.edge.as_deref_mut() else {
            return;
        };
        let (pkt, clear) = match edge.opener.open(datagram) {
            Ok(opened) => opened,
            Err(reason) => return edge.drop(reason),
        };
        let capture = edge.clock.place(i128::from(pkt.capture_us) * 1000, now);
        let Some(track) = self.tracks.get_mut(&pkt.track).filter(|t| t.relayed) else {
            return edge.drop(RelayDrop::UnknownTrack);
        };
        let Some(layer) = track.layers.get_mut(usize::from(pkt.layer)) else {
            return edge.drop(RelayDrop::UnknownTrack);
        };
        let pt = Pt::from(pkt.pt);
        let Some(params) = wire::params_of(pt) else {
            return edge.drop(RelayDrop::UnknownCodec);
        };
        let codec = params.spec().codec;
        let video = codec.is_video();
        if video != (track.info.kind == Kind::Video) {
            return edge.drop(RelayDrop::UnknownCodec);
        }
        match edge.gaps.on_packet(pkt.track, pkt.layer, pkt.seq, now) {
            Arrival::Duplicate => {
                edge.counters.duplicates += 1;
                return;
            }
            Arrival::Repaired => edge.counters.repaired += 1,
            Arrival::Fresh => {}
        }
        edge.counters.packets += 1;
        edge.counters.bytes += datagram.len() as u64;
        self.counters.rtp_in += 1;
        let payload: Arc<[u8]> = Arc::from(&clear[HEADER_LEN..]);
        layer.meter.add(payload.len(), now);
        if video && self.config.send_path == SendPath::Lean {
            // Kept once per source here too, for the edge's lean viewers' NACKs (fast::rtx).
            track
                .histories
                .store(now, pkt.layer, pkt.seq, pkt.marker, &payload);
        }
        let (publisher, subscribers) = (track.info.participant, track.subscribers.len());
        let at = (capture, now);
        self.deliver_relayed(&pkt, publisher, subscribers, &payload, pt, params, at);
        // The fan-out touched the subscribers it made want time (see `timers.rs`).
        self.timers.hot = true;
        self.pump(now);
        self.timers.hot = false;
        self.relay_ask_repairs(now);
    }

    /// Fans out a packet that came over a relay link (either direction) as a local
    /// publisher's would: its audio level to the speaker detector, the view the forwarders
    /// read. `subscribers`: the up-track's, as the caller just read them; `(capture, now)`:
    /// when its publisher captured it (the datagram's, carried onto our clock) and now.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver_relayed(
        &mut self,
        pkt: &RelayPacket,
        publisher: ParticipantId,
        subscribers: usize,
        payload: &Arc<[u8]>,
        pt: Pt,
        params: PayloadParams,
        (capture, now): (Instant, Instant),
    ) {
        let codec = params.spec().codec;
        let video = codec.is_video();
        let mut ext = ExtensionValues::default();
        if let Some(b) = pkt.audio_level {
            let level = -((b & 0x7f) as i8);
            ext.audio_level = Some(level);
            ext.voice_activity = Some(b & 0x80 != 0);
            self.speaker.level(publisher, level, now);
        }
        let incoming = Incoming {
            track: pkt.track,
            payload: Arc::clone(payload),
            marker: pkt.marker,
            view: PacketView {
                seq: pkt.seq,
                time: pkt.time,
                clock_rate: params.spec().clock_rate.get(),
                video,
                keyframe_start: video && VideoCodec::from_str0m(codec).is_keyframe_start(payload),
                arrival: now,
                capture,
            },
            arrival_ns: crate::media::fast::clock::nanos(now),
            layer: pkt.layer,
            pt,
            params,
            ext,
        };
        self.deliver(incoming, subscribers);
    }

    /// Queues resend requests for the gaps due now (first asks and retries).
    fn relay_ask_repairs(&mut self, now: Instant) {
        let Some(edge) = self.edge.as_deref_mut() else {
            return;
        };
        let mut asks = vec![];
        edge.counters.repair_requests += edge.gaps.due(now, &mut asks);
        for e in asks {
            edge.push(e);
        }
    }

    /// Queues the viewers' layer needs for the origin if they changed (from allocation).
    pub(in crate::media) fn relay_needs_now(&mut self, mut needs: Vec<(TrackId, LayerSet)>) {
        let Some(edge) = self.edge.as_deref_mut() else {
            return;
        };
        needs.retain(|(_, s)| !s.is_empty());
        if edge.announced.as_ref() != Some(&needs) {
            edge.announced = Some(needs.clone());
            edge.push(RelayEvent::Needs { needs });
        }
    }

    /// A local viewer needs a keyframe of a relayed track: the origin must ask its publisher.
    pub(in crate::media) fn relay_keyframe_wanted(&mut self, track: TrackId, layer: Layer) {
        if let Some(edge) = self.edge.as_deref_mut() {
            edge.push(RelayEvent::Keyframe { track, layer });
            self.counters.keyframe_requests += 1;
        }
    }
}
