//! Tests of the send register, the feedback parser and writer.

use super::*;
use proptest::prelude::*;

/// A feedback packet from test SSRCs; `chunking` picks run-length (0), vectors where the
/// statuses allow one-bit ones (1) or two-bit vectors (2).
pub(crate) fn write_feedback(
    base_seq: u16,
    reference: u32,
    fb_count: u8,
    statuses: &[Option<i16>],
    chunking: u8,
) -> Vec<u8> {
    let chunking = match chunking {
        0 => Chunking::RunLength,
        1 => Chunking::Vectors,
        _ => Chunking::TwoBit,
    };
    let mut out = vec![];
    super::write_feedback(
        &mut out,
        0x1111_1111,
        0x2222_2222,
        base_seq,
        reference,
        fb_count,
        statuses,
        chunking,
    );
    out
}

fn parse(buf: &[u8]) -> Result<Feedback, FeedbackError> {
    let mut fb = Feedback::default();
    parse_feedback(buf, &mut fb).map(|()| fb)
}

#[test]
fn parses_a_handmade_packet_with_every_chunk_kind() {
    // base 0xfffe, 10 statuses, reference 0x000102, count 7.
    // Chunks: run-length "received small" ×2, then a one-bit chunk 1,0,0,… of which the
    // first 8 symbols are used.
    let mut p = vec![0x8f, 205, 0, 0];
    p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    p.extend_from_slice(&[0xff, 0xfe, 0x00, 10]);
    p.extend_from_slice(&[0x00, 0x01, 0x02, 7]);
    p.extend_from_slice(&(0x2000u16 | 2).to_be_bytes()); // run: small ×2
    p.extend_from_slice(&0b1010_0000_0000_0000u16.to_be_bytes()); // T=1, S=0, symbols 1,0,0…
    p.extend_from_slice(&[4, 8, 12]); // deltas: 1 ms, 2 ms, 3 ms
    p.push(0); // pad to 4
    let words = (p.len() / 4 - 1) as u16;
    p[2..4].copy_from_slice(&words.to_be_bytes());
    let fb = parse(&p).expect("parses");
    assert_eq!(fb.sender_ssrc, 0x0102_0304);
    assert_eq!(fb.media_ssrc, 0x0506_0708);
    assert_eq!(fb.base_seq, 0xfffe);
    assert_eq!(fb.reference_time, 0x000102);
    assert_eq!(fb.fb_count, 7);
    let d: Vec<_> = fb.statuses.iter().map(|s| s.delta).collect();
    let expect = [
        Some(4),
        Some(8),
        Some(12),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ];
    // Statuses 0,1 small (4, 8); status 2 received (12); the rest not received.
    assert_eq!(&d[..], &expect[..]);
}

#[test]
fn two_bit_chunk_carries_large_and_negative_deltas() {
    let statuses = [Some(-40), None, Some(7), Some(1000), None, Some(0)];
    let p = write_feedback(100, 5, 1, &statuses, 2);
    let fb = parse(&p).expect("parses");
    let d: Vec<_> = fb.statuses.iter().map(|s| s.delta).collect();
    assert_eq!(d, statuses);
}

#[test]
fn refuses_malformed_packets_with_a_reason() {
    let good = write_feedback(1, 1, 1, &[Some(4), Some(300), None], 2);
    assert!(parse(&good).is_ok());
    assert_eq!(parse(&good[..19]), Err(FeedbackError::Truncated));
    let mut wrong = good.clone();
    wrong[1] = 200;
    assert_eq!(parse(&wrong), Err(FeedbackError::NotTransportCc));
    // Length field says more than the buffer holds.
    let mut long = good.clone();
    long[3] += 1;
    assert_eq!(parse(&long), Err(FeedbackError::Truncated));
    // Status count larger than the chunks cover.
    let mut more = write_feedback(1, 1, 1, &[Some(4)], 2);
    more[14..16].copy_from_slice(&8000u16.to_be_bytes());
    assert_eq!(parse(&more), Err(FeedbackError::MissingChunks));
    // Count over the limit.
    let mut huge = good.clone();
    huge[14..16].copy_from_slice(&9000u16.to_be_bytes());
    assert_eq!(parse(&huge), Err(FeedbackError::TooManyStatuses(9000)));
    // A run of the reserved symbol.
    let mut reserved = write_feedback(1, 1, 1, &[None], 0);
    reserved[20..22].copy_from_slice(&(0x6000u16 | 1).to_be_bytes());
    assert_eq!(parse(&reserved), Err(FeedbackError::ReservedSymbol));
    // Deltas cut short: claim 3 received statuses with one delta byte.
    let mut short = write_feedback(1, 1, 1, &[Some(1)], 0);
    short[14..16].copy_from_slice(&3u16.to_be_bytes());
    short[20..22].copy_from_slice(&(0x2000u16 | 3).to_be_bytes());
    assert_eq!(parse(&short), Err(FeedbackError::MissingDeltas));
    // Padding bit with a padding count larger than the packet.
    let mut pad = good.clone();
    pad[0] |= 0x20;
    let last = pad.len() - 1;
    pad[last] = 200;
    assert_eq!(parse(&pad), Err(FeedbackError::BadPadding));
}

#[test]
fn a_run_of_losses_costs_no_deltas() {
    // 8,000 lost packets in one 24-byte packet: bounded by MAX_STATUSES, all `None`.
    let p = write_feedback(0, 0, 0, &vec![None; 8000], 0);
    assert!(p.len() <= 28, "{}", p.len());
    let fb = parse(&p).expect("parses");
    assert_eq!(fb.statuses.len(), 8000);
    assert!(fb.statuses.iter().all(|s| s.delta.is_none()));
}

fn register(t0: Instant) -> SendRegister {
    SendRegister::new(RegisterConfig::default(), t0)
}

#[test]
fn default_register_is_small() {
    let r = register(Instant::now());
    assert_eq!(RegisterConfig::default().capacity, 512);
    assert_eq!(r.heap_bytes(), 512 * 8);
    assert_eq!(
        RegisterConfig::for_rate(1, 1, Duration::from_millis(1)).capacity,
        RegisterConfig::MIN_CAPACITY
    );
    assert_eq!(
        RegisterConfig::for_rate(u64::MAX, 1, Duration::from_secs(100)).capacity,
        RegisterConfig::MAX_CAPACITY
    );
}

#[test]
fn resolves_arrivals_losses_and_skips_duplicates() {
    let t0 = Instant::now();
    let mut r = register(t0);
    for i in 0..5u64 {
        let seq = r.on_send(t0 + Duration::from_millis(i * 10), 1000 + i as usize);
        assert_eq!(seq, i);
    }
    // Packet 2 lost; arrivals every 10 ms (40 ticks) after reference 10 × 64 ms.
    let p = write_feedback(0, 10, 0, &[Some(4), Some(40), None, Some(80), Some(40)], 2);
    let fb = parse(&p).expect("parses");
    let now = t0 + Duration::from_millis(100);
    let mut out = Vec::new();
    r.resolve(now, &fb, &mut out);
    assert_eq!(out.len(), 5);
    let base = 10 * 64_000;
    assert_eq!(out[0].arrival_us, Some(base + 1_000));
    assert_eq!(out[1].arrival_us, Some(base + 11_000));
    assert_eq!(out[2].arrival_us, None);
    assert_eq!(out[3].arrival_us, Some(base + 31_000));
    assert_eq!(out[4].arrival_us, Some(base + 41_000));
    for (i, res) in out.iter().enumerate() {
        assert_eq!(res.seq, i as u64);
        assert_eq!(res.size, 1000 + i as u16);
        assert_eq!(
            r.instant(res.sent_us),
            t0 + Duration::from_millis(i as u64 * 10)
        );
    }
    // The same feedback again yields nothing; a later one reporting 2 as received yields it.
    out.clear();
    r.resolve(now, &fb, &mut out);
    assert!(out.is_empty(), "{out:?}");
    let late = write_feedback(2, 10, 1, &[Some(200)], 0);
    r.resolve(now, &parse(&late).expect("parses"), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq, 2);
    assert_eq!(out[0].arrival_us, Some(base + 50_000));
}

#[test]
fn sequence_numbers_unwrap_across_16_bits_and_evicted_or_unsent_are_skipped() {
    let t0 = Instant::now();
    let mut r = register(t0);
    for i in 0..70_000u64 {
        r.on_send(t0 + Duration::from_micros(i * 100), 500);
    }
    // The last 512 sent are 69_488..70_000; wire seq of 69_990 is 69_990 - 65_536 = 4_454.
    let now = t0 + Duration::from_secs(8);
    let mut out = Vec::new();
    let statuses = vec![Some(4); 20]; // 69_990..70_010: the last 10 were never sent
    let fb = parse(&write_feedback(4_454, 1, 0, &statuses, 1)).expect("parses");
    r.resolve(now, &fb, &mut out);
    assert_eq!(out.len(), 10);
    assert_eq!(out[0].seq, 69_990);
    assert_eq!(out[9].seq, 69_999);
    assert_eq!(
        r.instant(out[0].sent_us),
        t0 + Duration::from_micros(69_990 * 100)
    );
    // Seq 69_000 was overwritten long ago.
    out.clear();
    let fb = parse(&write_feedback(
        (69_000u64 & 0xffff) as u16,
        1,
        0,
        &[Some(4)],
        0,
    ))
    .expect("parses");
    r.resolve(now, &fb, &mut out);
    assert!(out.is_empty());
}

#[test]
fn reference_time_unwraps_at_24_bits() {
    let t0 = Instant::now();
    let mut r = register(t0);
    r.on_send(t0, 100);
    r.on_send(t0, 100);
    let mut out = Vec::new();
    let top = (1 << 24) - 1;
    r.resolve(
        t0,
        &parse(&write_feedback(0, top, 0, &[Some(0)], 0)).expect("parses"),
        &mut out,
    );
    r.resolve(
        t0,
        &parse(&write_feedback(1, 0, 1, &[Some(0)], 0)).expect("parses"),
        &mut out,
    );
    assert_eq!(out.len(), 2);
    let (a, b) = (out[0].arrival_us.unwrap(), out[1].arrival_us.unwrap());
    assert_eq!(
        b - a,
        64_000,
        "one step of the reference clock across the wrap"
    );
}

#[test]
fn send_times_survive_the_32_bit_microsecond_wrap() {
    let t0 = Instant::now();
    let mut r = register(t0);
    let late = t0 + Duration::from_secs(5_000); // past 2^32 µs (71.6 min)
    r.on_send(late, 100);
    let mut out = Vec::new();
    let fb = parse(&write_feedback(0, 0, 0, &[Some(0)], 0)).expect("parses");
    r.resolve(late + Duration::from_millis(50), &fb, &mut out);
    assert_eq!(r.instant(out[0].sent_us), late);
}

proptest! {
    #[test]
    fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                 fix_header in any::<bool>()) {
        let mut bytes = bytes;
        if fix_header && bytes.len() >= 4 {
            bytes[0] = 0x8f;
            bytes[1] = 205;
            let words = (bytes.len() / 4).saturating_sub(1) as u16;
            bytes[2..4].copy_from_slice(&words.to_be_bytes());
        }
        let mut fb = Feedback::default();
        if parse_feedback(&bytes, &mut fb).is_ok() {
            prop_assert!(fb.statuses.len() <= usize::from(MAX_STATUSES));
            // Whatever parsed, resolving it is bounded by the register.
            let t0 = Instant::now();
            let mut r = register(t0);
            for _ in 0..600 {
                r.on_send(t0, 1200);
            }
            let mut out = Vec::new();
            r.resolve(t0, &fb, &mut out);
            prop_assert!(out.len() <= 512);
        }
    }

    #[test]
    fn written_feedback_parses_back(
        base in any::<u16>(),
        reference in 0u32..(1 << 24),
        statuses in proptest::collection::vec(
            prop_oneof![Just(None), (0i16..=255).prop_map(Some), any::<i16>().prop_map(Some)],
            1..300),
        chunking in 0u8..3,
    ) {
        let p = write_feedback(base, reference, 9, &statuses, chunking);
        let fb = parse(&p).expect("own packet parses");
        prop_assert_eq!(fb.base_seq, base);
        prop_assert_eq!(fb.reference_time, reference);
        let d: Vec<_> = fb.statuses.iter().map(|s| s.delta).collect();
        prop_assert_eq!(d, statuses);
    }
}
