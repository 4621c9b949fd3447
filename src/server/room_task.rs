//! One tokio task per room: the only owner of its `Conference` (and so of its `media::Router`),
//! fed by sessions (signalling) and transport (media), signalling first.

use super::forward_delay::{self, Forward};
use super::inbox::{Link, MediaMsg, MediaTx};
use super::outbound::{Frame, OutboundTx};
use super::recordings::RoomRecording;
use super::transport::egress::MAX_BATCH;
use super::transport::tcp;
use super::Shared;
use crate::conference::{Admission, ApiCall, ApiReply, Conference, JoinRequest, Output};
use crate::media::forward_log::ForwardLog;
use crate::media::{self, RoomCounters, Spill};
use crate::protocol::{ClientMsg, LeaveReason, ParticipantId, ServerMsg};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use str0m::net::{Protocol, Transmit};
use tokio::sync::mpsc;

/// Most messages handled while the room's timeout is already due.
const MAX_TAKEN: usize = 16;

/// Signalling a room task receives (media comes on its own inbox, [`MediaMsg`]).
#[derive(Debug)]
pub enum RoomMsg {
    /// A session wants in; replies go to `tx`.
    Join {
        /// Who, as checked by the session.
        request: JoinRequest,
        /// Where its signalling messages go.
        tx: OutboundTx,
        /// Its media is on an edge node (the cluster relay): admitted without media here.
        elsewhere: bool,
    },
    /// A signalling message from a joined participant.
    Client {
        /// From whom.
        id: ParticipantId,
        /// What.
        msg: ClientMsg,
    },
    /// The session ended.
    Leave {
        /// Who.
        id: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// The cluster relay's control link (origin: an edge's link; edge: the origin's).
    Link(crate::cluster::link::LinkEvent),
    /// The room API asks.
    Api {
        /// What.
        call: ApiCall,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<ApiReply>,
    },
    /// Unit tests only: the task panics, as a bug in str0m or in the room would make it.
    #[cfg(test)]
    Panic,
    /// Unit tests only: the task blocks for this long, as a room starved of CPU would.
    #[cfg(test)]
    Stall(std::time::Duration),
}

/// Runs a room until it is empty and no join is queued.
pub async fn run(
    mut conf: Conference,
    serial: u64,
    mut rx: mpsc::Receiver<RoomMsg>,
    this: MediaTx,
    mut media: mpsc::Receiver<MediaMsg>,
    shared: Arc<Shared>,
) {
    shared.metrics.rooms.inc();
    conf.room.log_forwards();
    let mut sessions: HashMap<ParticipantId, OutboundTx> = HashMap::new();
    // The room's counters as last added to the server's metrics.
    let mut counted = RoomCounters::default();
    let mut out = Outgoing::default();
    // With a send thread, a big fan-out is flushed at once so that its send overlaps the
    // sealing of the next (see `FLUSH_COPIES`).
    let pipelined = shared.transport.has_send_thread();
    let mut links: HashMap<SocketAddr, Link> = HashMap::new();
    // Messages handled since the room last took time.
    let mut taken = 0;
    let mut recording = RoomRecording::default();
    let mut asks = Vec::new();
    let mut audience = Audience::default();
    let mut relay = super::relay_room::RelayRoom::default();
    // Arrival time of the last datagram handled: how far the media inbox has been read.
    let mut read_until = Instant::now();
    // One timer for the task's life, moved only when the deadline moves: most inputs (a
    // datagram fanned out) leave the room's next deadline where it was.
    let sleep = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(sleep);
    loop {
        // Handing off only with two or more inputs queued (most single ones at light are
        // reports) cut hand-offs 25 → 3.5/s and the send threads' switches 72 → 12/s at
        // 1 → 100 light, but not the server's CPU per forwarded packet (9 runs each, within
        // noise; 2026-12-01): the thread wake-ups it saves cost too little to see.
        out.hand_off = pipelined && !media.is_empty();
        shared.metrics.room_passes.inc();
        let deadline = flush(
            &mut conf,
            &mut sessions,
            &mut links,
            &shared,
            &this,
            &mut out,
            &mut asks,
        );
        if !asks.is_empty() || !recording.rx.is_empty() {
            for ask in asks.drain(..) {
                recording_output(&mut recording, &mut conf, &shared, ask);
            }
            while let Ok(ev) = recording.rx.try_recv() {
                recording.event(&mut conf, &shared, ev);
            }
            continue;
        }
        recording.count_drops(&conf, &shared);
        shared.metrics.add_room(conf.room.counters(), &mut counted);
        if conf.is_empty()
            && shared
                .rooms
                .remove_if_idle(conf.room.name(), serial, &rx, &conf)
        {
            break;
        }
        let now = Instant::now();
        let msg = if deadline <= now {
            // Due already: no timer (tokio rounds a sleep up to its next millisecond tick).
            // Messages already queued go first, up to a bound, so that one timeout pass sends
            // every packet they wrote; the bound keeps a busy room taking time.
            let queued = if taken < MAX_TAKEN {
                rx.try_recv()
                    .map(Input::Signal)
                    .or_else(|_| media.try_recv().map(Input::Media))
                    .ok()
            } else {
                None
            };
            match queued {
                Some(msg) => msg,
                None => {
                    taken = 0;
                    conf.room
                        .media_read_until((!media.is_empty()).then_some(read_until));
                    conf.room.handle_timeout(now);
                    // This path never sleeps; let the worker run other tasks now and then.
                    tokio::task::coop::consume_budget().await;
                    continue;
                }
            }
        } else {
            if sleep.deadline() != deadline.into() {
                sleep.as_mut().reset(deadline.into());
            }
            if pipelined && media.is_empty() {
                shared.transport.help();
            }
            let msg = tokio::select! {
                // Signalling first: a burst of datagrams never holds up a join.
                biased;
                msg = rx.recv() => msg.map(Input::Signal),
                Some(msg) = media.recv() => Some(Input::Media(msg)),
                Some(ev) = recording.rx.recv() => {
                    recording.event(&mut conf, &shared, ev);
                    continue;
                }
                _ = &mut sleep => {
                    taken = 0;
                    conf.room
                        .media_read_until((!media.is_empty()).then_some(read_until));
                    conf.room.handle_timeout(Instant::now());
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            msg
        };
        taken += 1;
        let counted = matches!(
            msg,
            Input::Signal(
                RoomMsg::Join { .. }
                    | RoomMsg::Leave { .. }
                    | RoomMsg::Client { .. }
                    | RoomMsg::Link(_)
            )
        );
        match msg {
            Input::Signal(RoomMsg::Join {
                request,
                tx,
                elsewhere,
            }) => {
                let id = request.id;
                // Registered first so that lobby messages reach a waiting session.
                sessions.insert(id, tx);
                shared.metrics.participants.inc();
                let admission = if elsewhere {
                    conf.join_elsewhere(request, Instant::now())
                } else {
                    conf.join(request, Instant::now())
                };
                if let Admission::Refused(code, message) = admission {
                    if let Some(tx) = sessions.remove(&id) {
                        shared.metrics.participants.dec();
                        let _ = tx.push(frame(&ServerMsg::error(code, message)));
                    }
                }
            }
            Input::Signal(RoomMsg::Client { id, msg }) => {
                if let Some(msg) = relay.hold(&conf, id, msg) {
                    conf.handle(id, msg, Instant::now());
                }
            }
            Input::Signal(RoomMsg::Leave { id, reason }) => {
                conf.leave(id, reason);
                if sessions.remove(&id).is_some() {
                    shared.metrics.participants.dec();
                }
            }
            Input::Signal(RoomMsg::Link(ev)) => relay.event(&mut conf, &sessions, &shared, ev),
            Input::Media(m) => {
                // The burst's packets are fanned out together at its end, a subscriber's
                // packets of one track in one visit to its state (`media::fanout::Held`).
                conf.room.hold_fan_outs();
                media_input(&mut conf, &mut links, &mut read_until, m);
                // The rest of a burst already queued (a video frame's packets, a recvmmsg
                // batch) is read before the flush, so that its fan-outs leave in one
                // sendmmsg; signalling never waits behind more than MEDIA_BURST datagrams.
                for _ in 1..MEDIA_BURST {
                    let copies = conf.room.forwards_pending() + conf.room.held_copies();
                    if !rx.is_empty() || (pipelined && copies >= FLUSH_COPIES) {
                        break;
                    }
                    let Ok(m) = media.try_recv() else {
                        break;
                    };
                    media_input(&mut conf, &mut links, &mut read_until, m);
                }
                // A fan-out of more than a batch (a keyframe to a few hundred) sends each full
                // batch as soon as it is sealed, not after the last copy is.
                let Outgoing {
                    batch, forwards, ..
                } = &mut out;
                let mut hand_over = |q: &mut VecDeque<media::Output>, log: &mut ForwardLog| {
                    log.take(|at, n, held| forwards.push((at, n, held)));
                    for t in Spill::transmits(q) {
                        if queue(t, &links, batch) {
                            shared.metrics.room_spills.inc();
                            send_full(batch, forwards, &shared);
                        }
                    }
                };
                let mut spill = Spill::new(MAX_BATCH, &mut hand_over);
                conf.room.release_fan_outs_spilling(read_until, &mut spill);
            }
            #[cfg(test)]
            Input::Signal(RoomMsg::Panic) => panic!("a room task panics (test)"),
            #[cfg(test)]
            Input::Signal(RoomMsg::Stall(d)) => std::thread::sleep(d),
            Input::Signal(RoomMsg::Api {
                call: ApiCall::Record(on),
                reply,
            }) => {
                let result = recording.ask(&mut conf, &shared, on, None);
                let _ = reply.send(ApiReply::Recording(result));
            }
            // The room API's calls are answered by the conference.
            Input::Signal(RoomMsg::Api { call, reply }) => {
                let _ = reply.send(conf.api(call));
            }
        }
        if counted {
            audience.update(&conf, &shared);
        }
        if relay.is_linked() {
            relay.after(&mut conf, &shared, counted);
        }
    }
    audience.close(&conf, &shared);
    recording.close(&mut conf, &shared).await;
    for id in sessions.keys() {
        shared.transport.routes.forget(*id);
    }
    shared.metrics.participants.dec_by(sessions.len() as i64);
    shared.metrics.rooms.dec();
}

/// Media inputs read in a row before the room's outputs are flushed: the datagrams of one
/// burst share a `sendmmsg`, and a frame's packets to one subscriber one GSO message
/// (`transport::coalesce`). Small, because each may queue a whole fan-out (up to this many
/// times the audience in sealed packets) before the flush sends it. 4 → 8 with GSO: see
/// `FLUSH_COPIES`.
pub const MEDIA_BURST: usize = 8;

/// Copies put out after which a burst is flushed early when a send thread sends: the thread
/// starts on them while the room seals the next input's. Below it inputs still share a batch,
/// since each hand-off costs a `sendmmsg`, lock round trips and often the thread's wake-up.
/// Measured at 1 → 100 heavy (one input is 100 copies), 48 → 200 halved the hand-offs and cut
/// `futex` calls per copy 0.0195 → 0.0115, `sendmmsg` 0.0100 → 0.0062 and context switches
/// ~20 %; at ~1.2 kB a copy, a batch this size, split over the send lanes, fits a lane's
/// bound twice over ([`super::transport::send_thread::MAX_BYTES`]).
/// With GSO, a subscriber's packets in one flush go in one kernel send, so bigger flushes
/// pay: at 1 → 100 heavy (alternating runs, 2026-12-01), 192 → 400 copies (with 4 → 8 inputs)
/// took the datagrams coalesced from 39 % to 57 % and forwarded per CPU-second ~+15 %, and
/// the SFU-added p99 fell ~2 ms, at the same RSS per participant; at 1 → 300 (one input is
/// 300 copies, so 192 flushed every input and nothing coalesced) 24 % coalesced, ~+10 %;
/// light unchanged. 1,000 (16 inputs) gained more but took RSS per participant past
/// 200 KiB (more sealed copies in flight).
const FLUSH_COPIES: u32 = 400;

/// One media input: a datagram handed to the room, or an ICE-TCP connection's coming or going.
fn media_input(
    conf: &mut Conference,
    links: &mut HashMap<SocketAddr, Link>,
    read_until: &mut Instant,
    msg: MediaMsg,
) {
    match msg {
        MediaMsg::Datagram {
            id,
            proto,
            source,
            destination,
            contents,
            at,
        } => {
            *read_until = (*read_until).max(at);
            conf.room
                .handle_receive(id, proto, source, destination, &contents, at)
        }
        MediaMsg::Relayed { contents, at, .. } => {
            *read_until = (*read_until).max(at);
            conf.room.handle_link_datagram(&contents, at)
        }
        MediaMsg::TcpLink { peer, link } => {
            links.insert(peer, link);
        }
        MediaMsg::TcpUnlink { peer } => {
            links.remove(&peer);
        }
    }
}

/// The audience count this room last reported to the cluster's placement.
#[derive(Default)]
struct Audience(Option<Option<usize>>);

impl Audience {
    /// Reports a changed count: webinars (and edge rooms) count their local audience,
    /// meetings report none (they never overflow to edges).
    fn update(&mut self, conf: &Conference, shared: &Shared) {
        let Some(cluster) = shared.cluster.as_ref() else {
            return;
        };
        let edge = crate::cluster::edge::relayed_room(conf.room.name()).is_some();
        let now = (edge || conf.mode() == crate::protocol::RoomMode::Webinar)
            .then(|| conf.local_audience());
        if self.0 != Some(now) {
            self.0 = Some(now);
            cluster.audience_changed(conf.room.name(), now);
        }
    }

    fn close(&self, conf: &Conference, shared: &Shared) {
        if let (Some(cluster), Some(_)) = (shared.cluster.as_ref(), self.0) {
            cluster.audience_changed(conf.room.name(), None);
        }
    }
}

/// A host's recording request, carried out (it opens files) and answered.
fn recording_output(
    recording: &mut RoomRecording,
    conf: &mut Conference,
    shared: &Shared,
    ask: Output,
) {
    match ask {
        Output::Record { on, by } => {
            if let Err(why) = recording.ask(conf, shared, on, by) {
                match by {
                    Some(host) => conf.recording_refused(host, &why),
                    None => tracing::warn!(room = conf.room.name(), "recording: {why}"),
                }
            }
        }
        Output::ListRecordings(host) => {
            let room = conf.room.name().to_string();
            let rec = &shared.recordings;
            let list = rec.list(Some(&room), |id| rec.signed_url(id));
            conf.recordings_listed(host, list);
        }
        _ => {}
    }
}

/// Datagrams the room is about to send, and the logged copies among them.
#[derive(Default)]
struct Outgoing {
    batch: Vec<Transmit>,
    forwards: Vec<Forward>,
    /// Whether the room has more input queued, to handle while the send thread sends.
    hand_off: bool,
}

/// One input of the room task, from either inbox.
enum Input {
    Signal(RoomMsg),
    Media(MediaMsg),
}

/// Serialises a message for the wire. `ServerMsg` holds only strings, numbers and maps with
/// string keys, so serialising cannot fail; an empty object stands in if it ever did.
fn frame(msg: &ServerMsg) -> Frame {
    let text = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    Frame {
        text: text.into(),
        fatal: matches!(msg, ServerMsg::Error { code, .. } if code.is_fatal()),
    }
}

/// Carries out the room's outputs; returns when it next wants time. Datagrams are collected
/// in `batch` and sent together (a fan-out is a burst to many peers), at the latest before
/// the task sleeps.
fn flush(
    conf: &mut Conference,
    sessions: &mut HashMap<ParticipantId, OutboundTx>,
    links: &mut HashMap<SocketAddr, Link>,
    shared: &Shared,
    this: &MediaTx,
    out: &mut Outgoing,
    asks: &mut Vec<Output>,
) -> Instant {
    let Outgoing {
        batch,
        forwards,
        hand_off,
    } = out;
    let mut slow = vec![];
    // The last message serialised: a broadcast arrives as one `Arc` per recipient, in a row.
    let mut last: Option<(Arc<ServerMsg>, Frame)> = None;
    // One clock reading per pass, not per datagram (a fan-out is hundreds): `now` only
    // matters when the room runs out of output, and a tick found due a little late is taken
    // by the next wake, which a deadline already passed makes at once.
    let mut now = Instant::now();
    loop {
        match conf.poll_output(now) {
            Output::Timeout(t) => {
                forward_delay::take(&mut conf.room, forwards);
                shared.transport.send(batch, forwards, *hand_off);
                for id in slow.drain(..) {
                    // A client that cannot keep up with signalling is as good as gone.
                    conf.leave(id, LeaveReason::Error);
                }
                // `leave` queues outputs; carry them out before sleeping.
                if conf.has_output() {
                    now = Instant::now();
                    continue;
                }
                return t;
            }
            Output::Transmit(t) => {
                if queue(t, links, batch) {
                    forward_delay::take(&mut conf.room, forwards);
                    send_full(batch, forwards, shared);
                }
            }
            Output::Signal(id, msg) => {
                let Some(tx) = sessions.get(&id) else {
                    continue;
                };
                let out = match &last {
                    Some((m, f)) if Arc::ptr_eq(m, &msg) => f.clone(),
                    _ => {
                        let f = frame(&msg);
                        last = Some((msg, f.clone()));
                        f
                    }
                };
                if tx.push(out).is_err() && !slow.contains(&id) {
                    shared.metrics.ws_queue_overflows.inc();
                    slow.push(id);
                }
            }
            // Carried out after the flush: they need the room's recording state.
            o @ (Output::Record { .. } | Output::ListRecordings(_)) => asks.push(o),
            Output::RouteUfrag(id, ufrag) => shared.transport.routes.route(ufrag, id, this.clone()),
            Output::Removed(id, _) => {
                shared.transport.routes.forget(id);
                // Dropping the queue closes the connection.
                links.retain(|_, l| l.id != id);
                if sessions.remove(&id).is_some() {
                    shared.metrics.participants.dec();
                }
            }
        }
    }
}

/// Puts a datagram on its way: over its TCP link, or into `batch`. True when `batch` is full.
fn queue(t: Transmit, links: &HashMap<SocketAddr, Link>, batch: &mut Vec<Transmit>) -> bool {
    if t.proto != Protocol::Udp {
        // Gone or backed up: lost, as on a congested path; ICE and RTX recover.
        if let (Some(link), Some(framed)) = (links.get(&t.destination), tcp::frame(&t.contents)) {
            let _ = link.tx.try_send(framed);
        }
        return false;
    }
    batch.push(t);
    batch.len() >= MAX_BATCH
}

/// Sends a full batch now. Its copies leave now and are observed now: the oldest of
/// `forwards` (the room's log, taken), as many as it holds (a burst's copies arrived within a
/// millisecond or so of each other; reports and STUN answers in it make this a few too many).
fn send_full(batch: &mut Vec<Transmit>, forwards: &mut Vec<Forward>, shared: &Shared) {
    let mut sent = forward_delay::split_front(forwards, batch.len());
    shared.transport.send(batch, &mut sent, true);
}
