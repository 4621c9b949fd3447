//! Each peer's next deadline in one index, so a wake visits only the peers that are due.
//!
//! Scanning every peer on each wake (to find who is due, then again for the earliest
//! deadline) was ~1,400 instructions per forwarded packet at 1 → 100. Here a min-heap of
//! `(deadline, peer)` with lazy deletion holds each peer's
//! [`Peer::next_timeout`](super::peer::Peer::next_timeout) as of its last refresh: `at` names
//! the one live entry per peer (with the slot the peer was read in), and an entry that
//! disagrees with it is stale and skipped when it surfaces.
//!
//! With estimation on, every lean viewer's deadline is the same boundary of the room's grid
//! (`fast/grid.rs`): a deadline exactly on a boundary goes to that boundary's queue (a `Vec`,
//! pushed in O(1), taken whole when due) instead of the heap, whose pop and push were ~50
//! instructions per forwarded packet at 1 → 100. A few boundaries have queues at once; any
//! other deadline stays in the heap. Taken entries come out in `(deadline, id)` order, the
//! order the heap alone gave. Stale entries are bounded: past twice the live ones (plus a
//! floor), heap and queues are rebuilt from `at`, one entry per peer.
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

use super::fast::grid::{Grid, SLOT};
use super::peer_table::PeerTable;
use crate::model::ParticipantId;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Stale entries heap and queues may hold beyond the live ones before they are rebuilt.
const STALE_FLOOR: usize = 64;

/// Most grid boundaries with a queue at once; a deadline on another boundary goes to the
/// heap. Lean deadlines are the next tick's boundary (a report's is a tick's), so two are
/// enough while one is being served and the next filled; a few more absorb stragglers.
const SLOT_QUEUES: usize = 4;

/// The grid's step in nanoseconds; a second is whole steps, so whether an instant is on the
/// grid is read from its sub-second nanoseconds alone.
const SLOT_NS: u32 = SLOT.as_nanos() as u32;
const _: () = assert!(1_000_000_000 % SLOT_NS == 0);

/// Deadlines of a room's peers (see the module docs).
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    /// Deadlines on a grid boundary: one queue per boundary, earliest first, at most
    /// [`SLOT_QUEUES`]. Entries are in no order (sorted when taken) and may be stale.
    slots: Vec<(Instant, Vec<ParticipantId>)>,
    /// Entries over all `slots`, for the stale bound.
    slotted: usize,
    /// Emptied queues, kept for their allocation (at most [`SLOT_QUEUES`]).
    spare: Vec<Vec<ParticipantId>>,
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
    /// The room's time grid (see `fast/grid.rs`), based where it was first asked for, and
    /// that base (which boundaries get a queue).
    grid: Option<(Grid, Instant)>,
    /// A lean peer schedules its deadlines on the grid ([`Self::lean_grid`]): only then are
    /// boundary queues worth their check (str0m's own deadlines are off the grid, and the
    /// check cost its path ~40 instructions per forwarded packet).
    queues: bool,
}

impl Timers {
    /// The room's grid: periodic work scheduled on it shares the room's wakes.
    pub fn grid(&mut self, now: Instant) -> Grid {
        self.grid.get_or_insert_with(|| (Grid::new(now), now)).0
    }

    /// [`Self::grid`] for a lean peer, whose deadlines are on it: boundary queues are used.
    pub fn lean_grid(&mut self, now: Instant) -> Grid {
        self.queues = true;
        self.grid(now)
    }

    /// Whether `t` is a boundary of the room's grid. Only decides where an entry is kept:
    /// a queue holds any one instant correctly.
    fn on_grid(&self, t: Instant) -> bool {
        self.queues
            && self.grid.is_some_and(|(_, base)| {
                t.checked_duration_since(base)
                    .is_some_and(|d| d.subsec_nanos() % SLOT_NS == 0)
            })
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
                    self.push(t, id);
                    if self.heap.len() + self.slotted > 2 * self.at.len() + STALE_FLOOR {
                        self.rebuild();
                    }
                }
            }
            None => {
                self.at.remove(&id);
            }
        }
    }

    /// Files a new live entry: in its boundary's queue if it has one or may get one, else in
    /// the heap.
    #[inline]
    fn push(&mut self, t: Instant, id: ParticipantId) {
        // The boundary being filled is the latest queue: looked for from the back.
        let mut at = 0;
        for (i, (q_t, q)) in self.slots.iter_mut().enumerate().rev() {
            if *q_t == t {
                q.push(id);
                self.slotted += 1;
                return;
            }
            if *q_t < t {
                at = i + 1;
                break;
            }
        }
        if self.slots.len() < SLOT_QUEUES && self.on_grid(t) {
            let mut q = self.spare.pop().unwrap_or_default();
            q.push(id);
            self.slots.insert(at, (t, q));
            self.slotted += 1;
        } else {
            self.heap.push(Reverse((t, id)));
        }
    }

    /// Heap and queues again from `at`: one entry per peer, no stale ones.
    fn rebuild(&mut self) {
        self.heap.clear();
        for (_, q) in std::mem::take(&mut self.slots) {
            self.recycle(q);
        }
        self.slotted = 0;
        let at = std::mem::take(&mut self.at);
        for (id, (t, _)) in &at {
            self.push(*t, *id);
        }
        self.at = at;
    }

    /// Puts an emptied queue back for its allocation.
    fn recycle(&mut self, mut q: Vec<ParticipantId>) {
        if self.spare.len() < SLOT_QUEUES {
            q.clear();
            self.spare.push(q);
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
        let mut heap = None;
        while let Some(&Reverse((t, id))) = self.heap.peek() {
            if self.at.get(&id).is_some_and(|(live, _)| *live == t) {
                heap = Some(t);
                break;
            }
            self.heap.pop();
        }
        // The first queue with a live entry is the earliest one: stale entries are dropped
        // from the back of the first queue until one is live, emptied queues put away.
        let mut queued = None;
        while let Some((t, q)) = self.slots.first_mut() {
            while let Some(id) = q.last() {
                if self.at.get(id).is_some_and(|(live, _)| live == t) {
                    break;
                }
                q.pop();
                self.slotted -= 1;
            }
            if !q.is_empty() {
                queued = Some(*t);
                break;
            }
            let (_, q) = self.slots.remove(0);
            self.recycle(q);
        }
        heap.into_iter().chain(queued).min()
    }

    /// Takes the peers due by `now` out of the index into `due` (in deadline order), each
    /// with the slot it was last read in (check it by id: [`PeerTable::at_mut`]); each must
    /// be touched once handled, which puts it back.
    pub fn take_due(&mut self, now: Instant, due: &mut Vec<(ParticipantId, u32)>) {
        while let Some(&(t, _)) = self.slots.first().filter(|(t, _)| *t <= now) {
            self.take_heap(|h| h < t, due);
            let from = due.len();
            let (_, mut q) = self.slots.remove(0);
            self.slotted -= q.len();
            for id in q.drain(..) {
                self.take_live(t, id, due);
            }
            self.recycle(q);
            // The heap's entries for the same instant join them, and equal deadlines leave in
            // id order, as from the heap alone (the queue holds them in touch order).
            self.take_heap(|h| h <= t, due);
            due[from..].sort_unstable_by_key(|(id, _)| *id);
        }
        self.take_heap(|h| h <= now, due);
    }

    /// Pops the heap's entries while `take` says so, the live ones into `due`.
    fn take_heap(&mut self, take: impl Fn(Instant) -> bool, due: &mut Vec<(ParticipantId, u32)>) {
        while let Some(&Reverse((t, id))) = self.heap.peek() {
            if !take(t) {
                break;
            }
            self.heap.pop();
            self.take_live(t, id, due);
        }
    }

    /// One probe: the live entry for `(t, id)` is taken out into `due`, a stale one left
    /// alone (a peer listed twice for one deadline comes out once).
    #[inline]
    fn take_live(&mut self, t: Instant, id: ParticipantId, due: &mut Vec<(ParticipantId, u32)>) {
        if let Entry::Occupied(e) = self.at.entry(id) {
            if e.get().0 == t {
                let (_, slot) = e.remove();
                due.push((id, slot));
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
    /// With `grid`, most deadlines are grid boundaries shared by many peers, as lean viewers'
    /// are: they go through the boundary queues.
    fn agrees_with_a_full_scan(grid: bool) {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        let g = grid.then(|| timers.lean_grid(t0));
        // Half the deadlines on the grid's next boundary when there is one.
        let snap = |t: Instant, seed: u64| match g {
            Some(g) if seed & 0x100 != 0 => g.ceil(t),
            _ => t,
        };
        let mut truth: BTreeMap<u64, Instant> = BTreeMap::new();
        let mut seed = 0x2545_f491_u64;
        let mut now = t0;
        let mut queued = 0;
        for step in 0..20_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let id = seed % 40;
            match seed % 7 {
                // A peer's deadline moves (either way) or it appears.
                0..=3 => {
                    let t = snap(ms(step + (seed >> 10) % 300), seed);
                    truth.insert(id, t);
                    timers.set(ParticipantId(id), 0, Some(t));
                }
                // It leaves (or has nothing to wait for).
                4 => {
                    truth.remove(&id);
                    timers.set(ParticipantId(id), 0, None);
                }
                // Time passes: exactly the due peers come out, in (deadline, id) order.
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
                    let in_order = due.windows(2).all(|w| {
                        let (a, b) = (w[0].0 .0, w[1].0 .0);
                        (truth[&a], a) < (truth[&b], b)
                    });
                    assert!(in_order, "due out of (deadline, id) order at step {step}");
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "step {step}");
                    // Handled: each gets a later deadline back.
                    for id in got {
                        let t = snap(now + Duration::from_millis(1 + id), seed);
                        truth.insert(id, t);
                        timers.set(ParticipantId(id), 0, Some(t));
                    }
                }
            }
            assert_eq!(timers.next(), earliest(&truth), "step {step}");
            let entries = timers.heap.len() + timers.slotted;
            assert!(entries <= 2 * timers.at.len() + STALE_FLOOR + 1);
            assert!(timers.slots.len() <= SLOT_QUEUES && timers.spare.len() <= SLOT_QUEUES);
            let slotted: usize = timers.slots.iter().map(|(_, q)| q.len()).sum();
            assert_eq!(timers.slotted, slotted);
            assert!(timers.slots.windows(2).all(|w| w[0].0 < w[1].0));
            queued += slotted;
        }
        assert_eq!(
            queued > 0,
            grid,
            "the boundary queues were used (only on a grid)"
        );
    }

    #[test]
    fn agrees_with_a_full_scan_through_moves_removals_and_wakes() {
        agrees_with_a_full_scan(false);
    }

    #[test]
    fn boundary_queues_agree_with_a_full_scan_and_keep_the_heaps_order() {
        agrees_with_a_full_scan(true);
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
