//! A panic inside one room's task ends that room only: the other rooms keep forwarding.
//!
//! A real server on loopback with bots in two rooms; one room's task is made to panic through
//! a message that exists only in unit-test builds (no peer can send it).

use super::loopback::{packets, Loopback};
use super::room_task::RoomMsg;
use crate::bot::{Bot, BotConfig};
use crate::protocol::ServerMsg;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_room_leaves_the_others_forwarding() {
    let server = Loopback::start(|_| {}).await;
    let shared = &server.shared;
    let join = |room: &str, name: &str| Bot::join(BotConfig::new(server.url.clone(), room, name));
    let a1 = join("doomed", "A1").await.expect("joins");
    let mut a2 = join("doomed", "A2").await.expect("joins");
    let b1 = join("healthy", "B1").await.expect("joins");
    let b2 = join("healthy", "B2").await.expect("joins");
    for bot in [&a1, &a2, &b1, &b2] {
        let flowing = bot
            .wait_until(Duration::from_secs(15), |s| packets(s) > 50)
            .await;
        assert!(
            flowing,
            "{} receives before the panic: {:?}",
            bot.id,
            bot.stats()
        );
    }
    let doomed = shared.rooms.sender("doomed").expect("the room is open");
    doomed
        .send(RoomMsg::Panic)
        .await
        .expect("the room takes it");
    // The doomed room's sessions are told, and the room is gone.
    let told = a2
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::Error { code, .. } if *code == crate::protocol::ErrorCode::Internal)
        })
        .await;
    assert!(
        told.is_some(),
        "a session of the panicked room hears it ended"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), doomed.closed()).await;
    assert!(closed.is_ok(), "the panicked room's queue closes");
    // The healthy room forwards on, to both of its members.
    for bot in [&b1, &b2] {
        let before = packets(&bot.stats());
        let more = bot
            .wait_until(Duration::from_secs(10), |s| packets(s) > before + 100)
            .await;
        assert!(
            more,
            "{} still receives after the panic: {:?}",
            bot.id,
            bot.stats()
        );
        assert!(!bot.is_finished(), "{} is still in", bot.id);
    }
    // And the name of the panicked room can be opened afresh.
    let again = join("doomed", "A3").await.expect("the room reopens");
    assert!(!again.is_finished());
    drop(a1);
}
