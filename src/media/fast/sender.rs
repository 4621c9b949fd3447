//! A subscriber's send state on the fast path: keys, nominated pair, per-m-line streams,
//! transport-wide numbering, and the sender reports that carry each stream's RTP/NTP mapping;
//! video through the pacer (`paced`), retransmissions answering its NACKs (`resend`).

use super::clock::Now;
use super::control::Control;
use super::grid::Grid;
use super::history::{RtxSequencer, SeqMap};
use super::ice::{Nomination, Pair};
use super::keys::{self, KeySlot};
use super::pacer::Pacer;
use super::pool;
use super::reports::Reports;
use super::rtcp_in::RtcpIn;
use super::rtp_out::{self, ExtIds, Header, Template};
use super::srtp::{Sealer, RTCP_OVERHEAD, RTP_OVERHEAD};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::net::{Protocol, Transmit};
use str0m::Rtc;

mod feedback;
mod paced;
mod prefetch;
mod resend;
mod streams;

pub use feedback::Received;
use paced::Held;
pub use paced::Out;

/// How often each stream's sender report goes out (str0m's video default; audio shares it
/// so one compound carries them all).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// NTP seconds at the sender's epoch. The sans-IO core reads no wall clock; receivers use
/// the NTP field only relative to the same sender's other streams (lip sync) and to their
/// own reports' echo (round trip), so a fixed base is enough.
const NTP_BASE_SECS: u64 = 0xEC00_0000;
/// The most streams one compound reports on (each sender report is 28 bytes; a subscriber
/// has a few dozen m-lines at most, and the compound must stay one datagram).
const MAX_REPORTS: usize = 40;

/// Bytes of one padding packet's payload (the most one count byte can say).
const PAD_BYTES: usize = 255;
/// Most padding packets one call sends (~125 kbit/s more per 50 ms tick at most beyond it
/// is left for the next tick).
const MAX_PAD_PACKETS: usize = 25;
/// Padding makes up for at most this much past time (a late tick does not burst).
const PAD_WINDOW: Duration = Duration::from_millis(100);

/// One m-line's outgoing stream, kept in a small `Vec` the down-track holds an index into
/// (see `streams.rs`): no hash lookup per copy, and everything a copy reads in one place.
#[derive(Debug, Clone)]
struct StreamOut {
    /// The m-line: the key a slot index is checked against.
    mid: Mid,
    /// Its text (the first `mid_len` bytes), kept: `Mid`'s own `&str` is re-validated and
    /// trimmed on every use, a measurable share of a packet's cost.
    mid_text: [u8; 16],
    mid_len: u8,
    ssrc: u32,
    /// Payload type of its last packet (its RTX payload type follows from it).
    pt: u8,
    ids: ExtIds,
    /// Its header's fixed part, laid out once.
    template: Template,
    /// The last packet sent: its 64-bit timestamp, clock rate and when it was captured.
    last: Option<(u64, u32, Instant)>,
    packets: u32,
    octets: u32,
    /// Where its recent video packets came from, for NACKs (made on the first one).
    seqs: Option<SeqMap>,
}

/// Packets one video m-line's [`SeqMap`] remembers (9 bytes each): over a second of a
/// 2.5 Mbit/s layer, as long as the per-source history keeps their payloads.
const SEQ_MAP_PACKETS: usize = 512;

/// Where the keys stand.
enum Keys {
    /// DTLS has not finished.
    Waiting(KeySlot),
    /// Sealing.
    Ready(Sealer),
    /// A profile the fast path does not implement: the peer stays on str0m's path.
    Unsupported,
}

/// Whether a fast-path peer can be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Keys and nominated pair in place.
    Ready,
    /// DTLS or the nomination not there yet.
    Waiting,
    /// The handshake chose a profile this path cannot seal: str0m sends.
    Str0m,
}

/// What a packet to send says, beyond its payload.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// Payload type of the m-line.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// 64-bit sequence number (its high bits are the SRTP rollover counter).
    pub seq: u64,
    /// 64-bit RTP timestamp.
    pub time: u64,
    /// The clock the timestamp counts in.
    pub clock_rate: u32,
    /// When its publisher captured it, on our clock (`lipsync`): what the sender report
    /// pairs with `time`, not when we send it.
    pub captured: Instant,
    /// For video: its source (layer) and the source's sequence number, so that a NACK can
    /// find the payload in the per-source history.
    pub source: Option<(u8, u64)>,
}

/// A subscriber's fast-path send state.
pub struct FastSender {
    keys: Keys,
    /// Which pair `pair` is (see `ice.rs`).
    nomination: Nomination,
    pair: Option<Pair>,
    epoch: Instant,
    /// `epoch` in `clock::nanos`: a copy's time since it is one subtraction.
    epoch_ns: u64,
    /// Transport-wide numbering (its send register), feedback, NACKs, and the estimator
    /// when the room estimates bandwidth.
    control: Control,
    /// One per m-line that has sent (bounded by the peer's SDP); each down-track keeps its
    /// stream's index ([`Self::send`]'s `slot`).
    streams: Vec<StreamOut>,
    /// Sender reports and the estimator's ticks are on the room's grid (see `grid.rs`).
    next_report: Instant,
    grid: Grid,
    /// What media and padding together should reach, in bits per second, so the estimate can
    /// see whether the path carries the next layer (the allocation sets it).
    pad_to: u64,
    /// Media bytes sent since padding was last topped up.
    sent_since_pad: usize,
    last_pad: Instant,
    /// Numbering of the RTX stream padding is sent on.
    rtx_seq: RtxSequencer,
    /// RTP packets sealed and handed out.
    pub rtp_sent: u64,
    /// RTCP compounds sealed and handed out.
    pub rtcp_sent: u64,
    /// Retransmissions (RTX) among `rtp_sent`.
    pub rtx_sent: u64,
    /// Paces video at the estimate once there is one (audio is charged, never held).
    pacer: Option<Box<Pacer<Held>>>,
    /// Video packets the pacer held, and those it dropped (queue full or too old).
    pub paced: u64,
    pub pace_dropped: u64,
    /// Receive statistics of what the peer publishes, and the receiver reports toward it
    /// (str0m's are silenced with its sender reports).
    pub reports: Reports,
    /// Its SRTCP, opened once for every reader (str0m gets none of it once keyed).
    pub rtcp_in: RtcpIn,
    /// Keyframe requests (media SSRC, kind) from its PLI/FIR, for the router to route.
    keyframes: Vec<(u32, KeyframeRequestKind)>,
}

impl FastSender {
    /// A sender for the `Rtc` whose keys land in `slot`, with its ICE credentials and local
    /// candidates (protocol, address, priority); with `estimate_from` (bits per second) it
    /// runs its own bandwidth estimation from there.
    pub fn new(
        rtc: &mut Rtc,
        candidates: Vec<(Protocol, SocketAddr, u32)>,
        slot: KeySlot,
        estimate_from: Option<u64>,
        now: Instant,
    ) -> Self {
        let creds = rtc.direct_api().local_ice_credentials();
        FastSender {
            keys: Keys::Waiting(slot),
            nomination: Nomination::new(creds, candidates),
            pair: None,
            epoch: now,
            epoch_ns: Now::of(now).ns,
            control: Control::new(estimate_from, now),
            streams: Vec::new(),
            next_report: now + REPORT_EVERY,
            grid: Grid::new(now),
            pad_to: 0,
            sent_since_pad: 0,
            last_pad: now,
            rtx_seq: RtxSequencer::new(rand::random::<u16>() >> 1),
            rtp_sent: 0,
            rtcp_sent: 0,
            rtx_sent: 0,
            pacer: None,
            paced: 0,
            pace_dropped: 0,
            reports: Reports::new(now),
            rtcp_in: RtcpIn::default(),
            keyframes: Vec::new(),
        }
    }

    /// Takes what the lean path reads of one datagram from the peer: its SRTCP (opened once
    /// here; see [`Received`]) and the nomination of the pair to send on (STUN, which str0m
    /// still gets).
    pub fn on_receive(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        now: Instant,
    ) -> Received {
        if super::rtcp_in::is_rtcp(contents) {
            return self.on_rtcp(contents, now);
        }
        // STUN starts with 0b00 (RFC 7983); RTP, RTCP and DTLS never do.
        if contents.first().is_some_and(|b| *b <= 3) {
            let p = keys::provider();
            let hmac = |k: &[u8], parts: &[&[u8]]| p.sha1_hmac_provider.sha1_hmac(k, parts);
            let n = &mut self.nomination;
            if let Some(pair) = n.on_stun(contents, proto, source, destination, now, hmac) {
                if self.pair != Some(pair) {
                    tracing::debug!(?proto, %source, %destination, "lean path: pair nominated");
                }
                self.pair = Some(pair);
            }
        }
        Received::default()
    }

    /// Our ICE credentials after a negotiation: new ones (an ICE restart) make the next
    /// nomination under them the pair, whatever it is.
    pub fn follow_ice_credentials(&mut self, rtc: &mut Rtc) {
        self.nomination
            .restart(rtc.direct_api().local_ice_credentials());
    }

    /// The downlink estimate in bits per second, when this sender estimates.
    pub fn estimate(&self) -> Option<u64> {
        self.control.estimate()
    }

    /// The acknowledged rate in bits per second, when this sender estimates.
    pub fn delivered(&self) -> Option<u64> {
        self.control.delivered()
    }

    /// Whether the estimate climbs back after a cut the path has not confirmed.
    pub fn recovering(&self) -> bool {
        self.control.recovering()
    }

    /// Feedback messages applied so far (none without estimation).
    pub fn feedbacks(&self) -> u64 {
        self.control.feedbacks
    }

    /// Puts its periodic work on the room's `grid`, so that it shares the room's wakes.
    pub fn align(&mut self, grid: Grid, now: Instant) {
        self.grid = grid;
        self.next_report = grid.first(now, REPORT_EVERY);
        self.control.align(grid, now);
        self.reports.align(grid, now);
    }

    /// When this sender wants time next: its reports, and its estimator's tick (every tick
    /// only while it pads).
    pub fn next_wake(&self) -> Instant {
        let wake = match self.control.next_tick(self.pad_to > 0) {
            Some(tick) => self.next_report.min(tick),
            None => self.next_report,
        };
        let wake = match self.pacer.as_deref().and_then(Pacer::next_wake) {
            Some(paced) => wake.min(paced),
            None => wake,
        };
        self.reports.next_report().map_or(wake, |r| wake.min(r))
    }

    /// Time passes for the estimator; returns whether it was ticked.
    pub fn tick(&mut self, now: Instant) -> bool {
        // Before the keys nothing is sent and no feedback can come: the estimate waits.
        let keyed = matches!(self.keys, Keys::Ready(_));
        let ticked = self.control.tick(now, keyed);
        if ticked {
            self.follow_estimate(now);
        }
        ticked
    }

    /// The pair media goes to, once nominated.
    pub fn pair(&self) -> Option<Pair> {
        self.pair
    }

    /// Whether this path can send now, must wait, or leaves sending to str0m.
    #[inline]
    pub fn state(&mut self) -> State {
        // Asked per copy: only a sender still waiting for its keys looks for them.
        if matches!(self.keys, Keys::Waiting(_)) {
            self.poll_keys();
        }
        match self.keys {
            Keys::Ready(_) if self.pair.is_some() => State::Ready,
            Keys::Unsupported => State::Str0m,
            _ => State::Waiting,
        }
    }

    fn poll_keys(&mut self) {
        let Keys::Waiting(slot) = &self.keys else {
            return;
        };
        let Some(keying) = slot.get() else {
            return;
        };
        let reporter = self.reporter_ssrc();
        self.keys = match Sealer::new(&keys::provider(), keying, reporter) {
            Ok(s) => {
                // Same keys, same profile: if it seals, it opens.
                if let Err(e) = self.rtcp_in.keyed(keying) {
                    tracing::warn!(error = %e, "lean SRTCP opening unavailable; str0m reads it");
                }
                tracing::debug!(profile = ?keying.profile, "lean path: keys ready");
                Keys::Ready(s)
            }
            Err(e) => {
                // No feedback is ever opened, so the estimator never starts (nor decays).
                tracing::info!(error = %e, "fast send path unavailable; str0m sends");
                Keys::Unsupported
            }
        };
    }

    /// Rewrites, seals and addresses one packet for the m-line `mid`; `None` until ready or
    /// when the m-line has no send stream. `slot` is the caller's memory of where `mid`'s
    /// stream is kept (any value at first; checked, and corrected when stale).
    pub fn send(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        slot: &mut u32,
        pkt: Packet,
        payload: &[u8],
        now: Now,
    ) -> Option<Transmit> {
        let pair = self.pair?;
        if !matches!(self.keys, Keys::Ready(_)) {
            return None;
        }
        let i = self.stream_slot(rtc, mid, *slot, pkt.pt)?;
        *slot = i as u32;
        let Keys::Ready(sealer) = &mut self.keys else {
            return None;
        };
        let stream = &mut self.streams[i];
        // One clock reading relative to the epoch serves abs-send-time and the register.
        let since = now.since(self.epoch_ns);
        let header = Header {
            pt: pkt.pt,
            marker: pkt.marker,
            seq: pkt.seq as u16,
            timestamp: pkt.time as u32,
            ssrc: stream.ssrc,
            mid: &stream.mid_text[..usize::from(stream.mid_len)],
            twcc_seq: self.control.next_seq() as u16,
            since_epoch: since,
        };
        let mut buf = pool::take(12 + 16 + payload.len() + RTP_OVERHEAD);
        stream.template.write(&mut buf, &header);
        sealer.seal_rtp(&mut buf, payload, stream.ssrc, pkt.seq);
        if stream.ids.twcc.is_some() {
            self.control.on_send_since(since, buf.len());
        }
        if let Some((layer, source_seq)) = pkt.source {
            stream
                .seqs
                .get_or_insert_with(|| SeqMap::new(SEQ_MAP_PACKETS))
                .record(pkt.seq, layer, source_seq, pkt.time as u32);
        }
        stream.pt = pkt.pt;
        stream.last = Some((pkt.time, pkt.clock_rate, pkt.captured));
        self.sent_since_pad = self.sent_since_pad.saturating_add(buf.len());
        stream.packets = stream.packets.wrapping_add(1);
        stream.octets = stream.octets.wrapping_add(payload.len() as u32);
        self.rtp_sent += 1;
        Some(transmit(pair, buf))
    }

    /// Sets the rate media plus padding should reach (0: no padding).
    pub fn set_padding(&mut self, bps: u64) {
        self.pad_to = bps;
    }

    /// Padding for the time since the last call: RTP padding-only packets on a video
    /// m-line's RTX stream, filling media up to the lesser of the padding target and the
    /// estimate (padding past the estimate would only congest). Nothing without an estimator
    /// or an RTX stream. At most `MAX_PAD_PACKETS` per call.
    pub fn pad(&mut self, rtc: &mut Rtc, now: Instant, out: &mut Vec<Transmit>) {
        let last = std::mem::replace(&mut self.last_pad, now);
        let sent = std::mem::take(&mut self.sent_since_pad);
        // No target (nothing to probe toward): asked every tick, it costs no more than this.
        if self.pad_to == 0 {
            return;
        }
        let dt = now.saturating_duration_since(last).min(PAD_WINDOW);
        let Some(pair) = self.pair else {
            return;
        };
        let c = &mut self.control;
        let Keys::Ready(sealer) = &mut self.keys else {
            return;
        };
        let Some(estimate) = c.estimate() else {
            return;
        };
        let rate = self.pad_to.min(estimate);
        let budget = (rate as f64 * dt.as_secs_f64() / 8.0) as usize;
        let mut deficit = budget.saturating_sub(sent);
        if deficit < PAD_BYTES {
            return;
        }
        // A video stream that has sent and has an RTX stream with a payload type.
        let found = self.streams.iter().find_map(|s| {
            let (time, _, _) = s.last?;
            let rtx_pt = rtc.codec_config().find(|p| *p.pt() == s.pt)?.resend()?;
            let rtx = *rtc.direct_api().stream_tx_by_mid(s.mid, None)?.rtx()?;
            Some((s.mid, s.ids, time, *rtx_pt, rtx))
        });
        let Some((mid, ids, time, rtx_pt, rtx)) = found else {
            return;
        };
        let mut payload = [0u8; PAD_BYTES];
        payload[PAD_BYTES - 1] = PAD_BYTES as u8;
        for _ in 0..MAX_PAD_PACKETS {
            if deficit < PAD_BYTES {
                break;
            }
            let seq = self.rtx_seq.next_seq();
            let header = Header {
                pt: rtx_pt,
                marker: false,
                seq: seq as u16,
                timestamp: time as u32,
                ssrc: rtx,
                mid: mid.as_bytes(),
                twcc_seq: c.next_seq() as u16,
                since_epoch: now.saturating_duration_since(self.epoch),
            };
            let mut buf = Vec::with_capacity(12 + 16 + PAD_BYTES + RTP_OVERHEAD);
            rtp_out::write(&mut buf, &header, &ids);
            buf[0] |= 0x20; // P: the payload is all padding, its last byte the count
            sealer.seal_rtp(&mut buf, &payload, rtx, seq);
            c.on_send(now, buf.len());
            deficit = deficit.saturating_sub(buf.len());
            self.rtp_sent += 1;
            out.push(transmit(pair, buf));
        }
    }

    /// When the next sender report is due.
    pub fn next_report(&self) -> Instant {
        self.next_report
    }

    /// The sender reports, when due: one compound headed by the reporter's empty receiver
    /// report (the SRTCP nonce rule), then a sender report per stream that has sent.
    pub fn poll_report(&mut self, now: Instant) -> Option<Transmit> {
        if now < self.next_report {
            return None;
        }
        self.next_report = self.grid.next(self.next_report, now, REPORT_EVERY);
        let pair = self.pair?;
        let Keys::Ready(sealer) = &mut self.keys else {
            return None;
        };
        let mut c = Vec::with_capacity(8 + 28 * 4 + RTCP_OVERHEAD);
        c.extend_from_slice(&[0x80, 201, 0, 1]);
        c.extend_from_slice(&sealer.reporter().to_be_bytes());
        let ntp = ntp_at(now.saturating_duration_since(self.epoch));
        let mut reports = 0;
        for s in &self.streams {
            let Some((time, rate, at)) = s.last else {
                continue;
            };
            if reports == MAX_REPORTS {
                break;
            }
            reports += 1;
            let rtp = rtp_at(time, rate, now.saturating_duration_since(at));
            c.extend_from_slice(&[0x80, 200, 0, 6]);
            c.extend_from_slice(&s.ssrc.to_be_bytes());
            c.extend_from_slice(&ntp.to_be_bytes());
            c.extend_from_slice(&(rtp as u32).to_be_bytes());
            c.extend_from_slice(&s.packets.to_be_bytes());
            c.extend_from_slice(&s.octets.to_be_bytes());
        }
        if reports == 0 {
            return None;
        }
        let sealed = seal_report(sealer, pair, c, "sender");
        self.rtcp_sent += u64::from(sealed.is_some());
        sealed
    }
}

impl FastSender {
    /// The receiver report toward what the peer publishes, when due: the reporter's own
    /// receiver report heads the compound (the SRTCP nonce rule), with a block per source.
    pub fn poll_receiver_report(&mut self, now: Instant) -> Option<Transmit> {
        if !self.reports.due(now) {
            return None;
        }
        let pair = self.pair?;
        let Keys::Ready(sealer) = &mut self.keys else {
            return None;
        };
        let mut c = Vec::with_capacity(8 + 24 * 4 + RTCP_OVERHEAD);
        if self.reports.write(sealer.reporter(), now, &mut c) == 0 {
            return None;
        }
        let sealed = seal_report(sealer, pair, c, "receiver");
        self.rtcp_sent += u64::from(sealed.is_some());
        sealed
    }
}

/// Seals a report compound toward `pair`; a compound that cannot be sealed (its SRTCP index
/// would wrap) is not sent, and said once in the log per report.
fn seal_report(sealer: &mut Sealer, pair: Pair, mut c: Vec<u8>, kind: &str) -> Option<Transmit> {
    match sealer.seal_rtcp(&mut c) {
        Ok(_) => Some(transmit(pair, c)),
        Err(e) => {
            tracing::warn!(error = %e, "{kind} report not sealed");
            None
        }
    }
}

/// The RTP time `since` after a packet stamped `time` was captured: media time runs with the
/// clock between packets, which is what makes the report's RTP/NTP pair one moment.
pub fn rtp_at(time: u64, clock_rate: u32, since: Duration) -> u64 {
    time + (since.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u64
}

/// 64-bit NTP time (seconds . fraction) `since` the sender's epoch.
pub fn ntp_at(since: Duration) -> u64 {
    let secs = NTP_BASE_SECS + since.as_secs();
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    secs << 32 | frac
}

fn transmit(pair: Pair, buf: Vec<u8>) -> Transmit {
    Transmit {
        proto: pair.proto,
        source: pair.local,
        destination: pair.remote,
        contents: buf.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NTP as seconds since the epoch, back from the 32.32 fixed point.
    fn secs(ntp: u64) -> f64 {
        (ntp >> 32) as f64 - NTP_BASE_SECS as f64 + (ntp & 0xFFFF_FFFF) as f64 / 4_294_967_296.0
    }

    #[test]
    fn report_pairs_rtp_and_ntp_of_the_same_moment_within_a_millisecond() {
        // Video at 90 kHz, last packet stamped 900_000 sent 2.5 s after the epoch; report
        // at 3.25 s: RTP must have advanced by 0.75 s of clock, NTP read 3.25 s.
        let sent = Duration::from_millis(2500);
        let report = Duration::from_millis(3250);
        let rtp = rtp_at(900_000, 90_000, report - sent);
        assert_eq!(rtp, 900_000 + 67_500);
        assert!((secs(ntp_at(report)) - 3.25).abs() < 0.001);
        // Audio at 48 kHz over a sub-millisecond gap stays on the sample.
        assert_eq!(rtp_at(480, 48_000, Duration::from_micros(500)), 504);
        // Both streams of a sender map the same moment to the same NTP: lip sync.
        let a = secs(ntp_at(Duration::from_nanos(1_234_567_890)));
        assert!((a - 1.234_567_890).abs() < 1e-6);
    }
}
