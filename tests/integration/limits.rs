//! Hostile traffic against the shell's limits (issues 9 and 11), each beside a 3-bot meeting
//! whose delivery is asserted: a datagram flood into a room's media inbox, held and silent
//! ICE-TCP connections, slowloris, and a server at a 1,024 open-file limit.

use crate::common::{bot, raw_join, send, wait_type, TestServer, Ws};
use confab::bot::Bot;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Three bots in `room`, each receiving the others.
pub(crate) async fn meeting(server_ws: String, room: &str) -> Vec<Bot> {
    let mut bots = vec![];
    for name in ["A", "B", "C"] {
        let config = confab::bot::BotConfig::new(server_ws.clone(), room, name);
        bots.push(Bot::join(config).await.expect("bot joins"));
    }
    assert_all_receive(&bots, Duration::from_secs(15)).await;
    bots
}

/// Whether `bot` receives 50 more packets within `within`.
pub(crate) async fn receives(bot: &Bot, within: Duration) -> bool {
    let packets = |s: &confab::bot::BotStats| s.tracks.values().map(|t| t.packets).sum::<u64>();
    let before = packets(&bot.stats());
    bot.wait_until(within, |s| packets(s) > before + 50).await
}

/// Asserts that every bot receives 50 more packets within `within` (its stats if not).
pub(crate) async fn assert_all_receive(bots: &[Bot], within: Duration) {
    for b in bots {
        assert!(receives(b, within).await, "{:?}", b.stats());
    }
}

/// Offers one receive-only audio slot from an `Rtc` that is then dropped, so the server
/// expects media that never comes; returns the server's answer.
pub(crate) async fn offer_audio_slot(ws: &mut Ws) -> serde_json::Value {
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = change.apply().expect("an offer");
    let msg = serde_json::json!({
        "type": "offer",
        "sdp": offer.to_sdp_string(),
        "audio_slots": [mid.to_string()],
    });
    send(ws, &msg.to_string()).await;
    wait_type(ws, "answer").await
}

/// A raw participant that offered one receive-only audio m-line: its socket and the
/// server-side ICE ufrag the answer names (what its STUN must carry).
async fn participant_ufrag(server: &TestServer, room: &str, name: &str) -> (Ws, String) {
    let (mut ws, joined) = raw_join(server, room, name, serde_json::json!({})).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let answer = offer_audio_slot(&mut ws).await;
    let sdp = answer["sdp"].as_str().expect("answer sdp");
    let ufrag = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("ufrag in the answer")
        .trim()
        .to_string();
    (ws, ufrag)
}

/// A STUN binding request naming `ufrag` (no integrity: enough to be routed, not answered).
fn binding_request(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:attacker");
    let mut attrs = vec![0, 6];
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut m = vec![0, 1];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&rand_id());
    m.extend_from_slice(&attrs);
    m
}

fn rand_id() -> [u8; 12] {
    let mut id = [0u8; 12];
    let n = Instant::now().elapsed().as_nanos() as u64 ^ 0x5eed;
    id[..8].copy_from_slice(&n.to_be_bytes());
    id
}

fn framed(p: &[u8]) -> Vec<u8> {
    [&(p.len() as u16).to_be_bytes()[..], p].concat()
}

/// A TCP connection to `to` from loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    match tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("connect {from} → {to}: {e}"),
        Err(_) => panic!("connect {from} → {to}: timed out"),
    }
}

async fn try_connect_from(from: &str, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(format!("{from}:0").parse().ok()?).ok()?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// Whether the server closes `conn` within `within` (reads to the end).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut sink = vec![];
    matches!(
        tokio::time::timeout(within, conn.read_to_end(&mut sink)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

async fn wait_metric(server: &TestServer, name: &str, pred: impl Fn(f64) -> bool) -> f64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v = server.metric(name);
        if pred(v) || Instant::now() > until {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A flood of datagrams from a participant's address fills its room's media inbox or is read
/// and refused by the room as fast as it comes; joins go on their own signalling channel and
/// are never refused as "overloaded".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_flood_into_a_room_never_refuses_a_join() {
    let server = TestServer::start().await;
    let (_ws, ufrag) = participant_ufrag(&server, "flood", "Flooder").await;
    let stun = binding_request(&ufrag);
    let flooders: Vec<UdpSocket> = futures_util::future::join_all(
        (0..4).map(|_| async { UdpSocket::bind("127.0.0.1:0").await.expect("bind") }),
    )
    .await;
    for s in &flooders {
        s.send_to(&stun, server.udp).await.expect("stun");
    }
    let udp = server.udp;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = vec![];
    for s in flooders {
        let stop = std::sync::Arc::clone(&stop);
        let stun = stun.clone();
        // Bounded: 40,000 batches of 64 (`sendmmsg`, as fast as the server's own egress) or
        // 30 s per socket, whichever comes first. One datagram per call no longer outruns a
        // room that takes its inbox in bursts.
        tasks.push(tokio::spawn(async move {
            use std::os::fd::AsFd;
            let source = s.local_addr().expect("local address");
            let batch: Vec<str0m::net::Transmit> = (0..64)
                .map(|_| str0m::net::Transmit {
                    proto: str0m::net::Protocol::Udp,
                    source,
                    destination: udp,
                    contents: stun.clone().into(),
                })
                .collect();
            let until = Instant::now() + Duration::from_secs(30);
            for _ in 0..40_000u32 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() > until {
                    break;
                }
                confab::server::transport::egress::send_batch_fd(s.as_fd(), &batch);
                tokio::task::yield_now().await;
            }
        }));
    }
    // Flooded: either the inbox overflowed (dropped) or the room read the datagram and refused
    // it (a binding request without integrity). Since the room takes its inbox in bursts it
    // keeps up with this flood on an idle machine (5.5 M datagrams in 10 s, none dropped), so
    // which of the two happens depends on the machine; joins must be admitted either way.
    let flooded = |server: &TestServer| {
        server.metric("confab_udp_dropped_datagrams") + server.metric("confab_room_bad_datagrams")
    };
    let until = Instant::now() + Duration::from_secs(10);
    while flooded(&server) < 10_000.0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        flooded(&server) >= 10_000.0,
        "the flood never reached the room: {} datagrams",
        flooded(&server)
    );
    let mut bots = vec![];
    let before = flooded(&server);
    for name in ["A", "B", "C"] {
        let joined = Bot::join(bot(&server, "flood", name)).await;
        bots.push(joined.expect("a join during the flood is admitted"));
    }
    // The flood went on around the joins (joins take milliseconds; a loaded machine may run
    // the flooders in bursts).
    let until = Instant::now() + Duration::from_secs(10);
    while flooded(&server) <= before && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during_joins = flooded(&server) - before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    assert!(
        during_joins > 0.0,
        "the flood had stopped while they joined"
    );
    assert_all_receive(&bots, Duration::from_secs(15)).await;
}

/// ICE-TCP cannot be held: silent connections close at the first-frame deadline, a
/// participant's connections beyond its cap are refused, its quiet ones close on idle and the
/// rest when it leaves; one address gets only its share. A new participant's ICE-TCP is
/// linked afterwards, and the meeting beside it keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_and_silent_ice_tcp_connections_are_closed() {
    let mut attempts = 0;
    let server = loop {
        let server = TestServer::with(|c| {
            c.limits.ice_tcp_max_connections = 40;
            c.limits.ice_tcp_max_per_address = 10;
            c.limits.ice_tcp_max_per_participant = 4;
            c.limits.ice_tcp_first_frame = Duration::from_secs(2);
            c.limits.ice_tcp_idle = Duration::from_secs(2);
        })
        .await;
        // ICE-TCP is skipped when the media port's number is taken over TCP (by another
        // test's connection, say): take another port then.
        attempts += 1;
        if server.shared.config.room.ice_tcp || attempts == 5 {
            break server;
        }
    };
    assert!(
        server.shared.config.room.ice_tcp,
        "no free port for ICE-TCP"
    );
    let bots = meeting(server.ws_url(), "tcp").await;
    let (attacker_ws, ufrag) = participant_ufrag(&server, "tcp", "Mallory").await;
    let first = framed(&binding_request(&ufrag));
    // Six connections naming the attacker's own ufrag: four are linked, two refused.
    let mut held = vec![];
    for _ in 0..6 {
        let mut c = connect_from("127.0.0.1", server.udp).await;
        c.write_all(&first).await.expect("first frame");
        held.push(c);
    }
    let linked = wait_metric(&server, "confab_ice_tcp_connections", |v| v >= 4.0).await;
    assert_eq!(linked, 4.0);
    let refused = wait_metric(
        &server,
        "confab_ice_tcp_refused_participant_connections_total",
        |v| v >= 2.0,
    )
    .await;
    assert_eq!(refused, 2.0);
    let mut open = vec![];
    for mut c in held {
        if !closed_within(&mut c, Duration::from_millis(200)).await {
            open.push(c);
        }
    }
    assert_eq!(
        open.len(),
        4,
        "the refused ones are closed, the linked ones open"
    );
    // Two keep ICE consent alive; the other two go quiet and are closed as idle.
    let mut quiet = open.split_off(2);
    let keepalive = {
        let mut kept = open;
        let first = first.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                for c in &mut kept {
                    if c.write_all(&first).await.is_err() {
                        return kept;
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            kept
        })
    };
    for c in &mut quiet {
        assert!(closed_within(c, Duration::from_secs(5)).await, "idle stays");
    }
    assert_eq!(
        server.metric("confab_ice_tcp_closed_idle_connections_total"),
        2.0
    );
    // Silent connections from one address: its share (10, two of them the attacker's live
    // ones) is taken, the rest refused, all closed at the first-frame deadline.
    let mut silent = vec![];
    for _ in 0..14 {
        silent.push(connect_from("127.0.0.1", server.udp).await);
    }
    let over = wait_metric(
        &server,
        "confab_ice_tcp_refused_address_connections_total",
        |v| v >= 6.0,
    )
    .await;
    assert!(over >= 6.0, "per-address cap not applied: {over}");
    // Meanwhile a participant from another address still gets in.
    let (_ws, newcomer) = participant_ufrag(&server, "tcp", "Newcomer").await;
    let mut fresh = connect_from("127.0.0.2", server.udp).await;
    fresh
        .write_all(&framed(&binding_request(&newcomer)))
        .await
        .expect("write");
    let linked = wait_metric(&server, "confab_ice_tcp_connections", |v| v >= 3.0).await;
    assert_eq!(linked, 3.0, "the newcomer's connection is linked");
    for c in &mut silent {
        assert!(
            closed_within(c, Duration::from_secs(5)).await,
            "silent stays"
        );
    }
    // The attacker leaves: its live connections close with it.
    drop(attacker_ws);
    let left = wait_metric(
        &server,
        "confab_ice_tcp_closed_left_connections_total",
        |v| v >= 2.0,
    )
    .await;
    assert_eq!(left, 2.0);
    let mut kept = keepalive.await.expect("keepalive task");
    for c in &mut kept {
        assert!(
            closed_within(c, Duration::from_secs(5)).await,
            "leaver's stays"
        );
    }
    assert_all_receive(&bots, Duration::from_secs(10)).await;
    drop(fresh);
}

/// A client that trickles its request headers is closed within the header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_closed_within_the_header_timeout() {
    let server = TestServer::with(|c| c.limits.http_header_timeout = Duration::from_secs(2)).await;
    let bots = meeting(server.ws_url(), "loris").await;
    let mut lorises = vec![];
    for _ in 0..20 {
        let mut c = TcpStream::connect(server.http).await.expect("connect");
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        lorises.push(c);
    }
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        let mut open = lorises.len();
        // At most 40 rounds (10 s): each connection sends one more header line per round.
        for i in 0..40 {
            open = 0;
            for c in &mut lorises {
                if c.write_all(format!("X-{i}: y\r\n").as_bytes())
                    .await
                    .is_ok()
                {
                    let mut b = [0u8; 64];
                    let closed = matches!(
                        tokio::time::timeout(Duration::from_millis(10), c.read(&mut b)).await,
                        Ok(Ok(0)) | Ok(Err(_))
                    );
                    open += usize::from(!closed);
                }
            }
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        open
    });
    let still_open = trickle.await.expect("trickle");
    assert_eq!(still_open, 0, "slowloris connections survived");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        start.elapsed()
    );
    assert_all_receive(&bots, Duration::from_secs(10)).await;
    // The web still answers.
    let body = http_get(server.http, "/healthz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}

pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut c) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.expect("write");
    let mut body = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut body)).await;
    body
}

/// The binary at a 1,024 open-file limit it cannot raise: 1,100 idle connections fill its
/// (lowered) connection cap, and `/healthz` and `/metrics` still answer from the reserve
/// while the meeting beside them goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_at_a_1024_open_file_limit() {
    use std::os::unix::process::CommandExt;
    // This process holds the 1,100 client sockets: its own limit must allow them.
    raise_own_open_files(4096);
    let http_port = free_port();
    let udp_port = free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_confab"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{http_port}"),
        "--udp-port",
        &udp_port.to_string(),
        "--http-header-timeout",
        "30",
        // One address fills the whole (lowered) cap.
        "--max-connections-per-address",
        "5000",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn confab");
    let _guard = Kill(child);
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    let until = Instant::now() + Duration::from_secs(10);
    while !http_get(http, "/healthz").await.starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < until, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bots = meeting(format!("ws://{http}/ws"), "nofile").await;
    let mut idle = vec![];
    for _ in 0..1100 {
        match try_connect_from("127.0.0.2", http).await {
            Some(c) => idle.push(c),
            None => break,
        }
    }
    assert!(idle.len() >= 1000, "only {} connections opened", idle.len());
    // From another address, health and metrics come from the reserve.
    for path in ["/healthz", "/metrics"] {
        let body = http_get(http, path).await;
        assert!(body.starts_with("HTTP/1.1 200"), "{path}: {body}");
    }
    let ws = tokio_tungstenite::connect_async(format!("ws://{http}/ws")).await;
    assert!(ws.is_err(), "a WebSocket over the caps is refused");
    let metrics = http_get(http, "/metrics").await;
    let refused = metric_in(&metrics, "confab_http_refused_connections_total");
    assert!(refused > 0.0, "nothing refused:\n{metrics}");
    assert_all_receive(&bots, Duration::from_secs(10)).await;
    drop(idle);
}

pub(crate) fn metric_in(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub(crate) struct Kill(pub(crate) std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free for both UDP and TCP, never handed out twice in this
/// process. The kernel picks the UDP port; its TCP twin can be taken by another
/// test's connection meanwhile, so a taken twin means trying another port.
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..200 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = s.local_addr().expect("addr");
        if std::net::TcpListener::bind(addr).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr.port();
        }
    }
    panic!("no loopback port free for both UDP and TCP after 200 tries")
}

pub(crate) fn raise_own_open_files(at_least: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < at_least {
            lim.rlim_cur = at_least.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
