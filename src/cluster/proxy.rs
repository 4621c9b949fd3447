//! The signalling relay: a session accepted here for a room another node serves is carried,
//! message by message, over a WebSocket to that node, which runs the session as its own.
//!
//! Why a relay and not a redirect: clients (the web client, bots, anything behind one load
//! balancer hostname) need no change and never learn node addresses for signalling; only
//! media goes straight to the serving node, whose addresses its SDP answer announces. The
//! relay holds one message in flight each way (bounded by the WebSocket message limit), every
//! write has the session's write timeout, and the connect has [`CONNECT_TIMEOUT`].

use crate::server::session::WRITE_TIMEOUT;
use crate::server::Shared;
use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Up;

/// The header that marks a relayed session; its value is the cluster secret
/// (`--cluster-secret`), compared in constant time. The node that receives it serves the
/// session itself and never relays it again, so two nodes that disagree about a room cannot
/// bounce a session between them; and the connection is exempt from the per-address cap
/// (every relayed session comes from the relaying node's address). The secret travels in the
/// clear like the rest of node-to-node signalling (`ws://`): nodes talk on a private network.
pub const RELAY_HEADER: &str = "x-confab-relay";

/// Whether a relay header's value is the cluster secret (constant time: the comparison
/// reveals nothing of the secret but its length).
pub fn authentic(value: &[u8], secret: &str) -> bool {
    use subtle::ConstantTimeEq;
    value.ct_eq(secret.as_bytes()).into()
}

/// Longest the connection to the room's node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a relay ended before it carried anything.
#[derive(Debug, thiserror::Error)]
#[error("room's node unreachable: {0}")]
pub struct Unreachable(pub String);

/// Relays a session to `url`, starting with the client's `join` (already read here).
/// `Err` only when the node could not be reached: the client has been sent nothing yet.
pub async fn relay<S, R>(
    sink: &mut S,
    stream: &mut R,
    url: &str,
    join: String,
    shared: &Shared,
) -> Result<(), Unreachable>
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Some(cluster) = shared.cluster.as_ref() else {
        return Err(Unreachable("not in a cluster".into()));
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| Unreachable(e.to_string()))?;
    let mut secret = axum::http::HeaderValue::from_str(&cluster.config.secret)
        .map_err(|_| Unreachable("cluster secret is not a header value".into()))?;
    secret.set_sensitive(true);
    request.headers_mut().insert(RELAY_HEADER, secret);
    let limit = shared.config.max_message_bytes * 2;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        .read_buffer_size(8 << 10)
        .write_buffer_size(8 << 10);
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    let (upstream, _) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return Err(Unreachable(e.to_string())),
        Err(_) => return Err(Unreachable("connect timed out".into())),
    };
    let (mut up_sink, mut up_stream) = upstream.split();
    if !matches!(
        tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(Up::Text(join.into()))).await,
        Ok(Ok(()))
    ) {
        return Err(Unreachable("join not accepted".into()));
    }
    cluster.metrics.relayed_out.inc();
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(msg) = frame.and_then(|f| f.ok()).and_then(to_upstream) else {
                    break;
                };
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(msg)).await, Ok(Ok(()))) {
                    break;
                }
            }
            frame = up_stream.next() => {
                let Some(msg) = frame.and_then(|f| f.ok()).and_then(to_client) else {
                    break;
                };
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, sink.send(msg)).await, Ok(Ok(()))) {
                    break;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    cluster.metrics.relayed_out.dec();
    // The room's node sees the session end at once (a leave), not after its idle timeout.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(Up::Close(None))).await;
    Ok(())
}

/// A client frame for the room's node; `None` ends the relay (the client closed).
fn to_upstream(msg: Message) -> Option<Up> {
    match msg {
        Message::Text(t) => Some(Up::Text(t.as_str().into())),
        Message::Binary(b) => Some(Up::Binary(b)),
        Message::Ping(p) => Some(Up::Ping(p)),
        Message::Pong(p) => Some(Up::Pong(p)),
        Message::Close(_) => None,
    }
}

/// A frame from the room's node for the client; `None` ends the relay (the node closed).
fn to_client(msg: Up) -> Option<Message> {
    match msg {
        Up::Text(t) => Some(Message::Text(t.as_str().into())),
        Up::Binary(b) => Some(Message::Binary(b)),
        Up::Ping(p) => Some(Message::Ping(p)),
        Up::Pong(p) => Some(Message::Pong(p)),
        Up::Close(_) | Up::Frame(_) => None,
    }
}

/// Relays the session if another node serves `room` (trying a second placement when that
/// node cannot be reached); false when this node should serve it.
pub async fn serve_elsewhere<S, R>(
    sink: &mut S,
    stream: &mut R,
    shared: &Shared,
    room: &str,
    join: &crate::protocol::ClientMsg,
) -> bool
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Some(cluster) = shared.cluster.as_ref() else {
        return false;
    };
    let Ok(text) = serde_json::to_string(join) else {
        return false;
    };
    for _ in 0..2 {
        let (node, url) = match cluster.route(room).await {
            super::Route::Local => return false,
            super::Route::Remote { node, url } => (node, url),
        };
        match relay(sink, stream, &url, text.clone(), shared).await {
            Ok(()) => return true,
            Err(e) => {
                // Its heartbeat may not have lapsed yet: free the room now rather than in 10 s.
                cluster.metrics.relay_failures.inc();
                tracing::warn!(room, %node, error = %e, "relay failed: placing the room again");
                cluster.unreachable(room, &node).await;
            }
        }
    }
    false
}
