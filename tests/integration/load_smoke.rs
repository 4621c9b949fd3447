//! The load tester's engine end to end against an in-process server: a small webinar connects
//! and forwards without loss; the kernel-ceiling measurement sends what it is asked. Speed
//! figures are printed, never asserted.

use crate::common::{run_load, small_webinar, TestServer};
use confab::load::ceiling;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webinar_one_to_five_connects_and_forwards_without_loss() {
    let server = TestServer::start().await;
    let mut config = small_webinar(&server, 5);
    // Two viewers decrypt (latency), three only count: both receive paths are exercised.
    config.decrypting = 2;
    let report = run_load(&config).await;
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
    // The server batches its sends: every system call sent at least one datagram and at most
    // one batch, in the measured window as over the whole run (read apart from the report).
    let per_send = report
        .server_datagrams_per_send
        .expect("send calls are counted");
    let batch = confab::server::transport::egress::MAX_BATCH as f64;
    assert!((1.0..=batch).contains(&per_send), "{report:?}");
    let out = server.metric("confab_udp_out_datagrams_total");
    let calls = server.metric("confab_udp_send_calls_total");
    assert!(calls > 0.0, "no send calls counted");
    assert!(
        out >= calls && out <= calls * batch,
        "{out} datagrams in {calls} calls"
    );
    // A receive call is counted only when it took datagrams: never more calls than datagrams.
    let received = server.metric("confab_udp_in_datagrams_total");
    let recv_calls = server.metric("confab_udp_recv_calls_total");
    assert!(
        recv_calls > 0.0 && recv_calls <= received,
        "{received} datagrams in {recv_calls} receive calls"
    );
    // The viewers' RTCP is queued on the port's RTCP socket and read with media (or after a
    // quiet spell), and the room still opens it.
    let rtcp_side = server.metric("confab_udp_in_rtcp_side_datagrams_total");
    assert!(
        rtcp_side > 0.0 && rtcp_side < received,
        "{rtcp_side} of {received} datagrams in came from the RTCP side"
    );
    assert!(server.metric("confab_lean_srtcp_opened_total") > 0.0);
    // Every viewer sends transport-cc feedback every 50 ms, the three that only count too
    // (sealed by the tester itself): more than the two decrypting ones could (40/s) reach the
    // server's estimators.
    let feedback_ps = report.server_feedback_ps.expect("counted");
    assert!(
        feedback_ps >= 50.0,
        "{feedback_ps} feedback/s from 5 viewers"
    );
    // The room forwarded, so it passed through its loop, and each pass is counted.
    let passes = server.metric("confab_room_passes_total");
    assert!(passes > 0.0, "no room passes counted");
    // The report carries both per second of its window, no more than the run's totals.
    let (calls_ps, passes_ps) = (
        report.server_recv_calls_ps.expect("counted"),
        report.server_room_passes_ps.expect("counted"),
    );
    assert!(calls_ps > 0.0 && calls_ps * report.window_s <= recv_calls + 1.0);
    assert!(passes_ps > 0.0 && passes_ps * report.window_s <= passes + 1.0);
    // The window's datagrams are part of the run's.
    let window_out = report.server_udp_out_pps.expect("counted") * report.window_s;
    assert!(window_out <= out + 1.0, "{window_out} > {out}");
    assert!(report.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceiling_sends_a_fan_out_shape_and_times_only_the_sender() {
    let config = ceiling::CeilingConfig {
        peers: 10,
        pps: 2000,
        batch: 8,
        bytes: 1130,
        duration: Duration::from_secs(1),
        // CPU 0 exists everywhere: the pinned sender is what a pinned server's ceiling uses.
        sender_cpus: vec![0],
        per_peer: 1,
        gso: true,
        // Each receiver sends feedback back every 20 ms: 500 a second for the sender to read.
        feedback_every: Some(Duration::from_millis(20)),
    };
    let report = tokio::time::timeout(Duration::from_secs(20), ceiling::run(&config))
        .await
        .expect("the run is bounded")
        .expect("valid configuration");
    eprintln!("{}", report.table());
    // Paced at the asked rate (a starved sender thread can only fall short of it).
    assert!(
        report.sent_pps > 1000.0 && report.sent_pps < 2200.0,
        "{report:?}"
    );
    // Loopback with 1 MiB receive buffers and readers waiting: everything arrives.
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(report.sender_cpu_pct > 0.0, "{report:?}");
    let cost = report.us_per_datagram;
    assert!(cost.is_finite() && cost > 0.0, "{report:?}");
    assert!(
        (250.0..=600.0).contains(&report.feedback_read_pps),
        "{report:?}"
    );
}

#[tokio::test]
async fn ceiling_refuses_shapes_it_cannot_send() {
    let good = ceiling::CeilingConfig {
        peers: 10,
        pps: 2000,
        batch: 8,
        bytes: 1130,
        duration: Duration::from_secs(1),
        sender_cpus: vec![],
        per_peer: 1,
        gso: true,
        feedback_every: None,
    };
    for bad in [
        ceiling::CeilingConfig {
            peers: 0,
            ..good.clone()
        },
        ceiling::CeilingConfig {
            batch: confab::server::transport::egress::MAX_BATCH + 1,
            ..good.clone()
        },
        ceiling::CeilingConfig {
            bytes: 9000,
            ..good.clone()
        },
        ceiling::CeilingConfig {
            pps: 0,
            ..good.clone()
        },
        ceiling::CeilingConfig {
            duration: Duration::ZERO,
            ..good.clone()
        },
        ceiling::CeilingConfig {
            sender_cpus: vec![4096],
            ..good.clone()
        },
        ceiling::CeilingConfig {
            feedback_every: Some(Duration::from_millis(1)),
            ..good.clone()
        },
    ] {
        let err = ceiling::run(&bad).await.expect_err("refused");
        assert!(err.starts_with("--") || err.contains("window"), "{err}");
    }
}
