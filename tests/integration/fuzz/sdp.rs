//! SDP targets: a browser's offer with mutated lines, through the role check
//! (`media::sdp_check`) and into a room's negotiation (str0m's parser and our sync after it).

use super::config;
use confab::conference::record::{Credentials, Origin, RoomRecord};
use confab::conference::{Admission, Conference, JoinRequest, Output};
use confab::media::sdp_check::{sending_mids, simulcast_rids};
use confab::media::{RoomConfig, Router};
use confab::protocol::{ClientMsg, ParticipantId, Role, RoomMode, ServerMsg, Source, TrackId};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Instant;

/// A Chrome-shaped offer: a microphone, a simulcast camera, and a receive-only video line.
const OFFER: &str = "v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1 2
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Fz9q
a=ice-pwd:a0c0a3f0c5d34b9e8a6cbd1f
a=ice-options:trickle
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:- a1
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=ssrc:1001 cname:fuzz
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Fz9q
a=ice-pwd:a0c0a3f0c5d34b9e8a6cbd1f
a=ice-options:trickle
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass
a=mid:1
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=sendonly
a=msid:- v1
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rid:q send
a=rid:h send
a=rid:f send
a=simulcast:send q;h;f
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Fz9q
a=ice-pwd:a0c0a3f0c5d34b9e8a6cbd1f
a=ice-options:trickle
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass
a=mid:2
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=recvonly
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
";

/// Lines a hostile offer might carry: limits, duplicates, contradictions, junk.
const HOSTILE_LINES: &[&str] = &[
    "a=mid:",
    "a=mid:0",
    "a=mid:1",
    "a=mid:x\u{0}",
    "a=sendrecv",
    "a=sendonly",
    "a=recvonly",
    "a=inactive",
    " a=sendrecv",
    "a=sendrecv ",
    "a=simulcast:send ;;;~",
    "a=simulcast:send q;h;f;x;y;z",
    "a=simulcast:recv q;h;f",
    "a=simulcast:send ~q,h;f",
    "a=rid:q send",
    "a=rid:q recv",
    "a=rid:\u{0} send",
    "a=rtpmap:4294967296 VP8/90000",
    "a=rtpmap:96 VP8/0",
    "a=rtpmap:255 opus/48000/2",
    "a=rtpmap:96 H264/90000",
    "a=fmtp:97 apt=999999",
    "a=fmtp:96 profile-level-id=zz",
    "a=ssrc:4294967295 cname:x",
    "a=ssrc:0 cname:",
    "a=ssrc:-1 msid:x",
    "a=ssrc-group:FID 1",
    "a=ssrc-group:SIM 1 2 3 4 5 6 7",
    "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:15 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:99999 x",
    "a=extmap:1/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "m=video 9 UDP/TLS/RTP/SAVPF",
    "m=video 0 UDP/TLS/RTP/SAVPF 96",
    "m=video 65536 UDP/TLS/RTP/SAVPF 96",
    "m=audio -1 UDP/TLS/RTP/SAVPF 111",
    "m=audio 9 RTP/AVP 0",
    "m=text 9 UDP/TLS/RTP/SAVPF 96",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=sctp-port:99999999",
    "a=max-message-size:0",
    "a=fingerprint:sha-256 zz",
    "a=fingerprint:md5 00",
    "a=setup:bogus",
    "a=setup:passive",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-lite",
    "a=group:BUNDLE",
    "a=group:BUNDLE 7 8 9",
    "c=IN IP6 ::1",
    "c=IN IP4 999.1.1.1",
    "a=candidate:1 1 udp 1 1.2.3.4 0 typ host",
    "a=candidate:",
    "a=rtcp-fb:* nack",
    "a=rtcp:0",
    "a=msid:",
    "a=",
    "=",
    "v=1",
    "\u{feff}v=0",
    "o=",
    "t=x y",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Replace(usize, String),
    Insert(usize, String),
    /// Replace the n-th whitespace-separated token of a line.
    Token(usize, usize, String),
    /// Append this many copies of the receive-only section, with fresh mids.
    MoreLines(usize),
}

fn hostile_line() -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(HOSTILE_LINES).prop_map(str::to_string),
        1 => prop::collection::vec(any::<char>(), 0..60).prop_map(String::from_iter),
        1 => (1usize..2000).prop_map(|n| format!("a=mid:{}", "m".repeat(n))),
    ]
    .boxed()
}

fn hostile_token() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "",
        "0",
        "-1",
        "65535",
        "65536",
        "4294967295",
        "18446744073709551616",
        "x",
        "96",
        "97",
        "111",
        ":",
        "/",
        "~",
        ";",
        "UDP/TLS/RTP/SAVPF",
        "\u{0}",
    ])
    .prop_map(str::to_string)
    .boxed()
}

fn edit() -> BoxedStrategy<Edit> {
    let at = any::<usize>();
    prop_oneof![
        3 => at.prop_map(Edit::Delete),
        2 => at.prop_map(Edit::Duplicate),
        1 => (at, any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        3 => (at, hostile_line()).prop_map(|(a, l)| Edit::Replace(a, l)),
        3 => (at, hostile_line()).prop_map(|(a, l)| Edit::Insert(a, l)),
        3 => (at, 0usize..6, hostile_token()).prop_map(|(a, t, s)| Edit::Token(a, t, s)),
        1 => (1usize..60).prop_map(Edit::MoreLines),
    ]
    .boxed()
}

/// The template as an audience member offers it: every m-line receive-only.
fn receive_only() -> String {
    OFFER
        .lines()
        .filter(|l| !l.starts_with("a=rid:") && !l.starts_with("a=simulcast:"))
        .map(|l| match l {
            "a=sendrecv" | "a=sendonly" => "a=recvonly\n".to_string(),
            _ => format!("{l}\n"),
        })
        .collect()
}

/// `base` with these edits applied, its lines ended by `\r\n` or `\n`.
fn mutate(base: &str, edits: &[Edit], crlf: bool) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Delete(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Edit::Replace(i, l) if !lines.is_empty() => lines[i % n] = l.clone(),
            Edit::Insert(i, l) => lines.insert((i % n).min(lines.len()), l.clone()),
            Edit::Token(i, t, s) if !lines.is_empty() => {
                let mut parts: Vec<&str> = lines[i % n].split(' ').collect();
                let t = t % parts.len();
                parts[t] = s;
                lines[i % n] = parts.join(" ");
            }
            Edit::MoreLines(k) => {
                let start = OFFER.rfind("m=video").unwrap_or(0);
                for j in 0..*k {
                    let section = OFFER[start..].replace("a=mid:2", &format!("a=mid:x{j}"));
                    lines.extend(section.lines().map(str::to_string));
                    if let Some(b) = lines.iter_mut().find(|l| l.starts_with("a=group:BUNDLE")) {
                        b.push_str(&format!(" x{j}"));
                    }
                }
            }
            _ => {}
        }
    }
    let end = if crlf { "\r\n" } else { "\n" };
    lines.iter().map(|l| format!("{l}{end}")).collect()
}

/// The mids an offer names, for publish/subscribe maps that refer to real m-lines.
fn mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(str::to_string)
        .collect()
}

/// A conference with one participant of `role`; returns it and the participant.
fn room_with(role: Role, now: Instant) -> (Conference, ParticipantId) {
    let mut room = Conference::new(
        Router::new(
            "fuzz",
            RoomConfig::default(),
            vec![([127, 0, 0, 1], 10000).into()],
        ),
        RoomRecord::new(RoomMode::Meeting, Origin::AdHoc, now),
    );
    let id = ParticipantId(1);
    assert_eq!(room.join(request(id, role), now), Admission::Joined);
    while !matches!(room.poll_output(now), Output::Timeout(_)) {}
    (room, id)
}

/// A join as `role`, with a name of its own.
fn request(id: ParticipantId, role: Role) -> JoinRequest {
    JoinRequest {
        id,
        name: format!("p{}", id.0),
        credentials: Credentials {
            token_role: Some(role),
            key: None,
            asked: None,
        },
        identity: format!("p{}", id.0),
        mode: None,
        password: None,
    }
}

/// Offers `sdp` and returns the one reply: the answer's SDP, or `Err` with the error.
fn offer(
    room: &mut Conference,
    id: ParticipantId,
    msg: ClientMsg,
    now: Instant,
) -> Result<String, String> {
    room.handle(id, msg, now);
    let mut reply = None;
    for _ in 0..100_000 {
        match room.poll_output(now) {
            Output::Timeout(_) => break,
            Output::Signal(to, msg) if to == id => match &*msg {
                ServerMsg::Answer { sdp } => {
                    assert!(reply.is_none(), "two replies to one offer");
                    reply = Some(Ok(sdp.clone()));
                }
                ServerMsg::Error { code, message } => {
                    assert!(reply.is_none(), "two replies to one offer");
                    assert!(!message.is_empty());
                    reply = Some(Err(format!("{code:?}: {message}")));
                }
                _ => {}
            },
            _ => {}
        }
    }
    reply.expect("every offer is answered or refused")
}

/// Whether an answer lets the server receive on some m-line (the offerer sends there).
fn answer_receives(answer: &str) -> bool {
    let mut port_open = false;
    for l in answer.lines().map(str::trim_end) {
        if let Some(m) = l.strip_prefix("m=") {
            port_open = m.split(' ').nth(1) != Some("0") && !m.starts_with("application");
        }
        if port_open && (l == "a=recvonly" || l == "a=sendrecv") {
            return true;
        }
    }
    false
}

#[test]
fn the_template_offer_is_answered() {
    let now = Instant::now();
    let (mut room, id) = room_with(Role::Presenter, now);
    let msg = ClientMsg::Offer {
        sdp: OFFER.replace('\n', "\r\n"),
        publish: BTreeMap::from([
            ("0".into(), Source::Microphone),
            ("1".into(), Source::Camera),
        ]),
        subscribe: BTreeMap::new(),
        audio_slots: vec![],
    };
    let answer = offer(&mut room, id, msg, now).expect("the template is a valid offer");
    assert!(answer_receives(&answer));
    let (mut room, id) = room_with(Role::Audience, now);
    let msg = ClientMsg::Offer {
        sdp: receive_only(),
        publish: BTreeMap::new(),
        subscribe: BTreeMap::new(),
        audio_slots: vec![],
    };
    let answer = offer(&mut room, id, msg, now).expect("a receive-only offer is valid");
    assert!(!answer_receives(&answer));
    assert_eq!(sending_mids(OFFER), vec!["0".to_string(), "1".to_string()]);
}

/// Found by `mutated_offers_are_answered_or_refused`: str0m 0.25 panicked ("Pt locked
/// multiple times: 96") on an offer whose payload type 96 is H.264 on one m-line and VP8 on
/// another, which ended the whole room's task. Now the offerer is refused and removed, and the
/// room goes on for the others.
#[test]
fn clashing_payload_types_remove_the_offerer_not_the_room() {
    let now = Instant::now();
    let (mut room, hostile) = room_with(Role::Audience, now);
    let edits = [Edit::Replace(
        13740542421913869602,
        "a=rtpmap:96 H264/90000".into(),
    )];
    let msg = ClientMsg::Offer {
        sdp: mutate(&receive_only(), &edits, false),
        publish: BTreeMap::new(),
        subscribe: BTreeMap::new(),
        audio_slots: vec![],
    };
    let reply = offer(&mut room, hostile, msg, now);
    assert!(reply.is_err_and(|e| e.contains("SdpRejected")));
    assert!(!room.room.contains(hostile));
    let other = ParticipantId(2);
    assert_eq!(
        room.join(request(other, Role::Presenter), now),
        Admission::Joined
    );
    let msg = ClientMsg::Offer {
        sdp: OFFER.to_string(),
        publish: BTreeMap::from([("0".into(), Source::Microphone)]),
        subscribe: BTreeMap::new(),
        audio_slots: vec![],
    };
    assert!(offer(&mut room, other, msg, now).is_ok());
}

proptest! {
    #![proptest_config(config(3000))]

    /// The role check's readers never panic and return only what the offer says.
    #[test]
    fn sdp_checks_read_only_what_is_there(
        edits in prop::collection::vec(edit(), 0..8),
        crlf in any::<bool>(),
    ) {
        let sdp = mutate(OFFER, &edits, crlf);
        let named = mids(&sdp);
        for mid in sending_mids(&sdp) {
            prop_assert!(mid.is_empty() || named.contains(&mid), "{mid:?}");
        }
        for (mid, rids) in simulcast_rids(&sdp) {
            prop_assert!(named.contains(&mid));
            prop_assert!(rids.len() <= 4);
            prop_assert!(rids.iter().all(|r| !r.is_empty() && r.len() <= 16));
        }
    }
}

proptest! {
    #![proptest_config(config(200))]

    /// Mutated offers into a room: each gets one reply (answer or error), nothing panics,
    /// and an audience member's accepted offer never lets the server receive media from it.
    #[test]
    fn mutated_offers_are_answered_or_refused(
        edits in prop::collection::vec(edit(), 0..5),
        crlf in any::<bool>(),
        audience in prop::bool::weighted(0.4),
        picks in prop::collection::vec((any::<prop::sample::Index>(), 0u8..5, 0u64..6), 0..6),
        renegotiate in any::<bool>(),
    ) {
        let now = Instant::now();
        let role = if audience { Role::Audience } else { Role::Presenter };
        let (mut room, id) = room_with(role, now);
        let sdp = if audience { mutate(&receive_only(), &edits, crlf) } else { mutate(OFFER, &edits, crlf) };
        let named = mids(&sdp);
        let mut publish = BTreeMap::new();
        let mut subscribe = BTreeMap::new();
        let mut audio_slots = vec![];
        for (i, what, track) in picks {
            let mid = if named.is_empty() { "0".to_string() } else { i.get(&named).clone() };
            match what {
                0 if !audience => { publish.insert(mid, Source::Camera); }
                1 if !audience => { publish.insert(mid, Source::Microphone); }
                2 => { subscribe.insert(mid, TrackId(track)); }
                3 => audio_slots.push(mid),
                _ => { publish.insert(mid, Source::Screen); }
            }
        }
        if audience {
            publish.clear();
        }
        let msg = ClientMsg::Offer { sdp: sdp.clone(), publish, subscribe, audio_slots };
        let reply = offer(&mut room, id, msg.clone(), now);
        if audience {
            if let Ok(answer) = &reply {
                prop_assert!(!answer_receives(answer), "audience may send:\n{sdp}\n---\n{answer}");
            }
        }
        // The same offer again (a renegotiation that changes nothing), unless the first
        // crashed str0m and removed the offerer, whose messages then go unanswered by design.
        if renegotiate && room.room.contains(id) {
            let _ = offer(&mut room, id, msg, now);
        }
        room.room.handle_timeout(now + std::time::Duration::from_secs(1));
        while !matches!(room.poll_output(now), Output::Timeout(_)) {}
    }
}
