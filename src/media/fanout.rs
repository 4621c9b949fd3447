//! The per-packet path: one publisher packet fanned out to every subscription of its track,
//! and keyframe requests back toward publishers.

use super::codec::VideoCodec;
use super::codec_map;
use super::forwarder::{Decision, DropReason, PacketView};
use super::room::{Room, Work};
use super::simulcast::{Layer, LayerDecision};
use crate::model::{ParticipantId, TrackId};
use std::time::{Duration, Instant};
use str0m::media::KeyframeRequestKind;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, StreamTx};

/// Longest video may wait in a subscriber's pacer queue before new video is skipped.
const MAX_QUEUE_AGE: Duration = Duration::from_millis(400);

/// A pacer sample older than this says nothing about the queue now.
const FRESH_SAMPLE: Duration = Duration::from_millis(250);

/// How long the oldest packet has waited in a send stream's queue, when str0m sampled it
/// recently.
fn queue_age(tx: &StreamTx, now: Instant) -> Option<Duration> {
    let info = tx.queue_info()?;
    if now.saturating_duration_since(info.created_at()) > FRESH_SAMPLE {
        return None;
    }
    info.first_unsent()
        .map(|t| now.saturating_duration_since(t))
}

impl Room {
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
        if t.info.kind != crate::model::Kind::Video {
            return;
        }
        let Some(l) = t.layers.get_mut(usize::from(layer)) else {
            return;
        };
        if l.keyframes.should_request(now, &self.config.keyframe) {
            self.work.push_back(Work::Keyframe(track, layer, kind));
        }
    }

    pub(super) fn send_keyframe_request(
        &mut self,
        track: TrackId,
        layer: Layer,
        kind: KeyframeRequestKind,
    ) {
        let Some(t) = self.tracks.get(&track) else {
            return;
        };
        let (publisher, mid) = (t.info.participant, t.mid);
        let rid = t.layers.get(usize::from(layer)).and_then(|l| l.rid);
        let Some(p) = self.participants.get_mut(&publisher) else {
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

    /// Fans one publisher packet out to every subscription of its track.
    pub(super) fn forward(&mut self, from: ParticipantId, pkt: RtpPacket) {
        self.counters.rtp_in += 1;
        let now = pkt.timestamp;
        let Some(p) = self.participants.get_mut(&from) else {
            // The sender left between receiving the packet and handling it.
            return self.count_drop(DropReason::NotPublished);
        };
        let Some((mid, rid)) = p.mid_of(pkt.header.ssrc) else {
            return self.count_drop(DropReason::UnknownStream);
        };
        let Some(track_id) = p.published.get(&mid).copied() else {
            return self.count_drop(DropReason::NotPublished);
        };
        let in_pt = pkt.header.payload_type;
        let Some(in_params) = p.params_of(in_pt) else {
            return self.count_drop(DropReason::UnknownPayloadType);
        };
        let (codec, clock_rate) = (in_params.spec().codec, in_params.spec().clock_rate.get());
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return self.count_drop(DropReason::NotPublished);
        };
        if track.forced_mute {
            self.count_drop(DropReason::Muted);
            return;
        }
        let layer = track.layer_index(rid);
        if let Some(l) = track.layers.get_mut(usize::from(layer)) {
            l.meter.add(pkt.payload.len(), now);
        }
        let video = codec.is_video();
        if !video {
            if let Some(level) = pkt.header.ext_vals.audio_level {
                self.speaker.level(from, level, now);
            }
        }
        let view = PacketView {
            seq: *pkt.seq_no,
            time: pkt.time.numer(),
            clock_rate,
            video,
            keyframe_start: video && VideoCodec::from_str0m(codec).is_keyframe_start(&pkt.payload),
            arrival: now,
        };
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            video_content_type: pkt.header.ext_vals.video_content_type,
            abs_capture_time: pkt.header.ext_vals.abs_capture_time,
            ..Default::default()
        };
        if self.index_dirty {
            self.rebuild_index();
        }
        // Taken out for the loop (no per-packet allocation) and put back unless it went stale.
        let subscribers = match self.tracks.get_mut(&track_id) {
            Some(t) => std::mem::take(&mut t.subscribers),
            None => Vec::new(),
        };
        let mut keyframe_for: Option<Layer> = None;
        for &(sid, out_mid) in &subscribers {
            let Some(s) = self.participants.get_mut(&sid) else {
                self.counters.count(DropReason::SubscriptionGone);
                continue;
            };
            if !s.rtc.is_connected() {
                // Anything written before DTLS is up would be lost, keyframe included.
                self.count_drop(DropReason::NotConnected);
                continue;
            }
            let Some(sub) = s.subscriptions.get_mut(&out_mid) else {
                self.counters.count(DropReason::SubscriptionGone);
                continue;
            };
            if video {
                match sub.selector.decide(layer, view.keyframe_start) {
                    LayerDecision::Forward { switched } => {
                        if switched {
                            sub.forwarder.switch_source();
                            // The publisher may stop encoding the layer just left.
                            self.alloc_dirty = true;
                        }
                    }
                    LayerDecision::Drop(reason) => {
                        if sub.selector.switching() {
                            keyframe_for = sub.selector.target().or(keyframe_for);
                        }
                        self.count_drop(reason);
                        continue;
                    }
                }
            }
            let out_pt = match sub.pt_cache {
                Some((i, o)) if i == in_pt => o,
                _ => {
                    // What this m-line negotiated, not the subscriber's whole session.
                    let line_pts = s.rtc.media(out_mid).map_or(&[][..], |m| m.remote_pts());
                    let o = codec_map::out_pt(s.rtc.codec_config(), line_pts, in_params);
                    sub.pt_cache = Some((in_pt, o));
                    o
                }
            };
            let Some(pt) = out_pt else {
                self.count_drop(DropReason::NoMatchingCodec);
                continue;
            };
            {
                // One send-stream lookup serves the queue check and the write.
                let mut api = s.rtc.direct_api();
                let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                    self.counters.count(DropReason::NoSendStream);
                    continue;
                };
                if video && queue_age(tx, now).is_some_and(|a| a > MAX_QUEUE_AGE) {
                    // The pacer is already far behind for this subscriber (estimate below
                    // demand): adding video only adds delay. Skip it, and resume on a keyframe
                    // with continuous numbering once the queue has drained.
                    sub.forwarder.switch_source();
                    self.counters.count(DropReason::Congested);
                    continue;
                }
                let (seq, time) = match sub.forwarder.decide(&view) {
                    Decision::Forward { seq, time } => (seq, time),
                    Decision::Drop(reason) => {
                        if reason == DropReason::NotKeyframeYet {
                            keyframe_for = Some(layer);
                        }
                        self.counters.count(reason);
                        continue;
                    }
                };
                tx.write_rtp(
                    RtpWrite::new(pt, seq.into(), time as u32, now, pkt.payload.clone())
                        .marker(pkt.header.marker)
                        .ext_vals(ext.clone())
                        .nackable(video),
                );
            }
            self.counters.rtp_forwarded += 1;
            // str0m releases written media only from a timeout, so draining now would find
            // nothing to send and cost a full poll. The subscriber is due instead: every
            // packet written to it before the room next takes time leaves in that one pass.
            s.next_timeout = s.next_timeout.min(now);
        }
        if !self.index_dirty {
            if let Some(t) = self.tracks.get_mut(&track_id) {
                t.subscribers = subscribers;
            }
        }
        if let Some(layer) = keyframe_for {
            self.request_keyframe(track_id, layer, KeyframeRequestKind::Pli, now);
        }
    }

    /// Recomputes every track's subscriber list after subscriptions changed.
    fn rebuild_index(&mut self) {
        self.index_dirty = false;
        for t in self.tracks.values_mut() {
            t.subscribers.clear();
        }
        for (sid, s) in &self.participants {
            for (mid, sub) in &s.subscriptions {
                if let Some(t) = self.tracks.get_mut(&sub.track) {
                    t.subscribers.push((*sid, *mid));
                }
            }
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        self.counters.count(reason);
    }
}
