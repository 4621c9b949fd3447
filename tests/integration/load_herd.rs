//! The load tester's herds (`bot::Herd`, `confab-load --herd true`) end to end: counting
//! viewers run many to a task with their sockets in one `epoll` set, and still receive
//! everything, as bots of their own do (`load_smoke`).

use crate::common::{run_load, small_webinar, TestServer};
use std::time::Duration;

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

/// A burst whose fan-outs are more than a send batch (a keyframe's packets to a large
/// audience): the room task sends each full batch as soon as it is sealed, before sealing the
/// rest (`Spill`, the room's hand-over), and every viewer still gets every packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyframe_wider_than_a_send_batch_leaves_in_parts_without_loss() {
    use confab::server::room_task::MEDIA_BURST;
    use confab::server::transport::egress::MAX_BATCH;
    // A burst is at most `MEDIA_BURST` datagrams, so its copies pass a batch only with more
    // viewers than that many times fewer than a batch.
    let viewers = MAX_BATCH / MEDIA_BURST + 12;
    // Without a send thread (a server on one CPU) a burst is read whole before its release;
    // with one, the room stops reading at `FLUSH_COPIES` and a batch fills only past ~700
    // viewers.
    let server = TestServer::with(|c| c.send_thread = false).await;
    let mut config = small_webinar(&server, viewers);
    config.decrypting = 1;
    config.herd = true;
    config.ramp_timeout = Duration::from_secs(25);
    // 30 kB keyframes (~25 packets, several bursts), one a second.
    config.shape.keyframe_bytes = 30_000;
    config.shape.keyframe_interval = Duration::from_secs(1);
    let report = run_load(&config).await;
    eprintln!("{}", report.table());
    assert_eq!(report.ready, viewers + 1, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    let spills = server.metric("confab_room_spills_total");
    assert!(
        spills > 0.0,
        "no batch was sent before its burst's fan-outs were all sealed"
    );
    assert!(report.is_clean(), "{report:?}");
}
