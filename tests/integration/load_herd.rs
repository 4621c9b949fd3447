//! The load tester's herds (`bot::Herd`, `confab-load --herd true`) end to end: counting
//! viewers run many to a task with their sockets in one `epoll` set, and still receive
//! everything, as bots of their own do (`load_smoke`).

use crate::common::{run_load, small_webinar, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_counting_viewers_receives_without_loss() {
    let server = TestServer::start().await;
    let mut config = small_webinar(&server, 6);
    // One viewer decrypts (a bot of its own), five count in one herd.
    config.decrypting = 1;
    config.herd = true;
    let report = run_load(&config).await;
    eprintln!("{}", report.table());
    assert_eq!(report.joined, 7, "{report:?}");
    assert_eq!(report.connected, 7, "{report:?}");
    assert_eq!(report.ready, 7, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(report.client_received_pps > 0.0, "{report:?}");
    assert!(report.is_clean(), "{report:?}");
}
