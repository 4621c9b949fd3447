//! Webinars over real sockets: audience never publishes, promotion and demotion live,
//! forced mutes stop forwarding.

use crate::common::{bot, TestServer};
use confab::bot::{Bot, BotCmd, BotConfig, BotStats};
use confab::protocol::{ErrorCode, ParticipantId, Role, RoomMode, ServerMsg};
use std::time::Duration;

fn webinar(server: &TestServer, name: &str, role: Option<Role>) -> BotConfig {
    let mut c = bot(server, "webinar", name);
    c.mode = Some(RoomMode::Webinar);
    c.role = role;
    c
}

fn media_from(stats: &BotStats) -> (u64, u64) {
    let audio = stats
        .tracks
        .values()
        .filter(|t| !t.video)
        .map(|t| t.packets)
        .sum();
    let video = stats
        .tracks
        .values()
        .filter(|t| t.video)
        .map(|t| t.packets)
        .sum();
    (audio, video)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_receives_the_stage_and_can_never_publish() {
    audience_receives_the_stage(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_receives_the_stage_on_the_str0m_path() {
    audience_receives_the_stage(TestServer::on_str0m().await).await;
}

async fn audience_receives_the_stage(server: TestServer) {
    let host = Bot::join(webinar(&server, "Host", Some(Role::Host)))
        .await
        .expect("host");
    // Joins without a role: a webinar makes it audience. Its client plays hostile and offers
    // send tracks anyway.
    let mut cfg = webinar(&server, "Eve", None);
    cfg.ignore_role = true;
    let mut eve = Bot::join(cfg).await.expect("eve joins");
    assert_eq!(eve.role, Role::Audience);
    let refused = eve
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::Error { .. })
        })
        .await;
    assert!(
        matches!(
            refused,
            Some(ServerMsg::Error {
                code: ErrorCode::Forbidden,
                ..
            })
        ),
        "{refused:?}"
    );
    // A well-behaved audience member receives the host's audio and video.
    let viewer = Bot::join(webinar(&server, "Vic", None))
        .await
        .expect("viewer");
    assert_eq!(viewer.role, Role::Audience);
    assert!(
        viewer
            .wait_until(Duration::from_secs(15), |s| {
                let (a, v) = media_from(s);
                a > 20 && v > 30
            })
            .await,
        "{:?}",
        viewer.stats()
    );
    // Nothing of the audience's ever reached the stage.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(host.stats().tracks.is_empty(), "{:?}", host.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_promotes_to_the_stage_and_back_without_a_rejoin() {
    promotion(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_and_demotion_on_the_str0m_path() {
    promotion(TestServer::on_str0m().await).await;
}

async fn promotion(server: TestServer) {
    let host = Bot::join(webinar(&server, "Host", Some(Role::Host)))
        .await
        .expect("host");
    let mut ana = Bot::join(webinar(&server, "Ana", None)).await.expect("ana");
    let viewer = Bot::join(webinar(&server, "Vic", None))
        .await
        .expect("viewer");
    let ana_id = ana.id;
    ana.command(BotCmd::SendRaw(
        r#"{"type":"raise_hand","raised":true}"#.into(),
    ));
    let hands = ana
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::HandsChanged(_))
        })
        .await;
    assert!(
        matches!(&hands, Some(ServerMsg::HandsChanged(d)) if d.raised == vec![ana_id]),
        "{hands:?}"
    );
    set_role(&host, ana_id, "presenter");
    // Ana's video reaches the other audience member: two publishers on stage now.
    let two_videos = |s: &BotStats| {
        s.tracks
            .values()
            .filter(|t| t.video && t.packets > 30)
            .count()
            >= 2
    };
    assert!(
        viewer.wait_until(Duration::from_secs(15), two_videos).await,
        "{:?}",
        viewer.stats()
    );
    // The hand was lowered by the promotion.
    let hands = ana
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::HandsChanged(_))
        })
        .await;
    assert!(
        matches!(&hands, Some(ServerMsg::HandsChanged(d)) if d.lowered == vec![ana_id]),
        "{hands:?}"
    );
    // And back to the audience: her tracks are unpublished.
    set_role(&host, ana_id, "audience");
    let gone = ana
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::ParticipantUpdated { participant } if participant.role == Role::Audience)
        })
        .await;
    assert!(gone.is_some());
    let before = media_from(&viewer.stats());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ana_tracks: Vec<_> = viewer.stats().tracks.keys().copied().collect();
    assert!(ana_tracks.len() >= 4, "{ana_tracks:?}");
    // Only the host's media still grows: at most one video's worth over 1.5 s.
    let after = media_from(&viewer.stats());
    assert!(
        after.1 - before.1 < 150,
        "video still flowing from two: {before:?} → {after:?}"
    );
}

fn set_role(host: &Bot, who: ParticipantId, role: &str) {
    host.command(BotCmd::SendRaw(format!(
        r#"{{"type":"set_role","participant":{},"role":"{role}"}}"#,
        who.0
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_mute_stops_forwarding_until_the_owner_unmutes() {
    let server = TestServer::start().await;
    let host = Bot::join(bot(&server, "mute", "Host").tap(|c| c.role = Some(Role::Host)))
        .await
        .expect("host");
    let mut ben = Bot::join(bot(&server, "mute", "Ben")).await.expect("ben");
    let viewer = Bot::join(bot(&server, "mute", "Vic").tap(|c| c.publish = false))
        .await
        .expect("viewer");
    let ben_id = ben.id;
    assert!(
        viewer
            .wait_until(Duration::from_secs(15), |s| media_from(s).0 > 60)
            .await
    );
    host.command(BotCmd::SendRaw(format!(
        r#"{{"type":"mute_participant","participant":{},"source":"microphone"}}"#,
        ben_id.0
    )));
    let muted = ben
        .wait_event(Duration::from_secs(5), |m| {
            matches!(
                m,
                ServerMsg::TrackMuted {
                    forced: true,
                    muted: true,
                    ..
                }
            )
        })
        .await;
    assert!(muted.is_some());
    let audio_of = |s: &BotStats| -> Vec<u64> {
        let mut v: Vec<u64> = s
            .tracks
            .values()
            .filter(|t| !t.video)
            .map(|t| t.packets)
            .collect();
        v.sort();
        v
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = audio_of(&viewer.stats());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = audio_of(&viewer.stats());
    // One audio stream (the host's) keeps flowing at 50 packets/s, Ben's is frozen.
    let grown = after.iter().zip(&before).filter(|(a, b)| a > b).count();
    assert_eq!(grown, 1, "{before:?} → {after:?}");
    // Ben unmutes himself: it flows again.
    ben.command(BotCmd::SendRaw(
        r#"{"type":"mute","source":"microphone","muted":false}"#.into(),
    ));
    let before = audio_of(&viewer.stats());
    assert!(
        viewer
            .wait_until(Duration::from_secs(5), |s| {
                audio_of(s)
                    .iter()
                    .zip(&before)
                    .filter(|(a, b)| **a > **b + 20)
                    .count()
                    == 2
            })
            .await
    );
}

/// Small builder helper for configs.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for BotConfig {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
