//! SRTCP replayed on path toward str0m (RFC 3711 §3.3.2), in virtual time: peers whose SRTCP
//! the lean path does not open (a room on str0m's send path, with DTLS keys on either profile)
//! get the replay guard in front of str0m. A real compound from a str0m bot reaches
//! str0m once (its PLI becomes a keyframe request to the publisher); the same datagram sent
//! again is refused before str0m sees it, counted, and asks for nothing.

use crate::common::past_first_keyframe;
use confab::bot::StreamShape;
use confab::media::config::SendPath;
use confab::media::fast::keys;
use confab::media::RoomConfig;
use confab::protocol::{ParticipantId, Role};
use confab::sim::Sim;
use std::time::Duration;

/// A room on str0m's send path.
fn str0m_room() -> RoomConfig {
    RoomConfig {
        send_path: SendPath::Str0m,
        ..RoomConfig::default()
    }
}

/// A publishing host (GCM, as dimpl negotiates) and a viewer, joined in `config`'s room with
/// the viewer's DTLS handing both ends AES-CM keys when `aes_cm`; run until the viewer has
/// its first keyframe and then past the room's keyframe-request spacing, with no periodic
/// keyframes: another comes only when asked for.
fn viewer_with_no_keyframe_due(
    config: RoomConfig,
    aes_cm: bool,
) -> (Sim, ParticipantId, ParticipantId) {
    let shape = StreamShape {
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    };
    let mut sim = Sim::new(config);
    let host = sim.join("host", Role::Host, true, shape).expect("join");
    let join = |sim: &mut Sim| sim.join("viewer", Role::Audience, false, shape);
    let viewer = match aes_cm {
        true => keys::with_aes_cm(|| join(&mut sim)),
        false => join(&mut sim),
    }
    .expect("join");
    past_first_keyframe(&mut sim, viewer);
    (sim, host, viewer)
}

/// The viewer asks for a keyframe once (it reaches the host through str0m), then every SRTCP
/// datagram it sent (the last 256) is sent again: none may reach str0m.
fn a_replayed_pli_is_refused_before_str0m(
    mut sim: Sim,
    host: ParticipantId,
    viewer: ParticipantId,
) {
    let (fresh, refused, _) = sim.conf.room.srtcp_guarded(viewer).expect("a peer");
    assert!(fresh > 5, "str0m was given only {fresh} compounds");
    assert_eq!(refused, 0, "the viewer's own compounds all pass");
    let asked = sim.stats(host).keyframe_requests;
    assert_eq!(sim.request_keyframes(viewer), 1, "one video received");
    assert!(
        sim.run_until(Duration::from_secs(1), |s| s.stats(host).keyframe_requests
            > asked),
        "the first PLI, through the guard and str0m, reaches the publisher"
    );
    // Past the room's keyframe-request spacing: a PLI that got through would be forwarded.
    sim.run_for(Duration::from_secs(3));
    let asked = sim.stats(host).keyframe_requests;
    let before = sim.conf.room.counters().clone();
    let captured = sim.srtcp_sent_by(viewer);
    assert!(
        captured.len() > 10,
        "only {} compounds captured",
        captured.len()
    );
    for d in &captured {
        sim.replay_from(viewer, d);
    }
    let replayed = captured.len() as u64;
    sim.run_for(Duration::from_secs(1));
    let c = sim.conf.room.counters();
    assert_eq!(sim.stats(host).keyframe_requests, asked, "{c:?}");
    assert_eq!(c.keyframe_requests, before.keyframe_requests);
    assert_eq!(
        c.srtcp_replayed - before.srtcp_replayed,
        replayed,
        "each counted"
    );
    assert_eq!(c.srtcp_refused - before.srtcp_refused, replayed);
    let (fresh_after, refused, replayed_here) = sim.conf.room.srtcp_guarded(viewer).expect("in");
    assert_eq!(
        (refused, replayed_here),
        (replayed, replayed),
        "by the viewer's guard"
    );
    assert!(fresh_after > fresh, "its own compounds still pass");
}

#[test]
fn on_str0ms_send_path_an_aes_cm_viewers_replayed_pli_asks_the_publisher_for_nothing() {
    let (sim, host, viewer) = viewer_with_no_keyframe_due(str0m_room(), true);
    assert_eq!(sim.conf.room.fast_rtcp_in(viewer), None, "no lean sender");
    a_replayed_pli_is_refused_before_str0m(sim, host, viewer);
}

#[test]
fn on_str0ms_send_path_a_replayed_pli_asks_the_publisher_for_nothing() {
    let (sim, host, viewer) = viewer_with_no_keyframe_due(str0m_room(), false);
    assert_eq!(sim.conf.room.fast_rtcp_in(viewer), None, "no lean sender");
    a_replayed_pli_is_refused_before_str0m(sim, host, viewer);
}

/// In a lean room the lean path opens an AES-CM viewer's SRTCP itself (`lean_cm`): the guard
/// is given nothing of it, and the GCM host's neither.
#[test]
fn in_a_lean_room_an_aes_cm_viewer_is_opened_by_the_lean_path() {
    let (sim, host, viewer) = viewer_with_no_keyframe_due(crate::common::lean_room(), true);
    for id in [host, viewer] {
        assert!(sim.conf.room.fast_rtcp_in(id).is_some_and(|(o, _)| o > 0));
        assert_eq!(sim.conf.room.srtcp_guarded(id).map(|g| g.0), Some(0));
    }
}

#[test]
fn a_forged_index_blocks_nothing_and_tampering_is_refused() {
    for aes_cm in [true, false] {
        let (mut sim, host, viewer) = viewer_with_no_keyframe_due(str0m_room(), aes_cm);
        let last = sim.srtcp_sent_by(viewer).pop().expect("a compound");
        // Its index moved a million ahead (its tag no longer matches): were it recorded, the
        // viewer's next compounds would all look older than the window.
        let mut forged = last.clone();
        let tag = if aes_cm { 10 } else { 0 };
        let at = forged.len() - tag - 4;
        let index =
            u32::from_be_bytes([forged[at], forged[at + 1], forged[at + 2], forged[at + 3]]);
        forged[at..at + 4].copy_from_slice(&(index + 1_000_000).to_be_bytes());
        sim.replay_from(viewer, &forged);
        let (fresh, refused, replayed) = sim.conf.room.srtcp_guarded(viewer).expect("in");
        assert_eq!((refused, replayed), (1, 0), "refused, not as a replay");
        let asked = sim.stats(host).keyframe_requests;
        sim.request_keyframes(viewer);
        assert!(
            sim.run_until(Duration::from_secs(1), |s| s.stats(host).keyframe_requests
                > asked),
            "aes_cm={aes_cm}: the next real PLI still reaches the publisher"
        );
        let (fresh_after, refused, _) = sim.conf.room.srtcp_guarded(viewer).expect("in");
        assert!(fresh_after > fresh && refused == 1, "aes_cm={aes_cm}");
    }
}
