//! Dominant speaker from RFC 6464 audio levels, smoothed so a cough does not steal the stage.
//!
//! Each audio track's loudness (127 − level in −dBov, so 0 is silence) is averaged in 100 ms
//! buckets; a track's score is the mean of its last 10 buckets (one second), silence counting
//! as zero. A challenger takes over only after being loudest by a margin for 3 evaluations in a
//! row (300 ms): a 200 ms burst moves a one-second mean by at most a fifth of its loudness.

use crate::model::ParticipantId;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings of the detector.
#[derive(Debug, Clone, Copy)]
pub struct SpeakerConfig {
    /// Bucket length.
    pub bucket: Duration,
    /// Buckets in the window.
    pub window: usize,
    /// How much louder a challenger must be.
    pub margin: f32,
    /// Evaluations in a row a challenger must win.
    pub hold: u32,
    /// Scores under this are silence (nobody is speaking).
    pub floor: f32,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            bucket: Duration::from_millis(100),
            window: 10,
            margin: 8.0,
            hold: 3,
            floor: 20.0,
        }
    }
}

#[derive(Debug, Default)]
struct Track {
    sum: u32,
    count: u32,
    buckets: VecDeque<f32>,
}

/// The detector for one room.
#[derive(Debug)]
pub struct SpeakerDetector {
    config: SpeakerConfig,
    /// Looked up per audio packet; the ids are the server's own, so FxHash.
    tracks: FxHashMap<ParticipantId, Track>,
    next_tick: Option<Instant>,
    dominant: Option<ParticipantId>,
    challenger: Option<(ParticipantId, u32)>,
    /// Participants in order of when they last held the floor, most recent first.
    recent: VecDeque<ParticipantId>,
    /// Participants in order of when their voice was last heard, most recent first.
    heard: VecDeque<ParticipantId>,
    heard_changed: bool,
}

/// A 100 ms bucket at least this loud (mean level, −dBov) counts as a voice being heard:
/// speech is −20 to −40 dBov, room noise and comfort noise −60 and below.
const VOICE_DBOV: u8 = 50;

impl SpeakerDetector {
    /// A detector with these settings.
    pub fn new(config: SpeakerConfig) -> Self {
        SpeakerDetector {
            config,
            tracks: FxHashMap::default(),
            next_tick: None,
            dominant: None,
            challenger: None,
            recent: VecDeque::new(),
            heard: VecDeque::new(),
            heard_changed: false,
        }
    }

    /// One audio packet's level in dBov as str0m reads it (0 = loudest, −127 = silence; the
    /// sign is ignored), if it carried one.
    pub fn level(&mut self, who: ParticipantId, level: i8, now: Instant) {
        let t = self.tracks.entry(who).or_default();
        t.sum += u32::from(127u8.saturating_sub(level.unsigned_abs().min(127)));
        t.count += 1;
        self.next_tick.get_or_insert(now + self.config.bucket);
    }

    /// The participant left.
    pub fn remove(&mut self, who: ParticipantId) {
        self.tracks.remove(&who);
        self.recent.retain(|p| *p != who);
        self.heard.retain(|p| *p != who);
        if self.dominant == Some(who) {
            self.dominant = None;
        }
    }

    /// When the detector next wants time.
    pub fn next_tick(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The current dominant speaker.
    pub fn dominant(&self) -> Option<ParticipantId> {
        self.dominant
    }

    /// Recent speakers, most recent first.
    pub fn recent(&self) -> impl Iterator<Item = &ParticipantId> {
        self.recent.iter()
    }

    /// Everyone whose voice was heard, most recently heard first.
    pub fn heard(&self) -> impl Iterator<Item = &ParticipantId> {
        self.heard.iter()
    }

    /// Whether the order of [`heard`](Self::heard) changed since the last call.
    pub fn take_heard_changed(&mut self) -> bool {
        std::mem::take(&mut self.heard_changed)
    }

    /// Closes due buckets; returns the new dominant speaker when it changes.
    pub fn tick(&mut self, now: Instant) -> Option<ParticipantId> {
        let mut changed = None;
        while let Some(at) = self.next_tick.filter(|t| *t <= now) {
            self.next_tick = Some(at + self.config.bucket);
            if let Some(p) = self.evaluate() {
                changed = Some(p);
            }
        }
        if self
            .tracks
            .values()
            .all(|t| t.buckets.iter().all(|b| *b == 0.0) && t.count == 0)
        {
            // Nobody made a sound for a whole window: stop ticking until someone does.
            self.next_tick = None;
        }
        changed
    }

    fn evaluate(&mut self) -> Option<ParticipantId> {
        let window = self.config.window;
        let mut best: Option<(ParticipantId, f32)> = None;
        let mut dominant_score = 0.0;
        let mut voices = vec![];
        for (who, t) in self.tracks.iter_mut() {
            let mean = if t.count == 0 {
                0.0
            } else {
                t.sum as f32 / t.count as f32
            };
            if mean >= f32::from(127 - VOICE_DBOV) {
                voices.push((mean, *who));
            }
            t.sum = 0;
            t.count = 0;
            if t.buckets.len() == window {
                t.buckets.pop_front();
            }
            t.buckets.push_back(mean);
            let score = t.buckets.iter().sum::<f32>() / window as f32;
            if Some(*who) == self.dominant {
                dominant_score = score;
            }
            if best.is_none_or(|(b, s)| score > s || (score == s && *who < b)) {
                best = Some((*who, score));
            }
        }
        // Quietest first, so the loudest of this bucket ends up in front.
        voices.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        for (_, who) in voices {
            if self.heard.front() != Some(&who) {
                self.heard.retain(|p| *p != who);
                self.heard.push_front(who);
                self.heard_changed = true;
            }
        }
        let (who, score) = best?;
        if score < self.config.floor || Some(who) == self.dominant {
            self.challenger = None;
            return None;
        }
        if self.dominant.is_some() && score < dominant_score + self.config.margin {
            self.challenger = None;
            return None;
        }
        let wins = match self.challenger {
            Some((c, n)) if c == who => n + 1,
            _ => 1,
        };
        self.challenger = Some((who, wins));
        if wins < self.config.hold && self.dominant.is_some() {
            return None;
        }
        self.challenger = None;
        self.dominant = Some(who);
        self.recent.retain(|p| *p != who);
        self.recent.push_front(who);
        Some(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ParticipantId = ParticipantId(1);
    const B: ParticipantId = ParticipantId(2);

    /// Feeds 20 ms packets for `ms` milliseconds with the given levels (None = no packet).
    fn speak(
        d: &mut SpeakerDetector,
        t: &mut Instant,
        ms: u64,
        a: Option<i8>,
        b: Option<i8>,
    ) -> Vec<ParticipantId> {
        let mut changes = vec![];
        for _ in 0..ms / 20 {
            if let Some(l) = a {
                d.level(A, -l, *t);
            }
            if let Some(l) = b {
                d.level(B, -l, *t);
            }
            *t += Duration::from_millis(20);
            changes.extend(d.tick(*t));
        }
        changes
    }

    #[test]
    fn loudest_sustained_speaker_wins_and_a_burst_does_not_steal() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let mut t = Instant::now();
        // A talks at moderate level, B is quiet.
        let c = speak(&mut d, &mut t, 2000, Some(40), Some(120));
        assert_eq!(c, vec![A]);
        // B coughs loudly for 200 ms.
        let c = speak(&mut d, &mut t, 200, Some(40), Some(0));
        assert!(c.is_empty());
        let c = speak(&mut d, &mut t, 1000, Some(40), Some(120));
        assert!(c.is_empty(), "a 200 ms burst stole the floor: {c:?}");
        assert_eq!(d.dominant(), Some(A));
        // B really starts talking, louder, and keeps going: B takes over within ~1 s.
        let c = speak(&mut d, &mut t, 1500, Some(90), Some(10));
        assert_eq!(c, vec![B]);
        assert_eq!(d.recent().copied().collect::<Vec<_>>(), vec![B, A]);
    }

    #[test]
    fn silence_elects_nobody() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let mut t = Instant::now();
        let c = speak(&mut d, &mut t, 2000, Some(127), Some(127));
        assert!(c.is_empty());
        assert_eq!(d.dominant(), None);
    }
}
