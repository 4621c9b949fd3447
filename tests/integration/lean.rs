//! The lean send path in virtual time: str0m bots receive what confab rewrote and sealed.

use crate::common::{
    lean_host_and_viewer, lean_room, lean_viewer_with_no_keyframe_due, lean_webinar, str0m_room,
    video_keyframes,
};
use confab::bot::StreamShape;
use confab::media::RoomConfig;
use confab::protocol::{ParticipantId, Role};
use confab::sim::{Link, Sim};
use std::time::Duration;

#[test]
fn webinar_audience_decrypts_the_fast_path_without_loss() {
    let (mut sim, host, audience) = lean_webinar(StreamShape::default(), 3);
    let ok = sim.run_until(Duration::from_secs(5), |s| {
        audience.iter().all(|id| {
            let st = s.stats(*id);
            st.tracks
                .values()
                .any(|t| t.video && t.keyframes > 0 && t.packets > 50)
                && st.tracks.values().any(|t| !t.video && t.packets > 50)
        })
    });
    assert!(
        ok,
        "{:?} {:?}",
        audience.iter().map(|i| sim.stats(*i)).collect::<Vec<_>>(),
        sim.conf.room.counters()
    );
    sim.run_for(Duration::from_secs(3));
    for id in &audience {
        let st = sim.stats(*id);
        // Everything arrived through str0m's SRTP receive side: nothing it failed to open.
        assert!(st.undecrypted.is_empty(), "{st:?}");
        for t in st.tracks.values() {
            assert_eq!(t.lost(), 0, "{t:?}");
        }
        let (rtp, rtcp) = sim.conf.room.fast_sent(*id).expect("on the fast path");
        let received: u64 = st.tracks.values().map(|t| t.packets).sum();
        assert!(
            rtp >= received && rtp > 0,
            "fast {rtp}, received {received}"
        );
        assert!(rtcp >= 3, "a sender report a second: {rtcp}");
    }
    // The publisher is a lean peer too (its receiver reports come from `fast::reports`),
    // even one that subscribes to nothing: its keys are taken when its first SRTCP comes.
    assert!(sim.conf.room.fast_sent(host).is_some());
    // The timer index never knew a deadline later than the peer's own (media/timers.rs).
    assert_eq!(
        sim.conf.room.timer_misses(),
        0,
        "a peer's deadline was missed"
    );
    let reported = sim.stats(host).reported;
    assert!(reported.len() >= 2, "our receiver reports: {reported:?}");
    // Everyone's SRTCP was opened by the lean path, once, and none was refused.
    for id in audience.iter().chain([&host]) {
        let (opened, refused) = sim.conf.room.fast_rtcp_in(*id).expect("lean");
        // (The host's are its sender reports alone: a few in these seconds.)
        assert!(
            opened >= 2 && refused == 0,
            "{opened} opened, {refused} refused"
        );
    }
}

#[test]
fn default_send_path_is_lean_and_str0m_stays_available() {
    let mut sim = Sim::new(RoomConfig::default());
    let a = sim
        .join("a", Role::Audience, false, StreamShape::default())
        .expect("join");
    assert!(sim.conf.room.fast_sent(a).is_some());
    let mut sim = Sim::new(str0m_room());
    let a = sim
        .join("a", Role::Audience, false, StreamShape::default())
        .expect("join");
    assert!(sim.conf.room.fast_sent(a).is_none());
}

/// GCM with a repeated nonce leaks the key stream: across str0m's compounds and the fast
/// path's on the same SRTCP key, no (first SSRC, index) pair may ever appear twice.
#[test]
fn no_srtcp_nonce_is_used_twice_toward_a_lean_subscriber() {
    let (mut sim, _, a) = lean_host_and_viewer(StreamShape::default());
    sim.run_for(Duration::from_secs(8));
    let sent = sim.srtcp_sent_to(a);
    assert!(sent.len() >= 6, "sender reports flow: {sent:?}");
    let mut seen = std::collections::HashSet::new();
    for pair in sent {
        assert!(seen.insert(*pair), "nonce reused: {pair:x?} in {sent:x?}");
    }
}

/// Keyframe requests still reach the publisher for a lean subscriber: with no periodic
/// keyframes at all, a late audience member decodes only because one was asked for.
#[test]
fn a_late_lean_subscriber_gets_a_keyframe_on_request() {
    let shape = StreamShape {
        keyframe_interval: Duration::from_secs(3600),
        ..StreamShape::default()
    };
    let mut sim = Sim::new(lean_room());
    sim.join("host", Role::Host, true, shape).expect("join");
    sim.run_for(Duration::from_secs(4));
    let late = sim
        .join("late", Role::Audience, false, shape)
        .expect("join");
    let ok = sim.run_until(Duration::from_secs(3), |s| {
        s.stats(late)
            .tracks
            .values()
            .any(|t| t.video && t.keyframes > 0)
    });
    assert!(ok, "no keyframe: {:?}", sim.stats(late));
    assert!(sim
        .conf
        .room
        .fast_sent(late)
        .is_some_and(|(rtp, _)| rtp > 0));
}

/// A lean viewer's PLI is read by the lean path (str0m no longer sees its SRTCP) and reaches
/// the publisher as a keyframe request; the keyframe it brings reaches the viewer.
#[test]
fn a_lean_viewers_pli_reaches_the_publisher() {
    let (mut sim, host, viewer) = lean_viewer_with_no_keyframe_due();
    let keyframes = |sim: &Sim| video_keyframes(sim, viewer);
    let (asked_before, keys_before) = (sim.stats(host).keyframe_requests, keyframes(&sim));
    let requests_before = sim.conf.room.counters().keyframe_requests;
    sim.run_for(Duration::from_secs(2));
    assert_eq!(keyframes(&sim), keys_before, "no keyframe unasked");
    assert_eq!(sim.request_keyframes(viewer), 1, "one video received");
    let ok = sim.run_until(Duration::from_secs(1), |s| {
        s.stats(host).keyframe_requests > asked_before && keyframes(s) > keys_before
    });
    assert!(
        ok,
        "host asked {} → {}, viewer keyframes {keys_before} → {}, {:?}",
        asked_before,
        sim.stats(host).keyframe_requests,
        keyframes(&sim),
        sim.conf.room.counters()
    );
    assert!(sim.conf.room.counters().keyframe_requests > requests_before);
    let (opened, refused) = sim.conf.room.fast_rtcp_in(viewer).expect("lean");
    assert!(
        opened > 0 && refused == 0,
        "{opened} opened, {refused} refused"
    );
}

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

fn last_layer(sim: &Sim, id: ParticipantId) -> Option<u8> {
    sim.stats(id)
        .tracks
        .into_values()
        .find(|t| t.video)
        .and_then(|t| t.last_layer)
}

/// A lean sim with a simulcast presenter and one viewer `name`, once the viewer receives the
/// full layer: (sim, presenter, viewer).
fn viewer_on_the_full_layer(name: &str) -> (Sim, ParticipantId, ParticipantId) {
    let mut sim = Sim::new(lean_room());
    let presenter = sim
        .join("pub", Role::Presenter, true, simulcast_shape())
        .expect("join");
    let viewer = sim
        .join(name, Role::Audience, false, StreamShape::default())
        .expect("join");
    assert!(
        sim.run_until(Duration::from_secs(10), |s| last_layer(s, viewer)
            == Some(2)),
        "{:?}",
        sim.stats(viewer)
    );
    (sim, presenter, viewer)
}

/// The lean path's own estimator (transport-cc feedback opened from the subscriber's SRTCP)
/// drives layer allocation as str0m's does on the default path: a 300 kbit/s downlink puts
/// the subscriber on the low layer within 2 s, and it comes back when the cap lifts.
#[test]
fn lean_capped_subscriber_drops_to_low_layer_and_recovers() {
    let (mut sim, publisher, viewer) = viewer_on_the_full_layer("hotel");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        last_layer(&sim, viewer),
        Some(2),
        "steady on the full layer"
    );
    let (_, _) = sim.conf.room.fast_sent(viewer).expect("on the fast path");
    assert!(sim.conf.room.fast_sent(publisher).is_some());
    let capped = Link {
        rate_bps: Some(300_000),
        ..Link::default()
    };
    sim.set_links(viewer, Link::default(), capped);
    let capped_at = sim.now;
    assert!(
        sim.run_until(Duration::from_secs(6), |s| last_layer(s, viewer) == Some(0)),
        "never dropped to the low layer: {:?} estimate {:?}",
        sim.stats(viewer),
        sim.server_estimate(viewer)
    );
    let took = sim.now - capped_at;
    assert!(took <= Duration::from_secs(2), "moved down after {took:?}");
    eprintln!(
        "lean: low layer {took:?} after the cap, estimate {:?}",
        sim.server_estimate(viewer)
    );
    sim.set_links(viewer, Link::default(), Link::default());
    let lifted_at = sim.now;
    assert!(
        sim.run_until(Duration::from_secs(15), |s| last_layer(s, viewer)
            == Some(2)),
        "never came back up: {:?} estimate {:?}",
        sim.stats(viewer),
        sim.server_estimate(viewer)
    );
    eprintln!(
        "lean: full layer {:?} after the cap lifted, estimate {:?}",
        sim.now - lifted_at,
        sim.server_estimate(viewer)
    );
}

/// A short delay burst on the viewer's downlink with no change in capacity (what a CPU stall
/// at either end looks like) cuts the lean estimate and the viewer leaves the full layer; the
/// path never confirms the cut, so the viewer is back on the full layer within a few seconds.
#[test]
fn lean_viewer_recovers_from_a_spurious_delay_burst() {
    let (mut sim, _, viewer) = viewer_on_the_full_layer("india");
    sim.run_for(Duration::from_secs(5));
    let before = sim.conf.room.fast_estimate(viewer).expect("estimate");
    // +150 ms held 300 ms, then drained at twice real time so nothing is reordered or lost:
    // what a stall at either end looks like.
    for extra in (0..=15).rev() {
        let burst = Link {
            delay: Duration::from_millis(10 + 10 * extra),
            ..Link::default()
        };
        sim.set_links(viewer, Link::default(), burst);
        let hold = if extra == 15 { 300 } else { 20 };
        sim.run_for(Duration::from_millis(hold));
    }
    let burst_end = sim.now;
    let (mut lowest, mut left_full, mut timeline) = (before, false, vec![]);
    let back = loop {
        sim.run_for(Duration::from_millis(100));
        let took = sim.now - burst_end;
        let e = sim.conf.room.fast_estimate(viewer).unwrap_or(0);
        let layer = last_layer(&sim, viewer);
        lowest = lowest.min(e);
        left_full |= layer != Some(2);
        if took.as_millis().is_multiple_of(500) {
            timeline.push((
                e / 1000,
                sim.server_estimate(viewer).unwrap_or(0) / 1000,
                layer,
            ));
        }
        if left_full && layer == Some(2) {
            break Some(took);
        }
        if took >= Duration::from_secs(20) {
            break None;
        }
    };
    eprintln!(
        "lean: delay burst cut the estimate {before} → {lowest} (left the full layer: \
         {left_full}); full layer again after {back:?}; (estimate, allocation's \
         kbit/s, layer) every 500 ms: {timeline:?}"
    );
    assert!(
        left_full && lowest < before * 9 / 10,
        "the burst did not cut: {before} → {lowest}"
    );
    let back = back.expect("back within 20 s");
    assert!(back <= Duration::from_secs(4), "back after {back:?}");
}

/// One viewer's estimate moving re-decides that viewer's layers, not the whole room's: with
/// eleven other viewers (count-only, each sending transport-cc feedback), a capped viewer's
/// fall to the low layer adds allocations for itself alone on top of the room's once-a-second
/// pass over everyone. (Re-deciding everyone for every move made a 300-viewer room's work
/// grow with the square of its size while estimates moved.)
#[test]
fn a_moving_estimate_reallocates_its_own_viewer_only() {
    let (mut sim, _, viewer) = viewer_on_the_full_layer("kilo");
    let others: Vec<ParticipantId> = (0..11)
        .map(|i| {
            let id = sim
                .join(
                    &format!("v{i}"),
                    Role::Audience,
                    false,
                    StreamShape::default(),
                )
                .expect("join");
            sim.set_decrypt(id, false);
            id
        })
        .collect();
    sim.run_for(Duration::from_secs(5));
    assert_eq!(
        last_layer(&sim, viewer),
        Some(2),
        "steady on the full layer"
    );
    let peers = 2 + others.len() as u64;
    let before = sim.conf.room.counters().allocations;
    let capped = Link {
        rate_bps: Some(300_000),
        ..Link::default()
    };
    sim.set_links(viewer, Link::default(), capped);
    let secs = 6;
    sim.run_for(Duration::from_secs(secs));
    assert_eq!(
        last_layer(&sim, viewer),
        Some(0),
        "capped: on the low layer"
    );
    let allocations = sim.conf.room.counters().allocations - before;
    // The periodic passes (one per second, each over every peer, one more for a boundary),
    // then one per move of the capped viewer's estimate, and a whole room's when its layer
    // switch changed what is forwarded. Re-deciding everyone for every move gave 104 more
    // here (8 whole rooms); one each gives 20.
    let periodic = (secs + 1) * peers;
    let moves = allocations.saturating_sub(periodic);
    eprintln!("{allocations} allocations in {secs} s, {periodic} periodic, {moves} more");
    assert!(
        moves < 3 * peers,
        "{moves} allocations past the periodic ones: the room was re-decided for moves"
    );
    for id in others {
        assert!(sim.stats(id).undecrypted.values().any(|t| t.packets > 0));
    }
}

/// The sim reads what reaches the server at one instant as one burst, as the room task reads
/// its inbox, and the room fans a burst's packets out together, subscriber by subscriber
/// (`Router::hold_fan_outs`): a 20 kB keyframe is 17 packets, read in bursts of
/// `MEDIA_BURST` with the viewers' feedback. Every packet the room routes still reaches every
/// viewer exactly once.
#[test]
fn a_burst_fanned_out_together_reaches_every_viewer_once() {
    burst_reaches_every_viewer_once(None);
}

/// The same, with each release handing its datagrams over every 5 queued (the room task does
/// it every `MAX_BATCH`, so that a keyframe's first copies to a few hundred viewers are sent
/// while the rest are sealed): a hand-over falls between two viewers, and each still gets
/// every packet once.
#[test]
fn a_burst_handed_over_in_parts_reaches_every_viewer_once() {
    burst_reaches_every_viewer_once(Some(5));
}

fn burst_reaches_every_viewer_once(spill: Option<usize>) {
    let shape = StreamShape {
        keyframe_bytes: 20_000,
        keyframe_interval: Duration::from_millis(500),
        ..StreamShape::default()
    };
    let (mut sim, _, viewers) = lean_webinar(shape, 4);
    if let Some(every) = spill {
        sim.set_spill(every);
    }
    let flowing = sim.run_until(Duration::from_secs(5), |s| {
        viewers.iter().all(|id| {
            let st = s.stats(*id);
            st.tracks.values().any(|t| t.video && t.keyframes > 0)
                && st.tracks.values().any(|t| !t.video && t.packets > 0)
        })
    });
    assert!(flowing, "every viewer receives video and audio");
    let received = |sim: &Sim| -> Vec<u64> {
        let total = |id| sim.stats(id).tracks.values().map(|t| t.packets).sum();
        viewers.iter().map(|&id| total(id)).collect()
    };
    let (c0, r0) = (sim.conf.room.counters().clone(), received(&sim));
    sim.run_for(Duration::from_secs(3));
    let (c1, r1) = (sim.conf.room.counters().clone(), received(&sim));
    let routed = c1.rtp_in - c0.rtp_in;
    let forwarded = c1.rtp_forwarded - c0.rtp_forwarded;
    // 3 s: 150 audio packets, 90 frames of 2 packets, 6 keyframes of 17.
    assert!(routed >= 400, "routed {routed}");
    assert_eq!(forwarded, routed * 4, "dropped: {:?}", c1.dropped);
    for (i, (&a, &b)) in r0.iter().zip(&r1).enumerate() {
        // Packets in flight at either end of the window (the links' delay) differ by a few.
        let got = b - a;
        assert!(got.abs_diff(routed) <= 20, "viewer {i}: {got} of {routed}");
        for t in sim.stats(viewers[i]).tracks.values() {
            let (first, last) = t.seq_range.expect("received");
            // Each sequence number once: as many packets as the range holds, none missing.
            assert_eq!(t.packets, last - first + 1, "viewer {i}, video {}", t.video);
        }
    }
    // A keyframe is 17 packets to 4 viewers: handed over in parts when asked to.
    assert_eq!(
        sim.spills() > 0,
        spill.is_some(),
        "{} hand-overs",
        sim.spills()
    );
}
