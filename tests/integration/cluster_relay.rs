//! The cross-node webinar relay (issue 15) on three real nodes and a real Redis: a stage on
//! one node (the origin), its audience past `--max-audience-per-node` served by the other two
//! (edges), each stage packet sent once per edge.

use crate::cluster::{owner, three_nodes_with, Node, Redis};
use confab::bot::{Bot, BotConfig, BotStats, TrackStats};
use confab::protocol::{Role, RoomMode, ServerMsg};
use std::time::Duration;

/// Audience one node serves before the next viewers go to an edge.
const CAP: usize = 30;

/// Packets missing in the sequence range a track delivered (0 when nothing was lost).
fn lost(t: &TrackStats) -> u64 {
    t.seq_range
        .map_or(0, |(lo, hi)| (hi - lo + 1).saturating_sub(t.packets))
}

fn audio_video(s: &BotStats) -> (u64, u64) {
    let sum = |video: bool| {
        s.tracks
            .values()
            .filter(|t| t.video == video)
            .map(|t| t.packets)
            .sum::<u64>()
    };
    (sum(false), sum(true))
}

async fn nodes(redis: &Redis) -> Vec<Node> {
    let cap = CAP.to_string();
    three_nodes_with(redis, &["--max-audience-per-node", cap.as_str()]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webinar_one_to_ninety_across_three_nodes_once_per_edge() {
    let redis = Redis::start().await;
    let nodes = nodes(&redis).await;
    let room = "keynote";
    let mut stage = BotConfig::new(nodes[0].ws(), room, "Speaker");
    stage.mode = Some(RoomMode::Webinar);
    stage.role = Some(Role::Host);
    stage.subscribe = false;
    let stage = Bot::join(stage).await.expect("the speaker joins");
    let staged = std::time::Instant::now();
    assert_eq!(stage.role, Role::Host);
    let origin = owner(&nodes[0], room).await.expect("room claimed");
    // The origin's audience count reaches Redis as the room opens.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut viewers = vec![];
    for i in 0..3 * CAP {
        let node = &nodes[i % nodes.len()];
        let mut c = BotConfig::new(node.ws(), room, format!("viewer{i}"));
        c.publish = false;
        let bot = Bot::join(c).await.expect("a viewer joins");
        assert_eq!(bot.role, Role::Audience);
        viewers.push(bot);
    }

    // Every viewer receives the stage's audio and video.
    for v in &viewers {
        let ok = v
            .wait_until(Duration::from_secs(20), |s| {
                let (a, v) = audio_video(s);
                a > 20 && v > 20
            })
            .await;
        assert!(ok, "{} receives: {:?}", v.id, v.stats());
    }
    // Datagrams of a track the edge has not heard announced yet are refused only while the
    // announcement is on its way: once everyone receives, none at all.
    let mut early = vec![];
    for n in &nodes {
        early.push(n.unknown_track_drops().await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (n, before) in nodes.iter().zip(early) {
        let after = n.unknown_track_drops().await;
        assert_eq!(
            after, before,
            "{}: unknown tracks once all was announced",
            n.id
        );
    }

    // Zero loss on loopback: no gap in any track's sequence numbers.
    let missing: u64 = viewers
        .iter()
        .flat_map(|v| v.stats().tracks.into_values())
        .map(|t| lost(&t))
        .sum();
    assert_eq!(missing, 0, "packets lost across the audience");

    // Placement: the origin serves at most its cap; the rest is on the two edges.
    let mut edges = vec![];
    for n in &nodes {
        let placed_edge = n
            .metric("confab_cluster_placements_total{decision=\"edge\"}")
            .await;
        let served = n.metric("confab_cluster_edge_sessions ").await;
        if n.id == origin {
            assert_eq!(served, 0.0, "the origin serves no edge sessions");
        } else {
            assert!(served > 0.0, "{} serves part of the audience", n.id);
            edges.push(n);
        }
        let _ = placed_edge;
    }
    assert_eq!(edges.len(), 2);
    let on_edges: f64 = {
        let mut s = 0.0;
        for e in &edges {
            s += e.metric("confab_cluster_edge_sessions ").await;
        }
        s
    };
    assert!(
        on_edges >= (3 * CAP - CAP - 3) as f64,
        "{on_edges} viewers on edges"
    );

    // Once per edge: what the origin sent is what the edges received, and no edge received
    // more than the speaker sent (each stage packet crossed at most once to it), while each
    // edge forwarded it to its own viewers. Read after the stage left, so nothing is in
    // flight and every room has counted.
    let o = nodes.iter().find(|n| n.id == origin).expect("origin node");
    let links = o.metric("confab_relay_links ").await;
    assert_eq!(links, 2.0, "one link per edge");
    let published = stage.stats().sent_packets as f64;
    let _ = stage.leave().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = o.metric("confab_relay_sent_packets_total ").await;
    let mut received = 0.0;
    for e in &edges {
        let r = e.metric("confab_relay_received_packets_total ").await;
        let fwd = e.metric("confab_rtp_forwarded_packets_total ").await;
        // How many arrive before their announcement depends on how late the edge reads its
        // control link, so the bound is time, not a count: a second of the stage's packets.
        e.assert_relay_drops_benign(published / staged.elapsed().as_secs_f64())
            .await;
        assert!(r > 0.0 && r <= published, "{}: {r} of {published}", e.id);
        assert!(fwd > 5.0 * r, "{} fans out locally: {fwd} for {r}", e.id);
        received += r;
    }
    assert!(
        sent <= 2.0 * published,
        "{sent} sent for {published} published"
    );
    assert!(
        (sent - received).abs() <= 0.01 * sent + 10.0,
        "origin sent {sent}, edges received {received}"
    );
    eprintln!(
        "relay: published {published}, origin sent {sent} to 2 edges, edges received {received}"
    );
    for v in viewers {
        let _ = v.leave().await;
    }
}

/// A stage published after the edge viewers' offers (the track list usually reaches an edge
/// before its viewers offer): a host without media opens the webinar, the audience connects
/// (one on the origin, two on the edge), and only then does a presenter join and publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_published_after_the_edge_viewers_connected_reaches_them() {
    let redis = Redis::start().await;
    let extra = ["--max-audience-per-node", "1"];
    let nodes = [
        Node::start_with(&redis, "n1", &extra).await,
        Node::start_with(&redis, "n2", &extra).await,
    ];
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while nodes[0].cluster().await["nodes"]
        .as_array()
        .map_or(0, Vec::len)
        < 2
    {
        assert!(std::time::Instant::now() < until, "nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let room = "late-stage";
    let mut host = BotConfig::new(nodes[0].ws(), room, "Host");
    host.mode = Some(RoomMode::Webinar);
    host.role = Some(Role::Host);
    host.publish = false;
    host.subscribe = false;
    let mut host = Bot::join(host).await.expect("the host joins");
    assert_eq!(host.role, Role::Host);
    let settings = host
        .wait_event(Duration::from_secs(5), |m| {
            matches!(
                m,
                ServerMsg::RoomSettings {
                    presenter_key: Some(_),
                    ..
                }
            )
        })
        .await;
    let Some(ServerMsg::RoomSettings {
        presenter_key: Some(key),
        ..
    }) = settings
    else {
        panic!("the host gets the presenter key: {settings:?}");
    };
    assert_eq!(owner(&nodes[0], room).await.as_deref(), Some("n1"));
    // The origin's audience count reaches Redis as the room opens.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut viewers = vec![];
    for i in 0..3 {
        let mut c = BotConfig::new(nodes[i % 2].ws(), room, format!("viewer{i}"));
        c.publish = false;
        // Audio slots make the first offer (and a connection) before any track exists.
        c.audio_slots = 2;
        viewers.push(Bot::join(c).await.expect("a viewer joins"));
    }
    for v in &viewers {
        let up = v.wait_until(Duration::from_secs(10), |s| s.connected).await;
        assert!(up, "{} connects before any track exists", v.id);
        assert!(v.stats().tracks.is_empty());
    }
    assert_eq!(nodes[1].metric("confab_cluster_edge_sessions ").await, 2.0);
    assert_eq!(nodes[0].metric("confab_cluster_edge_sessions ").await, 0.0);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The presenter joins through the edge node; its key puts it on the origin's stage.
    let mut p = BotConfig::new(nodes[1].ws(), room, "Presenter");
    p.key = Some(key);
    p.subscribe = false;
    let presenter = Bot::join(p).await.expect("the presenter joins");
    assert_eq!(presenter.role, Role::Presenter);
    for v in &viewers {
        let ok = v
            .wait_until(Duration::from_secs(15), |s| {
                let (a, v) = audio_video(s);
                a > 50 && v > 50
            })
            .await;
        assert!(ok, "{} receives the late stage: {:?}", v.id, v.stats());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for v in &viewers {
        for t in v.stats().tracks.values() {
            assert_eq!(lost(t), 0, "{}: {t:?}", v.id);
        }
    }
    assert!(nodes[0].metric("confab_relay_sent_packets_total ").await > 0.0);
    assert!(
        nodes[1]
            .metric("confab_relay_received_packets_total ")
            .await
            > 0.0
    );
    let _ = presenter.leave().await;
    for v in viewers {
        let _ = v.leave().await;
    }
    let _ = host.leave().await;
}
