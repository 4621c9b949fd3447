//! The bot's tokio shell: a WebSocket, a UDP socket and a timer around [`ClientCore`].

use super::core::{ClientBehaviour, ClientCore, ClientOutput};
use super::herd::Member;
use super::shell::{stamp_arrivals, take_burst, CoreTimer, Inbound, StatsCopy, WsReader};
use super::{Bot, BotCmd, BotConfig, BotError, BotStats};
use crate::protocol::ParticipantId;
use crate::protocol::{ClientMsg, ServerMsg};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
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
pub(super) type WsTx = SplitSink<Ws, Message>;

pub(super) async fn send_split(ws: &mut WsTx, msg: &ClientMsg) -> Result<(), BotError> {
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
    let (ws, incoming) = ws.split();
    let socket = socket.into_std()?;
    let member = |notify| Member {
        core,
        ws,
        inbox: WsReader::spawn(incoming, cmd_rx, parse, notify),
        socket,
        events: ev_tx,
        stats: StatsCopy::new(shared),
    };
    // A bot that only counts what it receives is cheaper run in a herd (see `herd`).
    let task = match config.herd.as_ref().filter(|_| !config.decrypt) {
        Some(herd) => {
            let (done, ended) = oneshot::channel();
            match herd.adopt(|n| (member(Some(n)), done)) {
                Ok(()) => tokio::spawn(async move {
                    ended
                        .await
                        .unwrap_or_else(|_| Err(BotError::Rtc("its herd stopped".into())))
                }),
                Err(back) => own_task(id, back.0),
            }
        }
        None => own_task(id, member(None)),
    };
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

/// Runs a bot in a task of its own.
fn own_task(id: ParticipantId, m: Member) -> JoinHandle<Result<(), BotError>> {
    tokio::spawn(async move {
        let r = drive(m).await;
        if let Err(e) = &r {
            tracing::debug!(bot = %id, error = %e, "bot stopped");
        }
        r
    })
}

async fn drive(m: Member) -> Result<(), BotError> {
    let Member {
        mut core,
        mut ws,
        socket,
        mut inbox,
        events,
        mut stats,
    } = m;
    let mut socket = UdpSocket::from_std(socket)?;
    let mut timer = CoreTimer::new();
    loop {
        timer.set(flush(&mut core, &mut ws, &socket).await?);
        stats.refresh(&core);
        tokio::select! {
            r = socket.readable() => {
                r?;
                take_burst(&mut core, &socket);
            }
            inbound = inbox.recv() => match inbound {
                None => return Ok(()),
                Some(Inbound::Msg(msg)) => {
                    let msg = msg?;
                    core.handle_signal(&msg).map_err(rtc_err)?;
                    let _ = events.send(msg);
                }
                Some(Inbound::Cmd(BotCmd::Leave)) => {
                    let _ = send_split(&mut ws, &ClientMsg::Leave {}).await;
                    let _ = ws.close().await;
                    return Ok(());
                }
                Some(Inbound::Cmd(BotCmd::Freeze)) => {
                    // Hold the sockets open but answer nothing, like a frozen laptop (the
                    // reader stopped reading the WebSocket): wait for the handle to go.
                    while inbox.recv().await.is_some() {}
                    return Ok(());
                }
                Some(Inbound::Cmd(BotCmd::SendRaw(text))) => {
                    ws.send(Message::Text(text.into())).await.map_err(ws_err)?;
                }
                Some(Inbound::Cmd(BotCmd::RestartIce)) => core.restart_ice(),
                Some(Inbound::Cmd(BotCmd::Move)) => {
                    // The old socket closes: what is still sent to it is lost, as on a
                    // network that went away.
                    let fresh = std::net::UdpSocket::bind((socket.local_addr()?.ip(), 0))?;
                    fresh.set_nonblocking(true)?;
                    core.move_to(fresh.local_addr()?).map_err(rtc_err)?;
                    socket = UdpSocket::from_std(fresh)?;
                }
            },
            _ = timer.wait() => {
                core.handle_timeout(Instant::now()).map_err(rtc_err)?;
            }
        }
    }
}
