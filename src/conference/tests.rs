//! Conference behaviour without sockets: roles, lobby, hands, Q&A, bans, leaving.

use super::record::{Credentials, Origin, RoomRecord};
use super::{Admission, Conference, JoinRequest, Output, MAX_LOBBY};
use crate::media::{RoomConfig, Router};
use crate::model::{LeaveReason, ParticipantId, QuestionId, Role, RoomMode, Source};
use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A conference and what its sessions received.
struct Harness {
    conf: Conference,
    now: Instant,
    inbox: HashMap<ParticipantId, Vec<ServerMsg>>,
    removed: Vec<(ParticipantId, LeaveReason)>,
}

const A: ParticipantId = ParticipantId(1);
const B: ParticipantId = ParticipantId(2);
const C: ParticipantId = ParticipantId(3);

impl Harness {
    fn new(max: usize) -> Self {
        let config = RoomConfig {
            max_participants: max,
            ..RoomConfig::default()
        };
        let room = Router::new("r", config, vec![([127, 0, 0, 1], 9).into()]);
        Harness {
            conf: Conference::new(
                room,
                RoomRecord::new(RoomMode::Meeting, Origin::AdHoc, Instant::now()),
            ),
            now: Instant::now(),
            inbox: HashMap::new(),
            removed: vec![],
        }
    }

    fn request(id: ParticipantId, name: &str, role: Option<Role>) -> JoinRequest {
        JoinRequest {
            id,
            name: name.into(),
            credentials: Credentials {
                token_role: role,
                key: None,
                asked: None,
            },
            identity: name.into(),
            mode: None,
            password: None,
        }
    }

    fn join_as(&mut self, req: JoinRequest) -> Admission {
        let a = self.conf.join(req, self.now);
        self.drain();
        a
    }

    fn join(&mut self, id: ParticipantId, name: &str, role: Role) {
        let a = self.join_as(Self::request(id, name, Some(role)));
        assert_eq!(a, Admission::Joined, "{name} should get in");
    }

    fn send(&mut self, id: ParticipantId, msg: ClientMsg) {
        self.now += Duration::from_millis(10);
        self.conf.handle(id, msg, self.now);
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.conf.poll_output(self.now) {
                Output::Timeout(_) => return,
                Output::Signal(id, msg) => self
                    .inbox
                    .entry(id)
                    .or_default()
                    .push(Arc::unwrap_or_clone(msg)),
                Output::Removed(id, reason) => self.removed.push((id, reason)),
                Output::Transmit(_)
                | Output::RouteUfrag(..)
                | Output::Record { .. }
                | Output::ListRecordings(_) => {}
            }
        }
    }

    /// Lets time pass (the conference's tick runs) and collects what it sent.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.drain();
    }

    fn take(&mut self, id: ParticipantId) -> Vec<ServerMsg> {
        self.inbox.remove(&id).unwrap_or_default()
    }

    fn error_of(&mut self, id: ParticipantId) -> Option<ErrorCode> {
        self.take(id).into_iter().find_map(|m| match m {
            ServerMsg::Error { code, .. } => Some(code),
            _ => None,
        })
    }
}

#[test]
fn joined_tells_the_newcomer_the_room_and_the_others_the_newcomer() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Presenter);
    let to_b = h.take(B);
    let Some(ServerMsg::Joined {
        version,
        you,
        participants,
        ..
    }) = to_b.first()
    else {
        panic!("first message to Bo is joined: {to_b:?}");
    };
    assert_eq!(*version, crate::protocol::PROTOCOL_VERSION);
    assert_eq!(you.id, B);
    assert_eq!(participants.iter().map(|p| p.id).collect::<Vec<_>>(), [A]);
    let to_a = h.take(A);
    assert!(
        to_a.iter().any(
            |m| matches!(m, ServerMsg::ParticipantJoined { participant } if participant.id == B)
        ),
        "Ana hears of Bo: {to_a:?}"
    );
}

#[test]
fn roles_gate_moderation_and_publishing() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Presenter);
    h.join(C, "Cy", Role::Audience);
    h.take(A);
    h.take(B);
    h.take(C);
    // Moderation is a host's alone.
    h.send(B, ClientMsg::LockRoom { locked: true });
    assert_eq!(h.error_of(B), Some(ErrorCode::Forbidden));
    h.send(C, ClientMsg::EndMeeting {});
    assert_eq!(h.error_of(C), Some(ErrorCode::Forbidden));
    // The audience may not offer to send.
    let offer = ClientMsg::Offer {
        sdp: "v=0".into(),
        publish: BTreeMap::from([("0".to_string(), Source::Microphone)]),
        subscribe: BTreeMap::new(),
        audio_slots: vec![],
    };
    h.send(C, offer);
    assert_eq!(h.error_of(C), Some(ErrorCode::Forbidden));
    // ...but may chat and ask.
    h.send(C, ClientMsg::Chat { text: "hi".into() });
    assert!(h
        .take(A)
        .iter()
        .any(|m| matches!(m, ServerMsg::Chat { .. })));
    // A host promotes the audience member: everyone hears it.
    h.send(
        A,
        ClientMsg::SetRole {
            participant: C,
            role: Role::Presenter,
        },
    );
    for id in [A, B, C] {
        let got = h.take(id);
        assert!(
            got.iter().any(|m| matches!(m,
                ServerMsg::ParticipantUpdated { participant } if participant.id == C && participant.role == Role::Presenter)),
            "{id} hears of the promotion: {got:?}"
        );
    }
    // Promoting someone who is not there is an error, not a crash.
    h.send(
        A,
        ClientMsg::SetRole {
            participant: ParticipantId(99),
            role: Role::Presenter,
        },
    );
    assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));
}

#[test]
fn a_webinar_seats_joiners_in_the_audience() {
    let mut h = Harness::new(10);
    let mut first = Harness::request(A, "Ana", Some(Role::Host));
    first.mode = Some(RoomMode::Webinar);
    assert_eq!(h.join_as(first), Admission::Joined);
    assert_eq!(
        h.join_as(Harness::request(B, "Bo", None)),
        Admission::Joined
    );
    let role = h.conf.members().find(|m| m.id == B).map(|m| m.role);
    assert_eq!(role, Some(Role::Audience));
    assert_eq!(h.conf.mode(), RoomMode::Webinar);
}

#[test]
fn lobby_holds_newcomers_until_a_host_decides() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.send(A, ClientMsg::LockRoom { locked: true });
    assert!(h.take(A).contains(&ServerMsg::RoomLocked { locked: true }));
    assert_eq!(
        h.join_as(Harness::request(B, "Bo", Some(Role::Presenter))),
        Admission::Waiting
    );
    assert_eq!(h.take(B), [ServerMsg::Waiting { host_present: true }]);
    let lobby = h.take(A);
    assert!(
        lobby.iter().any(
            |m| matches!(m, ServerMsg::LobbyChanged(d) if d.waiting.len() == 1 && d.waiting[0].id == B)
        ),
        "the host sees Bo waiting: {lobby:?}"
    );
    // A waiting session may do nothing but leave.
    h.send(
        B,
        ClientMsg::Chat {
            text: "let me in".into(),
        },
    );
    assert_eq!(h.error_of(B), Some(ErrorCode::NotJoined));
    h.send(
        A,
        ClientMsg::Admit {
            participant: B,
            admit: true,
        },
    );
    assert!(matches!(h.take(B).first(), Some(ServerMsg::Joined { .. })));
    assert_eq!(h.conf.len(), 2);
    // The next one is turned away.
    assert_eq!(
        h.join_as(Harness::request(C, "Cy", Some(Role::Presenter))),
        Admission::Waiting
    );
    h.take(C);
    h.send(
        A,
        ClientMsg::Admit {
            participant: C,
            admit: false,
        },
    );
    assert_eq!(h.error_of(C), Some(ErrorCode::Refused));
    assert!(h.removed.contains(&(C, LeaveReason::Removed)));
    assert_eq!(h.conf.len(), 2);
}

/// The hands queue a client keeps by applying every `hands_changed` in `msgs`.
fn apply_hands(mut queue: Vec<ParticipantId>, msgs: &[ServerMsg]) -> Vec<ParticipantId> {
    for m in msgs {
        if let ServerMsg::HandsChanged(d) = m {
            queue.retain(|id| !d.lowered.contains(id) && !d.raised.contains(id));
            queue.extend(&d.raised);
        }
    }
    queue
}

fn hands_messages(msgs: &[ServerMsg]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, ServerMsg::HandsChanged(_)))
        .count()
}

#[test]
fn hands_queue_in_order_and_drop_on_promotion_and_leave() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Audience);
    h.join(C, "Cy", Role::Audience);
    h.take(A);
    // The first change after a quiet spell goes out at once.
    h.send(C, ClientMsg::RaiseHand { raised: true });
    let first = h.take(A);
    assert_eq!(apply_hands(vec![], &first), [C]);
    // Changes within the coalescing period come together; a second raise changes nothing.
    h.send(B, ClientMsg::RaiseHand { raised: true });
    h.send(B, ClientMsg::RaiseHand { raised: true });
    assert_eq!(
        hands_messages(&h.inbox.get(&A).cloned().unwrap_or_default()),
        0
    );
    h.advance(Duration::from_millis(300));
    let msgs = h.take(A);
    assert_eq!(hands_messages(&msgs), 1);
    let queue = apply_hands(vec![C], &msgs);
    assert_eq!(queue, [C, B]);
    h.send(
        A,
        ClientMsg::SetRole {
            participant: C,
            role: Role::Presenter,
        },
    );
    h.advance(Duration::from_millis(300));
    let queue = apply_hands(queue, &h.take(A));
    assert_eq!(queue, [B]);
    h.conf.leave(B, LeaveReason::Left);
    h.advance(Duration::from_millis(300));
    assert_eq!(apply_hands(queue, &h.take(A)), Vec::<ParticipantId>::new());
}

#[test]
fn hand_toggles_are_coalesced_into_bounded_deltas() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Audience);
    h.join(C, "Cy", Role::Audience);
    h.send(B, ClientMsg::RaiseHand { raised: true });
    let mut queue = apply_hands(vec![], &h.take(A));
    // A second of toggling by two people: at most one message per period, and the queue the
    // host rebuilds is the server's, lowered-and-raised-again hands moved to the end.
    let mut messages = 0;
    for i in 0..100 {
        let who = if i % 2 == 0 { B } else { C };
        h.send(who, ClientMsg::RaiseHand { raised: i % 4 < 2 });
        let msgs = h.take(A);
        messages += hands_messages(&msgs);
        queue = apply_hands(queue, &msgs);
    }
    h.advance(Duration::from_millis(300));
    let msgs = h.take(A);
    messages += hands_messages(&msgs);
    queue = apply_hands(queue, &msgs);
    assert_eq!(queue, h.conf.hands);
    // 100 toggles over 1 s at 10 ms each: a change every 250 ms at most, plus the last.
    assert!(messages <= 6, "{messages} hands messages for 100 toggles");
}

#[test]
fn questions_order_by_votes_and_only_hosts_close_them() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Audience);
    h.join(C, "Cy", Role::Audience);
    h.send(
        B,
        ClientMsg::Ask {
            text: "first?".into(),
        },
    );
    h.send(
        C,
        ClientMsg::Ask {
            text: "second?".into(),
        },
    );
    h.take(A);
    let second = QuestionId(2);
    h.send(
        B,
        ClientMsg::Vote {
            question: second,
            up: true,
        },
    );
    let updates: Vec<_> = h
        .take(A)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Question { question } => Some(question),
            _ => None,
        })
        .collect();
    // Only the question that changed goes out.
    let last = updates.last().expect("a question update");
    assert_eq!(last.id, second);
    assert_eq!(last.text, "second?");
    assert_eq!(last.votes, 1);
    h.send(C, ClientMsg::MarkAnswered { question: second });
    assert_eq!(h.error_of(C), Some(ErrorCode::Forbidden));
    h.send(A, ClientMsg::MarkAnswered { question: second });
    let answered = h.take(B).into_iter().any(|m| {
        matches!(m, ServerMsg::Question { question } if question.id == second && question.answered)
    });
    assert!(answered);
}

#[test]
fn chat_is_rate_limited_per_participant() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Presenter);
    h.join(B, "Bo", Role::Presenter);
    let t = h.now;
    for _ in 0..6 {
        h.conf.handle(A, ClientMsg::Chat { text: "x".into() }, t);
    }
    h.drain();
    let chats = h
        .take(B)
        .iter()
        .filter(|m| matches!(m, ServerMsg::Chat { .. }))
        .count();
    assert_eq!(chats, 5, "the burst is five");
    assert_eq!(h.error_of(A), Some(ErrorCode::RateLimited));
    // Bo's own budget is untouched.
    h.send(B, ClientMsg::Chat { text: "y".into() });
    assert!(h
        .take(A)
        .iter()
        .any(|m| matches!(m, ServerMsg::Chat { .. })));
}

#[test]
fn a_removed_identity_is_banned() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Presenter);
    h.take(A);
    h.send(A, ClientMsg::RemoveParticipant { participant: B });
    assert_eq!(h.error_of(B), Some(ErrorCode::Removed));
    assert!(h.removed.contains(&(B, LeaveReason::Removed)));
    assert!(h.take(A).contains(&ServerMsg::ParticipantLeft {
        id: B,
        reason: LeaveReason::Removed
    }));
    // Same identity, new session: refused.
    let again = h.join_as(Harness::request(C, "Bo", Some(Role::Presenter)));
    assert!(matches!(again, Admission::Refused(ErrorCode::Removed, _)));
    // A host cannot remove itself.
    h.send(A, ClientMsg::RemoveParticipant { participant: A });
    assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));
}

#[test]
fn passwords_and_capacity_refuse_joins() {
    let mut h = Harness::new(2);
    // Only a host's join configures the room (its password); a presenter's would be ignored.
    let mut first = Harness::request(A, "Ana", Some(Role::Host));
    first.password = Some("s3cret".into());
    assert_eq!(h.join_as(first), Admission::Joined);
    let wrong = h.join_as(Harness::request(B, "Bo", Some(Role::Presenter)));
    assert!(matches!(
        wrong,
        Admission::Refused(ErrorCode::WrongPassword, _)
    ));
    let mut right = Harness::request(B, "Bo", Some(Role::Presenter));
    right.password = Some("s3cret".into());
    assert_eq!(h.join_as(right), Admission::Joined);
    let mut third = Harness::request(C, "Cy", Some(Role::Presenter));
    third.password = Some("s3cret".into());
    assert!(matches!(
        h.join_as(third),
        Admission::Refused(ErrorCode::RoomFull, _)
    ));
}

#[test]
fn leaving_is_told_once() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Presenter);
    h.join(B, "Bo", Role::Presenter);
    h.take(A);
    h.send(B, ClientMsg::Leave {});
    // The session's own end arrives as well; it changes nothing.
    h.conf.leave(B, LeaveReason::Left);
    h.drain();
    let left = h
        .take(A)
        .into_iter()
        .filter(|m| matches!(m, ServerMsg::ParticipantLeft { id, .. } if *id == B))
        .count();
    assert_eq!(left, 1);
    assert_eq!(h.removed, [(B, LeaveReason::Left)]);
    assert!(!h.conf.is_empty());
    h.conf.leave(A, LeaveReason::Left);
    assert!(h.conf.is_empty());
}

#[test]
fn ending_the_meeting_closes_every_session() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Presenter);
    h.send(A, ClientMsg::LockRoom { locked: true });
    assert_eq!(
        h.join_as(Harness::request(C, "Cy", Some(Role::Presenter))),
        Admission::Waiting
    );
    h.send(A, ClientMsg::EndMeeting {});
    for id in [A, B, C] {
        assert_eq!(h.error_of(id), Some(ErrorCode::Closed), "{id}");
        assert!(h.removed.contains(&(id, LeaveReason::Removed)), "{id}");
    }
    assert!(h.conf.is_empty());
}

#[test]
fn the_lobby_is_capped() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.send(A, ClientMsg::LockRoom { locked: true });
    for i in 0..MAX_LOBBY as u64 {
        let req = Harness::request(ParticipantId(100 + i), "W", Some(Role::Presenter));
        assert_eq!(h.join_as(req), Admission::Waiting);
    }
    let over = Harness::request(ParticipantId(100 + MAX_LOBBY as u64), "W", None);
    match h.join_as(over) {
        Admission::Refused(ErrorCode::RoomFull, why) => assert!(why.contains("lobby is full")),
        other => panic!("the lobby took one more: {other:?}"),
    }
    // The host heard of each once, in a bounded number of coalesced changes.
    h.advance(Duration::from_millis(300));
    let deltas: Vec<usize> = h
        .take(A)
        .iter()
        .filter_map(|m| match m {
            ServerMsg::LobbyChanged(d) => Some(d.waiting.len()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas.iter().sum::<usize>(), MAX_LOBBY);
    assert!(deltas.len() <= 2, "{} lobby messages", deltas.len());
}

#[test]
fn a_wait_in_the_lobby_ends_after_its_timeout() {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.send(A, ClientMsg::LockRoom { locked: true });
    assert_eq!(
        h.join_as(Harness::request(B, "Bo", Some(Role::Presenter))),
        Admission::Waiting
    );
    h.advance(super::lists::LOBBY_WAIT - Duration::from_secs(1));
    assert!(h.removed.is_empty(), "still waiting before the timeout");
    h.take(A);
    h.take(B);
    h.advance(Duration::from_secs(2));
    let to_b = h.take(B);
    assert!(
        to_b.iter().any(|m| matches!(m, ServerMsg::Error { code: ErrorCode::Closed, message } if message.contains("Nobody let you in"))),
        "Bo is told why: {to_b:?}"
    );
    assert!(h.removed.contains(&(B, LeaveReason::Timeout)));
    let to_a = h.take(A);
    assert!(
        to_a.iter()
            .any(|m| matches!(m, ServerMsg::LobbyChanged(d) if d.left == [B])),
        "the host sees Bo go: {to_a:?}"
    );
    // Admitting someone who is gone does nothing.
    h.send(
        A,
        ClientMsg::Admit {
            participant: B,
            admit: true,
        },
    );
    assert_eq!(h.conf.len(), 1);
}

mod host;
