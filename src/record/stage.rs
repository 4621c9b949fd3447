//! The stage video: which source the recording shows, switched only on the new source's
//! keyframe, on one continuous timeline across switches.

use super::vp8::Frame;
use super::SourceId;

/// When a source's RTP clock and the arrival clock disagree by more than this, the source's
/// timeline is re-anchored at the arrival time (a publisher restarted its encoder, or paused).
pub const RESYNC_MS: u64 = 2_000;
/// A frame mapped this far behind its arrival also re-anchors, so stage video never lags the
/// audio mix by more than this (the interleaver relies on it).
pub const BEHIND_MS: u64 = 500;
/// The least time between the last frame before a new anchor and the first after it.
pub const SWITCH_GAP_MS: u64 = 34;

/// What the stage decided about a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageDecision {
    /// Write the frame at this recording time (ms).
    Write(u64),
    /// Not the stage source, or the new source has not sent a keyframe yet.
    Skip,
}

/// The stage: the source on it, the source it is switching to, and the time mapping.
#[derive(Debug, Default)]
pub struct Stage {
    current: Option<SourceId>,
    pending: Option<SourceId>,
    /// (RTP timestamp, recording ms) of the current source's anchor frame.
    anchor: Option<(u64, u64)>,
    last_ms: Option<u64>,
    switches: u64,
}

impl Stage {
    /// Chooses the source to show; returns the source to ask for a keyframe, if any. The old
    /// source stays on the stage until the new one's keyframe arrives.
    pub fn select(&mut self, source: Option<SourceId>) -> Option<SourceId> {
        if source == self.current {
            self.pending = None;
            return None;
        }
        match source {
            None => {
                self.current = None;
                self.pending = None;
                self.anchor = None;
                None
            }
            Some(s) => {
                self.pending = Some(s);
                Some(s)
            }
        }
    }

    /// The source being shown.
    pub fn current(&self) -> Option<SourceId> {
        self.current
    }

    /// The source waited for, if a switch is under way.
    pub fn pending(&self) -> Option<SourceId> {
        self.pending
    }

    /// Switches completed so far.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Decides a frame of `source` that arrived at `arrival_ms` (recording time).
    pub fn decide(&mut self, source: SourceId, frame: &Frame, arrival_ms: u64) -> StageDecision {
        if self.pending == Some(source) && frame.keyframe {
            self.current = Some(source);
            self.pending = None;
            self.anchor = None;
            self.switches += 1;
        }
        if self.current != Some(source) {
            return StageDecision::Skip;
        }
        let mapped = self
            .anchor
            // Rounded to the nearest ms, as ffmpeg does: truncating makes 30 fps frames land
            // 33, 33, 34 ms apart, which decoders at a 1/30 time base read as duplicates.
            .map(|(rtp, ms)| ms as i64 + (frame.timestamp as i64 - rtp as i64 + 45).div_euclid(90));
        let mut anchored = false;
        let ms = match mapped {
            Some(m)
                if m >= 0
                    && m as u64 + BEHIND_MS >= arrival_ms
                    && m as u64 <= arrival_ms + RESYNC_MS =>
            {
                m as u64
            }
            _ => {
                anchored = true;
                arrival_ms
            }
        };
        // Never go back in time. A new anchor (a switch, a resync) keeps a frame interval
        // after the last frame: the old source may have sent one just before, and players
        // that assume 30 fps read frames closer than that as duplicates.
        let gap = if anchored { SWITCH_GAP_MS } else { 1 };
        let ms = match self.last_ms {
            Some(last) if ms < last + gap => last + gap,
            _ => ms,
        };
        if anchored {
            self.anchor = Some((frame.timestamp, ms));
        }
        self.last_ms = Some(ms);
        StageDecision::Write(ms)
    }

    /// A source left: if it was on the stage, the stage is empty until another is selected.
    pub fn remove(&mut self, source: SourceId) {
        if self.current == Some(source) {
            self.current = None;
            self.anchor = None;
        }
        if self.pending == Some(source) {
            self.pending = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: u64, keyframe: bool) -> Frame {
        Frame {
            timestamp: ts,
            keyframe,
            size: None,
            data: vec![0],
        }
    }

    #[test]
    fn switches_only_on_the_new_sources_keyframe_with_continuous_time() {
        let (a, b) = (SourceId(1), SourceId(2));
        let mut s = Stage::default();
        assert_eq!(s.select(Some(a)), Some(a));
        assert_eq!(s.decide(a, &frame(1000, false), 0), StageDecision::Skip);
        assert_eq!(
            s.decide(a, &frame(4000, true), 33),
            StageDecision::Write(33)
        );
        assert_eq!(
            s.decide(a, &frame(7000, false), 70),
            StageDecision::Write(66)
        );
        // Asking for b keeps a on the stage until b's keyframe.
        assert_eq!(s.select(Some(b)), Some(b));
        assert_eq!(s.decide(b, &frame(500_000, false), 99), StageDecision::Skip);
        assert_eq!(
            s.decide(a, &frame(10_000, false), 100),
            StageDecision::Write(100)
        );
        // b's clock is unrelated to a's; the recording time continues from the arrival.
        assert_eq!(
            s.decide(b, &frame(503_000, true), 120),
            StageDecision::Write(134)
        );
        assert_eq!(s.decide(a, &frame(13_000, false), 133), StageDecision::Skip);
        assert_eq!(
            s.decide(b, &frame(506_000, false), 150),
            StageDecision::Write(167)
        );
        assert_eq!(s.switches(), 2);
    }

    #[test]
    fn time_never_goes_back_and_resyncs_after_a_jump() {
        let a = SourceId(1);
        let mut s = Stage::default();
        s.select(Some(a));
        assert_eq!(
            s.decide(a, &frame(90_000, true), 500),
            StageDecision::Write(500)
        );
        // The encoder restarted with an older timestamp: anchored anew, still after 500.
        assert_eq!(
            s.decide(a, &frame(10, true), 480),
            StageDecision::Write(534)
        );
        // A pause of 10 s in RTP but 3 s by the clock: follows the clock.
        assert_eq!(
            s.decide(a, &frame(10 + 900_000, false), 3_500),
            StageDecision::Write(3_500)
        );
    }
}
