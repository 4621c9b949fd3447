//! Promotion from an edge in virtual time: an origin room and two edge rooms joined by the
//! real sealed datagrams both ways; a viewer on the first edge is promoted and publishes
//! there, and its media reaches the origin's viewers and the other edge's through the origin.
//! The test plays the node layer (`server::relay_room`, `cluster::edge`) as in `relay.rs`.

use confab::bot::{StreamShape, TrackStats};
use confab::conference::record::Credentials;
use confab::conference::{Admission, JoinRequest};
use confab::media::relay::wire::RelayOpener;
use confab::media::relay::{RelayEvent, RelayId, RelayKey, RelayTrack, UPLINK_BLOCK};
use confab::media::RoomConfig;
use confab::protocol::{ClientMsg, ParticipantId, Role, Source, TrackId};
use confab::sim::Sim;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// The origin's relay socket, where uplink datagrams go.
const ORIGIN_RELAY: ([u8; 4], u16) = ([10, 0, 0, 9], 9000);

struct Edge {
    sim: Sim,
    link: RelayId,
    up: RelayId,
    addr: SocketAddr,
    /// The block of track ids the origin gave it.
    first: u64,
    /// Opens what the origin sends it: which tracks crossed.
    tap: RelayOpener,
    crossed: BTreeSet<TrackId>,
    /// The local tracks last told to the origin.
    told: Vec<RelayTrack>,
}

struct Cluster {
    origin: Sim,
    edges: Vec<Edge>,
    /// Keyframe requests the origin sent an edge for its own tracks.
    uplink_keyframes: u64,
}

impl Cluster {
    fn new() -> Self {
        let mut origin = Sim::new(RoomConfig::default());
        let mut edges = vec![];
        for (i, (link, up)) in [(7u32, 70u32), (8, 80)].into_iter().enumerate() {
            let mut sim = Sim::new(RoomConfig::default());
            sim.start_ids_at(1000 * (i as u64 + 1));
            let salt = [i as u8 + 1; 16];
            let edge_id = format!("edge-{i}");
            let key = RelayKey::derive(b"cluster secret", &salt, "sim", &edge_id);
            let up_key = RelayKey::derive_uplink(b"cluster secret", &salt, "sim", &edge_id);
            let addr: SocketAddr = ([10, 0, 0, 2 + i as u8], 10001).into();
            let source = origin.server_addr();
            origin
                .with_room(|r, now| r.add_relay(RelayId(link), &key, source, addr, now))
                .expect("relay added");
            let first = origin
                .with_room(|r, now| r.uplink_attach(RelayId(link), up, &up_key, now))
                .expect("uplink attached");
            sim.with_room(|r, _| r.relay_attach(RelayId(link), &key))
                .expect("edge attached");
            let from = sim.server_addr();
            sim.with_room(|r, now| {
                r.uplink_start(RelayId(up), first, &up_key, from, ORIGIN_RELAY.into(), now)
            })
            .expect("uplink started");
            edges.push(Edge {
                sim,
                link: RelayId(link),
                up: RelayId(up),
                addr,
                first,
                tap: RelayOpener::new(link, &key).expect("opener"),
                crossed: BTreeSet::new(),
                told: vec![],
            });
        }
        assert_ne!(edges[0].first, edges[1].first, "each link its own block");
        Cluster {
            origin,
            edges,
            uplink_keyframes: 0,
        }
    }

    /// What the node layer does, both ways.
    fn carry(&mut self) {
        let origin = &mut self.origin;
        while origin.conf.room.poll_relay_announce().is_some() {}
        for e in &mut self.edges {
            // Each edge hears of every track but its own.
            let list = origin.conf.room.relay_tracks_for(e.link);
            let link = e.link;
            origin.with_room(|r, _| r.relay_told(link, &list));
            let ids: Vec<TrackId> = list.iter().map(|t| t.info.id).collect();
            for t in list {
                assert!(e.sim.with_room(|r, now| r.relay_track_added(t, now)));
            }
            let gone: Vec<TrackId> = e
                .sim
                .conf
                .room
                .tracks()
                .filter(|t| !ids.contains(&t.id))
                .map(|t| t.id)
                .collect();
            for t in gone {
                e.sim.with_room(|r, now| r.relay_track_removed(t, now));
            }
            let local = e.sim.conf.room.uplink_local_tracks();
            if local != e.told {
                let (link, tracks) = (e.link, local.clone());
                let refused = origin.with_conf(|c, now| c.stage_uplink(link, tracks, now));
                assert_eq!(refused, 0, "{local:?}");
                e.told = local;
            }
        }
        for (to, d) in origin.take_foreign() {
            let e = self
                .edges
                .iter_mut()
                .find(|e| e.addr == to)
                .expect("relay datagrams go to edges only");
            let (p, _) = e.tap.open(&d).expect("a well-formed relay datagram");
            e.crossed.insert(p.track);
            e.sim.with_room(|r, now| r.handle_link_datagram(&d, now));
        }
        for e in &mut self.edges {
            for (to, d) in e.sim.take_foreign() {
                assert_eq!(to, ORIGIN_RELAY.into(), "uplink datagrams go to the origin");
                origin.with_room(|r, now| r.handle_link_datagram(&d, now));
            }
            while let Some(ev) = e.sim.conf.room.poll_relay_event() {
                let link = e.link;
                match ev {
                    RelayEvent::Needs { needs } => {
                        origin.with_room(|r, now| r.relay_needs(link, &needs, now))
                    }
                    RelayEvent::Keyframe { track, layer } => {
                        origin.with_room(|r, now| r.relay_keyframe(link, track, layer, now))
                    }
                    RelayEvent::Resend { track, layer, seqs } => {
                        origin.with_room(|r, now| r.relay_resend(link, track, layer, &seqs, now))
                    }
                }
            }
        }
        while let Some((link, ev)) = origin.conf.room.poll_uplink_event() {
            let e = self
                .edges
                .iter_mut()
                .find(|e| e.link == link)
                .expect("a known link");
            let up = e.up;
            match ev {
                RelayEvent::Needs { needs } => {
                    e.sim.with_room(|r, now| r.relay_needs(up, &needs, now))
                }
                RelayEvent::Keyframe { track, layer } => {
                    self.uplink_keyframes += 1;
                    e.sim
                        .with_room(|r, now| r.relay_keyframe(up, track, layer, now))
                }
                RelayEvent::Resend { .. } => panic!("the uplink asks for no repair"),
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let step = Duration::from_millis(5);
        let mut done = Duration::ZERO;
        while done < d {
            self.origin.run_for(step);
            self.carry();
            for i in 0..self.edges.len() {
                self.edges[i].sim.run_for(step);
                self.carry();
            }
            done += step;
        }
    }

    fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Cluster) -> bool) -> bool {
        let mut waited = Duration::ZERO;
        while waited < limit {
            if pred(self) {
                return true;
            }
            self.run_for(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        }
        pred(self)
    }

    /// What the edge session does when the origin's messages say a viewer's role changed.
    fn role_from_origin(&mut self, edge: usize, who: ParticipantId, role: Role) {
        self.edges[edge]
            .sim
            .with_conf(|c, _| c.relay_role(who, role));
    }

    fn tracks_of(&self, who: ParticipantId) -> Vec<TrackId> {
        self.origin
            .conf
            .room
            .tracks()
            .filter(|t| t.participant == who)
            .map(|t| t.id)
            .collect()
    }
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

fn audio_packets(sim: &Sim, viewer: ParticipantId, tracks: &[TrackId]) -> u64 {
    received(sim, viewer, tracks)
        .iter()
        .filter(|t| !t.video)
        .map(|t| t.packets)
        .sum()
}

#[test]
fn an_edge_viewer_promoted_to_the_stage_publishes_from_the_edge() {
    let mut c = Cluster::new();
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
        c.tracks_of(p).is_empty(),
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
    c.role_from_origin(0, p, Role::Presenter);
    c.edges[0].sim.start_publishing(p);
    let published = c.run_until(Duration::from_secs(3), |c| c.tracks_of(p).len() == 2);
    assert!(
        published,
        "{:?}",
        c.origin.conf.room.tracks().collect::<Vec<_>>()
    );
    let tracks = c.tracks_of(p);
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
    let up = c
        .origin
        .conf
        .room
        .uplink_counters(RelayId(7))
        .expect("uplink")
        .clone();
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
        up.packets, up.bytes, c.uplink_keyframes
    );

    // A late origin viewer gets a keyframe through origin → edge → Pat.
    let asked = c.uplink_keyframes;
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
    assert!(c.uplink_keyframes > asked, "the origin asked the edge");
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
    assert!(c.tracks_of(p).is_empty(), "the origin unpublished at once");
    c.role_from_origin(0, p, Role::Audience);
    c.run_for(Duration::from_millis(500));
    let sent = c
        .origin
        .conf
        .room
        .uplink_counters(RelayId(7))
        .expect("uplink")
        .clone();
    c.run_for(Duration::from_secs(1));
    let now = c
        .origin
        .conf
        .room
        .uplink_counters(RelayId(7))
        .expect("uplink");
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
