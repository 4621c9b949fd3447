//! Parsing and serialising the wire messages.

use super::*;

#[test]
fn join_parses_with_defaults() {
    let m: ClientMsg =
        serde_json::from_str(r#"{"type":"join","room":"a","name":"Ana"}"#).expect("valid join");
    assert_eq!(
        m,
        ClientMsg::Join {
            room: "a".into(),
            name: "Ana".into(),
            role: None,
            key: None,
            token: None,
            mode: None,
            password: None,
            version: None,
        }
    );
}

#[test]
fn offer_maps_mids() {
    let m: ClientMsg = serde_json::from_str(
        r#"{"type":"offer","sdp":"v=0","publish":{"0":"microphone","1":"camera"},"subscribe":{"2":7}}"#,
    )
    .expect("valid offer");
    let ClientMsg::Offer {
        publish, subscribe, ..
    } = m
    else {
        panic!("not an offer");
    };
    assert_eq!(publish.get("1"), Some(&Source::Camera));
    assert_eq!(subscribe.get("2"), Some(&TrackId(7)));
}

#[test]
fn video_sizes_parse_from_browser_json() {
    let m: ClientMsg = serde_json::from_str(r#"{"type":"video_sizes","sizes":{"4":180,"12":0}}"#)
        .expect("valid sizes");
    assert_eq!(
        m,
        ClientMsg::VideoSizes {
            sizes: BTreeMap::from([(TrackId(4), 180), (TrackId(12), 0)])
        }
    );
    assert!(
        serde_json::from_str::<ClientMsg>(r#"{"type":"video_sizes","sizes":{"x":1}}"#).is_err()
    );
}

#[test]
fn unknown_type_and_fields_are_errors() {
    assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"dance"}"#).is_err());
    assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"leave","x":1}"#).is_err());
    assert!(serde_json::from_str::<ClientMsg>(r#"{"room":"a"}"#).is_err());
    assert!(serde_json::from_str::<ClientMsg>("not json").is_err());
}

#[test]
fn server_messages_are_tagged() {
    let s =
        serde_json::to_string(&ServerMsg::error(ErrorCode::RoomFull, "full")).expect("serialises");
    assert_eq!(s, r#"{"type":"error","code":"room_full","message":"full"}"#);
    let s = serde_json::to_string(&ServerMsg::TrackMuted {
        id: TrackId(3),
        participant: ParticipantId(1),
        source: Source::Camera,
        muted: true,
        forced: false,
    })
    .expect("serialises");
    assert_eq!(
        s,
        r#"{"type":"track_muted","id":3,"participant":1,"source":"camera","muted":true,"forced":false}"#
    );
}

#[test]
fn room_and_name_validation() {
    assert!(valid_room_name("standup-2.team_a"));
    assert!(!valid_room_name(""));
    assert!(!valid_room_name("a b"));
    assert!(!valid_room_name(&"x".repeat(65)));
    assert_eq!(clean_display_name("  Ana "), Some("Ana".into()));
    assert_eq!(clean_display_name("   "), None);
    assert_eq!(clean_display_name("a\u{7}b"), None);
    assert_eq!(clean_display_name(&"é".repeat(64)), Some("é".repeat(64)));
}
