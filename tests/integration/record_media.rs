//! Real media for recording tests: VP8 clips from Debian's ffmpeg, Opus from libopus, RTP
//! packetization, and ffprobe/ffmpeg checks of the files written.

use confab::record::vp8::packetize;
use confab::record::writer::FileSink;
use confab::record::{Input, Recorder, RecorderConfig, RtpIn, SourceId};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("confab-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A recorder with the default settings writing the file `path`, starting at `start`.
pub fn file_recorder(path: &Path, start: Instant) -> Recorder<FileSink> {
    let file = FileSink::new(std::fs::File::create(path).expect("file"));
    Recorder::new(RecorderConfig::default(), file, start, 0).expect("recorder")
}

/// One VP8 frame of a clip.
pub struct ClipFrame {
    pub data: Vec<u8>,
}

/// Encodes `secs` of ffmpeg's test pattern at `w`×`h`, 30 fps, a keyframe every 30 frames,
/// and returns its frames (read from the IVF container).
pub fn vp8_clip(dir: &Path, w: u32, h: u32, secs: u32) -> Vec<ClipFrame> {
    let out = dir.join(format!("clip-{w}x{h}.ivf"));
    vp8_encode(&format!("testsrc=size={w}x{h}:rate=30"), &out, secs)
}

/// `secs` of black at 320×240, 30 fps, but for one white frame, number `flash` (from 0): a
/// picture whose moment can be found again in a recording.
pub fn flash_clip(dir: &Path, secs: u32, flash: u32) -> Vec<ClipFrame> {
    let out = dir.join(format!("flash-{flash}.ivf"));
    let source = format!(
        "color=c=black:size=320x240:rate=30,\
         drawbox=color=white:t=fill:enable='eq(n,{flash})'"
    );
    vp8_encode(&source, &out, secs)
}

/// Encodes `secs` of the lavfi `source` with libvpx (30 fps, a keyframe every 30 frames) into
/// `out` and returns its frames (read from the IVF container).
fn vp8_encode(source: &str, out: &Path, secs: u32) -> Vec<ClipFrame> {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", source])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libvpx",
            "-g",
            "30",
            "-b:v",
            "600k",
        ])
        .args(["-deadline", "realtime", "-cpu-used", "8", "-f", "ivf"])
        .arg(out)
        .status()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(status.success(), "ffmpeg failed to encode the clip");
    let ivf = std::fs::read(out).expect("ivf written");
    assert_eq!(&ivf[..4], b"DKIF");
    let header = u16::from_le_bytes([ivf[6], ivf[7]]) as usize;
    let mut frames = Vec::new();
    let mut at = header;
    while at + 12 <= ivf.len() {
        let len = u32::from_le_bytes(ivf[at..at + 4].try_into().expect("4 bytes")) as usize;
        let data = ivf[at + 12..at + 12 + len].to_vec();
        frames.push(ClipFrame { data });
        at += 12 + len;
    }
    assert_eq!(frames.len() as u32, secs * 30, "one frame per 1/30 s");
    frames
}

/// A video publisher: frames of a clip turned into RTP inputs with a random-ish clock base.
pub struct VideoSender {
    pub source: SourceId,
    frames: Vec<ClipFrame>,
    next: usize,
    seq: u64,
    ts_base: u32,
}

impl VideoSender {
    pub fn new(source: SourceId, frames: Vec<ClipFrame>, ts_base: u32) -> Self {
        VideoSender {
            source,
            frames,
            next: 0,
            seq: 1000,
            ts_base,
        }
    }

    /// The inputs of the next frame (the clip loops), arriving at `at`.
    pub fn frame(&mut self, at: Instant) -> Vec<Input> {
        self.frame_captured(at, None)
    }

    /// The inputs of the next frame, arriving at `at`, captured at `capture` as its
    /// publisher's sender reports would say.
    pub fn frame_captured(&mut self, at: Instant, capture: Option<Instant>) -> Vec<Input> {
        let i = self.next;
        self.next += 1;
        let f = &self.frames[i % self.frames.len()];
        let ts = self.ts_base.wrapping_add(i as u32 * 3000);
        let parts = packetize(&f.data, i as u16, 1100);
        let n = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(k, payload)| {
                self.seq += 1;
                Input::Video(
                    self.source,
                    RtpIn {
                        seq: self.seq,
                        timestamp: ts,
                        marker: k == n - 1,
                        payload,
                        arrival: at,
                        capture,
                    },
                )
            })
            .collect()
    }
}

/// A voice publisher: a sine tone encoded with libopus in 20 ms packets.
pub struct VoiceSender {
    pub source: SourceId,
    enc: opus::Encoder,
    freq: f32,
    /// The first sample of the tone: silence before it.
    onset: u64,
    n: u64,
    seq: u64,
}

impl VoiceSender {
    pub fn new(source: SourceId, freq: f32) -> Self {
        VoiceSender {
            source,
            enc: opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
                .expect("opus encoder"),
            freq,
            onset: 0,
            n: 0,
            seq: 0,
        }
    }

    /// A voice silent until its `onset`-th sample (48 kHz), then the tone: a sound whose
    /// moment can be found again in a recording.
    pub fn from_sample(source: SourceId, freq: f32, onset: u64) -> Self {
        VoiceSender {
            onset,
            ..Self::new(source, freq)
        }
    }

    /// The next 20 ms packet, arriving at `at`.
    pub fn packet(&mut self, at: Instant) -> Input {
        self.packet_captured(at, None)
    }

    /// The next 20 ms packet, arriving at `at`, captured at `capture` as its publisher's
    /// sender reports would say.
    pub fn packet_captured(&mut self, at: Instant, capture: Option<Instant>) -> Input {
        let start = self.n * 960;
        let pcm: Vec<f32> = (start..start + 960)
            .map(|i| {
                let on = if i >= self.onset { 0.4 } else { 0.0 };
                on * (i as f32 * self.freq * std::f32::consts::TAU / 48_000.0).sin()
            })
            .collect();
        let payload = self.enc.encode_vec_float(&pcm, 1500).expect("encode");
        self.n += 1;
        self.seq += 1;
        Input::Audio(
            self.source,
            RtpIn {
                seq: self.seq,
                timestamp: (start as u32).wrapping_add(12345),
                marker: false,
                payload,
                arrival: at,
                capture,
            },
        )
    }
}

/// One 20 ms step of the virtual clock, in microseconds from the start.
pub const STEP: Duration = Duration::from_millis(10);

/// What ffprobe says about a file.
#[derive(Debug)]
pub struct Probe {
    pub duration: f64,
    pub codecs: Vec<(String, String)>,
}

pub fn ffprobe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args([
            "format=duration:stream=codec_type,codec_name",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(f64::NAN);
    let codecs = v["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    (
                        s["codec_type"].as_str().unwrap_or("").to_string(),
                        s["codec_name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Probe { duration, codecs }
}

/// ffmpeg's complaints when decoding the whole file (empty when it decodes cleanly).
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        // Keep the file's millisecond time base: by default ffmpeg re-stamps video on a
        // 1/frame-rate grid, and 30 fps frames 33/34 ms apart, shifted by the Opus codec delay
        // (−7 ms), can round two frames onto one tick, which its null muxer reports as "non
        // monotonically increasing dts": a complaint about its own re-stamping, not the file.
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Decoded video frames: (pts seconds, width, height).
pub fn video_frames(file: &Path) -> Vec<(f64, u32, u32)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries"])
        .args(["frame=pts_time,width,height", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            // ffprobe prints pts_time, width, height whatever order they are asked in.
            let nums: Vec<f64> = f.iter().filter_map(|x| x.trim().parse().ok()).collect();
            (nums.len() == 3).then(|| (nums[0], nums[1] as u32, nums[2] as u32))
        })
        .collect()
}

/// Mean volume of the audio in dB (ffmpeg's volumedetect).
pub fn mean_volume(file: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "info", "-i"])
        .arg(file)
        .args(["-map", "0:a", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or(f64::NEG_INFINITY)
}

/// When a recording's stage video shows a bright picture (mean luma over 128), in seconds
/// of its timeline (ffmpeg's signalstats, printed per frame by its metadata filter).
pub fn bright_frames(file: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-v", "info", "-i"])
        .arg(file)
        .args(["-map", "0:v", "-vf"])
        .arg("signalstats,metadata=print:key=lavfi.signalstats.YAVG")
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    let text = String::from_utf8_lossy(&out.stderr);
    let mut pts = None;
    let mut bright = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.split("pts_time:").nth(1) {
            pts = t.trim().parse::<f64>().ok();
        } else if let Some(y) = line.split("YAVG=").nth(1) {
            if y.trim().parse::<f64>().is_ok_and(|y| y > 128.0) {
                bright.extend(pts.take());
            }
        }
    }
    bright
}

/// When a recording's audio rises out of silence (below −40 dB for at least 0.2 s), in
/// seconds of its timeline (ffmpeg's silencedetect).
pub fn sound_onsets(file: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-v", "info", "-i"])
        .arg(file)
        .args(["-map", "0:a", "-af", "silencedetect=noise=-40dB:d=0.2"])
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split("silence_end:").nth(1))
        .filter_map(|v| v.split('|').next()?.trim().parse().ok())
        .collect()
}
