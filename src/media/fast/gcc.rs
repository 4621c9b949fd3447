//! Send-side bandwidth estimation behind a trait: a GCC-style delay and loss estimator.
//!
//! [`Gcc`] follows draft-ietf-rmcat-gcc-02 in shape, written from the draft and the published
//! parameters: packets are grouped by send time (5 ms bursts); the delay variation between
//! groups feeds a trendline filter (least-squares slope of the smoothed accumulated delay over
//! the last 20 groups); an overuse detector compares the scaled slope with a threshold that
//! adapts to it (fast down, slow up) so competing flows do not starve it; an AIMD controller
//! cuts to 0.85 × the acknowledged rate on overuse, holds on underuse and otherwise increases
//! (additively near the last known link capacity, multiplicatively away from it). A loss-based
//! controller caps the estimate when more than 10 % of packets are lost. The estimate never
//! exceeds 1.5 × the acknowledged rate + 10 kbit/s, so an idle subscriber's estimate does not
//! drift into the sky.
//!
//! Ramp-up without probing: the multiplicative increase is the draft's 8 %/s for the first
//! second after congestion and then grows with the time the path has stayed clean, up to
//! [`GccConfig::max_increase_per_s`] (50 %/s). A lifted cap is thus found again in seconds
//! (tests: 300 kbit/s → 2 Mbit/s within 10 s), while a path that keeps congesting only ever
//! sees the draft's gentle increase.
//!
//! A cut may be spurious: a CPU stall at either end reads as a queue. After a first cut the
//! estimate climbs back at the fastest increase toward where it was (`Recovery`) unless the
//! path confirms the cut by another overuse after a climb, or by loss; once back, the cut is
//! forgotten (clean time and capacity as before). Memory: fixed, ~700 bytes per subscriber.

use super::twcc::PacketResult;
use std::time::{Duration, Instant};
use trend::{Detector, Trendline};

#[path = "gcc_trend.rs"]
mod trend;

/// A rate in bits per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bitrate(pub u64);

impl Bitrate {
    /// `n` bits per second.
    pub const fn bps(n: u64) -> Self {
        Bitrate(n)
    }
    /// `n` kilobits per second.
    pub const fn kbps(n: u64) -> Self {
        Bitrate(n * 1_000)
    }
    /// Bits per second.
    pub const fn as_bps(self) -> u64 {
        self.0
    }
}

/// A send-side bandwidth estimator: fed transport-wide feedback and time, read for the rate.
pub trait Estimator {
    /// Results of one feedback message, in sequence order, from a register made at the same
    /// instant as the estimator (their `sent_us` are on its scale).
    fn on_feedback(&mut self, now: Instant, results: &[PacketResult]);
    /// Time passes without feedback (call every 25–100 ms).
    fn on_tick(&mut self, now: Instant);
    /// The current estimate of what the path to the subscriber carries.
    fn estimate(&self) -> Bitrate;
}

/// What the delay detector concludes about the path's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The queue is stable.
    Normal,
    /// The queue grows: we send more than the path carries.
    Overuse,
    /// The queue drains.
    Underuse,
}

/// [`Gcc`]'s settings, with defaults from the draft and common practice.
#[derive(Clone, Debug)]
pub struct GccConfig {
    /// Estimate before any feedback. Default 300 kbit/s.
    pub initial: Bitrate,
    /// Floor of the estimate. Default 30 kbit/s (audio keeps flowing).
    pub min: Bitrate,
    /// Ceiling of the estimate. Default 20 Mbit/s.
    pub max: Bitrate,
    /// Multiplicative increase per second right after congestion. Default 1.08 (the draft's).
    pub increase_per_s: f64,
    /// Multiplicative increase per second after a long clean stretch. Default 1.5.
    pub max_increase_per_s: f64,
    /// Clean time after which the increase starts to speed up, and time it takes to reach the
    /// maximum. Default 1 s and 4 s.
    pub speedup_after: Duration,
    pub speedup_over: Duration,
    /// Rate after overuse, as a fraction of the acknowledged rate. Default 0.85.
    pub decrease_factor: f64,
    /// Loss below which the loss controller lets go, and above which it cuts. Default 2 %, 10 %.
    pub loss_low: f64,
    pub loss_high: f64,
    /// Without feedback this long the estimate falls by a fifth per period. Default 1 s.
    pub feedback_timeout: Duration,
}

impl Default for GccConfig {
    fn default() -> Self {
        GccConfig {
            initial: Bitrate::kbps(300),
            min: Bitrate::kbps(30),
            max: Bitrate::kbps(20_000),
            increase_per_s: 1.08,
            max_increase_per_s: 1.5,
            speedup_after: Duration::from_secs(1),
            speedup_over: Duration::from_secs(4),
            decrease_factor: 0.85,
            loss_low: 0.02,
            loss_high: 0.10,
            feedback_timeout: Duration::from_secs(1),
        }
    }
}

/// Packets sent within this span of the group's first form one group (a frame's burst).
const GROUP_SPAN_US: i64 = 5_000;
/// Longest a climb back after an unconfirmed cut may take before the cut stands.
const RECOVERY_FOR: Duration = Duration::from_secs(5);
/// The lowest fraction of the current rate one overuse may cut to.
const MAX_CUT: f64 = 0.5;

/// Acknowledged-rate buckets: 10 × 50 ms of arrival time.
const RATE_BUCKETS: usize = 10;
const RATE_BUCKET_US: i64 = 50_000;

/// A burst of packets sent together.
#[derive(Clone, Copy, Debug)]
struct Group {
    first_sent_us: i64,
    last_sent_us: i64,
    last_arrival_us: i64,
}

/// Received bytes per 50 ms of arrival time, over the last 500 ms.
#[derive(Clone, Debug, Default)]
struct AckedRate {
    buckets: [u32; RATE_BUCKETS],
    head: Option<i64>,
    first_us: i64,
    last_us: i64,
}

impl AckedRate {
    fn add(&mut self, arrival_us: i64, size: u16) {
        let idx = arrival_us.div_euclid(RATE_BUCKET_US);
        // An arrival a whole window away from the newest, ahead or behind, is a jump of the
        // receiver's clock or a gap in the media, not throughput: start over from it. Kept, one
        // such arrival emptied the window and read as a rate near zero, and the overuse cut that
        // followed (0.85 × acked) took a 1 Mbit/s subscriber to 20 kbit/s (issue 16).
        if self
            .head
            .is_some_and(|h| (idx - h).abs() >= RATE_BUCKETS as i64)
        {
            *self = Self::default();
        }
        let head = *self.head.get_or_insert_with(|| {
            self.first_us = arrival_us;
            idx
        });
        if idx > head {
            for i in (head + 1)..=idx {
                self.buckets[i.rem_euclid(RATE_BUCKETS as i64) as usize] = 0;
            }
            self.head = Some(idx);
        }
        let b = &mut self.buckets[idx.rem_euclid(RATE_BUCKETS as i64) as usize];
        *b = b.saturating_add(u32::from(size));
        self.last_us = self.last_us.max(arrival_us);
    }

    /// Bits per second over the covered span, once it is at least 100 ms.
    fn rate(&self) -> Option<f64> {
        let head = self.head?;
        let start = ((head - RATE_BUCKETS as i64 + 1) * RATE_BUCKET_US).max(self.first_us);
        let span_us = self.last_us - start;
        if span_us < 100_000 {
            return None;
        }
        let bytes: u64 = self.buckets.iter().map(|&b| u64::from(b)).sum();
        Some(bytes as f64 * 8.0 * 1e6 / span_us as f64)
    }
}

/// Link capacity seen at past overuses (mean and normalized variance, in kbit/s), which
/// switches the increase between additive (near it) and multiplicative (away from it).
#[derive(Clone, Copy, Debug)]
struct Capacity {
    mean_kbps: f64,
    var: f64,
}

/// Climbing back after a cut the path has not confirmed: to the rate before it, with the
/// clean time and capacity from before it restored once there. At most [`RECOVERY_FOR`].
#[derive(Clone, Copy, Debug)]
struct Recovery {
    since: Instant,
    target: f64,
    clean_since: Instant,
    capacity: Option<Capacity>,
    climbed: bool,
}

/// The GCC-style estimator (see the module documentation).
#[derive(Clone, Debug)]
pub struct Gcc {
    config: GccConfig,
    epoch: Instant,
    // Delay-based.
    group: Option<Group>,
    prev_group: Option<Group>,
    trend: Trendline,
    detector: Detector,
    delay_rate: f64,
    capacity: Option<Capacity>,
    last_change: Option<Instant>,
    last_decrease: Option<Instant>,
    clean_since: Instant,
    recovery: Option<Recovery>,
    acked: AckedRate,
    rtt: Duration,
    overuses: u64,
    // Loss-based.
    loss_cap: Option<f64>,
    loss_counted: (u32, u32),
    loss_smoothed: Option<f64>,
    loss_window_start: Instant,
    last_loss_cut: Option<Instant>,
    // Feedback timeout.
    last_feedback: Instant,
}

impl Gcc {
    /// An estimator starting at [`GccConfig::initial`] at `now`.
    pub fn new(config: GccConfig, now: Instant) -> Self {
        Gcc {
            delay_rate: config.initial.0 as f64,
            config,
            epoch: now,
            group: None,
            prev_group: None,
            trend: Trendline::new(),
            detector: Detector::new(),
            capacity: None,
            last_change: None,
            last_decrease: None,
            clean_since: now,
            recovery: None,
            acked: AckedRate::default(),
            rtt: Duration::from_millis(100),
            overuses: 0,
            loss_cap: None,
            loss_counted: (0, 0),
            loss_smoothed: None,
            loss_window_start: now,
            last_loss_cut: None,
            last_feedback: now,
        }
    }

    /// What the delay detector last concluded.
    pub fn signal(&self) -> Signal {
        self.detector.signal
    }

    /// When a tick without feedback in between would first act (cut for silence): until
    /// then ticks change nothing.
    pub fn silence_deadline(&self) -> Instant {
        self.last_feedback + self.config.feedback_timeout
    }

    /// Whether the estimate is climbing back after a cut the path has not confirmed.
    pub fn recovering(&self) -> bool {
        self.recovery.is_some()
    }

    /// Overuse events so far (each one cut the rate or would have).
    pub fn overuses(&self) -> u64 {
        self.overuses
    }

    /// The acknowledged (received) rate, once 100 ms of arrivals are known.
    pub fn acked(&self) -> Option<Bitrate> {
        self.acked.rate().map(|r| Bitrate(r as u64))
    }

    fn us(&self, t: Instant) -> i64 {
        t.saturating_duration_since(self.epoch).as_micros() as i64
    }

    /// Groups one received packet; returns a signal when a group completes.
    fn on_received(&mut self, sent_us: i64, arrival_us: i64) -> Option<Signal> {
        let Some(group) = self.group.as_mut() else {
            self.group = Some(Group {
                first_sent_us: sent_us,
                last_sent_us: sent_us,
                last_arrival_us: arrival_us,
            });
            return None;
        };
        if sent_us < group.first_sent_us {
            return None; // reordered across groups: ignore for delay
        }
        if sent_us - group.first_sent_us <= GROUP_SPAN_US {
            group.last_sent_us = group.last_sent_us.max(sent_us);
            group.last_arrival_us = group.last_arrival_us.max(arrival_us);
            return None;
        }
        let done = *group;
        self.group = Some(Group {
            first_sent_us: sent_us,
            last_sent_us: sent_us,
            last_arrival_us: arrival_us,
        });
        let prev = self.prev_group.replace(done)?;
        let send_delta = (done.last_sent_us - prev.last_sent_us) as f64 / 1_000.0;
        let arrival_delta = (done.last_arrival_us - prev.last_arrival_us) as f64 / 1_000.0;
        if !(-3_000.0..=3_000.0).contains(&arrival_delta) {
            // The receiver's clock jumped: start over rather than read a huge queue into it.
            self.trend = Trendline::new();
            return None;
        }
        let trend = self.trend.update(
            arrival_delta - send_delta,
            done.last_arrival_us as f64 / 1_000.0,
        )?;
        Some(
            self.detector
                .detect(trend, send_delta, done.last_arrival_us as f64 / 1_000.0),
        )
    }

    fn update_delay_rate(&mut self, now: Instant, signal: Signal) {
        let acked = self.acked.rate();
        match signal {
            Signal::Overuse => {
                self.overuses += 1;
                let clean_since = std::mem::replace(&mut self.clean_since, now);
                let gap = self
                    .rtt
                    .clamp(Duration::from_millis(50), Duration::from_millis(200));
                let may_cut = self.last_decrease.is_none_or(|t| now >= t + gap);
                if may_cut {
                    let base = acked.unwrap_or(self.delay_rate);
                    // At most halved per overuse: a stalled or misread acked rate must not
                    // collapse the estimate at once; real congestion cuts again one gap later.
                    let cut = (self.config.decrease_factor * base).max(MAX_CUT * self.delay_rate);
                    // Overuse after a climb back confirms the cut; within one episode it does not.
                    self.recovery = match self.recovery {
                        Some(r) if !r.climbed => Some(r),
                        Some(_) => None,
                        None => (cut < self.delay_rate).then_some(Recovery {
                            since: now,
                            target: self.delay_rate,
                            clean_since,
                            capacity: self.capacity,
                            climbed: false,
                        }),
                    };
                    if cut < self.delay_rate {
                        self.delay_rate = cut;
                    }
                    if let Some(a) = acked {
                        self.observe_capacity(a / 1_000.0);
                    }
                    self.last_decrease = Some(now);
                }
                self.last_change = Some(now);
            }
            // A queue that drains after an unconfirmed cut is a delay back to normal: climb.
            Signal::Underuse if self.recovery.is_some() => self.increase(now, acked),
            Signal::Underuse => {
                // Hold: the queue drains at the current rate.
                self.last_change = Some(now);
            }
            Signal::Normal => self.increase(now, acked),
        }
        self.delay_rate = self
            .delay_rate
            .clamp(self.config.min.0 as f64, self.config.max.0 as f64);
    }

    fn increase(&mut self, now: Instant, acked: Option<f64>) {
        let dt = self.last_change.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(1.0)
        });
        self.last_change = Some(now);
        if let (Some(cap), Some(a)) = (self.capacity, acked) {
            if a / 1_000.0 > cap.mean_kbps + 3.0 * (cap.var * cap.mean_kbps).sqrt() {
                self.capacity = None; // the link grew: search multiplicatively again
            }
        }
        let before = self.delay_rate;
        if self
            .recovery
            .is_some_and(|r| now.saturating_duration_since(r.since) > RECOVERY_FOR)
        {
            self.recovery = None;
        }
        if let Some(r) = self.recovery.as_mut() {
            r.climbed = true;
            self.delay_rate = (self.delay_rate * self.config.max_increase_per_s.powf(dt))
                .min(r.target.max(before));
            if self.delay_rate >= r.target {
                self.clean_since = r.clean_since;
                self.capacity = r.capacity;
                self.recovery = None;
            }
            if let Some(a) = acked {
                self.delay_rate = self.delay_rate.min((1.5 * a + 10_000.0).max(before));
            }
            return;
        }
        let near = self.capacity.is_some_and(|c| {
            (self.delay_rate / 1_000.0 - c.mean_kbps).abs() <= 3.0 * (c.var * c.mean_kbps).sqrt()
        });
        if near {
            // About one 1,200-byte packet more per response time.
            let response = self.rtt.as_secs_f64() + 0.1;
            self.delay_rate += (1_200.0 * 8.0 / response).max(4_000.0) * dt;
        } else {
            let clean = now.saturating_duration_since(self.clean_since);
            let ramp = (clean
                .saturating_sub(self.config.speedup_after)
                .as_secs_f64()
                / self.config.speedup_over.as_secs_f64().max(1e-3))
            .min(1.0);
            let eta = self.config.increase_per_s
                + ramp * (self.config.max_increase_per_s - self.config.increase_per_s);
            self.delay_rate *= eta.powf(dt);
        }
        if let Some(a) = acked {
            // Never climb past what the path has shown it carries, but never cut here either.
            self.delay_rate = self.delay_rate.min((1.5 * a + 10_000.0).max(before));
        }
    }

    fn observe_capacity(&mut self, sample_kbps: f64) {
        let c = self.capacity.get_or_insert(Capacity {
            mean_kbps: sample_kbps,
            var: 0.4,
        });
        if c.mean_kbps - 3.0 * (c.var * c.mean_kbps).sqrt() > sample_kbps {
            // Far below what we knew: the link shrank; start the average again.
            *c = Capacity {
                mean_kbps: sample_kbps,
                var: 0.4,
            };
        }
        c.mean_kbps = 0.95 * c.mean_kbps + 0.05 * sample_kbps;
        let norm = c.mean_kbps.max(1.0);
        c.var = (0.95 * c.var + 0.05 * (c.mean_kbps - sample_kbps).powi(2) / norm).clamp(0.4, 2.5);
    }

    fn update_loss(&mut self, now: Instant) {
        let (lost, total) = self.loss_counted;
        let window = now.saturating_duration_since(self.loss_window_start);
        // Enough packets that 5 % random loss rarely reads as 10 %: 100 packets, or a second.
        let enough = (total >= 100 && window >= Duration::from_millis(300))
            || (total >= 20 && window >= Duration::from_secs(1));
        if !enough {
            return;
        }
        // Smoothed over windows, so one unlucky window of random loss does not cut.
        let sample = f64::from(lost) / f64::from(total);
        let fraction = self
            .loss_smoothed
            .map_or(sample, |s| 0.5 * s + 0.5 * sample);
        self.loss_smoothed = Some(fraction);
        self.loss_counted = (0, 0);
        self.loss_window_start = now;
        let current = self.estimate().0 as f64;
        let secs = window.as_secs_f64().min(1.0);
        if fraction > self.config.loss_high {
            let gap = Duration::from_millis(300) + self.rtt;
            if self.last_loss_cut.is_none_or(|t| now >= t + gap) {
                self.loss_cap = Some(current * (1.0 - 0.5 * fraction));
                self.last_loss_cut = Some(now);
                self.recovery = None;
            }
        } else if fraction < self.config.loss_low {
            // Clean again: the delay-based rate governs (it is itself held to 1.5 × acked).
            self.loss_cap = None;
        } else if let Some(cap) = self.loss_cap.as_mut() {
            // Moderate loss: the draft holds; we creep at 2 %/s so random loss cannot pin the
            // rate forever (loss caused by sending too much grows as we creep, and cuts again).
            *cap *= 1.02f64.powf(secs);
            if *cap >= self.delay_rate {
                self.loss_cap = None;
            }
        }
    }
}

impl Estimator for Gcc {
    fn on_feedback(&mut self, now: Instant, results: &[PacketResult]) {
        self.last_feedback = now;
        let mut signal = None;
        for r in results {
            self.loss_counted.1 += 1;
            let Some(arrival_us) = r.arrival_us else {
                self.loss_counted.0 += 1;
                continue;
            };
            self.acked.add(arrival_us, r.size);
            if let Some(s) = self.on_received(r.sent_us as i64, arrival_us) {
                // Overuse anywhere in the feedback wins over a later normal.
                if signal != Some(Signal::Overuse) {
                    signal = Some(s);
                }
            }
        }
        if let Some(newest) = results.iter().map(|r| r.sent_us).max() {
            let sample = Duration::from_micros((self.us(now) as u64).saturating_sub(newest));
            if sample < Duration::from_secs(10) {
                self.rtt = self.rtt.mul_f64(0.875) + sample.mul_f64(0.125);
            }
        }
        if let Some(s) = signal {
            self.update_delay_rate(now, s);
        }
        self.update_loss(now);
    }

    fn on_tick(&mut self, now: Instant) {
        let silent = now.saturating_duration_since(self.last_feedback);
        if silent >= self.config.feedback_timeout {
            self.delay_rate = (self.delay_rate * 0.8).max(self.config.min.0 as f64);
            self.last_feedback = now;
            self.clean_since = now;
            self.recovery = None;
        }
    }

    fn estimate(&self) -> Bitrate {
        let rate = self
            .loss_cap
            .map_or(self.delay_rate, |c| c.min(self.delay_rate));
        Bitrate(rate.clamp(self.config.min.0 as f64, self.config.max.0 as f64) as u64)
    }
}

#[cfg(test)]
#[path = "gcc_tests.rs"]
mod tests;
