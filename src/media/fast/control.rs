//! A lean subscriber's feedback: transport-cc feedback resolved against the send register (the
//! one source of transport-wide numbers) and fed to the estimator that drives its layer
//! allocation; NACKs queued for retransmission; the round trip from receiver reports. It reads
//! the packets of compounds `rtcp_in` opened (once, for everything that reads them).

use super::gcc::{Estimator, Gcc, GccConfig};
use super::grid::Grid;
use super::twcc::{self, Feedback, PacketResult, RegisterConfig, SendRegister};
use std::time::{Duration, Instant};

/// How often the estimator is told time passes without feedback (its contract: 25–100 ms).
pub const TICK_EVERY: Duration = Duration::from_millis(50);
/// RTCP packet type of transport-layer feedback (RFC 4585), and transport-cc's format.
const RTPFB: u8 = 205;
const FMT_TWCC: u8 = 15;
/// Generic NACK's format (RFC 4585 §6.2.1), and the receiver report's packet type.
const FMT_NACK: u8 = 1;
const RR: u8 = 201;
/// Most NACKed packets held between two polls; more are dropped (a receiver that lost more
/// than this in one round trip needs a keyframe, not retransmissions).
pub const MAX_NACKS: usize = 256;
/// The round trip assumed before a receiver report has measured one.
const DEFAULT_RTT: Duration = Duration::from_millis(100);

/// One subscriber's feedback loop.
pub struct Control {
    register: SendRegister,
    /// The estimator, when the room estimates bandwidth.
    gcc: Option<Gcc>,
    fb: Feedback,
    results: Vec<PacketResult>,
    /// The estimator's next tick, on the room's grid (see `grid.rs`).
    next_tick: Instant,
    grid: Grid,
    /// The sender's epoch: our sender reports' NTP times count from it.
    epoch: Instant,
    /// (media SSRC, wire sequence number) of packets the subscriber reported lost.
    nacks: Vec<(u32, u16)>,
    /// Round trip, from the subscriber's receiver reports on our sender reports.
    rtt: Option<Duration>,
    /// Feedback messages applied, and those that failed to parse.
    pub feedbacks: u64,
    pub refused: u64,
}

impl Control {
    /// A loop for a sender whose epoch is `now`; with `initial_bps` it estimates bandwidth
    /// starting from there. Estimator and register share that epoch: the register's send
    /// times are the estimator's (`Estimator::on_feedback`).
    pub fn new(initial_bps: Option<u64>, now: Instant) -> Self {
        let gcc = initial_bps.map(|bps| {
            let config = GccConfig {
                initial: super::gcc::Bitrate(bps),
                ..GccConfig::default()
            };
            Gcc::new(config, now)
        });
        Control {
            register: SendRegister::new(RegisterConfig::default(), now),
            gcc,
            fb: Feedback::default(),
            results: Vec::new(),
            next_tick: now + TICK_EVERY,
            grid: Grid::new(now),
            epoch: now,
            nacks: Vec::new(),
            rtt: None,
            feedbacks: 0,
            refused: 0,
        }
    }

    /// The transport-wide sequence number the next packet gets.
    pub fn next_seq(&self) -> u64 {
        self.register.next_seq()
    }

    /// Prefetches the send register's record for [`Self::next_seq`] (the fan-out's prefetch).
    #[inline]
    pub fn prefetch_next_record(&self) {
        self.register.prefetch_next();
    }

    /// A packet of `size` bytes numbered [`Self::next_seq`] left at `now`.
    pub fn on_send(&mut self, now: Instant, size: usize) {
        self.register.on_send(now, size);
    }

    /// [`Self::on_send`] given the time since this loop's epoch (the sender's own: the
    /// caller has it already).
    pub fn on_send_since(&mut self, since: Duration, size: usize) {
        self.register.on_send_since(since, size);
    }

    /// Takes one packet of an opened compound from the subscriber; returns whether it was
    /// transport-cc feedback that moved the estimator. NACKs it carries wait in
    /// [`Self::take_nacks`]. Other packets are not its business.
    pub fn on_packet(&mut self, packet: &[u8], now: Instant) -> bool {
        let Some(head) = packet.get(..4) else {
            return false;
        };
        if head[1] == RTPFB && head[0] & 0x1f == FMT_TWCC {
            match twcc::parse_feedback(packet, &mut self.fb) {
                Ok(()) => {
                    self.results.clear();
                    self.register.resolve(now, &self.fb, &mut self.results);
                    if let Some(gcc) = self.gcc.as_mut() {
                        gcc.on_feedback(now, &self.results);
                        self.feedbacks += 1;
                        return true;
                    }
                }
                Err(_) => self.refused += 1,
            }
        } else if head[1] == RTPFB && head[0] & 0x1f == FMT_NACK {
            parse_nack(packet, &mut self.nacks);
        } else if head[1] == RR {
            let since = now.saturating_duration_since(self.epoch);
            if let Some(rtt) = rtt_of(packet, ntp_mid32(since)) {
                self.rtt = Some(rtt);
            }
        }
        false
    }

    /// Whether it runs an estimator (the room estimates bandwidth).
    pub fn estimates(&self) -> bool {
        self.gcc.is_some()
    }

    /// Puts the ticks on the room's `grid` (from `now` on).
    pub fn align(&mut self, grid: Grid, now: Instant) {
        self.grid = grid;
        self.next_tick = grid.first(now, TICK_EVERY);
    }

    /// When the estimator wants time next; none while a tick would do nothing (no estimator,
    /// or no feedback yet: the first feedback's peer is visited at once, and ticks from there).
    /// Unless `every` (the sender pads, which it does on ticks), not before the tick that
    /// would find feedback missing: between feedbacks a tick changes nothing (the estimate
    /// moves on feedback, and the sender follows it there), and a browser sends feedback
    /// every 50–250 ms, so visiting every viewer every tick cost the room as much as the
    /// feedback did (issue 16: 6,000 visits a second at 1 → 300).
    pub fn next_tick(&self, every: bool) -> Option<Instant> {
        let gcc = self.gcc.as_ref().filter(|_| self.feedbacks > 0)?;
        if every {
            return Some(self.next_tick);
        }
        Some(self.next_tick.max(self.grid.ceil(gcc.silence_deadline())))
    }

    /// Time passes; returns whether the estimator was ticked. With `live` false (nothing can
    /// be sent yet) only the next tick moves on, so the estimate does not decay meanwhile.
    pub fn tick(&mut self, now: Instant, live: bool) -> bool {
        if now < self.next_tick {
            return false;
        }
        self.next_tick = self.grid.next(self.next_tick, now, TICK_EVERY);
        // Silence means a lost path only once feedback has been seen: a subscriber that never
        // sends any (transport-cc not negotiated) must not decay to the floor.
        let Some(gcc) = self.gcc.as_mut().filter(|_| live && self.feedbacks > 0) else {
            return false;
        };
        gcc.on_tick(now);
        true
    }

    /// The downlink estimate in bits per second, once feedback has been seen (before that,
    /// and for a subscriber that sends none, there is no budget: as on str0m's path).
    pub fn estimate(&self) -> Option<u64> {
        let gcc = self.gcc.as_ref().filter(|_| self.feedbacks > 0)?;
        Some(gcc.estimate().as_bps())
    }

    /// Whether the estimate climbs back after a cut the path has not confirmed (a stall).
    pub fn recovering(&self) -> bool {
        self.gcc.as_ref().is_some_and(Gcc::recovering)
    }

    /// What the subscriber acknowledged receiving lately, in bits per second: what the path
    /// has shown it carries, where the estimate may run up to 1.5 × past it.
    pub fn delivered(&self) -> Option<u64> {
        let gcc = self.gcc.as_ref().filter(|_| self.feedbacks > 0)?;
        gcc.acked().map(|r| r.as_bps())
    }

    /// Whether NACKs wait.
    pub fn has_nacks(&self) -> bool {
        !self.nacks.is_empty()
    }

    /// Moves the waiting NACKs, (media SSRC, wire sequence number), into `out`.
    pub fn take_nacks(&mut self, out: &mut Vec<(u32, u16)>) {
        out.append(&mut self.nacks);
    }

    /// The round trip: measured from receiver reports, else a typical one.
    pub fn rtt(&self) -> Duration {
        self.rtt.unwrap_or(DEFAULT_RTT)
    }
}

/// Appends a generic NACK's lost packets (RFC 4585 §6.2.1: PID and a bitmask of the 16
/// following) to `out`, up to [`MAX_NACKS`] held.
fn parse_nack(packet: &[u8], out: &mut Vec<(u32, u16)>) {
    let Some(ssrc) = packet.get(8..12) else {
        return;
    };
    let ssrc = u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]);
    for fci in packet[12..].chunks_exact(4) {
        let pid = u16::from_be_bytes([fci[0], fci[1]]);
        let mask = u16::from_be_bytes([fci[2], fci[3]]);
        let lost = std::iter::once(pid).chain(
            (0..16u16)
                .filter(|i| mask & 1 << i != 0)
                .map(|i| pid.wrapping_add(i + 1)),
        );
        for seq in lost {
            if out.len() == MAX_NACKS {
                return;
            }
            out.push((ssrc, seq));
        }
    }
}

/// The middle 32 bits of the NTP time `since` the sender's epoch (LSR's unit, 1/65536 s).
/// The sender's NTP base has zero low 16 bits of seconds, so they drop out here.
fn ntp_mid32(since: Duration) -> u32 {
    let frac = (u64::from(since.subsec_nanos()) << 16) / 1_000_000_000;
    ((since.as_secs() as u32) << 16) | frac as u32
}

/// The round trip a receiver report's first block that echoes a sender report gives
/// (RFC 3550 §6.4.1: now − LSR − DLSR), when it is positive and under 10 s.
fn rtt_of(packet: &[u8], now_mid32: u32) -> Option<Duration> {
    let count = usize::from(packet[0] & 0x1f);
    packet
        .get(8..)?
        .chunks_exact(24)
        .take(count)
        .find_map(|block| {
            let lsr = u32::from_be_bytes([block[16], block[17], block[18], block[19]]);
            let dlsr = u32::from_be_bytes([block[20], block[21], block[22], block[23]]);
            if lsr == 0 {
                return None;
            }
            let rtt = now_mid32.wrapping_sub(lsr).wrapping_sub(dlsr);
            (rtt < 10 << 16).then(|| Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fast::keys::{self, Keying};
    use crate::media::fast::rtcp_in::{self, Opened, RtcpIn};
    use crate::media::fast::srtp::Sealer;
    use crate::media::fast::twcc::tests::write_feedback;
    use str0m::crypto::dtls::SrtpProfile;

    fn keying(active: bool) -> Keying {
        Keying {
            material: (0..56u8).map(|b| b.wrapping_mul(29) ^ 0x33).collect(),
            profile: SrtpProfile::AEAD_AES_128_GCM,
            active,
        }
    }

    /// A subscriber's loop fed as the lean sender feeds it: each compound opened once and
    /// its packets handed over.
    struct Fed {
        control: Control,
        rin: RtcpIn,
    }

    impl Fed {
        fn new(initial_bps: Option<u64>, now: Instant) -> Fed {
            let mut rin = RtcpIn::default();
            rin.keyed(&keying(true)).expect("GCM");
            let control = Control::new(initial_bps, now);
            Fed { control, rin }
        }

        fn on_receive(&mut self, contents: &[u8], now: Instant) -> bool {
            if !rtcp_in::is_rtcp(contents) {
                return false;
            }
            let Opened::Clear(clear) = self.rin.open(contents) else {
                return false;
            };
            let mut moved = false;
            for packet in rtcp_in::packets(clear) {
                moved |= self.control.on_packet(packet, now);
            }
            moved
        }
    }

    impl std::ops::Deref for Fed {
        type Target = Control;
        fn deref(&self) -> &Control {
            &self.control
        }
    }

    impl std::ops::DerefMut for Fed {
        fn deref_mut(&mut self) -> &mut Control {
            &mut self.control
        }
    }

    /// The subscriber's side: seals a compound (its receiver report, then `fb`) as a browser
    /// would, with the other half of the keying material.
    fn sealed_feedback(sealer: &mut Sealer, fb: &[u8]) -> Vec<u8> {
        let mut c = vec![0x80, 201, 0, 1];
        c.extend_from_slice(&sealer.reporter().to_be_bytes());
        c.extend_from_slice(fb);
        sealer.seal_rtcp(&mut c).expect("sealed");
        c
    }

    #[test]
    fn sealed_transport_cc_feedback_reaches_the_estimator() {
        let t0 = Instant::now();
        let mut control = Fed::new(Some(1_000_000), t0);
        let mut browser = Sealer::new(&keys::provider(), &keying(false), 0x4242).expect("keys");
        assert_eq!(control.estimate(), None, "no budget before feedback");
        for i in 0..20u64 {
            assert_eq!(control.next_seq(), i);
            control.on_send(t0 + Duration::from_millis(i * 5), 1_000);
        }
        let fb = write_feedback(0, 0, 0, &[Some(20); 20], 0);
        let now = t0 + Duration::from_millis(150);
        assert!(control.on_receive(&sealed_feedback(&mut browser, &fb), now));
        assert_eq!(control.feedbacks, 1);
        assert!(control.estimate().is_some());
        // The same compound again does not move it (already-acked packets are skipped) and
        // is still well-formed; a tampered one is refused, never parsed.
        let mut bad = sealed_feedback(&mut browser, &fb);
        let n = bad.len();
        bad[n - 10] ^= 1;
        assert!(!control.on_receive(&bad, now));
        assert_eq!(control.rin.refused, 1);
        // Media and STUN are not RTCP: ignored without cost.
        assert!(!control.on_receive(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], now));
        assert!(!control.on_receive(&[0, 1, 0, 0], now));
        assert_eq!(control.rin.refused, 1);
    }

    #[test]
    fn silence_decays_the_estimate_only_after_feedback_was_seen() {
        let t0 = Instant::now();
        let mut control = Control::new(Some(1_000_000), t0);
        let mut now = t0;
        for _ in 0..100 {
            now += TICK_EVERY;
            assert!(!control.tick(now, true), "nothing to decay before feedback");
        }
        assert_eq!(control.estimate(), None);
    }

    #[test]
    fn without_padding_the_next_tick_is_when_feedback_would_be_missing() {
        let t0 = Instant::now();
        let mut control = Fed::new(Some(1_000_000), t0);
        let mut browser = Sealer::new(&keys::provider(), &keying(false), 0x4242).expect("keys");
        assert_eq!(control.next_tick(true), None, "no tick before feedback");
        assert_eq!(control.next_tick(false), None);
        let period = Duration::from_millis(64);
        let mut now = t0;
        for round in 0..10u64 {
            let base = control.next_seq();
            for i in 0..4u64 {
                control.on_send(now + Duration::from_millis(i * 16), 1_000);
            }
            now += period;
            // Arrivals one reference unit (64 ms) per round, 16 ms apart: no queue grows.
            let fb = write_feedback(base as u16, round as u32, round as u8, &[Some(64); 4], 0);
            assert!(control.on_receive(&sealed_feedback(&mut browser, &fb), now));
            // Padding ticks every 50 ms; otherwise on the first grid slot a second after
            // the last feedback, the one where a tick would cut for silence.
            let every = control.next_tick(true).expect("tick");
            assert!(every <= now + TICK_EVERY, "round {round}");
            let quiet = control.next_tick(false).expect("tick");
            let deadline = now + Duration::from_secs(1);
            assert!(
                quiet >= deadline && quiet < deadline + TICK_EVERY,
                "round {round}"
            );
            // The ticks before the next feedback change nothing (so skipping them loses
            // nothing).
            let before = control.estimate();
            while let Some(t) = control.next_tick(true).filter(|t| *t < now + period) {
                control.tick(t.max(now), true);
                assert_eq!(control.estimate(), before, "round {round}");
            }
        }
        // Silence: the tick at that deadline cuts, and the next comes a second on.
        let quiet = control.next_tick(false).expect("tick");
        let before = control.estimate().expect("estimate");
        assert!(control.tick(quiet, true));
        assert!(
            control.estimate().expect("estimate") < before,
            "cut for silence"
        );
        let next = control.next_tick(false).expect("tick");
        assert!(next >= quiet + Duration::from_secs(1), "{:?}", next - quiet);
    }

    #[test]
    fn nacks_and_round_trip_come_out_of_the_compound() {
        let t0 = Instant::now();
        // Without an estimator: NACKs and receiver reports are still read.
        let mut control = Fed::new(None, t0);
        let mut browser = Sealer::new(&keys::provider(), &keying(false), 0x4242).expect("keys");
        // NACK for 65_535 and, by the mask, 0 and 3 (wrapping), on media SSRC 0x1234.
        let mut fb = vec![0x81, 205, 0, 3, 0, 0, 0x42, 0x42, 0, 0, 0x12, 0x34];
        fb.extend_from_slice(&[0xff, 0xff, 0b0000_0000, 0b0000_1001]);
        let now = t0 + Duration::from_millis(2_500);
        assert!(!control.on_receive(&sealed_feedback(&mut browser, &fb), now));
        assert!(control.has_nacks());
        let mut got = vec![];
        control.take_nacks(&mut got);
        assert_eq!(got, [(0x1234, 65_535), (0x1234, 0), (0x1234, 3)]);
        assert!(!control.has_nacks());
        assert_eq!(control.estimate(), None);
        // A receiver report echoing the sender report of t0 + 2 s after holding it 0.25 s:
        // 0.5 s − 0.25 s is a 250 ms round trip.
        assert_eq!(control.rtt(), DEFAULT_RTT);
        let lsr = ntp_mid32(Duration::from_secs(2));
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0x42, 0x43, 0, 0, 0x12, 0x34];
        rr.extend_from_slice(&[0; 12]);
        rr.extend_from_slice(&lsr.to_be_bytes());
        rr.extend_from_slice(&(65_536u32 / 4).to_be_bytes());
        control.on_receive(&sealed_feedback(&mut browser, &rr), now);
        let rtt = control.rtt().as_millis();
        assert!((249..=251).contains(&rtt), "{rtt}");
        // Hostile lengths and counts: no panic, no growth past the bound.
        let mut big = vec![0x81, 205, 0, 0xff, 0, 0, 0, 1, 0, 0, 0, 2];
        big.extend(std::iter::repeat_n(0xffu8, 1_020));
        control.on_receive(&sealed_feedback(&mut browser, &big), now);
        let mut huge = vec![0x81, 205, 1, 0, 0, 0, 0, 1, 0, 0, 0, 2];
        huge.extend(std::iter::repeat_n(0xffu8, 4 * 256 + 4 - 12));
        control.on_receive(&sealed_feedback(&mut browser, &huge), now);
        let mut got = vec![];
        control.take_nacks(&mut got);
        assert!(got.len() <= MAX_NACKS, "{}", got.len());
        let mut rr = vec![0x9f, 201, 0, 1, 0, 0, 0, 1];
        rr.truncate(8);
        control.on_receive(&sealed_feedback(&mut browser, &rr), now);
    }

    #[test]
    fn ntp_middle_bits_match_the_sender_reports() {
        for ms in [0u64, 1, 999, 1_500, 70_000_000] {
            let since = Duration::from_millis(ms);
            let full = crate::media::fast::sender::ntp_at(since);
            assert_eq!(ntp_mid32(since), (full >> 16) as u32, "{ms}");
        }
    }
}
