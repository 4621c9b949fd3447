//! A room's recording tap: sees every up-track's RTP (no str0m peer of its own), picks the stage.
//!
//! The router hands each routed packet here before the fan-out. Audio (Opus) of every voice
//! goes to the recording; video only for the stage source (and the one it is leaving, until
//! the recorder has switched), so a large room copies one video stream, not all of them. The
//! stage is the screen share while there is one, otherwise the active speaker's camera,
//! otherwise the camera already shown (or any camera); within a simulcast track the highest
//! layer that arrives. Sending is [`RecordingHandle::send`]: never a wait; a full queue is a
//! counted drop. Video of a publisher that sends H.264 is never sent (the recorder reads VP8
//! only): the recording keeps the last VP8 stage source, and the tap logs it once per track.

use super::router::Router;
use super::simulcast::Layer;
use super::track::UpTrack;
use crate::model::{ParticipantId, Source, TrackId};
use crate::record::{Input, RecordingHandle, RtpIn, SourceId};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use str0m::media::KeyframeRequestKind;

/// How often the stage is re-chosen (speaker changes come at most about this often anyway).
pub const STAGE_EVERY: Duration = Duration::from_millis(250);

/// Layers per track in a [`SourceId`] (simulcast uses three).
const LAYERS: u64 = 4;

/// The recorder's name for one layer of a track.
pub fn source_of(track: TrackId, layer: Layer) -> SourceId {
    SourceId(track.0 * LAYERS + u64::from(layer))
}

/// The track and layer behind a recorder source.
pub fn track_of(source: SourceId) -> (TrackId, Layer) {
    (TrackId(source.0 / LAYERS), (source.0 % LAYERS) as Layer)
}

/// The recording side of a router.
pub struct RecordTap {
    handle: RecordingHandle,
    stage: Option<SourceId>,
    /// The source the stage is leaving, still sent until the recorder switched.
    leaving: Option<(SourceId, Instant)>,
    /// Video tracks whose packets are not VP8 (logged once each, never staged).
    not_vp8: HashSet<TrackId>,
    pub(super) next_stage: Instant,
}

/// How long the old stage source is still sent after a switch (its keyframe wait).
const LEAVING_FOR: Duration = Duration::from_secs(5);

impl RecordTap {
    /// A tap over a started recording.
    pub fn new(handle: RecordingHandle, now: Instant) -> Self {
        RecordTap {
            handle,
            stage: None,
            leaving: None,
            not_vp8: HashSet::new(),
            next_stage: now,
        }
    }

    /// The recording's handle (its file, its drop counter).
    pub fn handle(&self) -> &RecordingHandle {
        &self.handle
    }

    /// The track on stage, if any (its top layer is asked of the publisher).
    pub fn stage_track(&self) -> Option<TrackId> {
        self.stage.map(|s| track_of(s).0)
    }

    /// Ends the tap; the writer finishes the file and reports `Stopped`.
    pub fn stop(self) {
        self.handle.stop();
    }

    /// One routed packet of `track`'s `layer`; `vp8`/`opus` say what its payload is; `capture`
    /// when its publisher's sender reports place it (`media::lipsync`).
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        track: TrackId,
        layer: Layer,
        video: bool,
        known_codec: bool,
        seq: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        arrival: Instant,
        capture: Option<Instant>,
    ) {
        let source = source_of(track, layer);
        if video {
            if !known_codec {
                if self.not_vp8.insert(track) {
                    tracing::info!(%track, "recording: video not VP8 is not recorded (H.264)");
                }
                return;
            }
            let leaving = self.leaving.is_some_and(|(s, _)| s == source);
            if self.stage != Some(source) && !leaving {
                return;
            }
        } else if !known_codec {
            return;
        }
        let rtp = RtpIn {
            seq,
            timestamp,
            marker,
            payload: payload.to_vec(),
            arrival,
            capture,
        };
        self.handle.send(if video {
            Input::Video(source, rtp)
        } else {
            Input::Audio(source, rtp)
        });
    }

    /// A track ended.
    pub fn removed(&mut self, track: TrackId) {
        for layer in 0..LAYERS as Layer {
            let s = source_of(track, layer);
            self.handle.send(Input::Removed(s));
            if self.stage == Some(s) {
                self.stage = None;
            }
        }
        self.not_vp8.remove(&track);
    }

    /// Re-chooses the stage; returns the source to ask a keyframe of when it changed.
    pub(super) fn choose_stage(
        &mut self,
        tracks: &BTreeMap<TrackId, UpTrack>,
        speaker: Option<ParticipantId>,
        now: Instant,
    ) -> Option<SourceId> {
        self.next_stage = now + STAGE_EVERY;
        if self.leaving.is_some_and(|(_, at)| now >= at + LEAVING_FOR) {
            self.leaving = None;
        }
        let usable = |t: &&UpTrack| {
            t.info.source.is_video() && !t.info.muted && !self.not_vp8.contains(&t.info.id)
        };
        let current = self.stage.map(|s| track_of(s).0);
        let pick = tracks
            .values()
            .filter(usable)
            .find(|t| t.info.source == Source::Screen)
            .or_else(|| {
                tracks.values().filter(usable).find(|t| {
                    t.info.source == Source::Camera && Some(t.info.participant) == speaker
                })
            })
            .or_else(|| current.and_then(|c| tracks.get(&c)).filter(usable))
            .or_else(|| {
                tracks
                    .values()
                    .filter(usable)
                    .find(|t| t.info.source == Source::Camera)
            });
        let source = pick.map(|t| {
            // The highest layer that arrives now (a paused layer has no rate); when none does,
            // the top one, which the router then asks the publisher for.
            let layer = (0..t.layers.len())
                .rev()
                .find(|&i| t.layers[i].meter.rate(now).is_some_and(|r| r > 0))
                .unwrap_or(t.layers.len().saturating_sub(1));
            source_of(t.info.id, layer as Layer)
        });
        if source == self.stage || source.is_none() {
            return None;
        }
        if let Some(old) = self.stage {
            self.leaving = Some((old, now));
        }
        self.stage = source;
        self.handle.send(Input::Stage(source));
        source
    }
}

impl Router {
    /// Starts feeding a recording (replacing none: the caller checks [`Router::recording`]).
    pub fn start_recording(&mut self, handle: RecordingHandle, now: Instant) {
        self.tap = Some(RecordTap::new(handle, now));
        self.pump(now);
    }

    /// Stops the recording, if one runs; its writer then reports `Stopped`.
    pub fn stop_recording(&mut self) -> bool {
        match self.tap.take() {
            Some(tap) => {
                tap.stop();
                true
            }
            None => false,
        }
    }

    /// The running recording, if any.
    pub fn recording(&self) -> Option<&RecordingHandle> {
        self.tap.as_ref().map(RecordTap::handle)
    }

    /// The recorder wants a keyframe of a source (a stage switch, or a loss).
    pub fn recording_keyframe(&mut self, source: SourceId, now: Instant) {
        let (track, layer) = track_of(source);
        self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
        self.pump(now);
    }

    /// Re-chooses the recording's stage when due (called on each timeout).
    pub(super) fn record_tick(&mut self, now: Instant) {
        let speaker = self.speaker.dominant();
        let Some(tap) = self.tap.as_mut().filter(|t| t.next_stage <= now) else {
            return;
        };
        if let Some(source) = tap.choose_stage(&self.tracks, speaker, now) {
            let (track, layer) = track_of(source);
            self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
            // The publisher may have paused that layer: announce what the recording needs.
            self.alloc_dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_a_track_and_layer() {
        for (t, l) in [(1, 0), (7, 2), (123_456, 3)] {
            assert_eq!(track_of(source_of(TrackId(t), l)), (TrackId(t), l));
        }
        assert_ne!(source_of(TrackId(1), 1), source_of(TrackId(2), 1));
    }
}
