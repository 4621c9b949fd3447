//! The bot's synthetic (or recorded) media going out: an Opus packet every 20 ms and VP8
//! frames per simulcast layer, written through str0m's direct API.

use super::{ClientCore, RIDS};
use crate::bot::media::{audio_payload, video_frame};
use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::media::{Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::RtcError;

impl ClientCore {
    fn pt(&self, codec: Codec) -> Option<Pt> {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    }

    /// The media clock's slot (of `every`) that `at` is in.
    fn slot(&self, at: Instant, every: Duration) -> u64 {
        let n = at.saturating_duration_since(self.media_start).as_nanos() / every.as_nanos().max(1);
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// One Opus packet (the clip's, or synthetic) with its audio level.
    pub(super) fn send_audio(&mut self, mid: Mid, now: Instant) -> Result<(), RtcError> {
        let Some(pt) = self.pt(Codec::Opus) else {
            return Ok(());
        };
        let ts = (self.seq_audio * 960) as u32;
        let slot = self.slot(self.next_audio, Duration::from_millis(20));
        let payload = match self.real.as_ref().and_then(|r| r.audio_packet(slot)) {
            Some(p) => p,
            None => audio_payload(&self.behaviour.shape, now),
        };
        let level = self.behaviour.shape.audio_level;
        let ext = ExtensionValues {
            // str0m carries levels as negative dBov.
            audio_level: Some(-level.clamp(0, 127)),
            voice_activity: Some(level < 127),
            ..Default::default()
        };
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return Ok(());
        };
        tx.write_rtp(
            RtpWrite::new(pt, self.seq_audio.into(), ts, now, payload)
                .marker(true)
                .ext_vals(ext),
        );
        self.seq_audio += 1;
        self.stats.sent_packets += 1;
        self.drain()
    }

    /// One frame on every simulcast layer the server wants (a keyframe when due, or when a
    /// paused layer resumes).
    pub(super) fn send_video(&mut self, mid: Mid, now: Instant) -> Result<(), RtcError> {
        let Some(pt) = self.pt(Codec::Vp8) else {
            return Ok(());
        };
        let shape = self.behaviour.shape;
        let periodic = now.saturating_duration_since(self.last_key) >= shape.keyframe_interval;
        if periodic {
            self.last_key = now;
        }
        self.frames += 1;
        let ts = (self.frames * 90_000 / u64::from(shape.fps.max(1))) as u32;
        let captured = now.checked_sub(shape.video_lag).unwrap_or(now);
        let slot = self.slot(self.next_video, Duration::from_secs(1) / shape.fps.max(1));
        let layers: &[u8] = if shape.simulcast { &[0, 1, 2] } else { &[0] };
        for &layer in layers {
            let rid = shape.simulcast.then(|| Rid::from(RIDS[usize::from(layer)]));
            let wanted = match &self.active_rids {
                None => true,
                Some(active) => active
                    .iter()
                    .any(|a| a.as_str() == rid.as_deref().unwrap_or("")),
            };
            if !wanted {
                // A paused encoder restarts with a keyframe.
                self.force_key[usize::from(layer)] = true;
                continue;
            }
            let key = periodic || std::mem::take(&mut self.force_key[usize::from(layer)]);
            let packets = match self.real.as_ref().and_then(|r| r.video_frame(slot)) {
                Some(p) => p,
                None => video_frame(&shape, layer, key, self.frames as u16, now),
            };
            let count = packets.len();
            for (i, payload) in packets.into_iter().enumerate() {
                let mut api = self.rtc.direct_api();
                let Some(tx) = api.stream_tx_by_mid(mid, rid) else {
                    break;
                };
                let seq = &mut self.seq_video[usize::from(layer)];
                tx.write_rtp(
                    RtpWrite::new(pt, (*seq).into(), ts, captured, payload)
                        .marker(i + 1 == count)
                        .nackable(true),
                );
                *seq += 1;
                self.stats.sent_packets += 1;
                self.drain()?;
            }
        }
        Ok(())
    }
}
