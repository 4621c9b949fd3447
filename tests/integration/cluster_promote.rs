//! Promotion from an edge (issue 15) on three real nodes and a real Redis: a viewer the
//! placement put on an edge node is promoted by the host and publishes from there; viewers
//! on the origin, on its own edge and on the other edge receive it; demotion stops it.

use crate::cluster::{owner, three_nodes_with, Node, Redis};
use crate::limits::http_get;
use confab::bot::{Bot, BotCmd, BotConfig, BotStats, TrackStats};
use confab::media::relay::UPLINK_BASE;
use confab::protocol::{ParticipantId, Role, RoomMode};
use std::time::Duration;

/// Audience one node serves before the next viewers go to an edge.
const CAP: usize = 2;

fn lost(t: &TrackStats) -> u64 {
    t.seq_range
        .map_or(0, |(lo, hi)| (hi - lo + 1).saturating_sub(t.packets))
}

/// What a viewer received of tracks published on an edge (their ids are in the edges'
/// blocks): (audio packets, video packets, video keyframes).
fn from_edges(s: &BotStats) -> (u64, u64, u64) {
    let mut r = (0, 0, 0);
    for (id, t) in &s.tracks {
        if id.0 < UPLINK_BASE {
            continue;
        }
        if t.video {
            r.1 += t.packets;
            r.2 += t.keyframes;
        } else {
            r.0 += t.packets;
        }
    }
    r
}

fn set_role(host: &Bot, who: ParticipantId, role: &str) {
    host.command(BotCmd::SendRaw(format!(
        r#"{{"type":"set_role","participant":{},"role":"{role}"}}"#,
        who.0
    )));
}

async fn edge_sessions(nodes: &[Node]) -> Vec<f64> {
    let mut v = vec![];
    for n in nodes {
        v.push(n.metric("confab_cluster_edge_sessions ").await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_promoted_on_an_edge_publishes_from_there() {
    let redis = Redis::start().await;
    let cap = CAP.to_string();
    let nodes = three_nodes_with(&redis, &["--max-audience-per-node", cap.as_str()]).await;
    let room = "town-hall";
    let mut host = BotConfig::new(nodes[0].ws(), room, "Host");
    host.mode = Some(RoomMode::Webinar);
    host.role = Some(Role::Host);
    let host = Bot::join(host).await.expect("the host joins");
    let origin = owner(&nodes[0], room).await.expect("room claimed");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Six viewers: two fill the origin, then two an edge (Pat first), then two the other.
    // Where each went is read from the nodes' edge-session gauges.
    let mut viewers = vec![];
    let mut placed = vec![];
    for i in 0..3 * CAP {
        let before = edge_sessions(&nodes).await;
        let mut c = BotConfig::new(nodes[i % nodes.len()].ws(), room, format!("viewer{i}"));
        // Pat publishes once allowed to; the others never do.
        c.publish = i == CAP;
        let bot = Bot::join(c).await.expect("a viewer joins");
        assert_eq!(bot.role, Role::Audience);
        viewers.push(bot);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = edge_sessions(&nodes).await;
        let on = (0..nodes.len()).find(|n| after[*n] > before[*n]);
        placed.push(on.map(|n| nodes[n].id.clone()).unwrap_or(origin.clone()));
    }
    let pat_node = placed[CAP].clone();
    assert_ne!(pat_node, origin, "Pat is on an edge: {placed:?}");
    let pat = viewers[CAP].id;
    let at = |node: &str, not: usize| {
        (0..viewers.len())
            .find(|i| *i != not && placed[*i] == node)
            .expect("a viewer there")
    };
    let on_origin = at(&origin, CAP);
    let same_edge = at(&pat_node, CAP);
    let other = (0..viewers.len())
        .find(|i| placed[*i] != origin && placed[*i] != pat_node)
        .expect("a viewer on the other edge");

    set_role(&host, pat, "presenter");
    for i in [on_origin, same_edge, other] {
        let ok = viewers[i]
            .wait_until(Duration::from_secs(20), |s| {
                let (a, v, k) = from_edges(s);
                a > 30 && v > 30 && k > 0
            })
            .await;
        assert!(
            ok,
            "viewer on {} receives Pat: {:?}",
            placed[i],
            viewers[i].stats()
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in [on_origin, same_edge, other] {
        let s = viewers[i].stats();
        let missing: u64 = s
            .tracks
            .iter()
            .filter(|(id, _)| id.0 >= UPLINK_BASE)
            .map(|(_, t)| lost(t))
            .sum();
        assert_eq!(missing, 0, "viewer on {} lost Pat's packets", placed[i]);
    }
    let o = nodes.iter().find(|n| n.id == origin).expect("origin node");
    let e = nodes.iter().find(|n| n.id == pat_node).expect("Pat's node");
    let up_received = o.metric("confab_relay_received_packets_total ").await;
    // Resent packets (uplink repair, origin → edge `stage_resend`) are sealed once more.
    let up_resent = e.metric("confab_relay_uplink_resent_total ").await;
    let up_sent = e.metric("confab_relay_sent_packets_total ").await - up_resent;
    let up_asked = o.metric("confab_relay_uplink_repair_requests_total ").await;
    let pat_sent = viewers[CAP].stats().sent_packets as f64;
    assert!(
        up_received > 50.0,
        "origin received {up_received} from the edge"
    );
    assert!(
        up_sent <= pat_sent + 1.0,
        "the edge sent {up_sent} for {pat_sent} published: once, not per viewer"
    );
    // The origin exports its refusals of uplink datagrams by reason (none for a bad one).
    let exposition = http_get(o.http, "/metrics").await;
    assert!(
        exposition.contains("# TYPE confab_relay_uplink_dropped counter"),
        "uplink refusals not exported"
    );
    for n in &nodes {
        n.assert_relay_drops_benign(10.0).await;
    }
    let refused: Vec<&str> = exposition
        .lines()
        .filter(|l| l.starts_with("confab_relay_uplink_dropped_total"))
        .collect();
    eprintln!(
        "promote: Pat sent {pat_sent}, its edge sent up {up_sent} (+{up_resent} resent), the \
         origin received {up_received}, asked again {up_asked}, refused {refused:?} \
         (origin {origin}, Pat on {pat_node})"
    );

    // Back to the audience: Pat's media stops everywhere.
    set_role(&host, pat, "audience");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before: Vec<_> = [on_origin, same_edge, other]
        .iter()
        .map(|i| from_edges(&viewers[*i].stats()))
        .collect();
    let received = o.metric("confab_relay_received_packets_total ").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: Vec<_> = [on_origin, same_edge, other]
        .iter()
        .map(|i| from_edges(&viewers[*i].stats()))
        .collect();
    assert_eq!(before, after, "Pat's media still flows after the demotion");
    let still = o.metric("confab_relay_received_packets_total ").await;
    assert_eq!(received, still, "the uplink still carries packets");
    for v in viewers {
        let _ = v.leave().await;
    }
    let _ = host.leave().await;
}
