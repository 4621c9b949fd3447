//! Headless str0m client speaking the signalling protocol: the integration tests' peer and the
//! load tester's worker.
//!
//! A bot joins over the real WebSocket, negotiates like the browser client (it is always the
//! offerer), connects over real UDP, publishes synthetic VP8 and Opus packet streams if asked,
//! subscribes to every remote track, and counts what it receives per track.

mod copy;
pub mod core;
mod delays;
mod herd;
#[cfg(target_os = "linux")]
mod herd_loop;
mod media;
pub mod real;
mod recv;
mod run;
mod seq;
pub(crate) mod shell;

pub use delays::DelayHistogram;
pub use herd::Herd;
pub use media::{read_stamp, stamp_micros, Stamp, StreamShape};

use crate::protocol::{ParticipantId, Role, ServerMsg, TrackId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How a bot behaves.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// `ws://host:port/ws`.
    pub url: String,
    /// Room to join.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Wanted role.
    pub role: Option<Role>,
    /// Join token.
    pub token: Option<String>,
    /// Host or presenter key from a room's link.
    pub key: Option<String>,
    /// Meeting or webinar, if this join opens the room.
    pub mode: Option<crate::protocol::RoomMode>,
    /// Room password.
    pub password: Option<String>,
    /// Publish a microphone and a camera.
    pub publish: bool,
    /// Subscribe to every remote track.
    pub subscribe: bool,
    /// Shape of the synthetic streams.
    pub shape: StreamShape,
    /// Offer to send even when the role forbids it (a hostile client, for tests).
    pub ignore_role: bool,
    /// Receive audio on this many server-filled slots (0: one m-line per remote microphone).
    pub audio_slots: usize,
    /// Decrypt received media. When off, received SRTP is only counted from its clear RTP
    /// header (per SSRC, in [`BotStats::undecrypted`]): a load tester's cheap viewer, which
    /// measures loss but not latency and costs a fraction of the CPU.
    pub decrypt: bool,
    /// Send these real VP8 frames and Opus packets instead of synthetic ones (no simulcast).
    pub real: Option<std::sync::Arc<real::RealMedia>>,
    /// Run in this herd, one task for many bots, if it does not decrypt (see [`Herd`]).
    pub herd: Option<Herd>,
}

impl BotConfig {
    /// A publishing, subscribing bot with default stream shapes.
    pub fn new(url: impl Into<String>, room: impl Into<String>, name: impl Into<String>) -> Self {
        BotConfig {
            url: url.into(),
            room: room.into(),
            name: name.into(),
            role: None,
            token: None,
            key: None,
            mode: None,
            password: None,
            publish: true,
            subscribe: true,
            shape: StreamShape::default(),
            ignore_role: false,
            audio_slots: 0,
            decrypt: true,
            real: None,
            herd: None,
        }
    }
}

/// What a bot received on one track.
#[derive(Debug, Clone, Default)]
pub struct TrackStats {
    /// Whether it is video.
    pub video: bool,
    /// Packets received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Keyframe starts received.
    pub keyframes: u64,
    /// Lowest and highest sequence numbers seen.
    pub seq_range: Option<(u64, u64)>,
    /// One-way delays from the publisher's stamp, in microseconds (same-process bots only).
    pub delays_us: DelayHistogram,
    /// Packets received per simulcast layer.
    pub layer_packets: [u64; 3],
    /// The layer of the highest sequence number received.
    pub last_layer: Option<u8>,
    /// Layer and keyframe-start of each video packet by sequence number (bounded).
    pub by_seq: std::collections::BTreeMap<u64, (u8, bool)>,
    /// How long after the moment its sender reports name for a packet it arrived (ms, plus a
    /// constant: the bot's clock and its sender's are not one), the least over the last
    /// [`SYNC_WINDOW`]. Between the two tracks of one person, the difference is how much
    /// later a receiver must play one to play them in sync. `None` before two windows.
    pub report_lag_ms: Option<f64>,
    sync_window: Option<(std::time::Instant, f64)>,
}

/// The window `TrackStats::report_lag_ms` is the least over.
pub const SYNC_WINDOW: Duration = Duration::from_millis(500);

impl TrackStats {
    /// Layer changes in sequence order, repairs included, where no packet is missing at the
    /// boundary (so the first packet of the new layer is known): (from, to, began with a
    /// keyframe).
    pub fn switches(&self) -> Vec<(u8, u8, bool)> {
        let mut out = vec![];
        let mut last: Option<(u64, u8)> = None;
        for (seq, (layer, key)) in &self.by_seq {
            if let Some((prev_seq, prev)) = last {
                if prev != *layer && prev_seq + 1 == *seq {
                    out.push((prev, *layer, *key));
                }
            }
            last = Some((*seq, *layer));
        }
        out
    }

    /// A packet of RTP time `time` that arrived at `at`, under the last sender report
    /// `info` of its stream.
    pub fn note_report_time(
        &mut self,
        info: &str0m::rtp::rtcp::SenderInfo,
        time: str0m::media::MediaTime,
        at: std::time::Instant,
    ) {
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let ticks = time.numer() as i64 - info.rtp_time.numer() as i64;
        let named = secs(info.ntp_time) + ticks as f64 / f64::from(time.denom().max(1));
        // Any fixed instant does: only differences between tracks mean anything (and the
        // simulator's instants run ahead of the wall clock).
        static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(|| at);
        let arrived = match at.checked_duration_since(base) {
            Some(d) => d.as_secs_f64(),
            None => -(base - at).as_secs_f64(),
        };
        let lag = (arrived - named) * 1000.0;
        match &mut self.sync_window {
            Some((start, least)) if at.saturating_duration_since(*start) < SYNC_WINDOW => {
                *least = least.min(lag);
            }
            Some((start, least)) => {
                self.report_lag_ms = Some(*least);
                *start = at;
                *least = lag;
            }
            None => self.sync_window = Some((at, lag)),
        }
    }

    /// Packets missing from the seen sequence range.
    pub fn lost(&self) -> u64 {
        match self.seq_range {
            Some((lo, hi)) => (hi - lo + 1).saturating_sub(self.packets),
            None => 0,
        }
    }
}

/// Everything a bot observed.
#[derive(Debug, Clone, Default)]
pub struct BotStats {
    /// Per remote track.
    pub tracks: HashMap<TrackId, TrackStats>,
    /// Per incoming SSRC, media counted without decrypting (see [`BotConfig::decrypt`]);
    /// `bytes` are whole datagrams and there are no delays.
    pub undecrypted: HashMap<u32, TrackStats>,
    /// Packets sent.
    pub sent_packets: u64,
    /// Keyframe requests received from the server.
    pub keyframe_requests: u64,
    /// Whether ICE connected.
    pub connected: bool,
    /// What the server's receiver reports said about each stream it publishes, by
    /// `mid` or `mid/rid` (str0m's egress stats, once a second).
    pub reported: HashMap<String, Reported>,
}

/// The latest receiver-report view of one published stream, as the bot's str0m saw it.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    /// Packets the bot sent on it.
    pub sent: u64,
    /// Highest extended sequence number the server reported receiving.
    pub max_seq: u64,
    /// Cumulative packets the server reported lost.
    pub lost: u64,
    /// Interarrival jitter the server reported (timestamp units).
    pub jitter: u32,
    /// Round trip from the report's LSR/DLSR, when it echoed a sender report.
    pub rtt: Option<Duration>,
    /// Stats events that carried a receiver report.
    pub updates: u64,
}

impl BotStats {
    /// Keeps what str0m's egress stats say the server's receiver reports told.
    pub fn note_egress(&mut self, s: &str0m::stats::MediaEgressStats) {
        let Some(remote) = &s.remote else {
            return;
        };
        let key = match s.rid {
            Some(rid) => format!("{}/{}", s.mid, rid),
            None => s.mid.to_string(),
        };
        let r = self.reported.entry(key).or_default();
        r.sent = s.packets;
        r.max_seq = *remote.maximum_sequence_number;
        r.lost = remote.packets_lost;
        r.jitter = remote.jitter;
        r.rtt = s.rtt;
        r.updates += 1;
    }
}

/// Commands to a running bot.
#[derive(Debug)]
pub enum BotCmd {
    /// Send `leave` and stop.
    Leave,
    /// Stop all I/O without a goodbye (a vanished peer); keeps the sockets open.
    Freeze,
    /// Send this text as a signalling frame.
    SendRaw(String),
    /// Restart ICE with the next offer.
    RestartIce,
    /// Move to a new UDP port and restart ICE (a network change). A bot in a herd shares its
    /// herd's polling and restarts ICE in place.
    Move,
}

/// Why a bot stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    Ws(String),
    /// The server refused or said something unexpected.
    #[error("server: {0}")]
    Server(String),
    /// WebRTC failed.
    #[error("rtc: {0}")]
    Rtc(String),
    /// Local I/O failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A running bot.
pub struct Bot {
    /// Its participant id.
    pub id: ParticipantId,
    /// Its role as the server granted it.
    pub role: Role,
    cmds: mpsc::UnboundedSender<BotCmd>,
    events: mpsc::UnboundedReceiver<ServerMsg>,
    stats: Arc<Mutex<BotStats>>,
    task: JoinHandle<Result<(), BotError>>,
}

impl Bot {
    /// A bot whose shell lives outside this module (the Janus driver in
    /// [`crate::load::janus`]): its command and event channels, shared stats and task.
    pub(crate) fn from_parts(
        id: ParticipantId,
        role: Role,
        cmds: mpsc::UnboundedSender<BotCmd>,
        events: mpsc::UnboundedReceiver<ServerMsg>,
        stats: Arc<Mutex<BotStats>>,
        task: JoinHandle<Result<(), BotError>>,
    ) -> Bot {
        Bot {
            id,
            role,
            cmds,
            events,
            stats,
            task,
        }
    }

    /// Connects, joins and starts; returns once the server said `joined`.
    pub async fn join(config: BotConfig) -> Result<Bot, BotError> {
        run::start(config).await
    }

    /// A copy of what it observed so far.
    pub fn stats(&self) -> BotStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Polls the stats until `pred` holds or `timeout` passes.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&BotStats) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.stats()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The next signalling message, if one comes within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<ServerMsg> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for a signalling message matching `pred`, skipping others.
    pub async fn wait_event(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&ServerMsg) -> bool,
    ) -> Option<ServerMsg> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.next_event(left).await?;
            if pred(&msg) {
                return Some(msg);
            }
        }
    }

    /// Sends a command.
    pub fn command(&self, cmd: BotCmd) {
        let _ = self.cmds.send(cmd);
    }

    /// Leaves and waits for the bot to stop.
    pub async fn leave(self) -> Result<(), BotError> {
        self.command(BotCmd::Leave);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(BotError::Rtc(format!("bot task failed: {e}"))),
            Err(_) => Err(BotError::Ws("leave timed out".into())),
        }
    }

    /// Whether the bot's task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}
