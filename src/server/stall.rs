//! A room that runs late does not reap the peers whose datagrams it has not read yet.
//!
//! Issue 16's 1 → 300 runs on a loaded machine lost the publisher and most viewers at once:
//! the room, starved of CPU and busy with joins, read its media inbox seconds late, and the
//! reaper judged silence against the clock instead of against what it had read. A real server
//! on loopback; the room task is made to block through a message that exists only in
//! unit-test builds (no peer can send it), as a starved room would.

use super::loopback::{packets, Loopback};
use super::room_task::RoomMsg;
use crate::bot::{Bot, BotConfig};
use crate::media::config::SendPath;
use crate::protocol::{Role, RoomMode, ServerMsg};
use std::time::Duration;

/// Short, so the test is; long enough that a viewer sending only STUN keepalives is never
/// silent that long on a busy machine (at 2 s this test failed once under load).
const MEDIA_TIMEOUT: Duration = Duration::from_secs(4);
/// The room blocks a second longer than the media timeout.
const STALL: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_room_keeps_the_peers_it_has_not_read() {
    let server = Loopback::start(|c| {
        c.room.send_path = SendPath::Lean;
        c.room.media_timeout = MEDIA_TIMEOUT;
    })
    .await;
    let (url, shared) = (&server.url, &server.shared);
    let mut host = Bot::join(BotConfig {
        role: Some(Role::Host),
        mode: Some(RoomMode::Webinar),
        publish: true,
        ..BotConfig::new(url.clone(), "late", "host")
    })
    .await
    .expect("the host joins");
    let mut viewers = vec![];
    for i in 0..3 {
        let viewer = Bot::join(BotConfig {
            role: Some(Role::Audience),
            publish: false,
            // One decrypts (its str0m sends RTCP too); the others only count, as most of
            // confab-load's viewers do, and send STUN and transport-cc feedback.
            decrypt: i == 0,
            ..BotConfig::new(url.clone(), "late", format!("v{i}"))
        })
        .await
        .expect("a viewer joins");
        viewers.push(viewer);
    }
    for v in &viewers {
        let flowing = v
            .wait_until(Duration::from_secs(15), |s| packets(s) > 50)
            .await;
        assert!(flowing, "{} receives: {:?}", v.id, v.stats());
    }
    let room = shared.rooms.sender("late").expect("the room is open");
    // Longer than the media timeout: every datagram sent meanwhile waits in the inbox.
    room.send(RoomMsg::Stall(STALL))
        .await
        .expect("the room takes it");
    tokio::time::sleep(STALL).await;
    let before: Vec<u64> = viewers.iter().map(|v| packets(&v.stats())).collect();
    for (v, before) in viewers.iter().zip(before) {
        let more = v
            .wait_until(Duration::from_secs(10), |s| packets(s) > before + 100)
            .await;
        assert!(
            more,
            "{} still receives after the stall: {:?}",
            v.id,
            v.stats()
        );
        assert!(!v.is_finished(), "{} is still in", v.id);
    }
    // Nobody was reaped: the host heard of no one leaving, and is in itself.
    let left = host
        .wait_event(Duration::from_millis(500), |m| {
            matches!(m, ServerMsg::ParticipantLeft { .. })
        })
        .await;
    assert!(left.is_none(), "someone was reaped: {left:?}");
    assert!(!host.is_finished(), "the host is still in");
    assert_eq!(shared.metrics.participants.get(), 4);
    drop(viewers);
}
