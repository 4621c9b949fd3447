//! An edge node's viewer session: signalling goes on to the room's origin (the authority for
//! roster, roles, chat, Q&A, polls), media stays here, in the room's *edge room*.
//!
//! The session relays the viewer's messages to the origin over the same path as any relayed
//! session, marked [`EDGE_HEADER`], so the origin admits the viewer without joining it to its
//! media router. It intercepts the media messages (`offer`, `video_sizes`, `pin`): they go to
//! the edge room, which holds the viewer's peer and the stage relayed from the origin, and its
//! answer comes back from here. Of the edge room's own messages only media ones reach the
//! client ([`from_edge_room`]); everything else the client hears is the origin's.

use super::proxy::{self, Unreachable, RELAY_HEADER};
use crate::conference::JoinRequest;
use crate::protocol::{ClientMsg, ErrorCode, LeaveReason, ParticipantId, ServerMsg};
use crate::rate::TokenBucket;
use crate::server::outbound::{self, MAX_QUEUED_BYTES};
use crate::server::room_task::RoomMsg;
use crate::server::session::WRITE_TIMEOUT;
use crate::server::Shared;
use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::sync::Arc;
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message as Up;

/// Marks a session an edge relays to the origin; its value is the edge's node id. Only
/// believed together with [`RELAY_HEADER`] carrying the cluster secret.
pub const EDGE_HEADER: &str = "x-confab-edge";

/// Marks a session the accepting node relays to an edge; its value is the origin's node id.
/// Only believed together with [`RELAY_HEADER`].
pub const ORIGIN_HEADER: &str = "x-confab-origin";

/// The name of an edge room in this node's room registry: not a valid client room name
/// (`~` is refused), so no client can join or create it directly.
pub fn edge_room(room: &str) -> String {
    format!("edge~{room}")
}

/// Ids of an edge room's viewers start here: apart from every id an origin gives (the
/// relayed tracks keep their origin publisher's id), so that a viewer is never taken for the
/// publisher of a stage track (which would skip the subscription as its own), and below
/// 2^53 so that any id stays exact in JavaScript.
pub const EDGE_LOCAL_IDS: u64 = 1 << 52;

/// The id a viewer has in its edge room, from this node's id for its session.
pub fn edge_local(id: ParticipantId) -> ParticipantId {
    ParticipantId(EDGE_LOCAL_IDS | (id.0 & (EDGE_LOCAL_IDS - 1)))
}

/// The room an edge room relays, if `name` is one.
pub fn relayed_room(name: &str) -> Option<&str> {
    name.strip_prefix("edge~")
}

/// Intercepted media messages a viewer may send per second on average, and the burst (the
/// origin rate-limits the rest).
const MEDIA_PER_SEC: f64 = 10.0;
const MEDIA_BURST: f64 = 30.0;

/// Whether a client message is handled by the edge room rather than the origin.
fn is_media(msg: &ClientMsg) -> bool {
    matches!(
        msg,
        ClientMsg::Offer { .. } | ClientMsg::VideoSizes { .. } | ClientMsg::Pin { .. }
    )
}

/// Whether a message of the edge room goes to the client: what its media router says about
/// this viewer's own peer. The rest (roster, settings) is the edge room's local view; the
/// client learns the room from the origin.
fn from_edge_room(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        code: Option<ErrorCode>,
    }
    match serde_json::from_str::<Tag>(text) {
        Ok(t) => match t.kind {
            "answer" | "forwarded" | "audio_slots" => true,
            "error" => matches!(
                t.code,
                Some(
                    ErrorCode::SdpRejected
                        | ErrorCode::RateLimited
                        | ErrorCode::Closed
                        | ErrorCode::Internal
                        | ErrorCode::ShuttingDown
                        | ErrorCode::TooLarge
                        | ErrorCode::BadMessage
                )
            ),
            _ => false,
        },
        Err(_) => false,
    }
}

/// Serves one viewer whose media this node carries as an edge of `room`, served by
/// `origin` at `origin_url`. `join` is the client's join as received; `request` the local
/// admission (its id is this node's, the origin gives the client its own).
#[allow(clippy::too_many_arguments)]
pub async fn serve<S, R>(
    sink: &mut S,
    stream: &mut R,
    shared: &Arc<Shared>,
    room: &str,
    join: &ClientMsg,
    request: JoinRequest,
    origin: &str,
    origin_url: &str,
) -> Result<(), Unreachable>
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Some(cluster) = shared.cluster.as_ref() else {
        return Err(Unreachable("not in a cluster".into()));
    };
    let text = serde_json::to_string(join).map_err(|e| Unreachable(e.to_string()))?;
    let headers = [
        (RELAY_HEADER, cluster.config.secret.clone()),
        (EDGE_HEADER, cluster.id().to_string()),
    ];
    let (mut up_sink, mut up_stream) = proxy::connect(origin_url, &headers, text, shared).await?;
    cluster.set_edge_origin(room, origin, origin_url);
    let mut request = request;
    request.id = edge_local(request.id);
    let id = request.id;
    let (tx, mut rx) = outbound::channel(MAX_QUEUED_BYTES);
    let edge = match shared
        .rooms
        .join(shared, &edge_room(room), request, tx, false)
    {
        Ok(r) => r,
        Err((code, message)) => {
            let _ = proxy::send_client(sink, &ServerMsg::error(code, message)).await;
            let _ = tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(Up::Close(None))).await;
            return Ok(());
        }
    };
    cluster.metrics.edge_sessions.inc();
    let mut rate = TokenBucket::new(MEDIA_PER_SEC, MEDIA_BURST, Instant::now());
    let mut shutdown = shared.shutdown.clone();
    let mut drained = Some(cluster.drained());
    let max = shared.config.max_message_bytes;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let msg = match frame.and_then(|f| f.ok()) {
                    None | Some(Message::Close(_)) => break,
                    Some(Message::Text(t)) if t.len() <= max => {
                        match serde_json::from_str::<ClientMsg>(t.as_str()) {
                            Ok(m) if is_media(&m) => {
                                if !rate.allow(Instant::now()) {
                                    let e = ServerMsg::error(ErrorCode::RateLimited, "Too many messages; slow down.");
                                    if !proxy::send_client(sink, &e).await { break; }
                                    continue;
                                }
                                if edge.send(RoomMsg::Client { id, msg: m }).await.is_err() {
                                    break;
                                }
                                continue;
                            }
                            Ok(ClientMsg::Leave {}) => break,
                            // Everything else (and malformed text) is the origin's to judge.
                            _ => Up::Text(t.as_str().into()),
                        }
                    }
                    Some(Message::Text(t)) => Up::Text(t.as_str().into()),
                    Some(Message::Binary(b)) => Up::Binary(b),
                    Some(Message::Ping(_) | Message::Pong(_)) => continue,
                };
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(msg)).await, Ok(Ok(()))) {
                    break;
                }
            }
            frame = up_stream.next() => {
                let msg = match frame.and_then(|f| f.ok()) {
                    Some(Up::Text(t)) => Message::Text(t.as_str().into()),
                    Some(Up::Binary(b)) => Message::Binary(b),
                    Some(Up::Ping(_) | Up::Pong(_)) => continue,
                    _ => break,
                };
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, sink.send(msg)).await, Ok(Ok(()))) {
                    break;
                }
            }
            out = rx.recv() => {
                let Some(frame) = out else { break };
                if !from_edge_room(frame.text.as_str()) {
                    continue;
                }
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(frame.text))).await, Ok(Ok(()))) {
                    break;
                }
                if frame.fatal {
                    break;
                }
            }
            _ = shutdown.changed() => {
                let e = ServerMsg::error(ErrorCode::ShuttingDown, "The server is restarting.");
                proxy::send_client(sink, &e).await;
                break;
            }
            _ = super::until_drained(&mut drained) => {
                let e = ServerMsg::error(ErrorCode::ShuttingDown, "This server is being drained.");
                proxy::send_client(sink, &e).await;
                break;
            }
        }
    }
    cluster.metrics.edge_sessions.dec();
    let _ = edge
        .send(RoomMsg::Leave {
            id,
            reason: LeaveReason::Left,
        })
        .await;
    // The origin sees the viewer leave at once, not after its idle timeout.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(Up::Close(None))).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_messages_of_the_edge_room_reach_the_client() {
        assert!(from_edge_room(r#"{"type":"answer","sdp":"v=0"}"#));
        assert!(from_edge_room(r#"{"type":"forwarded","tracks":[]}"#));
        assert!(!from_edge_room(r#"{"type":"joined","room":"x"}"#));
        assert!(!from_edge_room(r#"{"type":"participant_joined"}"#));
        assert!(from_edge_room(
            r#"{"type":"error","code":"sdp_rejected","message":"m"}"#
        ));
        assert!(!from_edge_room(
            r#"{"type":"error","code":"forbidden","message":"m"}"#
        ));
        assert!(!from_edge_room("not json"));
    }

    #[test]
    fn edge_viewer_ids_never_meet_origin_ids() {
        let local = edge_local(ParticipantId(1));
        assert_ne!(local, ParticipantId(1));
        assert!(local.0 >= EDGE_LOCAL_IDS && local.0 < 1 << 53);
        assert!(crate::media::relay::RelayId::of_peer(local).is_none());
    }

    #[test]
    fn edge_room_names_cannot_be_client_rooms() {
        let name = edge_room("talk");
        assert!(!crate::protocol::valid_room_name(&name));
        assert_eq!(relayed_room(&name), Some("talk"));
        assert_eq!(relayed_room("talk"), None);
    }
}
