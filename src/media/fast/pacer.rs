//! A burst-bounded pacer: whole fan-out batches go out at once while within budget; audio is never held.
//!
//! A token bucket refills at [`PacerConfig::factor`] × the estimate and holds at most
//! [`PacerConfig::burst`] of it (at least [`PacerConfig::min_burst_bytes`]). A batch (the
//! packets one incoming packet or frame makes for one subscriber) is sent whole when the queue
//! is empty and the bucket is not in debt; it may take the bucket into debt by its own size,
//! so a burst is bounded by one bucket plus one batch. Otherwise it waits in a queue bounded in
//! bytes and in age; [`Pacer::next_wake`] says when the bucket will allow the next one. Audio
//! is charged to the bucket (so video yields to it) but always sent at once.

use super::clock::Now;
use super::gcc::Bitrate;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a batch carries; decides whether it may be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Never held (small, steady, and what a call dies without).
    Audio,
    /// Forwarded video.
    Video,
    /// Retransmissions answering NACKs.
    Retransmission,
}

/// [`Pacer`]'s settings.
#[derive(Clone, Debug)]
pub struct PacerConfig {
    /// Bucket refill rate as a multiple of the estimate. Default 2.5 (as libwebrtc's pacer):
    /// the encoder's own rate control keeps the average under the estimate; pacing only
    /// smooths keyframe bursts.
    pub factor: f64,
    /// Bucket depth in time at the paced rate. Default 40 ms.
    pub burst: Duration,
    /// Bucket depth floor, so a keyframe's first batch at a low estimate still passes. Default
    /// 12,000 bytes.
    pub min_burst_bytes: usize,
    /// Bytes the queue may hold; beyond, batches are dropped. Default 256 KiB.
    pub max_queue_bytes: usize,
    /// Age after which a queued batch is dropped rather than sent late. Default 500 ms.
    pub max_queue_delay: Duration,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            factor: 2.5,
            burst: Duration::from_millis(40),
            min_burst_bytes: 12_000,
            max_queue_bytes: 256 * 1024,
            max_queue_delay: Duration::from_millis(500),
        }
    }
}

/// Why the pacer dropped a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacerDrop {
    /// The queue was full in bytes.
    QueueFull,
    /// It waited longer than [`PacerConfig::max_queue_delay`].
    TooOld,
}

/// What became of an offered or released batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Paced<T> {
    /// Send it now.
    Send(T),
    /// Held; [`Pacer::poll`] releases it.
    Queued,
    /// Dropped, with the reason (the caller counts it).
    Dropped(T, PacerDrop),
}

/// A per-subscriber pacer over batches of type `T`.
pub struct Pacer<T> {
    config: PacerConfig,
    /// Paced bytes per second.
    bytes_per_s: f64,
    /// Bytes allowed now; negative is debt.
    tokens: f64,
    /// Bucket depth in bytes at the current rate (kept: it is read at every refill).
    depth: f64,
    /// When the bucket was last refilled, both ways (see `clock.rs`).
    last: Instant,
    last_ns: u64,
    queue: VecDeque<(Instant, usize, T)>,
    queued_bytes: usize,
}

impl<T> Pacer<T> {
    /// A pacer for `rate` starting with a full bucket at `now`.
    pub fn new(config: PacerConfig, rate: Bitrate, now: Instant) -> Self {
        let mut p = Pacer {
            config,
            bytes_per_s: 1.0,
            tokens: 0.0,
            depth: 0.0,
            last: now,
            last_ns: Now::of(now).ns,
            queue: VecDeque::new(),
            queued_bytes: 0,
        };
        p.set_rate(now, rate);
        p.tokens = p.depth;
        p
    }

    /// Follows a new estimate.
    pub fn set_rate(&mut self, now: Instant, rate: Bitrate) {
        self.refill(Now::of(now));
        self.bytes_per_s = (rate.as_bps() as f64 * self.config.factor / 8.0).max(1.0);
        let burst = self.bytes_per_s * self.config.burst.as_secs_f64();
        self.depth = burst.max(self.config.min_burst_bytes as f64);
    }

    fn refill(&mut self, now: Now) {
        let dt = now.ns.saturating_sub(self.last_ns) as f64 * 1e-9;
        if now.ns > self.last_ns {
            self.last = now.at;
            self.last_ns = now.ns;
        }
        self.tokens = (self.tokens + dt * self.bytes_per_s).min(self.depth);
    }

    /// Whether nothing waits ([`Self::poll`] would only refill the bucket).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Offers a batch of `bytes` bytes.
    pub fn offer(&mut self, now: Instant, class: Class, bytes: usize, batch: T) -> Paced<T> {
        if self.try_send(now, class, bytes) {
            return Paced::Send(batch);
        }
        match self.enqueue(now, bytes, batch) {
            Ok(()) => Paced::Queued,
            Err(batch) => Paced::Dropped(batch, PacerDrop::QueueFull),
        }
    }

    /// The first half of [`Self::offer`], for a caller that builds the batch only when it must
    /// wait: whether a batch of `bytes` may go now (then it is charged to the bucket).
    pub fn try_send(&mut self, now: Instant, class: Class, bytes: usize) -> bool {
        self.try_send_at(Now::of(now), class, bytes)
    }

    /// [`Self::try_send`] at a moment already converted (the fan-out converts it once).
    #[inline]
    pub fn try_send_at(&mut self, now: Now, class: Class, bytes: usize) -> bool {
        self.refill(now);
        let within = self.queue.is_empty() && self.tokens >= 0.0;
        if class == Class::Audio || within {
            self.charge(bytes);
            return true;
        }
        false
    }

    /// Charges `bytes` sent outside the queue (audio, retransmissions) to the bucket. The debt
    /// is bounded: it delays video by at most one bucket.
    pub fn charge(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
        self.tokens = self.tokens.max(-self.depth - bytes as f64);
    }

    /// The second half of [`Self::offer`]: queues a batch [`Self::try_send`] refused, or hands
    /// it back when the queue is full in bytes.
    pub fn enqueue(&mut self, now: Instant, bytes: usize, batch: T) -> Result<(), T> {
        if self.queued_bytes + bytes > self.config.max_queue_bytes {
            return Err(batch);
        }
        self.queued_bytes += bytes;
        self.queue.push_back((now, bytes, batch));
        Ok(())
    }

    /// Releases the next batch the budget allows (or one that waited too long, dropped);
    /// call until `None`, then sleep until [`Self::next_wake`].
    pub fn poll(&mut self, now: Instant) -> Option<Paced<T>> {
        self.refill(Now::of(now));
        let &(at, bytes, _) = self.queue.front()?;
        let too_old = now.saturating_duration_since(at) >= self.config.max_queue_delay;
        // Half a byte of rounding is no debt: at [`Self::next_wake`] something always goes.
        if !too_old && self.tokens < -0.5 {
            return None;
        }
        let (_, _, batch) = self.queue.pop_front()?;
        self.queued_bytes -= bytes;
        if too_old {
            return Some(Paced::Dropped(batch, PacerDrop::TooOld));
        }
        self.tokens -= bytes as f64;
        Some(Paced::Send(batch))
    }

    /// How long the oldest queued batch has waited.
    pub fn queue_age(&self, now: Instant) -> Option<Duration> {
        let &(at, _, _) = self.queue.front()?;
        Some(now.saturating_duration_since(at))
    }

    /// When [`Self::poll`] will release something; `None` with nothing queued.
    pub fn next_wake(&self) -> Option<Instant> {
        let &(at, _, _) = self.queue.front()?;
        // Rounded up to the microsecond, so the bucket has refilled by then.
        let micros = ((-self.tokens).max(0.0) / self.bytes_per_s * 1e6).ceil();
        let refill = Duration::from_micros(micros as u64);
        Some((self.last + refill).min(at + self.config.max_queue_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(kbps: u64) -> (Pacer<u32>, Instant) {
        let t0 = Instant::now();
        (
            Pacer::new(PacerConfig::default(), Bitrate::kbps(kbps), t0),
            t0,
        )
    }

    #[test]
    fn batches_within_budget_go_at_once_then_wait_for_the_bucket() {
        // 1 Mbit/s × 2.5 = 312,500 B/s; bucket 40 ms = 12,500 bytes.
        let (mut p, t0) = pacer(1_000);
        // A 100-packet batch is one offer, sent whole even though it empties the bucket.
        assert_eq!(p.offer(t0, Class::Video, 12_000, 1), Paced::Send(1));
        assert_eq!(p.offer(t0, Class::Video, 12_000, 2), Paced::Send(2));
        // Now in debt: the next waits.
        assert_eq!(p.offer(t0, Class::Video, 1_200, 3), Paced::Queued);
        assert!(p.poll(t0).is_none());
        let wake = p.next_wake().expect("wake");
        // Debt 11,500 bytes at 312,500 B/s ≈ 36.8 ms.
        let wait = wake - t0;
        assert!(
            (Duration::from_millis(36)..=Duration::from_millis(38)).contains(&wait),
            "{wait:?}"
        );
        assert!(p.poll(wake - Duration::from_millis(1)).is_none());
        assert_eq!(p.poll(wake), Some(Paced::Send(3)));
        assert_eq!(p.next_wake(), None);
    }

    #[test]
    fn audio_is_never_held_but_makes_video_yield() {
        let (mut p, t0) = pacer(100);
        for i in 0..50 {
            assert_eq!(p.offer(t0, Class::Audio, 1_000, i), Paced::Send(i));
        }
        assert_eq!(p.offer(t0, Class::Video, 1_000, 99), Paced::Queued);
        assert_eq!(p.offer(t0, Class::Audio, 100, 100), Paced::Send(100));
    }

    #[test]
    fn queue_is_bounded_in_bytes_and_age() {
        let (mut p, t0) = pacer(100);
        assert_eq!(p.offer(t0, Class::Video, 20_000, 0), Paced::Send(0));
        let mut queued = 0;
        for i in 1..1_000 {
            match p.offer(t0, Class::Video, 1_200, i) {
                Paced::Queued => queued += 1,
                Paced::Dropped(_, PacerDrop::QueueFull) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(queued, 256 * 1024 / 1_200);
        assert!(p.queued_bytes() <= 256 * 1024);
        // 600 ms later the bucket (31,250 B/s) has paid the debt and some, but everything
        // queued is older than 500 ms: dropped as TooOld, not sent late.
        let later = t0 + Duration::from_millis(600);
        let mut old = 0;
        while let Some(r) = p.poll(later) {
            match r {
                Paced::Dropped(_, PacerDrop::TooOld) => old += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(old, queued);
        assert_eq!(p.queued_bytes(), 0);
    }

    #[test]
    fn average_rate_follows_factor_times_estimate() {
        let (mut p, t0) = pacer(800); // 250,000 B/s paced
        let mut sent = 0usize;
        let mut now = t0;
        let mut id = 0;
        let end = t0 + Duration::from_secs(2);
        while now < end {
            // Offer far more than the budget: 10 batches of 5 kB every 10 ms.
            for _ in 0..10 {
                id += 1;
                if let Paced::Send(_) = p.offer(now, Class::Video, 5_000, id) {
                    sent += 5_000;
                }
            }
            while let Some(r) = p.poll(now) {
                if let Paced::Send(_) = r {
                    sent += 5_000;
                }
            }
            now += Duration::from_millis(10);
        }
        // 2 s × 250,000 B/s plus the first bucket and one batch of overshoot.
        let rate = sent as f64 / 2.0;
        assert!((240_000.0..=270_000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn at_every_wake_something_leaves() {
        // A caller that sleeps until next_wake must never find nothing to do there (it would
        // spin at one instant): over odd rates and sizes, and debts past the age limit.
        for kbps in [7, 100, 333, 1_000, 2_345, 10_000] {
            let (mut p, t0) = pacer(kbps);
            let mut now = t0;
            for i in 0..200u32 {
                let _ = p.offer(now, Class::Video, 1_000 + (i as usize * 37) % 1_300, i);
            }
            let mut wakes = 0;
            while let Some(wake) = p.next_wake() {
                assert!(wake >= now, "{kbps}: wake in the past");
                now = wake;
                assert!(p.poll(now).is_some(), "{kbps}: nothing left at its wake");
                while p.poll(now).is_some() {}
                wakes += 1;
                assert!(wakes < 1_000, "{kbps}: no progress");
            }
            assert_eq!(p.queued_bytes(), 0);
        }
    }
}
