//! Peers whose DTLS chose AES_CM_128_HMAC_SHA1_80 on the lean send path, in virtual time. No
//! browser picks it against confab (dimpl prefers GCM), so the simulator's `keys::with_aes_cm`
//! hands both ends of a bot's connection AES-CM keys: the bot's str0m is then the independent
//! implementation that opens what the lean path seals, and seals what it opens.

use crate::common::{downlink_loss_spell, lean_room, past_first_keyframe};
use confab::bot::{BotStats, StreamShape};
use confab::media::fast::keys;
use confab::protocol::{ParticipantId, Role};
use confab::sim::Sim;
use std::time::Duration;

/// A publishing host and a viewer in a lean room, `cm` saying whose keys are AES-CM.
fn room(host_cm: bool, viewer_cm: bool, shape: StreamShape) -> (Sim, ParticipantId, ParticipantId) {
    let mut sim = Sim::new(lean_room());
    let join = |sim: &mut Sim, name: &str, role: Role, publish: bool, cm: bool| match cm {
        true => keys::with_aes_cm(|| sim.join(name, role, publish, shape)),
        false => sim.join(name, role, publish, shape),
    };
    let host = join(&mut sim, "host", Role::Host, true, host_cm).expect("join");
    let viewer = join(&mut sim, "viewer", Role::Audience, false, viewer_cm).expect("join");
    (sim, host, viewer)
}

/// Audio and video arrived at `id`, all of it opened, nothing missing, and all of it sealed by
/// the lean path.
fn received_whole_over_the_lean_path(sim: &Sim, st: &BotStats, id: ParticipantId) {
    assert!(st.undecrypted.is_empty(), "{st:?}");
    assert!(st.tracks.values().any(|t| t.video && t.keyframes > 0));
    assert!(st.tracks.values().any(|t| !t.video && t.packets > 30));
    for t in st.tracks.values() {
        assert_eq!(t.lost(), 0, "{t:?}");
    }
    let (rtp, rtcp) = sim.conf.room.fast_sent(id).expect("on the lean path");
    let received: u64 = st.tracks.values().map(|t| t.packets).sum();
    assert!(
        rtp >= received && received > 0,
        "lean {rtp}, received {received}"
    );
    assert!(rtcp > 0, "sender reports sealed for it");
}

#[test]
fn an_aes_cm_viewer_is_served_by_the_lean_path_and_its_replays_refused() {
    let shape = StreamShape {
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    };
    let (mut sim, host, viewer) = room(false, true, shape);
    past_first_keyframe(&mut sim, viewer);
    received_whole_over_the_lean_path(&sim, &sim.stats(viewer), viewer);
    // Its SRTCP is opened by the lean path; str0m (and so its guard) is given none of it.
    let (opened, refused) = sim.conf.room.fast_rtcp_in(viewer).expect("lean");
    assert!(
        opened > 5 && refused == 0,
        "opened {opened}, refused {refused}"
    );
    assert_eq!(sim.conf.room.srtcp_guarded(viewer).map(|g| g.0), Some(0));

    // A PLI reaches the publisher once; the same datagrams again ask for nothing.
    let asked = sim.stats(host).keyframe_requests;
    assert_eq!(sim.request_keyframes(viewer), 1, "one video received");
    assert!(
        sim.run_until(Duration::from_secs(1), |s| s.stats(host).keyframe_requests
            > asked)
    );
    sim.run_for(Duration::from_secs(3));
    let asked = sim.stats(host).keyframe_requests;
    let (opened, _) = sim.conf.room.fast_rtcp_in(viewer).expect("lean");
    let captured = sim.srtcp_sent_by(viewer);
    assert!(captured.len() > 10, "only {} captured", captured.len());
    for d in &captured {
        sim.replay_from(viewer, d);
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.stats(host).keyframe_requests, asked);
    let (opened_after, refused) = sim.conf.room.fast_rtcp_in(viewer).expect("lean");
    assert_eq!(refused, captured.len() as u64, "every replay refused");
    assert_eq!(sim.conf.room.counters().srtcp_replayed, refused);
    assert!(opened_after > opened, "its own compounds still open");
}

#[test]
fn an_aes_cm_viewers_losses_are_repaired_with_rtx_it_opens() {
    let (mut sim, _, viewer) = room(false, true, StreamShape::default());
    downlink_loss_spell(&mut sim, viewer, Duration::from_secs(3));
    sim.run_for(Duration::from_secs(1));
    let resent = sim.conf.room.fast_resent(viewer).expect("lean");
    assert!(resent > 0, "NACKs (AES-CM SRTCP) answered with RTX");
    let st = sim.stats(viewer);
    assert!(st.undecrypted.is_empty(), "{st:?}");
    let video = st.tracks.values().find(|t| t.video).expect("video");
    let (lo, hi) = video.seq_range.expect("range");
    let expected = hi - lo + 1;
    assert!(
        (video.lost() as f64) < expected as f64 * 0.01,
        "lost {} of {expected}, resent {resent}",
        video.lost()
    );
}

/// The known gap this closes: a publisher on AES-CM keys used to fall back to str0m sending
/// while str0m's reports stayed silenced, so its streams got no receiver reports at all.
#[test]
fn an_aes_cm_publisher_gets_the_lean_paths_receiver_reports() {
    let (mut sim, host, viewer) = room(true, false, StreamShape::default());
    sim.run_for(Duration::from_secs(12));
    received_whole_over_the_lean_path(&sim, &sim.stats(viewer), viewer);
    let (opened, refused) = sim.conf.room.fast_rtcp_in(host).expect("lean");
    assert!(
        opened > 5 && refused == 0,
        "opened {opened}, refused {refused}"
    );
    let st = sim.stats(host);
    assert!(st.reported.len() >= 2, "{:?}", st.reported);
    for (mid, r) in &st.reported {
        assert!(r.updates >= 2, "{mid}: {r:?}");
        assert!(
            r.max_seq <= r.sent + 1 && r.max_seq + 250 >= r.sent,
            "{mid}: {r:?}"
        );
        assert_eq!(r.lost, 0, "{mid}: {r:?}");
    }
    assert!(
        st.reported.values().any(|r| r.rtt.is_some()),
        "LSR/DLSR echo its sender reports: {:?}",
        st.reported
    );
}
