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
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
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

/// A fixed amount of work instead of Criterion's timed loop, for instruction counts
/// (`scripts/callgrind.sh`): `FANOUT_FIXED=<str0m|lean>:<viewers>:<seconds>` sets the room up,
/// runs `seconds` of virtual time and prints the packets forwarded in them. Only the room's
/// own calls ([`Sim::room_time`]'s) are collected under callgrind; two lengths subtracted
/// remove the setup.
fn fixed(spec: &str) -> Result<(), String> {
    let usage = || format!("FANOUT_FIXED={spec:?}: want <str0m|lean>:<viewers>:<seconds>");
    let mut parts = spec.split(':');
    let path = match parts.next() {
        Some("str0m") => SendPath::Str0m,
        Some("lean") => SendPath::Lean,
        _ => return Err(usage()),
    };
    let viewers: usize = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(usage)?;
    let secs: u64 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(usage)?;
    if !(1..=1000).contains(&viewers) || secs > 600 {
        return Err(format!("{}: at most 1000 viewers and 600 s", usage()));
    }
    let mut sim = webinar(viewers, path);
    let before = sim.conf.room.counters().rtp_forwarded;
    sim.run_for(Duration::from_secs(secs));
    let forwarded = sim.conf.room.counters().rtp_forwarded - before;
    println!("forwarded {forwarded} packets in {secs} s");
    Ok(())
}

criterion_group!(benches, fanout);

fn main() {
    if let Ok(spec) = std::env::var("FANOUT_FIXED") {
        if let Err(e) = fixed(&spec) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
