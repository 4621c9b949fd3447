//! The bot's event loop: WebSocket, UDP, str0m and the synthetic media clock in one task.

use super::media::{audio_payload, stamp_micros, video_frame};
use super::{Bot, BotCmd, BotConfig, BotError, BotStats, TrackStats};
use crate::media::codec::VideoCodec;
use crate::protocol::{ClientMsg, Kind, ServerMsg, Source, TrackId, TrackInfo};
use futures_util::{SinkExt, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_err(e: impl std::fmt::Display) -> BotError {
    BotError::Ws(e.to_string())
}

async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), BotError> {
    let text = serde_json::to_string(msg).map_err(ws_err)?;
    ws.send(Message::Text(text.into())).await.map_err(ws_err)
}

async fn recv(ws: &mut Ws) -> Result<Option<ServerMsg>, BotError> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(ws_err(e)),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .map(Some)
                    .map_err(|e| BotError::Server(format!("unparseable message: {e}")))
            }
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
            token: config.token.clone(),
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
    let local = socket.local_addr()?;
    let now = Instant::now();
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(now);
    let candidate = Candidate::host(local, "udp").map_err(|e| BotError::Rtc(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(BotStats::default()));
    let mut state = State {
        config: config.clone(),
        rtc,
        socket,
        local,
        pending: None,
        dirty: false,
        audio_mid: None,
        video_mid: None,
        subs: HashMap::new(),
        wanted: vec![],
        to_stop: vec![],
        stats: Arc::clone(&stats),
        seq_audio: 1,
        seq_video: 1,
        picture_id: 0,
        frames: 0,
        force_key: true,
        last_key: now,
        connected: false,
    };
    if config.subscribe {
        state
            .wanted
            .extend(tracks.into_iter().filter(|t| t.participant != you.id));
    }
    let id = you.id;
    let role = you.role;
    let task = tokio::spawn(async move {
        let r = state.run(ws, cmd_rx, ev_tx).await;
        if let Err(e) = &r {
            tracing::debug!(bot = %id, error = %e, "bot stopped");
        }
        r
    });
    Ok(Bot {
        id,
        role,
        cmds: cmd_tx,
        events: ev_rx,
        stats,
        task,
    })
}

struct State {
    config: BotConfig,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    dirty: bool,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    subs: HashMap<Mid, (TrackId, bool)>,
    wanted: Vec<TrackInfo>,
    to_stop: Vec<Mid>,
    stats: Arc<Mutex<BotStats>>,
    seq_audio: u64,
    seq_video: u64,
    picture_id: u16,
    frames: u64,
    force_key: bool,
    last_key: Instant,
    connected: bool,
}

impl State {
    async fn run(
        &mut self,
        mut ws: Ws,
        mut cmds: mpsc::UnboundedReceiver<BotCmd>,
        events: mpsc::UnboundedSender<ServerMsg>,
    ) -> Result<(), BotError> {
        self.negotiate(&mut ws).await?;
        let mut buf = vec![0u8; 2048];
        let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
        let frame = Duration::from_secs(1) / self.config.shape.fps.max(1);
        let mut video_tick = tokio::time::interval(frame);
        loop {
            let timeout = self.drain()?;
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r?;
                    if let Ok(rx) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        // Garbage from the network is the network's problem, not the bot's.
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), rx));
                    }
                }
                msg = recv(&mut ws) => {
                    let Some(msg) = msg? else { return Ok(()) };
                    self.on_signal(&mut ws, &msg).await?;
                    let _ = events.send(msg);
                }
                cmd = cmds.recv() => match cmd {
                    None | Some(BotCmd::Leave) => {
                        let _ = send(&mut ws, &ClientMsg::Leave {}).await;
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                    Some(BotCmd::Freeze) => {
                        // Hold the sockets open but answer nothing, like a frozen laptop.
                        while cmds.recv().await.is_some() {}
                        return Ok(());
                    }
                    Some(BotCmd::SendRaw(text)) => {
                        ws.send(Message::Text(text.into())).await.map_err(ws_err)?;
                    }
                },
                _ = audio_tick.tick(), if self.connected && self.audio_mid.is_some() => self.send_audio()?,
                _ = video_tick.tick(), if self.connected && self.video_mid.is_some() => self.send_video()?,
                _ = tokio::time::sleep_until(timeout.into()) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).map_err(|e| BotError::Rtc(e.to_string()))?;
                }
            }
        }
    }

    /// Drains str0m until it wants time; sends what it transmits.
    fn drain(&mut self) -> Result<Instant, BotError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => return Err(BotError::Rtc(e.to_string())),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        let Ok(mut stats) = self.stats.lock() else {
            return;
        };
        match e {
            Event::IceConnectionStateChange(IceConnectionState::Connected)
            | Event::IceConnectionStateChange(IceConnectionState::Completed)
            | Event::Connected => {
                self.connected = true;
                stats.connected = true;
            }
            Event::KeyframeRequest(_) => {
                self.force_key = true;
                stats.keyframe_requests += 1;
            }
            Event::RtpPacket(p) => {
                let Some(mid) = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid())
                else {
                    return;
                };
                let Some((track, video)) = self.subs.get(&mid).copied() else {
                    return;
                };
                let t: &mut TrackStats = stats.tracks.entry(track).or_default();
                let seq = *p.seq_no;
                t.video = video;
                t.packets += 1;
                t.bytes += p.payload.len() as u64;
                t.seq_range = Some(match t.seq_range {
                    None => (seq, seq),
                    Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
                });
                if video && VideoCodec::Vp8.is_keyframe_start(&p.payload) {
                    t.keyframes += 1;
                }
                if let Some(d) = stamp_micros(&p.payload, video, Instant::now()) {
                    if t.delays_us.len() < 100_000 {
                        t.delays_us.push(d);
                    }
                }
            }
            _ => {}
        }
    }

    async fn on_signal(&mut self, ws: &mut Ws, msg: &ServerMsg) -> Result<(), BotError> {
        match msg {
            ServerMsg::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| BotError::Rtc(e.to_string()))?;
                if let Some(pending) = self.pending.take() {
                    self.rtc
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .map_err(|e| BotError::Rtc(e.to_string()))?;
                }
                self.drain()?;
                if std::mem::take(&mut self.dirty) {
                    self.negotiate(ws).await?;
                }
            }
            ServerMsg::Error { .. } => {
                // A refused offer is abandoned; the bot keeps receiving what it has.
                self.pending = None;
            }
            ServerMsg::TrackPublished { track } if self.config.subscribe => {
                self.wanted.push(track.clone());
                self.negotiate(ws).await?;
            }
            ServerMsg::TrackUnpublished { id } => {
                let gone: Vec<Mid> = self
                    .subs
                    .iter()
                    .filter(|(_, (t, _))| t == id)
                    .map(|(m, _)| *m)
                    .collect();
                self.wanted.retain(|t| t.id != *id);
                if !gone.is_empty() {
                    for m in gone {
                        self.subs.remove(&m);
                        self.to_stop.push(m);
                    }
                    self.negotiate(ws).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn negotiate(&mut self, ws: &mut Ws) -> Result<(), BotError> {
        if self.pending.is_some() {
            self.dirty = true;
            return Ok(());
        }
        let mut change = self.rtc.sdp_api();
        let mut publish = BTreeMap::new();
        if self.config.publish && self.audio_mid.is_none() {
            let a = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let v = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            self.audio_mid = Some(a);
            self.video_mid = Some(v);
        }
        for t in self.wanted.drain(..) {
            let kind = match t.kind {
                Kind::Audio => MediaKind::Audio,
                Kind::Video => MediaKind::Video,
            };
            let mid = change.add_media(kind, Direction::RecvOnly, None, None, None);
            self.subs.insert(mid, (t.id, t.kind == Kind::Video));
        }
        for m in self.to_stop.drain(..) {
            change.stop_media(m);
        }
        let Some((offer, pending)) = change.apply() else {
            return Ok(());
        };
        if let Some(a) = self.audio_mid {
            publish.insert(a.to_string(), Source::Microphone);
        }
        if let Some(v) = self.video_mid {
            publish.insert(v.to_string(), Source::Camera);
        }
        let subscribe = self
            .subs
            .iter()
            .map(|(m, (t, _))| (m.to_string(), *t))
            .collect();
        self.pending = Some(pending);
        send(
            ws,
            &ClientMsg::Offer {
                sdp: offer.to_sdp_string(),
                publish,
                subscribe,
            },
        )
        .await
    }

    fn pt(&self, codec: Codec) -> Option<str0m::media::Pt> {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    }

    fn send_audio(&mut self) -> Result<(), BotError> {
        let (Some(mid), Some(pt)) = (self.audio_mid, self.pt(Codec::Opus)) else {
            return Ok(());
        };
        let now = Instant::now();
        let ts = (self.seq_audio * 960) as u32;
        let payload = audio_payload(&self.config.shape, now);
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return Ok(());
        };
        tx.write_rtp(RtpWrite::new(pt, self.seq_audio.into(), ts, now, payload).marker(true));
        self.seq_audio += 1;
        self.count_sent(1);
        self.drain().map(|_| ())
    }

    fn send_video(&mut self) -> Result<(), BotError> {
        let (Some(mid), Some(pt)) = (self.video_mid, self.pt(Codec::Vp8)) else {
            return Ok(());
        };
        let now = Instant::now();
        let key = self.force_key
            || now.saturating_duration_since(self.last_key) >= self.config.shape.keyframe_interval;
        if key {
            self.force_key = false;
            self.last_key = now;
        }
        self.picture_id = self.picture_id.wrapping_add(1);
        self.frames += 1;
        let ts = (self.frames * 90_000 / u64::from(self.config.shape.fps.max(1))) as u32;
        let packets = video_frame(&self.config.shape, key, self.picture_id, now);
        let count = packets.len();
        for (i, payload) in packets.into_iter().enumerate() {
            let mut api = self.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                return Ok(());
            };
            tx.write_rtp(
                RtpWrite::new(pt, self.seq_video.into(), ts, now, payload)
                    .marker(i + 1 == count)
                    .nackable(true),
            );
            self.seq_video += 1;
            self.drain()?;
        }
        self.count_sent(count as u64);
        Ok(())
    }

    fn count_sent(&self, n: u64) {
        if let Ok(mut s) = self.stats.lock() {
            s.sent_packets += n;
        }
    }
}
