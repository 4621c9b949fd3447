//! Virtual-time tests of the estimator over a simulated path, end to end through the send
//! register and real feedback bytes.

use super::*;
use crate::media::fast::twcc::tests::write_feedback;
use crate::media::fast::twcc::{parse_feedback, Feedback, RegisterConfig, SendRegister};
use std::collections::VecDeque;

const PACKET: usize = 1_200;

/// A bottleneck with a drop-tail queue, propagation delay and random loss.
struct Path {
    rate_bps: Option<f64>,
    queue_limit: Duration,
    one_way: Duration,
    loss: f64,
    rng: u64,
    busy_until: Instant,
}

impl Path {
    fn random(&mut self) -> f64 {
        // xorshift64*: deterministic, good enough for a loss coin.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// (time its fate is known at the receiver, arrival if it arrives).
    fn carry(&mut self, sent: Instant) -> (Instant, Option<Instant>) {
        let (left, dropped) = match self.rate_bps {
            None => (sent, false),
            Some(rate) => {
                let start = self.busy_until.max(sent);
                if start - sent > self.queue_limit {
                    (start, true)
                } else {
                    self.busy_until = start + Duration::from_secs_f64(PACKET as f64 * 8.0 / rate);
                    (self.busy_until, false)
                }
            }
        };
        let at = left + self.one_way;
        if dropped || self.random() < self.loss {
            (at, None)
        } else {
            (at, Some(at))
        }
    }
}

struct Sim {
    t0: Instant,
    now: Instant,
    path: Path,
    gcc: Gcc,
    register: SendRegister,
    inflight: VecDeque<(u64, Instant, Option<Instant>)>,
    next_send: Instant,
    next_feedback: Instant,
    next_tick: Instant,
    feedback_in_flight: VecDeque<(Instant, Vec<u8>)>,
    fb_count: u8,
    last_reference: u32,
    max_send_bps: f64,
    parsed: Feedback,
    results: Vec<PacketResult>,
    feedback_on: bool,
    /// Added to the next packet's arrival only (a receiver's clock misread once).
    jump_next: Option<Duration>,
}

impl Sim {
    fn new() -> Self {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            path: Path {
                rate_bps: None,
                queue_limit: Duration::from_millis(400),
                one_way: Duration::from_millis(25),
                loss: 0.0,
                rng: 0x9e37_79b9_7f4a_7c15,
                busy_until: t0,
            },
            gcc: Gcc::new(GccConfig::default(), t0),
            register: SendRegister::new(RegisterConfig::default(), t0),
            inflight: VecDeque::new(),
            next_send: t0,
            next_feedback: t0,
            next_tick: t0,
            feedback_in_flight: VecDeque::new(),
            fb_count: 0,
            last_reference: 0,
            max_send_bps: 3_000_000.0,
            parsed: Feedback::default(),
            results: Vec::new(),
            feedback_on: true,
            jump_next: None,
        }
    }

    fn estimate(&self) -> u64 {
        self.gcc.estimate().as_bps()
    }

    /// The receiver's clock: its own epoch, far from ours.
    fn remote_us(&self, t: Instant) -> i64 {
        (t - self.t0).as_micros() as i64 + 1_000_000_000
    }

    fn feedback(&mut self) {
        let mut first_seq = None;
        let mut statuses = Vec::new();
        let mut reference = None;
        let mut prev_us = 0;
        while let Some(&(seq, known, arrival)) = self.inflight.front() {
            if known > self.now || statuses.len() == 1_000 {
                break;
            }
            self.inflight.pop_front();
            first_seq.get_or_insert(seq);
            statuses.push(arrival.map(|a| {
                let us = self.remote_us(a);
                let r = *reference.get_or_insert_with(|| {
                    prev_us = us / 64_000 * 64_000;
                    (us / 64_000) as u32
                });
                let _ = r;
                let ticks = (us - prev_us) / 250;
                prev_us += ticks * 250;
                ticks as i16
            }));
        }
        let Some(first) = first_seq else { return };
        let reference = reference.unwrap_or(self.last_reference) & 0xff_ffff;
        self.last_reference = reference;
        let bytes = write_feedback(first as u16, reference, self.fb_count, &statuses, 2);
        self.fb_count = self.fb_count.wrapping_add(1);
        self.feedback_in_flight
            .push_back((self.now + self.path.one_way, bytes));
    }

    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        while self.next_send <= self.now {
            let sent = self.next_send;
            let seq = self.register.on_send(sent, PACKET);
            let (known, arrival) = self.path.carry(sent);
            let arrival = match (arrival, self.jump_next) {
                (Some(a), Some(jump)) => {
                    self.jump_next = None;
                    Some(a + jump)
                }
                (a, _) => a,
            };
            self.inflight.push_back((seq, known, arrival));
            let rate = (self.estimate() as f64).min(self.max_send_bps);
            self.next_send += Duration::from_secs_f64(PACKET as f64 * 8.0 / rate);
        }
        if self.now >= self.next_feedback {
            self.next_feedback += Duration::from_millis(50);
            if self.feedback_on {
                self.feedback();
            }
        }
        while self
            .feedback_in_flight
            .front()
            .is_some_and(|(at, _)| *at <= self.now)
        {
            let Some((_, bytes)) = self.feedback_in_flight.pop_front() else {
                break;
            };
            parse_feedback(&bytes, &mut self.parsed).expect("own feedback parses");
            self.results.clear();
            self.register
                .resolve(self.now, &self.parsed, &mut self.results);
            self.gcc.on_feedback(self.now, &self.results);
        }
        if self.now >= self.next_tick {
            self.next_tick += Duration::from_millis(25);
            self.gcc.on_tick(self.now);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until `f` holds, at most `limit`; returns how long it took.
    fn run_until(&mut self, limit: Duration, f: impl Fn(&Sim) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if f(self) {
                return Some(self.now - start);
            }
            self.step();
        }
        None
    }

    /// Mean estimate sampled every 10 ms over `d`.
    fn mean_estimate_over(&mut self, d: Duration) -> u64 {
        let (mut sum, mut n) = (0u64, 0u64);
        let end = self.now + d;
        while self.now < end {
            self.step();
            if (self.now - self.t0).as_millis().is_multiple_of(10) {
                sum += self.estimate();
                n += 1;
            }
        }
        sum / n.max(1)
    }
}

#[test]
fn ramps_up_on_a_clean_path_without_false_overuse() {
    let mut sim = Sim::new();
    let took = sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000);
    assert!(took.is_some(), "estimate {}", sim.estimate());
    eprintln!("figure: 300 kbit/s → 2 Mbit/s on a clean path in {took:?}");
    assert!(
        took.unwrap_or_default() <= Duration::from_secs(15),
        "{took:?}"
    );
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.gcc.overuses(), 0, "no queue, no overuse");
    // Capped by what is acknowledged: the sender sends at most 3 Mbit/s.
    assert!(sim.estimate() <= 4_600_000, "{}", sim.estimate());
    let acked = sim.gcc.acked().expect("acked").as_bps();
    assert!((2_700_000..=3_300_000).contains(&acked), "{acked}");
}

#[test]
fn a_300_kbit_cap_is_found_within_2_s_and_a_lifted_cap_within_10_s() {
    let mut sim = Sim::new();
    sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("ramped up");
    sim.path.rate_bps = Some(300_000.0);
    let took = sim
        .run_until(Duration::from_secs(5), |s| s.estimate() < 300_000)
        .expect("estimate fell under the cap");
    eprintln!("figure: under a 300 kbit/s cap after {took:?}");
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    // While capped it stays near the cap: under it on average, and far above the floor.
    let mean = sim.mean_estimate_over(Duration::from_secs(10));
    eprintln!("figure: mean estimate under the cap {mean}");
    assert!((150_000..=330_000).contains(&mean), "mean under cap {mean}");
    sim.path.rate_bps = None;
    let took = sim
        .run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("recovered");
    eprintln!("figure: cap lifted, ≥ 2 Mbit/s after {took:?}");
    assert!(took <= Duration::from_secs(10), "recovery took {took:?}");
}

#[test]
fn five_percent_random_loss_without_queueing_does_not_collapse_the_estimate() {
    let mut sim = Sim::new();
    sim.path.rate_bps = Some(5_000_000.0);
    sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("ramped up");
    let before = sim.estimate();
    sim.path.loss = 0.05;
    let mean = sim.mean_estimate_over(Duration::from_secs(20));
    let low = (before as f64 * 0.8) as u64;
    eprintln!("figure: 5 % loss: before {before}, mean over 20 s {mean}");
    assert!(mean >= low, "mean under 5 % loss {mean}, before {before}");
    assert!(sim.estimate() >= low, "{} after 20 s", sim.estimate());
}

#[test]
fn heavy_loss_cuts_the_estimate() {
    let mut sim = Sim::new();
    sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("ramped up");
    let before = sim.estimate();
    sim.path.loss = 0.3;
    sim.run_for(Duration::from_secs(5));
    assert!(sim.estimate() < before / 2, "{before} → {}", sim.estimate());
}

#[test]
fn a_step_in_delay_without_loss_is_detected() {
    let mut sim = Sim::new();
    sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("ramped up");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.gcc.overuses(), 0);
    let before = sim.estimate();
    sim.path.one_way += Duration::from_millis(100);
    let took = sim
        .run_until(Duration::from_secs(2), |s| s.gcc.overuses() > 0)
        .expect("overuse detected");
    eprintln!("figure: +100 ms delay step detected after {took:?}");
    assert!(took <= Duration::from_secs(1), "{took:?}");
    sim.run_for(Duration::from_millis(200));
    assert!(sim.estimate() < before, "{before} → {}", sim.estimate());
}

#[test]
fn silence_lowers_the_estimate() {
    let mut sim = Sim::new();
    sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("ramped up");
    let before = sim.estimate();
    sim.feedback_on = false;
    sim.run_for(Duration::from_secs(5));
    assert!(sim.estimate() < before / 2, "{before} → {}", sim.estimate());
    assert!(sim.estimate() >= GccConfig::default().min.as_bps());
}

#[test]
fn trendline_slope_and_acked_rate_are_exact_on_clean_input() {
    let mut t = Trendline::new();
    let mut out = None;
    // Delay growing 1 ms per 10 ms group: accumulated grows linearly, slope → 0.1 after the
    // smoothing settles; the scaled trend is min(n, 60) × slope × 4.
    for i in 0..200 {
        out = t.update(1.0, f64::from(i) * 10.0);
    }
    let trend = out.expect("window full");
    assert!((trend - 60.0 * 0.1 * 4.0).abs() < 0.5, "{trend}");
    let mut a = AckedRate::default();
    for i in 0..1_000i64 {
        a.add(i * 1_000, 125); // 1,000 bits per ms = 1 Mbit/s
    }
    let r = a.rate().expect("rate");
    assert!((r - 1_000_000.0).abs() < 5_000.0, "{r}");
}

/// A short delay burst with no change in capacity (a CPU stall reads like this): the cut it
/// causes is not confirmed, so the estimate is back where it was within a few seconds.
#[test]
fn a_spurious_delay_burst_is_recovered_from_within_3_s() {
    let mut sim = Sim::new();
    sim.max_send_bps = 1_500_000.0;
    sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("ramped up");
    sim.run_for(Duration::from_secs(5));
    let before = sim.estimate();
    // Held 300 ms, then drained at twice real time, in order (a stall neither loses nor
    // reorders).
    sim.path.one_way += Duration::from_millis(150);
    sim.run_for(Duration::from_millis(300));
    for _ in 0..15 {
        sim.path.one_way -= Duration::from_millis(10);
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_until(Duration::from_secs(1), |s| s.gcc.overuses() > 0)
        .expect("the burst reads as overuse");
    let cut = sim.estimate();
    assert!(cut < before * 9 / 10, "{before} → {cut}");
    let took = sim
        .run_until(Duration::from_secs(20), |s| {
            s.estimate() >= before * 95 / 100
        })
        .expect("recovered");
    eprintln!("figure: delay burst cut {before} → {cut}, back to 95 % after {took:?}");
    assert!(took <= Duration::from_secs(3), "recovery took {took:?}");
}

/// One arrival reported 2 s ahead of the rest (seen in 1 → 300 load runs, source unknown)
/// used to empty the acknowledged-rate window, and the overuse it caused cut a 2 Mbit/s
/// subscriber to 0.85 × a near-zero rate: the pacer then held its copies for most of a
/// second. Now the window starts over, and one overuse at most halves the estimate.
#[test]
fn one_arrival_far_ahead_neither_collapses_the_estimate_nor_holds_it_down() {
    let mut a = AckedRate::default();
    let mut t = 0i64;
    while t < 600_000 {
        a.add(t, 1_200);
        t += 9_600; // 1 Mbit/s
    }
    a.add(t + 2_000_000, 1_200);
    for _ in 0..20 {
        a.add(t, 1_200);
        t += 9_600;
    }
    let r = a.rate().expect("a rate again after 190 ms");
    assert!(
        (r - 1_000_000.0).abs() < 100_000.0,
        "acked after the outlier: {r}"
    );

    let mut sim = Sim::new();
    sim.run_until(Duration::from_secs(20), |s| s.estimate() >= 2_000_000)
        .expect("ramped up");
    sim.run_for(Duration::from_secs(5));
    let before = sim.estimate();
    sim.jump_next = Some(Duration::from_secs(2));
    sim.run_for(Duration::from_millis(300));
    // Then a real queue (a stall, as in the spurious-burst test): the overuse it reads as
    // must cut from the true rate, not from the emptied window.
    let mut low = sim.estimate();
    sim.path.one_way += Duration::from_millis(150);
    for _ in 0..300 {
        sim.step();
        low = low.min(sim.estimate());
    }
    for _ in 0..15 {
        sim.path.one_way -= Duration::from_millis(10);
        for _ in 0..20 {
            sim.step();
            low = low.min(sim.estimate());
        }
    }
    assert!(sim.gcc.overuses() > 0, "the stall reads as overuse");
    let took = sim
        .run_until(Duration::from_secs(10), |s| s.estimate() >= before * 9 / 10)
        .map(|d| d + Duration::from_millis(900));
    eprintln!("figure: outlier arrival: {before} → lowest {low}, back to 90 % after {took:?}");
    assert!(low >= before * 4 / 10, "{before} → {low}");
    assert!(
        took.is_some_and(|d| d <= Duration::from_secs(6)),
        "{took:?}"
    );
}
