//! A room's peers by id, each in a stable slot: the fan-out reaches a subscriber by the slot its
//! subscriber list remembers, one read of a dense array, instead of walking a B-tree per copy.
//!
//! Peers are boxed, so the slot array stays small (a few bytes per peer, read in order by a
//! fan-out) and a peer never moves. Ids map to slots in a `BTreeMap`, which gives every other
//! use the id-ordered iteration the room had when the peers themselves were in a `BTreeMap`.
//! A freed slot is reused by the next peer in; a remembered slot is therefore checked against
//! the id it was taken for ([`PeerTable::at_mut`]), and a stale one falls back to the map.

use super::peer::Peer;
use crate::model::ParticipantId;
use std::collections::BTreeMap;
use std::ops::RangeBounds;
use str0m::media::Mid;

/// Asks the CPU to bring the cache lines of `bytes` bytes at `at` (at most four lines) into its
/// nearest cache ahead of their use: a hint that never faults, whatever the address; nothing
/// on other targets. A wide fan-out finds every subscriber's state cold (issue 16: the room
/// sleeps between frames while the viewers' traffic runs), so the fan-out asks for the next
/// subscribers' state while the current copy is sealed.
#[inline(always)]
pub fn prefetch<T>(at: *const T, bytes: usize) {
    prefetch_lines(at.cast(), bytes.clamp(1, 256));
}

/// [`prefetch`] without the clamp: every cache line of `bytes` bytes at `at`, for callers that
/// know their object's whole size (an AES-GCM context, a datagram buffer).
///
/// Written without a loop over addresses: a line every 64 bytes from `at`, then the range's
/// last byte (whose line the stride may have stepped past). The fan-out's `bytes` are
/// constants, so this unrolls into one prefetch per line, with no compare or branch (with it,
/// the fan-out's own instructions per copy went from 367 to 206 at 1 → 300, callgrind); the
/// buffer pool's is a packet's length, once per copy.
#[inline(always)]
pub fn prefetch_lines(at: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let at = at as usize;
        for i in 0..bytes.div_ceil(64) {
            // SAFETY: a prefetch reads nothing the program sees and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(i * 64) as *const i8) };
        }
        let last = at.wrapping_add(bytes.max(1) - 1);
        // SAFETY: as above.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(last as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, bytes);
}

/// Peers by id, in stable slots. Bounded by the room's peers: a slot is freed when its peer
/// leaves and taken again by the next one to join.
#[derive(Default)]
pub struct PeerTable {
    ids: BTreeMap<ParticipantId, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Slot {
    id: ParticipantId,
    peer: Option<Box<Peer>>,
}

impl PeerTable {
    /// How many peers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `id` is in.
    pub fn contains_key(&self, id: &ParticipantId) -> bool {
        self.ids.contains_key(id)
    }

    /// The slot `id` is in, for [`Self::at_mut`].
    pub fn slot_of(&self, id: &ParticipantId) -> Option<u32> {
        self.ids.get(id).copied()
    }

    /// The peer `id`.
    pub fn get(&self, id: &ParticipantId) -> Option<&Peer> {
        let slot = *self.ids.get(id)?;
        self.slots[slot as usize].peer.as_deref()
    }

    /// The peer `id`, to change.
    pub fn get_mut(&mut self, id: &ParticipantId) -> Option<&mut Peer> {
        let slot = *self.ids.get(id)?;
        self.slots[slot as usize].peer.as_deref_mut()
    }

    /// The peer `id`, tried at `slot` first: right unless `id` left since the slot was taken
    /// (the slot may hold another peer by now), checked, so a stale slot costs the map lookup.
    #[inline]
    pub fn at_mut(&mut self, slot: u32, id: ParticipantId) -> Option<&mut Peer> {
        match self.slots.get(slot as usize) {
            Some(s) if s.id == id && s.peer.is_some() => {
                self.slots[slot as usize].peer.as_deref_mut()
            }
            _ => self.get_mut(&id),
        }
    }

    /// [`Self::at_mut`], to read, with the slot the peer is in: the timer index re-reads a
    /// touched peer by the slot the fan-out knew it at (any slot, such as `u32::MAX`, when
    /// unknown: the map finds it) and keeps where it found it.
    #[inline]
    pub fn locate(&self, slot: u32, id: ParticipantId) -> Option<(u32, &Peer)> {
        let slot = match self.slots.get(slot as usize) {
            Some(s) if s.id == id && s.peer.is_some() => slot,
            _ => *self.ids.get(&id)?,
        };
        Some((slot, self.slots[slot as usize].peer.as_deref()?))
    }

    /// The peer at `slot` if it still is `id`'s, without the fallback: for hints such as a
    /// prefetch, where a stale slot means only that nothing is done.
    #[inline]
    pub fn peek(&self, slot: u32, id: ParticipantId) -> Option<&Peer> {
        match self.slots.get(slot as usize) {
            Some(s) if s.id == id => s.peer.as_deref(),
            _ => None,
        }
    }

    /// Puts `peer` in as `id`; returns the peer it replaces (which keeps its slot).
    pub fn insert(&mut self, id: ParticipantId, peer: Peer) -> Option<Peer> {
        if let Some(&slot) = self.ids.get(&id) {
            let old = self.slots[slot as usize].peer.replace(Box::new(peer));
            return old.map(|b| *b);
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Slot {
                    id,
                    peer: Some(Box::new(peer)),
                };
                slot
            }
            None => {
                self.slots.push(Slot {
                    id,
                    peer: Some(Box::new(peer)),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(id, slot);
        None
    }

    /// Takes `id` out; its slot is free for the next peer.
    pub fn remove(&mut self, id: &ParticipantId) -> Option<Peer> {
        let slot = self.ids.remove(id)?;
        let peer = self.slots[slot as usize].peer.take();
        self.free.push(slot);
        peer.map(|b| *b)
    }

    /// The ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &ParticipantId> {
        self.ids.keys()
    }

    /// (id, peer) in id order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            ids: self.ids.iter(),
            slots: &self.slots,
        }
    }

    /// (id, peer) for the ids in `range`, in id order.
    pub fn range<R: RangeBounds<ParticipantId>>(
        &self,
        range: R,
    ) -> impl Iterator<Item = (&ParticipantId, &Peer)> {
        self.ids
            .range(range)
            .filter_map(|(id, slot)| Some((id, self.slots[*slot as usize].peer.as_deref()?)))
    }

    /// The peers in id order.
    pub fn values(&self) -> impl Iterator<Item = &Peer> {
        self.iter().map(|(_, p)| p)
    }

    /// The peers, to change, in slot order (not id order: nothing that changes every peer
    /// depends on the order it does so).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Peer> {
        self.slots.iter_mut().filter_map(|s| s.peer.as_deref_mut())
    }
}

/// (id, peer) in id order: [`PeerTable::iter`].
pub struct Iter<'a> {
    ids: std::collections::btree_map::Iter<'a, ParticipantId, u32>,
    slots: &'a [Slot],
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a ParticipantId, &'a Peer);

    fn next(&mut self) -> Option<Self::Item> {
        for (id, slot) in self.ids.by_ref() {
            if let Some(p) = self.slots[*slot as usize].peer.as_deref() {
                return Some((id, p));
            }
        }
        None
    }
}

impl<'a> IntoIterator for &'a PeerTable {
    type Item = (&'a ParticipantId, &'a Peer);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One subscriber of an up-track, as its subscriber list remembers it for the fan-out.
#[derive(Debug, Clone, Copy)]
pub struct Subscriber {
    /// Who.
    pub id: ParticipantId,
    /// The slot it was in when the list was built ([`PeerTable::at_mut`] checks it).
    pub slot: u32,
    /// The m-line that receives the track.
    pub mid: Mid,
    /// That m-line's index in the subscriber's down-tracks then (see `MidMap::get_mut_at`).
    pub at: u32,
}

impl Subscriber {
    /// A list entry.
    pub fn new(id: ParticipantId, slot: u32, mid: Mid, at: u32) -> Self {
        Subscriber { id, slot, mid, at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::config::RoomConfig;
    use crate::media::webrtc::WebRtcPeer;
    use std::time::Instant;

    fn browser() -> Peer {
        let now = Instant::now();
        Peer::WebRtc(WebRtcPeer::new(false, &[], &RoomConfig::default(), now).expect("peer"))
    }

    fn ufrag(p: &Peer) -> String {
        p.webrtc().expect("browser").ufrag.clone()
    }

    #[test]
    fn a_reused_slot_never_answers_for_the_peer_that_left_it() {
        let mut t = PeerTable::default();
        let (a, b, c) = (ParticipantId(7), ParticipantId(3), ParticipantId(9));
        for id in [a, b, c] {
            assert!(t.insert(id, browser()).is_none());
        }
        let slot_a = t.slot_of(&a).expect("a is in");
        let a_frag = ufrag(t.get(&a).expect("a"));
        assert_eq!(t.at_mut(slot_a, a).map(|p| ufrag(p)), Some(a_frag.clone()));
        // Iteration is in id order, whatever the slots.
        assert_eq!(t.keys().copied().collect::<Vec<_>>(), [b, a, c]);
        assert_eq!(t.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [b, a, c]);
        // a leaves and d takes its slot: the slot remembered for a finds nothing for a.
        assert!(t.remove(&a).is_some());
        let d = ParticipantId(1);
        t.insert(d, browser());
        assert_eq!(t.slot_of(&d), Some(slot_a));
        assert!(t.at_mut(slot_a, a).is_none());
        assert!(t.peek(slot_a, a).is_none());
        // A wrong slot for a present peer still finds it (through the map).
        let b_frag = ufrag(t.get(&b).expect("b"));
        assert_eq!(t.at_mut(slot_a, b).map(|p| ufrag(p)), Some(b_frag));
        assert!(t.at_mut(999, c).is_some());
        assert!(t.locate(slot_a, a).is_none());
        assert_eq!(t.locate(u32::MAX, c).map(|(s, _)| s), t.slot_of(&c));
        assert_eq!(
            t.locate(slot_a, d).map(|(_, p)| ufrag(p)),
            t.get(&d).map(ufrag)
        );
        assert_eq!(t.len(), 3);
        assert_eq!(t.range(ParticipantId(4)..).count(), 1);
        assert_eq!(t.values_mut().count(), 3);
        // Replacing keeps the slot.
        let slot_c = t.slot_of(&c);
        assert!(t.insert(c, browser()).is_some());
        assert_eq!(t.slot_of(&c), slot_c);
        assert!(!t.contains_key(&a) && t.contains_key(&d));
    }
}
