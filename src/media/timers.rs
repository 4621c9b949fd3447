//! Each peer's next deadline in one index, so a wake visits only the peers that are due.
//!
//! Scanning every peer on each wake (to find who is due, then again for the earliest
//! deadline) was ~1,400 instructions per forwarded packet at 1 → 100. Here a min-heap of
//! `(deadline, peer)` with lazy deletion holds each peer's
//! [`Peer::next_timeout`](super::peer::Peer::next_timeout) as of its last refresh: `at` names
//! the one live entry per peer (with the slot the peer was read in), and a heap entry that
//! disagrees with it is stale and skipped when it surfaces. Stale entries are bounded: past
//! twice the live ones (plus a floor) the heap is rebuilt from `at`, one entry per peer.
//!
//! The index is only as true as what it is told. Its rule: whoever may move a peer's deadline
//! *earlier* touches the peer ([`Timers::touch`]); the touched peers' deadlines are read again
//! at the next [`Timers::refresh`] (when the router hands out its timeout and when time
//! passes). A deadline that moved *later* unseen only costs a spurious wake: the peer is
//! checked again when its stale entry comes due. What touches, in the router:
//! - draining a peer's `Rtc` (its timeout is read there), and the peer a datagram came from;
//! - the fan-out, for each subscriber its write made want time sooner (a str0m write makes
//!   the subscriber due now; lean video the pacer holds gives it a pacer wake): str0m's
//!   "drain after every change" holds because such a subscriber is registered as due now and
//!   drained by the room's next `handle_timeout`;
//! - a peer handled in `handle_timeout`;
//! - everything else (signalling, allocation, audio slots, relay inputs) re-reads every
//!   peer ([`Timers::touch_all`]): those are rare, and it keeps this rule out of their code.
//!   The reaper's scan does it too (every 250 ms), so a missed touch costs a late wake at
//!   worst, never a peer that is never woken.

use super::fast::grid::Grid;
use super::peer_table::PeerTable;
use crate::model::ParticipantId;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Stale entries the heap may hold beyond its live ones before it is rebuilt.
const STALE_FLOOR: usize = 64;

/// Deadlines of a room's peers (see the module docs).
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    /// Each peer's live deadline (the heap entry that counts) and the slot it was last read
    /// in: a wake reaches the peer by one array read instead of a map walk (checked by id, as
    /// the fan-out's slots are). Keys are the server's own ids, not a peer's choice, so the
    /// fast non-keyed hasher is safe.
    at: FxHashMap<ParticipantId, (Instant, u32)>,
    /// Peers whose deadline may have moved since the last refresh (may repeat), with the slot
    /// they were last seen in (`u32::MAX` when the toucher did not know it): the fan-out
    /// pushes here directly, with the slot its subscriber list has, and the refresh reads
    /// each peer there instead of walking the id map per paced copy.
    pub(super) touched: Vec<(ParticipantId, u32)>,
    /// Every peer must be read again.
    all: bool,
    /// Peers found, in [`Self::audit`], wanting time before the index would have woken them:
    /// a touch missing somewhere (tests assert none).
    pub misses: u64,
    /// The input being handled touches what it changes itself (`handle_receive`,
    /// `handle_timeout`): settling it does not re-read every peer.
    pub hot: bool,
    /// The room's time grid (see `fast/grid.rs`), based where it was first asked for.
    grid: Option<Grid>,
}

impl Timers {
    /// The room's grid: periodic work scheduled on it shares the room's wakes.
    pub fn grid(&mut self, now: Instant) -> Grid {
        *self.grid.get_or_insert_with(|| Grid::new(now))
    }

    /// `id`'s deadline may have moved: read it again at the next refresh.
    pub fn touch(&mut self, id: ParticipantId) {
        self.touch_at(id, u32::MAX);
    }

    /// [`Self::touch`] for a peer the caller knows to be in `slot`.
    pub fn touch_at(&mut self, id: ParticipantId, slot: u32) {
        if !self.all {
            self.touched.push((id, slot));
        }
    }

    /// Every peer's deadline may have moved.
    pub fn touch_all(&mut self) {
        self.all = true;
        self.touched.clear();
    }

    /// Reads the touched peers' deadlines again (all of them after [`Self::touch_all`]).
    pub fn refresh(&mut self, peers: &PeerTable) {
        if std::mem::take(&mut self.all) {
            self.touched.clear();
            self.at.retain(|id, _| peers.contains_key(id));
            for (id, p) in peers {
                let slot = peers.slot_of(id).unwrap_or(u32::MAX);
                self.set(*id, slot, p.next_timeout());
            }
        } else {
            let mut touched = std::mem::take(&mut self.touched);
            for (id, slot) in touched.drain(..) {
                // A stale slot (the peer moved, or the toucher did not know it) is found again
                // by id, so the index keeps where it is now.
                match peers.locate(slot, id) {
                    Some((slot, p)) => self.set(id, slot, p.next_timeout()),
                    None => self.set(id, u32::MAX, None),
                }
            }
            self.touched = touched;
        }
    }

    fn set(&mut self, id: ParticipantId, slot: u32, deadline: Option<Instant>) {
        match deadline {
            Some(t) => {
                if self.at.insert(id, (t, slot)).map(|(was, _)| was) != Some(t) {
                    self.heap.push(Reverse((t, id)));
                    if self.heap.len() > 2 * self.at.len() + STALE_FLOOR {
                        self.heap = self
                            .at
                            .iter()
                            .map(|(id, (t, _))| Reverse((*t, *id)))
                            .collect();
                    }
                }
            }
            None => {
                self.at.remove(&id);
            }
        }
    }

    /// Counts the peers whose deadline is earlier than the index knows (see [`Self::misses`]);
    /// skipped when every peer is about to be re-read anyway.
    pub fn audit(&mut self, peers: &PeerTable) {
        if self.all {
            return;
        }
        self.refresh(peers);
        for (id, p) in peers {
            let known = self.at.get(id).map(|(t, _)| *t);
            if p.next_timeout()
                .is_some_and(|t| known.is_none_or(|k| t < k))
            {
                self.misses += 1;
            }
        }
    }

    /// The earliest deadline of any peer, as of the last refresh.
    pub fn next(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, id))) = self.heap.peek() {
            if self.at.get(&id).is_some_and(|(live, _)| *live == t) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes the peers due by `now` out of the index into `due` (in deadline order), each
    /// with the slot it was last read in (check it by id: [`PeerTable::at_mut`]); each must
    /// be touched once handled, which puts it back.
    pub fn take_due(&mut self, now: Instant, due: &mut Vec<(ParticipantId, u32)>) {
        while let Some(&Reverse((t, id))) = self.heap.peek() {
            if t > now {
                break;
            }
            self.heap.pop();
            // One probe: the live entry is taken out, a stale one left alone.
            if let Entry::Occupied(e) = self.at.entry(id) {
                if e.get().0 == t {
                    let (_, slot) = e.remove();
                    due.push((id, slot));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// A full scan's answer, what the index must agree with.
    fn earliest(deadlines: &BTreeMap<u64, Instant>) -> Option<Instant> {
        deadlines.values().min().copied()
    }

    /// Drives the index through moves earlier and later, removals and wakes, against a plain
    /// map of deadlines (the `Peer`s are stood in for by `set`, which is what refresh calls).
    #[test]
    fn agrees_with_a_full_scan_through_moves_removals_and_wakes() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        let mut truth: BTreeMap<u64, Instant> = BTreeMap::new();
        let mut seed = 0x2545_f491_u64;
        let mut now = t0;
        for step in 0..20_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let id = seed % 40;
            match seed % 7 {
                // A peer's deadline moves (either way) or it appears.
                0..=3 => {
                    let t = ms(step + (seed >> 8) % 300);
                    truth.insert(id, t);
                    timers.set(ParticipantId(id), 0, Some(t));
                }
                // It leaves (or has nothing to wait for).
                4 => {
                    truth.remove(&id);
                    timers.set(ParticipantId(id), 0, None);
                }
                // Time passes: exactly the due peers come out, in deadline order.
                _ => {
                    now = now.max(ms(step));
                    let mut due = vec![];
                    timers.take_due(now, &mut due);
                    let mut want: Vec<u64> = truth
                        .iter()
                        .filter(|(_, t)| **t <= now)
                        .map(|(id, _)| *id)
                        .collect();
                    let mut got: Vec<u64> = due.iter().map(|(p, _)| p.0).collect();
                    let in_order = due
                        .windows(2)
                        .all(|w| truth[&w[0].0 .0] <= truth[&w[1].0 .0]);
                    assert!(in_order, "due out of deadline order at step {step}");
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "step {step}");
                    // Handled: each gets a later deadline back.
                    for id in got {
                        let t = now + Duration::from_millis(1 + id);
                        truth.insert(id, t);
                        timers.set(ParticipantId(id), 0, Some(t));
                    }
                }
            }
            assert_eq!(timers.next(), earliest(&truth), "step {step}");
            assert!(timers.heap.len() <= 2 * timers.at.len() + STALE_FLOOR + 1);
        }
    }

    #[test]
    fn touches_wait_for_refresh_and_touch_all_reads_everyone() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.touch(ParticipantId(1));
        timers.touch_all();
        assert!(timers.touched.is_empty());
        timers.touch(ParticipantId(2));
        assert!(timers.touched.is_empty(), "a full re-read covers it");
        timers.refresh(&PeerTable::default());
        assert_eq!(timers.next(), None);
        timers.set(ParticipantId(3), 0, Some(t0));
        timers.touch(ParticipantId(3));
        // Peer 3 is gone from the room: the refresh forgets it.
        timers.refresh(&PeerTable::default());
        assert_eq!(timers.next(), None);
    }
}
