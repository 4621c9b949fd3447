//! Tests of the receive statistics and the receiver reports written from them.

use super::*;
use crate::media::fast::keys::{self, Keying};
use crate::media::fast::rtcp_in::{packets, Opened, RtcpIn};
use crate::media::fast::srtp::Sealer;
use str0m::crypto::dtls::SrtpProfile;

const VIDEO: u32 = 90_000;

fn keying(active: bool) -> Keying {
    Keying {
        material: (0..56u8).map(|b| b.wrapping_mul(31) ^ 0x5a).collect(),
        profile: SrtpProfile::AEAD_AES_128_GCM,
        active,
    }
}

fn one(r: &mut Reports, reporter: u32, now: Instant) -> Vec<Block> {
    let mut out = vec![];
    assert!(r.write(reporter, now, &mut out) > 0);
    let (from, blocks) = parse_rr(&out).expect("an RR");
    assert_eq!(from, reporter);
    assert_eq!(out.len(), 8 + 24 * blocks.len());
    blocks
}

#[test]
fn loss_counts_and_the_fraction_is_per_interval() {
    let t0 = Instant::now();
    let mut r = Reports::new(t0);
    assert_eq!(
        r.next_report(),
        None,
        "nothing published, nothing to wake for"
    );
    let mut out = vec![];
    assert_eq!(r.write(7, t0, &mut out), 0);
    assert!(out.is_empty());
    // 100 packets from 65_500 over the 16-bit wrap, every tenth one missing.
    for i in 0..100u64 {
        if i % 10 != 5 {
            let t = t0 + Duration::from_millis(i * 10);
            r.on_rtp(0xAB, 65_500 + i, (i * 900) as u32, VIDEO, t);
        }
    }
    let now = t0 + Duration::from_secs(1);
    let b = one(&mut r, 7, now)[0];
    assert_eq!(b.ssrc, 0xAB);
    assert_eq!(b.cumulative_lost, 10);
    assert_eq!(b.fraction_lost, (10 * 256 / 100) as u8);
    // Cycles in the high half: the wrap happened.
    assert_eq!(b.extended_max, 65_599);
    assert_eq!(b.extended_max >> 16, 1);
    assert_eq!(b.jitter, 0, "evenly paced packets have no jitter");
    assert_eq!((b.lsr, b.dlsr), (0, 0), "no sender report yet");
    // Nothing heard since: no block. Then a clean interval: fraction 0, the total stays.
    assert_eq!(r.write(7, now, &mut vec![]), 0);
    for i in 100..150u64 {
        r.on_rtp(
            0xAB,
            65_500 + i,
            (i * 900) as u32,
            VIDEO,
            t0 + Duration::from_millis(i * 10),
        );
    }
    let b = one(&mut r, 7, now + Duration::from_secs(1))[0];
    assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 10));
}

#[test]
fn duplicates_make_the_cumulative_loss_negative_on_the_wire() {
    let t0 = Instant::now();
    let mut r = Reports::new(t0);
    for _ in 0..3 {
        r.on_rtp(1, 10, 0, VIDEO, t0);
    }
    let b = one(&mut r, 9, t0)[0];
    assert_eq!((b.cumulative_lost, b.fraction_lost), (-2, 0));
}

#[test]
fn jitter_follows_rfc_3550_on_alternating_delays() {
    let t0 = Instant::now();
    let mut r = Reports::new(t0);
    // Packets every 20 ms of 48 kHz audio, arriving alternately 0 and 4 ms late: |D| is
    // always 4 ms = 192 samples, so J converges to 192.
    for i in 0..400u64 {
        let late = if i % 2 == 0 { 0 } else { 4 };
        let t = t0 + Duration::from_millis(i * 20 + late);
        r.on_rtp(5, i, (i * 960) as u32, 48_000, t);
    }
    let j = one(&mut r, 9, t0 + Duration::from_secs(9))[0].jitter;
    assert!((185..=192).contains(&j), "jitter {j}");
}

#[test]
fn sender_reports_from_the_peer_give_lsr_and_dlsr() {
    let t0 = Instant::now();
    let mut r = Reports::new(t0);
    let mut rin = RtcpIn::default();
    rin.keyed(&keying(true)).expect("GCM");
    // As the lean sender feeds it: the compound opened once, its packets handed over.
    let mut feed = |r: &mut Reports, c: &[u8], now| match rin.open(c) {
        Opened::Clear(clear) => packets(clear).filter(|p| r.on_packet(p, now)).count() > 0,
        _ => false,
    };
    r.on_rtp(0x1234, 1, 0, VIDEO, t0);
    // The publisher's compound: its SR for 0x1234 first, sealed with the other half.
    let mut publisher = Sealer::new(&keys::provider(), &keying(false), 0x1234).expect("keys");
    let ntp: u64 = 0xDEAD_BEEF_CAFE_F00D;
    let mut c = vec![0x80, SR, 0, 6];
    c.extend_from_slice(&0x1234u32.to_be_bytes());
    c.extend_from_slice(&ntp.to_be_bytes());
    c.extend_from_slice(&[0; 12]);
    // An SDES after it is not an SR.
    c.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0x12, 0x34, 1, 1, b'x', 0]);
    publisher.seal_rtcp(&mut c).expect("sealed");
    let got = t0 + Duration::from_millis(100);
    assert!(feed(&mut r, &c, got));
    assert_eq!(r.srs_seen, 1);
    let b = one(&mut r, 9, got + Duration::from_millis(250))[0];
    assert_eq!(b.lsr, 0xBEEF_CAFE, "the middle 32 bits of the NTP time");
    assert_eq!(b.dlsr, 65_536 / 4, "a quarter second in 1/65536 s");
    // A tampered compound is refused, never read; a receiver report or a short SR is no SR.
    let n = c.len();
    c[n - 8] ^= 1;
    assert!(!feed(&mut r, &c, got));
    assert!(!r.on_packet(&[0x80, RR, 0, 1, 0, 0, 0, 1], got));
    assert!(!r.on_packet(&[0x80, SR, 0, 1, 0, 0, 0, 1], got));
    assert_eq!(r.srs_seen, 1);
}

#[test]
fn sources_are_bounded_and_silent_ones_make_room() {
    let t0 = Instant::now();
    let mut r = Reports::new(t0);
    for ssrc in 0..(MAX_SOURCES as u32 + 5) {
        r.on_rtp(ssrc, 1, 0, VIDEO, t0);
    }
    let mut out = vec![];
    assert_eq!(
        r.write(9, t0, &mut out),
        MAX_SOURCES,
        "one RR holds 31 blocks"
    );
    assert_eq!(out[0] & 0x1f, MAX_SOURCES as u8);
    // Eleven seconds on, a new source takes a forgotten one's place.
    let later = t0 + Duration::from_secs(11);
    r.on_rtp(1_000, 1, 0, VIDEO, later);
    let blocks = one(&mut r, 9, later);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].ssrc, 1_000);
}
