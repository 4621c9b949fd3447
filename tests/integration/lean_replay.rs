//! SRTCP replayed on path toward the lean path (RFC 3711 §3.3.2), in virtual time: a viewer's
//! captured compounds, sent again, are refused before they are read, so a replayed PLI asks
//! the publisher for nothing and a replayed NACK is answered with no second RTX.

use crate::common::{downlink_loss_spell, lean_host_and_viewer, lean_viewer_with_no_keyframe_due};
use confab::bot::StreamShape;
use confab::protocol::ParticipantId;
use confab::sim::Sim;
use std::time::Duration;

/// Sends every SRTCP datagram `id` sent (the last 256) again; returns how many.
fn replay_all(sim: &mut Sim, id: ParticipantId) -> u64 {
    let captured = sim.srtcp_sent_by(id);
    for d in &captured {
        sim.replay_from(id, d);
    }
    captured.len() as u64
}

#[test]
fn a_replayed_pli_asks_the_publisher_for_nothing() {
    let (mut sim, host, viewer) = lean_viewer_with_no_keyframe_due();
    let asked = sim.stats(host).keyframe_requests;
    assert_eq!(sim.request_keyframes(viewer), 1, "one video received");
    assert!(
        sim.run_until(Duration::from_secs(1), |s| s.stats(host).keyframe_requests
            > asked)
    );
    // Past the room's keyframe-request spacing: a PLI that got through would be forwarded.
    sim.run_for(Duration::from_secs(3));
    let asked = sim.stats(host).keyframe_requests;
    let requests = sim.conf.room.counters().keyframe_requests;
    let (opened, refused) = sim.conf.room.fast_rtcp_in(viewer).expect("lean");
    assert_eq!(refused, 0);
    let replayed = replay_all(&mut sim, viewer);
    assert!(replayed > 10, "only {replayed} compounds captured");
    sim.run_for(Duration::from_secs(1));
    let c = sim.conf.room.counters();
    assert_eq!(sim.stats(host).keyframe_requests, asked, "{c:?}");
    assert_eq!(c.keyframe_requests, requests);
    let (opened_after, refused_after) = sim.conf.room.fast_rtcp_in(viewer).expect("lean");
    assert_eq!(refused_after, replayed, "every replay refused");
    assert_eq!(c.srtcp_replayed, replayed, "and counted as a replay");
    assert!(
        opened_after > opened,
        "the viewer's own compounds still open"
    );
}

#[test]
fn a_replayed_nack_brings_no_second_rtx() {
    let (mut sim, _, viewer) = lean_host_and_viewer(StreamShape::default());
    downlink_loss_spell(&mut sim, viewer, Duration::from_secs(2));
    // What was lost has been repaired once the round trips are over.
    sim.run_for(Duration::from_millis(300));
    let resent = sim.conf.room.fast_resent(viewer).expect("on the lean path");
    assert!(resent > 0, "nothing was lost and resent");
    // Replayed while the history still holds what the NACKs name.
    let replayed = replay_all(&mut sim, viewer);
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        sim.conf.room.fast_resent(viewer),
        Some(resent),
        "{replayed} replays brought RTX"
    );
    assert_eq!(sim.conf.room.counters().srtcp_replayed, replayed);
}
