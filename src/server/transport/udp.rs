//! UDP ingress: receive on the one media port and hand each datagram to its room without a
//! linear scan.
//!
//! STUN binding requests carry `USERNAME = <our ufrag>:<their ufrag>`; the first one from a new
//! address maps that address to the participant owning the ufrag (looked up in [`Routes`]).
//! Everything after (DTLS, SRTP) is routed by source address in one hash lookup in this
//! socket's own cache. Unknown traffic is counted and dropped. Receiving takes what is queued
//! in one `recvmmsg(2)` ([`super::recv_batch`]).

use super::media_socket::MediaSocket;
use super::recv_batch::{RecvBatch, RECV_BATCH};
use super::stun::stun_local_ufrag;
use super::{Route, Routes, Transport};
use crate::server::inbox::MediaMsg;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;
use str0m::net::Protocol;
use tokio::sync::mpsc;

/// Source addresses one socket remembers; past it, addresses of participants who left are
/// swept out, and if none were, new ones are routed by their STUN alone until some leave.
const MAX_ADDRESSES: usize = 65_536;

/// One socket's address → route cache, filled from [`Routes`].
#[derive(Default)]
struct Cache {
    by_addr: HashMap<SocketAddr, Route>,
}

impl Cache {
    fn route(&mut self, routes: &Routes, source: SocketAddr, data: &[u8]) -> Option<Route> {
        if let Some(r) = self.by_addr.get(&source) {
            if !r.presence.has_left() {
                return Some(r.clone());
            }
            self.by_addr.remove(&source);
        }
        let r = routes.lookup(stun_local_ufrag(data)?)?;
        if self.by_addr.len() >= MAX_ADDRESSES {
            self.by_addr.retain(|_, r| !r.presence.has_left());
        }
        if self.by_addr.len() < MAX_ADDRESSES {
            self.by_addr.insert(source, r.clone());
        }
        Some(r)
    }
}

/// Receives on one socket until the server shuts down.
pub async fn run_receiver(socket: Arc<MediaSocket>, announced: SocketAddr, t: Arc<Transport>) {
    let mut cache = Cache::default();
    let mut batch = RecvBatch::default();
    let mut shutdown = t.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            ready = socket.readable() => {
                let Ok(mut guard) = ready else {
                    continue;
                };
                // A few batches, then the task yields to others.
                for _ in 0..BATCHES_PER_WAKE {
                    let n = match batch.recv(socket.as_fd()) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            guard.clear_ready();
                            break;
                        }
                        Err(e) => {
                            // ICMP port-unreachable surfaces here on Linux; it is not fatal.
                            tracing::debug!(error = %e, "udp receive error");
                            break;
                        }
                    };
                    if n > 0 {
                        t.metrics.udp_recv_calls.inc();
                    }
                    // One clock read per batch: the forward-delay histogram starts here.
                    let at = Instant::now();
                    for i in 0..n {
                        if let Some((source, data)) = batch.get(i) {
                            deliver(&mut cache, &t, announced, source, data, at);
                        }
                    }
                    if n < RECV_BATCH {
                        // The queue was emptied: every datagram queued after this call fires a
                        // new readiness event, so waiting again loses nothing and saves the
                        // call that would only have found it empty.
                        guard.clear_ready();
                        break;
                    }
                }
            }
        }
    }
}

/// Batches taken per wake-up of the receiver before it yields.
const BATCHES_PER_WAKE: usize = 4;

/// Hands one datagram to its participant's room, or counts why not. One message per datagram,
/// not one per batch and room: at 1 → 100 light (2026-12-01) a `recvmmsg` took ~1.5 datagrams
/// (~400/s in ~260 calls) and the room was polled ~1.2 times per call, so a second `try_send`
/// to a room already woken is all a batched message would save.
fn deliver(
    cache: &mut Cache,
    t: &Transport,
    announced: SocketAddr,
    source: SocketAddr,
    data: &[u8],
    at: Instant,
) {
    t.metrics.udp_in.inc();
    let Some(route) = cache.route(&t.routes, source, data) else {
        t.metrics.udp_unroutable.inc();
        return;
    };
    let msg = MediaMsg::Datagram {
        id: route.id,
        proto: Protocol::Udp,
        source,
        destination: announced,
        contents: data.to_vec(),
        at,
    };
    match route.inbox.try_send(msg) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            t.metrics.udp_dropped_full.inc();
        }
        // The room's task ended without forgetting its routes (a panic).
        Err(mpsc::error::TrySendError::Closed(_)) => t.routes.forget(route.id),
    }
}

#[cfg(test)]
mod tests {
    use super::super::stun::tests::binding_request;
    use super::*;
    use crate::protocol::ParticipantId;

    #[tokio::test]
    async fn routes_by_ufrag_then_by_address_until_the_participant_leaves() {
        let (tx, _rx) = mpsc::channel(4);
        let routes = Routes::default();
        routes.route("u1".into(), ParticipantId(1), tx);
        let mut c = Cache::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert!(c.route(&routes, a, b"\x17dtls").is_none());
        assert_eq!(
            c.route(&routes, a, &binding_request("u1:x")).map(|r| r.id),
            Some(ParticipantId(1))
        );
        assert_eq!(
            c.route(&routes, a, b"\x17dtls").map(|r| r.id),
            Some(ParticipantId(1))
        );
        routes.forget(ParticipantId(1));
        assert!(c.route(&routes, a, b"\x17dtls").is_none());
        assert!(c.route(&routes, a, &binding_request("u1:x")).is_none());
        assert!(c.by_addr.is_empty());
    }
}
