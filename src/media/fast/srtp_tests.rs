//! Tests of the fast path's SRTP: RFC 3711 key derivation, RFC 7714 round trips, libsrtp's
//! AES-CM known answers both ways, the SRTCP nonce rule and replay lists.

use super::*;
use crate::media::fast::keys::provider;
use crate::media::fast::libsrtp_vectors::{self as libsrtp, hex};
use std::collections::HashSet;

fn keying(profile: SrtpProfile, active: bool) -> Keying {
    let len = match profile {
        SrtpProfile::AEAD_AES_128_GCM => 2 * 16 + 2 * 12,
        SrtpProfile::AES128_CM_SHA1_80 => 2 * 16 + 2 * 14,
        _ => 2 * 32 + 2 * 12,
    };
    Keying {
        material: (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect(),
        profile,
        active,
    }
}

#[test]
fn key_derivation_matches_rfc_3711_appendix_b3() {
    let p = provider();
    let (master, salt) = (hex(libsrtp::MASTER), hex(libsrtp::SALT));
    let mut key = [0u8; 16];
    derive(&p, &master, &salt, LABEL_RTP_KEY, &mut key);
    assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut s = [0u8; 14];
    derive(&p, &master, &salt, LABEL_RTP_SALT, &mut s);
    assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    // B.3's whole 94-byte label-1 output: six AES blocks, the last one cut, so the block
    // counter in the PRF input is exercised (a 160-bit HMAC key takes two blocks).
    let mut auth = [0u8; 94];
    derive(&p, &master, &salt, LABEL_RTP_AUTH, &mut auth);
    let rfc = "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE\
               E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25\
               6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2";
    assert_eq!(auth.to_vec(), hex(rfc));
}

#[test]
fn rtp_sealed_by_one_side_opens_on_the_other_for_both_gcm_profiles() {
    let p = provider();
    for profile in [SrtpProfile::AEAD_AES_128_GCM, SrtpProfile::AEAD_AES_256_GCM] {
        // The DTLS client seals; the server opens what the client sends.
        let mut sealer = Sealer::new(&p, &keying(profile, true), 7).expect("gcm");
        let mut opener = Opener::new(&p, &keying(profile, false)).expect("gcm");
        let header = [0x80u8, 96, 0x12, 0x34, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD];
        let payload: Vec<u8> = (0..1200u32).map(|i| i as u8).collect();
        let index = (3u64 << 16) | 0x1234;
        let mut out = header.to_vec();
        sealer.seal_rtp(&mut out, &payload, 0xAABB_CCDD, index);
        assert_eq!(out.len(), 12 + 1200 + RTP_OVERHEAD);
        assert_ne!(&out[12..1212], &payload[..], "the payload is encrypted");
        let clear = opener.open_rtp(&out, 12, index).expect("authentic");
        assert_eq!(&clear[12..], &payload[..]);
        // A wrong rollover counter or a flipped bit fails authentication.
        assert!(opener.open_rtp(&out, 12, 0x1234).is_err());
        out[20] ^= 1;
        assert!(opener.open_rtp(&out, 12, index).is_err());
    }
}

#[test]
fn the_other_half_of_the_material_does_not_open_it() {
    let p = provider();
    let profile = SrtpProfile::AEAD_AES_128_GCM;
    let mut sealer = Sealer::new(&p, &keying(profile, true), 7).expect("gcm");
    let mut wrong = Opener::new(&p, &keying(profile, true)).expect("gcm");
    let mut out = vec![0x80u8, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 5];
    sealer.seal_rtp(&mut out, b"hello", 5, 1);
    assert!(wrong.open_rtp(&out, 12, 1).is_err());
}

/// An empty receiver report from `ssrc`, then a sender report from `media`.
fn compound(ssrc: u32, media: u32) -> Vec<u8> {
    let mut c = vec![0x80, 201, 0, 1];
    c.extend_from_slice(&ssrc.to_be_bytes());
    c.extend_from_slice(&[0x80, 200, 0, 6]);
    c.extend_from_slice(&media.to_be_bytes());
    c.extend_from_slice(&[0u8; 20]);
    c
}

#[test]
fn rtcp_round_trips_and_carries_its_index_in_the_clear() {
    let p = provider();
    let profile = SrtpProfile::AEAD_AES_256_GCM;
    let mut sealer = Sealer::new(&p, &keying(profile, false), 0xFEED).expect("gcm");
    let mut opener = Opener::new(&p, &keying(profile, true)).expect("gcm");
    for expected in 0..3u32 {
        let plain = compound(0xFEED, 0x1111);
        let mut c = plain.clone();
        let index = sealer.seal_rtcp(&mut c).expect("reporter first");
        assert_eq!(index, expected);
        assert_eq!(c.len(), plain.len() + RTCP_OVERHEAD);
        let (opened, got) = opener.open_rtcp(&c).expect("authentic");
        assert_eq!((opened, got), (plain, expected));
    }
}

/// The nonce rule: (first SSRC, index) never repeats, and a compound that does not start
/// with the reporter (whose SSRC str0m could also be using with its own index) is refused.
#[test]
fn no_ssrc_and_srtcp_index_pair_is_ever_sealed_twice() {
    let p = provider();
    let mut sealer =
        Sealer::new(&p, &keying(SrtpProfile::AEAD_AES_128_GCM, true), 0xFEED).expect("gcm");
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let mut c = compound(0xFEED, 0x2222);
        sealer.seal_rtcp(&mut c).expect("reporter first");
        let n = c.len();
        let ssrc = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
        let e_index = u32::from_be_bytes([c[n - 4], c[n - 3], c[n - 2], c[n - 1]]);
        assert!(e_index & 0x8000_0000 != 0, "always encrypted");
        assert!(seen.insert((ssrc, e_index)), "nonce reused at {e_index:#x}");
    }
    let mut media_first = compound(0x2222, 0xFEED);
    assert_eq!(
        sealer.seal_rtcp(&mut media_first),
        Err(SrtpError::NotReporter)
    );
    // At the end of the index space it stops instead of wrapping.
    sealer.srtcp_index = MAX_SRTCP_INDEX;
    assert!(sealer.seal_rtcp(&mut compound(0xFEED, 1)).is_ok());
    assert_eq!(
        sealer.seal_rtcp(&mut compound(0xFEED, 1)),
        Err(SrtpError::IndexExhausted)
    );
}

#[test]
fn aes_cm_seals_libsrtps_known_answers() {
    let p = provider();
    let mut sealer = Sealer::new(&p, &libsrtp::keying(true), 0xCAFE_BABE).expect("AES-CM");
    let plain = hex(libsrtp::RTP_PLAIN);
    let mut out = plain[..12].to_vec();
    sealer.seal_rtp(&mut out, &plain[12..], 0xCAFE_BABE, 0x1234);
    assert_eq!(
        out,
        hex(libsrtp::SRTP),
        "SRTP: RTP keys, IV and the tag over ROC"
    );
    // After a relay's link id the header still starts the authenticated part.
    let mut linked = vec![9, 9];
    linked.extend_from_slice(&plain[..12]);
    sealer.seal_rtp_from(&mut linked, 2, &plain[12..], 0xCAFE_BABE, 0x1234);
    assert_eq!(linked[2..], hex(libsrtp::SRTP)[..]);
    sealer.srtcp_index = 1;
    let mut compound = hex(libsrtp::RTCP_PLAIN);
    assert_eq!(sealer.seal_rtcp(&mut compound), Ok(1));
    assert_eq!(compound, hex(libsrtp::SRTCP), "SRTCP: E flag, index, tag");
    assert_eq!(sealer.srtcp_index, 2);
}

#[test]
fn aes_cm_opens_libsrtps_known_answers_once() {
    let p = provider();
    let mut opener = Opener::new(&p, &libsrtp::keying(false)).expect("AES-CM");
    let srtp = hex(libsrtp::SRTP);
    assert_eq!(
        opener.open_rtp(&srtp, 12, 0x1234),
        Ok(hex(libsrtp::RTP_PLAIN))
    );
    // Another ROC is another tag.
    assert_eq!(
        opener.open_rtp(&srtp, 12, 0x1_1234),
        Err(SrtpError::Malformed)
    );
    let srtcp = hex(libsrtp::SRTCP);
    assert_eq!(opener.open_rtcp(&srtcp), Ok((hex(libsrtp::RTCP_PLAIN), 1)));
    assert_eq!(opener.open_rtcp(&srtcp), Err(SrtpError::Replayed));
    for at in [0, 9, 27, 30, srtcp.len() - 1] {
        let mut bad = srtcp.clone();
        bad[at] ^= 0x01;
        let mut fresh = Opener::new(&p, &libsrtp::keying(false)).expect("AES-CM");
        assert_eq!(
            fresh.open_rtcp(&bad),
            Err(SrtpError::Malformed),
            "byte {at}"
        );
    }
    let mut bad = srtp.clone();
    bad[20] ^= 0x80;
    assert_eq!(opener.open_rtp(&bad, 12, 0x1234), Err(SrtpError::Malformed));
    // Too short for a tag, or for its trailer: refused, never a panic.
    for len in 0..srtcp.len() {
        let mut fresh = Opener::new(&p, &libsrtp::keying(false)).expect("AES-CM");
        assert!(fresh.open_rtcp(&srtcp[..len]).is_err(), "len {len}");
        assert!(fresh
            .open_rtp(&srtp[..len.min(srtp.len())], 12, 0x1234)
            .is_err());
    }
}

#[test]
fn aes_cm_round_trips_with_the_reporter_rule() {
    let p = provider();
    let profile = SrtpProfile::AES128_CM_SHA1_80;
    let mut sealer = Sealer::new(&p, &keying(profile, false), 0xFEED).expect("AES-CM");
    let mut opener = Opener::new(&p, &keying(profile, true)).expect("AES-CM");
    let payload: Vec<u8> = (0..1200u32).map(|i| (i * 7) as u8).collect();
    let mut out = vec![0x80, 96, 0, 5, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD];
    sealer.seal_rtp(&mut out, &payload, 0xAABB_CCDD, (3 << 16) | 5);
    assert_eq!(out.len(), 12 + 1200 + 10);
    let clear = opener.open_rtp(&out, 12, (3 << 16) | 5).expect("opens");
    assert_eq!(&clear[12..], &payload[..]);
    assert_eq!(
        sealer.seal_rtcp(&mut compound(0xBEEF, 1)),
        Err(SrtpError::NotReporter)
    );
    let mut seen = HashSet::new();
    for n in 0..50u32 {
        let mut c = compound(0xFEED, 1 + n % 3);
        let plain = c.clone();
        let index = sealer.seal_rtcp(&mut c).expect("seals");
        assert!(seen.insert(index));
        assert_eq!(c.len(), plain.len() + 14);
        assert_eq!(opener.open_rtcp(&c), Ok((plain, index)));
    }
}

#[test]
fn our_rtp_iv_is_rfc_7714s_as_str0m_builds_it() {
    // Ours is inlined on the per-copy path; str0m's is the reference its own SRTP uses.
    let salt: [u8; 12] = std::array::from_fn(|i| (i as u8).wrapping_mul(71) ^ 0xC3);
    for (ssrc, index) in [
        (0u32, 0u64),
        (0xAABB_CCDD, 0x1234),
        (0xFFFF_FFFF, (0xFFFF_FFFFu64 << 16) | 0xFFFF),
        (7, (3 << 16) | 65_535),
        (0x0102_0304, 1 << 16),
    ] {
        let reference = AeadAes128Gcm::rtp_iv(salt, ssrc, (index >> 16) as u32, index as u16);
        assert_eq!(
            rtp_iv(&salt, ssrc, index),
            reference,
            "ssrc {ssrc:x} index {index:x}"
        );
    }
}

/// RFC 3711 §3.3.2 on SRTCP: each (source, index) opens once; out of order within the window
/// is fine, older than the window is not, and only compounds that authenticated move it.
#[test]
fn srtcp_replays_are_refused_and_only_authentic_compounds_move_the_window() {
    let p = provider();
    let profile = SrtpProfile::AEAD_AES_128_GCM;
    let mut sealer = Sealer::new(&p, &keying(profile, false), 0xFEED).expect("gcm");
    let mut opener = Opener::new(&p, &keying(profile, true)).expect("gcm");
    let sealed: Vec<Vec<u8>> = (0..300)
        .map(|_| {
            let mut c = compound(0xFEED, 0x1111);
            sealer.seal_rtcp(&mut c).expect("reporter first");
            c
        })
        .collect();
    assert_eq!(opener.open_rtcp(&sealed[5]).map(|o| o.1), Ok(5));
    assert_eq!(opener.open_rtcp(&sealed[5]), Err(SrtpError::Replayed));
    // Earlier ones, late: each once.
    assert_eq!(opener.open_rtcp(&sealed[3]).map(|o| o.1), Ok(3));
    assert_eq!(opener.open_rtcp(&sealed[0]).map(|o| o.1), Ok(0));
    assert_eq!(opener.open_rtcp(&sealed[3]), Err(SrtpError::Replayed));
    assert!(opener.open_rtcp(&sealed[4]).is_ok());
    // A forgery with a far index fails authentication and does not move the window: 6..
    // still open.
    let mut forged = sealed[6].clone();
    let n = forged.len();
    forged[n - 4..].copy_from_slice(&(0x8000_0000u32 | 250).to_be_bytes());
    assert_eq!(opener.open_rtcp(&forged), Err(SrtpError::Malformed));
    let mut tampered = sealed[6].clone();
    tampered[10] ^= 1;
    assert_eq!(opener.open_rtcp(&tampered), Err(SrtpError::Malformed));
    assert_eq!(opener.open_rtcp(&sealed[6]).map(|o| o.1), Ok(6));
    // 200 moves the window past 72 and below: they are refused, unseen or not.
    assert!(opener.open_rtcp(&sealed[200]).is_ok());
    assert_eq!(opener.open_rtcp(&sealed[72]), Err(SrtpError::Replayed));
    assert_eq!(opener.open_rtcp(&sealed[7]), Err(SrtpError::Replayed));
    assert_eq!(opener.open_rtcp(&sealed[73]).map(|o| o.1), Ok(73));
    assert!(opener.open_rtcp(&sealed[299]).is_ok());
    // A refused compound leaves nothing behind in the caller's buffer.
    let mut out = vec![1, 2, 3];
    assert_eq!(
        opener.open_rtcp_into(&sealed[299], &mut out),
        Err(SrtpError::Replayed)
    );
    assert!(out.is_empty());
}

/// Each source keeps its own list: the same index from another SSRC is another compound
/// (its nonce differs), as a browser numbers each of its SSRCs' compounds on its own.
#[test]
fn srtcp_sources_have_their_own_lists() {
    let p = provider();
    let profile = SrtpProfile::AEAD_AES_128_GCM;
    let mut a = Sealer::new(&p, &keying(profile, false), 0xA).expect("gcm");
    let mut b = Sealer::new(&p, &keying(profile, false), 0xB).expect("gcm");
    let mut opener = Opener::new(&p, &keying(profile, true)).expect("gcm");
    let mut ca = compound(0xA, 1);
    let mut cb = compound(0xB, 1);
    assert_eq!(a.seal_rtcp(&mut ca), Ok(0));
    assert_eq!(b.seal_rtcp(&mut cb), Ok(0));
    assert!(opener.open_rtcp(&ca).is_ok());
    assert!(opener.open_rtcp(&cb).is_ok());
    assert_eq!(opener.open_rtcp(&ca), Err(SrtpError::Replayed));
    assert_eq!(opener.open_rtcp(&cb), Err(SrtpError::Replayed));
}
