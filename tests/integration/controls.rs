//! Meeting controls over a real WebSocket: tokens, removal, lock and lobby, password, chat,
//! Q&A, ending the meeting.

use crate::common::{expect_error, next_json, raw_join, send, wait_type, TestServer};
use confab::auth::{unix_now, Auth, Claims};
use confab::protocol::Role;
use serde_json::json;

const SECRET: &str = "test-secret";

fn token(room: &str, name: &str, role: Role, exp: u64) -> String {
    Auth::new(Some(SECRET))
        .issue(&Claims {
            room: room.into(),
            name: name.into(),
            role,
            exp,
            sub: None,
            mode: None,
        })
        .expect("signs")
}

async fn secured() -> TestServer {
    TestServer::with(|c| c.auth_secret = Some(SECRET.into())).await
}

#[tokio::test]
async fn tokens_decide_name_and_role_and_bad_ones_are_refused() {
    let server = secured().await;
    let (_ws, m) = raw_join(&server, "r", "ignored", json!({"role": "audience"})).await;
    assert_eq!(m["code"], "unauthorized", "{m}");
    let good = token("r", "Ana", Role::Host, unix_now() + 60);
    let (_ana, m) = raw_join(
        &server,
        "r",
        "ignored",
        json!({"token": good, "role": "audience"}),
    )
    .await;
    assert_eq!(m["type"], "joined", "{m}");
    assert_eq!(m["you"]["name"], "Ana");
    assert_eq!(m["you"]["role"], "host");
    let other_room = token("other", "Ana", Role::Host, unix_now() + 60);
    let (_ws, m) = raw_join(&server, "r", "x", json!({"token": other_room})).await;
    assert_eq!(m["code"], "unauthorized");
    assert!(m["message"]
        .as_str()
        .is_some_and(|s| s.contains("another room")));
    let expired = token("r", "Ana", Role::Host, unix_now() - 600);
    let (_ws, m) = raw_join(&server, "r", "x", json!({"token": expired})).await;
    assert_eq!(m["code"], "unauthorized");
    assert!(m["message"].as_str().is_some_and(|s| s.contains("expired")));
    let (_ws, m) = raw_join(&server, "r", "x", json!({"token": "not.a.jwt"})).await;
    assert_eq!(m["code"], "unauthorized");
}

#[tokio::test]
async fn removed_participant_cannot_come_back_with_the_same_token() {
    let server = secured().await;
    let host_t = token("rm", "Host", Role::Host, unix_now() + 60);
    let eve_t = token("rm", "Eve", Role::Presenter, unix_now() + 60);
    let (mut host, _) = raw_join(&server, "rm", "h", json!({"token": host_t})).await;
    let (mut eve, m) = raw_join(&server, "rm", "e", json!({"token": eve_t})).await;
    let eve_id = m["you"]["id"].clone();
    // A presenter cannot moderate.
    send(
        &mut eve,
        &json!({"type": "remove_participant", "participant": 1}).to_string(),
    )
    .await;
    expect_error(&mut eve, "forbidden").await;
    send(
        &mut host,
        &json!({"type": "lock_room", "locked": true}).to_string(),
    )
    .await;
    send(
        &mut host,
        &json!({"type": "remove_participant", "participant": eve_id}).to_string(),
    )
    .await;
    let m = wait_type(&mut eve, "error").await;
    assert_eq!(m["code"], "removed", "{m}");
    assert!(next_json(&mut eve).await.is_none(), "socket closed");
    let left = wait_type(&mut host, "participant_left").await;
    assert_eq!(left["reason"], "removed");
    let (_again, m) = raw_join(&server, "rm", "e", json!({"token": eve_t})).await;
    assert_eq!(m["code"], "removed", "{m}");
}

#[tokio::test]
async fn locked_room_puts_newcomers_in_the_lobby() {
    let server = TestServer::start().await;
    let (mut host, _) = raw_join(&server, "lobby", "Host", json!({"role": "host"})).await;
    send(
        &mut host,
        &json!({"type": "lock_room", "locked": true}).to_string(),
    )
    .await;
    assert_eq!(wait_type(&mut host, "room_locked").await["locked"], true);
    let (mut bob, m) = raw_join(&server, "lobby", "Bob", json!({})).await;
    assert_eq!(m["type"], "waiting", "{m}");
    let lobby = wait_type(&mut host, "lobby_changed").await;
    assert_eq!(lobby["waiting"][0]["name"], "Bob");
    // While waiting, Bob can do nothing else.
    send(
        &mut bob,
        &json!({"type": "chat", "text": "let me in"}).to_string(),
    )
    .await;
    expect_error(&mut bob, "not_joined").await;
    let bob_id = lobby["waiting"][0]["id"].clone();
    send(
        &mut host,
        &json!({"type": "admit", "participant": bob_id, "admit": true}).to_string(),
    )
    .await;
    let joined = wait_type(&mut bob, "joined").await;
    assert_eq!(joined["locked"], true);
    // A second newcomer is refused.
    let (mut cy, m) = raw_join(&server, "lobby", "Cy", json!({})).await;
    assert_eq!(m["type"], "waiting");
    // The host saw Bob leave the lobby; the next change that adds someone adds Cy.
    let lobby = loop {
        let l = wait_type(&mut host, "lobby_changed").await;
        if l["waiting"].as_array().is_some_and(|w| !w.is_empty()) {
            break l;
        }
    };
    assert_eq!(lobby["waiting"][0]["name"], "Cy");
    let cy_id = lobby["waiting"][0]["id"].clone();
    send(
        &mut host,
        &json!({"type": "admit", "participant": cy_id, "admit": false}).to_string(),
    )
    .await;
    let m = wait_type(&mut cy, "error").await;
    assert_eq!(m["code"], "refused");
}

#[tokio::test]
async fn password_is_set_by_the_opener_and_required_after() {
    let server = TestServer::start().await;
    let (_a, m) = raw_join(&server, "pw", "Ana", json!({"password": "open sesame"})).await;
    assert_eq!(m["type"], "joined");
    let (_b, m) = raw_join(&server, "pw", "Ben", json!({})).await;
    assert_eq!(m["code"], "wrong_password");
    let (_c, m) = raw_join(&server, "pw", "Cy", json!({"password": "open sesame"})).await;
    assert_eq!(m["type"], "joined");
}

#[tokio::test]
async fn chat_reaches_everyone_and_latecomers_get_history() {
    let server = TestServer::start().await;
    let (mut a, _) = raw_join(&server, "chat", "Ana", json!({})).await;
    let (mut b, _) = raw_join(&server, "chat", "Ben", json!({})).await;
    send(
        &mut a,
        &json!({"type": "chat", "text": "  hello all  "}).to_string(),
    )
    .await;
    let m = wait_type(&mut b, "chat").await;
    assert_eq!(m["entry"]["text"], "hello all");
    assert_eq!(m["entry"]["name"], "Ana");
    send(
        &mut a,
        &json!({"type": "chat", "text": "x".repeat(2001)}).to_string(),
    )
    .await;
    expect_error(&mut a, "bad_message").await;
    let (_c, joined) = raw_join(&server, "chat", "Cy", json!({})).await;
    assert_eq!(joined["chat"][0]["text"], "hello all");
    // Posting faster than the limit gets rate_limited.
    for i in 0..10 {
        send(
            &mut b,
            &json!({"type": "chat", "text": format!("spam {i}")}).to_string(),
        )
        .await;
    }
    let mut limited = false;
    while let Some(m) = next_json(&mut b).await {
        if m["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited);
}

#[tokio::test]
async fn questions_are_ordered_by_votes_and_answered_by_the_host() {
    let server = TestServer::start().await;
    let (mut host, _) = raw_join(
        &server,
        "qa",
        "Host",
        json!({"role": "host", "mode": "webinar"}),
    )
    .await;
    let (mut a, m) = raw_join(&server, "qa", "Ana", json!({})).await;
    assert_eq!(
        m["you"]["role"], "audience",
        "a webinar makes joiners audience"
    );
    assert_eq!(m["mode"], "webinar");
    let (mut b, _) = raw_join(&server, "qa", "Ben", json!({})).await;
    send(
        &mut a,
        &json!({"type": "ask", "text": "first?"}).to_string(),
    )
    .await;
    let mut b_board = Board::default();
    b_board.add(&wait_type(&mut b, "question").await);
    send(
        &mut b,
        &json!({"type": "ask", "text": "second?"}).to_string(),
    )
    .await;
    Board::default().until(&mut a, |l| l.len() == 2).await;
    send(
        &mut a,
        &json!({"type": "vote", "question": 2, "up": true}).to_string(),
    )
    .await;
    let q = Board::default()
        .until(&mut host, |l| l.len() == 2 && l[0]["votes"] == 1)
        .await;
    assert_eq!(q[0]["text"], "second?");
    // Audience cannot mark answered; the host can.
    send(
        &mut a,
        &json!({"type": "mark_answered", "question": 2}).to_string(),
    )
    .await;
    expect_error(&mut a, "forbidden").await;
    send(
        &mut host,
        &json!({"type": "mark_answered", "question": 2}).to_string(),
    )
    .await;
    let q = b_board
        .until(&mut b, |l| l.len() == 2 && l[1]["answered"] == true)
        .await;
    assert_eq!(q[0]["text"], "first?");
    assert_eq!(q[1]["answered"], true);
}

/// The Q&A board as a client keeps it from `question` updates, ordered as `joined` orders it.
#[derive(Default)]
struct Board(std::collections::BTreeMap<u64, serde_json::Value>);

impl Board {
    fn add(&mut self, msg: &serde_json::Value) {
        let q = &msg["question"];
        self.0.insert(q["id"].as_u64().expect("an id"), q.clone());
    }

    /// Applies `question` updates until the ordered board satisfies `pred`; returns it.
    async fn until(
        &mut self,
        ws: &mut crate::common::Ws,
        pred: impl Fn(&Vec<serde_json::Value>) -> bool,
    ) -> Vec<serde_json::Value> {
        loop {
            self.add(&wait_type(ws, "question").await);
            let mut list: Vec<_> = self.0.values().cloned().collect();
            list.sort_by_key(|q| {
                (
                    q["answered"].as_bool(),
                    std::cmp::Reverse(q["votes"].as_u64()),
                    q["id"].as_u64(),
                )
            });
            if pred(&list) {
                return list;
            }
        }
    }
}

#[tokio::test]
async fn host_ends_the_meeting_for_everyone() {
    let server = TestServer::start().await;
    let (mut host, _) = raw_join(&server, "end", "Host", json!({"role": "host"})).await;
    let (mut a, _) = raw_join(&server, "end", "Ana", json!({})).await;
    send(&mut host, &json!({"type": "end_meeting"}).to_string()).await;
    for ws in [&mut host, &mut a] {
        let m = wait_type(ws, "error").await;
        assert_eq!(m["code"], "closed");
        assert!(next_json(ws).await.is_none(), "socket closed");
    }
}

/// A guest still sending when the host ends the meeting is told why, and the socket closes
/// with the closing handshake. The session used to drop the connection with the guest's
/// frames unread, and the kernel answered with a reset that threw away what it had not sent
/// yet (the web client showed "Cannot reach the server"); or it read the guest's frame first,
/// found the room gone and said "internal" instead of "closed".
#[tokio::test]
async fn a_guest_sending_as_the_meeting_ends_is_told_why() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const ROUNDS: usize = 30;
    let server = TestServer::start().await;
    let mut wrong = vec![];
    for round in 0..ROUNDS {
        let room = format!("end-busy-{round}");
        let (mut host, _) = raw_join(&server, &room, "Host", json!({"role": "host"})).await;
        let (guest, _) = raw_join(&server, &room, "Ana", json!({})).await;
        let (mut tx, mut rx) = guest.split();
        send(&mut host, &json!({"type": "end_meeting"}).to_string()).await;
        // One frame, as a browser sends on seeing the host's tracks go; or a burst.
        let burst = if round % 2 == 0 { 1 } else { 40 };
        let talk = tokio::spawn(async move {
            let sizes = json!({"type": "video_sizes", "sizes": {}}).to_string();
            for _ in 0..burst {
                if tx.send(Message::Text(sizes.clone().into())).await.is_err() {
                    break;
                }
            }
        });
        let (mut errors, mut clean) = (vec![], false);
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.next()).await
        {
            match frame {
                Message::Text(t) => {
                    let m: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                    if m["type"] == "error" {
                        errors.push(m["code"].clone());
                    }
                }
                Message::Close(_) => clean = true,
                _ => {}
            }
        }
        let _ = talk.await;
        if errors != [json!("closed")] || !clean {
            wrong.push((round, errors, clean));
        }
    }
    assert!(
        wrong.is_empty(),
        "(round, errors, close frame) not as they should be: {wrong:?}"
    );
}
