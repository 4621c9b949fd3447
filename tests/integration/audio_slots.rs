//! Audio slots in virtual time: a listener with fewer slots than remote microphones hears the
//! voices most recently heard, and a new voice takes a slot within a few hundred milliseconds.

use confab::bot::StreamShape;
use confab::media::RoomConfig;
use confab::protocol::{Kind, ParticipantId, Role, ServerMsg, TrackId};
use confab::sim::Sim;
use std::collections::BTreeMap;
use std::time::Duration;

const QUIET: i8 = 110; // −110 dBov: a muted room's hiss
const LOUD: i8 = 25; // −25 dBov: someone talking

fn shape(level: i8) -> StreamShape {
    StreamShape {
        audio_level: level,
        ..StreamShape::default()
    }
}

/// The audio track each participant publishes, as the listener was told.
fn audio_tracks(sim: &Sim, listener: ParticipantId) -> BTreeMap<ParticipantId, TrackId> {
    let mut out = BTreeMap::new();
    for m in sim.signals(listener) {
        let tracks = match m {
            ServerMsg::TrackPublished { track } => vec![track.clone()],
            ServerMsg::Joined { tracks, .. } => tracks.clone(),
            _ => continue,
        };
        for t in tracks.into_iter().filter(|t| t.kind == Kind::Audio) {
            out.insert(t.participant, t.id);
        }
    }
    out
}

/// What the listener's slots carry, from the latest `audio_slots` message, in track order.
fn slots(sim: &Sim, listener: ParticipantId) -> Vec<TrackId> {
    let mut tracks: Vec<TrackId> = sim
        .signals(listener)
        .iter()
        .rev()
        .find_map(|m| match m {
            ServerMsg::AudioSlots { slots } => Some(slots.values().copied().collect()),
            _ => None,
        })
        .unwrap_or_default();
    tracks.sort();
    tracks
}

fn audio_packets(sim: &Sim, listener: ParticipantId, track: TrackId) -> u64 {
    sim.stats(listener)
        .tracks
        .get(&track)
        .filter(|t| !t.video)
        .map(|t| t.packets)
        .unwrap_or(0)
}

/// Two quiet microphones and a listener with `n` slots, once the listener's slots are filled.
fn two_and_a_listener(n: usize) -> (Sim, [ParticipantId; 2], ParticipantId) {
    let mut sim = Sim::new(RoomConfig::default());
    let a = sim
        .join("a", Role::Presenter, true, shape(QUIET))
        .expect("join");
    let b = sim
        .join("b", Role::Presenter, true, shape(QUIET))
        .expect("join");
    let ear = sim
        .join_with_slots("ear", Role::Presenter, false, shape(QUIET), n)
        .expect("join");
    assert!(sim.run_until(Duration::from_secs(5), |s| slots(s, ear).len() == n.min(2)));
    (sim, [a, b], ear)
}

#[test]
fn every_voice_gets_a_slot_while_there_are_enough() {
    let (mut sim, [a, b], ear) = two_and_a_listener(4);
    let tracks = audio_tracks(&sim, ear);
    let before: Vec<u64> = [a, b]
        .iter()
        .map(|p| audio_packets(&sim, ear, tracks[p]))
        .collect();
    sim.run_for(Duration::from_secs(2));
    for (p, n) in [a, b].iter().zip(before) {
        // 20 ms packets: about 100 in two seconds from each, on a slot of its own.
        assert!(audio_packets(&sim, ear, tracks[p]) >= n + 80, "{p:?}");
    }
    // Nobody switched: one `audio_slots` message per change, and the pair never changed.
    let changes = sim
        .signals(ear)
        .iter()
        .filter(|m| matches!(m, ServerMsg::AudioSlots { .. }))
        .count();
    assert!(changes <= 2, "{changes} slot changes for two steady voices");
}

#[test]
fn a_new_voice_takes_the_slot_of_the_least_recently_heard() {
    let mut sim = Sim::new(RoomConfig::default());
    let speakers: Vec<ParticipantId> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| {
            sim.join(n, Role::Presenter, true, shape(QUIET))
                .expect("join")
        })
        .collect();
    let ear = sim
        .join_with_slots("ear", Role::Presenter, false, shape(QUIET), 2)
        .expect("join");
    assert!(sim.run_until(Duration::from_secs(5), |s| slots(s, ear).len() == 2));
    let tracks = audio_tracks(&sim, ear);
    // Nobody has spoken: the two oldest microphones hold the slots.
    assert_eq!(
        slots(&sim, ear),
        vec![tracks[&speakers[0]], tracks[&speakers[1]]]
    );

    // C speaks up: it is heard within a few hundred milliseconds, in place of one of them.
    sim.set_audio_level(speakers[2], LOUD);
    assert!(
        sim.run_until(Duration::from_millis(400), |s| slots(s, ear)
            .contains(&tracks[&speakers[2]])),
        "{:?}",
        slots(&sim, ear)
    );
    let heard = audio_packets(&sim, ear, tracks[&speakers[2]]);
    sim.run_for(Duration::from_secs(1));
    assert!(audio_packets(&sim, ear, tracks[&speakers[2]]) >= heard + 40);

    // D answers while C keeps talking: both are heard, A and B are not.
    sim.set_audio_level(speakers[3], LOUD);
    assert!(sim.run_until(Duration::from_millis(400), |s| {
        let now = slots(s, ear);
        now.contains(&tracks[&speakers[2]]) && now.contains(&tracks[&speakers[3]])
    }));
    // C stops; the slots stay as they are (nobody newer was heard): no needless switching.
    sim.set_audio_level(speakers[2], QUIET);
    let settled = slots(&sim, ear);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(slots(&sim, ear), settled);
}

#[test]
fn a_muted_microphone_gives_up_its_slot() {
    let (mut sim, [a, b], ear) = two_and_a_listener(1);
    let tracks = audio_tracks(&sim, ear);
    assert_eq!(slots(&sim, ear), vec![tracks[&a]]);
    sim.client_msg(
        a,
        confab::protocol::ClientMsg::Mute {
            source: confab::protocol::Source::Microphone,
            muted: true,
        },
    );
    assert!(sim.run_until(Duration::from_secs(1), |s| slots(s, ear)
        == vec![tracks[&b]]));
}
