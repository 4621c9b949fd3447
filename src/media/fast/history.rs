//! Retransmission without per-subscriber copies: one payload history per source, a small seq map per subscriber.
//!
//! A [`SourceHistory`] keeps the recent packets of one source (one publisher's stream or
//! simulcast layer), bounded in bytes, age and count; every subscriber of that source asks it
//! by source sequence number. A subscriber keeps only a [`SeqMap`]: for each sequence number
//! it sent, the source (layer index), the low 32 bits of the source's sequence number and its
//! own RTP timestamp, 9 bytes per packet in a ring. On a NACK the subscriber maps its own
//! sequence number to the source's, fetches the payload, and sends it as RTX
//! ([`rtx_payload`]) numbered by its own [`RtxSequencer`], at most once per round trip
//! ([`SeqMap::first_resend`]). Evicted packet buffers are reused, so the steady state
//! allocates nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// [`SourceHistory`]'s bounds.
#[derive(Clone, Debug)]
pub struct HistoryConfig {
    /// Payload bytes kept (capacity of the buffers). Default 1 MiB.
    pub max_bytes: usize,
    /// Oldest packet kept: a NACK answered later than this is useless. Default 1 s.
    pub max_age: Duration,
    /// Packets kept. Default 4,096.
    pub max_packets: usize,
    /// Largest packet stored. Default 1,500 bytes.
    pub max_packet_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(1),
            max_packets: 4_096,
            max_packet_bytes: 1_500,
        }
    }
}

/// Why a packet was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Larger than [`HistoryConfig::max_packet_bytes`].
    TooLarge,
    /// Its sequence number is not newer than the newest stored (reordered or repeated): it
    /// cannot be retransmitted.
    NotNewer,
}

struct Entry {
    seq: u64,
    at: Instant,
    /// The RTP marker bit it arrived with (the retransmission carries it again).
    marker: bool,
    data: Vec<u8>,
}

/// The recent packets of one source.
pub struct SourceHistory {
    config: HistoryConfig,
    entries: VecDeque<Entry>,
    /// Evicted buffers, reused for the next packets.
    spare: Vec<Vec<u8>>,
    /// Sum of the capacities of `entries` and `spare`.
    bytes: usize,
}

impl SourceHistory {
    /// An empty history.
    pub fn new(config: HistoryConfig) -> Self {
        SourceHistory {
            config,
            entries: VecDeque::new(),
            spare: Vec::new(),
            bytes: 0,
        }
    }

    /// Bytes held in packet buffers (live and spare); at most [`HistoryConfig::max_bytes`]
    /// plus one packet.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no packet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest stored sequence number.
    pub fn newest(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }

    /// Stores a copy of `packet` as source sequence number `seq`, evicting what is too old or
    /// over the bounds.
    pub fn insert(&mut self, now: Instant, seq: u64, packet: &[u8]) -> Result<(), NotStored> {
        self.insert_rtp(now, seq, false, packet)
    }

    /// [`Self::insert`] for an RTP payload, keeping its marker bit.
    pub fn insert_rtp(
        &mut self,
        now: Instant,
        seq: u64,
        marker: bool,
        packet: &[u8],
    ) -> Result<(), NotStored> {
        if packet.len() > self.config.max_packet_bytes {
            return Err(NotStored::TooLarge);
        }
        if self.newest().is_some_and(|n| seq <= n) {
            return Err(NotStored::NotNewer);
        }
        self.expire(now);
        while self.entries.len() >= self.config.max_packets
            || self.bytes + packet.len() > self.config.max_bytes && !self.entries.is_empty()
        {
            self.evict_oldest();
            // Spare buffers count against the bound too; free them first when over.
            while self.bytes + packet.len() > self.config.max_bytes {
                match self.spare.pop() {
                    Some(b) => self.bytes -= b.capacity(),
                    None => break,
                }
            }
        }
        let mut data = match self.spare.pop() {
            Some(b) => {
                self.bytes -= b.capacity();
                b
            }
            None => Vec::new(),
        };
        data.clear();
        data.extend_from_slice(packet);
        self.bytes += data.capacity();
        self.entries.push_back(Entry {
            seq,
            at: now,
            marker,
            data,
        });
        Ok(())
    }

    fn evict_oldest(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.spare.push(e.data);
        }
    }

    /// Drops packets older than [`HistoryConfig::max_age`].
    pub fn expire(&mut self, now: Instant) {
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > self.config.max_age)
        {
            self.evict_oldest();
        }
    }

    /// The packet stored as `seq`, if still held and not older than the age bound at `now`.
    pub fn get(&self, now: Instant, seq: u64) -> Option<&[u8]> {
        self.get_rtp(now, seq).map(|(_, data)| data)
    }

    /// [`Self::get`] with the marker bit the packet was stored with.
    pub fn get_rtp(&self, now: Instant, seq: u64) -> Option<(bool, &[u8])> {
        let i = self.entries.binary_search_by_key(&seq, |e| e.seq).ok()?;
        let e = &self.entries[i];
        (now.saturating_duration_since(e.at) <= self.config.max_age)
            .then_some((e.marker, &e.data[..]))
    }

    /// The stored sequence number whose low 32 bits are `low` (the newest such).
    pub fn unwrap_low32(&self, low: u32) -> Option<u64> {
        let newest = self.newest()?;
        let candidate = (newest & !0xffff_ffff) | u64::from(low);
        if candidate <= newest {
            Some(candidate)
        } else {
            candidate.checked_sub(1 << 32)
        }
    }
}

/// Where a subscriber's packet came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceRef {
    /// Which of the subscriber's sources (e.g. simulcast layer index).
    pub source: u8,
    /// Low 32 bits of the source's sequence number; [`SourceHistory::unwrap_low32`] widens it.
    pub seq_low32: u32,
    /// The RTP timestamp the subscriber's packet carried (a retransmission repeats it).
    pub time: u32,
}

const NO_SOURCE: u8 = u8::MAX;

/// Most retransmissions one [`SeqMap`] remembers for [`SeqMap::first_resend`] (a NACK
/// names at most a few dozen packets; older entries are pruned by the window first).
const RESENT_KEPT: usize = 128;

/// One packet of a [`SeqMap`]: the three facts a NACK needs, side by side so recording a
/// forwarded copy writes one cache line (packed: 9 bytes, not 12).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed)]
struct SeqEntry {
    seq: u32,
    time: u32,
    source: u8,
}

const EMPTY: SeqEntry = SeqEntry {
    seq: 0,
    time: 0,
    source: NO_SOURCE,
};

/// A subscriber's map from its own sequence numbers to the sources': 9 bytes per packet.
#[derive(Clone, Debug)]
pub struct SeqMap {
    entries: Box<[SeqEntry]>,
    newest: Option<u64>,
    /// What was retransmitted lately, and when: a packet goes again only after a round trip.
    resent: VecDeque<(u64, Instant)>,
}

impl SeqMap {
    /// A map of the last `capacity` packets (rounded up to a power of two, at least 64).
    /// 1,024 covers 1 s of 1,000 packets per second: the history's age bound.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.clamp(64, 1 << 16).next_power_of_two();
        SeqMap {
            entries: vec![EMPTY; n].into_boxed_slice(),
            newest: None,
            resent: VecDeque::new(),
        }
    }

    /// Heap bytes (the retransmission memory, at most `RESENT_KEPT` × 16 bytes, aside).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
    }

    /// Records that the subscriber's packet `out_seq`, stamped `time`, carried `source`'s
    /// packet `source_seq`. `source` must be under 255.
    pub fn record(&mut self, out_seq: u64, source: u8, source_seq: u64, time: u32) {
        let n = self.entries.len() as u64;
        let mask = self.entries.len() - 1;
        match self.newest {
            Some(newest) if out_seq + n <= newest => return, // older than the ring
            Some(newest) if out_seq > newest => {
                // Numbers skipped in between (none on a contiguous stream) map to nothing.
                for s in (newest + 1).max(out_seq.saturating_sub(n))..out_seq {
                    self.entries[s as usize & mask].source = NO_SOURCE;
                }
                self.newest = Some(out_seq);
            }
            Some(_) => {}
            None => self.newest = Some(out_seq),
        }
        self.entries[out_seq as usize & mask] = SeqEntry {
            seq: source_seq as u32,
            time,
            source: source.min(NO_SOURCE - 1),
        };
    }

    /// Whether `out_seq` may be retransmitted now: not if it already was within `window` (a
    /// round trip: the receiver asks again before the first copy could have arrived). Says yes
    /// at most once per window, and remembers the yes.
    pub fn first_resend(&mut self, out_seq: u64, now: Instant, window: Duration) -> bool {
        while self
            .resent
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= window)
        {
            self.resent.pop_front();
        }
        if self.resent.iter().any(|(s, _)| *s == out_seq) {
            return false;
        }
        if self.resent.len() == RESENT_KEPT {
            self.resent.pop_front();
        }
        self.resent.push_back((out_seq, now));
        true
    }

    /// The source of the subscriber's packet whose wire sequence number is `wire` (from a
    /// NACK), if it is recent enough to be in the map.
    pub fn lookup_wire(&self, wire: u16) -> Option<SourceRef> {
        self.lookup(self.unwrap_wire(wire)?)
    }

    /// The subscriber's sequence number whose low 16 bits are `wire` (the newest such).
    pub fn unwrap_wire(&self, wire: u16) -> Option<u64> {
        let newest = self.newest?;
        let candidate = (newest & !0xffff) | u64::from(wire);
        if candidate <= newest {
            Some(candidate)
        } else {
            candidate.checked_sub(1 << 16)
        }
    }

    /// The source of the subscriber's packet `out_seq`.
    pub fn lookup(&self, out_seq: u64) -> Option<SourceRef> {
        let newest = self.newest?;
        if out_seq > newest || out_seq + self.entries.len() as u64 <= newest {
            return None;
        }
        let e = self.entries[out_seq as usize & (self.entries.len() - 1)];
        (e.source != NO_SOURCE).then_some(SourceRef {
            source: e.source,
            seq_low32: e.seq,
            time: e.time,
        })
    }
}

/// The histories of one track's layers (index = layer), each made on its first packet, so a
/// room on str0m's send path keeps none.
#[derive(Default)]
pub struct Histories(Vec<SourceHistory>);

/// Most layers a track keeps histories for (simulcast has three).
const MAX_LAYERS: u8 = 4;

impl Histories {
    /// Bounds of each layer's history: 1 s (what a NACK can still repair in time, as on
    /// str0m's path) and 512 KiB, which holds a second of a 4 Mbit/s layer.
    pub fn config() -> HistoryConfig {
        HistoryConfig {
            max_bytes: 512 * 1024,
            max_packets: 2_048,
            ..HistoryConfig::default()
        }
    }

    /// Stores one packet of `layer`; a packet that cannot be stored (reordered, too large)
    /// is only not repairable.
    pub fn store(&mut self, now: Instant, layer: u8, seq: u64, marker: bool, payload: &[u8]) {
        if layer >= MAX_LAYERS {
            return;
        }
        while self.0.len() <= usize::from(layer) {
            self.0.push(SourceHistory::new(Self::config()));
        }
        let _ = self.0[usize::from(layer)].insert_rtp(now, seq, marker, payload);
    }

    /// The history of `layer`, once it has had a packet.
    pub fn layer(&self, layer: u8) -> Option<&SourceHistory> {
        self.0.get(usize::from(layer))
    }

    /// Bytes held over all layers.
    pub fn bytes(&self) -> usize {
        self.0.iter().map(SourceHistory::bytes).sum()
    }
}

impl std::fmt::Debug for Histories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Histories({} layers, {} bytes)",
            self.0.len(),
            self.bytes()
        )
    }
}

/// A subscriber's RTX sequence numbers (its own space, RFC 4588), 64-bit inside.
#[derive(Debug, Default)]
pub struct RtxSequencer {
    next: u64,
}

impl RtxSequencer {
    /// Starts at `first` (pick it at random for a new stream).
    pub fn new(first: u16) -> Self {
        RtxSequencer {
            next: u64::from(first),
        }
    }

    /// The next RTX sequence number; put its low 16 bits on the wire.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.next;
        self.next += 1;
        s
    }
}

/// Writes an RTX payload (RFC 4588 §4: the original sequence number, then the original
/// payload) into `out`, replacing its contents.
pub fn rtx_payload(original_seq: u16, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&original_seq.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
