//! The recording core (sans-IO): packets and stage choices in, interleaved WebM blocks out.

use super::mix::{MixConfig, MixStats, MixedFrame, Mixer};
use super::stage::{Stage, StageDecision, BEHIND_MS};
use super::vp8::{Depacketizer, Vp8Drop};
use super::webm::{Block, Sink, TrackInfo, Webm, AUDIO_TRACK, VIDEO_TRACK};
use super::{RecordError, SourceId};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// The audio mix.
    pub mix: MixConfig,
    /// Buffered bytes are handed to the OS at least this often. Default 1 s.
    pub flush_interval: Duration,
    /// Keyframe requests for one source at most this often. Default 1 s.
    pub keyframe_interval: Duration,
    /// Size written in the header when audio must be written before any video keyframe
    /// (only a hint: VP8 keyframes carry their own size). Default 1280×720.
    pub default_size: (u16, u16),
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            mix: MixConfig::default(),
            flush_interval: Duration::from_secs(1),
            keyframe_interval: Duration::from_secs(1),
            default_size: (1280, 720),
        }
    }
}

/// One RTP packet as the recorder needs it.
#[derive(Debug, Clone)]
pub struct RtpIn {
    /// Sequence number extended to 64 bits (str0m's `SeqNo`).
    pub seq: u64,
    /// The RTP timestamp as on the wire.
    pub timestamp: u32,
    /// The marker bit (last packet of a video frame).
    pub marker: bool,
    /// The RTP payload (VP8 descriptor + data, or one Opus packet).
    pub payload: Vec<u8>,
    /// When the room received it.
    pub arrival: Instant,
    /// When its publisher captured it, on the room's clock, once the publisher's sender
    /// reports say (`media::lipsync`): what the recording's timeline is anchored at, so a
    /// person's voice and picture line up however long each took to reach us.
    pub capture: Option<Instant>,
}

/// What the room tells a recording.
#[derive(Debug, Clone)]
pub enum Input {
    /// A video packet of a published camera or screen track.
    Video(SourceId, RtpIn),
    /// An Opus packet of a published microphone.
    Audio(SourceId, RtpIn),
    /// The stage changed: the screen share while there is one, else the active speaker's camera.
    Stage(Option<SourceId>),
    /// A track ended.
    Removed(SourceId),
}

impl Input {
    /// Bytes this input holds, for the channel's byte bound.
    pub fn cost(&self) -> usize {
        let payload = match self {
            Input::Video(_, p) | Input::Audio(_, p) => p.payload.len(),
            _ => 0,
        };
        payload + std::mem::size_of::<Input>()
    }
}

/// Counters of one recording.
#[derive(Debug, Default, Clone)]
pub struct RecordStats {
    /// Video frames written.
    pub video_frames: u64,
    /// Audio frames (20 ms) written.
    pub audio_frames: u64,
    /// Video packets of sources not on (or coming to) the stage.
    pub video_off_stage: u64,
    /// Video packets dropped by the depacketizer, by reason.
    pub vp8_drops: HashMap<Vp8Drop, u64>,
    /// Keyframes asked for.
    pub keyframe_requests: u64,
    /// Stage switches completed.
    pub switches: u64,
    /// The audio mix's counters.
    pub mix: MixStats,
    /// Inputs the room dropped because the channel was full (filled in by the writer).
    pub channel_drops: u64,
}

/// The core of one recording over a [`Sink`].
pub struct Recorder<S: Sink> {
    config: RecorderConfig,
    start: Instant,
    date_utc_ns: i64,
    /// The sink until the header is written, then the muxer.
    sink: Option<S>,
    mux: Option<Webm<S>>,
    stage: Stage,
    depack: HashMap<SourceId, Depacketizer>,
    mixer: Mixer,
    mixed: Vec<MixedFrame>,
    video_q: VecDeque<Block>,
    audio_q: VecDeque<Block>,
    last_video_ms: Option<u64>,
    first_size: Option<(u16, u16)>,
    wants: VecDeque<SourceId>,
    last_want: HashMap<SourceId, Instant>,
    last_flush: Instant,
    stats: RecordStats,
}

impl<S: Sink> Recorder<S> {
    /// A recording starting at `start`; `date_utc_ns` is its wall-clock start in Matroska's
    /// epoch (nanoseconds since 2001-01-01 UTC). Nothing is written until the first block.
    pub fn new(
        config: RecorderConfig,
        sink: S,
        start: Instant,
        date_utc_ns: i64,
    ) -> Result<Self, RecordError> {
        let mixer = Mixer::new(config.mix.clone())?;
        Ok(Recorder {
            config,
            start,
            date_utc_ns,
            sink: Some(sink),
            mux: None,
            stage: Stage::default(),
            depack: HashMap::new(),
            mixer,
            mixed: Vec::new(),
            video_q: VecDeque::new(),
            audio_q: VecDeque::new(),
            last_video_ms: None,
            first_size: None,
            wants: VecDeque::new(),
            last_want: HashMap::new(),
            last_flush: start,
            stats: RecordStats::default(),
        })
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_millis() as u64
    }

    /// Counters so far.
    pub fn stats(&self) -> RecordStats {
        let mut s = self.stats.clone();
        s.mix = self.mixer.stats();
        s.switches = self.stage.switches();
        s
    }

    /// Bytes written so far (0 before the header).
    pub fn bytes(&self) -> u64 {
        self.mux.as_ref().map_or(0, Webm::bytes)
    }

    /// The next source to ask for a keyframe.
    pub fn poll_keyframe_request(&mut self) -> Option<SourceId> {
        self.wants.pop_front()
    }

    fn want_keyframe(&mut self, source: SourceId, now: Instant) {
        let due = self
            .last_want
            .get(&source)
            .is_none_or(|t| now.saturating_duration_since(*t) >= self.config.keyframe_interval);
        if due && !self.wants.contains(&source) {
            self.last_want.insert(source, now);
            self.wants.push_back(source);
            self.stats.keyframe_requests += 1;
        }
    }

    /// Takes one input.
    pub fn handle(&mut self, input: Input, now: Instant) -> Result<(), RecordError> {
        match input {
            Input::Stage(source) => {
                if let Some(s) = self.stage.select(source) {
                    // A fresh depacketizer: the switch waits for a keyframe anyway.
                    self.depack.remove(&s);
                    self.want_keyframe(s, now);
                }
                let keep = [self.stage.current(), self.stage.pending()];
                self.depack.retain(|s, _| keep.contains(&Some(*s)));
            }
            Input::Removed(source) => {
                self.stage.remove(source);
                self.depack.remove(&source);
                self.mixer.remove(source);
                self.last_want.remove(&source);
            }
            Input::Video(source, p) => self.video(source, p, now),
            Input::Audio(source, p) => {
                let (at, captured) = (self.ms(p.arrival), p.capture.map(|c| self.ms(c)));
                self.mixer
                    .push(source, p.seq, p.timestamp, &p.payload, at, captured)?;
            }
        }
        self.handle_timeout(now)
    }

    fn video(&mut self, source: SourceId, p: RtpIn, now: Instant) {
        if self.stage.current() != Some(source) && self.stage.pending() != Some(source) {
            self.stats.video_off_stage += 1;
            return;
        }
        let d = self.depack.entry(source).or_default();
        let frame = match d.push(p.seq, p.timestamp, p.marker, &p.payload) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(reason) => {
                *self.stats.vp8_drops.entry(reason).or_default() += 1;
                if d.awaiting_keyframe() {
                    self.want_keyframe(source, now);
                }
                return;
            }
        };
        let (arrival, captured) = (self.ms(p.arrival), p.capture.map(|c| self.ms(c)));
        if let StageDecision::Write(time_ms) = self.stage.decide(source, &frame, arrival, captured)
        {
            // Two frames in one millisecond (a burst from a loaded encoder, a switch) would give
            // players equal timestamps: every frame gets its own millisecond.
            let time_ms = self.last_video_ms.map_or(time_ms, |l| time_ms.max(l + 1));
            if frame.keyframe && self.first_size.is_none() {
                self.first_size = frame.size;
            }
            self.last_video_ms = Some(time_ms);
            self.video_q.push_back(Block {
                track: VIDEO_TRACK,
                time_ms,
                keyframe: frame.keyframe,
                data: frame.data,
            });
        } else if self.stage.pending() == Some(source) {
            // Still waiting for the new source's keyframe: the request may have been lost.
            self.want_keyframe(source, now);
        }
    }

    /// Advances the mix clock, writes what is ready, flushes when due.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RecordError> {
        let now_ms = self.ms(now);
        self.mixer.poll(now_ms, false, &mut self.mixed)?;
        self.queue_mixed();
        self.release(now_ms, false)?;
        if now.saturating_duration_since(self.last_flush) >= self.config.flush_interval {
            self.last_flush = now;
            if let Some(m) = &mut self.mux {
                m.flush().map_err(RecordError::from_write)?;
            }
        }
        Ok(())
    }

    fn queue_mixed(&mut self) {
        for f in self.mixed.drain(..) {
            self.audio_q.push_back(Block {
                track: AUDIO_TRACK,
                time_ms: f.time_ms,
                keyframe: true,
                data: f.data,
            });
        }
    }

    /// Writes queued blocks in time order: a video block once no earlier audio can come, an
    /// audio block once no earlier video can come (everything when `all`).
    fn release(&mut self, now_ms: u64, all: bool) -> Result<(), RecordError> {
        // Audio frames still to come start at the mix's clock.
        let next_audio = self.mixer.emitted_ms();
        // Video frames are never mapped more than BEHIND_MS before their arrival, and the
        // stage's times only grow.
        let video_done = now_ms
            .saturating_sub(BEHIND_MS + 100)
            .max(self.last_video_ms.unwrap_or(0));
        loop {
            let v = self.video_q.front().map(|b| b.time_ms);
            let a = self.audio_q.front().map(|b| b.time_ms);
            let block = match (v, a) {
                (Some(v), a) if a.is_none_or(|a| v <= a) => {
                    if !(all || v <= next_audio) {
                        break;
                    }
                    self.video_q.pop_front()
                }
                (v, Some(a)) => {
                    if !(all || v.is_some() || a <= video_done) {
                        break;
                    }
                    self.audio_q.pop_front()
                }
                _ => break,
            };
            let Some(block) = block else { break };
            self.write(&block)?;
        }
        Ok(())
    }

    fn write(&mut self, block: &Block) -> Result<(), RecordError> {
        if self.mux.is_none() {
            let sink = self
                .sink
                .take()
                .expect("the sink is held until the header is written");
            let (width, height) = self.first_size.unwrap_or(self.config.default_size);
            let info = TrackInfo {
                width,
                height,
                channels: 1,
                pre_skip: self.mixer.pre_skip()?,
            };
            let mux =
                Webm::start(sink, &info, self.date_utc_ns).map_err(RecordError::from_write)?;
            self.mux = Some(mux);
        }
        let mux = self.mux.as_mut().expect("the header was just written");
        mux.write(block).map_err(RecordError::from_write)?;
        if block.track == VIDEO_TRACK {
            self.stats.video_frames += 1;
        } else {
            self.stats.audio_frames += 1;
        }
        Ok(())
    }

    /// Writes everything up to `now`, the index and the duration; returns the sink and the
    /// recording's length in ms.
    pub fn finish(mut self, now: Instant) -> Result<(S, u64, RecordStats), RecordError> {
        let now_ms = self.ms(now);
        self.mixer.poll(now_ms, true, &mut self.mixed)?;
        self.queue_mixed();
        self.release(now_ms, true)?;
        let stats = self.stats();
        let end = now_ms.max(self.last_video_ms.unwrap_or(0));
        let sink = match self.mux {
            Some(m) => m.finish(end).map_err(RecordError::from_write)?,
            None => self
                .sink
                .take()
                .expect("no header means the sink is still here"),
        };
        Ok((sink, end, stats))
    }
}
