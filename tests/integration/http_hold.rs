//! Connections that never finish their first request's headers, in HTTP/1 or HTTP/2, are
//! closed within the header timeout (issue 11), beside a 3-bot meeting whose delivery is
//! asserted, and `/healthz` answers while they are open.

use crate::common::TestServer;
use crate::limits::{http_get, meeting, receives};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    for b in &bots {
        assert!(receives(b, Duration::from_secs(10)).await);
    }
    let body = http_get(server.http, "/healthz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}
