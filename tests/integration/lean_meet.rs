//! Meetings on the lean send path in virtual time: publishers are lean peers too, and their
//! streams get confab's own receiver reports (str0m's are silenced with its sender reports).

use crate::common::lean_room;
use confab::bot::{BotStats, StreamShape};
use confab::protocol::{ClientMsg, ParticipantId, Role};
use confab::sim::Sim;
use std::collections::HashSet;
use std::time::Duration;

/// Receives video (with a keyframe) and audio from at least `n` others.
fn receives(st: &BotStats, n: usize) -> bool {
    let video = st
        .tracks
        .values()
        .filter(|t| t.video && t.keyframes > 0 && t.packets > 30)
        .count();
    let audio = st
        .tracks
        .values()
        .filter(|t| !t.video && t.packets > 30)
        .count();
    video >= n && audio >= n
}

/// Everything the peer received arrived decrypted and whole, over the lean path.
fn clean(sim: &Sim, id: ParticipantId) {
    let st = sim.stats(id);
    assert!(st.undecrypted.is_empty(), "{st:?}");
    for t in st.tracks.values() {
        assert_eq!(t.lost(), 0, "{t:?}");
    }
    let (rtp, _) = sim.conf.room.fast_sent(id).expect("on the lean path");
    let received: u64 = st.tracks.values().map(|t| t.packets).sum();
    assert!(
        rtp >= received && rtp > 0,
        "lean {rtp}, received {received}"
    );
}

/// What the publisher's str0m read from the server's receiver reports on each of its
/// streams: the highest sequence number near what it sent, nothing lost, a small jitter, and
/// a round trip (from the reports' LSR/DLSR) near the link's 2 × 10 ms. The bot's str0m sends
/// sender reports only on its audio stream (every 5 s; none seen on its video in these runs),
/// and a block can echo only a sender report it got, so the round trip is required on one
/// stream at least (Chromium's, in `tests/browser/lean_meeting.test.mjs`, on both kinds).
fn reports_are_sane(sim: &Sim, id: ParticipantId, streams: usize) {
    let st = sim.stats(id);
    assert!(st.reported.len() >= streams, "{:?}", st.reported);
    assert!(
        st.reported.values().any(|r| r.rtt.is_some()),
        "LSR/DLSR echo the publisher's sender reports: {:?}",
        st.reported
    );
    for (mid, r) in &st.reported {
        assert!(r.updates >= 2, "{mid}: {r:?}");
        assert!(
            r.max_seq <= r.sent + 1 && r.max_seq + 250 >= r.sent,
            "{mid}: reported up to {} of {} sent",
            r.max_seq,
            r.sent
        );
        assert_eq!(r.lost, 0, "{mid}: {r:?}");
        assert!(r.jitter < 9_000, "{mid}: jitter {} units", r.jitter);
        if let Some(rtt) = r.rtt {
            assert!(
                rtt >= Duration::from_millis(10) && rtt <= Duration::from_millis(200),
                "{mid}: rtt {rtt:?}"
            );
        }
    }
}

#[test]
fn lean_meeting_of_six_everyone_decodes_everyone_and_publishers_get_reports() {
    let mut sim = Sim::new(lean_room());
    let ids: Vec<_> = (0..6)
        .map(|i| {
            sim.join(
                &format!("p{i}"),
                Role::Presenter,
                true,
                StreamShape::default(),
            )
            .expect("join")
        })
        .collect();
    let ok = sim.run_until(Duration::from_secs(8), |s| {
        ids.iter().all(|id| receives(&s.stats(*id), 5))
    });
    assert!(
        ok,
        "{:?} {:?}",
        ids.iter().map(|i| sim.stats(*i)).collect::<Vec<_>>(),
        sim.conf.room.counters()
    );
    sim.run_for(Duration::from_secs(4));
    for id in &ids {
        clean(&sim, *id);
        // Audio and video each.
        reports_are_sane(&sim, *id, 2);
        // No (SSRC, SRTCP index) pair twice toward anyone: str0m's feedback (NACK, PLI,
        // transport-cc) and the lean path's reports share the key.
        let sent = sim.srtcp_sent_to(*id);
        let unique: HashSet<_> = sent.iter().collect();
        assert_eq!(unique.len(), sent.len(), "nonce reused toward {id:?}");
    }
    // The timer index never knew a deadline later than the peer's own (media/timers.rs).
    assert_eq!(
        sim.conf.room.timer_misses(),
        0,
        "a peer's deadline was missed"
    );
}

#[test]
fn a_lean_viewer_promoted_to_the_stage_publishes_and_gets_reports() {
    let mut sim = Sim::new(lean_room());
    let host = sim
        .join("host", Role::Host, true, StreamShape::default())
        .expect("join");
    let viewer = sim
        .join("ana", Role::Audience, false, StreamShape::default())
        .expect("join");
    let other = sim
        .join("vic", Role::Audience, false, StreamShape::default())
        .expect("join");
    assert!(sim.run_until(Duration::from_secs(5), |s| receives(&s.stats(viewer), 1)));
    let before = sim.conf.room.fast_sent(viewer).expect("a lean viewer");
    sim.client_msg(
        host,
        ClientMsg::SetRole {
            participant: viewer,
            role: Role::Presenter,
        },
    );
    sim.start_publishing(viewer);
    // The promoted viewer's media reaches the host and the other viewer.
    let ok = sim.run_until(Duration::from_secs(8), |s| {
        receives(&s.stats(host), 1) && receives(&s.stats(other), 2)
    });
    assert!(ok, "{:?} {:?}", sim.stats(host), sim.stats(other));
    sim.run_for(Duration::from_secs(3));
    // It kept its lean path (the same sender, still counting) and kept receiving.
    let after = sim.conf.room.fast_sent(viewer).expect("still lean");
    assert!(after.0 > before.0 && after.1 > before.1);
    for id in [host, viewer, other] {
        clean(&sim, id);
    }
    // A round trip needs one of the promoted viewer's sender reports (its str0m sends them
    // every few seconds from when it started publishing) echoed in a report after it.
    let echoed = |s: &Sim, id| s.stats(id).reported.values().any(|r| r.rtt.is_some());
    sim.run_until(Duration::from_secs(6), |s| {
        echoed(s, viewer) && echoed(s, host)
    });
    reports_are_sane(&sim, viewer, 2);
    reports_are_sane(&sim, host, 2);
}
