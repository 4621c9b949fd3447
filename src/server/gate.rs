//! HTTP(S) admission: connection caps in total and per source address, with a small reserve
//! that still answers `/healthz` and `/metrics` when they are reached: a few slots for a
//! monitor on the host itself, the rest at one per source address.
//!
//! Wraps the acceptor of `axum_server` (outermost, before the ICE-TCP sniff and TLS, so a
//! connection holds a slot from the moment it is accepted). A connection over the caps gets a
//! reserve slot and the health-only router, for at most [`RESERVE_LIFETIME`]; beyond the
//! reserve it is closed at once. Every outcome is counted in `/metrics`.
//!
//! In a cluster, every session one node relays to another comes from the relaying node's
//! address, so the per-address cap would bound how many sessions a node can relay. A
//! connection over that cap therefore gets its request head read (not consumed, at most
//! [`HEAD_LIMIT`] bytes for at most [`RELAY_CHECK_TIMEOUT`], [`RELAY_CHECKS`] at once): one
//! that carries the cluster secret in the relay header counts against the total cap only.
//!
//! The gate also bounds the first request: a connection whose first request's headers are not
//! complete within the header timeout of its accept reads as closed, whatever its protocol.
//! hyper's own header-read timeout covers only HTTP/1 once the protocol is known; its
//! HTTP/1-or-HTTP/2 detection and HTTP/2's preface and first HEADERS have no timeout, so a
//! client sending nothing, or part of the HTTP/2 preface, would otherwise hold its slot.

use super::limits::{
    is_local_monitor, reserve_key, Refused, Slot, Slots, HTTP_RESERVE, HTTP_RESERVE_LOCAL,
    HTTP_RESERVE_PER_ADDRESS, RELAY_CHECKS, RELAY_CHECKS_PER_ADDRESS,
};
use super::metrics::Metrics;
use axum::Router;
use axum_server::accept::Accept;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How long a reserve connection lives: long enough for a health check, too short to hold.
pub const RESERVE_LIFETIME: Duration = Duration::from_secs(5);

/// Longest the request head of a connection over the per-address cap is waited for (a
/// relaying node sends it at once).
pub const RELAY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Most bytes of a request head looked at for the relay header.
pub const HEAD_LIMIT: usize = 4096;

/// What an admitted connection gets: its slot, its router, and when it expires (reserve).
type Admitted = (Slot, Router, Option<Pin<Box<Sleep>>>);

/// The acceptor that admits or refuses each HTTP(S) connection.
#[derive(Clone)]
pub struct Gate<A> {
    inner: A,
    slots: Arc<Slots>,
    reserve: Arc<Slots>,
    checks: Arc<Slots>,
    relay_secret: Option<Arc<str>>,
    local_reserve: Arc<Slots>,
    health: Router,
    metrics: Arc<Metrics>,
    header_timeout: Duration,
}

impl<A> Gate<A> {
    /// Admits at most `max` connections (`per_address` from one IP) to `inner`; the reserve
    /// serves `health` only. With `relay_secret` (a cluster node), connections relayed by
    /// another node are exempt from the per-address cap.
    /// A connection whose first request's headers are not in within `header_timeout` of
    /// its accept is closed.
    pub fn new(
        inner: A,
        max: usize,
        per_address: usize,
        relay_secret: Option<Arc<str>>,
        health: Router,
        metrics: Arc<Metrics>,
        header_timeout: Duration,
    ) -> Self {
        Gate {
            inner,
            slots: Slots::new(max, per_address),
            reserve: Slots::new(HTTP_RESERVE - HTTP_RESERVE_LOCAL, HTTP_RESERVE_PER_ADDRESS),
            local_reserve: Slots::new(HTTP_RESERVE_LOCAL, HTTP_RESERVE_LOCAL),
            checks: Slots::new(RELAY_CHECKS, RELAY_CHECKS_PER_ADDRESS),
            relay_secret,
            health,
            metrics,
            header_timeout,
        }
    }

    /// A connection the caps refused: an authenticated relay gets an exempt slot, anything
    /// else the reserve (health only) or nothing.
    async fn over_caps(
        &self,
        stream: &TcpStream,
        ip: IpAddr,
        why: Refused,
        service: Router,
    ) -> Option<Admitted> {
        if let (Refused::Address, Some(secret)) = (why, self.relay_secret.as_deref()) {
            if let Ok(_check) = self.checks.take(ip) {
                if relayed(stream, secret).await {
                    if let Ok(slot) = self.slots.take_exempt() {
                        return Some((slot, service, None));
                    }
                }
            }
        }
        self.take_reserve(ip).map(|slot| {
            self.metrics.http_reserve.inc();
            let expires = Box::pin(tokio::time::sleep(RESERVE_LIFETIME));
            (slot, self.health.clone(), Some(expires))
        })
    }
}

/// Whether the request head waiting on `stream` carries the relay header with `secret`.
async fn relayed(stream: &TcpStream, secret: &str) -> bool {
    let mut buf = vec![0u8; HEAD_LIMIT];
    let read = async {
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return 0,
                Ok(n) => n,
            };
            if n == buf.len() || buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                return n;
            }
            // peek returns at once while any byte is waiting: pause for the rest of the head.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let Ok(n) = tokio::time::timeout(RELAY_CHECK_TIMEOUT, read).await else {
        return false;
    };
    let name = crate::cluster::proxy::RELAY_HEADER.as_bytes();
    buf[..n]
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let (key, value) = line.split_at(line.iter().position(|b| *b == b':')?);
            key.eq_ignore_ascii_case(name)
                .then(|| value[1..].trim_ascii())
        })
        .any(|value| crate::cluster::proxy::authentic(value, secret))
}

impl<A> Gate<A> {
    /// A reserve slot: the local monitor's own, or one of the rest at one per address.
    fn take_reserve(&self, ip: std::net::IpAddr) -> Option<Slot> {
        if is_local_monitor(ip) {
            self.local_reserve.take(ip).ok()
        } else {
            self.reserve.take(reserve_key(ip)).ok()
        }
    }
}

impl<A> Accept<TcpStream, Router> for Gate<A>
where
    A: Accept<TcpStream, Router> + Clone + Send + Sync + 'static,
    A::Future: Send,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: Router) -> Self::Future {
        let first = stream
            .peer_addr()
            .map(|peer| (peer.ip(), self.slots.take(peer.ip())));
        let gate = self.clone();
        // From the accept, so the ICE-TCP sniff and a TLS handshake count against it too.
        let first_request = Box::pin(tokio::time::sleep(self.header_timeout));
        Box::pin(async move {
            let admitted = match first {
                Ok((_, Ok(slot))) => Some((slot, service, None)),
                Ok((ip, Err(why))) => gate.over_caps(&stream, ip, why, service).await,
                Err(_) => None,
            };
            let Some((slot, service, expires)) = admitted else {
                gate.metrics.http_refused.inc();
                return Err(io::Error::other("over the connection caps"));
            };
            let requested = Arc::new(AtomicBool::new(false));
            let service = mark_requests(service, Arc::clone(&requested));
            let (stream, service) = gate.inner.accept(stream, service).await?;
            let gauge = gate.metrics.http_connections.clone();
            gauge.inc();
            Ok((
                Counted {
                    inner: stream,
                    expires,
                    first_request: Some(first_request),
                    requested,
                    gauge,
                    _slot: slot,
                },
                service,
            ))
        })
    }
}

/// The router, with a flag raised on each request it is handed. hyper hands over a request
/// once its headers are complete, for HTTP/1 and HTTP/2 alike, so the first raise is the end
/// of the first request's headers.
fn mark_requests(service: Router, requested: Arc<AtomicBool>) -> Router {
    service.layer(axum::middleware::map_request(
        move |request: axum::extract::Request| {
            requested.store(true, Ordering::Relaxed);
            std::future::ready(request)
        },
    ))
}

/// An admitted connection: holds its slot until it closes; reads as closed when its first
/// request's headers are not in by the header timeout, and a reserve one once its lifetime
/// is over.
pub struct Counted<S> {
    inner: S,
    expires: Option<Pin<Box<Sleep>>>,
    first_request: Option<Pin<Box<Sleep>>>,
    requested: Arc<AtomicBool>,
    gauge: Gauge,
    _slot: Slot,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(expires) = self.expires.as_mut() {
            if expires.as_mut().poll(cx).is_ready() {
                // End of stream: the server finishes what it is doing and closes.
                return Poll::Ready(Ok(()));
            }
        }
        if self.first_request.is_some() && self.requested.load(Ordering::Relaxed) {
            // Later requests: hyper's HTTP/1 header-read timeout, and the caps.
            self.first_request = None;
        }
        if let Some(first) = self.first_request.as_mut() {
            if first.as_mut().poll(cx).is_ready() {
                // End of stream mid-preface or mid-headers: hyper drops the connection.
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
