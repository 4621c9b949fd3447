//! The room's poll: one at a time, one vote per participant, counts sent coalesced.

use super::Conference;
use crate::model::ParticipantId;
use crate::protocol::polls::{
    NewPoll, Poll, PollKind, PollResults, PollVote, POLL_CHOICE_MAX_CHARS, POLL_MAX_CHOICES,
    POLL_QUESTION_MAX_CHARS, POLL_RESULTS_EVERY_MS,
};
use crate::protocol::{ErrorCode, ServerMsg};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const RESULTS_EVERY: Duration = Duration::from_millis(POLL_RESULTS_EVERY_MS);
const MOOD: [&str; 5] = ["1", "2", "3", "4", "5"];

/// The current poll and when its counts last went out.
#[derive(Debug, Default)]
pub struct Polls {
    poll: Option<Poll>,
    /// participant → choice, for the current poll; leavers' votes go with them, so this holds
    /// at most as many entries as the room holds people.
    votes: BTreeMap<ParticipantId, usize>,
    next_id: u64,
    /// Votes since the last `poll_results`.
    dirty: bool,
    last_sent: Option<Instant>,
}

fn clean(text: &str, max: usize, what: &str) -> Result<String, String> {
    let t: String = text.trim().chars().filter(|c| !c.is_control()).collect();
    if t.is_empty() {
        return Err(format!("The {what} is empty."));
    }
    if t.chars().count() > max {
        return Err(format!("The {what} is longer than {max} characters."));
    }
    Ok(t)
}

impl Polls {
    /// A new poll from a host's request, replacing the last one.
    pub fn create(&mut self, new: NewPoll) -> Result<Poll, String> {
        let question = clean(&new.question, POLL_QUESTION_MAX_CHARS, "question")?;
        let choices: Vec<String> = match new.kind {
            PollKind::Mood => MOOD.iter().map(|c| c.to_string()).collect(),
            PollKind::Choice => {
                if !(2..=POLL_MAX_CHOICES).contains(&new.choices.len()) {
                    return Err(format!("A poll has 2 to {POLL_MAX_CHOICES} choices."));
                }
                new.choices
                    .iter()
                    .map(|c| clean(c, POLL_CHOICE_MAX_CHARS, "choice"))
                    .collect::<Result<_, _>>()?
            }
        };
        self.next_id += 1;
        let poll = Poll {
            id: self.next_id,
            question,
            kind: new.kind,
            counts: vec![0; choices.len()],
            choices,
            anonymous: new.anonymous,
            open: true,
        };
        self.poll = Some(poll.clone());
        self.votes.clear();
        self.dirty = false;
        Ok(poll)
    }

    /// Records (or changes) a vote.
    pub fn vote(&mut self, who: ParticipantId, vote: PollVote) -> Result<(), &'static str> {
        let Some(poll) = self.poll.as_mut().filter(|p| p.id == vote.poll && p.open) else {
            return Err("That poll is not open.");
        };
        if vote.choice >= poll.counts.len() {
            return Err("No such choice.");
        }
        if let Some(old) = self.votes.insert(who, vote.choice) {
            poll.counts[old] -= 1;
        }
        poll.counts[vote.choice] += 1;
        self.dirty = true;
        Ok(())
    }

    /// Closes the poll; returns it as it ended.
    pub fn close(&mut self) -> Option<Poll> {
        let poll = self.poll.as_mut().filter(|p| p.open)?;
        poll.open = false;
        self.dirty = false;
        Some(poll.clone())
    }

    /// A leaver's vote goes with them.
    pub fn forget(&mut self, who: ParticipantId) {
        if let (Some(old), Some(poll)) = (self.votes.remove(&who), self.poll.as_mut()) {
            poll.counts[old] -= 1;
            self.dirty = poll.open;
        }
    }

    /// Whether votes wait and the interval since the last `poll_results` has passed.
    fn due(&self, now: Instant) -> bool {
        self.dirty && self.last_sent.is_none_or(|t| t + RESULTS_EVERY <= now)
    }

    /// When waiting votes will be due (none wait, or they are due already: `None`).
    pub fn next_flush(&self, now: Instant) -> Option<Instant> {
        let at = self.last_sent? + RESULTS_EVERY;
        (self.dirty && at > now).then_some(at)
    }

    fn results(&self, host: bool) -> Option<PollResults> {
        let poll = self.poll.as_ref()?;
        let voters = if host && !poll.anonymous {
            self.votes.iter().map(|(p, c)| (*p, *c)).collect()
        } else {
            vec![]
        };
        Some(PollResults {
            id: poll.id,
            counts: poll.counts.clone(),
            voters,
        })
    }

    /// The poll for a newcomer (hosts also get who voted what).
    pub fn snapshot(&self, host: bool) -> Vec<ServerMsg> {
        let Some(poll) = &self.poll else {
            return vec![];
        };
        let mut out = vec![ServerMsg::Poll(poll.clone())];
        if let Some(r) = self.results(true).filter(|r| host && !r.voters.is_empty()) {
            out.push(ServerMsg::PollResults(r));
        }
        out
    }
}

impl Conference {
    pub(super) fn create_poll(&mut self, id: ParticipantId, new: NewPoll) {
        match self.polls.create(new) {
            Ok(poll) => self.broadcast(None, ServerMsg::Poll(poll)),
            Err(e) => self.refuse(id, ErrorCode::BadMessage, &e),
        }
    }

    pub(super) fn poll_vote(&mut self, id: ParticipantId, vote: PollVote) {
        if let Err(e) = self.polls.vote(id, vote) {
            self.refuse(id, ErrorCode::BadMessage, e);
        }
    }

    pub(super) fn close_poll(&mut self, id: ParticipantId) {
        match self.polls.close() {
            Some(poll) => {
                self.broadcast(None, ServerMsg::Poll(poll));
                if let Some(r) = self.polls.results(true).filter(|r| !r.voters.is_empty()) {
                    self.tell_hosts(ServerMsg::PollResults(r));
                }
            }
            None => self.refuse(id, ErrorCode::BadMessage, "No poll is open."),
        }
    }

    /// Sends the counts if votes wait and the interval has passed: one message for everyone
    /// (and one for hosts with the voters), however many voted meanwhile.
    pub(super) fn flush_poll(&mut self, now: Instant) -> bool {
        if !self.polls.due(now) {
            return false;
        }
        self.polls.dirty = false;
        self.polls.last_sent = Some(now);
        let Some(all) = self.polls.results(false) else {
            return false;
        };
        let hosts: Vec<ParticipantId> = self
            .roster
            .values()
            .filter(|m| m.role == crate::model::Role::Host)
            .map(|m| m.id)
            .collect();
        let for_hosts = self.polls.results(true).filter(|r| !r.voters.is_empty());
        let everyone = std::sync::Arc::new(ServerMsg::PollResults(all));
        let ids: Vec<ParticipantId> = self.roster.keys().copied().collect();
        for p in ids {
            if for_hosts.is_none() || !hosts.contains(&p) {
                self.push(super::Output::Signal(p, everyone.clone()));
            }
        }
        if let Some(r) = for_hosts {
            self.tell_hosts(ServerMsg::PollResults(r));
        }
        true
    }
}
