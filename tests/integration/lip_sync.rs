//! Lip sync on both send paths. On a real server over loopback: the answer a viewer gets
//! names one stream (msid) for the microphone and the camera of the person they receive,
//! which is what makes a browser lip-sync the two. In virtual time: our sender reports keep
//! the relation between a person's audio and video that their own sender reports state, not
//! the one their arrival times suggest (`media::lipsync`).

use crate::common::{bot, lean_room, str0m_room, TestServer};
use confab::bot::{Bot, BotCmd, BotStats, StreamShape};
use confab::media::config::RoomConfig;
use confab::protocol::{ParticipantId, Role, ServerMsg};
use confab::sim::Sim;
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

/// How long before it is sent the publisher captured each video frame (its encoder's
/// latency, as its sender reports say). A browser's is a few to tens of milliseconds, more
/// on a loaded machine.
const VIDEO_LAG: Duration = Duration::from_millis(80);

/// (audio, video) `report_lag_ms` of what `viewer` receives, once both have one.
fn report_lags(sim: &Sim, viewer: ParticipantId) -> Option<(f64, f64)> {
    let st = sim.stats(viewer);
    let lag = |video: bool| {
        st.tracks
            .values()
            .find(|t| t.video == video)
            .and_then(|t| t.report_lag_ms)
    };
    Some((lag(false)?, lag(true)?))
}

/// How much later than audio a viewer must play a host's video to play them in sync, by
/// our sender reports (ms; medians of 20 samples over 4 s once both streams had reports).
fn video_behind_audio(room: RoomConfig) -> f64 {
    let shape = StreamShape {
        video_lag: VIDEO_LAG,
        ..StreamShape::default()
    };
    let mut sim = Sim::new(room);
    let _host = sim.join("host", Role::Host, true, shape).expect("join");
    let viewer = sim
        .join("viewer", Role::Audience, false, StreamShape::default())
        .expect("join");
    // The publisher's first reports (str0m sends audio's every 5 s), then ours on them.
    sim.run_for(Duration::from_secs(6));
    assert!(
        sim.run_until(Duration::from_secs(5), |s| report_lags(s, viewer).is_some()),
        "no sender reports on both: {:?}",
        sim.stats(viewer)
    );
    let mut skews = vec![];
    for _ in 0..20 {
        sim.run_for(Duration::from_millis(200));
        let (audio, video) = report_lags(&sim, viewer).expect("still reported");
        skews.push(video - audio);
    }
    skews.sort_by(f64::total_cmp);
    skews[skews.len() / 2]
}

/// The host's video is captured `VIDEO_LAG` before it is sent, its audio as it is sent: in
/// sync, the viewer plays video that much behind its arrival relative to audio. Before
/// `lipsync`, our reports paired each stream's RTP time with its arrival and said 0 (±5).
fn keeps_the_publishers_relation(room: RoomConfig) {
    let skew = video_behind_audio(room);
    eprintln!("video {skew:.1} ms behind audio by our sender reports");
    let want = VIDEO_LAG.as_secs_f64() * 1000.0;
    assert!(
        (skew - want).abs() < 10.0,
        "video {skew:.1} ms behind audio by our reports, the publisher said {want} ms"
    );
}

#[test]
fn our_sender_reports_keep_the_publishers_audio_video_relation() {
    keeps_the_publishers_relation(lean_room());
}

#[test]
fn our_sender_reports_keep_the_publishers_audio_video_relation_on_the_str0m_path() {
    keeps_the_publishers_relation(str0m_room());
}

/// The same across nodes: the host publishes on an origin, the viewer watches on an edge. The
/// relay datagram carries each packet's capture on the origin's clock, which the edge carries
/// onto its own by one offset per link; before, the edge took each packet's arrival there.
#[test]
fn an_edge_viewer_gets_the_publishers_audio_video_relation() {
    use crate::relay_harness::Cluster;
    let shape = StreamShape {
        video_lag: VIDEO_LAG,
        ..StreamShape::default()
    };
    let mut c = Cluster::cascade(lean_room());
    c.origin
        .join("host", Role::Presenter, true, shape)
        .expect("join");
    let viewer = c.edges[0]
        .sim
        .join("viewer", Role::Audience, false, StreamShape::default())
        .expect("join");
    c.run_for(Duration::from_secs(6));
    assert!(
        c.run_until(Duration::from_secs(5), |c| {
            report_lags(&c.edges[0].sim, viewer).is_some()
        }),
        "no sender reports on both: {:?}",
        c.edges[0].sim.stats(viewer)
    );
    let mut skews = vec![];
    for _ in 0..20 {
        c.run_for(Duration::from_millis(200));
        let (audio, video) = report_lags(&c.edges[0].sim, viewer).expect("still reported");
        skews.push(video - audio);
    }
    skews.sort_by(f64::total_cmp);
    let skew = skews[skews.len() / 2];
    eprintln!("edge: video {skew:.1} ms behind audio by the edge's sender reports");
    let want = VIDEO_LAG.as_secs_f64() * 1000.0;
    assert!(
        (skew - want).abs() < 10.0,
        "video {skew:.1} ms behind audio at the edge, the publisher said {want} ms"
    );
}
