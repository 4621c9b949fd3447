//! Transport: the media sockets (one UDP port, ICE-TCP on the same port number and on the
//! HTTP(S) port), the one routing table that ties them to rooms, ingress and egress.
//!
//! [`Routes`] maps a participant's local ICE ufrag to its room's media inbox; UDP and ICE-TCP
//! both look a new source up there by the ufrag its first STUN binding request names. After
//! that, a UDP socket routes by source address from its own cache (one hash lookup, no lock)
//! and an ICE-TCP connection keeps its route. A participant's [`Presence`] is shared by all of
//! them: when it leaves, cached addresses stop routing and its connections close.
//!
//! Transport speaks only [`super::inbox`] to rooms; it never imports the room task.

pub mod coalesce;
pub mod egress;
pub mod media_socket;
pub mod recv_batch;
pub mod rtcp_split;
pub mod send_thread;
pub mod stun;
pub mod tcp;
pub mod udp;
pub mod web_port;

use super::forward_delay::Forward;
use super::inbox::MediaTx;
use super::limits::Slots;
use super::metrics::Metrics;
use crate::config::Config;
use crate::protocol::ParticipantId;
use media_socket::MediaSocket;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use str0m::net::Transmit;
use tokio::sync::{watch, Notify};

/// Where a participant's media goes, and whether it is still there.
#[derive(Clone, Debug)]
pub struct Route {
    /// The participant.
    pub id: ParticipantId,
    /// Its room's media inbox.
    pub inbox: MediaTx,
    /// Shared by every address and connection routed to it.
    pub presence: Arc<Presence>,
}

/// A routed participant's liveness and its ICE-TCP connection count.
#[derive(Debug, Default)]
pub struct Presence {
    left: AtomicBool,
    notify: Notify,
    tcp: AtomicUsize,
}

impl Presence {
    /// Whether the participant has left (a relaxed load: routing may lag by a packet).
    pub fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }

    /// Completes when the participant leaves.
    pub async fn left(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a leave between the two is not missed.
            notified.as_mut().enable();
            if self.has_left() {
                return;
            }
            notified.await;
        }
    }

    fn leave(&self) {
        self.left.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Counts one more ICE-TCP connection unless `cap` are open; the caller gives it back
    /// with [`Presence::untake_tcp`].
    pub fn take_tcp(&self, cap: usize) -> bool {
        self.tcp
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back what [`Presence::take_tcp`] took.
    pub fn untake_tcp(&self) {
        self.tcp.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The routing table: ufrag → route. Written on join, ICE restart and leave; read once per
/// new source address or connection, never per packet.
#[derive(Default)]
pub struct Routes {
    table: RwLock<Table>,
}

#[derive(Default)]
struct Table {
    by_ufrag: HashMap<String, Route>,
    by_id: HashMap<ParticipantId, (Arc<Presence>, Vec<String>)>,
}

impl Routes {
    /// STUN naming `ufrag` goes to participant `id`, whose room's media inbox is `inbox`.
    pub fn route(&self, ufrag: String, id: ParticipantId, inbox: MediaTx) {
        let Ok(mut t) = self.table.write() else {
            return;
        };
        let (presence, ufrags) = t.by_id.entry(id).or_default();
        let presence = Arc::clone(presence);
        ufrags.push(ufrag.clone());
        t.by_ufrag.insert(
            ufrag,
            Route {
                id,
                inbox,
                presence,
            },
        );
    }

    /// The participant is gone: its ufrags stop routing, its addresses and connections too.
    pub fn forget(&self, id: ParticipantId) {
        let Ok(mut t) = self.table.write() else {
            return;
        };
        if let Some((presence, ufrags)) = t.by_id.remove(&id) {
            for u in ufrags {
                t.by_ufrag.remove(&u);
            }
            presence.leave();
        }
    }

    /// The route of a local ufrag.
    pub fn lookup(&self, ufrag: &str) -> Option<Route> {
        self.table.read().ok()?.by_ufrag.get(ufrag).cloned()
    }

    /// Whether no participant is routed (nothing to receive media for).
    pub fn is_empty(&self) -> bool {
        self.table.read().map_or(true, |t| t.by_id.is_empty())
    }
}

/// The media side of the server: sockets, routes and the counters they keep.
pub struct Transport {
    /// The routing table.
    pub routes: Routes,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// ICE-TCP connection slots.
    pub tcp_slots: Arc<Slots>,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    config: Config,
    sockets: Vec<(SocketAddr, Arc<MediaSocket>)>,
    /// Where rooms hand their send batches (`--send-thread`); `None`: they send themselves.
    sender: Option<Arc<send_thread::SendThread>>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Some(s) = &self.sender {
            s.close();
        }
    }
}

impl Transport {
    /// Transport over bound UDP `sockets` (announced address, socket).
    pub fn new(
        config: Config,
        sockets: Vec<(SocketAddr, Arc<MediaSocket>)>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Transport {
        let l = &config.limits;
        coalesce::set_enabled(config.udp_gso);
        let sender = config
            .send_thread
            .then(|| {
                let s = sockets.clone();
                let (m, threads) = (Arc::clone(&metrics), config.send_threads);
                send_thread::SendThread::start(s, m, shutdown.clone(), threads)
            })
            .flatten();
        Transport {
            sender,
            routes: Routes::default(),
            metrics,
            tcp_slots: Slots::new(l.ice_tcp_max_connections, l.ice_tcp_max_per_address),
            shutdown,
            config,
            sockets,
        }
    }

    /// ICE-TCP's caps and timeouts.
    pub fn limits(&self) -> &crate::config::Limits {
        &self.config.limits
    }

    /// The address clients are told for a socket bound at `local`.
    pub fn announced(&self, local: SocketAddr) -> SocketAddr {
        self.config.announced(local)
    }

    /// Sends and empties `batch`, each run of datagrams sharing a source socket in as few
    /// system calls as the platform allows (see [`egress::send_batch_fd`]).
    pub fn send_all(&self, batch: &mut Vec<Transmit>) {
        send_runs(&self.sockets, &self.metrics, batch);
        egress::recycle(batch);
    }

    /// Sends and empties `batch`, whose logged copies are `forwards` (observed in the
    /// forward-delay histograms when sent): on the send thread if there is one and
    /// `hand_off` (the room has more input to handle meanwhile) or it is busy.
    pub fn send(&self, batch: &mut Vec<Transmit>, forwards: &mut Vec<Forward>, hand_off: bool) {
        match &self.sender {
            Some(s) => s.submit(batch, forwards, hand_off),
            None => {
                let m = &self.metrics;
                if !forwards.is_empty() {
                    m.forward_delay
                        .sent(&m.forward_delay_paced, forwards, Instant::now());
                    forwards.clear();
                }
                self.send_all(batch);
            }
        }
    }

    /// A room is about to wait: it sends what the send thread has not started on.
    pub fn help(&self) {
        if let Some(s) = &self.sender {
            s.help();
        }
    }

    /// Whether rooms hand their batches to a send thread.
    pub fn has_send_thread(&self) -> bool {
        self.sender.is_some()
    }
}

/// Sends `batch` from `sockets`, each run of datagrams sharing a source socket in as few
/// system calls as the platform allows (see [`egress::send_batch_fd`]), counting in `metrics`.
fn send_runs(sockets: &[(SocketAddr, Arc<MediaSocket>)], metrics: &Metrics, batch: &[Transmit]) {
    let mut rest = batch;
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .position(|t| t.source != first.source)
            .unwrap_or(rest.len());
        let socket = sockets
            .iter()
            .find(|(a, _)| *a == first.source)
            .or(sockets.first());
        if let Some((_, s)) = socket {
            let sent = egress::send_batch_fd(s.as_fd(), &rest[..run]);
            metrics.udp_out.inc_by(sent.datagrams as u64);
            metrics.udp_send_calls.inc_by(sent.calls as u64);
            metrics.udp_coalesced.inc_by(sent.coalesced as u64);
        }
        rest = &rest[run..];
    }
}
