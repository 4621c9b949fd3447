//! A lean peer's SRTCP opened once, in our code, and walked packet by packet; str0m is not
//! given it.
//!
//! What str0m 0.25 does with a compound (`Session::handle_rtcp`, `StreamTx::handle_rtcp`,
//! `StreamRx::handle_rtcp`), and why a lean peer needs none of it:
//! - transport-cc feedback: its estimator is off and its register numbers nothing we send
//!   (`control` resolves it against the lean path's own register);
//! - NACK: its send streams hold nothing to resend (nothing goes through `write_rtp`);
//!   `control` queues them for RTX from the shared history;
//! - PLI/FIR: `Event::KeyframeRequest`; read here instead ([`keyframe_requests`]);
//! - receiver reports: send-stream statistics nobody reads, and whether the receiver bound
//!   the SSRC, which decides whether str0m writes the mid extension on packets it sends
//!   (it sends none; the lean path writes its own); `control` takes the round trip;
//! - REMB: an event the router ignores (the lean path estimates from transport-cc);
//! - sender reports on what the peer publishes: the base of str0m's receiver reports
//!   (silenced on this path; `reports` writes ours from them) and `last_sender_info` on
//!   routed packets, which nothing reads;
//! - SDES (CNAME kept), BYE (ignored), XR RRTR/DLRR (answered only with its silenced reports).
//!
//! Before the keys are known, and for a peer whose keys the lean path cannot use (material of
//! the wrong length: str0m sends for it), compounds go to str0m, through the peer's replay
//! guard (`srtcp_guard`).

use super::keys::{self, Keying};
use super::srtp::{Opener, SrtpError};
use str0m::media::KeyframeRequestKind;

/// RTCP packet types (RFC 3550, RFC 4585): sender report, payload-specific feedback.
pub const SR: u8 = 200;
const PSFB: u8 = 206;
/// Payload-specific feedback formats: picture loss (RFC 4585), full intra request (RFC 5104).
const FMT_PLI: u8 = 1;
const FMT_FIR: u8 = 4;
/// Keyframe requests held between two takes; more in one compound are dropped (one per
/// stream is all a publisher needs, and the router rate-limits them per layer anyway).
pub const MAX_KEYFRAME_REQUESTS: usize = 8;

/// Whether a datagram is RTCP by RFC 5761's rule (version 2, packet type 192..=223 in the
/// second byte): what str0m's demux calls RTCP too, except payload types 64..=95 without the
/// marker bit, which browsers never send and which stay str0m's.
#[inline]
pub fn is_rtcp(contents: &[u8]) -> bool {
    contents.len() >= 8 && contents[0] >> 6 == 2 && (192..=223).contains(&contents[1])
}

/// What opening a compound gave.
pub enum Opened<'a> {
    /// No keys (yet, or a profile this path does not open): str0m takes it.
    Unkeyed,
    /// It failed authentication, was malformed or was a replay ([`RtcpIn::replayed`]): str0m
    /// would refuse the first two too (and, having no SRTCP replay list, accept the third).
    Refused,
    /// The clear compound.
    Clear(&'a [u8]),
}

/// One peer's SRTCP opening context, and the buffer its compounds are opened into.
#[derive(Default)]
pub struct RtcpIn {
    opener: Option<Opener>,
    clear: Vec<u8>,
    /// Compounds opened, and those refused.
    pub opened: u64,
    pub refused: u64,
    /// Of those refused, the replays (an index seen, or older than the window).
    pub replayed: u64,
    /// Whether the last compound refused was a replay.
    last_replayed: bool,
}

impl RtcpIn {
    /// The handshake's keys: compounds are opened here from now on.
    pub fn keyed(&mut self, keying: &Keying) -> Result<(), SrtpError> {
        self.opener = Some(Opener::new(&keys::provider(), keying)?);
        Ok(())
    }

    /// Opens one compound (`is_rtcp` said so).
    pub fn open(&mut self, contents: &[u8]) -> Opened<'_> {
        let Some(opener) = self.opener.as_mut() else {
            return Opened::Unkeyed;
        };
        match opener.open_rtcp_into(contents, &mut self.clear) {
            Ok(_) => {
                self.opened += 1;
                Opened::Clear(&self.clear)
            }
            Err(e) => {
                self.refused += 1;
                self.last_replayed = e == SrtpError::Replayed;
                self.replayed += u64::from(self.last_replayed);
                Opened::Refused
            }
        }
    }

    /// Whether the last compound refused was a replay (for the room's counters).
    pub fn last_refused_was_replay(&self) -> bool {
        self.last_replayed
    }
}

/// The whole packets of a clear compound, in order; a length past the end ends the walk.
pub fn packets(clear: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = clear;
    std::iter::from_fn(move || {
        let head = rest.get(..4)?;
        let len = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
        let packet = rest.get(..len)?;
        rest = &rest[len..];
        Some(packet)
    })
}

/// Appends the keyframe requests one packet carries, (media SSRC, kind), up to
/// [`MAX_KEYFRAME_REQUESTS`] held: a PLI names its media SSRC in its header, a FIR one per
/// 8-byte entry (RFC 5104 §4.3.1; its header's media SSRC is zero).
pub fn keyframe_requests(packet: &[u8], out: &mut Vec<(u32, KeyframeRequestKind)>) {
    if packet.len() < 12 || packet[1] != PSFB {
        return;
    }
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let mut push = |ssrc: u32, kind| {
        if out.len() < MAX_KEYFRAME_REQUESTS && !out.contains(&(ssrc, kind)) {
            out.push((ssrc, kind));
        }
    };
    match packet[0] & 0x1f {
        FMT_PLI => push(word(&packet[8..12]), KeyframeRequestKind::Pli),
        FMT_FIR => {
            for entry in packet[12..].chunks_exact(8) {
                push(word(entry), KeyframeRequestKind::Fir);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fast::srtp::Sealer;
    use str0m::crypto::dtls::SrtpProfile;

    fn keying(active: bool) -> Keying {
        Keying {
            material: (0..56u8).map(|b| b.wrapping_mul(31) ^ 0x5a).collect(),
            profile: SrtpProfile::AEAD_AES_128_GCM,
            active,
        }
    }

    #[test]
    fn a_compound_opens_once_and_walks_into_its_packets() {
        let mut rin = RtcpIn::default();
        let mut browser = Sealer::new(&keys::provider(), &keying(false), 0x4242).expect("keys");
        let mut c = vec![0x80, 201, 0, 1, 0, 0, 0x42, 0x42];
        // PLI on 0x1111; FIR on 0x2222 and 0x3333; a PLI on 0x1111 again (held once).
        c.extend_from_slice(&[0x81, PSFB, 0, 2, 0, 0, 0x42, 0x42, 0, 0, 0x11, 0x11]);
        c.extend_from_slice(&[0x84, PSFB, 0, 6, 0, 0, 0x42, 0x42, 0, 0, 0, 0]);
        c.extend_from_slice(&[0, 0, 0x22, 0x22, 7, 0, 0, 0, 0, 0, 0x33, 0x33, 8, 0, 0, 0]);
        c.extend_from_slice(&[0x81, PSFB, 0, 2, 0, 0, 0x42, 0x42, 0, 0, 0x11, 0x11]);
        let clear = c.clone();
        browser.seal_rtcp(&mut c).expect("sealed");
        assert!(is_rtcp(&c));
        assert!(matches!(rin.open(&c), Opened::Unkeyed), "no keys: str0m's");
        rin.keyed(&keying(true)).expect("GCM");
        let Opened::Clear(got) = rin.open(&c) else {
            panic!("authentic compound refused");
        };
        assert_eq!(got, &clear[..]);
        let lens: Vec<usize> = packets(got).map(<[u8]>::len).collect();
        assert_eq!(lens, [8, 12, 28, 12]);
        let mut wanted = vec![];
        for p in packets(got) {
            keyframe_requests(p, &mut wanted);
        }
        use KeyframeRequestKind::{Fir, Pli};
        assert_eq!(wanted, [(0x1111, Pli), (0x2222, Fir), (0x3333, Fir)]);
        // Replayed (an on-path copy of its PLI and FIR): refused, counted as a replay.
        assert!(matches!(rin.open(&c), Opened::Refused));
        assert!(rin.last_refused_was_replay());
        // Tampered (a fresh index, so not refused as a replay): refused, never walked.
        let mut c = clear.clone();
        browser.seal_rtcp(&mut c).expect("sealed");
        let n = c.len();
        c[n - 9] ^= 1;
        assert!(matches!(rin.open(&c), Opened::Refused));
        assert!(!rin.last_refused_was_replay());
        assert_eq!((rin.opened, rin.refused, rin.replayed), (1, 2, 1));
    }

    #[test]
    fn demux_and_hostile_lengths() {
        assert!(!is_rtcp(&[0x80, 96, 0, 1, 0, 0, 0, 0]), "RTP");
        assert!(!is_rtcp(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]), "STUN");
        assert!(!is_rtcp(&[22, 254, 253, 0, 0, 0, 0, 0]), "DTLS");
        assert!(is_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
        // A length past the end stops the walk; nothing is read out of bounds.
        let c = [
            0x80, 201, 0, 1, 0, 0, 0, 1, 0x81, PSFB, 0xff, 0xff, 0, 0, 0, 0,
        ];
        assert_eq!(packets(&c).count(), 1);
        assert_eq!(packets(&[0x80, 201]).count(), 0);
        // Short feedback and a FIR whose entries are cut: no panic, bounded.
        let mut out = vec![];
        keyframe_requests(&[0x81, PSFB, 0, 1, 0, 0, 0, 1], &mut out);
        let mut fir = vec![0x84, PSFB, 0, 0xff, 0, 0, 0, 1, 0, 0, 0, 0];
        for i in 0..100u32 {
            fir.extend_from_slice(&i.to_be_bytes());
            fir.extend_from_slice(&[0; 4]);
        }
        fir.push(1);
        keyframe_requests(&fir, &mut out);
        assert_eq!(out.len(), MAX_KEYFRAME_REQUESTS);
    }
}
