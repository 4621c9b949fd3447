//! Recording faults with the real server binary: `kill -9` mid-recording leaves a file that
//! decodes up to then; a full disk (a small tmpfs in a user+mount namespace, so no root is
//! needed) stops the recording with a message to the host while the meeting goes on.

use crate::common::{next_json, send, Ws};
use crate::record_media::{decode_errors, scratch, video_frames, vp8_clip};
use confab::api_client::call;
use confab::bot::real::RealMedia;
use confab::bot::{Bot, BotConfig};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "recording-faults-api-key-0123456789";

/// The server binary on free loopback ports, optionally behind a wrapper command.
struct Server {
    child: Child,
    http: String,
}

impl Server {
    async fn start(wrapper: Option<&str>, dir: &Path) -> Server {
        let tcp = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let udp = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = env!("CARGO_BIN_EXE_confab");
        let args = format!(
            "{bin} --listen 127.0.0.1:{tcp} --udp-port {udp} --ice-tcp false --api-key {KEY} --recordings-dir {}",
            dir.display()
        );
        let script = match wrapper {
            Some(w) => format!("{w} && exec {args}"),
            None => format!("exec {args}"),
        };
        let mut cmd = match wrapper {
            Some(_) => {
                let mut c = Command::new("unshare");
                c.args(["-rm", "sh", "-c", &script]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", &script]);
                c
            }
        };
        // `Server`'s Drop kills and waits for the child; clippy cannot see through the move.
        #[allow(clippy::zombie_processes)]
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        // Owned at once: dropping it (also on a failed start) kills and reaps the process.
        let server = Server {
            child,
            http: format!("http://127.0.0.1:{tcp}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if call(&server.http, "GET", "/healthz", None, None)
                .await
                .is_ok_and(|a| a.status == 200)
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not come up");
    }

    fn ws(&self) -> String {
        format!("{}/ws", self.http.replace("http://", "ws://"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn publisher(server: &Server, room: &str, dir: &Path) -> Bot {
    let clip: Vec<Vec<u8>> = vp8_clip(dir, 640, 360, 2)
        .into_iter()
        .map(|f| f.data)
        .collect();
    let mut c = BotConfig::new(server.ws(), room, "Pub");
    c.real = Some(Arc::new(RealMedia::new(clip, 440.0).unwrap()));
    let b = Bot::join(c).await.expect("bot joins");
    assert!(b.wait_until(Duration::from_secs(10), |s| s.connected).await);
    b
}

async fn host(server: &Server, room: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws())
        .await
        .expect("ws");
    send(
        &mut ws,
        &format!(r#"{{"type":"join","room":"{room}","name":"Host"}}"#),
    )
    .await;
    let j = next_json(&mut ws).await.expect("joined");
    assert_eq!(j["you"]["role"], "host", "{j}");
    ws
}

/// The next `recording` message within `secs`.
async fn recording_msg(ws: &mut Ws, secs: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(m) = next_json(ws).await {
            if m["type"] == "recording" {
                return m;
            }
        }
    }
    panic!("no recording message within {secs} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_recording_leaves_a_file_that_plays_up_to_then() {
    let dir = scratch("killed-server");
    let rec = dir.join("recordings");
    let mut server = Server::start(None, &rec).await;
    let room = "killed";
    let mut h = host(&server, room).await;
    let _bot = publisher(&server, room, &dir).await;
    send(&mut h, r#"{"type":"record","on":true}"#).await;
    assert_eq!(recording_msg(&mut h, 10).await["on"], true);
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    let file = std::fs::read_dir(&rec)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "webm"))
        .expect("a file was left");
    let frames = video_frames(&file);
    // Flushed at least every second: about 3 of the 4 s are on disk.
    let last = frames.last().map_or(0.0, |f| f.0);
    assert!(
        last >= 2.0,
        "plays up to {last:.2} s ({} frames)",
        frames.len()
    );
    assert_eq!(decode_errors(&file), "", "decodes cleanly up to the cut");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_and_tells_the_host() {
    let ok = Command::new("unshare")
        .args(["-rm", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: this machine allows no user+mount namespace (unshare -rm)");
        return;
    }
    let dir = scratch("full-disk");
    let rec = dir.join("small");
    std::fs::create_dir_all(&rec).unwrap();
    // 256 KiB: a few seconds of the 600 kbit/s clip.
    let mount = format!("mount -t tmpfs -o size=256k none {}", rec.display());
    let server = Server::start(Some(mount.as_str()), &rec).await;
    let room = "full";
    let mut h = host(&server, room).await;
    let mut bot = publisher(&server, room, &dir).await;
    send(&mut h, r#"{"type":"record","on":true}"#).await;
    assert_eq!(recording_msg(&mut h, 10).await["on"], true);
    let m = recording_msg(&mut h, 30).await;
    assert_eq!(m["on"], false, "{m}");
    let why = m["error"].as_str().unwrap_or_default();
    assert!(why.contains("disk is full"), "{m}");
    // The meeting goes on: the bot still gets answers, the host can chat.
    send(&mut h, r#"{"type":"chat","text":"still here"}"#).await;
    let seen = bot
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, confab::protocol::ServerMsg::Chat { .. })
        })
        .await;
    assert!(seen.is_some(), "the meeting goes on after the disk filled");
    let st = call(&server.http, "GET", "/api/rooms/full/status", None, None)
        .await
        .unwrap();
    assert_eq!(st.body["recording"], false);
    std::fs::remove_dir_all(&dir).ok();
}
