//! HTTP(S) admission: connection caps in total and per source address, with a small reserve
//! that still answers `/healthz` and `/metrics` when they are reached: a few slots for a
//! monitor on the host itself, the rest at one per source address.
//!
//! Wraps the acceptor of `axum_server` (outermost, before the ICE-TCP sniff and TLS, so a
//! connection holds a slot from the moment it is accepted). A connection over the caps gets a
//! reserve slot and the health-only router, for at most [`RESERVE_LIFETIME`]; beyond the
//! reserve it is closed at once. Every outcome is counted in `/metrics`.
//!
//! The gate also bounds the first request: a connection whose first request's headers are not
//! complete within the header timeout of its accept reads as closed, whatever its protocol.
//! hyper's own header-read timeout covers only HTTP/1 once the protocol is known; its
//! HTTP/1-or-HTTP/2 detection and HTTP/2's preface and first HEADERS have no timeout, so a
//! client sending nothing, or part of the HTTP/2 preface, would otherwise hold its slot.

use super::limits::{
    is_local_monitor, reserve_key, Slot, Slots, HTTP_RESERVE, HTTP_RESERVE_LOCAL,
    HTTP_RESERVE_PER_ADDRESS,
};
use super::metrics::Metrics;
use axum::Router;
use axum_server::accept::Accept;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::io;
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

/// The acceptor that admits or refuses each HTTP(S) connection.
#[derive(Clone)]
pub struct Gate<A> {
    inner: A,
    slots: Arc<Slots>,
    reserve: Arc<Slots>,
    local_reserve: Arc<Slots>,
    health: Router,
    metrics: Arc<Metrics>,
    header_timeout: Duration,
}

impl<A> Gate<A> {
    /// Admits at most `max` connections (`per_address` from one IP) to `inner`; the reserve
    /// serves `health` only. A connection whose first request's headers are not in within
    /// `header_timeout` of its accept is closed.
    pub fn new(
        inner: A,
        max: usize,
        per_address: usize,
        health: Router,
        metrics: Arc<Metrics>,
        header_timeout: Duration,
    ) -> Self {
        Gate {
            inner,
            slots: Slots::new(max, per_address),
            reserve: Slots::new(HTTP_RESERVE - HTTP_RESERVE_LOCAL, HTTP_RESERVE_PER_ADDRESS),
            local_reserve: Slots::new(HTTP_RESERVE_LOCAL, HTTP_RESERVE_LOCAL),
            health,
            metrics,
            header_timeout,
        }
    }
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
        let admitted = stream
            .peer_addr()
            .map(|peer| match self.slots.take(peer.ip()) {
                Ok(slot) => Some((slot, service, None)),
                Err(_) => self.take_reserve(peer.ip()).map(|slot| {
                    self.metrics.http_reserve.inc();
                    let expires = Box::pin(tokio::time::sleep(RESERVE_LIFETIME));
                    (slot, self.health.clone(), Some(expires))
                }),
            });
        let (inner, gauge, metrics) = (
            self.inner.clone(),
            self.metrics.http_connections.clone(),
            Arc::clone(&self.metrics),
        );
        // From the accept, so the ICE-TCP sniff and a TLS handshake count against it too.
        let first_request = Box::pin(tokio::time::sleep(self.header_timeout));
        Box::pin(async move {
            let Ok(Some((slot, service, expires))) = admitted else {
                metrics.http_refused.inc();
                return Err(io::Error::other("over the connection caps"));
            };
            let requested = Arc::new(AtomicBool::new(false));
            let service = mark_requests(service, Arc::clone(&requested));
            let (stream, service) = inner.accept(stream, service).await?;
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
