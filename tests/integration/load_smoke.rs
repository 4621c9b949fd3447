//! The load tester's engine end to end against an in-process server: a small webinar connects
//! and forwards without loss. Speed figures are printed, never asserted.

use crate::common::TestServer;
use confab::load::{self, LoadConfig, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webinar_one_to_five_connects_and_forwards_without_loss() {
    let server = TestServer::start().await;
    let mut config = LoadConfig::new(
        server.ws_url(),
        Scenario::Webinar {
            publishers: 1,
            viewers: 5,
        },
    );
    config.warmup = Duration::from_secs(1);
    config.duration = Duration::from_secs(3);
    config.ramp_timeout = Duration::from_secs(15);
    // Two viewers decrypt (latency), three only count: both receive paths are exercised.
    config.decrypting = 2;
    let report = tokio::time::timeout(Duration::from_secs(40), load::run(&config))
        .await
        .expect("the run is bounded")
        .expect("valid configuration");
    eprintln!("{}", report.table());
    assert_eq!(report.joined, 6, "{report:?}");
    assert_eq!(report.connected, 6, "{report:?}");
    assert_eq!(report.ready, 6, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(
        report.server_forwarded_pps.unwrap_or(0.0) > 0.0,
        "{report:?}"
    );
    assert!(report.client_received_pps > 0.0, "{report:?}");
    assert!(report.latency_samples > 0, "{report:?}");
    assert!(report.is_clean());
}
