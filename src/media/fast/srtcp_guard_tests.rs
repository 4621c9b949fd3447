//! Tests of the SRTCP replay guard: libsrtp's AES-CM SRTCP known answer, GCM compounds sealed
//! by the lean path's sealer, replays and forgeries, keys from the slot. (`srtp_tests` tests
//! the opener it holds in more depth.)

use super::*;
use crate::media::fast::keys::provider;
use crate::media::fast::libsrtp_vectors::{self as libsrtp, hex};
use crate::media::fast::srtp::Sealer;
use str0m::crypto::dtls::SrtpProfile;

/// A guard whose keys are already in its slot.
fn keyed_guard(keying: Keying) -> SrtcpGuard {
    let slot = KeySlot::default();
    slot.set(keying).expect("empty slot");
    SrtcpGuard::new(slot)
}

const REFUSED: Verdict = Verdict::Refused { replayed: false };
const REPLAYED: Verdict = Verdict::Refused { replayed: true };

#[test]
fn libsrtps_aes_cm_srtcp_passes_once_and_no_altered_copy_passes() {
    let packet = hex(libsrtp::SRTCP);
    let mut guard = keyed_guard(libsrtp::keying(false));
    assert_eq!(
        guard.check(&packet),
        Verdict::Fresh,
        "label 4 key, the tag over E+index"
    );
    assert_eq!(guard.check(&packet), REPLAYED);
    // Any bit of the compound, the index word or the tag: refused by the tag (each by a guard
    // that has not seen index 1, so no replay check answers first).
    for at in [0, 9, 24, 27, 28, 37] {
        let mut bad = packet.clone();
        bad[at] ^= 0x01;
        assert_eq!(
            keyed_guard(libsrtp::keying(false)).check(&bad),
            REFUSED,
            "byte {at}"
        );
    }
    // Shorter than a header and the trailer: refused without reading past the end.
    for len in 0..packet.len() {
        assert_eq!(
            keyed_guard(libsrtp::keying(false)).check(&packet[..len]),
            REFUSED
        );
    }
}

#[test]
fn a_forged_aes_cm_index_never_moves_the_window() {
    let mut guard = keyed_guard(libsrtp::keying(false));
    let mut forged = hex(libsrtp::SRTCP);
    // Index 1000 with the real tag: would push index 1 out of the 128-wide window if it
    // were recorded.
    forged[24..28].copy_from_slice(&(0x8000_0000u32 | 1000).to_be_bytes());
    assert_eq!(guard.check(&forged), REFUSED);
    assert_eq!(
        guard.check(&hex(libsrtp::SRTCP)),
        Verdict::Fresh,
        "the real one still passes"
    );
    assert_eq!((guard.fresh, guard.refused, guard.replayed), (1, 1, 0));
}

#[test]
fn the_aes_cm_guard_checks_with_the_other_sides_half() {
    let packet = hex(libsrtp::SRTCP);
    // We are the DTLS server: the peer (client) sends with the client half.
    assert_eq!(
        keyed_guard(libsrtp::keying(false)).check(&packet),
        Verdict::Fresh
    );
    assert_eq!(keyed_guard(libsrtp::keying(true)).check(&packet), REFUSED);
}

fn gcm_keying(active: bool) -> Keying {
    Keying {
        material: (0..56u8).map(|b| b.wrapping_mul(29) ^ 0x3c).collect(),
        profile: SrtpProfile::AEAD_AES_128_GCM,
        active,
    }
}

/// A receiver report from `ssrc` then a PLI, sealed by `sealer` (whose reporter is `ssrc`).
fn pli(sealer: &mut Sealer, ssrc: u32) -> Vec<u8> {
    let s = ssrc.to_be_bytes();
    let mut c = vec![0x80, 201, 0, 1, s[0], s[1], s[2], s[3]];
    c.extend_from_slice(&[0x81, 206, 0, 2, s[0], s[1], s[2], s[3], 0, 0, 0x11, 0x11]);
    sealer.seal_rtcp(&mut c).expect("sealed");
    c
}

#[test]
fn a_gcm_guard_waits_for_keys_then_passes_each_compound_once() {
    let slot = KeySlot::default();
    let mut guard = SrtcpGuard::new(slot.clone());
    let mut peer = Sealer::new(&provider(), &gcm_keying(true), 0x4242).expect("GCM");
    let first = pli(&mut peer, 0x4242);
    assert_eq!(
        guard.check(&first),
        Verdict::Unkeyed,
        "no keys: str0m has none either"
    );
    slot.set(gcm_keying(false)).expect("empty slot");
    assert_eq!(guard.check(&first), Verdict::Fresh);
    assert_eq!(guard.check(&first), Verdict::Refused { replayed: true });
    // A forged index far ahead (the tag no longer matches) is refused and moves nothing.
    let second = pli(&mut peer, 0x4242);
    let mut forged = second.clone();
    let n = forged.len();
    forged[n - 4..].copy_from_slice(&(0x8000_0000u32 | 5000).to_be_bytes());
    assert_eq!(guard.check(&forged), Verdict::Refused { replayed: false });
    assert_eq!(guard.check(&second), Verdict::Fresh);
    // Out of order within the window: both pass, once each.
    let (a, b) = (pli(&mut peer, 0x4242), pli(&mut peer, 0x4242));
    assert_eq!(guard.check(&b), Verdict::Fresh);
    assert_eq!(guard.check(&a), Verdict::Fresh);
    assert_eq!(guard.check(&a), Verdict::Refused { replayed: true });
    // Malformed: too short, or unencrypted (E flag clear; never sent by browsers).
    assert_eq!(
        guard.check(&first[..12]),
        Verdict::Refused { replayed: false }
    );
    let mut clear_e = pli(&mut peer, 0x4242);
    let n = clear_e.len();
    clear_e[n - 4] &= 0x7f;
    assert_eq!(guard.check(&clear_e), Verdict::Refused { replayed: false });
    assert_eq!((guard.fresh, guard.refused, guard.replayed), (4, 5, 2));
}

#[test]
fn keys_no_opener_here_uses_leave_str0m_alone() {
    // Material of the wrong length, for either profile: not sliced, str0m alone.
    for profile in [
        SrtpProfile::AEAD_AES_128_GCM,
        SrtpProfile::AES128_CM_SHA1_80,
    ] {
        let mut guard = keyed_guard(Keying {
            material: vec![0; 59],
            profile,
            active: false,
        });
        assert_eq!(guard.check(&hex(libsrtp::SRTCP)), Verdict::Unkeyed);
    }
}
