//! One signalling session: a WebSocket (any `Stream`/`Sink` of messages) ⇄ its room task.
//!
//! The session validates everything a client sends before it reaches the room: size, JSON shape,
//! rate, and that `join` comes first and once. Errors go back as typed `error` messages.

use super::outbound::{self, Frame, OutboundRx, MAX_QUEUED_BYTES};
use super::room_task::RoomMsg;
use super::Shared;
use crate::conference::record::Credentials;
use crate::conference::JoinRequest;
use crate::protocol::{
    valid_room_name, ClientMsg, ErrorCode, LeaveReason, ParticipantId, ServerMsg, PROTOCOL_VERSION,
};
use crate::rate::TokenBucket;
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest one WebSocket write may wait for the client to read; a client that does not read
/// for this long is disconnected (counted as `ws_write_timeouts`).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a closing session waits for the client to answer its close frame; a browser
/// answers at once.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Messages per second a client may send on average, and the burst it may save up.
const RATE_PER_SEC: f64 = 20.0;
const RATE_BURST: f64 = 60.0;

/// What one frame from the client turned out to be.
enum Incoming {
    Msg(ClientMsg),
    Refused(ErrorCode, String),
    Ignore,
    Closed,
}

fn read_frame(frame: Option<Result<Message, axum::Error>>, max: usize) -> Incoming {
    match frame {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Incoming::Closed,
        Some(Ok(Message::Text(t))) => parse(t.as_str(), max),
        Some(Ok(Message::Binary(b))) => {
            if b.len() > max {
                return Incoming::Refused(ErrorCode::TooLarge, too_large(b.len(), max));
            }
            match std::str::from_utf8(&b) {
                Ok(t) => parse(t, max),
                Err(_) => {
                    Incoming::Refused(ErrorCode::BadMessage, "Messages are JSON text.".into())
                }
            }
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Ignore,
    }
}

fn too_large(len: usize, max: usize) -> String {
    format!("Message of {len} bytes exceeds the limit of {max} bytes.")
}

/// Parses one client message, refusing oversize and malformed ones.
fn parse(text: &str, max: usize) -> Incoming {
    if text.len() > max {
        return Incoming::Refused(ErrorCode::TooLarge, too_large(text.len(), max));
    }
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(m) => Incoming::Msg(m),
        Err(e) => Incoming::Refused(ErrorCode::BadMessage, format!("Not a valid message: {e}.")),
    }
}

/// How a write ended.
#[derive(Debug, PartialEq, Eq)]
enum Wrote {
    Done,
    Failed,
    TimedOut,
}

/// Writes one message, giving up after [`WRITE_TIMEOUT`].
async fn write<S>(sink: &mut S, msg: Message) -> Wrote
where
    S: Sink<Message> + Unpin,
{
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(msg)).await {
        Ok(Ok(())) => Wrote::Done,
        Ok(Err(_)) => Wrote::Failed,
        Err(_) => Wrote::TimedOut,
    }
}

async fn send<S>(sink: &mut S, msg: &ServerMsg) -> Wrote
where
    S: Sink<Message> + Unpin,
{
    match serde_json::to_string(msg) {
        Ok(text) => write(sink, Message::Text(text.into())).await,
        Err(_) => Wrote::Failed,
    }
}

/// Ends the connection with the WebSocket closing handshake (RFC 6455 §7.1.1): our close
/// frame, then whatever the client still sends, read and dropped, up to its own close frame
/// (at most [`CLOSE_WAIT`]). Dropping the socket with the client's frames unread would make
/// the kernel answer with a reset, which throws away what it has not sent yet: the last
/// error (the meeting ended, you were removed) would never reach the client.
async fn close<S, R>(sink: &mut S, stream: &mut R)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let bye = Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "bye".into(),
    }));
    if write(sink, bye).await != Wrote::Done {
        return;
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
    let answered = async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, answered).await;
}

/// Runs one session to its end.
pub async fn run<S>(socket: S, shared: Arc<Shared>)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message> + Unpin,
{
    run_routed(socket, shared, Via::Client).await
}

/// How a session reached this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// From a client: in a cluster, placed (and maybe relayed on).
    Client,
    /// Relayed by another node: served here.
    Relay,
    /// Relayed by an edge node that carries the viewer's media: admitted here without media.
    Edge,
    /// Relayed here to be served as an edge of the room whose origin is this node id.
    ToEdge(String),
}

/// Runs one session to its end; in a cluster, relays it to the room's node (or a viewer to an
/// edge) unless another node relayed it here.
pub async fn run_routed<S>(socket: S, shared: Arc<Shared>, via: Via)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message> + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    let max = shared.config.max_message_bytes;
    let mut shutdown = shared.shutdown.clone();

    // Phase 1: the first message must be a valid join.
    let deadline = tokio::time::sleep(shared.config.join_timeout);
    tokio::pin!(deadline);
    let ((room_name, request), join_text) = loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = &mut deadline => {
                send(&mut sink, &ServerMsg::error(ErrorCode::NotJoined, "No join message arrived in time.")).await;
                return close(&mut sink, &mut stream).await;
            }
            _ = shutdown.changed() => return close(&mut sink, &mut stream).await,
        };
        let refusal = match read_frame(frame, max) {
            Incoming::Closed => return,
            Incoming::Ignore => continue,
            Incoming::Refused(code, message) => (code, message),
            Incoming::Msg(join @ ClientMsg::Join { .. }) => match check_join(&shared, join.clone())
            {
                Ok(accepted) => break (accepted, join),
                Err((code, message)) => {
                    shared.metrics.signalling_errors.inc();
                    send(&mut sink, &ServerMsg::error(code, message)).await;
                    return close(&mut sink, &mut stream).await;
                }
            },
            Incoming::Msg(_) => (ErrorCode::NotJoined, "Send join first.".to_string()),
        };
        shared.metrics.signalling_errors.inc();
        send(&mut sink, &ServerMsg::error(refusal.0, refusal.1)).await;
    };

    if let Some(cluster) = shared.cluster.as_ref() {
        use crate::cluster::proxy::{serve_elsewhere, Served};
        let edge = match &via {
            Via::Client => {
                let viewer = crate::cluster::placement::may_be_edge(&request.credentials);
                match serve_elsewhere(
                    &mut sink,
                    &mut stream,
                    &shared,
                    &room_name,
                    &join_text,
                    viewer,
                )
                .await
                {
                    Served::Here => None,
                    Served::Elsewhere => return close(&mut sink, &mut stream).await,
                    Served::Edge { origin, url } => Some((origin, Some(url))),
                }
            }
            Via::ToEdge(origin) => {
                cluster.metrics.relayed_in.inc();
                Some((origin.clone(), None))
            }
            Via::Relay | Via::Edge => {
                cluster.metrics.relayed_in.inc();
                None
            }
        };
        if let Some((origin, url)) = edge {
            let url = match url {
                Some(u) => Some(u),
                None => cluster.origin_url(&origin).await,
            };
            let served = match url {
                Some(url) => {
                    crate::cluster::edge::serve(
                        &mut sink,
                        &mut stream,
                        &shared,
                        &room_name,
                        &join_text,
                        request,
                        &origin,
                        &url,
                    )
                    .await
                }
                None => Err(crate::cluster::proxy::Unreachable(origin.clone())),
            };
            if let Err(e) = served {
                tracing::warn!(room = room_name.as_str(), error = %e, "edge cannot reach the room's origin");
                let msg = ServerMsg::error(
                    ErrorCode::ShuttingDown,
                    "The room's server cannot be reached; reconnecting.",
                );
                send(&mut sink, &msg).await;
            }
            return close(&mut sink, &mut stream).await;
        }
    }

    // Phase 2: in the room (or its lobby).
    let id = request.id;
    let (tx, mut rx) = outbound::channel(MAX_QUEUED_BYTES);
    let room = match shared
        .rooms
        .join(&shared, &room_name, request, tx, via == Via::Edge)
    {
        Ok(r) => r,
        Err((code, message)) => {
            send(&mut sink, &ServerMsg::error(code, message)).await;
            return close(&mut sink, &mut stream).await;
        }
    };
    let (reason, stalled) = in_room(&mut sink, &mut stream, &mut rx, &room, &shared, id).await;
    let _ = room.send(RoomMsg::Leave { id, reason }).await;
    if stalled {
        // A client that does not read would hold the close for another timeout.
        shared.metrics.ws_write_timeouts.inc();
    } else {
        close(&mut sink, &mut stream).await;
    }
}

/// Validates a join and turns it into a request for the room: room and name rules, token.
fn check_join(
    shared: &Shared,
    join: ClientMsg,
) -> Result<(String, JoinRequest), (ErrorCode, String)> {
    let ClientMsg::Join {
        room,
        name,
        role,
        key,
        token,
        mode,
        password,
        version,
    } = join
    else {
        return Err((ErrorCode::NotJoined, "Send join first.".into()));
    };
    if let Some(v) = version.filter(|v| *v != PROTOCOL_VERSION) {
        return Err((
            ErrorCode::UnsupportedVersion,
            format!("This client speaks protocol version {v}; this server speaks {PROTOCOL_VERSION}. Reload the page or update the client."),
        ));
    }
    if !valid_room_name(&room) {
        return Err((
            ErrorCode::InvalidRoom,
            "Room names are 1–64 letters, digits, '-', '_' or '.'.".into(),
        ));
    }
    let claims = shared
        .auth
        .verify(token.as_deref(), &room)
        .map_err(|e| (ErrorCode::Unauthorized, e.to_string()))?;
    // A token's name and role win over what the message asks for; the room's record decides
    // what the token role, the key and the asked role grant together.
    let (name, token_role, identity, mode) = match claims {
        Some(c) => {
            let identity = c.sub.clone().unwrap_or_else(|| c.name.clone());
            (c.name, Some(c.role), identity, c.mode.or(mode))
        }
        None => (name.clone(), None, name, mode),
    };
    let name = crate::names::check_display_name(&name)
        .map_err(|e| (ErrorCode::InvalidName, e.to_string()))?;
    let id = ParticipantId(shared.next_participant.fetch_add(1, Ordering::Relaxed));
    Ok((
        room,
        JoinRequest {
            id,
            name,
            credentials: Credentials {
                token_role,
                key: key.filter(|k| !k.is_empty()),
                asked: role,
            },
            identity: identity.trim().to_string(),
            mode,
            password,
        },
    ))
}

async fn in_room<S, R>(
    sink: &mut S,
    stream: &mut R,
    rx: &mut OutboundRx,
    room: &mpsc::Sender<RoomMsg>,
    shared: &Shared,
    id: ParticipantId,
) -> (LeaveReason, bool)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let max = shared.config.max_message_bytes;
    let idle = shared.config.idle_timeout;
    let mut rate = TokenBucket::new(RATE_PER_SEC, RATE_BURST, Instant::now());
    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval(idle / 3);
    let mut shutdown = shared.shutdown.clone();
    let mut drained = shared.cluster.as_ref().map(|c| c.drained());
    // Ends the session after a write: a stalled write ends it at once, without another write.
    macro_rules! wrote {
        ($w:expr, $on_fail:expr) => {
            match $w {
                Wrote::Done => {}
                Wrote::Failed => return ($on_fail, false),
                Wrote::TimedOut => return (LeaveReason::Error, true),
            }
        };
    }
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(Frame { text, fatal }) = out else {
                    wrote!(send(sink, &ServerMsg::error(ErrorCode::Internal, "The room ended unexpectedly.")).await, LeaveReason::Error);
                    return (LeaveReason::Error, false);
                };
                wrote!(write(sink, Message::Text(text)).await, LeaveReason::Left);
                if fatal {
                    return (LeaveReason::Error, false);
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                let incoming = read_frame(frame, max);
                if matches!(incoming, Incoming::Msg(_)) && !rate.allow(last_heard) {
                    shared.metrics.signalling_errors.inc();
                    wrote!(send(sink, &ServerMsg::error(ErrorCode::RateLimited, "Too many messages; slow down.")).await, LeaveReason::Left);
                    continue;
                }
                match incoming {
                    Incoming::Closed => return (LeaveReason::Left, false),
                    Incoming::Ignore => {}
                    Incoming::Refused(code, message) => {
                        shared.metrics.signalling_errors.inc();
                        wrote!(send(sink, &ServerMsg::error(code, message)).await, LeaveReason::Left);
                    }
                    // Leaving ends the session; the room hears it once, as `RoomMsg::Leave`.
                    Incoming::Msg(ClientMsg::Leave {}) => return (LeaveReason::Left, false),
                    Incoming::Msg(msg) => {
                        if room.send(RoomMsg::Client { id, msg }).await.is_err() {
                            // The room has ended; its last frames to us (the meeting ended, you
                            // were removed) say why, and were queued before it went.
                            while let Some(Frame { text, fatal }) = rx.try_recv() {
                                wrote!(write(sink, Message::Text(text)).await, LeaveReason::Left);
                                if fatal {
                                    return (LeaveReason::Error, false);
                                }
                            }
                            wrote!(send(sink, &ServerMsg::error(ErrorCode::Internal, "The room ended unexpectedly.")).await, LeaveReason::Error);
                            return (LeaveReason::Error, false);
                        }
                    }
                }
            }
            _ = tick.tick() => {
                if last_heard.elapsed() > idle {
                    wrote!(send(sink, &ServerMsg::error(ErrorCode::TimedOut, "Your connection timed out.")).await, LeaveReason::Timeout);
                    return (LeaveReason::Timeout, false);
                }
                wrote!(write(sink, Message::Ping(Vec::new().into())).await, LeaveReason::Left);
            }
            _ = shutdown.changed() => {
                wrote!(send(sink, &ServerMsg::error(ErrorCode::ShuttingDown, "The server is restarting.")).await, LeaveReason::Left);
                return (LeaveReason::Left, false);
            }
            // Drained through the room API: the same rejoin as a restart, the node stays up.
            _ = crate::cluster::until_drained(&mut drained) => {
                wrote!(send(sink, &ServerMsg::error(ErrorCode::ShuttingDown, "This server is being drained.")).await, LeaveReason::Left);
                return (LeaveReason::Left, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limit_allows_burst_then_refills() {
        let t0 = Instant::now();
        let mut r = TokenBucket::new(RATE_PER_SEC, RATE_BURST, t0);
        let allowed = (0..100).filter(|_| r.allow(t0)).count();
        assert_eq!(allowed, RATE_BURST as usize);
        assert!(r.allow(t0 + Duration::from_millis(100)));
    }

    /// A peer that never reads: its socket never takes another byte.
    struct Stuck;

    impl Sink<Message> for Stuck {
        type Error = ();
        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
        fn start_send(self: std::pin::Pin<&mut Self>, _: Message) -> Result<(), ()> {
            Ok(())
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
    }

    /// A write to a client that stopped reading gives up after [`WRITE_TIMEOUT`] (the session
    /// then ends without another write) instead of waiting for ever.
    #[tokio::test]
    async fn a_stalled_write_times_out() {
        let start = Instant::now();
        let msg = ServerMsg::error(ErrorCode::Closed, "x");
        assert_eq!(send(&mut Stuck, &msg).await, Wrote::TimedOut);
        assert!(start.elapsed() >= WRITE_TIMEOUT);
        assert!(start.elapsed() < WRITE_TIMEOUT + Duration::from_secs(5));
    }

    #[test]
    fn parse_refuses_large_and_malformed() {
        assert!(matches!(
            parse("{}", 10),
            Incoming::Refused(ErrorCode::BadMessage, _)
        ));
        assert!(matches!(
            parse(&"x".repeat(11), 10),
            Incoming::Refused(ErrorCode::TooLarge, _)
        ));
        assert!(matches!(
            parse(r#"{"type":"leave"}"#, 100),
            Incoming::Msg(ClientMsg::Leave {})
        ));
    }
}
