//! 1 → N fan-out through the media core, SRTP included: forwarded packets per CPU-second of
//! the room alone.
//!
//! Runs the virtual-time harness ([`confab::sim`]) in 1 ms steps over zero-delay lossless
//! links. Viewers count received SRTP from its clear header instead of decrypting it, and only
//! the time spent inside the room (its inputs and `poll_output`, [`Sim::room_time`]) is
//! measured, so the figure is the server's media-core cost per forwarded packet: decrypt once,
//! decide, rewrite, encrypt per subscriber. Socket costs are not included (see `confab-load`).
//! Two groups: `fanout_1_to_n` with str0m sending to the viewers, `fanout_1_to_n_lean` with
//! the lean send path (`media::fast`).

use confab::bot::StreamShape;
use confab::media::config::SendPath;
use confab::media::RoomConfig;
use confab::protocol::Role;
use confab::sim::{Link, Sim};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

/// A connected 1 → `viewers` webinar whose viewers only count what they receive.
fn webinar(viewers: usize, send_path: SendPath) -> Sim {
    let mut sim = Sim::new(RoomConfig {
        max_participants: viewers + 1,
        send_path,
        ..RoomConfig::default()
    });
    let instant = Link {
        delay: Duration::ZERO,
        ..Link::default()
    };
    sim.set_new_links(instant, instant);
    // The 1 ms step this benchmark always used: its figures stay comparable with earlier ones.
    sim.set_tick(Some(Duration::from_millis(1)));
    sim.join("host", Role::Host, true, StreamShape::default())
        .expect("room has space");
    let mut ids = vec![];
    for n in 0..viewers {
        let id = sim
            .join(
                &format!("v{n}"),
                Role::Audience,
                false,
                StreamShape::default(),
            )
            .expect("room has space");
        ids.push(id);
    }
    sim.run_for(Duration::from_secs(2));
    assert!(
        sim.conf.room.counters().rtp_forwarded > 0,
        "the fan-out must be flowing before it is measured"
    );
    for id in ids {
        sim.set_decrypt(id, false);
    }
    sim
}

fn fanout(c: &mut Criterion) {
    fanout_on(c, "fanout_1_to_n", SendPath::Str0m);
    fanout_on(c, "fanout_1_to_n_lean", SendPath::Lean);
}

fn fanout_on(c: &mut Criterion, name: &str, path: SendPath) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for n in [10usize, 100] {
        let mut sim = webinar(n, path);
        // Forwarded packets per virtual second, to state throughput in packets.
        let before = sim.conf.room.counters().rtp_forwarded;
        sim.run_for(Duration::from_secs(1));
        let per_second = sim.conf.room.counters().rtp_forwarded - before;
        g.throughput(Throughput::Elements(per_second));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let start = sim.room_time();
                for _ in 0..iters {
                    sim.run_for(Duration::from_secs(1));
                }
                sim.room_time() - start
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
