//! HTTP(S) admission: connection caps in total and per source address, with a small reserve
//! that still answers `/healthz` and `/metrics` when they are reached.
//!
//! Wraps the acceptor of `axum_server` (outermost, before the ICE-TCP sniff and TLS, so a
//! connection holds a slot from the moment it is accepted). A connection over the caps gets a
//! reserve slot and the health-only router, for at most [`RESERVE_LIFETIME`]; beyond the
//! reserve it is closed at once. Every outcome is counted in `/metrics`.

use super::limits::{Slot, Slots, HTTP_RESERVE, HTTP_RESERVE_PER_ADDRESS};
use super::metrics::Metrics;
use axum::Router;
use axum_server::accept::Accept;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::io;
use std::pin::Pin;
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
    health: Router,
    metrics: Arc<Metrics>,
}

impl<A> Gate<A> {
    /// Admits at most `max` connections (`per_address` from one IP) to `inner`; the reserve
    /// serves `health` only.
    pub fn new(
        inner: A,
        max: usize,
        per_address: usize,
        health: Router,
        metrics: Arc<Metrics>,
    ) -> Self {
        Gate {
            inner,
            slots: Slots::new(max, per_address),
            reserve: Slots::new(HTTP_RESERVE, HTTP_RESERVE_PER_ADDRESS),
            health,
            metrics,
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
                Err(_) => self.reserve.take(peer.ip()).ok().map(|slot| {
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
        Box::pin(async move {
            let Ok(Some((slot, service, expires))) = admitted else {
                metrics.http_refused.inc();
                return Err(io::Error::other("over the connection caps"));
            };
            let (stream, service) = inner.accept(stream, service).await?;
            gauge.inc();
            Ok((
                Counted {
                    inner: stream,
                    expires,
                    gauge,
                    _slot: slot,
                },
                service,
            ))
        })
    }
}

/// An admitted connection: holds its slot until it closes; a reserve one reads as closed
/// once its lifetime is over.
pub struct Counted<S> {
    inner: S,
    expires: Option<Pin<Box<Sleep>>>,
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
