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
/// The furthest before its arrival a frame is anchored at its capture: a publisher whose
/// frames take longer than this to reach us is recorded at their arrival less this, keeping
/// the anchor well inside [`BEHIND_MS`].
pub const CAPTURE_LEAD_MS: u64 = BEHIND_MS / 2;
/// How far a source's mapping may stray from its captures before it is laid on them again.
/// Captures move when the publisher's clock offset does (`media::lipsync`): once its voice's
/// first sender report shows how much faster than its camera it is, typically 50–100 ms.
pub const CAPTURE_SHIFT_MS: u64 = 20;
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
    /// Whether the anchor lies at a capture instant (else at an arrival).
    on_capture: bool,
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

    /// Decides a frame of `source` that arrived at `arrival_ms` (recording time) and was
    /// captured at `capture_ms` when its publisher's sender reports say (`media::lipsync`).
    /// A new anchor lies at the capture, so the frame is written when its sound was heard
    /// (the mix anchors voices the same way) rather than a camera's encoding and a keyframe's
    /// size later.
    pub fn decide(
        &mut self,
        source: SourceId,
        frame: &Frame,
        arrival_ms: u64,
        capture_ms: Option<u64>,
    ) -> StageDecision {
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
        let capture =
            capture_ms.map(|c| c.clamp(arrival_ms.saturating_sub(CAPTURE_LEAD_MS), arrival_ms));
        let fits = mapped.filter(|&m| {
            m >= 0 && m as u64 + BEHIND_MS >= arrival_ms && m as u64 <= arrival_ms + RESYNC_MS
        });
        let ms = match (fits, capture) {
            // The source's captures are known now, or moved: laid on them again, the frames
            // go on (squeezed, a millisecond apart, until their times pass the last one)
            // rather than wait a frame interval, which would keep them late by that.
            (Some(m), Some(c)) if !self.on_capture || m.abs_diff(c as i64) > CAPTURE_SHIFT_MS => {
                self.anchor = Some((frame.timestamp, c));
                self.on_capture = true;
                c
            }
            (Some(m), _) => m as u64,
            (None, _) => {
                // A new anchor (a switch, a resync) keeps a frame interval after the last
                // frame: the old source may have sent one just before, and players that
                // assume 30 fps read frames closer than that as duplicates.
                let ms = capture.unwrap_or(arrival_ms);
                let ms = self.last_ms.map_or(ms, |l| ms.max(l + SWITCH_GAP_MS));
                self.anchor = Some((frame.timestamp, ms));
                self.on_capture = capture.is_some();
                ms
            }
        };
        // Never go back in time.
        let ms = self.last_ms.map_or(ms, |last| ms.max(last + 1));
        self.last_ms = Some(ms);
        StageDecision::Write(ms)
    }

    /// A source left: if it was on the stage, the stage is empty until another is selected.
    pub fn remove(&mut self, source: SourceId) {
        if self.current == Some(source) {
            self.current = None;
            self.anchor = None;
            self.on_capture = false;
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
        assert_eq!(
            s.decide(a, &frame(1000, false), 0, None),
            StageDecision::Skip
        );
        assert_eq!(
            s.decide(a, &frame(4000, true), 33, None),
            StageDecision::Write(33)
        );
        assert_eq!(
            s.decide(a, &frame(7000, false), 70, None),
            StageDecision::Write(66)
        );
        // Asking for b keeps a on the stage until b's keyframe.
        assert_eq!(s.select(Some(b)), Some(b));
        assert_eq!(
            s.decide(b, &frame(500_000, false), 99, None),
            StageDecision::Skip
        );
        assert_eq!(
            s.decide(a, &frame(10_000, false), 100, None),
            StageDecision::Write(100)
        );
        // b's clock is unrelated to a's; the recording time continues from the arrival.
        assert_eq!(
            s.decide(b, &frame(503_000, true), 120, None),
            StageDecision::Write(134)
        );
        assert_eq!(
            s.decide(a, &frame(13_000, false), 133, None),
            StageDecision::Skip
        );
        assert_eq!(
            s.decide(b, &frame(506_000, false), 150, None),
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
            s.decide(a, &frame(90_000, true), 500, None),
            StageDecision::Write(500)
        );
        // The encoder restarted with an older timestamp: anchored anew, still after 500.
        assert_eq!(
            s.decide(a, &frame(10, true), 480, None),
            StageDecision::Write(534)
        );
        // A pause of 10 s in RTP but 3 s by the clock: follows the clock.
        assert_eq!(
            s.decide(a, &frame(10 + 900_000, false), 3_500, None),
            StageDecision::Write(3_500)
        );
    }

    #[test]
    fn a_new_anchor_lies_at_the_capture_within_its_bound() {
        let (a, b) = (SourceId(1), SourceId(2));
        let mut s = Stage::default();
        s.select(Some(a));
        // Captured 90 ms before it arrived: written at its capture, and the frames after
        // follow their RTP clock from there, whatever their own delays.
        assert_eq!(
            s.decide(a, &frame(9_000, true), 1_090, Some(1_000)),
            StageDecision::Write(1_000)
        );
        assert_eq!(
            s.decide(a, &frame(12_000, false), 1_070, Some(1_033)),
            StageDecision::Write(1_033)
        );
        // A capture further back than CAPTURE_LEAD_MS is taken at that bound.
        s.select(Some(b));
        assert_eq!(
            s.decide(b, &frame(0, true), 3_000, Some(1_500)),
            StageDecision::Write(3_000 - CAPTURE_LEAD_MS)
        );
    }

    #[test]
    fn frames_move_onto_their_captures_when_they_come_or_move() {
        let a = SourceId(1);
        let mut s = Stage::default();
        s.select(Some(a));
        // Before the publisher's reports: placed by arrival.
        assert_eq!(
            s.decide(a, &frame(0, true), 1_100, None),
            StageDecision::Write(1_100)
        );
        // The first capture: laid on it, 100 ms back; the frames in between are squeezed
        // (time never goes back) until their own times pass the last one.
        assert_eq!(
            s.decide(a, &frame(3_000, false), 1_133, Some(1_033)),
            StageDecision::Write(1_101)
        );
        assert_eq!(
            s.decide(a, &frame(6_000, false), 1_167, Some(1_066)),
            StageDecision::Write(1_102)
        );
        for (ts, ms) in [(9_000, 1_100), (12_000, 1_133)] {
            assert_eq!(
                s.decide(a, &frame(ts, false), ms + 100, Some(ms)),
                StageDecision::Write(ms.max(1_103))
            );
        }
        // Captures that stray less than CAPTURE_SHIFT_MS (a new sender report) move nothing.
        assert_eq!(
            s.decide(a, &frame(15_000, false), 1_266, Some(1_176)),
            StageDecision::Write(1_166)
        );
        // They move by 60 ms (the publisher's clock offset was laid again): followed.
        assert_eq!(
            s.decide(a, &frame(18_000, false), 1_300, Some(1_260)),
            StageDecision::Write(1_260)
        );
    }
}
