//! Congestion control per forwarded packet: recording a send, parsing transport-cc feedback,
//! resolving it against the register and feeding the GCC estimator.

use confab::media::fast::gcc::{Estimator, Gcc, GccConfig};
use confab::media::fast::twcc::{parse_feedback, Feedback, RegisterConfig, SendRegister};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};

/// Packets per feedback: 50 ms of a 2 Mbit/s subscriber.
const PER_FEEDBACK: u16 = 100;

/// A feedback for `PER_FEEDBACK` packets from `base`, all received 0.5 ms apart (two-bit
/// chunks, small deltas), with one loss every 25 packets.
fn feedback(base: u16, reference: u32) -> Vec<u8> {
    let mut p = vec![0x8f, 205, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
    p.extend_from_slice(&base.to_be_bytes());
    p.extend_from_slice(&PER_FEEDBACK.to_be_bytes());
    p.extend_from_slice(&(reference << 8).to_be_bytes());
    let received = |i: u16| i % 25 != 24;
    let mut i = 0;
    while i < PER_FEEDBACK {
        let mut c = 0xc000u16;
        for k in 0..7 {
            if i + k < PER_FEEDBACK && received(i + k) {
                c |= 1 << (12 - 2 * k);
            }
        }
        p.extend_from_slice(&c.to_be_bytes());
        i += 7;
    }
    for i in 0..PER_FEEDBACK {
        if received(i) {
            p.push(2);
        }
    }
    while p.len() % 4 != 0 {
        p.push(0);
    }
    let words = (p.len() / 4 - 1) as u16;
    p[2..4].copy_from_slice(&words.to_be_bytes());
    p
}

fn cc(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("lean_cc");
    g.throughput(Throughput::Elements(u64::from(PER_FEEDBACK)));
    let fb = feedback(0, 1);
    let mut parsed = Feedback::default();
    g.bench_function("parse_feedback", |b| {
        b.iter(|| parse_feedback(black_box(&fb), &mut parsed).expect("parses"))
    });
    // The whole per-packet cost: record 100 sends, then parse, resolve and estimate.
    let mut register = SendRegister::new(RegisterConfig::default(), t0);
    let mut gcc = Gcc::new(GccConfig::default(), t0);
    let mut results = Vec::new();
    let mut now = t0;
    let mut reference = 0u32;
    g.bench_function("send_parse_resolve_estimate", |b| {
        b.iter(|| {
            let base = register.next_seq() as u16;
            for _ in 0..PER_FEEDBACK {
                now += Duration::from_micros(500);
                register.on_send(now, 1_200);
            }
            reference = (reference + 1) & 0xff_ffff;
            let bytes = feedback(base, reference);
            parse_feedback(&bytes, &mut parsed).expect("parses");
            results.clear();
            register.resolve(now, &parsed, &mut results);
            gcc.on_feedback(now, &results);
            black_box(gcc.estimate())
        })
    });
    g.finish();
}

criterion_group!(benches, cc);
criterion_main!(benches);
