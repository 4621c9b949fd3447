//! The Janus driver end to end against a real Janus (videoroom, WebSocket API) on loopback,
//! started by scripts/bench-janus.sh as a benchmark would. Skips with a message where Janus is
//! not installed (`bash scripts/bench-janus.sh setup` installs it); the test command does not
//! install it, since only benchmarks need it.

use confab::load::{self, LoadConfig, Report, Scenario, Target};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

fn janus_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("janus").is_file()))
}

/// Janus with the benchmark's default configuration on a free loopback port.
async fn start_janus() -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-janus.sh");
    let mut child = Command::new("bash")
        .args([script, "janus", "default", "--ws-port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("bash runs");
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "Janus did not listen within 15 s"
        );
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "Janus exited at start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, format!("ws://127.0.0.1:{port}"))
}

async fn webinar(simulcast: bool) -> Option<Report> {
    if !janus_installed() {
        eprintln!("SKIPPED: janus is not installed (bash scripts/bench-janus.sh setup)");
        return None;
    }
    let (janus, url) = start_janus().await;
    let mut config = LoadConfig::new(
        url,
        Scenario::Webinar {
            publishers: 1,
            viewers: 3,
        },
    );
    config.target = Target::Janus;
    config.server_pid = janus.id();
    config.shape.simulcast = simulcast;
    config.warmup = Duration::from_secs(1);
    config.duration = Duration::from_secs(3);
    config.ramp_timeout = Duration::from_secs(20);
    // Two viewers decrypt (latency, per-track counts), one only counts from the header.
    config.decrypting = 2;
    let report = tokio::time::timeout(Duration::from_secs(60), load::run(&config))
        .await
        .expect("the run is bounded")
        .expect("valid configuration");
    eprintln!("{}", report.table());
    Some(report)
}

fn check(report: &Report) {
    assert_eq!(report.joined, 4, "{report:?}");
    assert_eq!(report.connected, 4, "{report:?}");
    // Every viewer receives both the audio and the video track.
    assert_eq!(report.ready, 4, "{report:?}");
    assert_eq!(report.stalled, 0, "{report:?}");
    assert!(report.latency_samples > 0, "{report:?}");
    // Counted from the viewers, Janus's own CPU and memory from /proc.
    assert_eq!(
        report.server_forwarded_pps,
        Some(report.client_received_pps),
        "{report:?}"
    );
    assert!(report.client_received_pps > 0.0, "{report:?}");
    assert!(report.server_cpu_s.is_some(), "{report:?}");
    assert!(report.rss_per_participant_kib.is_some(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webinar_one_to_three_through_janus_videoroom() {
    let Some(report) = webinar(false).await else {
        return;
    };
    check(&report);
    // One publisher at 30 fps video (2 packets a delta) and 50 audio packets a second reaches
    // each of the 3 viewers: well over 100 packets a second each.
    assert!(report.client_received_pps > 300.0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_publisher_through_janus_videoroom() {
    let Some(report) = webinar(true).await else {
        return;
    };
    check(&report);
}
