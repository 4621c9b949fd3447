//! Waiting and never connecting (issue 11), each beside a 3-bot meeting whose delivery is
//! asserted: a lobby flood (capped; hosts get coalesced changes, a bounded number of bytes),
//! and joined sessions that never connect their media (reaped once an offer was answered;
//! a session with nothing to negotiate yet stays).

use crate::common::{raw_join, send, wait_type, TestServer, Ws};
use crate::limits::{assert_all_receive, meeting, offer_audio_slot, raise_own_open_files};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Reads `ws` for `within` (or until it closes); returns the text frames' bytes and the
/// messages of type `kind`.
async fn read_for(ws: &mut Ws, within: Duration, kind: &str) -> (usize, Vec<serde_json::Value>) {
    let until = tokio::time::Instant::now() + within;
    let (mut bytes, mut found) = (0, vec![]);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, ws.next()).await {
        if let Message::Text(t) = frame {
            bytes += t.len();
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] == kind {
                found.push(v);
            }
        }
    }
    (bytes, found)
}

/// 330 people knock at a locked room with a meeting under way: 300 wait, the rest are
/// refused as the lobby is full, and then all leave. The host learns of each arrival and
/// departure in coalesced `lobby_changed` messages: a bounded number of them and of bytes
/// (14,450 bytes in 4 messages in one run, where the whole list per change came to ~2 MB
/// for the arrivals alone), and the meeting delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_flood_is_capped_and_hosts_get_bounded_traffic() {
    const KNOCKING: usize = 330;
    raise_own_open_files(4096);
    let server = TestServer::with(|c| c.limits.max_connections_per_address = 1000).await;
    let (mut host, joined) = raw_join(
        &server,
        "flood",
        "Host",
        serde_json::json!({"role": "host"}),
    )
    .await;
    assert_eq!(joined["you"]["role"], "host", "{joined}");
    let bots = meeting(server.ws_url(), "flood").await;
    send(&mut host, r#"{"type":"lock_room","locked":true}"#).await;
    wait_type(&mut host, "room_locked").await;

    let started = Instant::now();
    let knock = (0..KNOCKING).map(|i| {
        let server = &server;
        async move { raw_join(server, "flood", &format!("w{i}"), serde_json::json!({})).await }
    });
    let mut waiting = vec![];
    let mut full = 0;
    // The host reads while they knock (a host that stops reading is cut off as too slow).
    let (knocked, (bytes_in, arrivals)) = tokio::join!(
        futures_util::future::join_all(knock),
        read_for(&mut host, Duration::from_secs(20), "lobby_changed")
    );
    for (ws, first) in knocked {
        match first["type"].as_str() {
            Some("waiting") => waiting.push(ws),
            Some("error") if first["code"] == "room_full" => full += 1,
            _ => panic!("unexpected reply to a knock: {first}"),
        }
    }
    let flood = started.elapsed();
    assert_eq!(waiting.len(), 300, "the lobby holds 300");
    assert_eq!(full, KNOCKING - 300);
    let told: usize = arrivals
        .iter()
        .map(|m| m["waiting"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(told, 300, "the host heard of every arrival once");
    drop(waiting);
    let (bytes_out, departures) =
        read_for(&mut host, Duration::from_secs(5), "lobby_changed").await;
    let left: usize = departures
        .iter()
        .map(|m| m["left"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(left, 300, "the host heard of every departure once");
    let messages = arrivals.len() + departures.len();
    let bytes = bytes_in + bytes_out;
    eprintln!(
        "lobby flood: {KNOCKING} knocks in {flood:?}; host got {messages} lobby changes, {bytes} bytes"
    );
    // Each change names a waiting person once (~50 bytes) or a departure (~4 bytes); the
    // meeting's own traffic to the host is small beside that.
    assert!(bytes < 64 * 1024, "{bytes} bytes to the host");
    // At most one change per 250 ms, over the 25 s the host read, and a few at the edges.
    assert!(messages <= 25 * 4 + 4, "{messages} lobby messages");
    assert_all_receive(&bots, Duration::from_secs(10)).await;
}

/// A raw participant that offers one receive-only audio m-line and never does ICE: its
/// offer is answered, so the server expects media; it is reaped after the connect timeout
/// with a clear error. Beside it, one that joined and offered nothing (alone with no camera,
/// or an audience member before anyone presents) stays, and the meeting delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_sessions_that_never_connect_media_are_reaped() {
    let server = TestServer::with(|c| c.room.connect_timeout = Duration::from_secs(3)).await;
    let bots = meeting(server.ws_url(), "connect").await;
    let (mut silent, joined) = raw_join(&server, "connect", "Quiet", serde_json::json!({})).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let (mut stuck, joined) = raw_join(&server, "connect", "Stuck", serde_json::json!({})).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    offer_audio_slot(&mut stuck).await;
    let answered = Instant::now();
    let e = wait_type(&mut stuck, "error").await;
    assert_eq!(e["code"], "timed_out", "{e}");
    let after = answered.elapsed();
    assert!(
        after >= Duration::from_millis(2500) && after < Duration::from_secs(6),
        "reaped {after:?} after the answer (timeout 3 s)"
    );
    // The quiet one is still in: it hears the room (the stuck one's departure) and may talk.
    let left = wait_type(&mut silent, "participant_left").await;
    assert_eq!(left["reason"], "timeout", "{left}");
    send(&mut silent, r#"{"type":"chat","text":"still here"}"#).await;
    let chat = wait_type(&mut silent, "chat").await;
    assert_eq!(chat["entry"]["text"], "still here");
    assert_all_receive(&bots, Duration::from_secs(10)).await;
}
