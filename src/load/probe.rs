//! What the load tester reads from the server: CPU and memory from `/proc`, counters from
//! `/metrics`.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// CPU time and resident memory of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// User plus system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
    /// Seconds its threads have spent runnable but waiting for a CPU, summed over the threads
    /// alive now (`/proc/PID/task/*/schedstat`); `None` without schedstats. A process that
    /// waits a large share of a window is starved: its timers and reads run late.
    pub run_wait_s: Option<f64>,
    /// Times its threads were put on a CPU (the third `schedstat` field), summed likewise.
    pub run_slices: Option<u64>,
}

/// Reads `/proc/PID/stat` (utime + stime) and `/proc/PID/status` (VmRSS); `None` when the
/// process is gone or this is not Linux.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let wait = run_wait(pid);
    Some(ProcSample {
        cpu_s: cpu_ticks(&stat)? as f64 / clock_ticks_per_second(),
        rss_kib: rss_kib(&status)?,
        run_wait_s: wait.map(|w| w.0),
        run_slices: wait.map(|w| w.1),
    })
}

/// Seconds on a run queue and times put on a CPU, summed over every thread's `schedstat`.
fn run_wait(pid: u32) -> Option<(f64, u64)> {
    let (mut ns, mut slices, mut any) = (0u64, 0u64, false);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        if let Some((wait, n)) = schedstat(&text) {
            ns += wait;
            slices += n;
            any = true;
        }
    }
    any.then_some((ns as f64 / 1e9, slices))
}

/// The run-queue wait (second field, ns) and the time slices (third) of a `schedstat` line.
fn schedstat(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace().skip(1);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses; fields after the last
    // ')' are plain. utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the running system and has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// UDP datagrams the kernel dropped because a receive buffer was full, machine-wide (on a
/// loopback test bench: the server's and the bots' sockets), from `/proc/net/snmp`.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?.split_whitespace();
    let values = udp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
}

/// The server counters the load tester compares.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerCounters {
    /// `confab_rtp_forwarded_packets_total`.
    pub forwarded: f64,
    /// `confab_udp_out_datagrams_total`.
    pub udp_out: f64,
    /// `confab_udp_send_calls_total`.
    pub udp_send_calls: f64,
    /// `confab_udp_coalesced_datagrams_total` (0 from a server without GSO).
    pub udp_coalesced: f64,
    /// `confab_udp_in_datagrams_total`.
    pub udp_in: f64,
    /// `confab_udp_recv_calls_total`: receive calls that took datagrams (about one wake-up
    /// of the receiver each).
    pub udp_recv_calls: f64,
    /// `confab_room_passes_total`: room task passes (an input or a timer, then a flush).
    pub room_passes: f64,
    /// `confab_lean_twcc_feedback_total`: subscribers' feedback compounds that reached
    /// their estimators.
    pub twcc_feedback: f64,
    /// `confab_room_allocations_total`: subscribers' layer allocations decided.
    pub allocations: f64,
    /// `confab_udp_dropped_datagrams_total` (room queue full).
    pub udp_dropped: f64,
    /// `confab_participants`: participants the server holds now.
    pub participants: f64,
    /// `confab_forward_delay_seconds`' buckets, if the server has it.
    pub delay: Option<super::delay::Scraped>,
    /// `confab_forward_delay_paced_seconds`' buckets likewise.
    pub delay_paced: Option<super::delay::Scraped>,
}

/// `http://host:port/metrics` for `ws://host:port/...`; `None` for TLS or odd URLs.
pub fn metrics_host(ws_url: &str) -> Option<String> {
    let rest = ws_url.strip_prefix("ws://")?;
    Some(rest.split('/').next()?.to_string())
}

/// Scrapes `/metrics` with a bare HTTP/1.1 GET (bounded to 2 s).
pub async fn scrape(host: &str) -> Option<ServerCounters> {
    let body = tokio::time::timeout(Duration::from_secs(2), get(host, "/metrics"))
        .await
        .ok()??;
    Some(parse_counters(&body))
}

/// Whether `GET /healthz` answers 200 (bounded to 1 s).
pub async fn healthy(host: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(1), get(host, "/healthz"))
        .await
        .ok()
        .flatten()
        .is_some()
}

async fn get(host: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(host).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    s.take(4 << 20).read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn parse_counters(text: &str) -> ServerCounters {
    let value = |name: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .unwrap_or(0.0)
    };
    ServerCounters {
        forwarded: value("confab_rtp_forwarded_packets_total"),
        udp_out: value("confab_udp_out_datagrams_total"),
        udp_send_calls: value("confab_udp_send_calls_total"),
        udp_coalesced: value("confab_udp_coalesced_datagrams_total"),
        udp_in: value("confab_udp_in_datagrams_total"),
        udp_recv_calls: value("confab_udp_recv_calls_total"),
        room_passes: value("confab_room_passes_total"),
        twcc_feedback: value("confab_lean_twcc_feedback_total"),
        allocations: value("confab_room_allocations_total"),
        udp_dropped: value("confab_udp_dropped_datagrams_total"),
        participants: value("confab_participants"),
        delay: super::delay::parse(text, super::delay::ALL),
        delay_paced: super::delay::parse(text, super::delay::PACED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_past_a_tricky_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_rss_and_counters() {
        assert_eq!(rss_kib("Name:\tx\nVmRSS:\t   1234 kB\n"), Some(1234));
        let m =
            "# HELP x\nconfab_rtp_forwarded_packets_total 12\nconfab_udp_out_datagrams_total 15\n";
        let c = parse_counters(m);
        assert_eq!((c.forwarded, c.udp_out, c.udp_in), (12.0, 15.0, 0.0));
        assert_eq!(
            metrics_host("ws://127.0.0.1:8080/ws").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(metrics_host("wss://x/ws"), None);
    }

    #[test]
    fn reads_run_queue_wait() {
        assert_eq!(schedstat("1212727 130758634 2\n"), Some((130_758_634, 2)));
        assert_eq!(schedstat("7 8"), None);
        // This process has threads and, on Linux with schedstats, a figure for them.
        let me = proc_sample(std::process::id()).expect("this process");
        assert!(me.run_wait_s.is_none_or(|w| w >= 0.0));
    }

    #[test]
    fn reads_kernel_udp_drops() {
        assert!(udp_rcvbuf_errors().is_some());
    }

    #[test]
    fn samples_this_process() {
        let s = proc_sample(std::process::id()).expect("linux /proc");
        assert!(s.rss_kib > 0);
    }
}
