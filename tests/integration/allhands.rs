//! All-hands behaviour in virtual time: simulcast layer choice under bandwidth limits, switches
//! on keyframes only, paused layers resumed on demand, dominant speaker.

use confab::bot::{StreamShape, TrackStats};
use confab::media::RoomConfig;
use confab::protocol::{ClientMsg, ParticipantId, Role, ServerMsg, TrackId};
use confab::sim::{Link, Sim};
use std::collections::BTreeMap;
use std::time::Duration;

fn simulcast_shape() -> StreamShape {
    StreamShape {
        simulcast: true,
        // Full layer ≈ 1 Mbit/s, half ≈ 330 kbit/s, quarter ≈ 125 kbit/s.
        delta_bytes: 4000,
        keyframe_bytes: 12000,
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    }
}

fn video(sim: &Sim, id: ParticipantId) -> Option<TrackStats> {
    sim.stats(id).tracks.into_values().find(|t| t.video)
}

fn last_layer(sim: &Sim, id: ParticipantId) -> Option<u8> {
    video(sim, id).and_then(|t| t.last_layer)
}

fn video_track(sim: &Sim, viewer: ParticipantId) -> TrackId {
    let video = confab::protocol::Kind::Video;
    sim.signals(viewer)
        .iter()
        .find_map(|m| match m {
            ServerMsg::TrackPublished { track } if track.kind == video => Some(track.id),
            ServerMsg::Joined { tracks, .. } => {
                tracks.iter().find(|t| t.kind == video).map(|t| t.id)
            }
            _ => None,
        })
        .expect("video published")
}

/// A room with a simulcast publisher and one viewer that only receives.
fn publisher_and_viewer(viewer: &str) -> (Sim, ParticipantId, ParticipantId) {
    publisher_and_viewer_in(viewer, RoomConfig::default())
}

fn publisher_and_viewer_in(
    viewer: &str,
    config: RoomConfig,
) -> (Sim, ParticipantId, ParticipantId) {
    let mut sim = Sim::new(config);
    let publisher = sim
        .join("pub", Role::Presenter, true, simulcast_shape())
        .expect("join");
    let viewer = sim
        .join(viewer, Role::Presenter, false, StreamShape::default())
        .expect("join");
    (sim, publisher, viewer)
}

#[test]
fn capped_subscriber_drops_to_low_layer_and_recovers() {
    capped_subscriber(RoomConfig::default());
}

/// str0m's own estimator and pacer, the old path's, drive the same layer choice.
#[test]
fn capped_subscriber_drops_and_recovers_on_the_str0m_path() {
    capped_subscriber(crate::common::str0m_room());
}

fn capped_subscriber(config: RoomConfig) {
    let (mut sim, publisher, viewer) = publisher_and_viewer_in("hotel", config);
    // Unlimited: the viewer (no size reported) gets the full layer.
    assert!(
        sim.run_until(Duration::from_secs(10), |s| last_layer(s, viewer)
            == Some(2)),
        "{:?}",
        video(&sim, viewer)
    );
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        last_layer(&sim, viewer),
        Some(2),
        "steady on the full layer"
    );
    // The hotel network: 300 kbit/s.
    let capped = Link {
        rate_bps: Some(300_000),
        ..Link::default()
    };
    sim.set_links(viewer, Link::default(), capped);
    let capped_at = sim.now;
    assert!(
        sim.run_until(Duration::from_secs(6), |s| last_layer(s, viewer) == Some(0)),
        "never dropped to the low layer: {:?} {:?} {:?} estimate {:?}",
        sim.signals(publisher)
            .iter()
            .filter(|m| matches!(m, ServerMsg::PublishLayers { .. }))
            .collect::<Vec<_>>(),
        video(&sim, viewer).map(|t| (t.layer_packets, t.switches())),
        sim.conf.room.counters(),
        sim.server_estimate(viewer)
    );
    let took = sim.now - capped_at;
    assert!(took <= Duration::from_secs(2), "moved down after {took:?}");
    // Audio keeps flowing at the low rate.
    let audio = |sim: &Sim| -> u64 {
        let stats = sim.stats(viewer);
        stats
            .tracks
            .values()
            .filter(|t| !t.video)
            .map(|t| t.packets)
            .sum()
    };
    let audio_before = audio(&sim);
    sim.run_for(Duration::from_secs(2));
    let audio_after = audio(&sim);
    assert!(
        audio_after >= audio_before + 80,
        "audio starved: {audio_before} → {audio_after}"
    );
    // The cap lifts: quality comes back within seconds.
    sim.set_links(viewer, Link::default(), Link::default());
    assert!(
        sim.run_until(Duration::from_secs(15), |s| last_layer(s, viewer)
            == Some(2)),
        "never came back up: {:?}",
        video(&sim, viewer).map(|t| (t.layer_packets, t.switches()))
    );
    // Every switch the viewer saw began on a keyframe.
    let switches = video(&sim, viewer).expect("video").switches();
    assert!(switches.len() >= 2, "{switches:?}");
    assert!(switches.iter().all(|(_, _, key)| *key), "{switches:?}");
}

#[test]
fn small_tile_gets_low_layer_and_unwatched_layers_pause_then_resume() {
    let (mut sim, publisher, small) = publisher_and_viewer("small");
    sim.run_for(Duration::from_millis(500));
    let track = video_track(&sim, small);
    sim.client_msg(
        small,
        ClientMsg::VideoSizes {
            sizes: BTreeMap::from([(track, 120)]),
        },
    );
    assert!(sim.run_until(Duration::from_secs(5), |s| last_layer(s, small) == Some(0)));
    // The publisher was told to encode only the low layer.
    let told = |sim: &Sim| -> Option<Vec<String>> {
        sim.signals(publisher).iter().rev().find_map(|m| match m {
            ServerMsg::PublishLayers { active, .. } => Some(active.clone()),
            _ => None,
        })
    };
    assert_eq!(told(&sim), Some(vec!["q".to_string()]));
    // A large-tile viewer arrives: the full layer is resumed for it.
    let big = sim
        .join("big", Role::Presenter, false, StreamShape::default())
        .expect("join");
    assert!(
        sim.run_until(Duration::from_secs(5), |s| last_layer(s, big) == Some(2)),
        "{:?}",
        video(&sim, big)
    );
    assert_eq!(told(&sim), Some(vec!["f".to_string(), "q".to_string()]));
    assert_eq!(last_layer(&sim, small), Some(0));
    // Hiding the tile pauses video for that viewer entirely.
    sim.client_msg(
        small,
        ClientMsg::VideoSizes {
            sizes: BTreeMap::new(),
        },
    );
    sim.run_for(Duration::from_millis(200));
    let before = video(&sim, small).map(|t| t.packets).unwrap_or(0);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(video(&sim, small).map(|t| t.packets).unwrap_or(0), before);
    assert!(sim
        .signals(small)
        .iter()
        .any(|m| matches!(m, ServerMsg::Forwarded { tracks } if tracks.is_empty())));
}

#[test]
fn dominant_speaker_follows_the_loudest_and_ignores_a_burst() {
    let mut sim = Sim::new(RoomConfig::default());
    let loud = StreamShape {
        audio_level: 30,
        ..StreamShape::default()
    };
    let quiet = StreamShape {
        audio_level: 110,
        ..StreamShape::default()
    };
    let a = sim.join("a", Role::Presenter, true, loud).expect("join");
    let b = sim.join("b", Role::Presenter, true, quiet).expect("join");
    let speakers = |sim: &Sim| -> Vec<ParticipantId> {
        sim.signals(b)
            .iter()
            .filter_map(|m| match m {
                ServerMsg::ActiveSpeaker { participant } => Some(*participant),
                _ => None,
            })
            .collect()
    };
    assert!(sim.run_until(Duration::from_secs(5), |s| speakers(s) == vec![a]));
    // B coughs for 200 ms: nothing changes.
    sim.set_audio_level(b, 0);
    sim.run_for(Duration::from_millis(200));
    sim.set_audio_level(b, 110);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(speakers(&sim), vec![a], "a burst stole the floor");
    // B really talks and A goes quiet: B takes over.
    sim.set_audio_level(b, 20);
    sim.set_audio_level(a, 110);
    let started = sim.now;
    assert!(
        sim.run_until(Duration::from_secs(3), |s| speakers(s) == vec![a, b]),
        "{:?}",
        speakers(&sim)
    );
    assert!(sim.now - started < Duration::from_millis(1500));
}
