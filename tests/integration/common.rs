//! What the integration tests share: a real server on loopback ports and its clients, the
//! load tester's small runs, and the start of a virtual-time room on either send path.

use confab::bot::StreamShape;
use confab::media::config::SendPath;
use confab::media::RoomConfig;
use confab::protocol::{ParticipantId, Role};
use confab::sim::{Link, Sim};
use confab::{Bound, Config};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// A running server; stops when dropped.
pub struct TestServer {
    pub http: SocketAddr,
    pub udp: SocketAddr,
    pub shared: std::sync::Arc<confab::server::Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    /// A server whose peers are all on the old send path (str0m's own), which stays
    /// available behind `--send-path str0m` and covered by one test per major feature.
    pub async fn on_str0m() -> TestServer {
        Self::with(|c| c.room.send_path = confab::media::config::SendPath::Str0m).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            udp_port: 0,
            ..Config::default()
        };
        config.room.ice_grace = Duration::from_secs(2);
        config.room.media_timeout = Duration::from_secs(3);
        tweak(&mut config);
        let bound = Bound::bind(config).await.expect("bind");
        let http = bound.http_addr();
        let udp = bound.udp_addrs()[0];
        let shared = bound.shared();
        let (stop, rx) = oneshot::channel();
        tokio::spawn(bound.serve(async {
            let _ = rx.await;
        }));
        TestServer {
            http,
            udp,
            shared,
            stop: Some(stop),
        }
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = self.shared.metrics.render();
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// A bot config for this server.
pub fn bot(server: &TestServer, room: &str, name: &str) -> confab::bot::BotConfig {
    confab::bot::BotConfig::new(server.ws_url(), room, name)
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(server: &TestServer) -> Ws {
    tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("ws connects")
        .0
}

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// The next JSON message, or None when the socket closes or stays quiet for 5 s.
pub async fn next_json(ws: &mut Ws) -> Option<serde_json::Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .ok()??;
        match frame.ok()? {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

pub async fn expect_error(ws: &mut Ws, code: &str) {
    // Room traffic (joins, chat) may come first; the error is the next error.
    let m = loop {
        let m = next_json(ws).await.expect("a reply");
        if m["type"] == "error" {
            break m;
        }
    };
    assert_eq!(m["code"], code, "{m}");
    assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()));
}

/// A raw client that joined `room` with these extra join fields; returns it and `joined`.
pub async fn raw_join(
    server: &TestServer,
    room: &str,
    name: &str,
    extra: serde_json::Value,
) -> (Ws, serde_json::Value) {
    let mut ws = connect(server).await;
    let mut join = serde_json::json!({"type": "join", "room": room, "name": name});
    if let (Some(j), Some(e)) = (join.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            j.insert(k.clone(), v.clone());
        }
    }
    send(&mut ws, &join.to_string()).await;
    let first = next_json(&mut ws).await.expect("a reply to join");
    (ws, first)
}

/// Skips messages until one of type `kind` arrives (5 s each at most).
pub async fn wait_type(ws: &mut Ws, kind: &str) -> serde_json::Value {
    loop {
        let m = next_json(ws)
            .await
            .unwrap_or_else(|| panic!("no {kind} arrived"));
        if m["type"] == kind {
            return m;
        }
    }
}

/// Opens a TCP connection to `addr`, writes `opening` and half-closes: the server must close
/// its side within 8 s without answering a byte (how junk on an ICE-TCP port ends).
pub async fn assert_closed_unanswered(addr: SocketAddr, opening: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the port listens on TCP");
    conn.write_all(opening).await.expect("write");
    conn.shutdown().await.expect("half-close");
    let mut rest = vec![];
    let read = tokio::time::timeout(Duration::from_secs(8), conn.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "server kept a junk connection open");
    assert!(rest.is_empty(), "server answered junk with {rest:?}");
}

/// A room on the old send path (str0m's own pacer, estimator, reports and retransmissions).
pub fn str0m_room() -> RoomConfig {
    RoomConfig {
        send_path: SendPath::Str0m,
        ..RoomConfig::default()
    }
}

/// A room on the lean send path, named so that these tests keep to it whatever the default.
pub fn lean_room() -> RoomConfig {
    RoomConfig {
        send_path: SendPath::Lean,
        ..RoomConfig::default()
    }
}

/// A virtual-time lean webinar: a publishing host of `shape` and `n` audience viewers (`v0`,
/// `v1`, …), joined and not yet run: (sim, host, viewers).
pub fn lean_webinar(shape: StreamShape, n: usize) -> (Sim, ParticipantId, Vec<ParticipantId>) {
    let mut sim = Sim::new(lean_room());
    let host = sim.join("host", Role::Host, true, shape).expect("join");
    let viewers = (0..n)
        .map(|i| {
            let name = format!("v{i}");
            sim.join(&name, Role::Audience, false, StreamShape::default())
                .expect("join")
        })
        .collect();
    (sim, host, viewers)
}

/// A virtual-time lean room with a publishing host and one audience viewer, both bots of
/// `shape`, joined and not yet run: (sim, host, viewer). The lean tests' common start.
pub fn lean_host_and_viewer(shape: StreamShape) -> (Sim, ParticipantId, ParticipantId) {
    let mut sim = Sim::new(lean_room());
    let host = sim.join("host", Role::Host, true, shape).expect("join");
    let viewer = sim
        .join("viewer", Role::Audience, false, shape)
        .expect("join");
    (sim, host, viewer)
}

/// [`lean_host_and_viewer`] publishing no periodic keyframes, run until the viewer has its
/// first keyframe and then for longer than the room's keyframe-request spacing: another
/// keyframe now comes only when asked for, and the room would pass a request on.
pub fn lean_viewer_with_no_keyframe_due() -> (Sim, ParticipantId, ParticipantId) {
    let shape = StreamShape {
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    };
    let (mut sim, host, viewer) = lean_host_and_viewer(shape);
    past_first_keyframe(&mut sim, viewer);
    (sim, host, viewer)
}

/// Runs until `viewer` has its first keyframe, then past the room's keyframe-request spacing
/// (3 s), so that a request it makes now is passed on.
pub fn past_first_keyframe(sim: &mut Sim, viewer: ParticipantId) {
    assert!(
        sim.run_until(Duration::from_secs(3), |s| video_keyframes(s, viewer) > 0),
        "no first keyframe: {:?}",
        sim.stats(viewer)
    );
    sim.run_for(Duration::from_secs(3));
}

/// One second of clean media for `viewer`, then `lossy` of 5 % loss on its downlink, then
/// the loss lifted: what it lost has been NACKed, and is repaired over the next round trips.
pub fn downlink_loss_spell(sim: &mut Sim, viewer: ParticipantId, lossy: Duration) {
    sim.run_for(Duration::from_secs(1));
    let link = Link {
        loss: 0.05,
        ..Link::default()
    };
    sim.set_links(viewer, Link::default(), link);
    sim.run_for(lossy);
    sim.set_links(viewer, Link::default(), Link::default());
}

/// The keyframes `id` has received on all its video tracks.
pub fn video_keyframes(sim: &Sim, id: ParticipantId) -> u64 {
    sim.stats(id)
        .tracks
        .values()
        .filter(|t| t.video)
        .map(|t| t.keyframes)
        .sum()
}

/// confab-load's webinar with one publisher and `viewers` viewers against `server`: 1 s of
/// warm-up, a 3 s window, joins within 15 s.
pub fn small_webinar(server: &TestServer, viewers: usize) -> confab::load::LoadConfig {
    let mut config = confab::load::LoadConfig::new(
        server.ws_url(),
        confab::load::Scenario::Webinar {
            publishers: 1,
            viewers,
        },
    );
    config.warmup = Duration::from_secs(1);
    config.duration = Duration::from_secs(3);
    config.ramp_timeout = Duration::from_secs(15);
    config
}

/// Runs `config`, bounded at 40 s.
pub async fn run_load(config: &confab::load::LoadConfig) -> confab::load::Report {
    tokio::time::timeout(Duration::from_secs(40), confab::load::run(config))
        .await
        .expect("the run is bounded")
        .expect("valid configuration")
}
