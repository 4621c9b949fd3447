//! Transport-wide feedback from a viewer that does not decrypt what it receives.
//!
//! A count-only viewer (`ClientCore::set_decrypt(false)`) never hands its RTP to str0m, so
//! str0m never learns what arrived and sends no transport-cc feedback; a browser sends it for
//! every packet, every 50 ms at video rates. Without it a load test leaves out the server's feedback work
//! per subscriber (SRTCP opening, parsing, the send register, the estimator): at 1 → 100 that
//! was 8–10 % of the server's forwarding per CPU-second. This viewer reads the transport-wide
//! sequence number from each packet's clear header extension, stamps it with the kernel's
//! arrival time, and every [`INTERVAL`] sends one feedback packet sealed with the SRTCP keys its
//! own DTLS exported (`keys::build_tapped`).
//!
//! SRTCP nonces: str0m seals this viewer's other RTCP with the same key and an index counter
//! of its own; the GCM nonce takes the SSRC of a compound's first packet, so every compound
//! sealed here starts with `reporter`, a random SSRC str0m does not choose for its streams
//! (a one in four billion chance that it does, per viewer: a test tool's risk, not a product's).

use crate::media::fast::keys::{self, KeySlot};
use crate::media::fast::srtp::Sealer;
use crate::media::fast::twcc::{write_feedback, Chunking};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::net::{Protocol, Transmit};

/// How often feedback is sent: str0m's interval, and Chrome's at video rates (it sends 5 % of
/// the estimate in feedback, every 50 to 250 ms).
pub const INTERVAL: Duration = Duration::from_millis(50);
/// Arrivals held between two feedback packets; a full list is sent at once. At 50 ms that is
/// 160 Mbit/s of 1,000-byte packets, far over any test shape.
const MAX_PENDING: usize = 1024;
/// Most statuses one feedback covers (older ones are left out), whatever the sequence gaps.
const MAX_SPAN: u64 = 4096;
/// RFC 8285 header extension profiles: one-byte and two-byte elements.
const ONE_BYTE: u16 = 0xBEDE;
const TWO_BYTE_MASK: u16 = 0xFFF0;
const TWO_BYTE: u16 = 0x1000;

/// One viewer's feedback state.
pub struct TwccFeedback {
    keys: KeySlot,
    sealer: Option<Sealer>,
    /// The keys cannot seal feedback: arrivals are no longer noted.
    unsealable: bool,
    reporter: u32,
    /// The negotiated id of the transport-wide sequence extension, once known.
    ext_id: Option<u8>,
    /// The first arrival's time (the clock of a simulated client is its own).
    epoch: Option<Instant>,
    /// (64-bit transport-wide sequence, arrival in µs since `epoch`) since the last feedback.
    pending: Vec<(u64, i64)>,
    last_seq: Option<u64>,
    media_ssrc: u32,
    server: Option<SocketAddr>,
    fb_count: u8,
    next: Instant,
    statuses: Vec<Option<i16>>,
}

impl TwccFeedback {
    /// Feedback sealed with the keys that land in `keys`.
    pub fn new(keys: KeySlot) -> Self {
        TwccFeedback {
            keys,
            sealer: None,
            unsealable: false,
            reporter: rand::random::<u32>().max(1),
            ext_id: None,
            epoch: None,
            pending: Vec::new(),
            last_seq: None,
            media_ssrc: 0,
            server: None,
            fb_count: 0,
            next: Instant::now(),
            statuses: Vec::new(),
        }
    }

    /// Whether the extension's id is known.
    pub fn has_ext_id(&self) -> bool {
        self.ext_id.is_some()
    }

    /// The negotiated id (one-byte or two-byte form).
    pub fn set_ext_id(&mut self, id: Option<u8>) {
        self.ext_id = id;
    }

    /// Notes one RTP packet (clear header) from `server` that arrived at `arrived`; `true`
    /// when the list is full and feedback should go now.
    pub fn on_rtp(&mut self, d: &[u8], server: SocketAddr, arrived: Instant) -> bool {
        if self.unsealable {
            return false;
        }
        let Some(seq16) = self.ext_id.and_then(|id| transport_seq(d, id)) else {
            return false;
        };
        if self.pending.len() >= MAX_PENDING {
            // Left out: the feedback due at once reports it lost, as a browser would.
            return true;
        }
        let seq = super::super::seq::extend_seq(self.last_seq, seq16);
        self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.next = arrived + INTERVAL;
            arrived
        });
        let at = arrived.saturating_duration_since(epoch).as_micros() as i64;
        self.pending.push((seq, at));
        self.media_ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        self.server = Some(server);
        self.pending.len() >= MAX_PENDING
    }

    /// When feedback is next due, if anything waits for it.
    pub fn next_due(&self) -> Option<Instant> {
        (!self.pending.is_empty()).then_some(self.next)
    }

    /// The feedback packet for what arrived since the last one, sealed, if it is due (or
    /// `force`) and the keys are known.
    pub fn poll(&mut self, local: SocketAddr, now: Instant, force: bool) -> Option<Transmit> {
        if self.pending.is_empty() || (!force && now < self.next) {
            return None;
        }
        self.next = now + INTERVAL;
        if self.sealer.is_none() {
            let keying = self.keys.get()?;
            let Ok(sealer) = Sealer::new(&keys::provider(), keying, self.reporter) else {
                // Keys no sealer takes (material of the wrong length): this viewer sends no
                // feedback, so it stops noting arrivals rather than retrying every interval.
                self.unsealable = true;
                self.pending.clear();
                return None;
            };
            self.sealer = Some(sealer);
        }
        let server = self.server?;
        let mut compound = self.write();
        let sealer = self.sealer.as_mut()?;
        sealer.seal_rtcp(&mut compound).ok()?;
        Some(Transmit {
            proto: Protocol::Udp,
            source: local,
            destination: server,
            contents: compound.into(),
        })
    }

    /// The clear feedback packet for the pending arrivals; empties them.
    fn write(&mut self) -> Vec<u8> {
        // A duplicate keeps its first arrival.
        self.pending.sort_unstable();
        self.pending.dedup_by_key(|&mut (seq, _)| seq);
        let last = self.pending.last().map_or(0, |p| p.0);
        let keep_from = last.saturating_sub(MAX_SPAN - 1);
        let first_kept = self.pending.partition_point(|p| p.0 < keep_from);
        let arrivals = &self.pending[first_kept..];
        let (base, first_at) = arrivals.first().copied().unwrap_or_default();
        // The reference is the first arrival floored to 64 ms, so its own delta is 0..256 ticks.
        let reference = first_at.div_euclid(64_000);
        let mut prev_ticks = reference * 256;
        self.statuses.clear();
        let mut next_seq = base;
        for &(seq, at) in arrivals {
            self.statuses
                .extend(std::iter::repeat_n(None, (seq - next_seq) as usize));
            let ticks = at.div_euclid(250);
            let delta = (ticks - prev_ticks).clamp(i64::from(i16::MIN), i64::from(i16::MAX));
            self.statuses.push(Some(delta as i16));
            prev_ticks = ticks;
            next_seq = seq + 1;
        }
        self.pending.clear();
        let mut out = Vec::with_capacity(32 + self.statuses.len() * 2);
        // Its own header (the reporter) is the compound's first packet: see the module doc.
        write_feedback(
            &mut out,
            self.reporter,
            self.media_ssrc,
            base as u16,
            reference as u32,
            self.fb_count,
            &self.statuses,
            Chunking::Vectors,
        );
        self.fb_count = self.fb_count.wrapping_add(1);
        out
    }
}

/// The transport-wide sequence number in an RTP packet's header extension `id`, if present
/// (RFC 8285, one-byte or two-byte elements; the header itself is in the clear under SRTP).
fn transport_seq(d: &[u8], id: u8) -> Option<u16> {
    if d.len() < 12 || d[0] & 0x10 == 0 {
        return None;
    }
    let at = 12 + 4 * usize::from(d[0] & 0x0f);
    let head = d.get(at..at + 4)?;
    let profile = u16::from_be_bytes([head[0], head[1]]);
    let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let ext = d.get(at + 4..at + 4 + 4 * words)?;
    let two_byte = profile & TWO_BYTE_MASK == TWO_BYTE;
    if profile != ONE_BYTE && !two_byte {
        return None;
    }
    let mut i = 0;
    while i < ext.len() {
        let b = ext[i];
        // A zero byte is padding in either form.
        if b == 0 {
            i += 1;
            continue;
        }
        let (el_id, len, body) = if two_byte {
            (b, usize::from(*ext.get(i + 1)?), i + 2)
        } else if b >> 4 == 15 {
            return None;
        } else {
            (b >> 4, usize::from(b & 0x0f) + 1, i + 1)
        };
        let value = ext.get(body..body + len)?;
        if el_id == id && len == 2 {
            return Some(u16::from_be_bytes([value[0], value[1]]));
        }
        i = body + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fast::rtp_out::{self, ExtIds, Header};
    use crate::media::fast::twcc::{parse_feedback, Feedback};

    #[test]
    fn the_sequence_number_is_read_from_the_header_the_server_writes() {
        let ids = ExtIds {
            mid: Some(4),
            twcc: Some(3),
            abs_send_time: Some(2),
        };
        let h = Header {
            pt: 96,
            marker: false,
            seq: 7,
            timestamp: 1,
            ssrc: 0x0102_0304,
            mid: b"12",
            twcc_seq: 4242,
            since_epoch: Duration::from_millis(5),
        };
        let mut out = vec![];
        rtp_out::write(&mut out, &h, &ids);
        out.extend_from_slice(&[0xAA; 40]);
        assert_eq!(transport_seq(&out, 3), Some(4242));
        assert_eq!(transport_seq(&out, 5), None, "an id not in the header");
        // Two-byte elements: padding, then id 3 with two bytes.
        let mut two = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        two.extend_from_slice(&[0x10, 0x00, 0, 2, 0, 3, 2, 0x12, 0x34, 0, 0, 0]);
        assert_eq!(transport_seq(&two, 3), Some(0x1234));
        // Lengths past the end are refused, never read.
        two[15] = 9;
        assert_eq!(transport_seq(&two, 3), None);
        assert_eq!(transport_seq(&[0x90, 96, 0, 1], 3), None);
    }

    #[test]
    fn feedback_reports_what_arrived_with_losses_and_parses() {
        let now = Instant::now();
        let mut fb = TwccFeedback::new(KeySlot::default());
        fb.set_ext_id(Some(3));
        let server: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let packet = |seq: u16| {
            let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
            p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x31]);
            p.extend_from_slice(&seq.to_be_bytes());
            p.push(0);
            p
        };
        // 65534, 65535, (0 lost), 1, then 65535 again (a duplicate), 5 ms apart.
        for (k, seq) in [65_534u16, 65_535, 1, 65_535].into_iter().enumerate() {
            let at = now + Duration::from_millis(70 + 5 * k as u64);
            assert!(!fb.on_rtp(&packet(seq), server, at));
        }
        assert_eq!(
            fb.next_due(),
            Some(now + Duration::from_millis(70) + INTERVAL)
        );
        let clear = fb.write();
        let mut parsed = Feedback::default();
        parse_feedback(&clear, &mut parsed).expect("parses");
        assert_eq!((parsed.base_seq, parsed.fb_count), (65_534, 0));
        assert_eq!(parsed.sender_ssrc, fb.reporter);
        assert_eq!(parsed.media_ssrc, 9);
        // The first arrival is the epoch: 0 ms; then 20 ticks (5 ms) each; the gap is lost.
        let deltas: Vec<Option<i16>> = parsed.statuses.iter().map(|s| s.delta).collect();
        assert_eq!(deltas, [Some(0), Some(20), None, Some(20)]);
        assert_eq!(parsed.reference_time, 0);
        assert_eq!(fb.next_due(), None, "emptied");
        // The next one: 200 ms after the epoch is reference 3 (192 ms) and 32 ticks.
        assert!(!fb.on_rtp(&packet(2), server, now + Duration::from_millis(270)));
        parse_feedback(&fb.write(), &mut parsed).expect("parses");
        assert_eq!((parsed.base_seq, parsed.fb_count), (2, 1));
        assert_eq!(parsed.reference_time, 3);
        assert_eq!(
            parsed.statuses,
            [crate::media::fast::twcc::Status { delta: Some(32) }]
        );
    }
}
