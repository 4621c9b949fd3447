//! The media core's receive path: hostile datagrams fed to a live room through its sans-IO
//! API (`Room::handle_datagram`, as the demux delivers them), in virtual time.

use super::config;
use super::wire::stun;
use confab::media::RoomConfig;
use confab::protocol::{ParticipantId, ServerMsg};
use confab::sim::Sim;
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::Duration;
use str0m::net::Protocol;

/// A datagram shaped like what the port demultiplexes (RFC 7983 first byte), then damaged.
fn datagram(ufrag: String) -> BoxedStrategy<Vec<u8>> {
    let rtp = (
        prop::sample::select(vec![0x80u8, 0x90, 0xA0, 0x81, 0xBF, 0x40]),
        prop::sample::select(vec![96u8, 97, 111, 0xE0 | 96, 127, 255]),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..1200),
    )
        .prop_map(|(b0, pt, seq, ts, ssrc, payload)| {
            let mut p = vec![b0, pt];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            if b0 & 0x10 != 0 {
                // A one-byte header extension block whose length may lie.
                p.extend_from_slice(&[0xBE, 0xDE, 0, payload.first().copied().unwrap_or(1)]);
            }
            p.extend_from_slice(&payload);
            p
        });
    let rtcp = (
        prop::sample::select(vec![0x80u8, 0x81, 0x8F, 0xA0]),
        200u8..=207,
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(b0, pt, words, body)| {
            let mut p = vec![b0, pt];
            p.extend_from_slice(&words.to_be_bytes());
            p.extend_from_slice(&body);
            p
        });
    let dtls = (
        20u8..=25,
        prop::sample::select(vec![[0xFE, 0xFD], [0xFE, 0xFF], [3, 3]]),
        any::<u64>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(kind, version, seq, len, body)| {
            let mut p = vec![kind];
            p.extend_from_slice(&version);
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&body);
            p
        });
    // STUN naming this participant's real ufrag, so it passes the demux and reaches str0m.
    let routed = (stun(), prop::collection::vec(any::<u8>(), 0..12)).prop_map(move |(s, rest)| {
        let mut m = s.bytes();
        let user = [ufrag.as_bytes(), b":", &rest].concat();
        let mut attr = vec![0, 6];
        attr.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attr.extend_from_slice(&user);
        attr.resize(attr.len().div_ceil(4) * 4, 0);
        if m.len() >= 20 {
            m.splice(20..20, attr.iter().copied());
            let len = (m.len() - 20) as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
        }
        m
    });
    prop_oneof![
        2 => rtp,
        2 => rtcp,
        2 => dtls,
        2 => routed,
        1 => stun().prop_map(|s| s.bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..1500),
    ]
    .boxed()
}

/// Three publishing peers receiving each other.
fn meeting() -> (Sim, Vec<ParticipantId>) {
    let mut sim = Sim::new(RoomConfig::default());
    let ids = sim.presenters(3).expect("join");
    assert!(
        sim.run_until(Duration::from_secs(5), |s| ids.iter().all(|id| s
            .stats(*id)
            .tracks
            .values()
            .filter(|t| t.packets > 5)
            .count()
            >= 4))
    );
    (sim, ids)
}

fn packets(sim: &Sim, id: ParticipantId) -> u64 {
    sim.stats(id).tracks.values().map(|t| t.packets).sum()
}

/// The server's ICE ufrag toward a peer, from the last answer it got.
fn server_ufrag(sim: &Sim, id: ParticipantId) -> String {
    sim.signals(id)
        .iter()
        .rev()
        .find_map(|m| match m {
            ServerMsg::Answer { sdp } => sdp
                .lines()
                .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
                .map(str::to_string),
            _ => None,
        })
        .expect("an answer with an ufrag")
}

#[test]
fn the_meeting_harness_finds_ufrags() {
    let (sim, ids) = meeting();
    assert!(!server_ufrag(&sim, ids[0]).is_empty());
}

proptest! {
    #![proptest_config(config(12))]

    /// Hostile datagrams, from the victim's own address and from strangers, at a live room:
    /// nothing panics, the victim stays in, and everyone keeps receiving everyone.
    #[test]
    fn hostile_datagrams_leave_the_room_working(
        seed in any::<u64>(),
        from_victim in prop::collection::vec(any::<bool>(), 300),
        victim in 0usize..3,
    ) {
        let (mut sim, ids) = meeting();
        let ufrag = server_ufrag(&sim, ids[victim]);
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            config(1),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &[seed as u8; 32],
            ),
        );
        let gen = datagram(ufrag);
        let id = ids[victim];
        // The simulator's address plan: peers at 10.1.x.y:5000, the server at 10.0.0.1:10000.
        let own: SocketAddr = ([10, 1, (id.0 >> 8) as u8, id.0 as u8], 5000).into();
        let server: SocketAddr = ([10, 0, 0, 1], 10000).into();
        let stranger: SocketAddr = ([192, 0, 2, 7], 4444).into();
        let before: Vec<u64> = ids.iter().map(|i| packets(&sim, *i)).collect();
        for (n, own_addr) in from_victim.into_iter().enumerate() {
            let d = gen.new_tree(&mut runner).expect("value").current();
            let from = if own_addr { own } else { stranger };
            let now = sim.now;
            sim.conf
                .room
                .handle_receive(id, Protocol::Udp, from, server, &d, now);
            if n % 30 == 0 {
                sim.run_for(Duration::from_millis(20));
            }
        }
        sim.run_for(Duration::from_secs(1));
        prop_assert!(sim.conf.room.contains(id), "the victim was dropped");
        for (i, b) in ids.iter().zip(before) {
            prop_assert!(packets(&sim, *i) > b + 50, "{i} stopped receiving");
        }
    }
}
