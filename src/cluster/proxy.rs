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

/// The upstream half of a relayed session.
pub type UpSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Up,
>;
/// The downstream half of a relayed session.
pub type UpStream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// Opens a node-to-node WebSocket to `url` with `headers` and sends `join` on it.
pub async fn connect(
    url: &str,
    headers: &[(&'static str, String)],
    join: String,
    shared: &Shared,
) -> Result<(UpSink, UpStream), Unreachable> {
    let mut request = url
        .into_client_request()
        .map_err(|e| Unreachable(e.to_string()))?;
    for (name, value) in headers {
        let mut value = axum::http::HeaderValue::from_str(value)
            .map_err(|_| Unreachable(format!("{name} is not a header value")))?;
        value.set_sensitive(*name == RELAY_HEADER);
        request.headers_mut().insert(*name, value);
    }
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
    let (mut up_sink, up_stream) = upstream.split();
    if !matches!(
        tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(Up::Text(join.into()))).await,
        Ok(Ok(()))
    ) {
        return Err(Unreachable("join not accepted".into()));
    }
    Ok((up_sink, up_stream))
}

/// Sends one server message to the client; false when the write failed or timed out.
pub async fn send_client<S>(sink: &mut S, msg: &crate::protocol::ServerMsg) -> bool
where
    S: Sink<Message> + Unpin,
{
    let Ok(text) = serde_json::to_string(msg) else {
        return false;
    };
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

/// Relays a session to `url`, starting with the client's `join` (already read here), with
/// the relay header and `extra` headers.
/// `Err` only when the node could not be reached: the client has been sent nothing yet.
pub async fn relay<S, R>(
    sink: &mut S,
    stream: &mut R,
    url: &str,
    join: String,
    shared: &Shared,
    extra: Option<(&'static str, String)>,
) -> Result<(), Unreachable>
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Some(cluster) = shared.cluster.as_ref() else {
        return Err(Unreachable("not in a cluster".into()));
    };
    let mut headers = vec![(RELAY_HEADER, cluster.config.secret.clone())];
    headers.extend(extra);
    let (mut up_sink, mut up_stream) = connect(url, &headers, join, shared).await?;
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

/// Where a session was served.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// Not yet: this node serves the room (its origin, or a single node).
    Here,
    /// Relayed to another node, and over.
    Elsewhere,
    /// This node should serve it as an edge of the room whose origin is `origin` at `url`.
    Edge {
        /// The origin's node id.
        origin: String,
        /// Its signalling URL.
        url: String,
    },
}

/// Relays the session if another node serves `room` or, for a viewer past the origin's
/// audience cap, an edge does (trying a second placement when a node cannot be reached).
pub async fn serve_elsewhere<S, R>(
    sink: &mut S,
    stream: &mut R,
    shared: &Shared,
    room: &str,
    join: &crate::protocol::ClientMsg,
    viewer: bool,
) -> Served
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Some(cluster) = shared.cluster.as_ref() else {
        return Served::Here;
    };
    let Ok(text) = serde_json::to_string(join) else {
        return Served::Here;
    };
    for _ in 0..2 {
        let (owner, owner_url) = match cluster.route(room).await {
            super::Route::Local => (cluster.id().to_string(), cluster.config.node_url.clone()),
            super::Route::Remote { node, url } => (node, url),
        };
        let edge = if viewer {
            cluster.place_viewer(room, &owner).await
        } else {
            None
        };
        let (node, url, extra) = match edge {
            Some((e, _)) if e == cluster.id() => {
                return Served::Edge {
                    origin: owner,
                    url: owner_url,
                }
            }
            Some((e, e_url)) => (e, e_url, Some((super::edge::ORIGIN_HEADER, owner.clone()))),
            None if owner == cluster.id() => return Served::Here,
            None => (owner, owner_url, None),
        };
        match relay(sink, stream, &url, text.clone(), shared, extra).await {
            Ok(()) => return Served::Elsewhere,
            Err(e) => {
                // Its heartbeat may not have lapsed yet: free the room now rather than in 10 s.
                cluster.metrics.relay_failures.inc();
                tracing::warn!(room, %node, error = %e, "relay failed: placing the room again");
                cluster.unreachable(room, &node).await;
            }
        }
    }
    Served::Here
}
