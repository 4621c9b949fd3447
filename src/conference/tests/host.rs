//! Host tools, stage invitations, reactions and polls without sockets.

use super::{Harness, A, B, C};
use crate::model::{ParticipantId, Role, Source};
use crate::protocol::host::{AskUnmute, InviteToStage, JoinMuted, React, Spotlight, StageAnswer};
use crate::protocol::polls::{NewPoll, PollKind, PollVote, POLL_MAX_CHOICES};
use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};
use std::time::Duration;

fn room() -> Harness {
    let mut h = Harness::new(10);
    h.join(A, "Ana", Role::Host);
    h.join(B, "Bo", Role::Presenter);
    h.join(C, "Cy", Role::Audience);
    for id in [A, B, C] {
        h.take(id);
    }
    h
}

fn poll(question: &str, choices: &[&str]) -> ClientMsg {
    ClientMsg::CreatePoll(NewPoll {
        question: question.into(),
        kind: PollKind::Choice,
        choices: choices.iter().map(|c| c.to_string()).collect(),
        anonymous: false,
    })
}

fn vote(poll: u64, choice: usize) -> ClientMsg {
    ClientMsg::PollVote(PollVote { poll, choice })
}

fn results(msgs: &[ServerMsg]) -> Vec<(Vec<u32>, usize)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::PollResults(r) => Some((r.counts.clone(), r.voters.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn host_tools_are_for_hosts_only() {
    let mut h = room();
    let host_only = [
        ClientMsg::Spotlight(Spotlight {
            participant: Some(A),
        }),
        ClientMsg::AskUnmute(AskUnmute {
            participant: A,
            source: Source::Microphone,
        }),
        ClientMsg::MuteAll {},
        ClientMsg::InviteToStage(InviteToStage { participant: C }),
        ClientMsg::SetJoinMuted(JoinMuted { above: Some(2) }),
        poll("Lunch?", &["yes", "no"]),
        ClientMsg::ClosePoll {},
    ];
    for msg in host_only {
        for id in [B, C] {
            h.send(id, msg.clone());
            assert_eq!(h.error_of(id), Some(ErrorCode::Forbidden), "{msg:?}");
        }
    }
    assert!(h.take(A).is_empty(), "nothing reached the host");
}

#[test]
fn reactions_are_a_fixed_set_broadcast_and_rate_limited() {
    let mut h = room();
    let react = |e: &str| ClientMsg::React(React { emoji: e.into() });
    h.send(C, react("💩"));
    assert_eq!(h.error_of(C), Some(ErrorCode::BadMessage));
    h.send(C, react("👏"));
    for id in [A, B, C] {
        let got = h.take(id);
        assert!(
            got.iter().any(
                |m| matches!(m, ServerMsg::Reaction(r) if r.participant == C && r.emoji == "👏")
            ),
            "{id} sees the applause: {got:?}"
        );
    }
    // A burst, then refusals: a held-down key cannot flood the room.
    let mut refused = 0;
    for _ in 0..20 {
        h.conf.handle(C, react("🎉"), h.now);
        h.drain();
        refused += usize::from(h.error_of(C) == Some(ErrorCode::RateLimited));
    }
    assert!(refused >= 14, "{refused} of 20 refused");
}

#[test]
fn a_stage_invitation_is_accepted_or_declined_by_the_invitee() {
    let mut h = room();
    // Nobody invited Cy yet.
    h.send(C, ClientMsg::StageAnswer(StageAnswer { accept: true }));
    assert_eq!(h.error_of(C), Some(ErrorCode::BadMessage));
    // Only the audience can be invited.
    h.send(
        A,
        ClientMsg::InviteToStage(InviteToStage { participant: B }),
    );
    assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));

    h.send(
        A,
        ClientMsg::InviteToStage(InviteToStage { participant: C }),
    );
    let got = h.take(C);
    assert!(got
        .iter()
        .any(|m| matches!(m, ServerMsg::StageInvite(i) if i.from == A)));
    assert!(h.take(B).is_empty(), "an invitation is private");
    // The invitation alone changes nothing.
    assert_eq!(
        h.conf.members().find(|m| m.id == C).map(|m| m.role),
        Some(Role::Audience)
    );
    h.send(C, ClientMsg::StageAnswer(StageAnswer { accept: false }));
    let to_a = h.take(A);
    assert!(to_a
        .iter()
        .any(|m| matches!(m, ServerMsg::StageAnswered(a) if a.participant == C && !a.accept)));
    assert_eq!(
        h.conf.members().find(|m| m.id == C).map(|m| m.role),
        Some(Role::Audience)
    );
    // A second answer has nothing to answer.
    h.send(C, ClientMsg::StageAnswer(StageAnswer { accept: true }));
    assert_eq!(h.error_of(C), Some(ErrorCode::BadMessage));

    h.send(
        A,
        ClientMsg::InviteToStage(InviteToStage { participant: C }),
    );
    h.send(C, ClientMsg::StageAnswer(StageAnswer { accept: true }));
    let to_b = h.take(B);
    assert!(to_b.iter().any(|m| matches!(m,
        ServerMsg::ParticipantUpdated { participant } if participant.id == C && participant.role == Role::Presenter)));
    let to_a = h.take(A);
    assert!(to_a
        .iter()
        .any(|m| matches!(m, ServerMsg::StageAnswered(a) if a.participant == C && a.accept)));
}

#[test]
fn asking_to_unmute_only_asks() {
    let mut h = room();
    let ask = |p, source| {
        ClientMsg::AskUnmute(AskUnmute {
            participant: p,
            source,
        })
    };
    h.send(A, ask(B, Source::Microphone));
    let got = h.take(B);
    assert_eq!(got.len(), 1, "one request and nothing else: {got:?}");
    assert!(
        matches!(&got[0], ServerMsg::UnmuteRequest(r) if r.source == Source::Microphone && r.from == A)
    );
    h.send(A, ask(B, Source::Screen));
    assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));
    h.send(A, ask(C, Source::Microphone));
    assert_eq!(
        h.error_of(A),
        Some(ErrorCode::BadMessage),
        "the audience has no microphone here"
    );
    h.send(A, ask(ParticipantId(99), Source::Camera));
    assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));
}

#[test]
fn the_spotlight_reaches_everyone_newcomers_too_and_ends_with_its_subject() {
    let mut h = room();
    h.send(
        A,
        ClientMsg::Spotlight(Spotlight {
            participant: Some(ParticipantId(99)),
        }),
    );
    assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));
    h.send(
        A,
        ClientMsg::Spotlight(Spotlight {
            participant: Some(B),
        }),
    );
    for id in [A, B, C] {
        let got = h.take(id);
        assert!(
            got.iter()
                .any(|m| matches!(m, ServerMsg::Spotlight(s) if s.participant == Some(B))),
            "{id}"
        );
    }
    let d = ParticipantId(4);
    h.join(d, "Di", Role::Presenter);
    let got = h.take(d);
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMsg::Spotlight(s) if s.participant == Some(B))),
        "{got:?}"
    );
    h.conf.leave(B, crate::model::LeaveReason::Left);
    h.drain();
    let got = h.take(C);
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMsg::Spotlight(s) if s.participant.is_none())),
        "{got:?}"
    );
}

#[test]
fn join_muted_is_a_room_setting_hosts_change() {
    let mut h = room();
    h.join(ParticipantId(4), "Di", Role::Presenter);
    let default = h.take(ParticipantId(4)).into_iter().find_map(|m| match m {
        ServerMsg::RoomSettings {
            join_muted_above, ..
        } => Some(join_muted_above),
        _ => None,
    });
    assert_eq!(
        default,
        Some(Some(crate::protocol::host::DEFAULT_JOIN_MUTED_ABOVE))
    );
    h.send(
        A,
        ClientMsg::SetJoinMuted(JoinMuted {
            above: Some(1_000_000),
        }),
    );
    assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));
    h.send(A, ClientMsg::SetJoinMuted(JoinMuted { above: Some(2) }));
    let got = h.take(C);
    assert!(
        got.iter().any(|m| matches!(
            m,
            ServerMsg::RoomSettings {
                join_muted_above: Some(2),
                ..
            }
        )),
        "{got:?}"
    );
}

#[test]
fn polls_are_bounded() {
    let mut h = room();
    let too_many: Vec<String> = (0..=POLL_MAX_CHOICES).map(|i| i.to_string()).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let long = "?".repeat(301);
    for bad in [
        poll("Q", &["only"]),
        poll("Q", &too_many),
        poll(&long, &["a", "b"]),
        poll(" ", &["a", "b"]),
        poll("Q", &["a", " "]),
    ] {
        h.send(A, bad);
        assert_eq!(h.error_of(A), Some(ErrorCode::BadMessage));
    }
    h.send(A, ClientMsg::ClosePoll {});
    assert_eq!(
        h.error_of(A),
        Some(ErrorCode::BadMessage),
        "no poll to close"
    );
}

#[test]
fn poll_results_are_coalesced_and_voters_go_to_hosts_only() {
    let mut h = room();
    h.send(A, poll("Lunch?", &["pizza", "salad"]));
    let id = h
        .take(C)
        .into_iter()
        .find_map(|m| match m {
            ServerMsg::Poll(p) => Some(p.id),
            _ => None,
        })
        .expect("everyone sees the poll");
    h.take(A);
    h.take(B);
    h.send(B, vote(id, 0));
    // The first vote goes out at once...
    assert_eq!(results(&h.take(C)), [(vec![1, 0], 0)]);
    assert_eq!(
        results(&h.take(A)),
        [(vec![1, 0], 1)],
        "the host sees who voted"
    );
    // ...the next ones wait for the interval, and arrive as one update.
    h.send(C, vote(id, 1));
    h.send(A, vote(id, 1));
    h.send(B, vote(id, 1)); // changed their mind
    assert!(
        results(&h.take(C)).is_empty(),
        "nothing before the interval"
    );
    h.now += Duration::from_millis(600);
    h.drain();
    assert_eq!(
        results(&h.take(C)),
        [(vec![0, 3], 0)],
        "one update for three votes"
    );
    assert_eq!(results(&h.take(A)), [(vec![0, 3], 3)]);
    // Bad votes are refused.
    h.send(C, vote(id, 7));
    assert_eq!(h.error_of(C), Some(ErrorCode::BadMessage));
    h.send(C, vote(id + 1, 0));
    assert_eq!(h.error_of(C), Some(ErrorCode::BadMessage));
    // Closing sends the final poll; voting ends.
    h.send(A, ClientMsg::ClosePoll {});
    let got = h.take(B);
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMsg::Poll(p) if !p.open && p.counts == [0, 3])),
        "{got:?}"
    );
    h.send(C, vote(id, 0));
    assert_eq!(h.error_of(C), Some(ErrorCode::BadMessage));
    // A newcomer sees the poll as it ended.
    let d = ParticipantId(4);
    h.join(d, "Di", Role::Presenter);
    assert!(h
        .take(d)
        .iter()
        .any(|m| matches!(m, ServerMsg::Poll(p) if p.id == id && !p.open)));
}

#[test]
fn mute_all_spares_hosts_and_anonymous_polls_hide_voters() {
    let mut h = room();
    h.send(A, ClientMsg::MuteAll {});
    assert_eq!(h.error_of(A), None);
    h.send(
        A,
        ClientMsg::CreatePoll(NewPoll {
            question: "How was it?".into(),
            kind: PollKind::Mood,
            choices: vec![],
            anonymous: true,
        }),
    );
    let p = h
        .take(C)
        .into_iter()
        .find_map(|m| match m {
            ServerMsg::Poll(p) => Some(p),
            _ => None,
        })
        .expect("poll");
    assert_eq!(p.choices, ["1", "2", "3", "4", "5"]);
    h.take(A);
    h.send(C, vote(p.id, 4));
    assert_eq!(
        results(&h.take(A)),
        [(vec![0, 0, 0, 0, 1], 0)],
        "anonymous: no voters"
    );
}
