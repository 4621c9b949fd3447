//! Signalling targets: the `ClientMsg` parser, the join validators, the sans-IO conference
//! under sequences of hostile messages from every role, and real sessions over a WebSocket.

use super::config;
use super::json::{apply, client_message, damage, hostile_string};
use crate::common::{connect, expect_error, next_json, send, TestServer};
use confab::conference::record::{Credentials, Origin, RoomRecord};
use confab::conference::Output;
use confab::conference::{Admission, Conference, JoinRequest};
use confab::media::{RoomConfig, Router};
use confab::protocol::{
    clean_display_name, valid_room_name, ClientMsg, LeaveReason, ParticipantId, Role, RoomMode,
    ServerMsg,
};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Signals one input may cause, at most: a broadcast to everyone in the test room and a few
/// replies (the conference's lists and errors). More means work grows with input, not people.
const MAX_SIGNALS_PER_INPUT: usize = 40;

proptest! {
    #![proptest_config(config(2000))]

    /// Parsing never panics; whatever parses survives a round trip unchanged (nothing is
    /// half-read or silently altered).
    #[test]
    fn client_messages_parse_or_are_refused(
        msg in client_message(&[]),
        hurt in damage(),
    ) {
        let bytes = apply(&msg.to_string(), &hurt);
        if let Ok(parsed) = serde_json::from_slice::<ClientMsg>(&bytes) {
            let again = serde_json::to_string(&parsed).expect("a parsed message serialises");
            let back: ClientMsg = serde_json::from_str(&again).expect("and parses back");
            prop_assert_eq!(back, parsed);
        }
    }

    /// The join validators accept exactly what the protocol documents.
    #[test]
    fn room_and_display_names_follow_the_documented_rules(s in hostile_string()) {
        if valid_room_name(&s) {
            prop_assert!((1..=64).contains(&s.len()));
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        }
        if let Some(name) = clean_display_name(&s) {
            prop_assert_eq!(name.trim(), name.as_str());
            prop_assert!((1..=64).contains(&name.chars().count()));
            prop_assert!(!name.chars().any(char::is_control));
        }
    }
}

/// A conference with a host, a presenter and an audience member in a room.
fn conference(now: Instant) -> (Conference, [ParticipantId; 3]) {
    let room = Router::new(
        "fuzz",
        RoomConfig::default(),
        vec![([127, 0, 0, 1], 10000).into()],
    );
    let mut c = Conference::new(room, RoomRecord::new(RoomMode::Meeting, Origin::AdHoc, now));
    let people = [(1, Role::Host), (2, Role::Presenter), (3, Role::Audience)];
    for (id, role) in people {
        let req = JoinRequest {
            id: ParticipantId(id),
            name: format!("p{id}"),
            credentials: Credentials {
                token_role: Some(role),
                key: None,
                asked: None,
            },
            identity: format!("p{id}"),
            mode: None,
            password: None,
        };
        assert_eq!(c.join(req, now), Admission::Joined);
    }
    drain(&mut c, now);
    (c, [ParticipantId(1), ParticipantId(2), ParticipantId(3)])
}

/// Takes the room's outputs; returns the signals, checking each error says something.
fn drain(c: &mut Conference, now: Instant) -> usize {
    let mut signals = 0;
    for _ in 0..100_000 {
        match c.poll_output(now) {
            Output::Timeout(_) => return signals,
            Output::Signal(_, msg) => {
                if let ServerMsg::Error { message, .. } = &*msg {
                    assert!(!message.is_empty(), "an error without a sentence: {msg:?}");
                }
                signals += 1;
            }
            _ => {}
        }
    }
    panic!("the room never ran out of output");
}

proptest! {
    #![proptest_config(config(150))]

    /// Hostile message sequences from every role, hostile ids among real ones: no panic,
    /// bounded output per input, and afterwards a newcomer can still join.
    #[test]
    fn conference_survives_hostile_sequences(
        steps in prop::collection::vec((0usize..3, client_message(&["join"]), 0u64..3_000), 1..40),
    ) {
        let mut now = Instant::now();
        let (mut c, ids) = conference(now);
        for (who, msg, after_ms) in steps {
            now += Duration::from_millis(after_ms);
            let Ok(msg) = serde_json::from_value::<ClientMsg>(msg) else { continue };
            c.handle(ids[who], msg, now);
            let signals = drain(&mut c, now);
            prop_assert!(signals <= MAX_SIGNALS_PER_INPUT, "{signals} signals for one input");
            c.room.handle_timeout(now);
            drain(&mut c, now);
        }
        for id in ids {
            c.leave(id, LeaveReason::Left);
        }
        drain(&mut c, now);
        let newcomer = JoinRequest {
            id: ParticipantId(9),
            name: "late".into(),
            credentials: Credentials {
            token_role: Some(Role::Host),
            key: None,
            asked: None,
        },
            identity: "late".into(),
            mode: None,
            password: None,
        };
        prop_assert_eq!(c.join(newcomer, now), Admission::Joined);
    }
}

/// Real sessions: hostile sequences over a WebSocket before and after `join`. The server
/// answers what it refuses, keeps each session usable unless it ended it with a reason, and
/// takes new joins afterwards.
#[test]
fn sessions_survive_hostile_sequences() {
    let cases = std::env::var("CONFAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(3, |n| (n / 200).max(3));
    let mut runner = proptest::test_runner::TestRunner::new(config(cases));
    let sequences = prop::collection::vec(
        (
            any::<bool>(),
            prop::collection::vec((client_message(&[]), damage()), 1..30),
        ),
        4,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runner
        .run(&sequences, |sessions| {
            rt.block_on(run_sessions(sessions));
            Ok(())
        })
        .expect("sessions survive");
}

/// One session: whether it joins first, then its messages and the damage done to each.
type Session = (bool, Vec<(serde_json::Value, Vec<super::json::Damage>)>);

async fn run_sessions(sessions: Vec<Session>) {
    let server = TestServer::start().await;
    let mut tasks = vec![];
    for (i, (join_first, msgs)) in sessions.into_iter().enumerate() {
        let url = server.ws_url();
        let room = format!("fz{i}");
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connects");
            if join_first {
                let join = format!(r#"{{"type":"join","room":"{room}","name":"n{i}"}}"#);
                send(&mut ws, &join).await;
            }
            for (msg, hurt) in msgs {
                let bytes = apply(&msg.to_string(), &hurt);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                use futures_util::SinkExt;
                let frame = tokio_tungstenite::tungstenite::Message::Text(text.into());
                if ws.send(frame).await.is_err() {
                    return; // The server ended the session (e.g. `leave`); its right.
                }
            }
            // Still answering, unless it ended the session: an unknown type is refused.
            send(&mut ws, r#"{"type":"dance"}"#).await;
            loop {
                let Some(m) = next_json(&mut ws).await else {
                    return;
                };
                if m["type"] == "error" && m["code"] == "bad_message" {
                    return;
                }
                if m["type"] == "error" {
                    assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()), "{m}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("a session task panicked");
    }
    let mut ws = connect(&server).await;
    send(&mut ws, r#"{"type":"dance"}"#).await;
    expect_error(&mut ws, "bad_message").await;
    send(&mut ws, r#"{"type":"join","room":"after","name":"Ana"}"#).await;
    let m = next_json(&mut ws).await.expect("joined");
    assert_eq!(m["type"], "joined", "{m}");
}
