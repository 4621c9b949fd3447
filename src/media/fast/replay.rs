//! Replay lists (RFC 3711 §3.3.2): which indexes of a sequence were seen, for the relay's links
//! and, per source, for the SRTCP the lean path opens.
//!
//! Without one, an on-path attacker could send a captured SRTCP compound again: it still
//! authenticates, so a replayed NACK would be answered with RTX again (amplification toward
//! the subscriber) and a replayed PLI/FIR would ask the publisher for another keyframe.

/// Indexes more than this many behind the newest are refused: reordering between two nodes
/// on one network, or among a browser's few compounds a second, is far smaller. (RFC 3711
/// asks for at least 64; libsrtp keeps 128 for SRTCP too.)
pub const REPLAY_WINDOW: u64 = 128;

/// Sources (the SSRC heading a compound) whose SRTCP indexes one opener tracks. Each source
/// has its own index sequence (libsrtp, in browsers, keeps one per SSRC), and a peer heads
/// its compounds with a handful (one per local sender, one for receive-only reports). Past
/// this, the source heard from least recently is forgotten: a replay of its old compounds
/// would then pass once, but only after the peer itself (not an attacker, who cannot make
/// authentic compounds) used this many newer sources.
pub const MAX_SRTCP_SOURCES: usize = 32;

/// Which indexes were seen: the newest and a bitmap of the ones before it.
#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    top: Option<u64>,
    seen: u128,
}

impl ReplayWindow {
    /// Whether `index` is new and within the window (does not record it).
    pub fn fresh(&self, index: u64) -> bool {
        match self.top {
            None => true,
            Some(top) if index > top => true,
            Some(top) => {
                let back = top - index;
                back < REPLAY_WINDOW && self.seen & (1 << back) == 0
            }
        }
    }

    /// Records `index` as seen (call after it authenticated).
    pub fn mark(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => {
                if top - index < REPLAY_WINDOW {
                    self.seen |= 1 << (top - index);
                }
            }
            Some(top) => {
                let shift = index - top;
                self.seen = if shift >= REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << shift) | 1
                };
                self.top = Some(index);
            }
            None => {
                self.seen = 1;
                self.top = Some(index);
            }
        }
    }
}

/// SRTCP replay lists of one opener, one per source, at most [`MAX_SRTCP_SOURCES`].
#[derive(Debug, Default)]
pub struct SrtcpReplay {
    /// (SSRC, its window, when it was last marked): a short list, scanned.
    sources: Vec<(u32, ReplayWindow, u64)>,
    marks: u64,
}

impl SrtcpReplay {
    /// Whether the compound `index` from `ssrc` is new and within its window.
    pub fn fresh(&self, ssrc: u32, index: u32) -> bool {
        self.sources
            .iter()
            .find(|s| s.0 == ssrc)
            .is_none_or(|s| s.1.fresh(u64::from(index)))
    }

    /// Records the compound as seen (call after it authenticated).
    pub fn mark(&mut self, ssrc: u32, index: u32) {
        self.marks += 1;
        let at = match self.sources.iter().position(|s| s.0 == ssrc) {
            Some(at) => at,
            None if self.sources.len() < MAX_SRTCP_SOURCES => {
                self.sources.push((ssrc, ReplayWindow::default(), 0));
                self.sources.len() - 1
            }
            None => {
                let oldest = (0..self.sources.len())
                    .min_by_key(|&i| self.sources[i].2)
                    .unwrap_or(0);
                self.sources[oldest] = (ssrc, ReplayWindow::default(), 0);
                oldest
            }
        };
        let source = &mut self.sources[at];
        source.1.mark(u64::from(index));
        source.2 = self.marks;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_kept_apart_and_bounded() {
        let mut r = SrtcpReplay::default();
        r.mark(1, 10);
        assert!(!r.fresh(1, 10));
        assert!(
            r.fresh(2, 10),
            "another source's index 10 is another packet"
        );
        for ssrc in 2..(MAX_SRTCP_SOURCES as u32 + 1) {
            r.mark(ssrc, 0);
        }
        assert!(!r.fresh(1, 10) && !r.fresh(2, 0), "all still held");
        r.mark(1, 11);
        // One more source: the one heard from least recently (2) is forgotten, not 1.
        r.mark(1000, 0);
        assert_eq!(r.sources.len(), MAX_SRTCP_SOURCES);
        assert!(!r.fresh(1, 10) && !r.fresh(1000, 0));
        assert!(r.fresh(2, 0));
        assert!(!r.fresh(3, 0));
    }

    #[test]
    fn an_old_index_marked_outside_the_window_does_not_shift() {
        let mut w = ReplayWindow::default();
        w.mark(500);
        // Callers check `fresh` first; a mark past the window must still not overflow.
        w.mark(1);
        assert!(!w.fresh(500) && w.fresh(499));
    }
}
