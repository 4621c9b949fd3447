//! The per-packet, per-subscriber decision: `Forwarder::decide` and `Rewriter::rewrite`.

use confab::media::forwarder::PacketView;
use confab::media::rewrite::Rewriter;
use confab::media::Forwarder;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};

fn decide(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("forwarder");
    g.throughput(Throughput::Elements(1));
    let mut f = Forwarder::new();
    let mut seq = 1_000u64;
    g.bench_function("decide_video", |b| {
        b.iter(|| {
            seq += 1;
            let p = PacketView {
                seq,
                time: seq * 3000,
                clock_rate: 90_000,
                video: true,
                keyframe_start: seq.is_multiple_of(90),
                arrival: t0 + Duration::from_micros(seq * 300),
            };
            black_box(f.decide(black_box(&p)))
        })
    });
    let mut r = Rewriter::new();
    let mut seq = 1_000u64;
    g.bench_function("rewrite", |b| {
        b.iter(|| {
            seq += 1;
            black_box(r.rewrite(
                black_box(seq),
                seq * 960,
                t0 + Duration::from_micros(seq * 20_000),
                48_000,
            ))
        })
    });
    let mut r = Rewriter::new();
    let mut seq = 1_000u64;
    g.bench_function("rewrite_with_source_switch_every_100", |b| {
        b.iter(|| {
            seq += 1;
            if seq.is_multiple_of(100) {
                r.switch_source();
            }
            black_box(r.rewrite(
                black_box(seq),
                seq * 3000,
                t0 + Duration::from_micros(seq * 300),
                90_000,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
