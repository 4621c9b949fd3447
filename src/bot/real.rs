//! Real media for a bot: decodable VP8 frames and Opus packets instead of synthetic payloads,
//! for tests whose output must play (recordings). The frames come from the caller (e.g. a
//! clip encoded by ffmpeg, with a keyframe every second); the voice is a tone from libopus.

use crate::record::vp8::packetize;

/// Largest VP8 payload per RTP packet.
const MAX_PAYLOAD: usize = 1100;

/// What a bot sends when it sends real media. Both lists loop; the video's first frame must
/// be a keyframe (so the loop restarts cleanly).
#[derive(Debug, Clone, Default)]
pub struct RealMedia {
    /// VP8 frames, one per video frame interval.
    pub video: Vec<Vec<u8>>,
    /// Opus packets, 20 ms each.
    pub audio: Vec<Vec<u8>>,
}

impl RealMedia {
    /// `video` frames and one second of a `freq` Hz tone (looped), mono, 48 kHz Opus.
    pub fn new(video: Vec<Vec<u8>>, freq: f32) -> Result<Self, opus::Error> {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)?;
        // 50 packets of 20 ms; a whole number of periods for any integer `freq`.
        let audio = (0..50u32)
            .map(|n| {
                let pcm: Vec<f32> = (n * 960..(n + 1) * 960)
                    .map(|i| 0.3 * (i as f32 * freq * std::f32::consts::TAU / 48_000.0).sin())
                    .collect();
                enc.encode_vec_float(&pcm, 1500)
            })
            .collect::<Result<_, _>>()?;
        Ok(RealMedia { video, audio })
    }

    /// The `n`th Opus packet (looping); `None` without audio.
    pub fn audio_packet(&self, n: u64) -> Option<Vec<u8>> {
        let len = self.audio.len() as u64;
        (len > 0).then(|| self.audio[(n % len) as usize].clone())
    }

    /// The RTP payloads of the `n`th video frame (looping); `None` without video.
    pub fn video_frame(&self, n: u64) -> Option<Vec<Vec<u8>>> {
        let len = self.video.len() as u64;
        (len > 0).then(|| packetize(&self.video[(n % len) as usize], n as u16, MAX_PAYLOAD))
    }
}
