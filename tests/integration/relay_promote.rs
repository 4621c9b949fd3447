//! Promotion from an edge in virtual time: an origin room and two edge rooms joined by the
//! real sealed datagrams both ways (`relay_harness::Cluster::with_uplinks`); a viewer on the
//! first edge is promoted and publishes there, and its media reaches the origin's viewers and
//! the other edge's through the origin, repaired when uplink datagrams are lost.

use super::relay_harness::{assert_loss_repaired, Cluster, Loss};
use crate::common::str0m_room;
use confab::bot::{StreamShape, TrackStats};
use confab::conference::record::Credentials;
use confab::conference::{Admission, JoinRequest};
use confab::media::relay::{RelayCounters, RelayDrop, RelayId, UPLINK_BLOCK};
use confab::media::RoomConfig;
use confab::protocol::{ClientMsg, ParticipantId, Role, Source, TrackId};
use confab::sim::Sim;
use std::time::Duration;

/// What the edge session does when the origin's messages say a viewer's role changed.
fn role_from_origin(c: &mut Cluster, edge: usize, who: ParticipantId, role: Role) {
    c.edges[edge]
        .sim
        .with_conf(|conf, _| conf.relay_role(who, role));
}

/// The origin's counters of the uplink from edge 0 (the link the cluster gave id 7).
fn uplink(c: &Cluster) -> &RelayCounters {
    c.origin
        .conf
        .room
        .uplink_counters(RelayId(7))
        .expect("uplink")
}

fn tracks_of(c: &Cluster, who: ParticipantId) -> Vec<TrackId> {
    c.origin
        .conf
        .room
        .tracks()
        .filter(|t| t.participant == who)
        .map(|t| t.id)
        .collect()
}

/// What `viewer` received of `tracks`: (audio, video) stats.
fn received(sim: &Sim, viewer: ParticipantId, tracks: &[TrackId]) -> Vec<TrackStats> {
    let s = sim.stats(viewer);
    tracks
        .iter()
        .filter_map(|t| s.tracks.get(t).cloned())
        .collect()
}

fn decodes(sim: &Sim, viewer: ParticipantId, tracks: &[TrackId]) -> bool {
    let got = received(sim, viewer, tracks);
    got.len() == 2
        && got
            .iter()
            .any(|t| t.video && t.keyframes > 0 && t.packets > 30)
        && got.iter().any(|t| !t.video && t.packets > 30)
}

fn packets(sim: &Sim, viewer: ParticipantId, tracks: &[TrackId]) -> u64 {
    received(sim, viewer, tracks)
        .iter()
        .map(|t| t.packets)
        .sum()
}

fn audio_packets(sim: &Sim, viewer: ParticipantId, tracks: &[TrackId]) -> u64 {
    received(sim, viewer, tracks)
        .iter()
        .filter(|t| !t.video)
        .map(|t| t.packets)
        .sum()
}

/// The cast: a host and a viewer on the origin, a viewer on each edge, and Pat, promoted on
/// edge 0, whose tracks every viewer decodes.
struct Stage {
    host: ParticipantId,
    ov: ParticipantId,
    v1: ParticipantId,
    v2: ParticipantId,
    p: ParticipantId,
    tracks: Vec<TrackId>,
}

/// Joins the cast and promotes Pat; returns once the three viewers decode Pat.
fn stage_from_edge(c: &mut Cluster) -> Stage {
    let host = c
        .origin
        .join("host", Role::Host, true, StreamShape::default())
        .expect("host");
    let ov = c
        .origin
        .join("ov", Role::Audience, false, StreamShape::default())
        .expect("origin viewer");
    let v1 = c.edges[0]
        .sim
        .join("v1", Role::Audience, false, StreamShape::default())
        .expect("edge viewer");
    let v2 = c.edges[1]
        .sim
        .join("v2", Role::Audience, false, StreamShape::default())
        .expect("other edge's viewer");
    let shape = StreamShape {
        // Only a request can produce a keyframe after the first: each viewer's first one
        // proves the requests reach the edge's publisher.
        keyframe_interval: Duration::from_secs(3600),
        // Loud (the host is silent): the origin's active speaker comes from the uplink.
        audio_level: 20,
        ..StreamShape::default()
    };
    let p = c.edges[0]
        .sim
        .join("pat", Role::Audience, false, shape)
        .expect("pat joins the edge");
    // The origin admitted Pat as served elsewhere, under the same id.
    let request = JoinRequest {
        id: p,
        name: "pat".into(),
        credentials: Credentials {
            token_role: Some(Role::Audience),
            key: None,
            asked: None,
        },
        identity: "pat".into(),
        mode: None,
        password: None,
    };
    let admitted = c
        .origin
        .with_conf(|conf, now| conf.join_elsewhere(request, now));
    assert!(matches!(admitted, Admission::Joined), "{admitted:?}");
    c.run_for(Duration::from_secs(1));
    assert!(
        tracks_of(c, p).is_empty(),
        "an audience member publishes nothing"
    );

    // The host promotes Pat at the origin; the edge learns it from the origin's message.
    c.origin.client_msg(
        host,
        ClientMsg::SetRole {
            participant: p,
            role: Role::Presenter,
        },
    );
    role_from_origin(c, 0, p, Role::Presenter);
    c.edges[0].sim.start_publishing(p);
    let published = c.run_until(Duration::from_secs(3), |c| tracks_of(c, p).len() == 2);
    assert!(
        published,
        "{:?}",
        c.origin.conf.room.tracks().collect::<Vec<_>>()
    );
    let tracks = tracks_of(c, p);
    let block = c.edges[0].first..c.edges[0].first + UPLINK_BLOCK;
    assert!(tracks.iter().all(|t| block.contains(&t.0)), "{tracks:?}");
    // The origin's viewer, the other edge's and Pat's own edge's all decode Pat.
    let ok = c.run_until(Duration::from_secs(10), |c| {
        decodes(&c.origin, ov, &tracks)
            && decodes(&c.edges[1].sim, v2, &tracks)
            && decodes(&c.edges[0].sim, v1, &tracks)
    });
    assert!(
        ok,
        "origin {:?} other edge {:?} own edge {:?} uplink {:?}",
        received(&c.origin, ov, &tracks),
        received(&c.edges[1].sim, v2, &tracks),
        received(&c.edges[0].sim, v1, &tracks),
        c.origin.conf.room.uplink_counters(RelayId(7)),
    );
    Stage {
        host,
        ov,
        v1,
        v2,
        p,
        tracks,
    }
}

#[test]
fn an_edge_viewer_promoted_to_the_stage_publishes_from_the_edge() {
    let mut c = Cluster::with_uplinks(RoomConfig::default(), 2);
    let Stage {
        host,
        ov,
        v1,
        v2,
        p,
        tracks,
    } = stage_from_edge(&mut c);
    let block = c.edges[0].first..c.edges[0].first + UPLINK_BLOCK;
    c.run_for(Duration::from_secs(2));
    for (sim, viewer) in [
        (&c.origin, ov),
        (&c.edges[1].sim, v2),
        (&c.edges[0].sim, v1),
    ] {
        for t in received(sim, viewer, &tracks) {
            assert_eq!(t.lost(), 0, "{t:?}");
        }
    }
    let up = uplink(&c).clone();
    assert!(up.packets > 100, "{up:?}");
    assert_eq!(up.dropped.iter().sum::<u64>(), 0, "{up:?}");
    // Pat's tracks crossed to the other edge and never back to Pat's own.
    assert!(tracks.iter().all(|t| c.edges[1].crossed.contains(t)));
    assert!(
        c.edges[0].crossed.iter().all(|t| !block.contains(&t.0)),
        "{:?}",
        c.edges[0].crossed
    );
    // The origin hears Pat speak.
    assert!(c.run_until(Duration::from_secs(3), |c| {
        c.origin.conf.room.dominant_speaker() == Some(p)
    }));
    eprintln!(
        "promote: uplink {} datagrams, {} bytes; keyframe requests to the edge {}",
        up.packets, up.bytes, c.edges[0].uplink_keyframes
    );

    // A late origin viewer gets a keyframe through origin → edge → Pat.
    let asked = c.edges[0].uplink_keyframes;
    let requests = c.edges[0].sim.stats(p).keyframe_requests;
    let late = c
        .origin
        .join("late", Role::Audience, false, StreamShape::default())
        .expect("late viewer");
    let joined_at = c.origin.now;
    let ok = c.run_until(Duration::from_secs(3), |c| {
        received(&c.origin, late, &tracks)
            .iter()
            .any(|t| t.video && t.keyframes > 0)
    });
    assert!(ok, "no keyframe: {:?}", received(&c.origin, late, &tracks));
    let took = c.origin.now - joined_at;
    assert!(
        took < Duration::from_millis(1500),
        "keyframe after {took:?}"
    );
    assert!(
        c.edges[0].uplink_keyframes > asked,
        "the origin asked the edge"
    );
    assert!(c.edges[0].sim.stats(p).keyframe_requests > requests);

    // A host mutes Pat's microphone: it stops everywhere, Pat's own edge included.
    c.origin.client_msg(
        host,
        ClientMsg::MuteParticipant {
            participant: p,
            source: Source::Microphone,
        },
    );
    // What the edge session does on the origin's `track_muted` (forced) for Pat.
    c.edges[0]
        .sim
        .with_room(|r, _| r.force_mute(p, Source::Microphone));
    c.run_for(Duration::from_millis(200));
    let before = [
        audio_packets(&c.origin, ov, &tracks),
        audio_packets(&c.edges[1].sim, v2, &tracks),
        audio_packets(&c.edges[0].sim, v1, &tracks),
    ];
    c.run_for(Duration::from_secs(1));
    let after = [
        audio_packets(&c.origin, ov, &tracks),
        audio_packets(&c.edges[1].sim, v2, &tracks),
        audio_packets(&c.edges[0].sim, v1, &tracks),
    ];
    assert_eq!(before, after, "muted audio still flows");

    // Demoted: the tracks go everywhere and nothing crosses any more.
    c.origin.client_msg(
        host,
        ClientMsg::SetRole {
            participant: p,
            role: Role::Audience,
        },
    );
    assert!(
        tracks_of(&c, p).is_empty(),
        "the origin unpublished at once"
    );
    role_from_origin(&mut c, 0, p, Role::Audience);
    c.run_for(Duration::from_millis(500));
    let sent = uplink(&c).clone();
    c.run_for(Duration::from_secs(1));
    let now = uplink(&c);
    assert_eq!(now.packets, sent.packets, "the uplink stopped");
    assert!(c.edges[0].sim.conf.room.uplink_local_tracks().is_empty());
    for e in &c.edges {
        assert!(e.sim.conf.room.tracks().all(|t| t.participant != p));
    }
    let v2_video = received(&c.edges[1].sim, v2, &tracks);
    c.run_for(Duration::from_millis(500));
    assert_eq!(
        received(&c.edges[1].sim, v2, &tracks)
            .iter()
            .map(|t| t.packets)
            .sum::<u64>(),
        v2_video.iter().map(|t| t.packets).sum::<u64>()
    );
}

#[test]
fn uplink_loss_is_repaired_from_the_edge() {
    uplink_loss_is_repaired(RoomConfig::default());
}

#[test]
fn uplink_loss_is_repaired_on_the_str0m_send_path_too() {
    uplink_loss_is_repaired(str0m_room());
}

fn uplink_loss_is_repaired(config: RoomConfig) {
    let mut c = Cluster::with_uplinks(config, 2);
    let Stage {
        ov, v1, v2, tracks, ..
    } = stage_from_edge(&mut c);
    c.run_for(Duration::from_secs(1));
    let got = [
        packets(&c.origin, ov, &tracks),
        packets(&c.edges[1].sim, v2, &tracks),
    ];
    // From now on, 5 % of the uplink datagrams (seeded) are lost between edge 0 and the
    // origin; the origin → edge direction loses nothing.
    c.up_loss = Some(Loss::new(5, 0x9E37_79B9_7F4A_7C15));
    c.run_for(Duration::from_secs(8));
    c.up_loss = None;
    // The last repairs land.
    c.run_for(Duration::from_millis(300));
    let up = uplink(&c).clone();
    let edge_up = c.edges[0]
        .sim
        .conf
        .room
        .relay_counters(c.edges[0].up)
        .expect("the edge's uplink peer")
        .clone();
    let e = &c.edges[0];
    assert_loss_repaired("uplink", &edge_up, &up, e.up_lost);
    // A resent copy may be lost too and is asked again: each loss costs one more ask.
    assert_eq!(up.repair_requests, e.up_lost, "{up:?}");
    assert_eq!(up.repair_requests, e.uplink_resends_asked);
    assert!(up.repaired > 0 && up.repaired <= edge_up.resent);
    assert_eq!(up.duplicates, 0, "{up:?}");
    // Nothing refused, a resent copy included: each was sealed under a fresh index (a reused
    // one would count as `replayed`).
    assert_eq!(up.dropped(RelayDrop::Replayed), 0, "{up:?}");
    // What crossed is what the edge sent, less what was lost.
    assert_eq!(e.up_crossed + e.up_lost, edge_up.packets);
    // The downlinks lost nothing: Pat's edge asked the origin for nothing. The other edge saw
    // the uplink's gaps in Pat's numbers and asked too; the origin's late repaired copy is
    // what filled them there (it had nothing to reseal yet), with nothing refused or twice.
    assert_eq!(e.resends_asked, 0);
    let other = c.edges[1]
        .sim
        .conf
        .room
        .relay_edge_counters()
        .expect("edge")
        .clone();
    eprintln!(
        "the other edge asked {} numbers again, {} repaired",
        c.edges[1].resends_asked, other.repaired
    );
    assert_eq!(other.dropped.iter().sum::<u64>(), 0, "{other:?}");
    assert_eq!(other.duplicates, 0, "{other:?}");
    // The origin's viewer and the other edge's got every packet of Pat's, through the loss.
    for (sim, viewer) in [(&c.origin, ov), (&c.edges[1].sim, v2), (&e.sim, v1)] {
        for t in received(sim, viewer, &tracks) {
            assert_eq!(t.lost(), 0, "{viewer}: {t:?}");
        }
    }
    let after = [
        packets(&c.origin, ov, &tracks),
        packets(&c.edges[1].sim, v2, &tracks),
    ];
    assert!(
        after[0] > got[0] + 300 && after[1] > got[1] + 300,
        "{got:?} → {after:?}"
    );
}
