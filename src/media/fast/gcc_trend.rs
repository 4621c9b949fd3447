//! GCC's delay side: the trendline filter over inter-group delay and the overuse detector.

use super::Signal;

/// Trendline: samples in the regression, smoothing of the accumulated delay, slope gain.
const TREND_WINDOW: usize = 20;
const TREND_SMOOTHING: f64 = 0.9;
const TREND_GAIN: f64 = 4.0;
/// Overuse threshold: start, bounds, adaptation speeds (per ms) up and down, and the jump
/// beyond which a sample is an outlier that does not move it.
const THRESHOLD_INITIAL: f64 = 12.5;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const THRESHOLD_K_UP: f64 = 0.0087;
const THRESHOLD_K_DOWN: f64 = 0.039;
const THRESHOLD_OUTLIER: f64 = 15.0;
/// Overuse must last this long (ms) before it counts.
const OVERUSE_TIME_MS: f64 = 10.0;

/// Least-squares slope of the smoothed accumulated delay against arrival time.
#[derive(Clone, Debug)]
pub(super) struct Trendline {
    samples: [(f64, f64); TREND_WINDOW],
    len: usize,
    next: usize,
    first_arrival_ms: Option<f64>,
    accumulated: f64,
    smoothed: f64,
    deltas: u32,
}

impl Trendline {
    pub(super) fn new() -> Self {
        Trendline {
            samples: [(0.0, 0.0); TREND_WINDOW],
            len: 0,
            next: 0,
            first_arrival_ms: None,
            accumulated: 0.0,
            smoothed: 0.0,
            deltas: 0,
        }
    }

    /// Adds one inter-group delay variation (ms); returns the scaled trend once the window is full.
    pub(super) fn update(&mut self, delay_ms: f64, arrival_ms: f64) -> Option<f64> {
        self.deltas = (self.deltas + 1).min(1_000);
        self.accumulated += delay_ms;
        self.smoothed =
            TREND_SMOOTHING * self.smoothed + (1.0 - TREND_SMOOTHING) * self.accumulated;
        let first = *self.first_arrival_ms.get_or_insert(arrival_ms);
        self.samples[self.next] = (arrival_ms - first, self.smoothed);
        self.next = (self.next + 1) % TREND_WINDOW;
        self.len = (self.len + 1).min(TREND_WINDOW);
        if self.len < TREND_WINDOW {
            return None;
        }
        let n = self.len as f64;
        let (sx, sy) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (mx, my) = (sx / n, sy / n);
        let (mut num, mut den) = (0.0, 0.0);
        for (x, y) in &self.samples {
            num += (x - mx) * (y - my);
            den += (x - mx) * (x - mx);
        }
        let slope = if den > 0.0 { num / den } else { 0.0 };
        Some(f64::from(self.deltas.min(60)) * slope * TREND_GAIN)
    }
}

/// The overuse detector with its adaptive threshold.
#[derive(Clone, Debug)]
pub(super) struct Detector {
    threshold: f64,
    over_ms: Option<f64>,
    over_count: u32,
    prev_trend: f64,
    last_update_ms: Option<f64>,
    pub(super) signal: Signal,
}

impl Detector {
    pub(super) fn new() -> Self {
        Detector {
            threshold: THRESHOLD_INITIAL,
            over_ms: None,
            over_count: 0,
            prev_trend: 0.0,
            last_update_ms: None,
            signal: Signal::Normal,
        }
    }

    pub(super) fn detect(&mut self, trend: f64, group_gap_ms: f64, now_ms: f64) -> Signal {
        if trend > self.threshold {
            let over = self
                .over_ms
                .map_or(group_gap_ms / 2.0, |t| t + group_gap_ms);
            self.over_ms = Some(over);
            self.over_count += 1;
            if over > OVERUSE_TIME_MS && self.over_count > 1 && trend >= self.prev_trend {
                self.over_ms = Some(0.0);
                self.over_count = 0;
                self.signal = Signal::Overuse;
            }
        } else if trend < -self.threshold {
            self.over_ms = None;
            self.over_count = 0;
            self.signal = Signal::Underuse;
        } else {
            self.over_ms = None;
            self.over_count = 0;
            self.signal = Signal::Normal;
        }
        self.prev_trend = trend;
        // The threshold follows |trend|: quickly down, slowly up, ignoring outliers.
        let dt = self
            .last_update_ms
            .map_or(0.0, |last| (now_ms - last).clamp(0.0, 100.0));
        self.last_update_ms = Some(now_ms);
        if trend.abs() <= self.threshold + THRESHOLD_OUTLIER {
            let k = if trend.abs() < self.threshold {
                THRESHOLD_K_DOWN
            } else {
                THRESHOLD_K_UP
            };
            self.threshold += k * (trend.abs() - self.threshold) * dt;
            self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
        }
        self.signal
    }
}
