//! The Janus driver end to end: `confab-load --spawn janus:WRAPPER` against a real Janus
//! (videoroom, WebSocket API) in the benchmark's own network namespace, as
//! scripts/bench-janus.sh runs it. Skips with a message where Janus is not installed or
//! namespaces cannot be made (not root); the test command installs no Janus, since only
//! benchmarks need it (`bash scripts/bench-janus.sh setup` does).

use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<&'static str> {
    if !on_path("janus") {
        return Some("janus is not installed (bash scripts/bench-janus.sh setup)");
    }
    if !on_path("ip") {
        return Some("no `ip` command for the network namespace");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("making the network namespace needs root");
    }
    None
}

/// One webinar 1 -> 3 through Janus, without simulcast; the report as JSON. (Janus forwards a
/// simulcast layer only from a keyframe it recognizes by the VP8 start code, which the
/// synthetic frames do not carry: with simulcast its viewers would get audio only.)
async fn webinar() -> Value {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            "confab-janus",
            env!("CARGO_BIN_EXE_confab-load"),
        ])
        .args(["--json", "--quiet", "--decrypting", "2"])
        // bench0's address in the namespace (see scripts/bench-janus.sh).
        .args(["--janus-media-ip", "198.18.0.1"])
        .args(["--warmup", "1", "--duration", "3", "--ramp-timeout", "20"])
        .args(["--simulcast", "false"])
        .arg("--spawn")
        .arg(format!("janus:{ROOT}/target/bench-janus/janus-default"))
        .args(["webinar", "--viewers", "3"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("the run is bounded")
        .expect("confab-load runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr: {stderr}"));
    eprintln!("{report:#}");
    report
}

fn check(r: &Value) {
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    assert_eq!(n("joined"), 4.0, "{r}");
    assert_eq!(n("connected"), 4.0, "{r}");
    // Every viewer receives both the audio and the video track.
    assert_eq!(n("ready"), 4.0, "{r}");
    assert_eq!(n("stalled"), 0.0, "{r}");
    assert!(n("latency_samples") > 0.0, "{r}");
    // One publisher (50 audio and >= 60 video packets a second) reaches each of 3 viewers.
    assert!(n("client_received_pps") > 250.0, "{r}");
    // Janus has no counters: its forwarded packets are the viewers' own counts, over its CPU
    // and memory from /proc of the spawned process.
    assert_eq!(n("server_forwarded_pps"), n("client_received_pps"), "{r}");
    assert!(n("server_cpu_s") > 0.0, "{r}");
    assert!(n("forwarded_per_cpu_s") > 0.0, "{r}");
    assert!(r["rss_per_participant_kib"].is_number(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webinar_one_to_three_through_janus_videoroom() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let setup = Command::new("bash")
        .args([&format!("{ROOT}/scripts/bench-janus.sh"), "setup"])
        .stdin(Stdio::null())
        .status()
        .await
        .expect("bash runs");
    assert!(setup.success(), "bench-janus.sh setup failed");
    check(&webinar().await);
}
