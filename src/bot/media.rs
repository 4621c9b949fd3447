//! Synthetic media: VP8-shaped and Opus-shaped RTP payloads with a send-time stamp inside.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Shapes of the synthetic streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamShape {
    /// Video frames per second.
    pub fps: u32,
    /// Bytes of a video keyframe.
    pub keyframe_bytes: usize,
    /// Bytes of a video delta frame.
    pub delta_bytes: usize,
    /// Interval between unrequested keyframes.
    pub keyframe_interval: Duration,
    /// Bytes of one 20 ms audio packet.
    pub audio_bytes: usize,
    /// Publish the camera as three simulcast layers (`q`, `h`, `f`), sized 1/8, 1/3 and 1 of
    /// the frame sizes above.
    pub simulcast: bool,
    /// RFC 6464 level sent with audio (0 loudest … 127 silence).
    pub audio_level: i8,
    /// How long before it is sent each video frame was captured (an encoder's latency):
    /// its sender reports say so, as a browser's do.
    pub video_lag: Duration,
}

impl Default for StreamShape {
    fn default() -> Self {
        StreamShape {
            fps: 30,
            keyframe_bytes: 6000,
            delta_bytes: 1500,
            keyframe_interval: Duration::from_secs(3),
            audio_bytes: 80,
            simulcast: false,
            audio_level: 127,
            video_lag: Duration::ZERO,
        }
    }
}

/// Largest payload per RTP packet.
const MAX_PAYLOAD: usize = 1100;
const STAMP: &[u8; 3] = b"CFB";
/// VP8 descriptor (X, S, I with 15-bit picture id) plus one payload-header byte.
const VP8_PREFIX: usize = 5;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

/// What a synthetic payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Age at the time of reading, in microseconds.
    pub age_us: u64,
    /// The simulcast layer it was sent on.
    pub layer: u8,
}

/// Reads the stamp of a synthetic payload (send time and layer).
pub fn read_stamp(payload: &[u8], video: bool, now: Instant) -> Option<Stamp> {
    let at = if video { VP8_PREFIX } else { 0 };
    let body = payload.get(at..at + STAMP_LEN)?;
    if &body[..3] != STAMP {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&body[3..11]);
    Some(Stamp {
        age_us: micros_since_epoch(now).saturating_sub(u64::from_be_bytes(b)),
        layer: body[11],
    })
}

/// Reads the send stamp of a synthetic payload and returns its age at `now` in microseconds.
pub fn stamp_micros(payload: &[u8], video: bool, now: Instant) -> Option<u64> {
    read_stamp(payload, video, now).map(|s| s.age_us)
}

/// Magic, send time, layer.
const STAMP_LEN: usize = 12;

fn stamped(len: usize, now: Instant, layer: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(STAMP_LEN));
    v.extend_from_slice(STAMP);
    v.extend_from_slice(&micros_since_epoch(now).to_be_bytes());
    v.push(layer);
    v.resize(len.max(STAMP_LEN), 0xAB);
    v
}

/// One Opus-shaped packet.
pub fn audio_payload(shape: &StreamShape, now: Instant) -> Vec<u8> {
    stamped(shape.audio_bytes, now, 0)
}

/// Frame size of a simulcast layer relative to the full one.
pub fn layer_bytes(bytes: usize, layer: u8, layers: u8) -> usize {
    if layers <= 1 {
        return bytes;
    }
    match layer {
        0 => bytes / 8,
        1 => bytes / 3,
        _ => bytes,
    }
    .max(100)
}

/// The RTP payloads of one VP8-shaped frame; the last one carries the marker.
pub fn video_frame(
    shape: &StreamShape,
    layer: u8,
    keyframe: bool,
    picture_id: u16,
    now: Instant,
) -> Vec<Vec<u8>> {
    let full = if keyframe {
        shape.keyframe_bytes
    } else {
        shape.delta_bytes
    };
    let layers = if shape.simulcast { 3 } else { 1 };
    let total = layer_bytes(full, layer, layers);
    let per = MAX_PAYLOAD - VP8_PREFIX;
    let count = total.div_ceil(per).max(1);
    let pid = picture_id & 0x7fff;
    (0..count)
        .map(|i| {
            let first = i == 0;
            let mut p = Vec::with_capacity(MAX_PAYLOAD);
            p.push(if first { 0x90 } else { 0x80 });
            p.push(0x80);
            p.push(0x80 | (pid >> 8) as u8);
            p.push(pid as u8);
            // VP8 payload header: P bit 0 on a keyframe, show_frame set.
            p.push(if keyframe { 0x10 } else { 0x11 });
            let size = (total - i * per).min(per);
            p.extend_from_slice(&stamped(size, now, layer));
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::VideoCodec;

    #[test]
    fn frames_are_recognised_by_the_sfu_keyframe_detector() {
        let s = StreamShape::default();
        let now = Instant::now();
        let key = video_frame(&s, 0, true, 7, now);
        assert!(key.len() > 1);
        assert!(VideoCodec::Vp8.is_keyframe_start(&key[0]));
        assert!(!VideoCodec::Vp8.is_keyframe_start(&key[1]));
        let delta = video_frame(&s, 0, false, 8, now);
        assert!(!VideoCodec::Vp8.is_keyframe_start(&delta[0]));
        assert!(key.iter().all(|p| p.len() <= MAX_PAYLOAD));
    }

    #[test]
    fn stamps_round_trip() {
        let s = StreamShape::default();
        let t = Instant::now();
        let later = t + Duration::from_millis(5);
        let a = audio_payload(&s, t);
        let age = stamp_micros(&a, false, later).expect("stamped");
        assert!((4_900..=5_100).contains(&age), "{age}");
        let v = video_frame(&s, 0, false, 1, t);
        assert!(stamp_micros(&v[0], true, later).is_some());
        assert_eq!(stamp_micros(&[1, 2, 3], false, later), None);
    }
}
