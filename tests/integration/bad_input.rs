//! Bad input gets a clear error and never hurts the server or the room.

use crate::common::{
    assert_closed_unanswered, bot, connect, expect_error, next_json, send, TestServer,
};
use confab::bot::Bot;
use futures_util::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Whether `bot` gets 50 more media packets within `within`: its room still forwards.
async fn keeps_receiving(bot: &Bot, within: Duration) -> bool {
    let packets = |s: &confab::bot::BotStats| s.tracks.values().map(|t| t.packets).sum::<u64>();
    let before = packets(&bot.stats());
    bot.wait_until(within, |s| packets(s) > before + 50).await
}

#[tokio::test]
async fn malformed_unknown_and_premature_messages_get_errors_and_session_goes_on() {
    let server = TestServer::start().await;
    let mut ws = connect(&server).await;
    send(&mut ws, "this is not json").await;
    expect_error(&mut ws, "bad_message").await;
    send(&mut ws, r#"{"type":"dance"}"#).await;
    expect_error(&mut ws, "bad_message").await;
    send(&mut ws, r#"{"type":"mute","source":"camera","muted":true}"#).await;
    expect_error(&mut ws, "not_joined").await;
    ws.send(Message::Binary(vec![0xff, 0xfe].into()))
        .await
        .expect("send");
    expect_error(&mut ws, "bad_message").await;
    // Still usable: a proper join works.
    send(&mut ws, r#"{"type":"join","room":"ok","name":"Ana"}"#).await;
    let m = next_json(&mut ws).await.expect("joined");
    assert_eq!(m["type"], "joined", "{m}");
    // Join twice is refused, not fatal.
    send(&mut ws, r#"{"type":"join","room":"ok","name":"Ana"}"#).await;
    expect_error(&mut ws, "not_joined").await;
    // A broken offer is refused with sdp_rejected.
    send(&mut ws, r#"{"type":"offer","sdp":"v=0\r\nnonsense"}"#).await;
    expect_error(&mut ws, "sdp_rejected").await;
    assert!(server.metric("confab_signalling_errors_total") >= 4.0);
}

#[tokio::test]
async fn oversized_message_is_refused() {
    let server = TestServer::with(|c| c.max_message_bytes = 4096).await;
    let mut ws = connect(&server).await;
    let big = format!(
        r#"{{"type":"join","room":"a","name":"{}"}}"#,
        "x".repeat(5000)
    );
    send(&mut ws, &big).await;
    expect_error(&mut ws, "too_large").await;
    send(&mut ws, r#"{"type":"join","room":"a","name":"Ana"}"#).await;
    assert_eq!(next_json(&mut ws).await.expect("joined")["type"], "joined");
}

#[tokio::test]
async fn invalid_room_and_name_are_refused_and_closed() {
    let server = TestServer::start().await;
    let mut ws = connect(&server).await;
    send(
        &mut ws,
        r#"{"type":"join","room":"no spaces","name":"Ana"}"#,
    )
    .await;
    expect_error(&mut ws, "invalid_room").await;
    assert!(next_json(&mut ws).await.is_none(), "socket closes");
    let mut ws = connect(&server).await;
    send(&mut ws, r#"{"type":"join","room":"ok","name":"   "}"#).await;
    expect_error(&mut ws, "invalid_name").await;
}

#[tokio::test]
async fn another_protocol_version_is_refused_and_the_current_one_or_none_accepted() {
    let server = TestServer::start().await;
    let current = confab::protocol::PROTOCOL_VERSION;
    let mut ws = connect(&server).await;
    let join = format!(
        r#"{{"type":"join","room":"v","name":"Old","version":{}}}"#,
        current + 1
    );
    send(&mut ws, &join).await;
    expect_error(&mut ws, "unsupported_version").await;
    assert!(next_json(&mut ws).await.is_none(), "socket closes");
    for (name, version) in [
        ("Now", format!(r#","version":{current}"#)),
        ("Web", String::new()),
    ] {
        let mut ws = connect(&server).await;
        send(
            &mut ws,
            &format!(r#"{{"type":"join","room":"v","name":"{name}"{version}}}"#),
        )
        .await;
        let joined = next_json(&mut ws).await.expect("joined");
        assert_eq!(joined["type"], "joined", "{joined}");
        assert_eq!(joined["version"], current, "{joined}");
    }
}

#[tokio::test]
async fn full_room_is_refused() {
    let server = TestServer::with(|c| c.room.max_participants = 2).await;
    let _a = Bot::join(bot(&server, "small", "A")).await.expect("a");
    let _b = Bot::join(bot(&server, "small", "B")).await.expect("b");
    let c = Bot::join(bot(&server, "small", "C")).await;
    let err = c.err().expect("third is refused").to_string();
    assert!(err.contains("RoomFull"), "{err}");
    // Another room is unaffected.
    Bot::join(bot(&server, "other", "C"))
        .await
        .expect("other room");
}

#[tokio::test]
async fn flooding_is_rate_limited() {
    let server = TestServer::start().await;
    let mut ws = connect(&server).await;
    send(&mut ws, r#"{"type":"join","room":"flood","name":"Ana"}"#).await;
    assert_eq!(next_json(&mut ws).await.expect("joined")["type"], "joined");
    for _ in 0..200 {
        send(&mut ws, r#"{"type":"mute","source":"camera","muted":true}"#).await;
    }
    let mut limited = false;
    while let Some(m) = next_json(&mut ws).await {
        if m["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_udp_is_dropped_and_media_still_flows() {
    let server = TestServer::start().await;
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut seed = 0x1234_5678u32;
    for i in 0..500usize {
        let len = 1 + (i * 7) % 1400;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        let _ = junk.send_to(&data, server.udp).await;
        if i % 20 == 0 {
            // Paced so the kernel's receive buffer does not drop what we want counted.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // A STUN-looking packet with an unknown ufrag, and a truncated one.
    let mut stun = vec![0, 1, 0, 12, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[0; 12]);
    stun.extend_from_slice(&[0, 6, 0, 8]);
    stun.extend_from_slice(b"nope:abc");
    let _ = junk.send_to(&stun, server.udp).await;
    let _ = junk.send_to(&stun[..22], server.udp).await;
    let a = Bot::join(bot(&server, "junk", "A")).await.expect("a");
    let b = Bot::join(bot(&server, "junk", "B")).await.expect("b");
    assert!(
        b.wait_until(Duration::from_secs(15), |s| s
            .tracks
            .values()
            .any(|t| t.packets > 20))
            .await
    );
    // Junk aimed at a live participant's address pair is absorbed by its room.
    for _ in 0..100 {
        let _ = junk.send_to(&[0x80, 0x60, 1, 2, 3], server.udp).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while server.metric("confab_udp_unroutable_datagrams_total") < 500.0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.metric("confab_udp_unroutable_datagrams_total") >= 500.0);
    // And the room still works after all of it.
    assert!(keeps_receiving(&b, Duration::from_secs(5)).await);
    drop(a);
}

#[tokio::test]
async fn shutdown_tells_sessions_and_closes_them() {
    let mut server = TestServer::start().await;
    let mut ws = connect(&server).await;
    send(&mut ws, r#"{"type":"join","room":"bye","name":"Ana"}"#).await;
    assert_eq!(next_json(&mut ws).await.expect("joined")["type"], "joined");
    server.shut_down();
    expect_error(&mut ws, "shutting_down").await;
    assert!(next_json(&mut ws).await.is_none(), "socket closed");
}

/// The HTTP port also takes ICE-TCP (for firewalls that let only web ports through): junk
/// that opens like a media frame is closed and counted there, and the web keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_media_on_the_web_port_is_refused_and_the_web_still_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let openings: [&[u8]; 3] = [&[0, 5, 0x80, 0x60, 1, 2, 3], &[0, 0], &[0, 0xff, 1]];
    for opening in openings {
        assert_closed_unanswered(server.http, opening).await;
    }
    assert_eq!(
        server.metric("confab_ice_tcp_refused_connections_total"),
        openings.len() as f64
    );
    let mut conn = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    conn.read_to_string(&mut body).await.expect("read");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}

#[tokio::test]
async fn garbage_on_the_ice_tcp_port_is_refused_and_media_still_flows() {
    let server = TestServer::start().await;
    let a = Bot::join(bot(&server, "tcpjunk", "A")).await.expect("a");
    let b = Bot::join(bot(&server, "tcpjunk", "B")).await.expect("b");
    let mut unknown_ufrag = vec![0, 1, 0, 12, 0x21, 0x12, 0xA4, 0x42];
    unknown_ufrag.extend_from_slice(&[0; 12]);
    unknown_ufrag.extend_from_slice(&[0, 6, 0, 8]);
    unknown_ufrag.extend_from_slice(b"nope:abc");
    let framed = |p: &[u8]| [&(p.len() as u16).to_be_bytes()[..], p].concat();
    let openings: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        framed(&[0x80, 0x60, 1, 2, 3]),
        framed(&unknown_ufrag),
        framed(&[]),
        // A length promising more than ever comes.
        vec![0xff, 0xff, 1, 2, 3],
    ];
    for opening in &openings {
        // The media port number listens on TCP too.
        assert_closed_unanswered(server.udp, opening).await;
    }
    assert_eq!(
        server.metric("confab_ice_tcp_refused_connections_total"),
        openings.len() as f64
    );
    assert_eq!(server.metric("confab_ice_tcp_connections"), 0.0);
    assert!(keeps_receiving(&b, Duration::from_secs(10)).await);
    drop(a);
}
