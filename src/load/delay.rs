//! The SFU-added delay of a load window, from the server's own histogram
//! (`confab_forward_delay_seconds`, see [`crate::server::forward_delay`]) read before and
//! after it: unlike the bots' stamp → read latency, none of the tester's scheduling is in it.

use crate::server::forward_delay::BOUNDS_US;

/// Buckets, the last one `+Inf`.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The histogram's cumulative bucket counts as scraped (index `i` counts copies at most
/// `BOUNDS_US[i]`; the last counts all).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scraped(pub [f64; BUCKETS]);

/// The histogram of every forwarded copy.
pub const ALL: &str = "confab_forward_delay_seconds";
/// The histogram of the copies the lean pacer held.
pub const PACED: &str = "confab_forward_delay_paced_seconds";

/// Reads histogram `name`'s buckets ([`ALL`], [`PACED`]) from a `/metrics` body; `None` when
/// the server exports no such histogram (an older build) or its bounds differ from ours.
pub fn parse(text: &str, name: &str) -> Option<Scraped> {
    let mut cum = [f64::NAN; BUCKETS];
    let prefix = format!("{name}_bucket{{le=\"");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let (le, value) = rest.split_once("\"}")?;
        let value: f64 = value.trim().parse().ok()?;
        let i = if le == "+Inf" {
            BUCKETS - 1
        } else {
            let us = le.parse::<f64>().ok()? * 1e6;
            BOUNDS_US
                .iter()
                .position(|&b| (b as f64 - us).abs() < 0.5)?
        };
        cum[i] = value;
    }
    cum.iter().all(|v| v.is_finite()).then_some(Scraped(cum))
}

/// What the window's copies waited in the SFU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Copies observed in the window.
    pub copies: u64,
    /// Median, µs (interpolated within its bucket, as Prometheus' `histogram_quantile`).
    pub p50_us: f64,
    /// 99th percentile, µs (likewise).
    pub p99_us: f64,
    /// Upper bound of the highest bucket any copy fell in, µs (`f64::INFINITY` past the last
    /// bound): the histogram cannot say more of the maximum.
    pub max_us: f64,
}

/// The window between two scrapes; `None` when no copy was observed in it.
pub fn window(before: &Scraped, after: &Scraped) -> Option<Window> {
    let mut per = [0.0; BUCKETS];
    let mut prev = 0.0;
    for (i, slot) in per.iter_mut().enumerate() {
        let d = (after.0[i] - before.0[i]).max(0.0);
        *slot = (d - prev).max(0.0);
        prev = prev.max(d);
    }
    let total: f64 = per.iter().sum();
    if total < 1.0 {
        return None;
    }
    let upper = |i: usize| BOUNDS_US.get(i).map_or(f64::INFINITY, |&b| b as f64);
    let max_us = upper(per.iter().rposition(|&n| n > 0.0)?);
    Some(Window {
        copies: total as u64,
        p50_us: quantile(&per, total, 0.5),
        p99_us: quantile(&per, total, 0.99),
        max_us,
    })
}

/// Linear interpolation within the bucket holding rank `q × total`; in the `+Inf` bucket,
/// the last finite bound (a floor, as Prometheus does).
fn quantile(per: &[f64; BUCKETS], total: f64, q: f64) -> f64 {
    let rank = q * total;
    let mut below = 0.0;
    for (i, &n) in per.iter().enumerate() {
        if n > 0.0 && below + n >= rank {
            let Some(&hi) = BOUNDS_US.get(i) else {
                return BOUNDS_US[BOUNDS_US.len() - 1] as f64;
            };
            let lo = if i == 0 { 0.0 } else { BOUNDS_US[i - 1] as f64 };
            return lo + (hi as f64 - lo) * ((rank - below) / n).clamp(0.0, 1.0);
        }
        below += n;
    }
    BOUNDS_US[BOUNDS_US.len() - 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::forward_delay::ForwardDelay;
    use prometheus_client::registry::Registry;
    use std::time::Duration;

    fn scrape(h: &ForwardDelay) -> Scraped {
        let mut r = Registry::with_prefix("confab");
        r.register("forward_delay_seconds", "d", h.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).expect("encode");
        parse(&text, ALL).expect("a histogram with our bounds")
    }

    #[test]
    fn a_window_reads_only_what_was_observed_between_its_scrapes() {
        let h = ForwardDelay::default();
        h.observe(Duration::from_secs(1), 1000);
        let before = scrape(&h);
        // 98 copies at 120 µs (the 100-150 µs bucket), one at 4 ms, one at 40 ms.
        h.observe(Duration::from_micros(120), 98);
        h.observe(Duration::from_millis(4), 1);
        h.observe(Duration::from_millis(40), 1);
        let w = window(&before, &scrape(&h)).expect("copies");
        assert_eq!(w.copies, 100);
        assert!((100.0..=150.0).contains(&w.p50_us), "{w:?}");
        assert!((3_000.0..=5_000.0).contains(&w.p99_us), "{w:?}");
        assert_eq!(w.max_us, 50_000.0);
        assert_eq!(window(&before, &before), None);
    }

    #[test]
    fn past_the_last_bound_is_a_floor_and_other_metrics_are_not_it() {
        let h = ForwardDelay::default();
        let before = scrape(&h);
        h.observe(Duration::from_secs(9), 1);
        let w = window(&before, &scrape(&h)).expect("copies");
        assert_eq!(w.p99_us, 2_000_000.0);
        assert_eq!(w.max_us, f64::INFINITY);
        assert_eq!(parse("confab_rtp_forwarded_packets_total 3\n", ALL), None);
    }
}
