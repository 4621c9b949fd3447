//! Virtual-time harness: a [`Conference`] (and its media [`Router`]) and headless [`ClientCore`]
//! peers over a simulated network.
//!
//! No sockets and no clock: time jumps from one due event to the next, so seconds of a meeting
//! run in milliseconds, and every link can delay, lose or rate-limit packets deterministically.
//! Used by the media scenario tests and the fan-out benchmark.

use crate::bot::core::{ClientBehaviour, ClientCore, ClientOutput};
use crate::bot::{BotStats, StreamShape};
use crate::conference::record::{Credentials, Origin, RoomRecord};
use crate::conference::{Admission, Conference, JoinRequest, Output};
use crate::media::{RoomConfig, Router};
use crate::protocol::{ParticipantId, Role, RoomMode, ServerMsg};
use crate::server::transport::egress::MAX_BATCH;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::net::Protocol;

mod burst;
mod net;
pub use net::Link;
use net::{InFlight, Path, Rng};

struct Peer {
    core: ClientCore,
    addr: SocketAddr,
    up: Path,
    down: Path,
    signals: Vec<ServerMsg>,
}

/// The simulated world.
pub struct Sim {
    /// Virtual now.
    pub now: Instant,
    /// The conference under test; its media room is `conf.room`.
    pub conf: Conference,
    server: SocketAddr,
    peers: BTreeMap<ParticipantId, Peer>,
    by_addr: HashMap<SocketAddr, ParticipantId>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    rng: Rng,
    next_id: u64,
    room_due: Instant,
    /// Links given to peers that join from now on.
    new_links: (Link, Link),
    /// Wall-clock time spent inside the room's methods (what the fan-out benchmark measures).
    room_time: Duration,
    /// Fixed time step, if any (see [`Sim::set_tick`]).
    tick: Option<Duration>,
    /// (first SSRC, E flag + SRTCP index) of every SRTCP datagram the server sent, per peer.
    srtcp: HashMap<ParticipantId, Vec<(u32, u32)>>,
    /// The last [`CAPTURE_MAX`] SRTCP datagrams each peer sent toward the server (replay tests).
    srtcp_up: HashMap<ParticipantId, VecDeque<Vec<u8>>>,
    /// Datagrams the room sent to addresses no peer has (relay links), oldest first.
    foreign: VecDeque<(SocketAddr, Vec<u8>)>,
    /// When a burst's fan-outs are handed over, and how often they were.
    spill: SpillCount,
}

/// The sim's side of [`Sim::set_spill`] and [`Sim::spills`].
struct SpillCount {
    /// A release hands over what its fan-outs queued every this many datagrams.
    every: usize,
    /// Hand-overs before the releases ended, all bursts together.
    handed: u64,
}

/// Most datagrams [`Sim::take_foreign`] keeps between two takes; older ones are lost.
const FOREIGN_MAX: usize = 1 << 16;
/// SRTCP datagrams [`Sim::srtcp_sent_by`] keeps per peer; older ones are forgotten.
const CAPTURE_MAX: usize = 256;

impl Sim {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Sim {
        let server: SocketAddr = ([10, 0, 0, 1], 10000).into();
        let now = Instant::now();
        Sim {
            now,
            conf: Conference::new(
                Router::new("sim", config, vec![server]),
                RoomRecord::new(RoomMode::Meeting, Origin::AdHoc, now),
            ),
            server,
            peers: BTreeMap::new(),
            by_addr: HashMap::new(),
            in_flight: BinaryHeap::new(),
            order: 0,
            rng: Rng::default(),
            next_id: 1,
            room_due: now,
            new_links: (Link::default(), Link::default()),
            room_time: Duration::ZERO,
            tick: None,
            srtcp: HashMap::new(),
            srtcp_up: HashMap::new(),
            foreign: VecDeque::new(),
            spill: SpillCount {
                every: MAX_BATCH,
                handed: 0,
            },
        }
    }

    /// A burst's release hands over what its fan-outs queued every `every` datagrams, sent at
    /// once (`Router::release_fan_outs_spilling`); by default at the room task's batch.
    pub fn set_spill(&mut self, every: usize) {
        self.spill.every = every;
    }

    /// How many times a release handed over datagrams before it ended.
    pub fn spills(&self) -> u64 {
        self.spill.handed
    }

    /// Advances time in fixed steps of `tick` instead of from one due event to the next: at
    /// every step the room takes a timeout whether due or not and every due peer takes its
    /// own, so timeouts falling between two steps are taken together, as under a millisecond
    /// timer. `None` (the default) goes from event to event. The fan-out benchmark steps by
    /// 1 ms to keep its figures comparable with those measured before it used this harness.
    pub fn set_tick(&mut self, tick: Option<Duration>) {
        self.tick = tick.filter(|t| !t.is_zero());
    }

    /// Calls into the room, adding the wall-clock time it takes to [`room_time`](Self::room_time).
    /// Never inlined: `scripts/callgrind.sh` collects instructions inside this function only.
    #[inline(never)]
    pub(super) fn timed<R>(&mut self, f: impl FnOnce(&mut Conference, Instant) -> R) -> R {
        let start = Instant::now();
        let r = f(&mut self.conf, self.now);
        self.room_time += start.elapsed();
        r
    }

    /// Numbers the next participants from `next` on (two simulated rooms standing for two
    /// nodes of one cluster must not hand out the same ids).
    pub fn start_ids_at(&mut self, next: u64) {
        self.next_id = self.next_id.max(next);
    }

    /// The room's media address (what its peers send to).
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Calls into the media room directly (an input the conference does not make, such as a
    /// relay link's), then carries out what follows.
    pub fn with_room<R>(&mut self, f: impl FnOnce(&mut Router, Instant) -> R) -> R {
        let r = self.timed(|c, now| f(&mut c.room, now));
        self.settle();
        r
    }

    /// Calls into the conference directly (what a node layer would, such as a relay link's
    /// track list), then carries out what follows.
    pub fn with_conf<R>(&mut self, f: impl FnOnce(&mut Conference, Instant) -> R) -> R {
        let r = self.timed(f);
        self.settle();
        r
    }

    /// Takes the datagrams the room sent to addresses that are no peer's (relay links).
    pub fn take_foreign(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.foreign.drain(..).collect()
    }

    /// Wall-clock time spent inside the room so far: its inputs and `poll_output`, none of
    /// the peers' or the simulated network's work.
    pub fn room_time(&self) -> Duration {
        self.room_time
    }

    /// Sets the links of peers that join from now on (default: [`Link::default`] both ways).
    pub fn set_new_links(&mut self, up: Link, down: Link) {
        self.new_links = (up, down);
    }

    /// A participant joins; returns its id once it received `joined` (media still connecting).
    pub fn join(
        &mut self,
        name: &str,
        role: Role,
        publish: bool,
        shape: StreamShape,
    ) -> Result<ParticipantId, String> {
        self.join_with_slots(name, role, publish, shape, 0)
    }

    /// `n` presenters named `p0`, `p1`, … publishing the default shape: a meeting.
    pub fn presenters(&mut self, n: usize) -> Result<Vec<ParticipantId>, String> {
        (0..n)
            .map(|i| {
                self.join(
                    &format!("p{i}"),
                    Role::Presenter,
                    true,
                    StreamShape::default(),
                )
            })
            .collect()
    }

    /// Like [`join`](Self::join), receiving audio on `audio_slots` server-filled slots.
    pub fn join_with_slots(
        &mut self,
        name: &str,
        role: Role,
        publish: bool,
        shape: StreamShape,
        audio_slots: usize,
    ) -> Result<ParticipantId, String> {
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let request = JoinRequest {
            id,
            name: name.into(),
            credentials: Credentials {
                token_role: Some(role),
                key: None,
                asked: None,
            },
            identity: format!("{name}#{}", id.0),
            mode: None,
            password: None,
        };
        match self.timed(|c, now| c.join(request, now)) {
            Admission::Joined => {}
            Admission::Waiting => return Err("waiting in the lobby".into()),
            Admission::Refused(_, m) => return Err(m),
        }
        let addr: SocketAddr = ([10, 1, (id.0 >> 8) as u8, id.0 as u8], 5000).into();
        let mut joined = None;
        let mut joined_tracks = None;
        let mut others = vec![];
        loop {
            match self.timed(|c, now| c.poll_output(now)) {
                Output::Timeout(t) => {
                    self.room_due = t;
                    break;
                }
                Output::Signal(to, msg) if to == id => {
                    if let ServerMsg::Joined { tracks, .. } = msg.as_ref() {
                        joined = Some(tracks.clone());
                        joined_tracks = Some(Arc::unwrap_or_clone(msg));
                    }
                }
                other => others.push(other),
            }
        }
        let tracks = joined.ok_or("no joined message")?;
        let behaviour = ClientBehaviour {
            publish,
            subscribe: true,
            shape,
            // The simulator plays hostile clients too: roles are the server's to enforce.
            ignore_role: true,
            audio_slots,
        };
        let core = ClientCore::new(behaviour, addr, id, role, tracks, self.now)
            .map_err(|e| e.to_string())?;
        self.peers.insert(
            id,
            Peer {
                core,
                addr,
                up: Path::new(self.new_links.0, self.now),
                down: Path::new(self.new_links.1, self.now),
                signals: vec![],
            },
        );
        self.by_addr.insert(addr, id);
        if let (Some(p), Some(tracks)) = (self.peers.get_mut(&id), joined_tracks) {
            p.signals.push(tracks);
        }
        for o in others {
            self.carry_out(o);
        }
        self.settle();
        Ok(id)
    }

    /// Sets a peer's links.
    pub fn set_links(&mut self, id: ParticipantId, up: Link, down: Link) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.up.link = up;
            p.down.link = down;
        }
    }

    /// A peer sends a signalling message (e.g. `video_sizes`).
    pub fn client_msg(&mut self, id: ParticipantId, msg: crate::protocol::ClientMsg) {
        self.timed(|c, now| c.handle(id, msg, now));
        self.settle();
    }

    /// Changes the audio level a peer sends from now on.
    pub fn set_audio_level(&mut self, id: ParticipantId, level: i8) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.core.set_audio_level(level);
        }
    }

    /// Whether a peer decrypts the media it receives (default) or only counts it from the
    /// clear SRTP header, which spares the harness most of its own cost in large rooms.
    pub fn set_decrypt(&mut self, id: ParticipantId, decrypt: bool) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.core.set_decrypt(decrypt);
        }
    }

    /// A peer's decoder asks for a keyframe of every video it receives (a PLI each); returns
    /// how many it asked for.
    pub fn request_keyframes(&mut self, id: ParticipantId) -> usize {
        let asked = self
            .peers
            .get_mut(&id)
            .map_or(0, |p| p.core.request_keyframes());
        self.settle();
        asked
    }

    /// A peer that joined without publishing starts to (after a promotion to the stage).
    pub fn start_publishing(&mut self, id: ParticipantId) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.core.start_publishing();
        }
        self.settle();
    }

    /// A peer leaves cleanly.
    pub fn leave(&mut self, id: ParticipantId) {
        self.timed(|c, _| c.leave(id, crate::protocol::LeaveReason::Left));
        if let Some(p) = self.peers.remove(&id) {
            self.by_addr.remove(&p.addr);
        }
        self.settle();
    }

    /// A peer's receive statistics.
    pub fn stats(&self, id: ParticipantId) -> BotStats {
        self.peers
            .get(&id)
            .map(|p| p.core.stats.clone())
            .unwrap_or_default()
    }

    /// The server's downlink estimate toward a peer, bits per second.
    pub fn server_estimate(&self, id: ParticipantId) -> Option<u64> {
        self.conf.room.bwe_of(id)
    }

    /// Signalling messages a peer received so far.
    pub fn signals(&self, id: ParticipantId) -> &[ServerMsg] {
        self.peers
            .get(&id)
            .map(|p| p.signals.as_slice())
            .unwrap_or(&[])
    }

    /// Runs virtual time forward by `d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let next = match self.tick {
                Some(tick) => self.now + tick,
                None => self.next_due(),
            };
            self.now = self.now.max(next.min(end));
            self.deliver_due();
            if self.room_due <= self.now || self.tick.is_some() {
                self.timed(|c, now| c.room.handle_timeout(now));
            }
            let now = self.now;
            for p in self.peers.values_mut() {
                if p.core.next_timeout() <= now {
                    let _ = p.core.handle_timeout(now);
                }
            }
            self.settle();
        }
    }

    /// Runs until `pred` holds or `limit` of virtual time passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if pred(self) {
                return true;
            }
            self.run_for(Duration::from_millis(10));
        }
        pred(self)
    }

    fn next_due(&self) -> Instant {
        let mut next = self.room_due;
        if let Some(Reverse(f)) = self.in_flight.peek() {
            next = next.min(f.at);
        }
        for p in self.peers.values() {
            next = next.min(p.core.next_timeout());
        }
        next
    }

    /// Carries out outputs on every side, datagrams over zero-delay links included, until all
    /// are quiet.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            loop {
                match self.timed(|c, now| c.poll_output(now)) {
                    Output::Timeout(t) => {
                        self.room_due = t;
                        break;
                    }
                    o => {
                        busy = true;
                        self.carry_out(o);
                    }
                }
            }
            let ids: Vec<ParticipantId> = self.peers.keys().copied().collect();
            for id in ids {
                while let Some(p) = self.peers.get_mut(&id) {
                    match p.core.poll_output() {
                        ClientOutput::Timeout(_) => break,
                        ClientOutput::Transmit(t) => {
                            busy = true;
                            self.send(id, true, t.destination, t.contents.to_vec());
                        }
                        ClientOutput::Signal(m) => {
                            busy = true;
                            self.timed(|c, now| c.handle(id, m, now));
                        }
                    }
                }
            }
            if self.deliver_due() {
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }

    pub(super) fn carry_out(&mut self, o: Output) {
        match o {
            Output::Transmit(t) => {
                if let Some(id) = self.by_addr.get(&t.destination).copied() {
                    if let Some(nonce) = srtcp_nonce(&t.contents) {
                        self.srtcp.entry(id).or_default().push(nonce);
                    }
                    self.send(id, false, t.destination, t.contents.to_vec());
                } else {
                    if self.foreign.len() >= FOREIGN_MAX {
                        self.foreign.pop_front();
                    }
                    self.foreign.push_back((t.destination, t.contents.to_vec()));
                }
                // As the server's egress does once a datagram is sent.
                crate::media::fast::pool::give(t.contents.into());
            }
            Output::Signal(id, msg) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    let _ = p.core.handle_signal(&msg);
                    p.signals.push(Arc::unwrap_or_clone(msg));
                }
            }
            Output::RouteUfrag(..)
            | Output::Removed(..)
            | Output::Timeout(_)
            | Output::Record { .. }
            | Output::ListRecordings(_) => {}
        }
    }

    /// The (first SSRC, E flag + index) of each SRTCP datagram the server sent to `id`: the
    /// parts of the GCM nonce a key must never see twice.
    pub fn srtcp_sent_to(&self, id: ParticipantId) -> &[(u32, u32)] {
        self.srtcp.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The last SRTCP datagrams `id` sent toward the server, oldest first, as sent.
    pub fn srtcp_sent_by(&self, id: ParticipantId) -> Vec<Vec<u8>> {
        self.srtcp_up
            .get(&id)
            .map_or_else(Vec::new, |q| q.iter().cloned().collect())
    }

    /// Hands `data` to the room as if `id` had sent it again (an on-path replay), at once.
    pub fn replay_from(&mut self, id: ParticipantId, data: &[u8]) {
        let (Some(p), server) = (self.peers.get(&id), self.server) else {
            return;
        };
        let from = p.addr;
        self.timed(|c, now| {
            c.room
                .handle_receive(id, Protocol::Udp, from, server, data, now)
        });
        self.settle();
    }

    fn send(&mut self, peer: ParticipantId, to_server: bool, to: SocketAddr, data: Vec<u8>) {
        if to_server && srtcp_nonce(&data).is_some() {
            let q = self.srtcp_up.entry(peer).or_default();
            if q.len() >= CAPTURE_MAX {
                q.pop_front();
            }
            q.push_back(data.clone());
        }
        let roll = self.rng.next();
        let now = self.now;
        let server = self.server;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let path = if to_server { &mut p.up } else { &mut p.down };
        let Some(at) = path.arrival(data.len(), roll, now) else {
            return;
        };
        let (from, to) = if to_server {
            (p.addr, server)
        } else {
            (server, to)
        };
        if at <= now {
            // A zero-delay link hands the datagram over at once, inside the sender's output
            // loop, as a direct call would: the fan-out bench's figures depend on that order.
            if to_server {
                self.timed(|c, now| {
                    c.room
                        .handle_receive(peer, Protocol::Udp, from, to, &data, now)
                });
            } else if let Some(p) = self.peers.get_mut(&peer) {
                p.core.handle_datagram(from, &data, now);
            }
            return;
        }
        self.order += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            order: self.order,
            to_server,
            from,
            to,
            data,
        }));
    }
}

/// SRTCP keeps the first packet's SSRC and the trailing E flag + index in the clear
/// (RFC 3711 §3.4); RTCP is told from RTP by its packet type (RFC 5761 §4).
fn srtcp_nonce(d: &[u8]) -> Option<(u32, u32)> {
    let rtcp = d.len() >= 12 && (128..192).contains(&d[0]) && (192..=223).contains(&d[1]);
    if !rtcp {
        return None;
    }
    let n = d.len();
    Some((
        u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        u32::from_be_bytes([d[n - 4], d[n - 3], d[n - 2], d[n - 1]]),
    ))
}
