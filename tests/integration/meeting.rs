//! Media flows between bots in a meeting; leaving and vanishing are cleaned up.

use crate::common::{bot, TestServer};
use confab::bot::{Bot, BotCmd, BotStats};
use confab::protocol::{LeaveReason, ServerMsg, TrackId};
use std::collections::BTreeSet;
use std::time::Duration;

fn has_media_from(stats: &BotStats, publishers: usize) -> bool {
    let audio = stats
        .tracks
        .values()
        .filter(|t| !t.video && t.packets >= 20)
        .count();
    let video = stats
        .tracks
        .values()
        .filter(|t| t.video && t.keyframes >= 1 && t.packets >= 30)
        .count();
    audio >= publishers && video >= publishers
}

/// Ana and Ben in `room`, once Ana receives Ben's media.
async fn ana_and_ben(server: &TestServer, room: &str) -> (Bot, Bot) {
    let a = Bot::join(bot(server, room, "Ana")).await.expect("a joins");
    let b = Bot::join(bot(server, room, "Ben")).await.expect("b joins");
    assert!(
        a.wait_until(Duration::from_secs(15), |s| has_media_from(s, 1))
            .await
    );
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_receive_each_others_audio_and_video() {
    two_bots(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_receive_each_other_on_the_str0m_path() {
    two_bots(TestServer::on_str0m().await).await;
}

async fn two_bots(server: TestServer) {
    let a = Bot::join(bot(&server, "pair", "Ana"))
        .await
        .expect("a joins");
    let b = Bot::join(bot(&server, "pair", "Ben"))
        .await
        .expect("b joins");
    assert!(
        a.wait_until(Duration::from_secs(15), |s| has_media_from(s, 1))
            .await,
        "a got {:?}",
        a.stats()
    );
    assert!(
        b.wait_until(Duration::from_secs(15), |s| has_media_from(s, 1))
            .await,
        "b got {:?}",
        b.stats()
    );
    // Loopback loses nothing: every sequence number in the range arrived.
    for t in b.stats().tracks.values() {
        assert_eq!(t.lost(), 0, "lost packets on {t:?}");
    }
    assert!(server.metric("confab_rtp_forwarded_packets_total") > 100.0);
    a.leave().await.expect("a leaves");
    b.leave().await.expect("b leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bots_full_mesh_through_the_sfu() {
    let server = TestServer::start().await;
    let mut bots = vec![];
    for name in ["A", "B", "C"] {
        bots.push(Bot::join(bot(&server, "trio", name)).await.expect("joins"));
    }
    for b in &bots {
        assert!(
            b.wait_until(Duration::from_secs(20), |s| has_media_from(s, 2))
                .await,
            "{} got {:?}",
            b.id,
            b.stats()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_removes_participant_and_tracks() {
    let server = TestServer::start().await;
    let (mut a, b) = ana_and_ben(&server, "leave").await;
    let b_id = b.id;
    // Ana receives only Ben's tracks: those are the ones his leaving must unpublish.
    let b_tracks: BTreeSet<TrackId> = a.stats().tracks.keys().copied().collect();
    assert_eq!(b_tracks.len(), 2, "Ben's microphone and camera");
    b.leave().await.expect("b leaves");
    let mut unpublished = BTreeSet::new();
    let mut left = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while left.is_none() && tokio::time::Instant::now() < deadline {
        match a.next_event(Duration::from_millis(200)).await {
            Some(ServerMsg::TrackUnpublished { id }) => {
                unpublished.insert(id);
            }
            Some(m @ ServerMsg::ParticipantLeft { id, .. }) if id == b_id => left = Some(m),
            _ => {}
        }
    }
    assert!(
        matches!(
            left,
            Some(ServerMsg::ParticipantLeft {
                reason: LeaveReason::Left,
                ..
            })
        ),
        "{left:?}"
    );
    // Its tracks were unpublished too, before Ana heard that Ben left.
    assert_eq!(unpublished, b_tracks);
    assert_eq!(server.shared.rooms.len(), 1);
    a.leave().await.expect("a leaves");
    // The empty room closes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !server.shared.rooms.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.shared.rooms.is_empty(), "room not reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_reaped() {
    let server = TestServer::with(|c| c.idle_timeout = Duration::from_secs(30)).await;
    let (mut a, b) = ana_and_ben(&server, "vanish").await;
    let b_id = b.id;
    // B freezes: sockets stay open, nothing is sent or answered. ICE notices first.
    b.command(BotCmd::Freeze);
    let started = tokio::time::Instant::now();
    let left = a
        .wait_event(
            Duration::from_secs(20),
            |m| matches!(m, ServerMsg::ParticipantLeft { id, .. } if *id == b_id),
        )
        .await;
    assert!(
        matches!(
            left,
            Some(ServerMsg::ParticipantLeft {
                reason: LeaveReason::Timeout,
                ..
            })
        ),
        "{left:?}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "reaping took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_media_flowing() {
    ice_restart(TestServer::start().await, || BotCmd::RestartIce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_media_flowing_on_the_str0m_path() {
    ice_restart(TestServer::on_str0m().await, || BotCmd::RestartIce).await;
}

/// A network change: Ben's old port is gone, and media must follow him to the new one
/// (before, the lean path kept the pair nominated under the old credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_network_change_media_follows_to_the_new_address() {
    ice_restart(TestServer::start().await, || BotCmd::Move).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_network_change_media_follows_on_the_str0m_path() {
    ice_restart(TestServer::on_str0m().await, || BotCmd::Move).await;
}

async fn ice_restart(server: TestServer, restart: impl Fn() -> BotCmd) {
    let a = Bot::join(bot(&server, "restart", "Ana"))
        .await
        .expect("a joins");
    let mut b = Bot::join(bot(&server, "restart", "Ben"))
        .await
        .expect("b joins");
    assert!(
        b.wait_until(Duration::from_secs(15), |s| has_media_from(s, 1))
            .await
    );
    b.command(restart());
    let answer = b
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::Answer { .. })
        })
        .await;
    assert!(answer.is_some(), "the restart offer was answered");
    let total = |s: &BotStats| s.tracks.values().map(|t| t.packets).sum::<u64>();
    let before = total(&b.stats());
    // Media keeps arriving over the restarted ICE session, and B stays in the room.
    assert!(
        b.wait_until(Duration::from_secs(10), |s| total(s) > before + 200)
            .await,
        "{:?}",
        b.stats()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!b.is_finished());
    assert!(total(&b.stats()) > before + 300);
    drop(a);
}
