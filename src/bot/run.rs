//! The bot's tokio shell: a WebSocket, a UDP socket and a timer around [`ClientCore`].

use super::core::{ClientBehaviour, ClientCore, ClientOutput};
use super::shell::{stamp_arrivals, take_burst, CoreTimer, StatsCopy, WsReader};
use super::{Bot, BotCmd, BotConfig, BotError, BotStats};
use crate::protocol::{ClientMsg, ServerMsg};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_err(e: impl std::fmt::Display) -> BotError {
    BotError::Ws(e.to_string())
}

fn rtc_err(e: impl std::fmt::Display) -> BotError {
    BotError::Rtc(e.to_string())
}

async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), BotError> {
    let text = serde_json::to_string(msg).map_err(ws_err)?;
    ws.send(Message::Text(text.into())).await.map_err(ws_err)
}

/// The bot's half of the WebSocket once it runs (the reading half is a [`WsReader`]).
type WsTx = SplitSink<Ws, Message>;

async fn send_split(ws: &mut WsTx, msg: &ClientMsg) -> Result<(), BotError> {
    let text = serde_json::to_string(msg).map_err(ws_err)?;
    ws.send(Message::Text(text.into())).await.map_err(ws_err)
}

fn parse(text: &str) -> Result<ServerMsg, BotError> {
    serde_json::from_str(text).map_err(|e| BotError::Server(format!("unparseable message: {e}")))
}

async fn recv(ws: &mut Ws) -> Result<Option<ServerMsg>, BotError> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(ws_err(e)),
            Some(Ok(Message::Text(t))) => return parse(t.as_str()).map(Some),
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => continue,
        }
    }
}

pub(super) async fn start(config: BotConfig) -> Result<Bot, BotError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(config.url.as_str())
        .await
        .map_err(ws_err)?;
    send(
        &mut ws,
        &ClientMsg::Join {
            room: config.room.clone(),
            name: config.name.clone(),
            role: config.role,
            key: config.key.clone(),
            token: config.token.clone(),
            mode: config.mode,
            password: config.password.clone(),
            version: Some(crate::protocol::PROTOCOL_VERSION),
        },
    )
    .await?;
    let first = tokio::time::timeout(Duration::from_secs(10), recv(&mut ws))
        .await
        .map_err(|_| BotError::Server("no reply to join".into()))??;
    let (you, tracks) = match first {
        Some(ServerMsg::Joined { you, tracks, .. }) => (you, tracks),
        Some(ServerMsg::Error { code, message }) => {
            return Err(BotError::Server(format!("{code:?}: {message}")))
        }
        other => return Err(BotError::Server(format!("unexpected reply: {other:?}"))),
    };
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    // A keyframe arrives as a burst; the default buffer overflows when many bots share a CPU.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
    stamp_arrivals(&socket, config.decrypt)?;
    let local = socket.local_addr()?;
    let behaviour = ClientBehaviour {
        publish: config.publish,
        subscribe: config.subscribe,
        shape: config.shape,
        ignore_role: config.ignore_role,
        audio_slots: config.audio_slots,
    };
    let mut core = ClientCore::new(behaviour, local, you.id, you.role, tracks, Instant::now())
        .map_err(rtc_err)?;
    core.set_decrypt(config.decrypt);
    core.real = config.real.clone();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(BotStats::default()));
    let shared = Arc::clone(&stats);
    let id = you.id;
    let task = tokio::spawn(async move {
        let r = drive(core, ws, socket, cmd_rx, ev_tx, shared).await;
        if let Err(e) = &r {
            tracing::debug!(bot = %id, error = %e, "bot stopped");
        }
        r
    });
    Ok(Bot {
        id,
        role: you.role,
        cmds: cmd_tx,
        events: ev_rx,
        stats,
        task,
    })
}

/// Carries out the core's outputs; returns when it next wants time.
async fn flush(
    core: &mut ClientCore,
    ws: &mut WsTx,
    socket: &UdpSocket,
) -> Result<Instant, BotError> {
    loop {
        match core.poll_output() {
            ClientOutput::Timeout(t) => return Ok(t),
            ClientOutput::Transmit(t) => {
                let _ = socket.try_send_to(&t.contents, t.destination);
            }
            ClientOutput::Signal(m) => send_split(ws, &m).await?,
        }
    }
}

async fn drive(
    mut core: ClientCore,
    ws: Ws,
    socket: UdpSocket,
    mut cmds: mpsc::UnboundedReceiver<BotCmd>,
    events: mpsc::UnboundedSender<ServerMsg>,
    stats: Arc<Mutex<BotStats>>,
) -> Result<(), BotError> {
    let (mut ws, incoming) = ws.split();
    let mut incoming = WsReader::spawn(incoming, parse);
    let mut stats = StatsCopy::new(stats);
    let mut timer = CoreTimer::new();
    loop {
        timer.set(flush(&mut core, &mut ws, &socket).await?);
        stats.refresh(&core);
        tokio::select! {
            r = socket.readable() => {
                r?;
                take_burst(&mut core, &socket);
            }
            msg = incoming.recv() => {
                let Some(msg) = msg? else { return Ok(()) };
                core.handle_signal(&msg).map_err(rtc_err)?;
                let _ = events.send(msg);
            }
            cmd = cmds.recv() => match cmd {
                None | Some(BotCmd::Leave) => {
                    let _ = send_split(&mut ws, &ClientMsg::Leave {}).await;
                    let _ = ws.close().await;
                    return Ok(());
                }
                Some(BotCmd::Freeze) => {
                    // Hold the sockets open but answer nothing, like a frozen laptop.
                    incoming.stop();
                    while cmds.recv().await.is_some() {}
                    return Ok(());
                }
                Some(BotCmd::SendRaw(text)) => {
                    ws.send(Message::Text(text.into())).await.map_err(ws_err)?;
                }
                Some(BotCmd::RestartIce) => core.restart_ice(),
            },
            _ = timer.wait() => {
                core.handle_timeout(Instant::now()).map_err(rtc_err)?;
            }
        }
    }
}
