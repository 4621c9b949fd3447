//! The HTTP(S) port carries ICE-TCP too, for firewalls that let only web ports through.
//!
//! Each connection is told apart by its first byte (see [`tcp::is_ice_tcp`]): media goes to
//! the ICE-TCP handler as if it had come to the media port, everything else to HTTP or TLS
//! untouched. [`SniffAcceptor`] wraps the web server's acceptor (plain or TLS); the sniffing
//! runs on the connection's own task, so a silent client never holds up the others' accepts.

use super::{tcp, Transport};
use axum_server::accept::Accept;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpStream;

fn media(stream: TcpStream, peer: SocketAddr, t: &Arc<Transport>) {
    if let Some(announced) = tcp::announced_http(&stream, t) {
        tcp::take(stream, peer, announced, t);
    }
}

/// Wraps the web server's acceptor: ICE-TCP connections leave before HTTP or TLS sees them.
#[derive(Clone)]
pub struct SniffAcceptor<A> {
    inner: A,
    transport: Option<Arc<Transport>>,
}

impl<A> SniffAcceptor<A> {
    /// `inner` handles everything that is not ICE-TCP; without `transport` (ICE-TCP off on
    /// this port) everything goes to `inner`.
    pub fn new(inner: A, transport: Option<Arc<Transport>>) -> Self {
        SniffAcceptor { inner, transport }
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
        let (inner, t) = (self.inner.clone(), self.transport.clone());
        // Signalling frames are small and latency-bound (an answer, a roster change): none may
        // wait behind the peer's delayed ACK. ICE-TCP sets it again on its own connections.
        let _ = stream.set_nodelay(true);
        Box::pin(async move {
            if let Some(t) = t {
                if tcp::is_ice_tcp(&stream).await {
                    let peer = stream.peer_addr()?;
                    media(stream, peer, &t);
                    // Not an error of the web server's: it only has nothing to serve here.
                    return Err(io::Error::other("ICE-TCP on the web port"));
                }
            }
            inner.accept(stream, service).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum_server::accept::DefaultAcceptor;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn web_connections_go_without_nagle() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        assert!(
            !stream.nodelay().expect("nodelay"),
            "Nagle is on by default"
        );
        let acceptor = SniffAcceptor::new(DefaultAcceptor::new(), None);
        let (stream, ()) = acceptor.accept(stream, ()).await.expect("accepted");
        assert!(stream.nodelay().expect("nodelay"));
    }
}
