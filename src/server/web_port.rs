//! The HTTP(S) port carries ICE-TCP too, for firewalls that let only web ports through.
//!
//! Each connection is told apart by its first byte (see [`tcp::is_ice_tcp`]): media goes to
//! the ICE-TCP handler as if it had come to the media port, everything else to HTTP or TLS
//! untouched. Plain HTTP gets its connections from [`WebListener`]; HTTPS wraps its TLS
//! acceptor in [`SniffAcceptor`]. Either way the sniffing runs on the connection's own task,
//! so a silent client never holds up the others' accepts.

use super::{tcp, Shared};
use axum_server::accept::Accept;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Web connections accepted but not yet picked up by the HTTP server.
const WEB_BACKLOG: usize = 256;

/// The web connections of a shared HTTP port, as axum's listener.
pub struct WebListener {
    rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for WebListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.rx.recv().await {
            Some(connection) => connection,
            // The accept loop ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts on `listener` until shutdown, hands ICE-TCP to the media side and returns the
/// rest through the listener it gives back.
pub fn split(listener: TcpListener, shared: Arc<Shared>) -> io::Result<WebListener> {
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(WEB_BACKLOG);
    tokio::spawn(async move {
        tcp::accept_until_shutdown(listener, &shared, |stream, peer| {
            let (tx, shared) = (tx.clone(), Arc::clone(&shared));
            tokio::spawn(async move {
                if tcp::is_ice_tcp(&stream).await {
                    media(stream, peer, &shared);
                } else {
                    let _ = tx.send((stream, peer)).await;
                }
            });
        })
        .await;
    });
    Ok(WebListener { rx, local })
}

fn media(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    if let Some(announced) = tcp::announced_http(&stream, shared) {
        tcp::take(stream, peer, announced, shared);
    }
}

/// Wraps the HTTPS server's acceptor: ICE-TCP connections leave before the TLS handshake.
#[derive(Clone)]
pub struct SniffAcceptor<A> {
    inner: A,
    shared: Arc<Shared>,
}

impl<A> SniffAcceptor<A> {
    /// `inner` handles everything that is not ICE-TCP.
    pub fn new(inner: A, shared: Arc<Shared>) -> Self {
        SniffAcceptor { inner, shared }
    }
}

impl<A, S> Accept<TcpStream, S> for SniffAcceptor<A>
where
    A: Accept<TcpStream, S> + Clone + Send + Sync + 'static,
    A::Future: Send,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let (inner, shared) = (self.inner.clone(), Arc::clone(&self.shared));
        Box::pin(async move {
            if tcp::is_ice_tcp(&stream).await {
                let peer = stream.peer_addr()?;
                media(stream, peer, &shared);
                // Not an error of the web server's: it only has nothing to serve here.
                return Err(io::Error::other("ICE-TCP on the HTTPS port"));
            }
            inner.accept(stream, service).await
        })
    }
}
