//! Relay repair: the edge finds gaps in each relayed source's numbers and asks again; the
//! origin reseals the missing packets from a bounded per-source history of what it sent.
//!
//! The relay keeps the publisher's sequence numbers per (track, layer), so a datagram lost
//! between the nodes is a gap the edge sees at the next packet of that source. The edge asks
//! the origin over the control link ([`RelayEvent::Resend`], carried as `LinkMsg::Resend`):
//! the link is already authenticated and ordered, and a request is a few bytes per lost
//! packet, where a datagram back would need a second key direction and a receive path on the
//! origin's media port. The origin looks each number up in the link's [`RepairStore`] (a
//! [`SourceHistory`] per source, as the lean path keeps for NACKs) and seals the packet again
//! under the link's next index: a nonce is never used twice, and the edge's replay window takes
//! the copy as new. The edge forwards a packet once: a second copy of a number already
//! forwarded is dropped ([`Arrival::Duplicate`]).
//!
//! Bounds: the origin keeps at most [`MAX_SOURCES`] sources per link, each
//! [`store_config`] (512 KiB, 2,048 packets, 1 s), and reseals at most [`RESEND_PER_SEC`]
//! packets a second per link; the edge asks for a gap only up to [`MAX_GAP`] packets (a
//! longer one is a layer that was not needed), tracks at most [`MAX_MISSING`] numbers per
//! source, asks each at most [`MAX_TRIES`] times [`RETRY_AFTER`] apart and gives up after
//! [`GIVE_UP_AFTER`], and asks for at most [`ASK_PER_SEC`] packets a second.
//!
//! The uplink (a viewer promoted on an edge publishing to the origin, `relay::uplink`) is
//! repaired the same way with the roles swapped, under the same bounds: the edge's uplink peer
//! keeps the [`RepairStore`] and reseals, the origin keeps [`Gaps`] per uplink and asks with
//! `stage_resend` on the same control link.

use super::super::fast::history::{HistoryConfig, SourceHistory};
use super::super::simulcast::Layer;
use super::wire::{self, RelayPacket, ReplayWindow};
use super::RelayEvent;
use crate::model::TrackId;
use crate::rate::TokenBucket;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most sequence numbers one request names (a longer gap is asked in several).
pub const MAX_RESEND: usize = 64;
/// Sources (track, layer) a link keeps histories and gap state for.
pub const MAX_SOURCES: usize = 32;
/// Packets a second the origin reseals per link (burst: a quarter of it).
pub const RESEND_PER_SEC: f64 = 1_000.0;
/// Packets a second the edge asks for per link (burst: a quarter of it).
pub const ASK_PER_SEC: f64 = 1_000.0;
/// Longest gap asked for; a longer one is a layer the edge did not need for a while.
pub const MAX_GAP: u64 = 64;
/// Missing numbers remembered per source; past it the oldest are given up.
pub const MAX_MISSING: usize = 256;
/// Times one number is asked for.
pub const MAX_TRIES: u8 = 3;
/// Wait before asking again (the request or its answer may be lost too).
pub const RETRY_AFTER: Duration = Duration::from_millis(40);
/// Age at which a missing number is given up (below the origin's 1 s history).
pub const GIVE_UP_AFTER: Duration = Duration::from_millis(600);
/// A number this far behind the newest is a restarted source, not a late packet.
const RESET_BEHIND: u64 = 1024;
/// How often the edge looks for numbers to ask again while some are missing.
const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Bytes stored before a payload: extended timestamp (8), payload type, level flag, level,
/// capture (6: a resent packet keeps its own moment, see `wire`).
const PREFIX: usize = 17;

/// Bounds of one source's history on the origin: those of the lean path's NACK histories,
/// with room for the stored header.
pub fn store_config() -> HistoryConfig {
    let c = super::super::fast::history::Histories::config();
    HistoryConfig {
        max_packet_bytes: c.max_packet_bytes + PREFIX,
        ..c
    }
}

/// The origin's copies of what one link sent, per source, for [`RelayEvent::Resend`].
pub struct RepairStore {
    sources: HashMap<(TrackId, Layer), SourceHistory>,
    budget: TokenBucket,
    scratch: Vec<u8>,
}

impl RepairStore {
    /// An empty store whose resend budget starts full at `now`.
    pub fn new(now: Instant) -> Self {
        RepairStore {
            sources: HashMap::new(),
            budget: TokenBucket::new(RESEND_PER_SEC, RESEND_PER_SEC / 4.0, now),
            scratch: Vec::with_capacity(1600),
        }
    }

    /// Keeps a copy of a packet just sealed for the link.
    pub fn keep(&mut self, p: &RelayPacket, payload: &[u8], now: Instant) {
        let key = (p.track, p.layer);
        if !self.sources.contains_key(&key) {
            if self.sources.len() >= MAX_SOURCES {
                return;
            }
            self.sources.insert(key, SourceHistory::new(store_config()));
        }
        let Some(h) = self.sources.get_mut(&key) else {
            return;
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(&p.time.to_be_bytes());
        self.scratch.push(p.pt);
        self.scratch.push(u8::from(p.audio_level.is_some()));
        self.scratch.push(p.audio_level.unwrap_or(0));
        self.scratch
            .extend_from_slice(&(p.capture_us & wire::CAPTURE_MASK).to_be_bytes()[2..]);
        self.scratch.extend_from_slice(payload);
        // Reordered or oversized packets are only not repairable.
        let _ = h.insert_rtp(now, p.seq, p.marker, &self.scratch);
    }

    /// The packet `seq` of a source as it was sent, and its payload, if still held.
    pub fn get(
        &self,
        track: TrackId,
        layer: Layer,
        seq: u64,
        now: Instant,
    ) -> Option<(RelayPacket, &[u8])> {
        let (marker, data) = self.sources.get(&(track, layer))?.get_rtp(now, seq)?;
        let (head, payload) = data.split_at_checked(PREFIX)?;
        let mut time = [0u8; 8];
        time.copy_from_slice(&head[..8]);
        let packet = RelayPacket {
            track,
            layer,
            pt: head[8],
            marker,
            seq,
            time: u64::from_be_bytes(time),
            audio_level: (head[9] != 0).then_some(head[10]),
            capture_us: {
                let mut b = [0u8; 8];
                b[2..].copy_from_slice(&head[11..17]);
                u64::from_be_bytes(b)
            },
        };
        Some((packet, payload))
    }

    /// Whether one more packet may be resealed now.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.budget.allow(now)
    }

    /// Forgets tracks that are gone.
    pub fn retain(&mut self, keep: impl Fn(&TrackId) -> bool) {
        self.sources.retain(|(t, _), _| keep(t));
    }

    /// Bytes held over all sources.
    pub fn bytes(&self) -> usize {
        self.sources.values().map(SourceHistory::bytes).sum()
    }
}

/// What an edge does with an opened packet, after [`Gaps::on_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// New: forward it.
    Fresh,
    /// A number that was missing and asked for: forward it (it repairs a gap).
    Repaired,
    /// A number already forwarded (a second copy): drop it.
    Duplicate,
}

struct Missing {
    seq: u64,
    since: Instant,
    asked: Option<Instant>,
    tries: u8,
}

struct SourceGaps {
    newest: u64,
    seen: ReplayWindow,
    missing: VecDeque<Missing>,
}

impl SourceGaps {
    fn new(seq: u64) -> Self {
        let mut seen = ReplayWindow::default();
        seen.mark(seq);
        SourceGaps {
            newest: seq,
            seen,
            missing: VecDeque::new(),
        }
    }
}

/// The edge's view of each relayed source's numbers: gaps, and what to ask again.
#[derive(Default)]
pub struct Gaps {
    sources: HashMap<(TrackId, Layer), SourceGaps>,
    next_check: Option<Instant>,
    budget: Option<TokenBucket>,
}

impl Gaps {
    /// Notes an opened packet of a source; says whether to forward it.
    pub fn on_packet(&mut self, track: TrackId, layer: Layer, seq: u64, now: Instant) -> Arrival {
        let key = (track, layer);
        if !self.sources.contains_key(&key) {
            if self.sources.len() >= MAX_SOURCES {
                // Sources with nothing missing lose only their state; a source not tracked
                // is forwarded as it comes.
                self.sources.retain(|_, s| !s.missing.is_empty());
                if self.sources.len() >= MAX_SOURCES {
                    return Arrival::Fresh;
                }
            }
            self.sources.insert(key, SourceGaps::new(seq));
            return Arrival::Fresh;
        }
        let Some(s) = self.sources.get_mut(&key) else {
            return Arrival::Fresh;
        };
        if seq > s.newest {
            let gap = seq - s.newest - 1;
            if gap > 0 && gap <= MAX_GAP {
                for missing in s.newest + 1..seq {
                    if s.missing.len() >= MAX_MISSING {
                        s.missing.pop_front();
                    }
                    s.missing.push_back(Missing {
                        seq: missing,
                        since: now,
                        asked: None,
                        tries: 0,
                    });
                }
                // Asked at once, not at the next periodic check.
                self.next_check = Some(now);
            }
            s.newest = seq;
            s.seen.mark(seq);
            return Arrival::Fresh;
        }
        if s.newest - seq >= RESET_BEHIND {
            *s = SourceGaps::new(seq);
            return Arrival::Fresh;
        }
        if !s.seen.fresh(seq) {
            return Arrival::Duplicate;
        }
        s.seen.mark(seq);
        match s.missing.iter().position(|m| m.seq == seq) {
            Some(i) => {
                s.missing.remove(i);
                Arrival::Repaired
            }
            // Late, never asked for (reordered, or given up on): still news to the viewers.
            None => Arrival::Fresh,
        }
    }

    /// Requests due now (first asks and retries), at most [`MAX_RESEND`] numbers each;
    /// returns how many numbers were asked for.
    pub fn due(&mut self, now: Instant, out: &mut Vec<RelayEvent>) -> u64 {
        let Some(at) = self.next_check else {
            return 0;
        };
        if now < at {
            return 0;
        }
        let budget = self
            .budget
            .get_or_insert_with(|| TokenBucket::new(ASK_PER_SEC, ASK_PER_SEC / 4.0, now));
        let mut asked = 0;
        let mut any = false;
        for (&(track, layer), s) in self.sources.iter_mut() {
            s.missing
                .retain(|m| now.saturating_duration_since(m.since) < GIVE_UP_AFTER);
            any |= !s.missing.is_empty();
            let mut seqs = vec![];
            for m in s.missing.iter_mut() {
                let due = match m.asked {
                    None => true,
                    Some(t) => {
                        m.tries < MAX_TRIES && now.saturating_duration_since(t) >= RETRY_AFTER
                    }
                };
                if !due || !budget.allow(now) {
                    continue;
                }
                m.asked = Some(now);
                m.tries += 1;
                seqs.push(m.seq);
            }
            asked += seqs.len() as u64;
            for chunk in seqs.chunks(MAX_RESEND) {
                out.push(RelayEvent::Resend {
                    track,
                    layer,
                    seqs: chunk.to_vec(),
                });
            }
        }
        self.next_check = any.then(|| now + CHECK_EVERY);
        asked
    }

    /// Forgets a track that is gone.
    pub fn forget(&mut self, track: TrackId) {
        self.sources.retain(|(t, _), _| *t != track);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(g: &mut Gaps, now: Instant) -> Vec<u64> {
        let mut out = vec![];
        g.due(now, &mut out);
        out.into_iter()
            .flat_map(|e| match e {
                RelayEvent::Resend { seqs, .. } => seqs,
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn a_gap_is_asked_retried_repaired_once_and_given_up() {
        let t0 = Instant::now();
        let (t, l) = (TrackId(3), 1);
        let mut g = Gaps::default();
        assert_eq!(g.on_packet(t, l, 100, t0), Arrival::Fresh);
        assert_eq!(g.on_packet(t, l, 103, t0), Arrival::Fresh);
        assert_eq!(ask(&mut g, t0), vec![101, 102]);
        // Nothing again before the retry delay.
        assert!(ask(&mut g, t0 + Duration::from_millis(20)).is_empty());
        assert_eq!(g.on_packet(t, l, 101, t0), Arrival::Repaired);
        assert_eq!(g.on_packet(t, l, 101, t0), Arrival::Duplicate);
        assert_eq!(g.on_packet(t, l, 103, t0), Arrival::Duplicate);
        let mut at = t0;
        let mut tries = 1;
        for _ in 0..10 {
            at += RETRY_AFTER;
            tries += ask(&mut g, at).len();
        }
        assert_eq!(
            tries,
            usize::from(MAX_TRIES),
            "102 asked at most {MAX_TRIES} times"
        );
        assert!(ask(&mut g, t0 + GIVE_UP_AFTER).is_empty());
        // Given up, yet still forwarded once if it comes.
        assert_eq!(g.on_packet(t, l, 102, at), Arrival::Fresh);
    }

    #[test]
    fn long_gaps_and_restarts_are_not_asked() {
        let t0 = Instant::now();
        let mut g = Gaps::default();
        g.on_packet(TrackId(1), 0, 10, t0);
        g.on_packet(TrackId(1), 0, 10 + MAX_GAP + 2, t0);
        assert!(ask(&mut g, t0).is_empty());
        // A source that starts over far behind is taken as new.
        assert_eq!(g.on_packet(TrackId(1), 0, 5, t0), Arrival::Fresh);
        assert_eq!(g.on_packet(TrackId(1), 0, 6, t0), Arrival::Fresh);
    }

    #[test]
    fn the_store_gives_back_what_was_sent() {
        let t0 = Instant::now();
        let mut s = RepairStore::new(t0);
        let p = RelayPacket {
            track: TrackId(2),
            layer: 0,
            pt: 111,
            marker: true,
            seq: 70_000,
            time: 1 << 33,
            audio_level: Some(0x85),
            capture_us: 123_456_789_012,
        };
        s.keep(&p, b"opus", t0);
        let (q, payload) = s.get(TrackId(2), 0, 70_000, t0).expect("kept");
        assert_eq!((q, payload), (p, &b"opus"[..]));
        assert!(s.get(TrackId(2), 0, 70_001, t0).is_none());
        assert!(s
            .get(TrackId(2), 0, 70_000, t0 + Duration::from_secs(2))
            .is_none());
        s.retain(|_| false);
        assert_eq!(s.bytes(), 0);
    }
}
