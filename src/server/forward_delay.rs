//! `confab_forward_delay_seconds`: how long the SFU holds a forwarded copy, from its source
//! datagram's arrival (when `recvmmsg` returned) to the `sendmmsg` call that gives it to the
//! kernel.
//!
//! The room task takes the arrival times the router logged ([`crate::media::forward_log`])
//! with each send batch; whichever thread sends the batch (the send thread, or the room's
//! own when it sends itself: [`super::transport::send_thread`]) reads the clock right before
//! its `sendmmsg` and observes them, so time spent queued for the send thread counts. Copies
//! the lean pacer held count from their arrival to when they are actually sent. One histogram per process, in atomics:
//! an observation is one bucket search and three relaxed adds, for a whole fan-out at once.

use crate::media::router::Router;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bounds of the buckets, µs (log-spaced, 1-1.5-2-3-5-7 per decade, 10 µs to 2 s;
/// 5 ms, the p99 bar, is a bound). Above the last: `+Inf`.
pub const BOUNDS_US: [u64; 31] = [
    10, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000, 3_000, 5_000, 7_000,
    10_000, 15_000, 20_000, 30_000, 50_000, 70_000, 100_000, 150_000, 200_000, 300_000, 500_000,
    700_000, 1_000_000, 2_000_000,
];

#[derive(Debug, Default)]
struct Inner {
    /// Copies per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

/// The process's forward-delay histogram (cheap to clone: one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct ForwardDelay(Arc<Inner>);

impl ForwardDelay {
    /// `copies` copies held for `d` each.
    pub fn observe(&self, d: Duration, copies: u32) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = BOUNDS_US.partition_point(|&b| b < us);
        let n = u64::from(copies);
        self.0.buckets[i].fetch_add(n, Ordering::Relaxed);
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        self.0
            .sum_ns
            .fetch_add(ns.saturating_mul(n), Ordering::Relaxed);
        self.0.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Copies observed so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    /// Observes every logged copy of `forwards` as handed to the kernel at `now`, those the
    /// lean pacer held in `paced` too.
    pub fn sent(&self, paced: &ForwardDelay, forwards: &[Forward], now: Instant) {
        for &(at, n, held) in forwards {
            let d = now.saturating_duration_since(at);
            self.observe(d, n);
            if held {
                paced.observe(d, n);
            }
        }
    }
}

/// Copies logged by a room as (arrival, copies, whether the lean pacer held them), taken with
/// [`Router::take_forwards`] when their batch leaves the room, observed when it is sent.
pub type Forward = (Instant, u32, bool);

/// Moves every copy `room` logged since the last call into `into`.
pub fn take(room: &mut Router, into: &mut Vec<Forward>) {
    room.take_forwards(|at, n, held| into.push((at, n, held)));
}

/// Moves the oldest `n` copies of `from` (splitting an entry where `n` falls inside it) to a
/// list of their own: those a send hands to the kernel before the rest.
pub fn split_front(from: &mut Vec<Forward>, n: usize) -> Vec<Forward> {
    let mut left = u32::try_from(n).unwrap_or(u32::MAX);
    let mut whole = 0;
    let mut part = None;
    for &(at, copies, held) in from.iter() {
        if left == 0 {
            break;
        }
        if copies <= left {
            left -= copies;
            whole += 1;
        } else {
            part = Some((at, left, held));
            break;
        }
    }
    let mut front: Vec<Forward> = from.drain(..whole).collect();
    if let Some((at, n, held)) = part {
        front.push((at, n, held));
        if let Some(first) = from.first_mut() {
            first.1 -= n;
        }
    }
    front
}

impl EncodeMetric for ForwardDelay {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let b = &self.0.buckets;
        let mut buckets = [(0.0, 0); BOUNDS_US.len() + 1];
        for (i, slot) in buckets.iter_mut().enumerate() {
            let le = BOUNDS_US.get(i).map_or(f64::MAX, |&us| us as f64 / 1e6);
            *slot = (le, b[i].load(Ordering::Relaxed));
        }
        // The count is the buckets' sum, so a scrape racing an observation stays consistent.
        let count = buckets.iter().map(|&(_, n)| n).sum();
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn a_send_takes_the_oldest_copies_splitting_an_entry() {
        let t = Instant::now();
        let later = t + Duration::from_millis(1);
        let mut log = vec![(t, 300, false), (later, 300, false), (later, 5, true)];
        let front = split_front(&mut log, 450);
        assert_eq!(front, vec![(t, 300, false), (later, 150, false)]);
        assert_eq!(log, vec![(later, 150, false), (later, 5, true)]);
        let all = split_front(&mut log, 1000);
        assert_eq!(all, vec![(later, 150, false), (later, 5, true)]);
        assert!(log.is_empty());
        assert!(split_front(&mut log, 3).is_empty());
        let mut one = vec![(t, 2, false)];
        assert!(split_front(&mut one, 0).is_empty());
        assert_eq!(one, vec![(t, 2, false)]);
    }

    #[test]
    fn buckets_by_upper_bound_and_encodes_a_prometheus_histogram() {
        let h = ForwardDelay::default();
        h.observe(Duration::from_micros(10), 2);
        h.observe(Duration::from_micros(11), 1);
        h.observe(Duration::from_millis(4), 3);
        h.observe(Duration::from_secs(5), 1);
        assert_eq!(h.count(), 7);
        let mut r = Registry::with_prefix("confab");
        r.register("forward_delay_seconds", "delay", h.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).expect("encode");
        let line = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        assert_eq!(
            line("confab_forward_delay_seconds_bucket{le=\"0.00001\"}").as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            line("confab_forward_delay_seconds_bucket{le=\"0.00002\"}").as_deref(),
            Some("3")
        );
        assert_eq!(
            line("confab_forward_delay_seconds_bucket{le=\"0.005\"}").as_deref(),
            Some("6")
        );
        assert_eq!(
            line("confab_forward_delay_seconds_bucket{le=\"+Inf\"}").as_deref(),
            Some("7")
        );
        assert_eq!(
            line("confab_forward_delay_seconds_count").as_deref(),
            Some("7")
        );
        assert!(text.contains("# TYPE confab_forward_delay_seconds histogram"));
    }
}
