//! Media scenarios in virtual time: the sans-IO room with simulated peers and links.

use crate::common::str0m_room;
use confab::bot::StreamShape;
use confab::media::RoomConfig;
use confab::protocol::{ErrorCode, Role, ServerMsg};
use confab::sim::{Link, Sim};
use std::time::Duration;

fn receives_all(sim: &Sim, id: confab::protocol::ParticipantId, publishers: usize) -> bool {
    let s = sim.stats(id);
    let video = s
        .tracks
        .values()
        .filter(|t| t.video && t.keyframes > 0 && t.packets > 10)
        .count();
    let audio = s
        .tracks
        .values()
        .filter(|t| !t.video && t.packets > 10)
        .count();
    video >= publishers && audio >= publishers
}

#[test]
fn meeting_of_four_everyone_receives_everyone() {
    meeting_of_four(RoomConfig::default());
}

#[test]
fn meeting_of_four_on_the_str0m_path() {
    meeting_of_four(str0m_room());
}

fn meeting_of_four(config: RoomConfig) {
    let mut sim = Sim::new(config);
    let ids = sim.presenters(4).expect("join");
    let ok = sim.run_until(Duration::from_secs(5), |s| {
        ids.iter().all(|id| receives_all(s, *id, 3))
    });
    assert!(
        ok,
        "{:?}",
        ids.iter().map(|i| sim.stats(*i)).collect::<Vec<_>>()
    );
    // A clean loopback-like network loses nothing.
    for id in &ids {
        for t in sim.stats(*id).tracks.values() {
            assert_eq!(t.lost(), 0, "{t:?}");
        }
    }
    // Writes make each subscriber due at once, on either path (media/timers.rs).
    assert_eq!(
        sim.conf.room.timer_misses(),
        0,
        "a peer's deadline was missed"
    );
}

#[test]
fn late_joiner_gets_a_keyframe_fast_through_a_pli() {
    late_joiner_keyframe(RoomConfig::default());
}

#[test]
fn late_joiner_gets_a_keyframe_on_the_str0m_path() {
    late_joiner_keyframe(str0m_room());
}

fn late_joiner_keyframe(config: RoomConfig) {
    let shape = StreamShape {
        // Never a spontaneous keyframe after the first: only a request can produce one.
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    };
    let mut sim = Sim::new(config);
    let publisher = sim.join("pub", Role::Presenter, true, shape).expect("join");
    sim.run_for(Duration::from_secs(5));
    let late = sim
        .join("late", Role::Presenter, false, shape)
        .expect("join");
    let joined_at = sim.now;
    let ok = sim.run_until(Duration::from_secs(3), |s| {
        s.stats(late)
            .tracks
            .values()
            .any(|t| t.video && t.keyframes > 0)
    });
    assert!(ok, "no keyframe: {:?}", sim.stats(late));
    let took = sim.now - joined_at;
    assert!(
        took < Duration::from_millis(1500),
        "first keyframe after {took:?}: {:?} {:?}",
        sim.conf.room.counters(),
        sim.stats(publisher).keyframe_requests
    );
    assert!(sim.stats(publisher).keyframe_requests >= 1);
}

#[test]
fn nack_and_rtx_repair_downlink_loss() {
    downlink_loss_repaired(RoomConfig::default());
}

#[test]
fn nack_and_rtx_repair_downlink_loss_on_the_str0m_path() {
    downlink_loss_repaired(str0m_room());
}

fn downlink_loss_repaired(config: RoomConfig) {
    let mut sim = Sim::new(config);
    let publisher = sim
        .join("pub", Role::Presenter, true, StreamShape::default())
        .expect("join");
    let viewer = sim
        .join("lossy", Role::Presenter, false, StreamShape::default())
        .expect("join");
    sim.set_links(
        viewer,
        Link::default(),
        Link {
            loss: 0.05,
            ..Link::default()
        },
    );
    sim.run_for(Duration::from_secs(10));
    let stats = sim.stats(viewer);
    let video = stats
        .tracks
        .values()
        .find(|t| t.video)
        .expect("video arrived");
    let (lo, hi) = video.seq_range.expect("range");
    let expected = hi - lo + 1;
    // 5 % raw loss; after NACK/RTX only what was lost in the last round trips may be missing.
    assert!(
        (video.lost() as f64) < expected as f64 * 0.01,
        "lost {} of {expected}",
        video.lost()
    );
    assert!(expected > 300, "too little video: {expected}");
    // Audio is not repaired (not nackable), so the loss really happened.
    let audio = stats
        .tracks
        .values()
        .find(|t| !t.video)
        .expect("audio arrived");
    assert!(audio.lost() > 0, "the link lost nothing: {audio:?}");
    let _ = publisher;
}

#[test]
fn publisher_leaving_unpublishes_its_tracks() {
    let mut sim = Sim::new(RoomConfig::default());
    let a = sim
        .join("a", Role::Presenter, true, StreamShape::default())
        .expect("join");
    let b = sim
        .join("b", Role::Presenter, true, StreamShape::default())
        .expect("join");
    assert!(sim.run_until(Duration::from_secs(5), |s| receives_all(s, b, 1)));
    sim.leave(a);
    sim.run_for(Duration::from_millis(100));
    let gone = sim
        .signals(b)
        .iter()
        .filter(|m| matches!(m, ServerMsg::TrackUnpublished { .. }))
        .count();
    assert_eq!(gone, 2, "audio and video unpublished");
    assert!(sim
        .signals(b)
        .iter()
        .any(|m| matches!(m, ServerMsg::ParticipantLeft { id, .. } if *id == a)));
    assert_eq!(sim.conf.len(), 1);
}

#[test]
fn audience_cannot_publish() {
    let mut sim = Sim::new(RoomConfig::default());
    let stage = sim
        .join("stage", Role::Presenter, true, StreamShape::default())
        .expect("join");
    let viewer = sim
        .join("viewer", Role::Audience, true, StreamShape::default())
        .expect("join");
    sim.run_for(Duration::from_secs(2));
    assert!(sim.signals(viewer).iter().any(|m| matches!(
        m,
        ServerMsg::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    )));
    // Nothing of the viewer's reached the stage.
    assert!(sim.stats(stage).tracks.is_empty(), "{:?}", sim.stats(stage));
}
