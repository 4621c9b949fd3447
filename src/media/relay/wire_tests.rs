//! The relay datagram: round trip, key separation, forgery and replay refused.

use super::*;

fn key(room: &str) -> RelayKey {
    RelayKey::derive(b"cluster secret", &[7; 16], room, "node-b")
}

fn packet(track: u64, layer: Layer, seq: u64) -> RelayPacket {
    RelayPacket {
        track: TrackId(track),
        layer,
        pt: 96,
        marker: seq.is_multiple_of(3),
        seq,
        time: 0x1_2345_6789 + seq * 3000,
        audio_level: (layer == 0).then_some(0x80 | 33),
        capture_us: CAPTURE_MASK - seq,
    }
}

#[test]
fn round_trip_keeps_every_field() {
    let mut tx = RelaySealer::new(9, &key("r")).expect("sealer");
    let mut rx = RelayOpener::new(9, &key("r")).expect("opener");
    for (i, layer) in [(70_000u64, 0u8), (70_001, 2), (5, 1)] {
        let p = packet(i % 1000 + 1, layer, i);
        let payload = vec![i as u8; 900];
        let d = tx.seal(&p, &payload).expect("sealed");
        assert_eq!(d.len(), payload.len() + OVERHEAD);
        assert_eq!(link_of(&d), Some(9));
        // The payload travels encrypted.
        assert!(!d.windows(16).any(|w| w == &payload[..16]));
        let (got, clear) = rx.open(&d).expect("opens");
        assert_eq!(got, p);
        assert_eq!(&clear[HEADER_LEN..], &payload[..]);
    }
}

#[test]
fn keys_differ_per_room_edge_and_salt() {
    let a = key("room");
    let b = RelayKey::derive(b"cluster secret", &[7; 16], "roo", "mnode-b");
    let c = RelayKey::derive(b"cluster secret", &[8; 16], "room", "node-b");
    let d = RelayKey::derive(b"other secret", &[7; 16], "room", "node-b");
    for other in [b, c, d] {
        assert_ne!(a.master, other.master);
    }
    let mut tx = RelaySealer::new(1, &a).expect("sealer");
    let dgram = tx.seal(&packet(1, 0, 1), b"hello relay").expect("sealed");
    for other in ["roo", "other"] {
        let mut rx = RelayOpener::new(1, &key(other)).expect("opener");
        assert_eq!(rx.open(&dgram).err(), Some(RelayDrop::Forged));
    }
}

#[test]
fn forged_replayed_and_foreign_datagrams_are_refused() {
    let mut tx = RelaySealer::new(3, &key("r")).expect("sealer");
    let mut rx = RelayOpener::new(3, &key("r")).expect("opener");
    let first = tx.seal(&packet(1, 0, 10), &[1; 100]).expect("sealed");
    let second = tx.seal(&packet(1, 0, 11), &[2; 100]).expect("sealed");
    // Any altered byte of header or payload fails authentication (or the header check).
    for i in LINK_ID_LEN..first.len() {
        let mut bad = first.clone();
        bad[i] ^= 0x01;
        assert!(rx.open(&bad).is_err(), "byte {i} altered was accepted");
    }
    assert!(rx.open(&second).is_ok());
    assert!(rx.open(&first).is_ok(), "reordered within the window");
    assert_eq!(rx.open(&first).err(), Some(RelayDrop::Replayed));
    assert_eq!(rx.open(&second).err(), Some(RelayDrop::Replayed));
    let mut other = second.clone();
    other[..4].copy_from_slice(&4u32.to_be_bytes());
    assert_eq!(rx.open(&other).err(), Some(RelayDrop::UnknownLink));
    for n in [0, 3, 20, OVERHEAD - 1] {
        assert_eq!(rx.open(&first[..n]).err(), Some(RelayDrop::Malformed));
    }
    // Far behind the newest index: refused as too old even if never seen.
    let late = tx.seal(&packet(1, 0, 12), &[3; 10]).expect("sealed");
    for i in 0..200 {
        let d = tx.seal(&packet(1, 0, 13 + i), &[4; 10]).expect("sealed");
        assert!(rx.open(&d).is_ok());
    }
    assert_eq!(rx.open(&late).err(), Some(RelayDrop::Replayed));
}

#[test]
fn replay_window_slides() {
    let mut w = ReplayWindow::default();
    assert!(w.fresh(5));
    w.mark(5);
    assert!(!w.fresh(5));
    assert!(w.fresh(4));
    w.mark(200);
    assert!(!w.fresh(5), "outside the window");
    assert!(w.fresh(199) && w.fresh(73));
    assert!(!w.fresh(72), "exactly one window back");
    w.mark(199);
    assert!(!w.fresh(199));
}

#[test]
fn ssrc_names_track_and_layer() {
    assert_eq!(ssrc_of(TrackId(5), 2).map(track_of), Some((TrackId(5), 2)));
    assert_eq!(ssrc_of(TrackId(MAX_TRACK + 1), 0), None);
    assert_eq!(ssrc_of(TrackId(1), 4), None);
}

#[test]
fn relay_payload_types_round_trip_the_room_codecs() {
    for p in room_codecs().params() {
        let pt = relay_pt(*p).expect("in the table");
        assert_eq!(params_of(pt).map(|q| q.spec()), Some(p.spec()));
    }
}

#[test]
fn each_direction_has_its_own_key() {
    let down = RelayKey::derive(b"secret", &[3; 16], "room", "n2");
    let up = RelayKey::derive_uplink(b"secret", &[3; 16], "room", "n2");
    assert_ne!(down.master, up.master);
    assert_ne!(down.salt, up.salt);
    let packet = RelayPacket {
        track: TrackId(5),
        layer: 0,
        pt: 111,
        marker: false,
        seq: 1,
        time: 960,
        audio_level: Some(0x85),
        capture_us: 0,
    };
    // Same link id, same index: only the key tells the directions apart.
    let mut sealer = RelaySealer::new(9, &down).expect("sealer");
    let d = sealer.seal(&packet, b"opus").expect("sealed");
    let mut wrong = RelayOpener::new(9, &up).expect("opener");
    assert_eq!(wrong.open(&d).err(), Some(RelayDrop::Forged));
    let mut right = RelayOpener::new(9, &down).expect("opener");
    assert_eq!(right.open(&d).expect("opens").0, packet);
    let mut sealer = RelaySealer::new(9, &up).expect("sealer");
    let d = sealer.seal(&packet, b"opus").expect("sealed");
    assert_eq!(
        RelayOpener::new(9, &down).expect("opener").open(&d).err(),
        Some(RelayDrop::Forged)
    );
    assert!(wrong.open(&d).is_ok(), "the uplink key opens the uplink");
}
