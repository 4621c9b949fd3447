//! Lip-sync groups on a real server over loopback, on both send paths: the answer a viewer
//! gets names one stream (msid) for the microphone and the camera of the person they receive,
//! which is what makes a browser lip-sync the two.

use crate::common::{bot, TestServer};
use confab::bot::{Bot, BotCmd, BotStats};
use confab::protocol::ServerMsg;
use std::time::Duration;

/// Whether audio and video both arrive.
fn hears_and_sees(s: &BotStats) -> bool {
    let kind = |video: bool| {
        s.tracks
            .values()
            .any(|t| t.video == video && t.packets > 20)
    };
    kind(false) && kind(true)
}

/// (kind, stream id) of each m-line of `sdp` that names a stream.
fn streams(sdp: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut kind = String::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            kind = m.split(' ').next().unwrap_or("").to_string();
        }
        if let Some((stream, _)) = line.strip_prefix("a=msid:").and_then(|r| r.split_once(' ')) {
            out.push((kind.clone(), stream.to_string()));
        }
    }
    out
}

async fn one_stream_per_person(server: TestServer) {
    let ana = Bot::join(bot(&server, "sync", "Ana"))
        .await
        .expect("Ana joins");
    let mut ben = Bot::join(bot(&server, "sync", "Ben"))
        .await
        .expect("Ben joins");
    assert!(
        ben.wait_until(Duration::from_secs(15), hears_and_sees)
            .await,
        "{:?}",
        ben.stats()
    );
    // The answers of the first negotiations are queued: the one wanted is the restart's.
    while ben.next_event(Duration::from_millis(1)).await.is_some() {}
    // An offer now (an ICE restart is one) is answered with Ana's tracks on Ben's m-lines.
    ben.command(BotCmd::RestartIce);
    let answer = ben
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::Answer { .. })
        })
        .await;
    let Some(ServerMsg::Answer { sdp }) = answer else {
        panic!("no answer: {answer:?}");
    };
    let named = streams(&sdp);
    let anas = format!("confab-{}", ana.id.0);
    let of_ana: Vec<&str> = named
        .iter()
        .filter(|(_, s)| *s == anas)
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(
        of_ana.contains(&"audio") && of_ana.contains(&"video"),
        "Ana's microphone and camera are not one stream: {named:?}"
    );
    // Ana's are the only tracks Ben receives; nothing else joins her stream.
    assert_eq!(of_ana.len(), 2, "{named:?}");
    // The session lists the stream.
    assert!(
        sdp.lines()
            .any(|l| l.starts_with("a=msid-semantic:") && l.split(' ').any(|s| s == anas)),
        "{sdp}"
    );
    // Ben keeps receiving both over the renegotiated session.
    let before = ben.stats().tracks.values().map(|t| t.packets).sum::<u64>();
    assert!(
        ben.wait_until(Duration::from_secs(10), |s| {
            s.tracks.values().map(|t| t.packets).sum::<u64>() > before + 100
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_microphone_and_camera_are_one_stream() {
    one_stream_per_person(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_microphone_and_camera_are_one_stream_on_the_str0m_path() {
    one_stream_per_person(TestServer::on_str0m().await).await;
}
