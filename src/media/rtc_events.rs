//! What a peer's `Rtc` reports, handled: its packets are routed to the fan-out, keyframe
//! requests to the publisher, ICE state and downlink estimates to the peer; silent peers are
//! reaped.

use super::codec::VideoCodec;
use super::config::SendPath;
use super::downtrack::{Incoming, Wishes};
use super::fanout::{fan_out, Spill, MAX_GROUP, MAX_HELD};
use super::forwarder::{DropReason, PacketView};
use super::lipsync::SenderReport;
use super::peer::Peer;
use super::peer_table::Subscriber;
use super::router::{Router, Work};
use super::simulcast::Layer;
use crate::model::{Kind, LeaveReason, ParticipantId, TrackId};
use std::time::Instant;
use str0m::bwe::BweKind;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::rtp::{ExtensionValues, RtpPacket};
use str0m::{Event, IceConnectionState};

impl Router {
    pub(super) fn handle_event(&mut self, id: ParticipantId, e: Event, now: Instant) {
        match e {
            Event::RtpPacket(pkt) => self.route(id, pkt),
            Event::KeyframeRequest(req) => self.keyframe_wanted(id, req.mid, req.kind, now),
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(participant = %id, ?state, "ice");
                let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) else {
                    return;
                };
                p.ice_up = matches!(
                    state,
                    IceConnectionState::Connected | IceConnectionState::Completed
                );
                match state {
                    IceConnectionState::Disconnected => {
                        p.disconnected_since.get_or_insert(now);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        p.connected = true;
                        p.disconnected_since = None;
                    }
                    _ => {}
                }
            }
            Event::Connected => {
                tracing::debug!(participant = %id, "media connected");
                // Subscriptions made before the connection was up start with a fresh keyframe.
                let wanted: Vec<(TrackId, Layer)> = self
                    .peers
                    .get(&id)
                    .and_then(Peer::webrtc)
                    .map(|p| {
                        p.down_tracks
                            .values()
                            .filter_map(|s| Some((s.track, s.selector.target()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                for (track, layer) in wanted {
                    self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) else {
                    return;
                };
                if p.note_estimate(estimate.as_u64()) {
                    self.alloc_moved.push(id);
                }
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Video && m.direction.is_receiving() => {
                // A fresh publisher's first frames may be lost before DTLS is up; ask early.
                let track = self
                    .peers
                    .get(&id)
                    .and_then(Peer::webrtc)
                    .and_then(|p| p.published.get(&m.mid))
                    .copied();
                let layers = track
                    .and_then(|t| self.tracks.get(&t))
                    .map(|t| t.layers.len())
                    .unwrap_or(0);
                for layer in 0..layers {
                    if let Some(track) = track {
                        self.request_keyframe(track, layer as Layer, KeyframeRequestKind::Pli, now);
                    }
                }
            }
            _ => {}
        }
    }

    /// Tells the room how far it has read its media inbox: `None` when nothing is waiting
    /// there, else the arrival time of the last datagram it handled. A room that runs late
    /// (starved of CPU, or busy with a storm of joins) holds its peers' datagrams unread;
    /// judged against the clock, every one of them would look silent and be reaped at once
    /// (issue 16's 1 -> 300 runs lost their publisher and 250 viewers that way).
    pub fn media_read_until(&mut self, at: Option<Instant>) {
        self.read_until = at;
    }

    /// A subscriber's decoder on `mid` needs a keyframe of the layer it is receiving (from
    /// str0m's `KeyframeRequest`, or the lean path's own reading of its PLI/FIR).
    pub(super) fn keyframe_wanted(
        &mut self,
        id: ParticipantId,
        mid: Mid,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let wanted = self
            .peers
            .get(&id)
            .and_then(Peer::webrtc)
            .and_then(|p| p.down_tracks.get(&mid))
            .and_then(|s| Some((s.track, s.selector.current().or(s.selector.target())?)));
        if let Some((track, layer)) = wanted {
            self.request_keyframe(track, layer, kind, now);
        }
    }

    /// Removes peers whose media path went silent, whose ICE stayed disconnected, or that
    /// never connected after an answered offer. Time is judged as far as the room has read
    /// its inbox (see [`Router::media_read_until`]).
    pub(super) fn reap(&mut self, now: Instant) {
        let c = &self.config;
        let until = self.read_until.map_or(now, |t| t.min(now));
        let dead: Vec<(ParticipantId, &'static str)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| Some((id, p.webrtc()?)))
            .filter_map(|(id, p)| {
                let why = if p
                    .disconnected_since
                    .is_some_and(|t| until >= t + c.ice_grace)
                {
                    "ICE stayed disconnected"
                } else if p.connected && until >= p.last_heard + c.media_timeout {
                    "media went silent"
                } else if !p.connected
                    && p.expected_since
                        .is_some_and(|t| until >= t + c.connect_timeout)
                {
                    "media never connected"
                } else if !p.rtc.is_alive() {
                    "its connection ended"
                } else {
                    return None;
                };
                Some((*id, why))
            })
            .collect();
        for (id, why) in dead {
            let behind = now.saturating_duration_since(until);
            tracing::info!(participant = %id, ?behind, "{why}; reaping");
            self.drop_peer(id, LeaveReason::Timeout);
        }
    }

    /// Routes one publisher packet: finds its up-track and layer, measures it, and fans it
    /// out to the up-track's subscribers. A packet that reaches no down-track is counted
    /// under the reason why.
    fn route(&mut self, from: ParticipantId, pkt: RtpPacket) {
        self.counters.rtp_in += 1;
        let now = pkt.timestamp;
        let Some(p) = self.peers.get_mut(&from).and_then(Peer::webrtc_mut) else {
            // The sender left between receiving the packet and handling it.
            return self.counters.count(DropReason::NotPublished);
        };
        let Some((mid, rid)) = p.mid_of(pkt.header.ssrc) else {
            return self.counters.count(DropReason::UnknownStream);
        };
        let Some(track_id) = p.published.get(&mid).copied() else {
            return self.counters.count(DropReason::NotPublished);
        };
        let pt = pkt.header.payload_type;
        let Some(params) = p.params_of(pt) else {
            return self.counters.count(DropReason::UnknownPayloadType);
        };
        let (codec, clock_rate) = (params.spec().codec, params.spec().clock_rate.get());
        let h = &pkt.header;
        // The lean path reads the peer's sender reports once it has its keys (str0m then sees
        // none); str0m's is the one before, or on its own path.
        let lean_report = p.fast.as_deref_mut().and_then(|f| {
            f.reports
                .on_rtp(*h.ssrc, *pkt.seq_no, h.timestamp, clock_rate, now)
        });
        let report =
            lean_report.or_else(|| pkt.last_sender_info.as_ref().map(SenderReport::from_str0m));
        let capture = p
            .capture_clock
            .capture(report, h.timestamp, clock_rate, now);
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return self.counters.count(DropReason::NotPublished);
        };
        if track.forced_mute {
            return self.counters.count(DropReason::Muted);
        }
        let layer = track.layer_index(rid);
        let subscribers = track.subscribers.len();
        if let Some(l) = track.layers.get_mut(usize::from(layer)) {
            l.meter.add(pkt.payload.len(), now);
        }
        let video = codec.is_video();
        if video && self.config.send_path == SendPath::Lean {
            // Once per source, for the lean subscribers' NACKs (fast::rtx).
            let (seq, marker) = (*pkt.seq_no, pkt.header.marker);
            track.histories.store(now, layer, seq, marker, &pkt.payload);
        }
        if !video {
            if let Some(level) = pkt.header.ext_vals.audio_level {
                self.speaker.level(from, level, now);
            }
        }
        if let Some(tap) = &mut self.tap {
            let known = if video {
                codec == Codec::Vp8
            } else {
                codec == Codec::Opus
            };
            tap.packet(
                track_id,
                layer,
                video,
                known,
                *pkt.seq_no,
                pkt.header.timestamp,
                pkt.header.marker,
                &pkt.payload,
                now,
                report.map(|_| capture),
            );
        }
        let ext = &pkt.header.ext_vals;
        let keyframe_start = video && VideoCodec::from_str0m(codec).is_keyframe_start(&pkt.payload);
        let incoming = Incoming {
            track: track_id,
            payload: pkt.payload,
            marker: pkt.header.marker,
            view: PacketView {
                seq: *pkt.seq_no,
                time: pkt.time.numer(),
                clock_rate,
                video,
                keyframe_start,
                arrival: now,
                capture,
            },
            arrival_ns: super::fast::clock::nanos(now),
            layer,
            pt,
            params,
            ext: ExtensionValues {
                audio_level: ext.audio_level,
                voice_activity: ext.voice_activity,
                video_orientation: ext.video_orientation,
                video_content_type: ext.video_content_type,
                abs_capture_time: ext.abs_capture_time,
                ..Default::default()
            },
        };
        self.deliver(incoming, subscribers);
    }

    /// Fans one routed packet out to its up-track's subscribers and does what they wish; while
    /// the room task reads a burst, holds it for [`Router::release_fan_outs`] instead.
    /// `subscribers`: the up-track's, as `route` just read them (the most copies it makes).
    pub(super) fn deliver(&mut self, incoming: Incoming, subscribers: usize) {
        if !self.held.on {
            return self.fan_out_group(std::slice::from_ref(&incoming), None);
        }
        if self.held.packets.len() >= MAX_HELD {
            // A backstop only (see `MAX_HELD`); the pump this packet came from carries out
            // what the held ones wished.
            self.fan_out_held(None);
        }
        if self.index_dirty {
            self.rebuild_index();
        }
        self.held.copies = self.held.copies.saturating_add(subscribers as u32);
        self.held.packets.push(incoming);
    }

    /// The room task reads a burst of datagrams: their packets' fan-outs wait for
    /// [`Router::release_fan_outs`], so that each subscriber gets a track's packets of the
    /// burst in one visit (see `fanout::Held`). Only the room task's burst loop holds; every
    /// other caller sees each packet fanned out as it is handled.
    pub fn hold_fan_outs(&mut self) {
        self.held.on = true;
    }

    /// Copies the packets held since [`Router::hold_fan_outs`] will make, at most.
    pub fn held_copies(&self) -> u32 {
        self.held.copies
    }

    /// Ends a burst: fans out what was held and carries out what the subscribers wished.
    pub fn release_fan_outs(&mut self, now: Instant) {
        self.release(now, None);
    }

    /// [`Self::release_fan_outs`], handing what the fan-outs queued to `spill` every
    /// `spill.every` datagrams, between two subscribers: the room task sends a keyframe's
    /// first copies while it seals the rest, which would otherwise wait for the last.
    pub fn release_fan_outs_spilling(&mut self, now: Instant, spill: &mut Spill) {
        self.release(now, Some(spill));
    }

    fn release(&mut self, now: Instant, spill: Option<&mut Spill>) {
        self.held.on = false;
        if self.held.packets.is_empty() {
            return;
        }
        self.fan_out_held(spill);
        // The fan-out touched the subscribers it made want time (see `timers.rs`).
        self.timers.hot = true;
        self.pump(now);
        self.timers.hot = false;
    }

    /// Fans out the held packets, each up-track's together, in arrival order within it.
    fn fan_out_held(&mut self, mut spill: Option<&mut Spill>) {
        let mut held = std::mem::take(&mut self.held.packets);
        if let Some(s) = spill.as_deref_mut() {
            s.base = self.out.len();
        }
        self.held.copies = 0;
        // Stable: a track's packets keep their order. Tracks' relative order changes, which
        // no subscriber can see (each has its own SSRCs and sequences).
        held.sort_by_key(|p| p.track);
        for run in held.chunk_by(|a, b| a.track == b.track) {
            for group in run.chunks(MAX_GROUP) {
                self.fan_out_group(group, spill.as_deref_mut());
            }
        }
        held.clear();
        self.held.packets = held;
    }

    /// Fans out one up-track's packets (at most `MAX_GROUP`) and does what they wish.
    fn fan_out_group(&mut self, ps: &[Incoming], mut spill: Option<&mut Spill>) {
        let Some(track_id) = ps.first().map(|p| p.track) else {
            return;
        };
        if self.index_dirty {
            self.rebuild_index();
        }
        // Taken out for the fan-out (no per-packet allocation) and put back unless it went
        // stale meanwhile.
        let subscribers = match self.tracks.get_mut(&track_id) {
            Some(t) => std::mem::take(&mut t.subscribers),
            None => Vec::new(),
        };
        let mut wishes = [Wishes::default(); MAX_GROUP];
        let mut rest = &subscribers[..];
        while !rest.is_empty() {
            let n = spill.as_deref().map_or(rest.len(), |s| {
                s.subscribers_before_due(self.out.len(), ps.len())
            });
            let (now, later) = rest.split_at(n.min(rest.len()));
            fan_out(
                ps,
                &mut wishes,
                now,
                &mut self.peers,
                &mut self.counters,
                &mut self.forward_log,
                &mut self.out,
                &mut self.timers.touched,
            );
            rest = later;
            if let Some(s) = spill.as_deref_mut() {
                s.maybe(&mut self.out, &mut self.forward_log);
            }
        }
        if !self.index_dirty {
            if let Some(t) = self.tracks.get_mut(&track_id) {
                t.subscribers = subscribers;
            }
        }
        for (p, w) in ps.iter().zip(&wishes) {
            if w.reallocate {
                self.alloc_dirty = true;
            }
            if let Some(layer) = w.keyframe {
                let at = p.view.arrival;
                self.request_keyframe(track_id, layer, KeyframeRequestKind::Pli, at);
            }
        }
    }

    /// Recomputes every up-track's subscriber list after subscriptions changed.
    fn rebuild_index(&mut self) {
        self.index_dirty = false;
        for t in self.tracks.values_mut() {
            t.subscribers.clear();
        }
        let uplink = &self.uplink;
        for (sid, s) in &self.peers {
            let slot = self.peers.slot_of(sid).unwrap_or(u32::MAX);
            let s = match s {
                Peer::WebRtc(s) => s,
                Peer::Relay(r) => {
                    // A relay link takes every track but those it brought (`relay::uplink`);
                    // its `forward` ignores the m-line.
                    let link = r.link();
                    for t in self.tracks.values_mut().filter(|t| uplink.takes(link, t)) {
                        t.subscribers
                            .push(Subscriber::new(*sid, slot, Mid::from("relay"), 0));
                    }
                    continue;
                }
            };
            for (at, (mid, down)) in s.down_tracks.iter().enumerate() {
                if let Some(t) = self.tracks.get_mut(&down.track) {
                    t.subscribers
                        .push(Subscriber::new(*sid, slot, *mid, at as u32));
                }
            }
        }
        for p in self.peers.values_mut() {
            if let Peer::Relay(r) = p {
                r.retain(|t| self.tracks.contains_key(t));
            }
        }
    }

    /// Queues a keyframe request for one layer of a track, unless one went out just now.
    pub(super) fn request_keyframe(
        &mut self,
        track: TrackId,
        layer: Layer,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.info.kind != Kind::Video {
            return;
        }
        let Some(l) = t.layers.get_mut(usize::from(layer)) else {
            return;
        };
        if l.keyframes.should_request(now, &self.config.keyframe) {
            self.work.push_back(Work::Keyframe(track, layer, kind));
        }
    }

    /// Sends a queued keyframe request to the track's publisher.
    pub(super) fn send_keyframe_request(
        &mut self,
        track: TrackId,
        layer: Layer,
        kind: KeyframeRequestKind,
    ) {
        let Some(t) = self.tracks.get(&track) else {
            return;
        };
        if let Some(link) = t.uplink {
            return self.uplink_keyframe_wanted(link, track, layer);
        }
        if t.relayed {
            return self.relay_keyframe_wanted(track, layer);
        }
        let (publisher, mid) = (t.info.participant, t.mid);
        let rid = t.layers.get(usize::from(layer)).and_then(|l| l.rid);
        let Some(p) = self.peers.get_mut(&publisher).and_then(Peer::webrtc_mut) else {
            return;
        };
        let mut api = p.rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(mid, rid) else {
            return;
        };
        rx.request_keyframe(kind);
        self.counters.keyframe_requests += 1;
        self.drain(publisher);
    }
}
