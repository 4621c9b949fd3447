//! Tests of the SRTCP replay guard: RFC 3711 Appendix B.3 key derivation, libsrtp's AES-CM
//! SRTCP known answer, GCM compounds sealed by the lean path's sealer, replays and forgeries.

use super::*;
use crate::media::fast::keys::provider;
use crate::media::fast::srtp::Sealer;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// RFC 3711 Appendix B.3's master key and salt (libsrtp's `srtp_validate` uses them too).
const MASTER: &str = "E1F97A0D3E018BE0D64FA32C06DE4139";
const SALT: &str = "0EC675AD498AFEEBB6960B3AABE6";

/// libsrtp `test/srtp_driver.c` `srtp_validate`: an RTCP sender report from 0xcafebabe
/// (`81c8000bcafebabe` then 16 bytes of `ab`), protected with AES_CM_128_HMAC_SHA1_80 under
/// [`MASTER`]/[`SALT`] as SRTCP index 1: encrypted body, `80000001` (E flag, index), tag.
const LIBSRTP_SRTCP: &str =
    "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798";

#[test]
fn the_kdf_matches_rfc_3711_appendix_b3_over_several_blocks() {
    // The whole 94-byte label-1 output of B.3: six AES blocks, the last one cut, so the
    // block counter in the PRF input is exercised (the 160-bit SRTCP key takes two blocks).
    let mut auth = [0u8; 94];
    srtp::derive(&provider(), &hex(MASTER), &hex(SALT), 1, &mut auth);
    let rfc = "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE\
               E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25\
               6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2";
    assert_eq!(auth.to_vec(), hex(rfc));
}

#[test]
fn libsrtps_srtcp_known_answer_authenticates_once() {
    let p = provider();
    let mut cm = CmAuth::from_master(&p, &hex(MASTER), &hex(SALT));
    let packet = hex(LIBSRTP_SRTCP);
    assert_eq!(
        cm.check(&packet),
        Ok(1),
        "label 4 key and the tag over E+index"
    );
    assert_eq!(cm.check(&packet), Err(SrtpError::Replayed));
    // Any bit of the compound, the index word or the tag: refused by the tag (each on a list
    // that has not seen index 1, so no replay check answers first).
    for at in [0, 9, 24, 27, 28, 37] {
        let mut bad = packet.clone();
        bad[at] ^= 0x01;
        let mut fresh = CmAuth::from_master(&p, &hex(MASTER), &hex(SALT));
        assert_eq!(fresh.check(&bad), Err(SrtpError::Malformed), "byte {at}");
    }
    // Another key: refused.
    let mut other = CmAuth::from_master(&p, &hex(MASTER), &hex("0EC675AD498AFEEBB6960B3AABE7"));
    assert_eq!(other.check(&packet), Err(SrtpError::Malformed));
}

#[test]
fn a_forged_index_never_moves_the_window() {
    let p = provider();
    let mut cm = CmAuth::from_master(&p, &hex(MASTER), &hex(SALT));
    let mut forged = hex(LIBSRTP_SRTCP);
    // Index 1000 with the real tag: would push index 1 out of the 128-wide window if it
    // were recorded.
    forged[24..28].copy_from_slice(&(0x8000_0000u32 | 1000).to_be_bytes());
    assert_eq!(cm.check(&forged), Err(SrtpError::Malformed));
    assert_eq!(
        cm.check(&hex(LIBSRTP_SRTCP)),
        Ok(1),
        "the real one still passes"
    );
}

#[test]
fn the_aes_cm_key_is_the_other_sides_half() {
    // RFC 5764 §4.2 layout: client key, server key, client salt, server salt. The client
    // (here the sender of the libsrtp compound) uses the client halves.
    let mut material = hex(MASTER);
    material.extend_from_slice(&[0x11; 16]);
    material.extend_from_slice(&hex(SALT));
    material.extend_from_slice(&[0x22; 14]);
    let keying = |active| Keying {
        material: material.clone(),
        profile: SrtpProfile::AES128_CM_SHA1_80,
        active,
    };
    let p = provider();
    let packet = hex(LIBSRTP_SRTCP);
    // We are the DTLS server: the peer (client) sends with the client half.
    let mut server = CmAuth::new(&p, &keying(false)).expect("AES-CM");
    assert_eq!(server.check(&packet), Ok(1));
    let mut client = CmAuth::new(&p, &keying(true)).expect("AES-CM");
    assert_eq!(client.check(&packet), Err(SrtpError::Malformed));
    // Wrong lengths and profiles are refused, not sliced.
    let short = Keying {
        material: vec![0; 59],
        ..keying(false)
    };
    assert!(matches!(
        CmAuth::new(&p, &short),
        Err(SrtpError::Material(59))
    ));
    let gcm = Keying {
        profile: SrtpProfile::AEAD_AES_128_GCM,
        ..keying(false)
    };
    assert!(CmAuth::new(&p, &gcm).is_err());
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
fn an_aes_cm_guard_takes_its_keys_from_the_slot() {
    let mut material = hex(MASTER);
    material.extend_from_slice(&[0x11; 16]);
    material.extend_from_slice(&hex(SALT));
    material.extend_from_slice(&[0x22; 14]);
    let slot = KeySlot::default();
    let mut guard = SrtcpGuard::new(slot.clone());
    slot.set(Keying {
        material,
        profile: SrtpProfile::AES128_CM_SHA1_80,
        active: false,
    })
    .expect("empty slot");
    let packet = hex(LIBSRTP_SRTCP);
    assert_eq!(guard.check(&packet), Verdict::Fresh);
    assert_eq!(guard.check(&packet), Verdict::Refused { replayed: true });
    // Shorter than a header and the trailer: refused without reading past the end.
    for len in 0..18 {
        assert_eq!(
            guard.check(&packet[..len]),
            Verdict::Refused { replayed: false }
        );
    }
}

#[test]
fn keys_no_opener_here_uses_leave_str0m_alone() {
    let slot = KeySlot::default();
    let mut guard = SrtcpGuard::new(slot.clone());
    slot.set(Keying {
        material: vec![0; 10],
        profile: SrtpProfile::AEAD_AES_128_GCM,
        active: false,
    })
    .expect("empty slot");
    assert_eq!(guard.check(&hex(LIBSRTP_SRTCP)), Verdict::Unkeyed);
}
