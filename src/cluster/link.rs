//! The relay's control link: one WebSocket per (room, edge node), from the edge to the
//! room's origin at `/cluster/link`, authenticated by the relay header.
//!
//! Edge → origin: `hello` (room, edge id, the edge's relay UDP address, the 16-byte HKDF salt
//! of the link key, the relay datagram layout it speaks: another than the origin's is closed
//! with a reason), then `needs` (which layers of which tracks its viewers want),
//! `keyframe` requests and `resend` (relay datagrams that did not arrive). Origin → edge:
//! `welcome` (the link id the datagrams carry), `tracks` (the stage's tracks: the whole list
//! on each change, a stage being a handful of tracks) and `close`. For a viewer promoted on
//! the edge (`media::relay::uplink`): `stage_uplink` (origin → edge: the uplink's id and
//! address, the edge's block of track ids), `stage_tracks` (edge → origin: its local
//! tracks), `stage_needs`, `stage_keyframe` and `stage_resend` (origin → edge; uplink
//! datagrams that did not arrive). Every message is small JSON; each side holds at most
//! [`QUEUE`] messages, writes within the session write timeout, and the hello must arrive
//! within [`HELLO_TIMEOUT`]. When the link dies the edge room tells its viewers to rejoin
//! (`shutting_down`).

use super::proxy::{authentic, CONNECT_TIMEOUT, RELAY_HEADER};
use crate::media::relay::repair::MAX_RESEND;
use crate::media::relay::wire::WIRE_VERSION;
use crate::media::relay::{LayerSet, RelayTrack};
use crate::server::room_task::RoomMsg;
use crate::server::session::WRITE_TIMEOUT;
use crate::server::Shared;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Up;

/// Messages one side of a link queues before the link is dropped as stuck.
pub const QUEUE: usize = 64;
/// Longest wait for the hello (origin) or the welcome (edge).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest control message accepted (a track list of a large stage fits many times over).
pub const MAX_MESSAGE: usize = 64 << 10;
/// Most tracks one `tracks` message may list, and most entries of one `needs`.
pub const MAX_TRACKS: usize = 256;

/// One control message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkMsg {
    /// Edge → origin, first: who asks, where datagrams go, and the link key's salt.
    Hello {
        /// The link's id, chosen by the edge (unique among its links): the first 4 bytes of
        /// every datagram of the link.
        link: u32,
        /// The room.
        room: String,
        /// The edge's node id.
        edge: String,
        /// The edge's relay UDP address.
        relay: SocketAddr,
        /// 16 random bytes, hex: the HKDF salt of the link key.
        salt: String,
        /// The relay datagram layout the edge speaks (`wire::WIRE_VERSION`); 0 from an edge
        /// that names none (before version 2).
        #[serde(default)]
        wire: u32,
    },
    /// Origin → edge: the link is open.
    Welcome {
        /// The id, as the hello gave it.
        link: u32,
    },
    /// Origin → edge: the stage's tracks now, each with its simulcast shape.
    Tracks {
        /// Every published track of the room.
        tracks: Vec<RelayTrack>,
    },
    /// Edge → origin: the video layers its viewers want, per track (audio always flows).
    Needs {
        /// (track, layers) pairs; a track not listed is not wanted.
        needs: Vec<(crate::model::TrackId, LayerSet)>,
    },
    /// Edge → origin: a viewer needs a keyframe of this layer.
    Keyframe {
        /// The track.
        track: crate::model::TrackId,
        /// The layer.
        layer: u8,
    },
    /// Edge → origin: relay datagrams of one source that did not arrive (at most
    /// [`MAX_RESEND`] numbers); the origin seals them again (`media::relay::repair`).
    Resend {
        /// The track.
        track: crate::model::TrackId,
        /// The layer.
        layer: u8,
        /// The publisher's sequence numbers missing.
        seqs: Vec<u64>,
    },
    /// Origin → edge, after the welcome: where a promoted viewer's tracks go up
    /// (`media::relay::uplink`), and the track ids the edge numbers them from.
    StageUplink {
        /// The id uplink datagrams carry (the origin's relay socket routes by it).
        link: u32,
        /// The origin's relay UDP address.
        relay: SocketAddr,
        /// First id of the block of track ids this link's edge uses.
        first_track: u64,
    },
    /// Edge → origin: the tracks published on the edge now (promoted viewers'), owned by
    /// their origin ids: the whole list on each change.
    StageTracks {
        /// Every local track of the edge room.
        tracks: Vec<RelayTrack>,
    },
    /// Origin → edge: the video layers the room needs of the edge's tracks.
    StageNeeds {
        /// (track, layers) pairs; a track not listed is not wanted.
        needs: Vec<(crate::model::TrackId, LayerSet)>,
    },
    /// Origin → edge: someone needs a keyframe of one of the edge's tracks.
    StageKeyframe {
        /// The track.
        track: crate::model::TrackId,
        /// The layer.
        layer: u8,
    },
    /// Origin → edge: uplink datagrams of one of the edge's sources that did not arrive (at
    /// most [`MAX_RESEND`] numbers); the edge seals them again (`media::relay::repair`).
    StageResend {
        /// The track.
        track: crate::model::TrackId,
        /// The layer.
        layer: u8,
        /// The publisher's sequence numbers missing.
        seqs: Vec<u64>,
    },
    /// Either way: the link ends.
    Close {
        /// Why, for the log.
        reason: String,
    },
}

/// What a room task hears of its relay links.
#[derive(Debug)]
pub enum LinkEvent {
    /// Origin: an edge opened a link for this room.
    Opened {
        /// The link id.
        link: u32,
        /// The edge's node id.
        edge: String,
        /// Where its datagrams go.
        relay: SocketAddr,
        /// The link key's salt.
        salt: [u8; 16],
        /// Where this room's messages for the edge go.
        out: mpsc::Sender<LinkMsg>,
    },
    /// Origin: the edge's needs or keyframe request. Edge: the origin's track list.
    Message {
        /// The link.
        link: u32,
        /// What.
        msg: LinkMsg,
    },
    /// Edge: the link to the origin is up.
    Linked {
        /// The link id.
        link: u32,
        /// The link key's salt (the key is derived by the room, which seals or opens).
        salt: [u8; 16],
        /// Where this room's needs and keyframe requests go.
        out: mpsc::Sender<LinkMsg>,
    },
    /// Edge: the origin changed the role of one of the edge room's viewers (read from the
    /// origin's own messages on its session, before the client hears of it).
    StageRole {
        /// Who (the origin's id, also the edge room's).
        participant: crate::model::ParticipantId,
        /// The new role.
        role: crate::model::Role,
    },
    /// Edge: the origin muted or unmuted one of a viewer's sources (forced: by a host).
    StageMute {
        /// Whose.
        participant: crate::model::ParticipantId,
        /// Which source.
        source: crate::model::Source,
        /// Muted or not.
        muted: bool,
        /// By a host.
        forced: bool,
    },
    /// Either side: the link ended.
    Closed {
        /// The link.
        link: u32,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Why an edge speaking relay datagram layout `wire` cannot link to this origin, if it cannot.
fn wire_mismatch(wire: u32) -> Option<String> {
    (wire != WIRE_VERSION).then(|| {
        format!(
            "the edge speaks relay datagram layout {wire}, this origin {WIRE_VERSION}: \
             run one confab version across the cluster"
        )
    })
}

fn parse(text: &str) -> Option<LinkMsg> {
    if text.len() > MAX_MESSAGE {
        return None;
    }
    let msg: LinkMsg = serde_json::from_str(text).ok()?;
    let fits = match &msg {
        LinkMsg::Tracks { tracks } => tracks.len() <= MAX_TRACKS,
        LinkMsg::Needs { needs } | LinkMsg::StageNeeds { needs } => needs.len() <= MAX_TRACKS,
        LinkMsg::StageTracks { tracks } => tracks.len() <= MAX_TRACKS,
        LinkMsg::Resend { seqs, .. } | LinkMsg::StageResend { seqs, .. } => {
            seqs.len() <= MAX_RESEND
        }
        _ => true,
    };
    fits.then_some(msg)
}

/// `GET /cluster/link`: the origin's end. Refused without the cluster secret.
pub async fn accept(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(cluster) = shared.cluster.as_ref() else {
        return (StatusCode::NOT_FOUND, "not in a cluster").into_response();
    };
    let ok = headers
        .get(RELAY_HEADER)
        .is_some_and(|v| authentic(v.as_bytes(), &cluster.config.secret));
    if !ok {
        cluster.metrics.relay_forged.inc();
        return (
            StatusCode::FORBIDDEN,
            "relay link without the cluster secret",
        )
            .into_response();
    }
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(8 << 10)
        .write_buffer_size(8 << 10)
        .on_upgrade(move |socket| origin_side(socket, shared))
}

async fn origin_side(socket: WebSocket, shared: Arc<Shared>) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let hello = tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = hello else {
        return;
    };
    let Some(LinkMsg::Hello {
        link,
        room,
        edge,
        relay,
        salt,
        wire,
    }) = parse(text.as_str())
    else {
        return;
    };
    if let Some(reason) = wire_mismatch(wire) {
        tracing::warn!(room, edge, wire, "relay link refused: {reason}");
        let _ = send_axum(&mut sink, &LinkMsg::Close { reason }).await;
        return;
    }
    let (Some(salt), Some(room_tx)) = (unhex16(&salt), shared.rooms.sender(&room)) else {
        let bye = LinkMsg::Close {
            reason: "no such room here, or a bad salt".into(),
        };
        let _ = send_axum(&mut sink, &bye).await;
        return;
    };
    let (out, mut rx) = mpsc::channel(QUEUE);
    let opened = LinkEvent::Opened {
        link,
        edge: edge.clone(),
        relay,
        salt,
        out,
    };
    if room_tx
        .send_timeout(RoomMsg::Link(opened), HELLO_TIMEOUT)
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(room, edge, link, %relay, "relay link opened");
    cluster.metrics.relay_links.inc();
    if send_axum(&mut sink, &LinkMsg::Welcome { link }).await {
        let mut shutdown = shared.shutdown.clone();
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let Some(Ok(Message::Text(t))) = frame else { break };
                    let Some(msg @ (LinkMsg::Needs { .. } | LinkMsg::Keyframe { .. } | LinkMsg::Resend { .. } | LinkMsg::StageTracks { .. })) = parse(t.as_str()) else {
                        break;
                    };
                    // A room that cannot take a control message now is overloaded: the edge
                    // asks again on its next change, and keyframes are re-requested anyway.
                    let _ = room_tx.try_send(RoomMsg::Link(LinkEvent::Message { link, msg }));
                }
                out = rx.recv() => {
                    let Some(msg) = out else { break };
                    let last = matches!(msg, LinkMsg::Close { .. });
                    if !send_axum(&mut sink, &msg).await || last {
                        break;
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }
    cluster.metrics.relay_links.dec();
    tracing::info!(room, edge, link, "relay link closed");
    let _ = room_tx
        .send_timeout(RoomMsg::Link(LinkEvent::Closed { link }), WRITE_TIMEOUT)
        .await;
}

async fn send_axum<S>(sink: &mut S, msg: &LinkMsg) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    let Ok(text) = serde_json::to_string(msg) else {
        return false;
    };
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

/// The control link URL of a node whose signalling URL is `ws_url` (`ws://host:port/ws`).
pub fn link_url(ws_url: &str) -> String {
    let base = ws_url.strip_suffix("/ws").unwrap_or(ws_url);
    format!("{base}/cluster/link")
}

/// The edge's end, for the edge room of `room` (its signalling queue `room_tx`): runs until
/// the room closes or the link fails; the room then hears [`LinkEvent::Closed`].
pub async fn edge_side(room: String, room_tx: mpsc::Sender<RoomMsg>, shared: Arc<Shared>) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let link = match run_edge(&room, &room_tx, &shared, &cluster).await {
        Ok(link) => {
            cluster.unroute_link(link);
            link
        }
        Err(why) => {
            tracing::warn!(room, "relay link to the origin failed: {why}");
            0
        }
    };
    let _ = room_tx
        .send_timeout(RoomMsg::Link(LinkEvent::Closed { link }), WRITE_TIMEOUT)
        .await;
}

async fn run_edge(
    room: &str,
    room_tx: &mpsc::Sender<RoomMsg>,
    shared: &Arc<Shared>,
    cluster: &Arc<super::Cluster>,
) -> Result<u32, String> {
    let (_, origin_url) = cluster.edge_origin(room).ok_or("the origin is not known")?;
    let relay = cluster.relay_addr().ok_or("no relay socket")?;
    let inbox = shared
        .rooms
        .media_inbox(&super::edge::edge_room(room))
        .ok_or("edge room closed")?;
    // Routed before the hello: datagrams may arrive before the welcome does.
    let link = cluster.route_link(inbox);
    match hello_and_run(room, room_tx, shared, cluster, &origin_url, relay, link).await {
        Ok(()) => Ok(link),
        Err(e) => {
            cluster.unroute_link(link);
            Err(e)
        }
    }
}

async fn hello_and_run(
    room: &str,
    room_tx: &mpsc::Sender<RoomMsg>,
    shared: &Arc<Shared>,
    cluster: &Arc<super::Cluster>,
    origin_url: &str,
    relay: SocketAddr,
    link: u32,
) -> Result<(), String> {
    let mut request = link_url(origin_url)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let mut secret =
        axum::http::HeaderValue::from_str(&cluster.config.secret).map_err(|e| e.to_string())?;
    secret.set_sensitive(true);
    request.headers_mut().insert(RELAY_HEADER, secret);
    let connect = tokio_tungstenite::connect_async(request);
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    let salt: [u8; 16] = rand::random();
    let hello = LinkMsg::Hello {
        link,
        room: room.to_string(),
        edge: cluster.id().to_string(),
        relay,
        salt: hex(&salt),
        wire: WIRE_VERSION,
    };
    if !send_up(&mut sink, &hello).await {
        return Err("hello not sent".into());
    }
    let welcome = tokio::time::timeout(HELLO_TIMEOUT, stream.next())
        .await
        .map_err(|_| "no welcome in time".to_string())?;
    match welcome {
        Some(Ok(Up::Text(t))) => match parse(t.as_str()) {
            Some(LinkMsg::Welcome { link: l }) if l == link => {}
            Some(LinkMsg::Close { reason }) => return Err(reason),
            _ => return Err("not a welcome".into()),
        },
        _ => return Err("link closed before its welcome".into()),
    }
    let (out, mut rx) = mpsc::channel(QUEUE);
    room_tx
        .send_timeout(
            RoomMsg::Link(LinkEvent::Linked { link, salt, out }),
            HELLO_TIMEOUT,
        )
        .await
        .map_err(|_| "edge room closed".to_string())?;
    tracing::info!(room, link, "relay link to the origin up");
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            frame = stream.next() => {
                let msg = match frame {
                    Some(Ok(Up::Text(t))) => parse(t.as_str()),
                    Some(Ok(Up::Ping(_) | Up::Pong(_))) => continue,
                    _ => None,
                };
                match msg {
                    Some(msg @ (LinkMsg::Tracks { .. } | LinkMsg::StageUplink { .. } | LinkMsg::StageNeeds { .. } | LinkMsg::StageKeyframe { .. } | LinkMsg::StageResend { .. })) => {
                        if room_tx.send_timeout(RoomMsg::Link(LinkEvent::Message { link, msg }), WRITE_TIMEOUT).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            out = rx.recv() => {
                let Some(msg) = out else { break };
                if !send_up(&mut sink, &msg).await {
                    break;
                }
            }
            _ = room_tx.closed() => break,
            _ = shutdown.changed() => break,
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Up::Close(None))).await;
    Ok(())
}

async fn send_up<S>(sink: &mut S, msg: &LinkMsg) -> bool
where
    S: futures_util::Sink<Up> + Unpin,
{
    let Ok(text) = serde_json::to_string(msg) else {
        return false;
    };
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(Up::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let hello = LinkMsg::Hello {
            link: 7,
            room: "r".into(),
            edge: "n2".into(),
            relay: "127.0.0.1:9".parse().expect("addr"),
            salt: hex(&[0xab; 16]),
            wire: WIRE_VERSION,
        };
        let text = serde_json::to_string(&hello).expect("json");
        assert_eq!(parse(&text), Some(hello));
        assert_eq!(wire_mismatch(WIRE_VERSION), None);
        // An edge from before the capture field names no layout: refused with a reason.
        let old =
            r#"{"type":"hello","link":7,"room":"r","edge":"n2","relay":"127.0.0.1:9","salt":"ab"}"#;
        let Some(LinkMsg::Hello { wire, .. }) = parse(old) else {
            panic!("an old hello still parses");
        };
        assert_eq!(wire, 0);
        let reason = wire_mismatch(wire).expect("refused");
        assert!(reason.contains("layout 0") && reason.contains("one confab version"));
        assert_eq!(unhex16(&hex(&[7; 16])), Some([7; 16]));
        assert_eq!(unhex16("zz"), None);
        assert_eq!(unhex16(&"é".repeat(16)), None);
        assert_eq!(parse(r#"{"type":"welcome","link":1,"extra":2}"#), None);
        let many = LinkMsg::Needs {
            needs: (0..MAX_TRACKS as u64 + 1)
                .map(|t| (crate::model::TrackId(t), LayerSet(1)))
                .collect(),
        };
        assert_eq!(parse(&serde_json::to_string(&many).expect("json")), None);
        let resend = |n: usize| LinkMsg::StageResend {
            track: crate::model::TrackId(1 << 29),
            layer: 0,
            seqs: (0..n as u64).collect(),
        };
        let ok = serde_json::to_string(&resend(MAX_RESEND)).expect("json");
        assert_eq!(parse(&ok), Some(resend(MAX_RESEND)));
        let long = serde_json::to_string(&resend(MAX_RESEND + 1)).expect("json");
        assert_eq!(parse(&long), None, "a longer request is refused");
        assert_eq!(
            link_url("ws://10.0.0.1:8080/ws"),
            "ws://10.0.0.1:8080/cluster/link"
        );
    }
}
