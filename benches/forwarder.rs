//! The per-packet, per-subscriber decision: simulcast layer selection (`LayerSelector`),
//! `Forwarder::decide` and `Rewriter::rewrite`, and a subscriber's layer allocation.

use confab::media::allocation::{allocate, Candidate, Priority};
use confab::media::forwarder::PacketView;
use confab::media::rewrite::Rewriter;
use confab::media::simulcast::{LayerDecision, LayerSelector};
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
                capture: t0 + Duration::from_micros(seq * 300),
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
    // The whole per-subscriber path for one simulcast packet: pick the layer, then decide and
    // rewrite. Three layers arrive interleaved; the subscriber receives the middle one.
    let mut sel = LayerSelector::new(Some(1));
    let mut f = Forwarder::new();
    let mut n = 0u64;
    g.bench_function("decide_with_layer_selection", |b| {
        b.iter(|| {
            n += 1;
            let layer = (n % 3) as u8;
            let seq = n / 3;
            let key = seq.is_multiple_of(90);
            match sel.decide(black_box(layer), key) {
                LayerDecision::Forward { switched } => {
                    if switched {
                        f.switch_source();
                    }
                    let p = PacketView {
                        seq,
                        time: seq * 3000,
                        clock_rate: 90_000,
                        video: true,
                        keyframe_start: key,
                        arrival: t0 + Duration::from_micros(n * 100),
                        capture: t0 + Duration::from_micros(n * 100),
                    };
                    black_box(f.decide(&p));
                }
                LayerDecision::Drop(reason) => {
                    black_box(reason);
                }
            }
        })
    });
    g.finish();
}

fn allocation(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocation");
    for videos in [9usize, 49] {
        let candidates: Vec<Candidate> = (0..videos)
            .map(|i| Candidate {
                priority: if i == 3 {
                    Priority::Speaker
                } else {
                    Priority::Other(i as u64)
                },
                wanted: Some(if i < 4 { 2 } else { 0 }),
                rates: vec![150_000, 500_000, 1_500_000],
            })
            .collect();
        g.bench_function(format!("allocate_{videos}_videos"), |b| {
            b.iter(|| black_box(allocate(Some(black_box(4_000_000)), 25, &candidates)))
        });
    }
    g.finish();
}

criterion_group!(benches, decide, allocation);
criterion_main!(benches);
