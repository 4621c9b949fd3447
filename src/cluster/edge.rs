//! An edge node's viewer session: signalling goes on to the room's origin (the authority for
//! roster, roles, chat, Q&A, polls), media stays here, in the room's *edge room*.
//!
//! The session relays the viewer's messages to the origin over the same path as any relayed
//! session, marked [`EDGE_HEADER`], so the origin admits the viewer without joining it to its
//! media router. It intercepts the media messages (`offer`, `video_sizes`, `pin`): they go to
//! the edge room, which holds the viewer's peer and the stage relayed from the origin, and its
//! answer comes back from here. Of the edge room's own messages only media ones reach the
//! client (`from_edge_room`); everything else the client hears is the origin's.
//!
//! The viewer's peer in the edge room has the id the origin gave it (read from the origin's
//! `joined`): an edge room holds one origin's viewers only, so ids stay unique, and a track a
//! promoted viewer publishes here is owned by the same id on every node. The origin's
//! messages about this viewer's role and mutes reach the edge room before the client
//! (`stage_event`), so a promotion's re-offer is never refused here and a host's mute
//! stops the edge's own viewers too.

use super::link::LinkEvent;
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
                        | ErrorCode::TimedOut
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
/// admission, whose id becomes the one the origin gives the viewer.
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
    let Some(id) = until_joined(sink, stream, &mut up_sink, &mut up_stream).await else {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(Up::Close(None))).await;
        return Ok(());
    };
    let mut request = request;
    request.id = id;
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
                    Some(Up::Text(t)) => {
                        if let Some(ev) = stage_event(t.as_str(), id) {
                            if edge.send(RoomMsg::Link(ev)).await.is_err() {
                                break;
                            }
                        }
                        Message::Text(t.as_str().into())
                    }
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

/// Carries the session until the origin admits the viewer (a lobby may come first); returns
/// the id it gave, or `None` when either side ended first.
async fn until_joined<S, R, US, UR>(
    sink: &mut S,
    stream: &mut R,
    up_sink: &mut US,
    up_stream: &mut UR,
) -> Option<ParticipantId>
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    US: Sink<Up> + Unpin,
    UR: Stream<Item = Result<Up, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        tokio::select! {
            frame = up_stream.next() => {
                let t = match frame.and_then(|f| f.ok())? {
                    Up::Text(t) => t,
                    Up::Ping(_) | Up::Pong(_) => continue,
                    _ => return None,
                };
                let joined = match serde_json::from_str::<ServerMsg>(t.as_str()) {
                    Ok(ServerMsg::Joined { you, .. }) => Some(you.id),
                    _ => None,
                };
                let sent = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(t.as_str().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return None;
                }
                if joined.is_some() {
                    return joined;
                }
            }
            frame = stream.next() => {
                // Waiting in the lobby: only the origin has anything to say to the client.
                let up = match frame.and_then(|f| f.ok())? {
                    Message::Text(t) => Up::Text(t.as_str().into()),
                    Message::Close(_) => return None,
                    _ => continue,
                };
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, up_sink.send(up)).await, Ok(Ok(()))) {
                    return None;
                }
            }
        }
    }
}

/// What the edge room must do about an origin message for viewer `me`: its role changed, or
/// one of its sources was muted (by itself or a host).
fn stage_event(text: &str, me: ParticipantId) -> Option<LinkEvent> {
    #[derive(serde::Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
    }
    let kind = serde_json::from_str::<Tag>(text).ok()?.kind;
    if kind != "participant_updated" && kind != "track_muted" {
        return None;
    }
    match serde_json::from_str::<ServerMsg>(text).ok()? {
        ServerMsg::ParticipantUpdated { participant } if participant.id == me => {
            Some(LinkEvent::StageRole {
                participant: me,
                role: participant.role,
            })
        }
        ServerMsg::TrackMuted {
            participant,
            source,
            muted,
            forced,
            ..
        } if participant == me => Some(LinkEvent::StageMute {
            participant: me,
            source,
            muted,
            forced,
        }),
        _ => None,
    }
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
    fn the_origin_s_role_and_mute_messages_for_this_viewer_reach_the_edge_room() {
        let me = ParticipantId(4);
        let up = r#"{"type":"participant_updated","participant":{"id":4,"name":"A","role":"presenter"}}"#;
        assert!(matches!(
            stage_event(up, me),
            Some(LinkEvent::StageRole {
                role: crate::protocol::Role::Presenter,
                ..
            })
        ));
        assert!(
            stage_event(up, ParticipantId(5)).is_none(),
            "someone else's"
        );
        let muted = r#"{"type":"track_muted","id":9,"participant":4,"source":"microphone","muted":true,"forced":true}"#;
        assert!(matches!(
            stage_event(muted, me),
            Some(LinkEvent::StageMute {
                muted: true,
                forced: true,
                ..
            })
        ));
        assert!(stage_event(r#"{"type":"chat"}"#, me).is_none());
        assert!(stage_event("not json", me).is_none());
    }

    #[test]
    fn edge_room_names_cannot_be_client_rooms() {
        let name = edge_room("talk");
        assert!(!crate::protocol::valid_room_name(&name));
        assert_eq!(relayed_room(&name), Some("talk"));
        assert_eq!(relayed_room("talk"), None);
    }
}
