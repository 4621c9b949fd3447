//! Receiver reports toward a lean peer's publications, which str0m no longer sends for it.
//!
//! A peer on the lean path has str0m's report intervals set to a day, which silences str0m's
//! receiver reports (and their XR round-trip blocks) on the streams it *publishes* as well as
//! its sender reports on the streams it receives. NACKs, PLI/FIR, REMB and transport-cc
//! feedback are not on that timer and still come from str0m. Without receiver reports the
//! publisher sees no loss, jitter or round trip (Chrome's `remote-inbound-rtp` stays empty and
//! its loss-based estimate is blind), so this module keeps RFC 3550 receive statistics per
//! incoming SSRC (appendix A.3 loss, A.8 jitter) from what the router routes, takes LSR from
//! the publisher's sender reports (read from the compounds `rtcp_in` opened once for every
//! reader), and writes one receiver report per [`REPORT_EVERY`] from the lean path's own
//! reporter SSRC, which the sender seals.

use super::grid::Grid;
use crate::media::lipsync::SenderReport;
use std::time::{Duration, Instant};

/// How often the publisher hears from us (str0m's video default).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Incoming SSRCs tracked at most (a receiver report holds 31 blocks). A publisher has one
/// per audio source and up to three per simulcast video; further ones are not reported until
/// a silent one is forgotten.
pub const MAX_SOURCES: usize = 31;
/// A source not heard for this long is forgotten (its slot freed, no more blocks for it).
const FORGET_AFTER: Duration = Duration::from_secs(10);
/// RTCP packet types (RFC 3550).
const SR: u8 = 200;
const RR: u8 = 201;

/// RFC 3550 receive statistics of one incoming SSRC.
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    clock_rate: u32,
    /// First and highest extended sequence numbers (str0m extends them to 64 bits).
    base_seq: u64,
    max_seq: u64,
    received: u64,
    /// `expected` and `received` at the last report (for the fraction lost).
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in timestamp units, scaled by 16 (RFC 3550 A.8).
    jitter_q4: u32,
    /// The last packet's relative transit time, in timestamp units.
    transit: Option<u32>,
    /// Middle 32 bits of the last sender report's NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    /// The last sender report's RTP/NTP pair (for `lipsync`).
    report: Option<SenderReport>,
    last_heard: Instant,
    /// Heard since the last report.
    fresh: bool,
}

/// One report block, as written (tests read them back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire; duplicates can make it negative).
    pub cumulative_lost: i32,
    pub extended_max: u32,
    pub jitter: u32,
    pub lsr: u32,
    pub dlsr: u32,
}

/// A lean peer's receive statistics and its receiver reports.
pub struct Reports {
    sources: Vec<Source>,
    epoch: Instant,
    /// On the room's grid (see `grid.rs`).
    next_report: Instant,
    grid: Grid,
    /// Sender reports taken from the peer.
    pub srs_seen: u64,
}

impl Reports {
    /// No sources yet; the first report is due one interval from `now`.
    pub fn new(now: Instant) -> Self {
        Reports {
            sources: Vec::new(),
            epoch: now,
            next_report: now + REPORT_EVERY,
            grid: Grid::new(now),
            srs_seen: 0,
        }
    }

    /// One RTP packet routed from the peer: `seq` extended, `time` as on the wire. Returns
    /// the last sender report on its stream, if one came.
    pub fn on_rtp(
        &mut self,
        ssrc: u32,
        seq: u64,
        time: u32,
        clock_rate: u32,
        now: Instant,
    ) -> Option<SenderReport> {
        let at = match self.sources.iter().position(|s| s.ssrc == ssrc) {
            Some(i) => i,
            None => {
                if self.sources.len() == MAX_SOURCES {
                    self.sources
                        .retain(|s| now.saturating_duration_since(s.last_heard) < FORGET_AFTER);
                    if self.sources.len() == MAX_SOURCES {
                        return None;
                    }
                }
                self.sources.push(Source {
                    ssrc,
                    clock_rate,
                    base_seq: seq,
                    max_seq: seq,
                    received: 0,
                    expected_prior: 0,
                    received_prior: 0,
                    jitter_q4: 0,
                    transit: None,
                    last_sr: None,
                    report: None,
                    last_heard: now,
                    fresh: true,
                });
                self.sources.len() - 1
            }
        };
        let s = &mut self.sources[at];
        s.received += 1;
        s.fresh = true;
        s.last_heard = now;
        s.base_seq = s.base_seq.min(seq);
        s.max_seq = s.max_seq.max(seq);
        if clock_rate != s.clock_rate {
            // A new codec clock: transit times are not comparable across it.
            s.clock_rate = clock_rate;
            s.transit = None;
        }
        // Arrival in the stream's clock, truncated like the timestamp: only differences count.
        let since = now.saturating_duration_since(self.epoch);
        let arrival = (since.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(time);
        if let Some(prev) = s.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16 (RFC 3550 A.8).
            let j = i64::from(s.jitter_q4);
            s.jitter_q4 = (j + i64::from(d) - ((j + 8) >> 4)).clamp(0, i64::from(u32::MAX)) as u32;
        }
        s.transit = Some(transit);
        s.report
    }

    /// Takes one packet of an opened compound from the peer; returns whether it was a sender
    /// report (its LSR is kept for the source's next block).
    pub fn on_packet(&mut self, packet: &[u8], now: Instant) -> bool {
        if packet.len() < 28 || packet[1] != SR {
            return false;
        }
        let word = |at: usize| {
            u32::from_be_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]])
        };
        let ssrc = word(4);
        let ntp = u64::from(word(8)) << 32 | u64::from(word(12));
        if let Some(s) = self.sources.iter_mut().find(|s| s.ssrc == ssrc) {
            // LSR: the middle 32 bits of the 64-bit NTP time.
            s.last_sr = Some(((ntp >> 16) as u32, now));
            s.report = Some(SenderReport::from_wire(ntp, word(16)));
        }
        self.srs_seen += 1;
        true
    }

    /// Puts the reports on the room's `grid` (from `now` on).
    pub fn align(&mut self, grid: Grid, now: Instant) {
        self.grid = grid;
        self.next_report = grid.first(now, REPORT_EVERY);
    }

    /// When the next report is due; none while the peer publishes nothing.
    pub fn next_report(&self) -> Option<Instant> {
        (!self.sources.is_empty()).then_some(self.next_report)
    }

    /// Whether a report is due now (moves the schedule on when it is).
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next_report {
            return false;
        }
        self.next_report = self.grid.next(self.next_report, now, REPORT_EVERY);
        true
    }

    /// Appends a receiver report from `reporter` with a block per source heard since the
    /// last one; returns the number of blocks (0: nothing written, nothing to say).
    pub fn write(&mut self, reporter: u32, now: Instant, out: &mut Vec<u8>) -> usize {
        let count = self.sources.iter().filter(|s| s.fresh).count();
        if count == 0 {
            return 0;
        }
        out.extend_from_slice(&[0x80 | count as u8, RR]);
        out.extend_from_slice(&((1 + 6 * count) as u16).to_be_bytes());
        out.extend_from_slice(&reporter.to_be_bytes());
        for s in self.sources.iter_mut().filter(|s| s.fresh) {
            let b = block(s, now);
            s.fresh = false;
            out.extend_from_slice(&b.ssrc.to_be_bytes());
            let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0xFF_FFFF;
            out.extend_from_slice(&(u32::from(b.fraction_lost) << 24 | lost).to_be_bytes());
            out.extend_from_slice(&b.extended_max.to_be_bytes());
            out.extend_from_slice(&b.jitter.to_be_bytes());
            out.extend_from_slice(&b.lsr.to_be_bytes());
            out.extend_from_slice(&b.dlsr.to_be_bytes());
        }
        count
    }
}

/// The report block for `s` now, moving its interval counters on (RFC 3550 A.3).
fn block(s: &mut Source, now: Instant) -> Block {
    let expected = s.max_seq - s.base_seq + 1;
    let lost = expected as i64 - s.received as i64;
    let expected_interval = expected - s.expected_prior;
    let received_interval = s.received - s.received_prior;
    s.expected_prior = expected;
    s.received_prior = s.received;
    let lost_interval = expected_interval as i64 - received_interval as i64;
    let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
        0
    } else {
        ((lost_interval << 8) / expected_interval as i64).min(255) as u8
    };
    let (lsr, dlsr) = match s.last_sr {
        Some((lsr, at)) => {
            let delay = now.saturating_duration_since(at);
            (lsr, (delay.as_micros() * 65_536 / 1_000_000) as u32)
        }
        None => (0, 0),
    };
    Block {
        ssrc: s.ssrc,
        fraction_lost,
        cumulative_lost: lost.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        // The low 32 bits: cycles count in the high 16, the sequence number in the low 16.
        extended_max: s.max_seq as u32,
        jitter: s.jitter_q4 >> 4,
        lsr,
        dlsr,
    }
}

/// Reads the blocks of a receiver report written by [`Reports::write`] (tests, and the
/// virtual-time checks of what reached a publisher).
pub fn parse_rr(packet: &[u8]) -> Option<(u32, Vec<Block>)> {
    if packet.len() < 8 || packet[1] != RR {
        return None;
    }
    let count = usize::from(packet[0] & 0x1f);
    let reporter = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let b = packet.get(8 + 24 * i..8 + 24 * (i + 1))?;
        let word = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        // Sign-extend the 24-bit cumulative loss.
        let lost = ((word(4) << 8) as i32) >> 8;
        blocks.push(Block {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost: lost,
            extended_max: word(8),
            jitter: word(12),
            lsr: word(16),
            dlsr: word(20),
        });
    }
    Some((reporter, blocks))
}

#[cfg(test)]
#[path = "reports_tests.rs"]
mod tests;
