//! The lean send path under loss, bursts and layer changes, in virtual time: NACKs answered as
//! RTX from the per-source history, keyframe bursts paced while audio is not, and every layer
//! switch starting on a keyframe.

use crate::common::{lean_host_and_viewer, lean_room, lean_webinar};
use confab::bot::{StreamShape, TrackStats};
use confab::protocol::{ClientMsg, ParticipantId, Role, ServerMsg, TrackId};
use confab::sim::{Link, Sim};
use std::collections::BTreeMap;
use std::time::Duration;

fn track(sim: &Sim, id: ParticipantId, video: bool) -> Option<TrackStats> {
    sim.stats(id)
        .tracks
        .into_values()
        .find(|t| t.video == video)
}

/// 5 % random loss toward a lean viewer: video is repaired by RTX from the history (almost
/// nothing stays missing, and it keeps arriving), audio (not repaired) shows the loss was real,
/// and the history stays within its bound all along.
#[test]
fn lean_viewer_downlink_loss_is_repaired_by_rtx() {
    let (mut sim, _, viewer) = lean_host_and_viewer(StreamShape::default());
    sim.set_links(
        viewer,
        Link::default(),
        Link {
            loss: 0.05,
            ..Link::default()
        },
    );
    // One 1 s source layer of default-shape video is far below the bound; sample it often.
    let bound = 512 * 1024 + 1_500;
    let mut most = 0;
    for _ in 0..100 {
        sim.run_for(Duration::from_millis(100));
        most = most.max(sim.conf.room.rtx_history_bytes());
    }
    assert!(most > 0 && most <= bound, "history held {most} bytes");
    let before = track(&sim, viewer, true).expect("video arrived");
    sim.run_for(Duration::from_secs(2));
    let video = track(&sim, viewer, true).expect("video arrived");
    let (lo, hi) = video.seq_range.expect("range");
    let expected = hi - lo + 1;
    assert!(expected > 300, "too little video: {expected}");
    // After NACK/RTX only what was lost in the last round trips may be missing.
    assert!(
        (video.lost() as f64) < expected as f64 * 0.01,
        "lost {} of {expected}; resent {:?}; {:?}",
        video.lost(),
        sim.conf.room.fast_resent(viewer),
        sim.conf.room.counters()
    );
    assert!(
        video.packets >= before.packets + 60,
        "video stalled: {} → {}",
        before.packets,
        video.packets
    );
    let audio = track(&sim, viewer, false).expect("audio arrived");
    assert!(audio.lost() > 0, "the link lost nothing: {audio:?}");
    let resent = sim.conf.room.fast_resent(viewer).expect("on the lean path");
    assert!(resent > 0, "nothing was retransmitted");
    // The room counts what the one viewer's sender sent, and every NACK found its packet.
    let c = sim.conf.room.counters();
    assert_eq!(c.rtx_sent, resent, "{c:?}");
    let u = c.nacks_unanswered;
    assert_eq!((u.gone, u.no_rtx), (0, 0), "{u:?}");
    // Each loss is answered about once: no storm of copies per NACK.
    let lost_raw = expected as f64 * 0.05;
    assert!(
        (resent as f64) < lost_raw * 3.0,
        "{resent} retransmissions for ~{lost_raw} losses"
    );
    eprintln!(
        "lean rtx: {expected} video packets, {} missing, {resent} retransmissions, audio lost {}, history ≤ {most} B",
        video.lost(),
        audio.lost()
    );
}

/// NACKs that reach the server after the history let their packets go (the way back slower
/// than the 1 s it keeps) are counted as gone, not answered.
#[test]
fn nacks_too_late_to_answer_are_counted_as_gone() {
    let (mut sim, _, viewer) = lean_host_and_viewer(StreamShape::default());
    sim.run_for(Duration::from_secs(1));
    let slow_back = Link {
        delay: Duration::from_millis(1_200),
        ..Link::default()
    };
    let lossy = Link {
        loss: 0.05,
        ..Link::default()
    };
    sim.set_links(viewer, slow_back, lossy);
    sim.run_for(Duration::from_secs(4));
    let c = sim.conf.room.counters();
    assert!(c.nacks_unanswered.gone > 10, "{c:?}");
    assert_eq!(Some(c.rtx_sent), sim.conf.room.fast_resent(viewer), "{c:?}");
}

fn simulcast_shape() -> StreamShape {
    StreamShape {
        simulcast: true,
        delta_bytes: 4000,
        keyframe_bytes: 12000,
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    }
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

fn last_layer(sim: &Sim, id: ParticipantId) -> Option<u8> {
    track(sim, id, true).and_then(|t| t.last_layer)
}

/// On the lean path, every layer switch (down and up, by rendered size and by bandwidth)
/// begins on a keyframe of the new layer.
#[test]
fn every_lean_layer_switch_starts_on_a_keyframe() {
    let mut sim = Sim::new(lean_room());
    sim.join("pub", Role::Presenter, true, simulcast_shape())
        .expect("join");
    let viewer = sim
        .join("v", Role::Audience, false, StreamShape::default())
        .expect("join");
    assert!(
        sim.run_until(Duration::from_secs(10), |s| last_layer(s, viewer)
            == Some(2))
    );
    assert!(sim.conf.room.fast_sent(viewer).is_some());
    let t = video_track(&sim, viewer);
    for (height, layer) in [(120, 0), (1080, 2), (360, 1), (1080, 2)] {
        sim.client_msg(
            viewer,
            ClientMsg::VideoSizes {
                sizes: BTreeMap::from([(t, height)]),
            },
        );
        assert!(
            sim.run_until(Duration::from_secs(5), |s| last_layer(s, viewer)
                == Some(layer)),
            "never reached layer {layer} at height {height}: {:?}",
            track(&sim, viewer, true).map(|t| (t.layer_packets, t.switches()))
        );
        sim.run_for(Duration::from_millis(500));
    }
    // Bandwidth: a 300 kbit/s cap and its lifting.
    let capped = Link {
        rate_bps: Some(300_000),
        ..Link::default()
    };
    sim.set_links(viewer, Link::default(), capped);
    assert!(sim.run_until(Duration::from_secs(6), |s| last_layer(s, viewer) == Some(0)));
    sim.set_links(viewer, Link::default(), Link::default());
    assert!(
        sim.run_until(Duration::from_secs(15), |s| last_layer(s, viewer)
            == Some(2))
    );
    let switches = track(&sim, viewer, true).expect("video").switches();
    assert!(switches.len() >= 5, "{switches:?}");
    assert!(switches.iter().all(|(_, _, key)| *key), "{switches:?}");
    eprintln!("lean switches: {switches:?}");
}

/// Once a lean viewer has an estimate, its pacer holds the part of a large keyframe beyond
/// the bucket and the router's timeouts release it within the budget; audio is never held;
/// every viewer of the fan-out gets its own budget.
#[test]
fn lean_pacer_holds_keyframe_bursts_but_never_audio() {
    // Keyframes far past the bucket (40 ms at 2.5 × the estimate, which starts at 8 Mbit/s
    // and stays near it on these unlimited links: 100 kB).
    let shape = StreamShape {
        keyframe_bytes: 250_000,
        keyframe_interval: Duration::from_secs(1),
        ..StreamShape::default()
    };
    let (mut sim, _, viewers) = lean_webinar(shape, 5);
    // Steady state: the window after the connections' start-up.
    sim.run_for(Duration::from_secs(4));
    let before: Vec<_> = viewers.iter().map(|v| sim.stats(*v)).collect();
    sim.run_for(Duration::from_secs(4));
    for (v, before) in viewers.iter().zip(before) {
        let window = |video: bool| {
            let earlier = before.tracks.values().find(|t| t.video == video);
            let now = track(&sim, *v, video).expect("media");
            earlier.map_or(now.delays_us.clone(), |e| now.delays_us.since(&e.delays_us))
        };
        let (held, dropped) = sim.conf.room.fast_paced(*v).expect("on the lean path");
        let estimate = sim.server_estimate(*v);
        assert!(held > 0, "nothing paced at estimate {estimate:?}");
        assert_eq!(dropped, 0, "the pacer dropped video");
        let video = track(&sim, *v, true).expect("video");
        // Held video was released, all of it: nothing missing.
        assert_eq!(video.lost(), 0, "{video:?}");
        // 10 ms up + 10 ms down; audio is never held behind the keyframes.
        let audio_max = window(false).quantile(1.0).expect("audio delays");
        assert!(audio_max <= 22_000, "audio waited: max {audio_max} µs");
        // The 150 kB past the bucket leave at 2.5 × the estimate: within ~100 ms.
        let video_max = window(true).quantile(1.0).expect("video delays");
        assert!(
            (22_000..300_000).contains(&video_max),
            "video max delay {video_max} µs (held {held}, estimate {estimate:?})"
        );
        eprintln!(
            "lean pacer: held {held}, estimate {estimate:?}, video max {video_max} µs, audio max {audio_max} µs"
        );
    }
    // Held video wakes its subscriber through the fan-out's touch (media/timers.rs).
    assert_eq!(
        sim.conf.room.timer_misses(),
        0,
        "a peer's deadline was missed"
    );
}

/// Issue 16: a capped lean viewer, once on the low layer, stays there for as long as the cap
/// holds, even when the middle layer stays alive for another viewer (so its measured rate,
/// not the nominal one, is what a step up would cost) and costs just under the cap. Checked
/// every 100 ms over 12 s under the cap; the estimate is printed each second.
#[test]
fn lean_capped_viewer_stays_low_while_the_cap_holds() {
    for delta_bytes in [4000, 3000, 2800] {
        capped_stays_low(delta_bytes);
    }
}

fn capped_stays_low(delta_bytes: usize) {
    let shape = StreamShape {
        delta_bytes,
        ..simulcast_shape()
    };
    let mut sim = Sim::new(lean_room());
    sim.join("pub", Role::Presenter, true, shape).expect("join");
    let viewer = sim
        .join("india", Role::Audience, false, StreamShape::default())
        .expect("join");
    // Another viewer, uncapped, with a small tile: the middle layer stays published.
    let other = sim
        .join("juliet", Role::Audience, false, StreamShape::default())
        .expect("join");
    assert!(
        sim.run_until(Duration::from_secs(10), |s| last_layer(s, viewer)
            == Some(2))
    );
    let t = video_track(&sim, other);
    sim.client_msg(
        other,
        ClientMsg::VideoSizes {
            sizes: BTreeMap::from([(t, 360)]),
        },
    );
    assert!(sim.run_until(Duration::from_secs(5), |s| last_layer(s, other) == Some(1)));
    sim.run_for(Duration::from_secs(2));
    let capped = Link {
        rate_bps: Some(300_000),
        ..Link::default()
    };
    sim.set_links(viewer, Link::default(), capped);
    assert!(
        sim.run_until(Duration::from_secs(6), |s| last_layer(s, viewer) == Some(0)),
        "never dropped: estimate {:?}",
        sim.server_estimate(viewer)
    );
    let mut trace = Vec::new();
    let mut above = Vec::new();
    let mut peak = 0;
    let mut raws = Vec::new();
    for step in 0..120u32 {
        sim.run_for(Duration::from_millis(100));
        let layer = last_layer(&sim, viewer);
        let estimate = sim.server_estimate(viewer);
        let raw = sim.conf.room.fast_estimate(viewer);
        peak = peak.max(raw.unwrap_or(0));
        raws.push(raw.unwrap_or(0) / 1000);
        if step % 10 == 9 {
            trace.push((estimate.map(|e| e / 1000), layer));
        }
        if layer != Some(0) {
            above.push((step, layer, estimate.map(|e| e / 1000)));
        }
    }
    eprintln!(
        "lean under the cap, delta {delta_bytes} B, estimator's peak {} kbit/s, (allocation's estimate kbit/s, layer) each second: {trace:?}",
        peak / 1000
    );
    assert!(
        above.is_empty(),
        "delta {delta_bytes} B: left the low layer under the cap at (100 ms step, layer, kbit/s): {above:?}; raw estimates each 100 ms: {raws:?}"
    );
}
