//! Tests of the per-source history, the per-subscriber seq map and RTX numbering.

use super::*;

fn packet(seq: u64, len: usize) -> Vec<u8> {
    let mut p = vec![(seq % 251) as u8; len];
    p[..8].copy_from_slice(&seq.to_be_bytes());
    p
}

#[test]
fn stores_and_finds_by_source_seq_and_refuses_old_or_huge() {
    let t0 = Instant::now();
    let mut h = SourceHistory::new(HistoryConfig::default());
    for seq in 10..20 {
        h.insert(t0, seq, &packet(seq, 1_000)).expect("stored");
    }
    assert_eq!(h.get(t0, 15), Some(&packet(15, 1_000)[..]));
    assert_eq!(h.get(t0, 9), None);
    assert_eq!(h.insert(t0, 19, &packet(19, 100)), Err(NotStored::NotNewer));
    assert_eq!(h.insert(t0, 12, &packet(12, 100)), Err(NotStored::NotNewer));
    assert_eq!(h.insert(t0, 30, &[0; 1_501]), Err(NotStored::TooLarge));
    // Gaps (ingress loss) are fine.
    h.insert(t0, 25, &packet(25, 300)).expect("stored");
    assert_eq!(h.get(t0, 22), None);
    assert_eq!(h.get(t0, 25), Some(&packet(25, 300)[..]));
}

#[test]
fn eviction_by_age_bytes_and_count() {
    let t0 = Instant::now();
    let mut h = SourceHistory::new(HistoryConfig::default());
    // Age: 1 s.
    h.insert(t0, 1, &packet(1, 500)).expect("stored");
    let later = t0 + Duration::from_millis(1_001);
    assert_eq!(h.get(later, 1), None, "too old to be worth resending");
    h.insert(later, 2, &packet(2, 500)).expect("stored");
    assert_eq!(h.len(), 1);
    // Bytes: 1 MiB of 1,500-byte packets is 699 packets.
    let mut h = SourceHistory::new(HistoryConfig::default());
    for seq in 0..2_000u64 {
        h.insert(t0, seq, &packet(seq, 1_500)).expect("stored");
        assert!(h.bytes() <= (1 << 20) + 1_500, "{}", h.bytes());
    }
    assert_eq!(h.len(), (1 << 20) / 1_500);
    assert_eq!(h.get(t0, 1_999), Some(&packet(1_999, 1_500)[..]));
    assert_eq!(h.get(t0, 2_000 - 700), None);
    // Count: 4,096 small packets.
    let mut h = SourceHistory::new(HistoryConfig::default());
    for seq in 0..5_000u64 {
        h.insert(t0, seq, &packet(seq, 20)).expect("stored");
    }
    assert_eq!(h.len(), 4_096);
    assert_eq!(h.get(t0, 5_000 - 4_097), None);
    assert!(h.get(t0, 5_000 - 4_096).is_some());
}

#[test]
fn buffers_are_reused_after_eviction() {
    let t0 = Instant::now();
    let mut h = SourceHistory::new(HistoryConfig::default());
    for seq in 0..10_000u64 {
        h.insert(t0 + Duration::from_millis(seq), seq, &packet(seq, 1_200))
            .expect("stored");
    }
    // 1 s at 1 packet per ms: ~1,000 live, and the byte count did not grow past that.
    assert!(h.len() <= 1_001, "{}", h.len());
    assert!(h.bytes() <= 1_002 * 1_200 + 1_500, "{}", h.bytes());
}

#[test]
fn nack_maps_through_subscriber_seq_to_source_payload_across_wraps() {
    let t0 = Instant::now();
    let mut low = SourceHistory::new(HistoryConfig::default());
    let mut high = SourceHistory::new(HistoryConfig::default());
    let mut map = SeqMap::new(1_024);
    assert_eq!(map.heap_bytes(), 1_024 * 9);
    // Source seqs straddle 2^32; subscriber seqs straddle 2^16; a layer switch in the middle.
    let src_base = (1u64 << 32) - 100;
    let out_base = 65_536 - 50;
    for i in 0..200u64 {
        let (hist, layer) = if i < 120 {
            (&mut low, 0)
        } else {
            (&mut high, 1)
        };
        let src = src_base + i;
        hist.insert(t0, src, &packet(src, 200)).expect("stored");
        map.record(out_base + i, layer, src, 0);
    }
    // A NACK for wire seq 5 is subscriber seq 65_541 = out_base + 55 (from layer 0).
    let r = map.lookup_wire(5).expect("mapped");
    assert_eq!(r.source, 0);
    let src = low.unwrap_low32(r.seq_low32).expect("unwrapped");
    assert_eq!(src, src_base + 55);
    assert_eq!(low.get(t0, src), Some(&packet(src, 200)[..]));
    // After the switch: layer 1.
    let r = map.lookup(out_base + 150).expect("mapped");
    assert_eq!(r.source, 1);
    let src = high.unwrap_low32(r.seq_low32).expect("unwrapped");
    assert_eq!(src, src_base + 150);
    // Not yet sent, and long gone.
    assert_eq!(map.lookup(out_base + 200), None);
    for i in 200..3_000u64 {
        map.record(out_base + i, 1, src_base + i, 0);
    }
    assert_eq!(map.lookup(out_base + 100), None);
    assert!(map.lookup(out_base + 2_999).is_some());
}

#[test]
fn skipped_subscriber_seqs_map_to_nothing() {
    let mut map = SeqMap::new(64);
    map.record(10, 0, 100, 0);
    map.record(20, 0, 101, 0);
    assert!(map.lookup(10).is_some());
    assert_eq!(map.lookup(15), None);
    // A jump longer than the ring clears it all.
    map.record(1_000, 0, 102, 0);
    assert_eq!(map.lookup(20), None);
    assert_eq!(map.lookup(990), None);
    // Late records older than the ring are ignored.
    map.record(900, 0, 1, 0);
    assert_eq!(map.lookup(900), None);
}

#[test]
fn rtx_numbering_and_payload() {
    let mut rtx = RtxSequencer::new(65_535);
    assert_eq!(rtx.next_seq() as u16, 65_535);
    assert_eq!(rtx.next_seq() as u16, 0);
    let mut out = vec![9; 40];
    rtx_payload(0xabcd, &[1, 2, 3], &mut out);
    assert_eq!(out, [0xab, 0xcd, 1, 2, 3]);
}

#[test]
fn a_packet_is_resent_at_most_once_per_round_trip() {
    let t0 = Instant::now();
    let rtt = Duration::from_millis(80);
    let mut map = SeqMap::new(64);
    map.record(7, 0, 70, 9_000);
    assert_eq!(map.lookup(7).map(|r| r.time), Some(9_000));
    assert!(map.first_resend(7, t0, rtt));
    // The receiver's next NACK comes before the copy could have arrived: ignored.
    assert!(!map.first_resend(7, t0 + Duration::from_millis(40), rtt));
    assert!(map.first_resend(8, t0 + Duration::from_millis(40), rtt));
    // A round trip later the copy was lost too: once more.
    assert!(map.first_resend(7, t0 + rtt, rtt));
    // The memory stays bounded whatever the NACKs name.
    for s in 0..10_000 {
        map.first_resend(s, t0 + rtt, Duration::from_secs(10));
    }
    assert!(map.resent.len() <= RESENT_KEPT);
}

#[test]
fn marker_bits_are_kept_with_the_payload() {
    let t0 = Instant::now();
    let mut h = SourceHistory::new(HistoryConfig::default());
    h.insert_rtp(t0, 1, true, &[1, 2]).expect("stored");
    h.insert_rtp(t0, 2, false, &[3]).expect("stored");
    assert_eq!(h.get_rtp(t0, 1), Some((true, &[1u8, 2][..])));
    assert_eq!(h.get_rtp(t0, 2), Some((false, &[3u8][..])));
}
