//! Transport-wide congestion control: a small send register and RTCP transport-cc feedback
//! parsing (and writing, for the load tester's viewers: [`write_feedback`]).
//!
//! The fast path stamps every packet toward a subscriber with a transport-wide sequence number
//! ([`SendRegister::on_send`]) and records only (sequence, send time, size). When the subscriber's
//! feedback arrives (draft-holmer-rmcat-transport-wide-cc-extensions-01), [`parse_feedback`]
//! decodes it and [`SendRegister::resolve`] turns it into one [`PacketResult`] per packet it
//! covers, which is what the estimator ([`super::gcc`]) eats.
//!
//! Memory: a record is 8 bytes (send time as 32-bit microseconds since the register's epoch and
//! a 14-bit size plus two flags); the register is a ring sized from the send rate and the time a
//! packet waits for its feedback ([`RegisterConfig::for_rate`]). The default, 512 records (4 KiB),
//! covers 4 Mbit/s of 1,000-byte packets for one second, where str0m keeps 1,000 records of
//! ~84 bytes each. A packet whose record was overwritten before its feedback came is skipped,
//! never guessed.

use std::time::{Duration, Instant};

/// How large a subscriber's send register is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterConfig {
    /// Records kept (a power of two, 64..=8192). Default 512: see [`RegisterConfig::for_rate`].
    pub capacity: usize,
}

impl RegisterConfig {
    /// Fewest records a register keeps: covers an audio-only subscriber's feedback interval.
    pub const MIN_CAPACITY: usize = 64;
    /// Most records a register keeps (64 KiB): 20 Mbit/s of 1,200-byte packets for 4 s.
    pub const MAX_CAPACITY: usize = 8192;

    /// Enough records for `max_bps` of `avg_packet_bytes`-byte packets sent during `window`
    /// (the feedback interval plus the round trip plus margin), rounded up to a power of two
    /// and clamped to [`Self::MIN_CAPACITY`]..=[`Self::MAX_CAPACITY`].
    pub fn for_rate(max_bps: u64, avg_packet_bytes: u32, window: Duration) -> Self {
        let per_s = max_bps as f64 / 8.0 / f64::from(avg_packet_bytes.max(1));
        let n = (per_s * window.as_secs_f64()).ceil().max(1.0) as usize;
        RegisterConfig {
            capacity: n
                .clamp(Self::MIN_CAPACITY, Self::MAX_CAPACITY)
                .next_power_of_two(),
        }
    }
}

impl Default for RegisterConfig {
    /// 4 Mbit/s of 1,000-byte packets for 1 s: 512 records.
    fn default() -> Self {
        Self::for_rate(4_000_000, 1_000, Duration::from_secs(1))
    }
}

/// One record: 8 bytes. `size_flags` holds the size (14 bits) and two flags.
#[derive(Clone, Copy, Default)]
struct Record {
    sent_us: u32,
    size_flags: u16,
}

const SIZE_MASK: u16 = 0x3fff;
/// Its arrival has been reported: later reports of it are duplicates.
const ACKED: u16 = 0x8000;
/// Its loss has been reported: count it lost once.
const LOST: u16 = 0x4000;

/// What feedback says about one sent packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketResult {
    /// Transport-wide sequence number, 64-bit.
    pub seq: u64,
    /// Bytes on the wire (clamped to 16,383).
    pub size: u16,
    /// When it was sent, in microseconds since the register's epoch: an estimator made at the
    /// same instant reads it on its own scale with no clock arithmetic per packet
    /// ([`SendRegister::instant`] turns it back into an `Instant`).
    pub sent_us: u64,
    /// When it arrived, in microseconds on the receiver's clock (only differences mean
    /// anything); `None` if the receiver reported it lost.
    pub arrival_us: Option<i64>,
}

/// Per-subscriber register of sent packets, bounded by [`RegisterConfig::capacity`].
pub struct SendRegister {
    epoch: Instant,
    records: Box<[Record]>,
    /// The next sequence number to hand out; records cover `next - capacity .. next`.
    next: u64,
    /// Last unwrapped reference time (64 ms units), to unwrap the next one.
    last_reference: Option<i64>,
}

impl SendRegister {
    /// An empty register whose clock starts at `now`.
    pub fn new(config: RegisterConfig, now: Instant) -> Self {
        let capacity = config
            .capacity
            .clamp(RegisterConfig::MIN_CAPACITY, RegisterConfig::MAX_CAPACITY)
            .next_power_of_two();
        SendRegister {
            epoch: now,
            records: vec![Record::default(); capacity].into_boxed_slice(),
            next: 0,
            last_reference: None,
        }
    }

    /// Bytes this register holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.records)
    }

    /// Records a packet of `size` bytes sent at `now`; returns its transport-wide sequence
    /// number (put its low 16 bits on the wire).
    pub fn on_send(&mut self, now: Instant, size: usize) -> u64 {
        self.on_send_since(now.saturating_duration_since(self.epoch), size)
    }

    /// [`Self::on_send`] given the time since the register's epoch.
    pub fn on_send_since(&mut self, since: Duration, size: usize) -> u64 {
        let seq = self.next;
        self.next += 1;
        let mask = self.records.len() - 1;
        self.records[seq as usize & mask] = Record {
            // Wraps every 71 minutes; `sent_at` undoes it for records younger than that.
            sent_us: (since.as_secs() as u32)
                .wrapping_mul(1_000_000)
                .wrapping_add(since.subsec_micros()),
            size_flags: size.min(usize::from(SIZE_MASK)) as u16,
        };
        seq
    }

    /// The sequence number the next packet will get.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Prefetches the record the next send writes: a subscriber's ring is cold by its next
    /// copy, and that write was the costliest store of a copy (perf, issue 16).
    #[inline]
    pub fn prefetch_next(&self) {
        let mask = self.records.len().wrapping_sub(1);
        if let Some(r) = self.records.get(self.next as usize & mask) {
            crate::media::peer_table::prefetch(r, std::mem::size_of::<Record>());
        }
    }

    /// When `rec` was sent on the register's scale, from its 32-bit microseconds and `now_us`
    /// (computed once per feedback: this runs for every packet a feedback reports).
    fn sent_at(rec: Record, now_us: u64) -> u64 {
        let age = u64::from((now_us as u32).wrapping_sub(rec.sent_us));
        now_us.saturating_sub(age)
    }

    /// A time on the register's scale ([`PacketResult::sent_us`]) as an `Instant`.
    pub fn instant(&self, us: u64) -> Instant {
        self.epoch + Duration::from_micros(us)
    }

    /// The 64-bit sequence number, at most `next - 1`, whose low 16 bits are `wire`.
    fn unwrap_seq(&self, wire: u16) -> Option<u64> {
        let candidate = (self.next & !0xffff) | u64::from(wire);
        if candidate < self.next {
            Some(candidate)
        } else {
            candidate.checked_sub(1 << 16)
        }
    }

    /// Turns parsed feedback into results for the packets this register still holds, appended
    /// to `out` (at most one per record, so bounded by the capacity). Packets already reported
    /// (received, or lost and not since received), packets never sent, and packets whose
    /// records were overwritten are skipped.
    pub fn resolve(&mut self, now: Instant, fb: &Feedback, out: &mut Vec<PacketResult>) {
        let Some(base) = self.unwrap_seq(fb.base_seq) else {
            return;
        };
        let reference = self.unwrap_reference(fb.reference_time);
        let mut arrival_ticks = reference * 256; // 64 ms = 256 ticks of 250 µs
        let cap = self.records.len() as u64;
        let oldest = self.next.saturating_sub(cap);
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        for (i, status) in fb.statuses.iter().enumerate() {
            if let Some(delta) = status.delta {
                arrival_ticks += i64::from(delta);
            }
            let seq = base + i as u64;
            if seq >= self.next {
                break;
            }
            if seq < oldest {
                continue;
            }
            let slot = seq as usize & (self.records.len() - 1);
            let rec = self.records[slot];
            let arrival_us = match status.delta {
                Some(_) if rec.size_flags & ACKED != 0 => continue,
                Some(_) => {
                    self.records[slot].size_flags |= ACKED;
                    Some(arrival_ticks * 250)
                }
                None if rec.size_flags & (ACKED | LOST) != 0 => continue,
                None => {
                    self.records[slot].size_flags |= LOST;
                    None
                }
            };
            out.push(PacketResult {
                seq,
                size: rec.size_flags & SIZE_MASK,
                sent_us: Self::sent_at(rec, now_us),
                arrival_us,
            });
        }
    }

    /// The 24-bit reference time made monotonic across feedbacks (it wraps every ~12 days, and
    /// feedbacks may be reordered by a few steps).
    fn unwrap_reference(&mut self, wire: u32) -> i64 {
        let wire = i64::from(wire & 0xff_ffff);
        let unwrapped = match self.last_reference {
            None => wire,
            Some(last) => {
                // The value with these 24 bits closest to the last one.
                let diff = (wire - last).rem_euclid(1 << 24);
                if diff < 1 << 23 {
                    last + diff
                } else {
                    last + diff - (1 << 24)
                }
            }
        };
        self.last_reference = Some(unwrapped.max(self.last_reference.unwrap_or(i64::MIN)));
        unwrapped
    }
}

/// One packet's status in a feedback message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Receive delta in 250 µs ticks (from the previous received packet, or from the reference
    /// time for the first); `None`: not received.
    pub delta: Option<i16>,
}

/// A parsed transport-cc feedback message. Reuse one across calls: parsing clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feedback {
    /// SSRC of the feedback's sender.
    pub sender_ssrc: u32,
    /// SSRC of the media source (unused by the protocol, kept for logs).
    pub media_ssrc: u32,
    /// Transport-wide sequence number of the first status (wire, 16 bits).
    pub base_seq: u16,
    /// 24-bit reference time in 64 ms units.
    pub reference_time: u32,
    /// The feedback's own counter (wraps at 256).
    pub fb_count: u8,
    /// One status per packet from `base_seq` on.
    pub statuses: Vec<Status>,
}

/// Why a feedback message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    #[error("shorter than its fixed fields or its length field")]
    Truncated,
    #[error("not RTCP version 2, payload type 205, format 15")]
    NotTransportCc,
    #[error("padding larger than the packet")]
    BadPadding,
    #[error("packet status count {0} is over the limit")]
    TooManyStatuses(u16),
    #[error("packet chunks end before the status count is reached")]
    MissingChunks,
    #[error("a status uses the reserved symbol")]
    ReservedSymbol,
    #[error("receive deltas end before the statuses that need them")]
    MissingDeltas,
}

/// Most statuses one feedback may carry: far over what a browser sends (tens to hundreds,
/// every 50–100 ms), and it bounds the work and memory a hostile 20-byte packet can cause.
pub const MAX_STATUSES: u16 = 8192;

/// A status before its delta is read: 0 not received, 1 small delta, 2 large delta.
fn placeholder(symbol: u8) -> Status {
    Status {
        delta: match symbol {
            0 => None,
            1 => Some(0),
            _ => Some(1),
        },
    }
}

/// Parses one RTCP transport-cc feedback packet (the whole RTCP packet: header, SSRCs, FCI; a
/// compound must be split first) into `fb`. Bytes after the length field's end are ignored.
pub fn parse_feedback(buf: &[u8], fb: &mut Feedback) -> Result<(), FeedbackError> {
    fb.statuses.clear();
    if buf.len() < 20 {
        return Err(FeedbackError::Truncated);
    }
    let (version, padding, fmt, pt) = (buf[0] >> 6, buf[0] & 0x20 != 0, buf[0] & 0x1f, buf[1]);
    if version != 2 || fmt != 15 || pt != 205 {
        return Err(FeedbackError::NotTransportCc);
    }
    let words = usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1;
    let mut len = words * 4;
    if len > buf.len() || len < 20 {
        return Err(FeedbackError::Truncated);
    }
    if padding {
        let pad = usize::from(buf[len - 1]);
        if pad == 0 || pad > len - 20 {
            return Err(FeedbackError::BadPadding);
        }
        len -= pad;
    }
    let buf = &buf[..len];
    let be32 = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    fb.sender_ssrc = be32(4);
    fb.media_ssrc = be32(8);
    fb.base_seq = u16::from_be_bytes([buf[12], buf[13]]);
    let count = u16::from_be_bytes([buf[14], buf[15]]);
    fb.reference_time = be32(16) >> 8;
    fb.fb_count = buf[19];
    if count > MAX_STATUSES {
        return Err(FeedbackError::TooManyStatuses(count));
    }
    let count = usize::from(count);
    // First the symbols, as placeholder deltas (small = Some(0), large = Some(1)); then the
    // delta section fills them in.
    fb.statuses.reserve(count);
    let mut at = 20;
    while fb.statuses.len() < count {
        let Some(chunk) = buf.get(at..at + 2) else {
            return Err(FeedbackError::MissingChunks);
        };
        let chunk = u16::from_be_bytes([chunk[0], chunk[1]]);
        at += 2;
        let left = count - fb.statuses.len();
        if chunk & 0x8000 == 0 {
            let symbol = ((chunk >> 13) & 0b11) as u8;
            let run = usize::from(chunk & 0x1fff).min(left);
            if symbol == 3 && run > 0 {
                return Err(FeedbackError::ReservedSymbol);
            }
            let status = placeholder(symbol);
            fb.statuses.extend(std::iter::repeat_n(status, run));
        } else if chunk & 0x4000 == 0 {
            for bit in (14 - left.min(14)..14).rev() {
                fb.statuses.push(placeholder(((chunk >> bit) & 1) as u8));
            }
        } else {
            for pair in (7 - left.min(7)..7).rev() {
                let symbol = ((chunk >> (pair * 2)) & 0b11) as u8;
                if symbol == 3 {
                    return Err(FeedbackError::ReservedSymbol);
                }
                fb.statuses.push(placeholder(symbol));
            }
        }
    }
    for status in &mut fb.statuses {
        match status.delta {
            None => {}
            Some(0) => {
                let b = *buf.get(at).ok_or(FeedbackError::MissingDeltas)?;
                at += 1;
                status.delta = Some(i16::from(b));
            }
            Some(_) => {
                let b = buf.get(at..at + 2).ok_or(FeedbackError::MissingDeltas)?;
                at += 2;
                status.delta = Some(i16::from_be_bytes([b[0], b[1]]));
            }
        }
    }
    Ok(())
}

/// How [`write_feedback`] packs statuses into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Run-length chunks only.
    RunLength,
    /// One-bit status vectors (14 statuses) where the next 14 have no large delta, two-bit
    /// vectors (7) otherwise: what browsers send for steady media.
    Vectors,
    /// Two-bit status vectors only.
    TwoBit,
}

/// Writes one transport-cc feedback packet (header, SSRCs, FCI, padded to a word) to `out`:
/// statuses from `base_seq` on, deltas in 250 µs ticks, `reference` in 64 ms units (24 bits).
/// The receiving side of what [`parse_feedback`] reads; the load tester's count-only viewers
/// send it (a browser's feedback, at the same rate, without decrypting the media).
#[allow(clippy::too_many_arguments)]
pub fn write_feedback(
    out: &mut Vec<u8>,
    sender_ssrc: u32,
    media_ssrc: u32,
    base_seq: u16,
    reference: u32,
    fb_count: u8,
    statuses: &[Option<i16>],
    chunking: Chunking,
) {
    let symbol = |s: &Option<i16>| match s {
        None => 0u16,
        Some(d) if (0..=255).contains(d) => 1,
        Some(_) => 2,
    };
    let start = out.len();
    out.extend_from_slice(&[0x80 | 15, 205, 0, 0]);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
    out.extend_from_slice(&base_seq.to_be_bytes());
    out.extend_from_slice(&(statuses.len() as u16).to_be_bytes());
    out.extend_from_slice(&(((reference & 0x00FF_FFFF) << 8) | u32::from(fb_count)).to_be_bytes());
    let mut i = 0;
    while i < statuses.len() {
        let rest = &statuses[i..];
        let one_bit_ok = rest.iter().take(14).all(|s| symbol(s) < 2);
        let chunk = match chunking {
            Chunking::RunLength => {
                let s = symbol(&rest[0]);
                let run = rest
                    .iter()
                    .take(0x1fff)
                    .take_while(|x| symbol(x) == s)
                    .count();
                i += run;
                (s << 13) | run as u16
            }
            Chunking::Vectors if one_bit_ok => {
                let mut c = 0x8000;
                for (k, s) in rest.iter().take(14).enumerate() {
                    c |= symbol(s) << (13 - k);
                }
                i += 14;
                c
            }
            Chunking::Vectors | Chunking::TwoBit => {
                let mut c = 0xc000;
                for (k, s) in rest.iter().take(7).enumerate() {
                    c |= symbol(s) << (12 - 2 * k);
                }
                i += 7;
                c
            }
        };
        out.extend_from_slice(&chunk.to_be_bytes());
    }
    for s in statuses {
        match (symbol(s), s) {
            (1, Some(d)) => out.push(*d as u8),
            (2, Some(d)) => out.extend_from_slice(&d.to_be_bytes()),
            _ => {}
        }
    }
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

#[cfg(test)]
#[path = "twcc_tests.rs"]
pub(crate) mod tests;
