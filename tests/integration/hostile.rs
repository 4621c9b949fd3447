//! Hostile signalling clients (issue 11, session level), each beside a 3-bot meeting whose
//! delivery is asserted: WebSockets that never read while others flood Q&A votes.

use crate::limits::{assert_all_receive, free_port, http_get, meeting, metric_in, Kill};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The spawned server's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Spawns the binary on free loopback ports and waits for `/healthz`.
async fn spawn_server() -> (Kill, SocketAddr) {
    let http_port = free_port();
    let udp_port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_confab"))
        .args([
            "--listen",
            &format!("127.0.0.1:{http_port}"),
            "--udp-port",
            &udp_port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn confab");
    let guard = Kill(child);
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    let until = Instant::now() + Duration::from_secs(10);
    while !http_get(http, "/healthz").await.starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < until, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (guard, http)
}

/// A WebSocket with a small receive buffer (so that not reading backs up quickly) that has
/// joined `room` and read its `joined`.
async fn join(http: SocketAddr, room: &str, name: &str) -> Ws {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = sock.connect(http).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{http}/ws"), tcp)
        .await
        .expect("ws handshake");
    let join = serde_json::json!({"type": "join", "room": room, "name": name});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .expect("send join");
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a reply to join")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = frame {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            assert_eq!(v["type"], "joined", "{v}");
            return ws;
        }
    }
}

/// Reads everything `ws` receives until it closes or stays quiet for 30 s.
fn drain<S>(mut rx: S) -> tokio::task::JoinHandle<()>
where
    S: futures_util::Stream<Item = tokio_tungstenite::tungstenite::Result<Message>>
        + Unpin
        + Send
        + 'static,
{
    tokio::spawn(async move {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
        }
    })
}

/// Four participants never read while ten others toggle votes on a 100-question board and
/// chat for about 20 s. A vote goes out as the one question (not the board), each recipient's
/// queue is bounded in bytes and shared between recipients: the server's RSS stays within
/// 64 MiB of what it was before the flood, and the meeting beside them keeps delivering.
/// (That a non-reader is cut off once a write stalls is `session`'s unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_readers_under_a_vote_flood_keep_server_memory_bounded() {
    const NON_READERS: usize = 4;
    const VOTERS: usize = 10;
    const VOTES_EACH: usize = 300;
    let (guard, http) = spawn_server().await;
    let pid = guard.0.id();
    let bots = meeting(format!("ws://{http}/ws"), "votes").await;

    // Twenty askers fill the Q&A (talk limit: a burst of 5 each).
    let mut voters = vec![];
    let mut readers = vec![];
    for i in 0..20 {
        let mut ws = join(http, "votes", &format!("asker{i}")).await;
        for q in 0..5 {
            let text = format!("{i}/{q} {}", "why ".repeat(110));
            let ask = serde_json::json!({"type": "ask", "text": text});
            ws.send(Message::Text(ask.to_string().into()))
                .await
                .expect("ask");
        }
        if i < VOTERS {
            voters.push(ws);
        } else {
            readers.push(drain(ws));
        }
    }
    let mut idle = vec![];
    for i in 0..NON_READERS {
        idle.push(join(http, "votes", &format!("deaf{i}")).await);
    }
    // Question ids are assigned in order from 1.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_kib(pid);
    let participants_before = metric_in(&http_get(http, "/metrics").await, "confab_participants");

    let flood_start = Instant::now();
    let mut tasks = vec![];
    for (v, ws) in voters.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut tx, rx) = ws.split();
            // Voters read, so that only the deaf ones fall behind.
            let reader = drain(rx);
            for n in 0..VOTES_EACH {
                let vote = serde_json::json!({
                    "type": "vote",
                    "question": 1 + (v * 7 + n / 2) % 100,
                    "up": n % 2 == 0,
                });
                if tx
                    .send(Message::Text(vote.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                // About once a second (the talk limit), a long chat message too.
                if n % 16 == 0 {
                    let chat = serde_json::json!({"type": "chat", "text": "blah ".repeat(380)});
                    if tx
                        .send(Message::Text(chat.to_string().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                // Under the session's rate limit (20/s), so every vote counts.
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            (tx, reader)
        }));
    }

    let mut peak = baseline;
    while !tasks.iter().all(|t| t.is_finished()) {
        assert!(
            flood_start.elapsed() < Duration::from_secs(60),
            "the flood did not end"
        );
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = http_get(http, "/metrics").await;
    eprintln!(
        "RSS baseline {baseline} KiB, peak {peak} KiB; write timeouts {}, queue overflows {}",
        metric_in(&m, "confab_ws_write_timeouts_total"),
        metric_in(&m, "confab_ws_queue_overflows_total")
    );
    assert!(
        peak < baseline + 64 * 1024,
        "RSS grew from {baseline} KiB to {peak} KiB"
    );
    let mut voters = vec![];
    for t in tasks {
        voters.push(t.await.expect("voter"));
    }
    // Everyone who reads kept up with the flood; the non-readers hold at most their queues.
    let after = metric_in(&http_get(http, "/metrics").await, "confab_participants");
    assert!(after >= participants_before - NON_READERS as f64, "{after}");
    assert_all_receive(&bots, Duration::from_secs(10)).await;
    drop(idle);
    for (_, reader) in voters {
        reader.abort();
    }
    for r in readers {
        r.abort();
    }
}

/// Ten sessions each send three offers of 3,000 receive-only m-lines (~290 KB, under the
/// message limit): every offer is refused with `sdp_rejected` naming the m-line cap, before
/// str0m parses it, and the meeting in the same room keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_offers_are_refused_and_the_meeting_goes_on() {
    use crate::common::{raw_join, send, wait_type, TestServer};
    let server = TestServer::start().await;
    let bots = meeting(server.ws_url(), "offers").await;
    let mut sdp = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    for i in 0..3000 {
        sdp.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=recvonly\r\n"
        ));
    }
    let offer = serde_json::json!({"type": "offer", "sdp": sdp}).to_string();
    assert!(offer.len() < 512 * 1024, "{} bytes", offer.len());
    let started = Instant::now();
    for i in 0..10 {
        let (mut ws, joined) =
            raw_join(&server, "offers", &format!("big{i}"), serde_json::json!({})).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        for _ in 0..3 {
            send(&mut ws, &offer).await;
            let e = wait_type(&mut ws, "error").await;
            assert_eq!(e["code"], "sdp_rejected", "{e}");
            assert!(
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("3000 m-lines")),
                "{e}"
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_all_receive(&bots, Duration::from_secs(10)).await;
}
