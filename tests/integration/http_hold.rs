//! Holding the web port (issue 11), each beside a 3-bot meeting whose delivery is asserted:
//! connections that never finish their first request's headers, in HTTP/1 or HTTP/2, are
//! closed within the header timeout; a few addresses cannot fill the health reserve.

use crate::common::TestServer;
use crate::limits::{assert_all_receive, http_get, meeting};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The HTTP/2 client preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Per kind of hold.
const N: usize = 20;

/// When `conn` is closed by the server (read to the end), or `None` if still open at `until`.
async fn closed_at(mut conn: TcpStream, until: Instant) -> Option<Instant> {
    let mut sink = vec![];
    let read = tokio::time::timeout_at(until.into(), conn.read_to_end(&mut sink)).await;
    read.is_ok().then(Instant::now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_partial_http2_connections_are_closed_within_the_header_timeout() {
    let timeout = Duration::from_secs(2);
    let server = TestServer::with(|c| c.limits.http_header_timeout = timeout).await;
    let bots = meeting(server.ws_url(), "h2hold").await;
    let start = Instant::now();
    let mut held = vec![];
    for i in 0..3 * N {
        let mut c = TcpStream::connect(server.http).await.expect("connect");
        match i % 3 {
            // Nothing at all: hyper waits to tell HTTP/1 from HTTP/2.
            0 => {}
            // Part of the preface: still undecided.
            1 => c.write_all(&PREFACE[..16]).await.expect("write"),
            // The whole preface, then no SETTINGS and no HEADERS: HTTP/2, no request.
            _ => c.write_all(PREFACE).await.expect("write"),
        }
        held.push(c);
    }
    // Meanwhile the web answers.
    let body = http_get(server.http, "/healthz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let until = start + timeout * 3;
    let waits: Vec<_> = held
        .into_iter()
        .map(|c| tokio::spawn(closed_at(c, until)))
        .collect();
    let mut latest = Duration::ZERO;
    for (i, w) in waits.into_iter().enumerate() {
        let at = w.await.expect("join");
        let at = at.unwrap_or_else(|| panic!("connection {i} (kind {}) still open", i % 3));
        latest = latest.max(at - start);
    }
    // Not before the timeout (they are not refused on sight), and within it plus a margin.
    assert!(latest >= timeout, "closed after {latest:?}");
    assert!(
        latest < timeout + Duration::from_secs(2),
        "closed after {latest:?}"
    );
    println!(
        "{} held connections closed, the last after {latest:?}",
        3 * N
    );
    // The meeting's WebSockets outlived the timeout: only unfinished first requests close.
    assert_all_receive(&bots, Duration::from_secs(10)).await;
    let body = http_get(server.http, "/healthz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}

/// A TCP connection to the server from loopback address `from`.
async fn connect_from(from: &str, server: &TestServer) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    tokio::time::timeout(Duration::from_secs(5), socket.connect(server.http))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Whether the server closed `conn` at once (refused), rather than holding it open.
async fn refused(conn: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_millis(300), conn.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Over the caps, each address gets one reserve slot: four addresses with four connections
/// each, once enough to fill the whole reserve, now hold four of its slots, and a monitor on
/// the host itself (127.0.0.1) still has its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_addresses_cannot_fill_the_health_reserve() {
    let server = TestServer::with(|c| {
        c.limits.max_connections = 8;
        c.limits.max_connections_per_address = 8;
        c.limits.http_header_timeout = Duration::from_secs(30);
    })
    .await;
    // The meeting's three WebSockets hold three of the eight slots.
    let bots = meeting(server.ws_url(), "reserve").await;
    let mut held = vec![];
    while held.len() < 5 {
        held.push(connect_from("127.0.0.2", &server).await);
    }
    // Let the gate count them: the caps are full now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Five addresses with two or four connections each, and eight with one: 34 connections
    // from 13 addresses for the twelve remote reserve slots. Each address is served at most
    // once (which of its connections wins is the accept tasks' order), so the reserve fills
    // with twelve addresses and the rest is refused. All are opened before any is judged,
    // well within a reserve slot's 5 s lifetime.
    let mut judged = vec![];
    for a in 2..15 {
        let tries = match a {
            2 => 2,
            3..=6 => 4,
            _ => 1,
        };
        for _ in 0..tries {
            let from = format!("127.0.0.{a}");
            let mut c = connect_from(&from, &server).await;
            judged.push(tokio::spawn(
                async move { (from, refused(&mut c).await, c) },
            ));
        }
    }
    let mut served = std::collections::HashMap::<String, usize>::new();
    for j in judged {
        let (from, r, c) = j.await.expect("join");
        *served.entry(from).or_default() += usize::from(!r);
        held.push(c);
    }
    assert!(served.values().all(|&n| n <= 1), "{served:?}");
    assert_eq!(served.values().sum::<usize>(), 12, "{served:?}");
    assert!(refused(&mut connect_from("127.0.0.15", &server).await).await);
    assert_eq!(server.metric("confab_http_reserve_connections_total"), 12.0);
    // The local monitor still answers, from its own slots; other paths are refused there.
    let body = http_get(server.http, "/healthz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let body = http_get(server.http, "/").await;
    assert!(body.starts_with("HTTP/1.1 503"), "{body}");
    assert!(server.metric("confab_http_refused_connections_total") >= 1.0);
    assert_all_receive(&bots, Duration::from_secs(10)).await;
    drop(held);
}
