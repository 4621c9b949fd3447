//! The simulated network's parts: a link (delay, loss, bottleneck), one direction of a peer's
//! path through it, the datagrams in flight, and the seeded generator that decides losses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One direction of a peer's network path.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// One-way delay.
    pub delay: Duration,
    /// Probability of losing a packet, 0.0–1.0.
    pub loss: f64,
    /// Bottleneck rate in bits per second; packets queue behind it.
    pub rate_bps: Option<u64>,
    /// Longest the bottleneck queue may hold before it drops (a router's buffer).
    pub queue: Duration,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            delay: Duration::from_millis(10),
            loss: 0.0,
            rate_bps: None,
            queue: Duration::from_millis(200),
        }
    }
}

/// A link as one peer's datagrams cross it: the link, and when its bottleneck is next free.
pub(super) struct Path {
    pub link: Link,
    free_at: Instant,
}

impl Path {
    pub fn new(link: Link, now: Instant) -> Path {
        Path { link, free_at: now }
    }

    /// When a datagram of `len` bytes sent at `now` arrives; `None` when it is lost (`roll`,
    /// uniform in 0..1, falls below the loss rate) or the bottleneck's queue is full.
    pub fn arrival(&mut self, len: usize, roll: f64, now: Instant) -> Option<Instant> {
        let link = self.link;
        if roll < link.loss {
            return None;
        }
        let mut at = now;
        if let Some(rate) = link.rate_bps {
            let start = self.free_at.max(now);
            if start > now + link.queue {
                return None;
            }
            let tx = Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / rate.max(1));
            self.free_at = start + tx;
            at = start + tx;
        }
        Some(at + link.delay)
    }
}

/// A datagram in flight.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct InFlight {
    pub at: Instant,
    pub order: u64,
    pub to_server: bool,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// xorshift64 from a fixed seed: every run loses the same packets.
pub(super) struct Rng(u64);

impl Default for Rng {
    fn default() -> Self {
        Rng(0x9E37_79B9_7F4A_7C15)
    }
}

impl Rng {
    /// The next number, uniform in 0..1.
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
