//! Sequence-number and timestamp continuity for one outgoing stream across source switches.
//!
//! A subscriber's m-line keeps one SSRC for its whole life, while what it carries can change
//! (another publisher's track after a reuse, later another simulcast layer). The decoder must see
//! one continuous stream: sequence numbers without a jump and timestamps that move forward by the
//! time that really passed. Everything is 64-bit inside and only truncated on the wire.

use std::time::Instant;

/// Rewrites (seq, timestamp) of one source into the continuous space of one outgoing stream.
#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    seq_offset: u64,
    ts_offset: u64,
    /// First incoming sequence number of the current source; older packets are stale.
    floor: Option<u64>,
    /// Highest outgoing (seq, ts) and when it was sent: where the next source continues from.
    last: Option<(u64, u64, Instant)>,
    pending_switch: bool,
}

/// The first outgoing sequence number: small, so the SRTP rollover counter starts at zero.
const FIRST_SEQ: u64 = 1;

impl Rewriter {
    /// A rewriter whose next packet starts the stream.
    pub fn new() -> Self {
        Rewriter {
            pending_switch: true,
            ..Default::default()
        }
    }

    /// The next packet comes from a new source (or resumes after a gap in forwarding).
    pub fn switch_source(&mut self) {
        self.pending_switch = true;
    }

    /// Whether the next packet must start a new mapping.
    pub fn is_switching(&self) -> bool {
        self.pending_switch
    }

    /// Maps an incoming packet; `None` when it predates the current source (stale).
    pub fn rewrite(
        &mut self,
        seq: u64,
        ts: u64,
        arrival: Instant,
        clock_rate: u32,
    ) -> Option<(u64, u64)> {
        if self.pending_switch {
            self.pending_switch = false;
            let (next_seq, next_ts) = match self.last {
                None => (FIRST_SEQ, ts),
                Some((last_seq, last_ts, at)) => {
                    let elapsed = arrival.saturating_duration_since(at);
                    let ticks = (elapsed.as_micros() as u64 * u64::from(clock_rate)) / 1_000_000;
                    (last_seq + 1, last_ts.wrapping_add(ticks.max(1)))
                }
            };
            self.seq_offset = next_seq.wrapping_sub(seq);
            self.ts_offset = next_ts.wrapping_sub(ts);
            self.floor = Some(seq);
        }
        if seq < self.floor? {
            return None;
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        match self.last {
            Some((last_seq, _, _)) if out_seq <= last_seq => {}
            _ => self.last = Some((out_seq, out_ts, arrival)),
        }
        Some((out_seq, out_ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_packet_starts_low_and_keeps_spacing() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        assert_eq!(r.rewrite(40_000, 5_000, t0, 90_000), Some((1, 5_000)));
        assert_eq!(r.rewrite(40_001, 8_000, t0, 90_000), Some((2, 8_000)));
        // Reordered packet of the same source keeps its place.
        assert_eq!(r.rewrite(40_003, 11_000, t0, 90_000), Some((4, 11_000)));
        assert_eq!(r.rewrite(40_002, 8_000, t0, 90_000), Some((3, 8_000)));
    }

    #[test]
    fn switch_continues_seq_and_advances_time_by_elapsed() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        r.rewrite(10, 1_000, t0, 90_000);
        r.rewrite(11, 4_000, t0, 90_000);
        r.switch_source();
        let t1 = t0 + Duration::from_millis(100);
        // 100 ms at 90 kHz = 9000 ticks after the last outgoing timestamp.
        assert_eq!(r.rewrite(7_000, 123_456, t1, 90_000), Some((3, 13_000)));
        assert_eq!(r.rewrite(7_001, 126_456, t1, 90_000), Some((4, 16_000)));
        // A late packet of the new source from before the switch point is stale.
        assert_eq!(r.rewrite(6_999, 120_456, t1, 90_000), None);
    }

    #[test]
    fn switch_with_no_time_elapsed_still_moves_forward() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        r.rewrite(1, 100, t0, 48_000);
        r.switch_source();
        let (_, ts) = r.rewrite(500, 0, t0, 48_000).expect("fresh source");
        assert_eq!(ts, 101);
    }

    #[test]
    fn wrapping_inputs_do_not_panic() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        assert_eq!(
            r.rewrite(u64::MAX, u64::MAX, t0, 90_000),
            Some((1, u64::MAX))
        );
    }
}
