//! An edge room's viewer offers that name stage tracks the origin has not announced here yet,
//! held until the track list names them.
//!
//! A viewer learns of a new stage track from the origin's signalling and offers to receive it
//! on the edge; the origin's track list reaches the edge room over the control link. The two
//! paths race: an offer that wins would subscribe to an id the edge router does not know, and
//! that subscription would be ignored for good (the viewer would never get the track). Origin
//! track ids only grow, so an id above the highest announced one is a track still on its way:
//! such an offer, and anything the same viewer sends after it, waits for the next track list,
//! or [`MAX_WAIT`] at most (then it is handled as it is: the track may have gone meanwhile).

use crate::protocol::{ClientMsg, ParticipantId, TrackId};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Longest an offer waits for its tracks.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Messages held at most (a few per viewer while a stage track is announced); past it
/// messages are handled at once.
pub const MAX_WAITING: usize = 1024;

/// Held viewer messages of one edge room.
#[derive(Default)]
pub struct EdgeOffers {
    /// The highest track id the origin announced here.
    newest: Option<TrackId>,
    waiting: VecDeque<(Instant, ParticipantId, ClientMsg)>,
}

impl EdgeOffers {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether `msg` is an offer naming a track the room does not have (`known` says which
    /// it has) above every id announced so far.
    fn early(&self, msg: &ClientMsg, known: &impl Fn(TrackId) -> bool) -> bool {
        match msg {
            ClientMsg::Offer { subscribe, .. } => subscribe
                .values()
                .any(|t| !known(*t) && self.newest.is_none_or(|n| *t > n)),
            _ => false,
        }
    }

    /// A viewer's message: back when it can be handled now, `None` when it is held.
    pub fn hold(
        &mut self,
        id: ParticipantId,
        msg: ClientMsg,
        now: Instant,
        known: impl Fn(TrackId) -> bool,
    ) -> Option<ClientMsg> {
        let behind = self.waiting.iter().any(|(_, p, _)| *p == id);
        if (behind || self.early(&msg, &known)) && self.waiting.len() < MAX_WAITING {
            self.waiting.push_back((now, id, msg));
            return None;
        }
        Some(msg)
    }

    /// The origin's track list arrived (the ids of every track it names).
    pub fn announced(&mut self, ids: impl IntoIterator<Item = TrackId>) {
        if let Some(max) = ids.into_iter().max() {
            self.newest = Some(self.newest.map_or(max, |n| n.max(max)));
        }
    }

    /// Messages that may be handled now, in the order they came: offers whose tracks were
    /// announced or that waited [`MAX_WAIT`], and what their senders sent after them (the
    /// caller drops those of viewers who left meanwhile).
    pub fn release(
        &mut self,
        now: Instant,
        known: impl Fn(TrackId) -> bool,
    ) -> Vec<(ParticipantId, ClientMsg)> {
        let mut out = vec![];
        let mut blocked: Vec<ParticipantId> = vec![];
        let mut keep = VecDeque::new();
        for (at, id, msg) in std::mem::take(&mut self.waiting) {
            let wait = blocked.contains(&id)
                || (self.early(&msg, &known) && now.saturating_duration_since(at) < MAX_WAIT);
            if wait {
                blocked.push(id);
                keep.push_back((at, id, msg));
            } else {
                out.push((id, msg));
            }
        }
        self.waiting = keep;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn none(_: TrackId) -> bool {
        false
    }

    fn offer(tracks: &[u64]) -> ClientMsg {
        ClientMsg::Offer {
            sdp: "v=0".into(),
            publish: BTreeMap::new(),
            subscribe: tracks
                .iter()
                .enumerate()
                .map(|(i, t)| (i.to_string(), TrackId(*t)))
                .collect(),
            audio_slots: vec![],
        }
    }

    #[test]
    fn an_offer_for_a_track_not_yet_announced_waits_for_the_list() {
        let t0 = Instant::now();
        let (a, b) = (ParticipantId(1), ParticipantId(2));
        let mut w = EdgeOffers::default();
        w.announced([TrackId(1), TrackId(2)]);
        assert!(
            w.hold(a, offer(&[1, 2]), t0, none).is_some(),
            "known tracks pass"
        );
        assert!(
            w.hold(a, offer(&[1, 2, 3]), t0, none).is_none(),
            "track 3 is on its way"
        );
        // What the same viewer sends next keeps its place behind the offer; others pass.
        let sizes = ClientMsg::VideoSizes {
            sizes: BTreeMap::new(),
        };
        assert!(w.hold(a, sizes, t0, none).is_none());
        assert!(w.hold(b, offer(&[2]), t0, none).is_some());
        assert!(w.release(t0, none).is_empty());
        w.announced([TrackId(1), TrackId(2), TrackId(3)]);
        let out = w.release(t0, none);
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0].1, ClientMsg::Offer { .. }));
        assert!(matches!(out[1].1, ClientMsg::VideoSizes { .. }));
        assert!(w.is_empty());
        // A track the room has (an edge's own) never waits, whatever its id.
        assert!(w.hold(a, offer(&[1 << 40]), t0, |_| true).is_some());
    }

    #[test]
    fn an_offer_waits_at_most_max_wait() {
        let t0 = Instant::now();
        let mut w = EdgeOffers::default();
        assert!(w.hold(ParticipantId(1), offer(&[9]), t0, none).is_none());
        assert!(w.release(t0 + MAX_WAIT / 2, none).is_empty());
        assert_eq!(w.release(t0 + MAX_WAIT, none).len(), 1);
        assert!(w.is_empty());
    }
}
