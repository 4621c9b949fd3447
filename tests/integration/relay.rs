//! The cross-node relay in virtual time: an origin room with a publisher feeding an edge room
//! of viewers over an in-memory link that carries the real sealed datagrams, the track
//! announcements, and the edge's layer needs and keyframe requests back
//! (`relay_harness::Cluster::cascade`).

use super::relay_harness::{assert_loss_repaired, Cluster, Loss};
use confab::bot::{StreamShape, TrackStats};
use confab::media::config::SendPath;
use confab::media::relay::{LayerSet, RelayDrop, RelayId};
use confab::media::RoomConfig;
use confab::protocol::{ClientMsg, Kind, ParticipantId, Role, ServerMsg, Source, TrackId};
use confab::sim::Sim;
use std::collections::BTreeMap;
use std::time::Duration;

/// The harness's first (here only) link.
const LINK: RelayId = RelayId(7);

fn video(sim: &Sim, id: ParticipantId) -> Option<TrackStats> {
    sim.stats(id).tracks.into_values().find(|t| t.video)
}

fn decodes(sim: &Sim, id: ParticipantId) -> bool {
    let s = sim.stats(id);
    let video = s
        .tracks
        .values()
        .any(|t| t.video && t.keyframes > 0 && t.packets > 10);
    let audio = s.tracks.values().any(|t| !t.video && t.packets > 10);
    video && audio
}

fn simulcast() -> StreamShape {
    StreamShape {
        simulcast: true,
        delta_bytes: 4000,
        keyframe_bytes: 12000,
        // Loud: the edge's dominant speaker comes from the relayed audio levels.
        audio_level: 20,
        ..StreamShape::default()
    }
}

fn viewers(c: &mut Cluster, n: usize, prefix: &str) -> Vec<ParticipantId> {
    (0..n)
        .map(|i| {
            c.edges[0]
                .sim
                .join(
                    &format!("{prefix}{i}"),
                    Role::Audience,
                    false,
                    StreamShape::default(),
                )
                .expect("viewer joins the edge")
        })
        .collect()
}

#[test]
fn every_edge_viewer_decodes_and_each_packet_crosses_once() {
    let mut c = Cluster::cascade(RoomConfig::default());
    let publisher = c
        .origin
        .join("stage", Role::Presenter, true, simulcast())
        .expect("join");
    let ids = viewers(&mut c, 6, "v");
    let ok = c.run_until(Duration::from_secs(10), |c| {
        ids.iter().all(|id| decodes(&c.edges[0].sim, *id))
    });
    assert!(
        ok,
        "{:?} {:?}",
        ids.iter()
            .map(|i| c.edges[0].sim.stats(*i))
            .collect::<Vec<_>>(),
        c.edges[0].sim.conf.room.relay_edge_counters()
    );
    c.run_for(Duration::from_secs(1));
    // Measured over two seconds of steady state.
    let sent0 = c.relay_sent(LINK);
    let rtp_in0 = c.origin.conf.room.counters().rtp_in;
    let forwarded0 = c.edges[0].sim.conf.room.counters().rtp_forwarded;
    let crossed0 = c.edges[0].video_crossed;
    c.run_for(Duration::from_secs(2));
    let sent = c.relay_sent(LINK) - sent0;
    let rtp_in = c.origin.conf.room.counters().rtp_in - rtp_in0;
    let forwarded = c.edges[0].sim.conf.room.counters().rtp_forwarded - forwarded0;
    let received = c.edges[0]
        .sim
        .conf
        .room
        .relay_edge_counters()
        .expect("edge")
        .packets;
    assert!(sent > 200, "{sent}");
    // Once per edge: never more than the publisher sent, whatever the number of viewers…
    assert!(sent <= rtp_in, "sent {sent} of {rtp_in}");
    // …and every relayed packet reached every viewer (audio, and the one layer they watch).
    assert!(
        forwarded >= sent * ids.len() as u64 * 95 / 100,
        "forwarded {forwarded} of {sent} × {}",
        ids.len()
    );
    assert_eq!(
        received,
        c.relay_sent(LINK),
        "the in-memory link loses nothing"
    );
    // Full-size tiles want the top layer only: the lower ones stay on the origin.
    assert_eq!(c.edges[0].video_crossed[0] - crossed0[0], 0);
    assert_eq!(c.edges[0].video_crossed[1] - crossed0[1], 0);
    assert!(c.edges[0].video_crossed[2] - crossed0[2] > 50);
    // The origin's publisher was asked for that layer alone (no local viewer needs more).
    assert_eq!(told_publisher(&c.origin, publisher), Some(vec!["f".into()]));
    eprintln!(
        "relay: 2 s, {} viewers: publisher packets in {rtp_in}, relayed {sent}, \
         forwarded on the edge {forwarded}",
        ids.len()
    );
    for id in &ids {
        for t in c.edges[0].sim.stats(*id).tracks.values() {
            assert_eq!(t.lost(), 0, "{t:?}");
        }
    }
    // Speaking is heard through the relay: the edge's dominant speaker is the origin's
    // publisher.
    assert!(c.run_until(Duration::from_secs(3), |c| {
        c.edges[0].sim.conf.room.dominant_speaker() == Some(publisher)
    }));
    // A datagram for another link, or garbage, is counted and dropped.
    let mut bogus = vec![0u8; 120];
    bogus[3] = 8;
    c.edges[0]
        .sim
        .with_room(|r, now| r.handle_relay_datagram(&bogus, now));
    c.edges[0]
        .sim
        .with_room(|r, now| r.handle_relay_datagram(&[1, 2, 3], now));
    let edge = c.edges[0]
        .sim
        .conf
        .room
        .relay_edge_counters()
        .expect("edge");
    assert_eq!(edge.dropped(RelayDrop::UnknownLink), 1);
    assert_eq!(edge.dropped(RelayDrop::Malformed), 1);
}

fn video_track(sim: &Sim, viewer: ParticipantId) -> TrackId {
    sim.signals(viewer)
        .iter()
        .find_map(|m| match m {
            ServerMsg::TrackPublished { track } if track.kind == Kind::Video => Some(track.id),
            ServerMsg::Joined { tracks, .. } => {
                tracks.iter().find(|t| t.kind == Kind::Video).map(|t| t.id)
            }
            _ => None,
        })
        .expect("video announced on the edge")
}

fn told_publisher(sim: &Sim, publisher: ParticipantId) -> Option<Vec<String>> {
    sim.signals(publisher).iter().rev().find_map(|m| match m {
        ServerMsg::PublishLayers { active, .. } => Some(active.clone()),
        _ => None,
    })
}

#[test]
fn layer_needs_flow_to_the_origin_and_its_publisher() {
    let mut c = Cluster::cascade(RoomConfig::default());
    let publisher = c
        .origin
        .join("stage", Role::Presenter, true, simulcast())
        .expect("join");
    let small = viewers(&mut c, 1, "small")[0];
    c.run_for(Duration::from_millis(500));
    let track = video_track(&c.edges[0].sim, small);
    c.edges[0].sim.client_msg(
        small,
        ClientMsg::VideoSizes {
            sizes: BTreeMap::from([(track, 120)]),
        },
    );
    let low = c.run_until(Duration::from_secs(5), |c| {
        video(&c.edges[0].sim, small).and_then(|t| t.last_layer) == Some(0)
    });
    assert!(low, "{:?}", video(&c.edges[0].sim, small));
    c.run_for(Duration::from_secs(1));
    // The edge asked for the low layer only, the origin's publisher encodes only it, and only
    // it crosses.
    assert_eq!(
        c.edges[0].needs_sent.last(),
        Some(&vec![(track, LayerSet::from_iter([0]))])
    );
    assert_eq!(told_publisher(&c.origin, publisher), Some(vec!["q".into()]));
    let crossed = c.edges[0].video_crossed;
    c.run_for(Duration::from_secs(1));
    assert!(c.edges[0].video_crossed[0] > crossed[0] + 20);
    assert_eq!(c.edges[0].video_crossed[1], crossed[1]);
    assert_eq!(c.edges[0].video_crossed[2], crossed[2]);
    // A large-tile viewer arrives on the edge: the full layer is asked of the origin.
    let big = viewers(&mut c, 1, "big")[0];
    let full = c.run_until(Duration::from_secs(5), |c| {
        video(&c.edges[0].sim, big).and_then(|t| t.last_layer) == Some(2)
    });
    assert!(
        full,
        "{:?} {:?}",
        video(&c.edges[0].sim, big),
        c.edges[0].needs_sent
    );
    assert_eq!(
        c.edges[0].needs_sent.last(),
        Some(&vec![(track, LayerSet::from_iter([0, 2]))])
    );
    assert_eq!(
        told_publisher(&c.origin, publisher),
        Some(vec!["f".into(), "q".into()])
    );
    assert_eq!(
        video(&c.edges[0].sim, small).and_then(|t| t.last_layer),
        Some(0),
        "the small tile keeps its layer"
    );
    // Both viewers leave: nothing is needed, and no video crosses any more.
    c.edges[0].sim.leave(small);
    c.edges[0].sim.leave(big);
    c.run_for(Duration::from_secs(1));
    let crossed = c.edges[0].video_crossed;
    c.run_for(Duration::from_secs(1));
    assert_eq!(
        c.edges[0].video_crossed,
        crossed,
        "{:?}",
        c.edges[0].needs_sent.last()
    );
}

#[test]
fn late_edge_viewer_gets_a_keyframe_through_the_origin() {
    let shape = StreamShape {
        // Only a request can produce a keyframe after the first.
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    };
    let mut c = Cluster::cascade(RoomConfig::default());
    let publisher = c
        .origin
        .join("stage", Role::Presenter, true, shape)
        .expect("join");
    let early = viewers(&mut c, 1, "early")[0];
    assert!(c.run_until(Duration::from_secs(5), |c| decodes(&c.edges[0].sim, early)));
    c.run_for(Duration::from_secs(3));
    let asked = c.edges[0].keyframes_asked;
    let requests = c.origin.stats(publisher).keyframe_requests;
    let late = viewers(&mut c, 1, "late")[0];
    let joined_at = c.edges[0].sim.now;
    let ok = c.run_until(Duration::from_secs(3), |c| {
        video(&c.edges[0].sim, late).is_some_and(|t| t.keyframes > 0)
    });
    assert!(ok, "no keyframe: {:?}", c.edges[0].sim.stats(late));
    let took = c.edges[0].sim.now - joined_at;
    assert!(
        took < Duration::from_millis(1500),
        "first keyframe after {took:?}"
    );
    assert!(
        c.edges[0].keyframes_asked > asked,
        "the edge asked the origin"
    );
    assert!(
        c.origin.stats(publisher).keyframe_requests > requests,
        "the origin asked its publisher"
    );
    assert!(c.run_until(Duration::from_secs(2), |c| decodes(&c.edges[0].sim, late)));
    // The publisher mutes its microphone: the edge's track says so too (`carry` compares).
    c.origin.client_msg(
        publisher,
        ClientMsg::Mute {
            source: Source::Microphone,
            muted: true,
        },
    );
    c.run_for(Duration::from_millis(100));
    assert!(c.edges[0]
        .sim
        .conf
        .room
        .tracks()
        .any(|t| t.kind == Kind::Audio && t.muted));
}

#[test]
fn relay_loss_is_repaired_from_the_origin() {
    loss_is_repaired(RoomConfig::default());
}

#[test]
fn relay_loss_is_repaired_on_the_str0m_send_path_too() {
    loss_is_repaired(RoomConfig {
        send_path: SendPath::Str0m,
        ..RoomConfig::default()
    });
}

fn loss_is_repaired(config: RoomConfig) {
    let shape = StreamShape {
        // Keyframes come only on request: a late viewer's must be asked through the origin.
        keyframe_interval: Duration::from_secs(3600),
        ..simulcast()
    };
    let mut c = Cluster::cascade(config);
    let publisher = c
        .origin
        .join("stage", Role::Presenter, true, shape)
        .expect("join");
    let ids = viewers(&mut c, 4, "v");
    assert!(c.run_until(Duration::from_secs(10), |c| {
        ids.iter().all(|id| decodes(&c.edges[0].sim, *id))
    }));
    c.run_for(Duration::from_secs(1));
    // From now on, 5 % of the relay datagrams (seeded) are lost between the nodes.
    c.down_loss = Some(Loss::new(5, 0x9E37_79B9_7F4A_7C15));
    c.run_for(Duration::from_secs(2));
    // A viewer arriving under loss still gets a keyframe through the edge → origin request.
    let requests = c.origin.stats(publisher).keyframe_requests;
    let late = viewers(&mut c, 1, "late")[0];
    assert!(
        c.run_until(Duration::from_secs(3), |c| decodes(&c.edges[0].sim, late)),
        "{:?}",
        c.edges[0].sim.stats(late)
    );
    assert!(c.origin.stats(publisher).keyframe_requests > requests);
    c.run_for(Duration::from_secs(2));
    c.down_loss = None;
    // The last repairs land.
    c.run_for(Duration::from_millis(300));
    let origin = c
        .origin
        .conf
        .room
        .relay_counters(LINK)
        .expect("link")
        .clone();
    let edge = c.edges[0]
        .sim
        .conf
        .room
        .relay_edge_counters()
        .expect("edge")
        .clone();
    assert_loss_repaired("relay", &origin, &edge, c.edges[0].down_lost);
    assert_eq!(edge.repair_requests, c.edges[0].resends_asked);
    // The viewers that were watching before the loss began have no gap in any track.
    for id in &ids {
        let s = c.edges[0].sim.stats(*id);
        for t in s.tracks.values() {
            assert_eq!(t.lost(), 0, "{id}: {t:?}");
            assert!(t.packets > 200, "{t:?}");
        }
    }
    // And the edge's counters reach the metrics names the node layer exports.
    assert!(edge.repaired > 0 && origin.resent > 0);
}
