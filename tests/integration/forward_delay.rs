//! The server's forward-delay histogram (`confab_forward_delay_seconds`) on a real server on
//! loopback with real bots, on both send paths: it observes the copies the server forwarded,
//! exports a well-formed Prometheus histogram, and confab-load reads its window from it; with
//! and without the send thread.
//! Structure and counts only; what the delays are is for the benchmarks.

use crate::common::{run_load, small_webinar, TestServer};
use confab::media::config::SendPath;
use std::time::Duration;

async fn run(path: SendPath) {
    run_with(path, true).await;
}

async fn run_with(path: SendPath, send_thread: bool) {
    let server = TestServer::with(|c| {
        c.room.send_path = path;
        c.send_thread = send_thread;
    })
    .await;
    let report = run_load(&small_webinar(&server, 4)).await;
    eprintln!("{path:?}\n{}", report.table());
    assert_eq!(report.ready, 5, "{report:?}");

    // The window: copies observed, quantiles ordered and within the histogram's range.
    let copies = report.sfu_delay_copies.expect("the histogram is scraped");
    let window_fwd = report.server_forwarded_pps.expect("counted") * report.window_s;
    assert!(copies > 0, "{report:?}");
    assert!(
        (copies as f64) > window_fwd * 0.5 && (copies as f64) < window_fwd * 1.5 + 100.0,
        "{copies} copies observed, {window_fwd} forwarded in the window"
    );
    let [p50, p99, max] = report.sfu_delay_us.expect("quantiles");
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{report:?}");
    assert!(p50 < 1e6, "a median forward delay of {p50} us");

    // The whole run: once the bots are gone, every forwarded copy was observed once (on the
    // str0m path when the timeout pass drained it, on the lean path when sent or released).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let observed = server.shared.metrics.forward_delay.count() as f64;
    let forwarded = server.metric("confab_rtp_forwarded_packets_total");
    assert!(
        observed <= forwarded && observed >= forwarded * 0.98 - 50.0,
        "{observed} observed of {forwarded} forwarded"
    );

    // The exported histogram: cumulative buckets ending in +Inf, which is the count.
    let text = server.shared.metrics.render();
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("confab_forward_delay_seconds_bucket{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        buckets.len(),
        confab::server::forward_delay::BOUNDS_US.len() + 1
    );
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let count = server.metric("confab_forward_delay_seconds_count");
    assert_eq!(buckets.last().copied(), Some(count));
    assert!(count >= observed);
    assert!(server.metric("confab_forward_delay_seconds_sum") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_copies_are_observed_from_arrival_to_send() {
    run(SendPath::Lean).await;
}

/// Rooms sending their own batches (`--send-thread false`) observe them as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_copies_are_observed_without_the_send_thread() {
    run_with(SendPath::Lean, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn str0m_copies_are_observed_from_arrival_to_send() {
    run(SendPath::Str0m).await;
}
