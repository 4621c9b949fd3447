//! Several runs of one scenario, against one or more server binaries: medians and ranges.
//!
//! On a shared or virtual machine, forwarding per CPU-second varies by ±15 % between runs of
//! the same binary (thread placement, estimate history), far more than between windows of one
//! run. So a figure worth quoting, or a comparison of two builds, takes several runs, each
//! with a fresh server, the builds alternating so that a slow stretch of the machine hits
//! them alike; `confab-load --spawn A --spawn B --runs N` does that and reports this summary.

use super::report::Report;
use crate::server::forward_delay::BOUNDS_US;
use serde::Serialize;
use std::fmt::Write;

/// What the runs of one binary measured.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// The server binary.
    pub binary: String,
    /// Runs made.
    pub runs: usize,
    /// Runs in which every bot joined, connected, received everything and lost nothing.
    pub clean_runs: usize,
    /// Forwarded packets per server CPU-second, one per run that measured it, in run order.
    pub forwarded_per_cpu_s: Vec<f64>,
    /// Their median.
    pub forwarded_per_cpu_s_median: Option<f64>,
    /// Their least.
    pub forwarded_per_cpu_s_min: Option<f64>,
    /// Their greatest.
    pub forwarded_per_cpu_s_max: Option<f64>,
    /// Median of the runs' latency p99, µs.
    pub latency_us_p99_median: Option<f64>,
    /// Median of the runs' SFU-added p50 (server histogram, see [`Report::sfu_delay_us`]), µs.
    pub sfu_delay_us_p50_median: Option<f64>,
    /// Median of the runs' SFU-added p99, µs.
    pub sfu_delay_us_p99_median: Option<f64>,
    /// The highest bucket bound any run's SFU-added delay reached, µs (past the histogram's
    /// last bound: `null` in JSON, as in the runs' reports).
    pub sfu_delay_us_max: Option<f64>,
    /// Median of the runs' RSS per participant, KiB.
    pub rss_per_participant_kib_median: Option<f64>,
    /// Median of the runs' datagrams per sending system call (the server's batching).
    pub datagrams_per_send_median: Option<f64>,
    /// Packets lost over all runs.
    pub lost: i64,
    /// Runs in which the tester was starved ([`Report::starved`]): their latency is its own.
    pub starved_runs: usize,
}

/// The middle value (the mean of the two middle ones for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Summarizes the runs of `binary`.
pub fn summarize(binary: &str, reports: &[Report]) -> Summary {
    let fwd: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.forwarded_per_cpu_s)
        .collect();
    let p99: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.latency_us_p99.map(|v| v as f64))
        .collect();
    let sfu = |i: usize| -> Vec<f64> {
        reports
            .iter()
            .filter_map(|r| r.sfu_delay_us.map(|d| d[i]))
            .collect()
    };
    let rss: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.rss_per_participant_kib)
        .collect();
    let per_send: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.server_datagrams_per_send)
        .collect();
    Summary {
        binary: binary.to_string(),
        runs: reports.len(),
        clean_runs: reports.iter().filter(|r| r.is_clean()).count(),
        forwarded_per_cpu_s_median: median(&fwd),
        forwarded_per_cpu_s_min: fwd.iter().copied().reduce(f64::min),
        forwarded_per_cpu_s_max: fwd.iter().copied().reduce(f64::max),
        forwarded_per_cpu_s: fwd,
        latency_us_p99_median: median(&p99),
        sfu_delay_us_p50_median: median(&sfu(0)),
        sfu_delay_us_p99_median: median(&sfu(1)),
        sfu_delay_us_max: sfu(2).into_iter().reduce(f64::max),
        rss_per_participant_kib_median: median(&rss),
        datagrams_per_send_median: median(&per_send),
        lost: reports.iter().map(|r| r.lost).sum(),
        starved_runs: reports
            .iter()
            .filter(|r| r.loader_starved == Some(true))
            .count(),
    }
}

/// The summaries as aligned text, one block per binary.
pub fn table(summaries: &[Summary]) -> String {
    let k = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{:.1} k", x / 1e3));
    let last_bound_us = BOUNDS_US.last().map_or(f64::INFINITY, |&b| b as f64);
    let mut out = String::new();
    for s in summaries {
        let each: Vec<String> = s
            .forwarded_per_cpu_s
            .iter()
            .map(|x| format!("{:.1}", x / 1e3))
            .collect();
        let _ = writeln!(out, "{}", s.binary);
        let rows = [
            ("runs (clean)", format!("{} ({})", s.runs, s.clean_runs)),
            (
                "FWD PKT PER CPU-S median [min, max]",
                format!(
                    "{} [{}, {}]",
                    k(s.forwarded_per_cpu_s_median),
                    k(s.forwarded_per_cpu_s_min),
                    k(s.forwarded_per_cpu_s_max)
                ),
            ),
            ("each run, k", each.join(" ")),
            (
                "latency p99 median ms",
                s.latency_us_p99_median
                    .map_or("n/a".into(), |v| format!("{:.1}", v / 1e3)),
            ),
            (
                // Medians of the runs' p50 and p99; the max is the highest of any run.
                "SFU-added p50 / p99 / max ms (server)",
                match (s.sfu_delay_us_p50_median, s.sfu_delay_us_p99_median) {
                    (Some(p50), Some(p99)) => format!(
                        "{:.2} / {:.2} / {}",
                        p50 / 1e3,
                        p99 / 1e3,
                        match s.sfu_delay_us_max {
                            Some(max) if max.is_finite() => format!("<= {:.2}", max / 1e3),
                            Some(_) => format!("> {:.0}", last_bound_us / 1e3),
                            None => "n/a".into(),
                        }
                    ),
                    _ => "n/a".into(),
                },
            ),
            (
                "RSS per participant median KiB",
                s.rss_per_participant_kib_median
                    .map_or("n/a".into(), |v| format!("{v:.0}")),
            ),
            (
                "datagrams per send call median",
                s.datagrams_per_send_median
                    .map_or("n/a".into(), |v| format!("{v:.1}")),
            ),
            ("lost, all runs", s.lost.to_string()),
            ("runs with the tester starved", s.starved_runs.to_string()),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<38} {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fwd: Option<f64>, lost: i64) -> Report {
        Report {
            bots: 2,
            joined: 2,
            connected: 2,
            ready: 2,
            lost,
            forwarded_per_cpu_s: fwd,
            latency_us_p99: Some(4000),
            sfu_delay_us: Some([100.0, 900.0, 1000.0]),
            rss_per_participant_kib: Some(250.0),
            server_datagrams_per_send: Some(50.0),
            ..Default::default()
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn summary_keeps_every_run_and_counts_the_clean_ones() {
        let s = summarize(
            "a",
            &[
                run(Some(90e3), 0),
                run(None, 0),
                run(Some(70e3), 3),
                Report {
                    loader_starved: Some(true),
                    sfu_delay_us: Some([300.0, 1100.0, 5000.0]),
                    ..run(Some(80e3), 0)
                },
            ],
        );
        assert_eq!(s.starved_runs, 1);
        assert_eq!(s.runs, 4);
        assert_eq!(s.clean_runs, 3);
        assert_eq!(s.forwarded_per_cpu_s, vec![90e3, 70e3, 80e3]);
        assert_eq!(s.forwarded_per_cpu_s_median, Some(80e3));
        assert_eq!(
            (s.forwarded_per_cpu_s_min, s.forwarded_per_cpu_s_max),
            (Some(70e3), Some(90e3))
        );
        assert_eq!(s.latency_us_p99_median, Some(4000.0));
        assert_eq!(s.sfu_delay_us_p50_median, Some(100.0));
        assert_eq!(s.sfu_delay_us_p99_median, Some(900.0));
        assert_eq!(s.sfu_delay_us_max, Some(5000.0));
        assert_eq!(s.datagrams_per_send_median, Some(50.0));
        assert_eq!(s.lost, 3);
        let text = table(&[s]);
        assert!(text.contains("80.0 k [70.0 k, 90.0 k]"), "{text}");
        assert!(text.contains("90.0 70.0 80.0"), "{text}");
        assert!(text.contains("0.10 / 0.90 / <= 5.00"), "{text}");
    }

    #[test]
    fn a_delay_past_the_last_bucket_is_said_so() {
        let past = Report {
            sfu_delay_us: Some([100.0, 900.0, f64::INFINITY]),
            ..run(Some(90e3), 0)
        };
        let s = summarize("a", &[run(Some(80e3), 0), past]);
        assert_eq!(s.sfu_delay_us_max, Some(f64::INFINITY));
        let text = table(&[s]);
        assert!(text.contains("0.10 / 0.90 / > 2000"), "{text}");
    }
}
