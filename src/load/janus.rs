//! A load driver for Janus's videoroom plugin: the same str0m bots and media shape as against
//! confab, speaking the Janus API over its WebSocket transport, so the two can be compared.
//!
//! Each bot opens its own WebSocket (subprotocol `janus-protocol`), creates a session and
//! attaches one videoroom handle. A publisher creates the room (an "already exists" refusal is
//! fine: every publisher of the room tries), joins as publisher and sends its offer with
//! `publish`; a viewer lists the room's publishers, joins as subscriber to all their streams
//! and answers Janus's offer with `start`. The room number is a hash of the scenario's room
//! name. Janus has no `/metrics`: the load engine counts its forwarded packets from what the
//! viewers receive. Every request waits at most [`REPLY_TIMEOUT`]; the session is kept alive
//! every [`KEEPALIVE`] and destroyed on leave.

use super::janus_shell::{self, Ws};
use crate::bot::core::{ClientBehaviour, ClientCore, ClientOutput};
use crate::bot::{Bot, BotConfig, BotError};
use crate::protocol::{ClientMsg, ParticipantId, Role, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for Janus's reply to one request.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of session keep-alives (Janus's default session timeout is 60 s).
pub const KEEPALIVE: Duration = Duration::from_secs(25);
/// Publishers a room created by the driver admits.
pub const MAX_PUBLISHERS: usize = 16;
/// How long a viewer waits for the room's publishers to appear.
const FEEDS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest signalling frame accepted from Janus (an SDP offer for 16 publishers is ~20 KiB).
const MAX_FRAME: usize = 256 * 1024;
/// Janus videoroom: "room already exists".
const ROOM_EXISTS: u64 = 427;

fn ws_err(e: impl std::fmt::Display) -> BotError {
    BotError::Ws(e.to_string())
}

/// Janus's room number for a scenario's room name (FNV-1a, kept below 2^52 so it survives
/// JSON numbers as doubles).
pub fn room_number(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % (1 << 52) + 1
}

/// Frames from Janus are bounded like the messages themselves.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

/// One bot's Janus API connection: a session and its transaction counter.
pub(super) struct Janus {
    pub(super) ws: Ws,
    pub(super) ids: Transactions,
}

/// A session's id and its transaction counter: what every request carries.
#[derive(Default)]
pub(super) struct Transactions {
    session: u64,
    next: u64,
}

impl Transactions {
    /// `msg` as a frame with a fresh transaction (and the session, once there is one), and
    /// that transaction.
    pub(super) fn frame(&mut self, mut msg: Value) -> (String, Message) {
        self.next += 1;
        let tx = format!("t{}", self.next);
        msg["transaction"] = json!(tx);
        if self.session != 0 {
            msg["session_id"] = json!(self.session);
        }
        (tx, Message::Text(msg.to_string().into()))
    }
}

impl Janus {
    async fn connect(url: &str) -> Result<Janus, BotError> {
        let mut req = url.into_client_request().map_err(ws_err)?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let (ws, _) = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), false),
        )
        .await
        .map_err(|_| BotError::Ws("connecting to Janus timed out".into()))?
        .map_err(ws_err)?;
        Ok(Janus {
            ws,
            ids: Transactions::default(),
        })
    }

    /// Sends `msg` with a fresh transaction (and the session, once there is one) and returns
    /// that transaction.
    pub(super) async fn send(&mut self, msg: Value) -> Result<String, BotError> {
        let (tx, frame) = self.ids.frame(msg);
        self.ws.send(frame).await.map_err(ws_err)?;
        Ok(tx)
    }

    /// Sends `msg` and waits for its reply (past Janus's `ack` for plugin messages).
    async fn request(&mut self, msg: Value) -> Result<Value, BotError> {
        let tx = self.send(msg).await?;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, recv(&mut self.ws))
                .await
                .map_err(|_| BotError::Server(format!("no reply from Janus to {tx}")))??;
            let Some(reply) = next else {
                return Err(BotError::Ws("Janus closed the connection".into()));
            };
            if reply["transaction"].as_str() != Some(tx.as_str()) || reply["janus"] == "ack" {
                continue;
            }
            if reply["janus"] == "error" {
                return Err(BotError::Server(format!("Janus: {}", reply["error"])));
            }
            return Ok(reply);
        }
    }

    /// A videoroom request on `handle`, with an optional JSEP; returns the plugin's data and
    /// the reply's JSEP. A plugin error is an error unless its code is in `tolerated`.
    async fn videoroom(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
        tolerated: &[u64],
    ) -> Result<(Value, Option<Value>), BotError> {
        let mut msg = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let mut reply = self.request(msg).await?;
        let data = reply["plugindata"]["data"].take();
        if let Some(code) = data["error_code"].as_u64() {
            if !tolerated.contains(&code) {
                return Err(BotError::Server(format!(
                    "videoroom {code}: {}",
                    data["error"].as_str().unwrap_or("")
                )));
            }
        }
        let jsep = reply.get_mut("jsep").map(Value::take);
        Ok((data, jsep))
    }
}

/// The next JSON frame from Janus; `None` when it closed.
pub(super) async fn recv(ws: &mut Ws) -> Result<Option<Value>, BotError> {
    loop {
        match ws.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(e)) => return Err(ws_err(e)),
            Some(Ok(Message::Text(t))) => return parse(t.as_str()).map(Some),
            Some(Ok(_)) => continue,
        }
    }
}

/// One JSON frame from Janus.
pub(super) fn parse(text: &str) -> Result<Value, BotError> {
    serde_json::from_str(text)
        .map_err(|e| BotError::Server(format!("unparseable Janus message: {e}")))
}

fn id_of(v: &Value, what: &str) -> Result<u64, BotError> {
    v["data"]["id"]
        .as_u64()
        .ok_or_else(|| BotError::Server(format!("Janus gave no {what} id: {v}")))
}

fn sdp_of(jsep: Option<Value>, what: &str) -> Result<String, BotError> {
    jsep.and_then(|j| j["sdp"].as_str().map(str::to_string))
        .ok_or_else(|| BotError::Server(format!("Janus sent no SDP with {what}")))
}

/// Joins `config.room` on the Janus at `config.url` (`ws://host:port`): as publisher when
/// `config.publish`, else as a viewer of every publisher there. The bot's UDP socket binds to
/// `media_ip` (see [`super::LoadConfig::media_ip`]). Returns once the media negotiation is
/// done; ICE and DTLS then proceed in the bot's task.
pub async fn join(config: BotConfig, media_ip: IpAddr) -> Result<Bot, BotError> {
    let mut j = Janus::connect(&config.url).await?;
    j.ids.session = id_of(&j.request(json!({"janus": "create"})).await?, "session")?;
    let attach = json!({"janus": "attach", "plugin": "janus.plugin.videoroom"});
    let handle = id_of(&j.request(attach).await?, "handle")?;
    let room = room_number(&config.room);
    let socket = UdpSocket::bind((media_ip, 0)).await?;
    // A keyframe arrives as a burst; the default buffer overflows when many bots share a CPU.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
    crate::bot::shell::stamp_arrivals(&socket, config.decrypt)?;
    let local = socket.local_addr()?;
    let behaviour = ClientBehaviour {
        publish: config.publish,
        subscribe: !config.publish,
        shape: config.shape,
        ignore_role: false,
        audio_slots: 0,
    };
    let rtc_err = |e: str0m::RtcError| BotError::Rtc(e.to_string());
    let now = Instant::now();
    let (mut core, role) = if config.publish {
        let create = json!({
            "request": "create", "room": room, "publishers": MAX_PUBLISHERS,
            "audiocodec": "opus", "videocodec": "vp8", "notify_joining": false,
        });
        j.videoroom(handle, create, None, &[ROOM_EXISTS]).await?;
        let body = json!({"request": "join", "ptype": "publisher", "room": room,
                          "display": config.name});
        let (joined, _) = j.videoroom(handle, body, None, &[]).await?;
        let id = joined["id"].as_u64().unwrap_or(handle);
        let role = Role::Presenter;
        let mut core = ClientCore::new(behaviour, local, ParticipantId(id), role, vec![], now)
            .map_err(rtc_err)?;
        // str0m's ICE agent keeps no timers until its first timeout: start its clock now, as
        // the confab bot's shell does before any answer arrives.
        core.handle_timeout(Instant::now()).map_err(rtc_err)?;
        let offer = take_offer(&mut core, &socket)?;
        let jsep = json!({"type": "offer", "sdp": offer});
        let (_, answer) = j
            .videoroom(handle, json!({"request": "publish"}), Some(jsep), &[])
            .await?;
        let sdp = sdp_of(answer, "the publish reply")?;
        core.handle_signal(&ServerMsg::Answer { sdp })
            .map_err(rtc_err)?;
        (core, role)
    } else {
        let feeds = publishers(&mut j, handle, room).await?;
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let body = json!({"request": "join", "ptype": "subscriber", "room": room,
                          "streams": streams});
        let (_, offer) = j.videoroom(handle, body, None, &[]).await?;
        let offer = sdp_of(offer, "the subscriber join")?;
        let role = Role::Audience;
        let mut core = ClientCore::new(behaviour, local, ParticipantId(handle), role, vec![], now)
            .map_err(rtc_err)?;
        core.handle_timeout(Instant::now()).map_err(rtc_err)?;
        let answer = core.accept_offer(&offer).map_err(rtc_err)?;
        let jsep = json!({"type": "answer", "sdp": answer});
        j.videoroom(handle, json!({"request": "start"}), Some(jsep), &[])
            .await?;
        (core, role)
    };
    // The SDP carried our one host candidate; there are no more.
    let trickle = json!({"janus": "trickle", "handle_id": handle,
                         "candidate": {"completed": true}});
    j.send(trickle).await?;
    core.set_decrypt(config.decrypt);
    Ok(janus_shell::start(
        core,
        j,
        socket,
        ParticipantId(handle),
        role,
    ))
}

/// The ids of the room's publishers, waiting up to [`FEEDS_TIMEOUT`] for the first.
async fn publishers(j: &mut Janus, handle: u64, room: u64) -> Result<Vec<u64>, BotError> {
    let deadline = Instant::now() + FEEDS_TIMEOUT;
    loop {
        let body = json!({"request": "listparticipants", "room": room});
        let (list, _) = j.videoroom(handle, body, None, &[]).await?;
        let feeds: Vec<u64> = list["participants"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["publisher"].as_bool() == Some(true))
            .filter_map(|p| p["id"].as_u64())
            .take(MAX_PUBLISHERS)
            .collect();
        if !feeds.is_empty() {
            return Ok(feeds);
        }
        if Instant::now() >= deadline {
            return Err(BotError::Server(format!("room {room} has no publisher")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The core's first offer (a publisher offers as soon as it exists).
fn take_offer(core: &mut ClientCore, socket: &UdpSocket) -> Result<String, BotError> {
    loop {
        match core.poll_output() {
            ClientOutput::Signal(ClientMsg::Offer { sdp, .. }) => return Ok(sdp),
            ClientOutput::Signal(_) => {}
            ClientOutput::Transmit(t) => {
                let _ = socket.try_send_to(&t.contents, t.destination);
            }
            ClientOutput::Timeout(_) => {
                return Err(BotError::Rtc("the bot made no offer".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_numbers_are_stable_distinct_and_json_safe() {
        let a = room_number("load1r0b2-0");
        assert_eq!(a, room_number("load1r0b2-0"));
        assert_ne!(a, room_number("load1r0b2-1"));
        for name in ["", "x", "a very long room name indeed"] {
            let n = room_number(name);
            assert!((1..=1 << 52).contains(&n), "{n}");
        }
    }
}
