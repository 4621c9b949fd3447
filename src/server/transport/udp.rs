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
    // The RTCP side of a split port: drained after media, at most every `RTCP_EVERY`, and
    // when media is quiet by this timer.
    let mut rtcp_read = Instant::now();
    let sweep = tokio::time::sleep(RTCP_QUIET);
    tokio::pin!(sweep);
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
                    let at = take(&mut cache, &t, announced, &batch, n);
                    if n < RECV_BATCH {
                        // The queue was emptied: every datagram queued after this call fires a
                        // new readiness event, so waiting again loses nothing and saves the
                        // call that would only have found it empty.
                        guard.clear_ready();
                        if let Some(rtcp) = socket.rtcp() {
                            if at.duration_since(rtcp_read) >= RTCP_EVERY {
                                rtcp_read = at;
                                let next = match drain(rtcp, &mut cache, &t, announced, &mut batch) {
                                    Drained::Empty => RTCP_QUIET,
                                    Drained::More => {
                                        rtcp_read = at.checked_sub(RTCP_EVERY).unwrap_or(at);
                                        RTCP_SOON
                                    }
                                };
                                sweep.as_mut().reset((at + next).into());
                            }
                        }
                        break;
                    }
                }
            }
            _ = &mut sweep, if socket.rtcp().is_some() => {
                rtcp_read = Instant::now();
                let drained = socket
                    .rtcp()
                    .map(|rtcp| drain(rtcp, &mut cache, &t, announced, &mut batch));
                // A server nobody is in only needs to look now and then (what arrives for
                // nobody is dropped anyway); the first media wake-up reads it sooner.
                let next = match drained {
                    Some(Drained::More) => RTCP_SOON,
                    _ if t.routes.is_empty() => RTCP_IDLE,
                    _ => RTCP_QUIET,
                };
                sweep.as_mut().reset((rtcp_read + next).into());
            }
        }
    }
}

/// How often, at most, the RTCP side of a split port is read after media: a busy port wakes
/// its receiver thousands of times a second, and each read of an empty queue is a system
/// call. Also the most a subscriber's feedback (a NACK, a picture loss indication) waits
/// while media flows.
const RTCP_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// How long the RTCP side waits when no media arrives: the most any RTCP waits (with no
/// media on the port, nothing in it is urgent) and the receiver's wake-ups when idle.
const RTCP_QUIET: std::time::Duration = std::time::Duration::from_millis(20);

/// How long the RTCP side waits while no participant is routed on the server.
const RTCP_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How soon the RTCP side is read again when a read stopped at its bound with more queued.
const RTCP_SOON: std::time::Duration = std::time::Duration::from_millis(1);

/// Batches one read of the RTCP side takes at most (512 datagrams): at a read every 5 ms,
/// ~100,000 RTCP datagrams a second, far above what even thousands of subscribers send
/// (browsers: ~10–20 a second each), while a backlog never holds the receiver for long.
const RTCP_BATCHES: usize = 32;

/// What a read of the RTCP side left.
enum Drained {
    /// Its queue is empty.
    Empty,
    /// It stopped at [`RTCP_BATCHES`] with more queued.
    More,
}

/// Delivers the `n` datagrams `batch` holds; returns the clock read that stamped them.
fn take(
    cache: &mut Cache,
    t: &Transport,
    announced: SocketAddr,
    batch: &RecvBatch,
    n: usize,
) -> Instant {
    if n > 0 {
        t.metrics.udp_recv_calls.inc();
    }
    // One clock read per batch: the forward-delay histogram starts here.
    let at = Instant::now();
    for i in 0..n {
        if let Some((source, data)) = batch.get(i) {
            deliver(cache, t, announced, source, data, at);
        }
    }
    at
}

/// Takes what the RTCP side holds, up to [`RTCP_BATCHES`] batches.
fn drain(
    rtcp: std::os::fd::BorrowedFd<'_>,
    cache: &mut Cache,
    t: &Transport,
    announced: SocketAddr,
    batch: &mut RecvBatch,
) -> Drained {
    for _ in 0..RTCP_BATCHES {
        let n = match batch.recv(rtcp) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Drained::Empty,
            Err(e) => {
                // As on the media side (ICMP errors): the next read goes on.
                tracing::debug!(error = %e, "udp receive error (RTCP side)");
                return Drained::Empty;
            }
        };
        t.metrics.udp_in_rtcp_side.inc_by(n as u64);
        take(cache, t, announced, batch, n);
        if n < RECV_BATCH {
            return Drained::Empty;
        }
    }
    Drained::More
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

    async fn next(rx: &mut mpsc::Receiver<MediaMsg>) -> Vec<u8> {
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv());
        match got.await.expect("delivered in time").expect("open") {
            MediaMsg::Datagram { contents, .. } => contents,
            other => panic!("{other:?}"),
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn rtcp_alone_arrives_by_the_timer_and_a_backlog_in_full() {
        use crate::server::metrics::Metrics;
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let socket = Arc::new(MediaSocket::bind_split(addr, 1 << 22, true).expect("bind"));
        assert!(socket.rtcp().is_some(), "split on Linux");
        let port = socket.local_addr().expect("addr");
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let config = crate::config::Config::default();
        let t = Arc::new(Transport::new(
            config,
            vec![],
            Arc::clone(&metrics),
            shutdown,
        ));
        let (tx, mut rx) = mpsc::channel(4096);
        t.routes.route("u1".into(), ParticipantId(1), tx);
        tokio::spawn(run_receiver(Arc::clone(&socket), port, Arc::clone(&t)));
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        // The address is learnt from a binding request on the media side.
        let stun = binding_request("u1:x");
        peer.send_to(&stun, port).expect("send");
        assert_eq!(next(&mut rx).await, stun);
        // A receiver report alone wakes nobody: the timer reads it.
        let report = [0x81u8, 201, 0, 1, 0, 0, 0, 1];
        peer.send_to(&report, port).expect("send");
        assert_eq!(next(&mut rx).await, report);
        assert_eq!(metrics.udp_in_rtcp_side.get(), 1);
        // A backlog longer than one read is taken in full, in order.
        let burst = RTCP_BATCHES * RECV_BATCH + 100;
        for i in 0..burst {
            let mut d = vec![0x80u8, 205];
            d.extend_from_slice(&(i as u32).to_be_bytes());
            peer.send_to(&d, port).expect("send");
        }
        for i in 0..burst {
            assert_eq!(next(&mut rx).await[2..], (i as u32).to_be_bytes());
        }
        assert_eq!(metrics.udp_in_rtcp_side.get(), 1 + burst as u64);
        assert_eq!(metrics.udp_in.get(), 2 + burst as u64);
    }
}
