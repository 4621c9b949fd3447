//! Every voice mixed into one Opus track: decode each stream, add it in at its place on the
//! recording's timeline (by RTP timestamp, anchored at its publisher's capture instant once
//! its sender reports give one, before that at arrival), encode 20 ms frames.
//!
//! A frame is encoded once the clock is [`MixConfig::delay_ms`] past its end, so packets up to
//! that late (jitter) are still mixed in; later ones are dropped and counted. Small gaps are
//! concealed by the decoder (PLC), longer ones are silence. Memory: the mix buffer covers at
//! most `delay + horizon`, whatever the peers send.

use super::SourceId;
use opus::{Application, Bitrate, Channels, Decoder, Encoder};
use std::collections::HashMap;

/// Samples per second of the mix.
pub const RATE: u64 = 48_000;
/// Samples per 20 ms output frame.
pub const FRAME: usize = 960;
/// Longest Opus packet (120 ms).
const MAX_PACKET_SAMPLES: usize = 5_760;
/// How far (samples) a voice's mapping may stray from its captures before it is laid on them
/// again: as the stage's `CAPTURE_SHIFT_MS`.
const CAPTURE_SHIFT: u64 = super::stage::CAPTURE_SHIFT_MS * RATE / 1000;
/// Gaps up to this many samples are concealed by the decoder; longer ones stay silent.
const MAX_PLC_SAMPLES: u64 = 3 * FRAME as u64;

/// Settings of the mixer.
#[derive(Debug, Clone)]
pub struct MixConfig {
    /// How long after a frame's end it is encoded (jitter allowance). Default 120 ms.
    pub delay_ms: u64,
    /// How far ahead of the clock a packet may land before its source is re-anchored.
    /// Default 1000 ms.
    pub horizon_ms: u64,
    /// Opus bitrate of the mixed track. Default 48 kbit/s.
    pub bitrate: i32,
}

impl Default for MixConfig {
    fn default() -> Self {
        MixConfig {
            delay_ms: 120,
            horizon_ms: 1_000,
            bitrate: 48_000,
        }
    }
}

/// Counters of the mixer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MixStats {
    /// Packets mixed in.
    pub mixed: u64,
    /// Packets that arrived after their frame was encoded.
    pub late: u64,
    /// Packets seen twice.
    pub duplicate: u64,
    /// Packets the decoder rejected.
    pub undecodable: u64,
    /// Times a source was re-anchored (clock jump, or too far ahead).
    pub resyncs: u64,
    /// Packets that would land beyond the bounded mix buffer (the mixer was not polled).
    pub ahead: u64,
    /// Frames encoded.
    pub frames: u64,
}

/// An encoded 20 ms frame of the mix.
#[derive(Debug, Clone)]
pub struct MixedFrame {
    /// Start time in the recording, ms.
    pub time_ms: u64,
    /// Opus packet.
    pub data: Vec<u8>,
}

/// The mixer error: libopus refused to start or to encode.
#[derive(Debug, thiserror::Error)]
#[error("opus: {0}")]
pub struct OpusError(#[from] opus::Error);

struct Voice {
    decoder: Decoder,
    /// (extended RTP timestamp, sample position) of the anchor packet.
    anchor: Option<(u64, u64)>,
    /// Whether the anchor lies at a capture instant (else at an arrival).
    on_capture: bool,
    ts_ext: Option<u64>,
    /// Where this voice's last decoded samples ended.
    next_pos: Option<u64>,
    /// Highest sequence number seen and a bitmap of the 64 before it.
    seen: Option<(u64, u64)>,
}

impl Voice {
    fn extend(&mut self, ts: u32) -> u64 {
        let ext = match self.ts_ext {
            None => u64::from(ts) + (1 << 32),
            Some(prev) => prev.wrapping_add_signed(i64::from(ts.wrapping_sub(prev as u32) as i32)),
        };
        self.ts_ext = Some(ext);
        ext
    }

    /// Records `seq`; false if it was seen already.
    fn first_time(&mut self, seq: u64) -> bool {
        match &mut self.seen {
            None => {
                self.seen = Some((seq, 0));
                true
            }
            Some((high, bits)) => {
                if seq > *high {
                    let shift = seq - *high;
                    *bits = if shift >= 64 {
                        0
                    } else {
                        (*bits << shift) | (1 << (shift - 1))
                    };
                    *high = seq;
                    true
                } else if seq == *high {
                    false
                } else {
                    let back = *high - seq;
                    if back > 64 {
                        return false;
                    }
                    let bit = 1u64 << (back - 1);
                    let new = *bits & bit == 0;
                    *bits |= bit;
                    new
                }
            }
        }
    }
}

/// The mixer.
pub struct Mixer {
    config: MixConfig,
    voices: HashMap<SourceId, Voice>,
    encoder: Encoder,
    /// Sample position of `acc[0]`: everything before it is encoded.
    emitted: u64,
    acc: Vec<f32>,
    /// The most samples `acc` may hold.
    max_span: u64,
    pcm: Vec<f32>,
    out: Vec<u8>,
    stats: MixStats,
}

impl Mixer {
    /// A mixer with a mono 48 kHz Opus encoder.
    pub fn new(config: MixConfig) -> Result<Self, OpusError> {
        let mut encoder = Encoder::new(RATE as u32, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::Bits(config.bitrate))?;
        let cap = ((config.delay_ms + config.horizon_ms) * RATE / 1000) as usize
            + MAX_PACKET_SAMPLES
            + FRAME;
        Ok(Mixer {
            config,
            voices: HashMap::new(),
            encoder,
            emitted: 0,
            acc: Vec::with_capacity(cap),
            max_span: cap as u64,
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
            out: vec![0; 1500],
            stats: MixStats::default(),
        })
    }

    /// The encoder's lookahead in samples (the file's Opus pre-skip).
    pub fn pre_skip(&mut self) -> Result<u16, OpusError> {
        Ok(self.encoder.get_lookahead()?.clamp(0, i32::from(u16::MAX)) as u16)
    }

    /// Recording time up to which frames are encoded: later frames start here.
    pub fn emitted_ms(&self) -> u64 {
        self.emitted * 1000 / RATE
    }

    /// Counters so far.
    pub fn stats(&self) -> MixStats {
        self.stats
    }

    /// Forgets a voice (its publisher left or unpublished).
    pub fn remove(&mut self, source: SourceId) {
        self.voices.remove(&source);
    }

    /// Mixes in one Opus packet of `source` that arrived at `arrival_ms` (recording time) and
    /// was captured at `capture_ms`, when its publisher's sender reports say.
    pub fn push(
        &mut self,
        source: SourceId,
        seq: u64,
        timestamp: u32,
        payload: &[u8],
        arrival_ms: u64,
        capture_ms: Option<u64>,
    ) -> Result<(), OpusError> {
        let voice = match self.voices.entry(source) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Voice {
                decoder: Decoder::new(RATE as u32, Channels::Mono)?,
                anchor: None,
                on_capture: false,
                ts_ext: None,
                next_pos: None,
                seen: None,
            }),
        };
        if !voice.first_time(seq) {
            self.stats.duplicate += 1;
            return Ok(());
        }
        let ts = voice.extend(timestamp);
        let arrival_pos = arrival_ms * RATE / 1000;
        let horizon = self.config.horizon_ms * RATE / 1000;
        let mapped = voice
            .anchor
            .map(|(rtp, pos)| pos as i64 + (ts as i64 - rtp as i64));
        // A voice anchored at an arrival (before its first sender report) moves to its
        // capture instant when one comes, and again when its captures move (the publisher's
        // clock offset did): it lines up with the stage video, which is laid on captures too.
        // A capture already encoded over lands at the clock (as an arrival would): compared
        // there, a voice whose captures are further back than the jitter window is not laid
        // again on every packet.
        let capture_pos = capture_ms.map(|c| (c * RATE / 1000).max(self.emitted));
        let recapture = match (capture_pos, mapped) {
            (Some(c), Some(p)) => !voice.on_capture || p.abs_diff(c as i64) > CAPTURE_SHIFT,
            _ => false,
        };
        // Samples of this packet that the voice has already covered, when its anchor moves
        // back: skipped once rather than heard twice.
        let mut overlap = 0;
        let pos = match mapped {
            // Behind the clock is fine (that is jitter, judged below); far ahead, or behind by
            // more than the horizon, means the source's clock jumped.
            Some(p)
                if !recapture
                    && p >= 0
                    && (p as u64) <= arrival_pos + horizon
                    && p as u64 + horizon >= arrival_pos =>
            {
                p as u64
            }
            _ => {
                if voice.anchor.is_some() && !recapture {
                    self.stats.resyncs += 1;
                }
                // Anchor so the packet lands just inside the jitter window.
                let pos = capture_pos.unwrap_or(arrival_pos.max(self.emitted));
                voice.anchor = Some((ts, pos));
                voice.on_capture = capture_ms.is_some();
                if let Some(next) = voice.next_pos.take().filter(|_| recapture) {
                    overlap = next.saturating_sub(pos);
                }
                pos
            }
        };
        if pos < self.emitted {
            self.stats.late += 1;
            return Ok(());
        }
        if pos + MAX_PACKET_SAMPLES as u64 > self.emitted + self.max_span {
            self.stats.ahead += 1;
            return Ok(());
        }
        // Conceal a short gap before this packet with the decoder's own prediction.
        if let Some(next) = voice.next_pos {
            let gap = pos.saturating_sub(next);
            if gap > 0 && gap <= MAX_PLC_SAMPLES && next >= self.emitted {
                let mut at = next;
                while at + FRAME as u64 <= pos {
                    let n = voice
                        .decoder
                        .decode_float(&[], &mut self.pcm[..FRAME], false)
                        .unwrap_or(0);
                    add_at(&mut self.acc, self.emitted, at, &self.pcm[..n]);
                    at += FRAME as u64;
                }
            }
        }
        let n = match voice.decoder.decode_float(payload, &mut self.pcm, false) {
            Ok(n) => n,
            Err(_) => {
                self.stats.undecodable += 1;
                return Ok(());
            }
        };
        let skip = (overlap as usize).min(n);
        add_at(
            &mut self.acc,
            self.emitted,
            pos + skip as u64,
            &self.pcm[skip..n],
        );
        voice.next_pos = Some(pos + n as u64);
        self.stats.mixed += 1;
        Ok(())
    }

    /// Encodes every frame whose end is `delay` or more before `now_ms`; with `drain`, every
    /// frame that ends by `now_ms` (the recording stops).
    pub fn poll(
        &mut self,
        now_ms: u64,
        drain: bool,
        out: &mut Vec<MixedFrame>,
    ) -> Result<(), OpusError> {
        let delay = if drain { 0 } else { self.config.delay_ms };
        let ready_until = now_ms.saturating_sub(delay) * RATE / 1000;
        while self.emitted + FRAME as u64 <= ready_until {
            if self.acc.len() < FRAME {
                self.acc.resize(FRAME, 0.0);
            }
            for s in &mut self.acc[..FRAME] {
                *s = s.clamp(-1.0, 1.0);
            }
            let n = self
                .encoder
                .encode_float(&self.acc[..FRAME], &mut self.out)?;
            out.push(MixedFrame {
                time_ms: self.emitted * 1000 / RATE,
                data: self.out[..n].to_vec(),
            });
            self.acc.drain(..FRAME);
            self.emitted += FRAME as u64;
            self.stats.frames += 1;
        }
        Ok(())
    }
}

/// Adds `pcm` into the accumulator (whose first sample is at `base`) at position `pos`.
fn add_at(acc: &mut Vec<f32>, base: u64, pos: u64, pcm: &[f32]) {
    let skip = base.saturating_sub(pos) as usize;
    if skip >= pcm.len() {
        return;
    }
    let start = (pos.max(base) - base) as usize;
    let pcm = &pcm[skip..];
    if acc.len() < start + pcm.len() {
        acc.resize(start + pcm.len(), 0.0);
    }
    for (a, s) in acc[start..].iter_mut().zip(pcm) {
        *a += *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, start: usize, n: usize) -> Vec<f32> {
        (start..start + n)
            .map(|i| 0.3 * (i as f32 * freq * std::f32::consts::TAU / RATE as f32).sin())
            .collect()
    }

    fn rms(frames: &[MixedFrame]) -> f32 {
        let mut dec = Decoder::new(48_000, Channels::Mono).unwrap();
        let mut pcm = vec![0f32; FRAME];
        let mut sum = 0.0;
        let mut count = 0;
        for f in frames {
            let n = dec.decode_float(&f.data, &mut pcm, false).unwrap();
            sum += pcm[..n].iter().map(|s| s * s).sum::<f32>();
            count += n;
        }
        (sum / count.max(1) as f32).sqrt()
    }

    #[test]
    fn two_voices_with_jitter_mix_into_continuous_frames() {
        let mut enc_a = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
        let mut enc_b = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
        let mut m = Mixer::new(MixConfig::default()).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1500];
        for i in 0..100u64 {
            let n = enc_a
                .encode_float(&tone(440.0, i as usize * FRAME, FRAME), &mut buf)
                .unwrap();
            // a: on time; b: a random-looking 0..60 ms of jitter, with an unrelated RTP clock.
            m.push(SourceId(1), i, (i * 960) as u32, &buf[..n], i * 20, None)
                .unwrap();
            let n = enc_b
                .encode_float(&tone(660.0, i as usize * FRAME, FRAME), &mut buf)
                .unwrap();
            let jitter = (i * 37) % 60;
            m.push(
                SourceId(2),
                1000 + i,
                (7_000_000 + i * 960) as u32,
                &buf[..n],
                i * 20 + jitter,
                None,
            )
            .unwrap();
            m.poll(i * 20, false, &mut out).unwrap();
        }
        m.poll(2_000, true, &mut out).unwrap();
        assert_eq!(out.len(), 100, "2 s of 20 ms frames");
        for (i, f) in out.iter().enumerate() {
            assert_eq!(f.time_ms, i as u64 * 20);
        }
        let st = m.stats();
        assert_eq!((st.mixed, st.late, st.duplicate), (200, 0, 0), "{st:?}");
        assert!(
            rms(&out) > 0.15,
            "two tones of 0.3 mixed: rms {}",
            rms(&out)
        );
    }

    #[test]
    fn late_and_duplicate_packets_are_counted_not_mixed() {
        let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
        let mut m = Mixer::new(MixConfig::default()).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1500];
        let n = enc.encode_float(&tone(440.0, 0, FRAME), &mut buf).unwrap();
        m.push(SourceId(1), 1, 0, &buf[..n], 0, None).unwrap();
        m.push(SourceId(1), 1, 0, &buf[..n], 0, None).unwrap();
        m.poll(1_000, false, &mut out).unwrap();
        // seq 2 belongs at 20 ms, long encoded by now.
        m.push(SourceId(1), 2, 960, &buf[..n], 1_000, None).unwrap();
        let st = m.stats();
        assert_eq!((st.mixed, st.duplicate), (1, 1));
        // Far behind the anchor's mapping: re-anchored at the clock rather than lost.
        assert_eq!(st.late + st.resyncs, 1);
        assert!(out.len() >= 40);
    }

    #[test]
    fn silence_is_encoded_when_nobody_speaks() {
        let mut m = Mixer::new(MixConfig::default()).unwrap();
        let mut out = Vec::new();
        m.poll(1_000, true, &mut out).unwrap();
        assert_eq!(out.len(), 50);
        assert!(rms(&out) < 0.001);
        assert!(m.acc.capacity() < 200_000);
    }

    #[test]
    fn a_voice_moves_once_from_its_arrival_to_its_capture() {
        let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
        let mut m = Mixer::new(MixConfig::default()).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1500];
        // Each packet arrives 40 ms after its capture; the capture is known from packet 25 on
        // (the publisher's first sender report).
        for i in 0..50u64 {
            let n = enc
                .encode_float(&tone(440.0, i as usize * FRAME, FRAME), &mut buf)
                .unwrap();
            let capture = (i >= 25).then_some(i * 20);
            m.push(
                SourceId(1),
                i,
                (i * 960) as u32,
                &buf[..n],
                i * 20 + 40,
                capture,
            )
            .unwrap();
            m.poll(i * 20 + 40, false, &mut out).unwrap();
            let (_, at) = m.voices[&SourceId(1)].anchor.unwrap();
            let want = if i < 25 { 40 } else { 500 };
            assert_eq!(at * 1000 / RATE, want, "anchor after packet {i}");
        }
        let st = m.stats();
        assert_eq!((st.mixed, st.late, st.resyncs), (50, 0, 0), "{st:?}");
    }

    #[test]
    fn a_voice_captured_further_back_than_the_window_is_laid_once() {
        let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
        let mut m = Mixer::new(MixConfig::default()).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1500];
        // Captured 300 ms before arrival, beyond the 120 ms jitter window, with 0..30 ms of
        // jitter: laid at the clock once, then followed by its RTP clock.
        m.poll(1_000, false, &mut out).unwrap();
        for i in 0..50u64 {
            let n = enc
                .encode_float(&tone(440.0, i as usize * FRAME, FRAME), &mut buf)
                .unwrap();
            let arrival = 1_000 + i * 20 + (i * 7) % 30;
            m.push(
                SourceId(1),
                i,
                (i * 960) as u32,
                &buf[..n],
                arrival,
                Some(arrival - 300),
            )
            .unwrap();
            m.poll(1_000 + i * 20, false, &mut out).unwrap();
        }
        let st = m.stats();
        assert_eq!((st.mixed, st.late, st.resyncs), (50, 0, 0), "{st:?}");
        let (ts, _) = m.voices[&SourceId(1)].anchor.unwrap();
        assert_eq!(ts, 1 << 32, "still the first packet's anchor");
    }
}
