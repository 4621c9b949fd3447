//! A lean subscriber's congestion control: its SRTCP opened, transport-cc feedback resolved
//! against the send register, and the estimator that drives its layer allocation.
//!
//! str0m decrypts the subscriber's RTCP too, but in RTP mode with its estimator off it keeps
//! the feedback to itself; opening the compound a second time here (a few per 100 ms, each a
//! few dozen bytes) is cheaper than routing str0m's internals out.

use super::gcc::{Estimator, Gcc, GccConfig};
use super::keys::{self, Keying};
use super::srtp::Opener;
use super::twcc::{self, Feedback, PacketResult, RegisterConfig, SendRegister};
use std::time::{Duration, Instant};

/// How often the estimator is told time passes without feedback (its contract: 25–100 ms).
pub const TICK_EVERY: Duration = Duration::from_millis(50);
/// RTCP packet type of transport-layer feedback (RFC 4585), and transport-cc's format.
const RTPFB: u8 = 205;
const FMT_TWCC: u8 = 15;

/// One subscriber's feedback loop.
pub struct Control {
    opener: Option<Opener>,
    register: SendRegister,
    gcc: Gcc,
    fb: Feedback,
    results: Vec<PacketResult>,
    next_tick: Instant,
    /// Feedback messages applied, and compounds that failed to open or parse.
    pub feedbacks: u64,
    pub refused: u64,
}

impl Control {
    /// A loop whose estimate starts at `initial_bps`.
    pub fn new(initial_bps: u64, now: Instant) -> Self {
        let config = GccConfig {
            initial: super::gcc::Bitrate(initial_bps),
            ..GccConfig::default()
        };
        Control {
            opener: None,
            register: SendRegister::new(RegisterConfig::default(), now),
            gcc: Gcc::new(config, now),
            fb: Feedback::default(),
            results: Vec::new(),
            next_tick: now + TICK_EVERY,
            feedbacks: 0,
            refused: 0,
        }
    }

    /// The keys are known: the subscriber's RTCP can be opened from now on.
    pub fn keyed(&mut self, keying: &Keying) {
        self.opener = Opener::new(&keys::provider(), keying).ok();
    }

    /// The transport-wide sequence number the next packet gets.
    pub fn next_seq(&self) -> u64 {
        self.register.next_seq()
    }

    /// A packet of `size` bytes numbered [`Self::next_seq`] left at `now`.
    pub fn on_send(&mut self, now: Instant, size: usize) {
        self.register.on_send(now, size);
    }

    /// Takes one datagram from the subscriber; returns whether it was RTCP that moved the
    /// estimator.
    pub fn on_receive(&mut self, contents: &[u8], now: Instant) -> bool {
        // RFC 5761: RTCP packet types 192..=223 in the second byte, version 2 in the first.
        let rtcp =
            contents.len() >= 8 && contents[0] >> 6 == 2 && (192..=223).contains(&contents[1]);
        if !rtcp {
            return false;
        }
        let Some(opener) = self.opener.as_mut() else {
            return false;
        };
        let Ok((clear, _)) = opener.open_rtcp(contents) else {
            self.refused += 1;
            return false;
        };
        let mut applied = false;
        let mut at = 0;
        while let Some(head) = clear.get(at..at + 4) {
            let len = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
            let Some(packet) = clear.get(at..at + len) else {
                break;
            };
            if head[1] == RTPFB && head[0] & 0x1f == FMT_TWCC {
                match twcc::parse_feedback(packet, &mut self.fb) {
                    Ok(()) => {
                        self.results.clear();
                        self.register.resolve(now, &self.fb, &mut self.results);
                        self.gcc.on_feedback(now, &self.results);
                        self.feedbacks += 1;
                        applied = true;
                    }
                    Err(_) => self.refused += 1,
                }
            }
            at += len;
        }
        applied
    }

    /// When the estimator wants time next.
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// Time passes; returns whether the estimator was ticked. With `live` false (nothing can
    /// be sent yet) only the next tick moves on, so the estimate does not decay meanwhile.
    pub fn tick(&mut self, now: Instant, live: bool) -> bool {
        if now < self.next_tick {
            return false;
        }
        self.next_tick = now + TICK_EVERY;
        // Silence means a lost path only once feedback has been seen: a subscriber that never
        // sends any (transport-cc not negotiated) must not decay to the floor.
        let live = live && self.feedbacks > 0;
        if live {
            self.gcc.on_tick(now);
        }
        live
    }

    /// The downlink estimate in bits per second, once feedback has been seen (before that,
    /// and for a subscriber that sends none, there is no budget: as on str0m's path).
    pub fn estimate(&self) -> Option<u64> {
        (self.feedbacks > 0).then(|| self.gcc.estimate().as_bps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut control = Control::new(1_000_000, t0);
        control.keyed(&keying(true));
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
        assert_eq!(control.refused, 1);
        // Media and STUN are not RTCP: ignored without cost.
        assert!(!control.on_receive(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], now));
        assert!(!control.on_receive(&[0, 1, 0, 0], now));
        assert_eq!(control.refused, 1);
    }

    #[test]
    fn silence_decays_the_estimate_only_after_feedback_was_seen() {
        let t0 = Instant::now();
        let mut control = Control::new(1_000_000, t0);
        let mut now = t0;
        for _ in 0..100 {
            now += TICK_EVERY;
            assert!(!control.tick(now, true), "nothing to decay before feedback");
        }
        assert_eq!(control.estimate(), None);
    }
}
