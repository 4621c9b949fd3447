//! The tokio shell of a bot talking to Janus: its UDP socket, the Janus WebSocket (keep-alives,
//! events read and dropped) and the core's timers, like the confab bot's shell.

use super::janus::{parse, Janus, KEEPALIVE};
use crate::bot::core::{ClientCore, ClientOutput};
use crate::bot::shell::{take_burst, CoreTimer, Inbound, StatsCopy, WsReader};
use crate::bot::{Bot, BotCmd, BotError, BotStats};
use crate::protocol::{ParticipantId, Role};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Janus's WebSocket.
pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs the negotiated `core` in a task and returns the handle the load engine drives.
pub(super) fn start(
    core: ClientCore,
    janus: Janus,
    socket: UdpSocket,
    id: ParticipantId,
    role: Role,
) -> Bot {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    // Janus's events are not confab's: nothing is ever sent on this channel.
    let (_, ev_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(BotStats::default()));
    let shared = Arc::clone(&stats);
    let task = tokio::spawn(async move {
        let r = drive(core, janus, socket, cmd_rx, shared).await;
        if let Err(e) = &r {
            tracing::debug!(bot = %id, error = %e, "janus bot stopped");
        }
        r
    });
    Bot::from_parts(id, role, cmd_tx, ev_rx, stats, task)
}

/// Carries out the core's outputs; returns when it next wants time. The core offers nothing
/// after the first negotiation here, so any later signal is dropped.
fn flush(core: &mut ClientCore, socket: &UdpSocket) -> Instant {
    loop {
        match core.poll_output() {
            ClientOutput::Timeout(t) => return t,
            ClientOutput::Transmit(t) => {
                let _ = socket.try_send_to(&t.contents, t.destination);
            }
            ClientOutput::Signal(_) => {}
        }
    }
}

async fn drive(
    mut core: ClientCore,
    janus: Janus,
    socket: UdpSocket,
    cmds: mpsc::UnboundedReceiver<BotCmd>,
    stats: Arc<Mutex<BotStats>>,
) -> Result<(), BotError> {
    let rtc_err = |e: str0m::RtcError| BotError::Rtc(e.to_string());
    let ws_err = |e: tokio_tungstenite::tungstenite::Error| BotError::Ws(e.to_string());
    let Janus { ws, mut ids } = janus;
    let (mut ws, incoming) = ws.split();
    let mut inbox = WsReader::spawn(incoming, cmds, parse, None);
    let mut stats = StatsCopy::new(stats);
    let mut timer = CoreTimer::new();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        timer.set(flush(&mut core, &socket));
        stats.refresh(&core);
        tokio::select! {
            r = socket.readable() => {
                r?;
                take_burst(&mut core, &socket);
            }
            _ = keepalive.tick() => {
                ws.send(ids.frame(json!({"janus": "keepalive"})).1).await.map_err(ws_err)?;
            }
            inbound = inbox.recv() => match inbound {
                None => return Ok(()),
                // Events (webrtcup, media, slowlink) and keep-alive acks change nothing here.
                Some(Inbound::Msg(msg)) => {
                    msg?;
                }
                Some(Inbound::Cmd(BotCmd::Leave)) => {
                    // Destroying the session detaches its handle and hangs up its PeerConnection.
                    let _ = ws.send(ids.frame(json!({"janus": "destroy"})).1).await;
                    let _ = ws.close().await;
                    return Ok(());
                }
                Some(Inbound::Cmd(BotCmd::Freeze)) => {
                    while inbox.recv().await.is_some() {}
                    return Ok(());
                }
                Some(Inbound::Cmd(BotCmd::SendRaw(text))) => {
                    let frame = tokio_tungstenite::tungstenite::Message::Text(text.into());
                    ws.send(frame).await.map_err(ws_err)?;
                }
                // Not part of the comparison: Janus would need a renegotiation request.
                Some(Inbound::Cmd(BotCmd::RestartIce | BotCmd::Move)) => {}
            },
            _ = timer.wait() => {
                core.handle_timeout(Instant::now()).map_err(rtc_err)?;
            }
        }
    }
}
