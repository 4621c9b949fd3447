//! Room chat (bounded history) and webinar Q&A (questions with upvotes).

use crate::protocol::{ChatEntry, ParticipantId, Question, QuestionId};
use std::collections::{BTreeMap, HashSet, VecDeque};

/// Messages a newcomer receives.
pub const CHAT_HISTORY: usize = 100;
/// Longest chat message, in characters.
pub const CHAT_MAX_CHARS: usize = 2000;
/// Longest question, in characters.
pub const QUESTION_MAX_CHARS: usize = 500;
/// Most questions a room keeps.
pub const MAX_QUESTIONS: usize = 200;

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Empty after trimming.
    Empty,
    /// Longer than allowed.
    TooLong(usize),
    /// The room holds as many questions as it may.
    Full,
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::Empty => write!(f, "The text is empty."),
            TextError::TooLong(max) => write!(f, "The text is longer than {max} characters."),
            TextError::Full => write!(f, "This room has as many questions as it can hold."),
        }
    }
}

fn clean(text: &str, max: usize) -> Result<String, TextError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TextError::Empty);
    }
    if t.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    // Control characters other than line breaks have no business in a chat line.
    Ok(t.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect())
}

/// The chat history.
#[derive(Debug, Default)]
pub struct Chat {
    entries: VecDeque<ChatEntry>,
    next: u64,
}

impl Chat {
    /// Adds a message; returns the entry to broadcast.
    pub fn post(
        &mut self,
        from: ParticipantId,
        name: &str,
        text: &str,
    ) -> Result<ChatEntry, TextError> {
        let text = clean(text, CHAT_MAX_CHARS)?;
        self.next += 1;
        let entry = ChatEntry {
            id: self.next,
            from,
            name: name.to_string(),
            text,
        };
        if self.entries.len() == CHAT_HISTORY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry.clone());
        Ok(entry)
    }

    /// The recent history, oldest first.
    pub fn history(&self) -> Vec<ChatEntry> {
        self.entries.iter().cloned().collect()
    }
}

#[derive(Debug)]
struct Entry {
    question: Question,
    voters: HashSet<ParticipantId>,
}

/// The Q&A board.
#[derive(Debug, Default)]
pub struct QnA {
    questions: BTreeMap<QuestionId, Entry>,
    next: u64,
}

impl QnA {
    /// Adds a question; returns its id.
    pub fn ask(
        &mut self,
        from: ParticipantId,
        name: &str,
        text: &str,
    ) -> Result<QuestionId, TextError> {
        let text = clean(text, QUESTION_MAX_CHARS)?;
        if self.questions.len() >= MAX_QUESTIONS {
            return Err(TextError::Full);
        }
        self.next += 1;
        let id = QuestionId(self.next);
        self.questions.insert(
            id,
            Entry {
                question: Question {
                    id,
                    from,
                    name: name.to_string(),
                    text,
                    votes: 0,
                    answered: false,
                },
                voters: HashSet::new(),
            },
        );
        Ok(id)
    }

    /// One question as it is now.
    pub fn get(&self, id: QuestionId) -> Option<Question> {
        self.questions.get(&id).map(|e| e.question.clone())
    }

    /// Adds or withdraws one participant's vote; false if nothing changed.
    pub fn vote(&mut self, id: QuestionId, voter: ParticipantId, up: bool) -> bool {
        let Some(e) = self.questions.get_mut(&id) else {
            return false;
        };
        let changed = if up {
            e.voters.insert(voter)
        } else {
            e.voters.remove(&voter)
        };
        e.question.votes = e.voters.len() as u32;
        changed
    }

    /// Marks a question answered; false if unknown or already so.
    pub fn mark_answered(&mut self, id: QuestionId) -> bool {
        match self.questions.get_mut(&id) {
            Some(e) if !e.question.answered => {
                e.question.answered = true;
                true
            }
            _ => false,
        }
    }

    /// Open questions first, then by votes, then oldest first.
    pub fn list(&self) -> Vec<Question> {
        let mut v: Vec<Question> = self
            .questions
            .values()
            .map(|e| e.question.clone())
            .collect();
        v.sort_by(|a, b| {
            a.answered
                .cmp(&b.answered)
                .then(b.votes.cmp(&a.votes))
                .then(a.id.cmp(&b.id))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_is_bounded_and_validated() {
        let mut c = Chat::default();
        for i in 0..150 {
            c.post(ParticipantId(1), "a", &format!("m{i}"))
                .expect("valid");
        }
        let h = c.history();
        assert_eq!(h.len(), CHAT_HISTORY);
        assert_eq!(h[0].text, "m50");
        assert_eq!(c.post(ParticipantId(1), "a", "   "), Err(TextError::Empty));
        assert_eq!(
            c.post(ParticipantId(1), "a", &"x".repeat(2001)),
            Err(TextError::TooLong(CHAT_MAX_CHARS))
        );
        assert_eq!(
            c.post(ParticipantId(1), "a", "hi\u{7}\nthere")
                .expect("valid")
                .text,
            "hi\nthere"
        );
    }

    #[test]
    fn questions_order_by_votes_and_answered_last() {
        let mut q = QnA::default();
        q.ask(ParticipantId(1), "a", "first?").expect("ok");
        q.ask(ParticipantId(2), "b", "second?").expect("ok");
        q.ask(ParticipantId(3), "c", "third?").expect("ok");
        assert!(q.vote(QuestionId(2), ParticipantId(9), true));
        assert!(
            !q.vote(QuestionId(2), ParticipantId(9), true),
            "one vote each"
        );
        q.vote(QuestionId(3), ParticipantId(8), true);
        q.vote(QuestionId(3), ParticipantId(9), true);
        let ids: Vec<u64> = q.list().iter().map(|x| x.id.0).collect();
        assert_eq!(ids, vec![3, 2, 1]);
        assert!(q.mark_answered(QuestionId(3)));
        let ids: Vec<u64> = q.list().iter().map(|x| x.id.0).collect();
        assert_eq!(ids, vec![2, 1, 3]);
        assert!(q.vote(QuestionId(2), ParticipantId(9), false));
        assert_eq!(q.list()[0].votes, 0);
        assert!(!q.vote(QuestionId(42), ParticipantId(9), true));
    }
}
