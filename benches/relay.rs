//! The relay link's per-packet cost: sealing one publisher packet into a relay datagram on the
//! origin (once per edge node, whatever its number of viewers), and opening it on the edge.

use confab::media::fast::pool;
use confab::media::relay::wire::{RelayOpener, RelayPacket, RelaySealer};
use confab::media::relay::RelayKey;
use confab::protocol::TrackId;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn packet(seq: u64) -> RelayPacket {
    RelayPacket {
        track: TrackId(3),
        layer: 2,
        pt: 96,
        marker: false,
        seq,
        time: seq * 3000,
        audio_level: None,
        capture_us: seq * 33_333,
    }
}

fn relay(c: &mut Criterion) {
    let key = RelayKey::derive(b"cluster secret", &[5; 16], "room", "edge");
    // A full video packet, as most of a camera's are.
    let payload = vec![0x5a; 1100];
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    let mut sealer = RelaySealer::new(1, &key).expect("sealer");
    let mut seq = 0u64;
    g.bench_function("seal_1100", |b| {
        b.iter(|| {
            seq += 1;
            let datagram = black_box(sealer.seal(&packet(seq), black_box(&payload)));
            // Egress hands every sent datagram back to the pool the sealer takes from.
            if let Some(d) = datagram {
                pool::give(d);
            }
        })
    });
    // Opening needs fresh datagrams (the replay window refuses repeats): sealed ahead.
    let mut sealer = RelaySealer::new(1, &key).expect("sealer");
    let datagrams: Vec<Vec<u8>> = (0..20_000)
        .filter_map(|s| sealer.seal(&packet(s), &payload))
        .collect();
    let mut opener = RelayOpener::new(1, &key).expect("opener");
    let mut i = 0usize;
    g.bench_function("open_1100", |b| {
        b.iter(|| {
            i = (i + 1) % datagrams.len();
            if i == 0 {
                // Past the end every datagram would be a replay: a new opener starts over.
                opener = RelayOpener::new(1, &key).expect("opener");
            }
            let opened = opener.open(black_box(&datagrams[i]));
            assert!(opened.is_ok(), "every datagram opens once");
            black_box(opened)
        })
    });
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
