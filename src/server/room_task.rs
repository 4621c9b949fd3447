//! One tokio task per room: the only owner of its `media::Room`, fed by sessions and the demux.

use super::tcp::{self, Link};
use super::udp::{DemuxCmd, MAX_BATCH};
use super::Shared;
use crate::conference::{Admission, ApiCall, ApiReply, Conference, JoinRequest};
use crate::media::{Output, Room};
use crate::protocol::{ClientMsg, LeaveReason, ParticipantId, ServerMsg};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use str0m::net::{Protocol, Transmit};
use tokio::sync::mpsc;

/// Most messages handled while the room's timeout is already due.
const MAX_TAKEN: usize = 16;

/// Messages a room task receives.
#[derive(Debug)]
pub enum RoomMsg {
    /// A session wants in; replies go to `tx`.
    Join {
        /// Who, as checked by the session.
        request: JoinRequest,
        /// Where its signalling messages go.
        tx: mpsc::Sender<ServerMsg>,
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
    /// A datagram the demux routed here, or one frame of an ICE-TCP connection.
    Datagram {
        /// For whom.
        id: ParticipantId,
        /// UDP, or TCP for a frame (without its length prefix).
        proto: Protocol,
        /// From where (for TCP, the connection's remote address).
        source: SocketAddr,
        /// The server address it was sent to (as announced).
        destination: SocketAddr,
        /// Its bytes.
        contents: Vec<u8>,
        /// When it arrived.
        at: Instant,
    },
    /// An ICE-TCP connection now carries a participant of this room.
    TcpLink {
        /// The connection's remote address.
        peer: SocketAddr,
        /// Where its transmits go.
        link: Link,
    },
    /// That connection closed.
    TcpUnlink {
        /// The connection's remote address.
        peer: SocketAddr,
    },
    /// The room API asks (rooms change).
    Api {
        /// What.
        call: ApiCall,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<ApiReply>,
    },
}

/// Runs a room until it is empty and no join is queued.
pub async fn run(
    mut conf: Conference,
    serial: u64,
    this: mpsc::Sender<RoomMsg>,
    mut rx: mpsc::Receiver<RoomMsg>,
    shared: Arc<Shared>,
) {
    shared.metrics.rooms.inc();
    let mut sessions: HashMap<ParticipantId, mpsc::Sender<ServerMsg>> = HashMap::new();
    let mut forwarded = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut links: HashMap<SocketAddr, Link> = HashMap::new();
    // Messages handled since the room last took time.
    let mut taken = 0;
    loop {
        let deadline = flush(
            &mut conf,
            &mut sessions,
            &mut links,
            &shared,
            &this,
            &mut batch,
        );
        let now_forwarded = conf.room.counters().rtp_forwarded;
        shared
            .metrics
            .rtp_forwarded
            .inc_by(now_forwarded - forwarded);
        forwarded = now_forwarded;
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
                rx.try_recv().ok()
            } else {
                None
            };
            match queued {
                Some(msg) => msg,
                None => {
                    taken = 0;
                    conf.room.handle_timeout(now);
                    // This path never sleeps; let the worker run other tasks now and then.
                    tokio::task::coop::consume_budget().await;
                    continue;
                }
            }
        } else {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    taken = 0;
                    conf.room.handle_timeout(Instant::now());
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            msg
        };
        taken += 1;
        match msg {
            RoomMsg::Join { request, tx } => {
                let id = request.id;
                // Registered first so that lobby messages reach a waiting session.
                sessions.insert(id, tx);
                shared.metrics.participants.inc();
                if let Admission::Refused(code, message) = conf.join(request, Instant::now()) {
                    if let Some(tx) = sessions.remove(&id) {
                        shared.metrics.participants.dec();
                        let _ = tx.try_send(ServerMsg::error(code, message));
                    }
                }
            }
            RoomMsg::Client { id, msg } => conf.handle(id, msg, Instant::now()),
            RoomMsg::Leave { id, reason } => {
                conf.leave(id, reason);
                if sessions.remove(&id).is_some() {
                    shared.metrics.participants.dec();
                }
            }
            RoomMsg::Datagram {
                id,
                proto,
                source,
                destination,
                contents,
                at,
            } => conf
                .room
                .handle_receive(id, proto, source, destination, &contents, at),
            RoomMsg::TcpLink { peer, link } => {
                links.insert(peer, link);
            }
            RoomMsg::TcpUnlink { peer } => {
                links.remove(&peer);
            }
            // rooms change: the room API's calls are answered by the conference.
            RoomMsg::Api { call, reply } => {
                let _ = reply.send(conf.api(call));
            }
        }
    }
    for id in sessions.keys() {
        shared.forget_route(*id);
    }
    shared.metrics.participants.dec_by(sessions.len() as i64);
    shared.metrics.rooms.dec();
}

/// Carries out the room's outputs; returns when it next wants time. Datagrams are collected
/// in `batch` and sent together (a fan-out is a burst to many peers), at the latest before
/// the task sleeps.
fn flush(
    conf: &mut Conference,
    sessions: &mut HashMap<ParticipantId, mpsc::Sender<ServerMsg>>,
    links: &mut HashMap<SocketAddr, Link>,
    shared: &Shared,
    this: &mpsc::Sender<RoomMsg>,
    batch: &mut Vec<Transmit>,
) -> Instant {
    let mut slow = vec![];
    loop {
        let room: &mut Room = &mut conf.room;
        match room.poll_output(Instant::now()) {
            Output::Timeout(t) => {
                shared.send_all(batch);
                for id in slow.drain(..) {
                    // A client that cannot keep up with signalling is as good as gone.
                    conf.leave(id, LeaveReason::Error);
                }
                // `leave` queues outputs; carry them out before sleeping.
                if conf.room.has_output() {
                    continue;
                }
                return t;
            }
            Output::Transmit(t) if t.proto != Protocol::Udp => {
                // Gone or backed up: lost, as on a congested path; ICE and RTX recover.
                if let (Some(link), Some(framed)) =
                    (links.get(&t.destination), tcp::frame(&t.contents))
                {
                    let _ = link.tx.try_send(framed);
                }
            }
            Output::Transmit(t) => {
                batch.push(t);
                if batch.len() >= MAX_BATCH {
                    shared.send_all(batch);
                }
            }
            Output::Signal(id, msg) => {
                if let Some(tx) = sessions.get(&id) {
                    if tx.try_send(msg).is_err() {
                        slow.push(id);
                    }
                }
            }
            Output::RouteUfrag(id, ufrag) => shared.route(ufrag, id, this.clone()),
            Output::Removed(id, _) => {
                shared.forget_route(id);
                // Dropping the queue closes the connection.
                links.retain(|_, l| l.id != id);
                if sessions.remove(&id).is_some() {
                    shared.metrics.participants.dec();
                }
            }
        }
    }
}

impl Shared {
    fn route(&self, ufrag: String, id: ParticipantId, room: mpsc::Sender<RoomMsg>) {
        self.add_tcp_route(&ufrag, id, &room);
        for tx in &self.demux {
            let _ = tx.send(DemuxCmd::Route {
                ufrag: ufrag.clone(),
                id,
                room: room.clone(),
            });
        }
    }

    fn forget_route(&self, id: ParticipantId) {
        self.forget_tcp_route(id);
        for tx in &self.demux {
            let _ = tx.send(DemuxCmd::Forget { id });
        }
    }
}
