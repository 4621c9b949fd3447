//! 1 → N fan-out through the media core, SRTP included: forwarded packets per CPU-second of
//! the room alone.
//!
//! A lean zero-delay harness around [`Room`] and bot cores (no links, no loss): subscribers
//! count received SRTP from its clear header instead of decrypting it, and only the time spent
//! inside the room (its inputs and `poll_output`) is measured, so the figure is the server's
//! media-core cost per forwarded packet: decrypt once, decide, rewrite, encrypt per
//! subscriber. Socket costs are not included (see `confab-load` for those).

use confab::bot::core::{ClientBehaviour, ClientCore, ClientOutput};
use confab::bot::StreamShape;
use confab::conference::{Admission, Conference, JoinRequest, Output};
use confab::media::{Room, RoomConfig};
use confab::protocol::{ParticipantId, Role, ServerMsg};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::net::Protocol;

struct Peer {
    id: ParticipantId,
    addr: SocketAddr,
    core: ClientCore,
}

struct Harness {
    now: Instant,
    conf: Conference,
    server: SocketAddr,
    peers: Vec<Peer>,
    by_addr: HashMap<SocketAddr, usize>,
    by_id: HashMap<ParticipantId, usize>,
    /// Time spent inside the room.
    room_time: Duration,
}

impl Harness {
    fn new(max: usize) -> Harness {
        let server: SocketAddr = ([10, 0, 0, 1], 10000).into();
        let config = RoomConfig {
            max_participants: max,
            ..RoomConfig::default()
        };
        Harness {
            now: Instant::now(),
            conf: Conference::new(Room::new("bench", config, vec![server])),
            server,
            peers: vec![],
            by_addr: HashMap::new(),
            by_id: HashMap::new(),
            room_time: Duration::ZERO,
        }
    }

    fn timed<R>(&mut self, f: impl FnOnce(&mut Conference, Instant) -> R) -> R {
        let t = Instant::now();
        let r = f(&mut self.conf, self.now);
        self.room_time += t.elapsed();
        r
    }

    fn join(&mut self, role: Role, publish: bool) {
        let n = self.peers.len() as u64 + 1;
        let id = ParticipantId(n);
        let request = JoinRequest {
            id,
            name: format!("p{n}"),
            role: Some(role),
            identity: format!("p{n}"),
            mode: None,
            password: None,
        };
        let admission = self.timed(|r, now| r.join(request, now));
        assert_eq!(admission, Admission::Joined, "room has space");
        let addr: SocketAddr = ([10, 1, (n >> 8) as u8, n as u8], 5000).into();
        let behaviour = ClientBehaviour {
            publish,
            subscribe: true,
            shape: StreamShape::default(),
            ignore_role: false,
            audio_slots: 0,
        };
        // The core is created once `joined` arrives; until then its signals wait here.
        let mut tracks = None;
        let mut others = vec![];
        loop {
            match self.timed(|r, now| r.poll_output(now)) {
                Output::Timeout(_) => break,
                Output::Signal(to, ServerMsg::Joined { tracks: t, .. }) if to == id => {
                    tracks = Some(t)
                }
                o => others.push(o),
            }
        }
        let core = ClientCore::new(behaviour, addr, id, role, tracks.expect("joined"), self.now)
            .expect("client core");
        self.by_addr.insert(addr, self.peers.len());
        self.by_id.insert(id, self.peers.len());
        self.peers.push(Peer { id, addr, core });
        for o in others {
            self.carry_out(o);
        }
        self.settle();
    }

    fn carry_out(&mut self, o: Output) {
        match o {
            Output::Transmit(t) => {
                if let Some(&i) = self.by_addr.get(&t.destination) {
                    self.peers[i]
                        .core
                        .handle_datagram(self.server, &t.contents, self.now);
                }
            }
            Output::Signal(id, msg) => {
                if let Some(&i) = self.by_id.get(&id) {
                    let _ = self.peers[i].core.handle_signal(&msg);
                }
            }
            _ => {}
        }
    }

    /// Moves every queued output on both sides until all are quiet.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            loop {
                match self.timed(|r, now| r.poll_output(now)) {
                    Output::Timeout(_) => break,
                    o => {
                        busy = true;
                        self.carry_out(o);
                    }
                }
            }
            for i in 0..self.peers.len() {
                loop {
                    let (id, addr) = (self.peers[i].id, self.peers[i].addr);
                    match self.peers[i].core.poll_output() {
                        ClientOutput::Timeout(_) => break,
                        ClientOutput::Transmit(t) => {
                            busy = true;
                            let server = self.server;
                            self.timed(|r, now| {
                                r.room.handle_receive(
                                    id,
                                    Protocol::Udp,
                                    addr,
                                    server,
                                    &t.contents,
                                    now,
                                )
                            });
                        }
                        ClientOutput::Signal(m) => {
                            busy = true;
                            self.timed(|r, now| r.handle(id, m, now));
                        }
                    }
                }
            }
            if !busy {
                return;
            }
        }
    }

    /// Advances virtual time by `d` in 1 ms steps (media is 20 ms audio, 33 ms video).
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(1);
            self.timed(|r, now| r.room.handle_timeout(now));
            let now = self.now;
            for p in &mut self.peers {
                if matches!(p.core.poll_output(), ClientOutput::Timeout(t) if t <= now) {
                    let _ = p.core.handle_timeout(now);
                }
            }
            self.settle();
        }
    }
}

/// A connected 1 → `viewers` webinar whose viewers only count what they receive.
fn webinar(viewers: usize) -> Harness {
    let mut h = Harness::new(viewers + 1);
    h.join(Role::Host, true);
    for _ in 0..viewers {
        h.join(Role::Audience, false);
    }
    h.run_for(Duration::from_secs(2));
    assert!(
        h.conf.room.counters().rtp_forwarded > 0,
        "the fan-out must be flowing before it is measured"
    );
    for p in h.peers.iter_mut().skip(1) {
        p.core.set_decrypt(false);
    }
    h
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_1_to_n");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for n in [10usize, 100] {
        let mut h = webinar(n);
        // Forwarded packets per virtual second, to state throughput in packets.
        let before = h.conf.room.counters().rtp_forwarded;
        h.run_for(Duration::from_secs(1));
        let per_second = h.conf.room.counters().rtp_forwarded - before;
        g.throughput(Throughput::Elements(per_second));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let start = h.room_time;
                for _ in 0..iters {
                    h.run_for(Duration::from_secs(1));
                }
                h.room_time - start
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
