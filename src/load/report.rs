//! The load run's result: one flat record, printed as a table or as JSON.

use serde::Serialize;
use std::fmt::Write;

/// Everything a load run measured. Rates are over the measured window only; `None` where the
/// figure could not be observed (no `--server-pid`, TLS URL, no decrypting receivers).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The scenario, e.g. `webinar 1->100`.
    pub scenario: String,
    /// Bots planned.
    pub bots: usize,
    /// Bots that joined.
    pub joined: usize,
    /// Bots whose ICE/DTLS connected.
    pub connected: usize,
    /// Bots receiving every track they should when the window started.
    pub ready: usize,
    /// Receivers that got no packet at all during the window (cut off: reaped, starved).
    pub stalled: usize,
    /// Participants the server held at the end of the window (`confab_participants`).
    pub server_participants: Option<f64>,
    /// Join failures (refused, timed out).
    pub join_errors: usize,
    /// Time from opening the WebSocket to `joined`, ms.
    pub join_ms_p50: Option<f64>,
    /// 99th percentile of the same.
    pub join_ms_p99: Option<f64>,
    /// Time from opening the WebSocket to DTLS connected, ms; polled every 50 ms once every
    /// join has returned, so an upper bound in large runs.
    pub connect_ms_p50: Option<f64>,
    /// 99th percentile of the same.
    pub connect_ms_p99: Option<f64>,
    /// Length of the measured window, s.
    pub window_s: f64,
    /// Server-counted RTP packets forwarded per second.
    pub server_forwarded_pps: Option<f64>,
    /// Server-counted datagrams sent per second.
    pub server_udp_out_pps: Option<f64>,
    /// Datagrams per sending system call (`sendmmsg` batching; compare `confab-load ceiling
    /// --batch`).
    pub server_datagrams_per_send: Option<f64>,
    /// Of the datagrams sent, the share that went as a later segment of a GSO message (one
    /// kernel send for several to one peer), percent.
    pub server_coalesced_pct: Option<f64>,
    /// Server-counted datagrams received per second.
    pub server_udp_in_pps: Option<f64>,
    /// The server's receive calls that took datagrams, per second: about its receiver's
    /// wake-ups (0 from a server that does not count them).
    pub server_recv_calls_ps: Option<f64>,
    /// The server's room task passes per second (an input or a timer, then one flush).
    pub server_room_passes_ps: Option<f64>,
    /// Subscribers' transport-cc feedback compounds the server's lean estimators took, per
    /// second (browsers and the load tester's receivers send one per 50 ms; 0 on the str0m send path).
    pub server_feedback_ps: Option<f64>,
    /// Subscribers' layer allocations the server decided per second (a whole room's every
    /// second, and each subscriber's whose estimate moved).
    pub server_allocations_ps: Option<f64>,
    /// Datagrams the server dropped because a room queue was full, in the window.
    pub server_dropped: Option<f64>,
    /// RTP packets the publishers sent per second.
    pub client_sent_pps: f64,
    /// RTP packets the receivers got per second.
    pub client_received_pps: f64,
    /// Bits per second the receivers got (payload for decrypting bots, datagrams otherwise).
    pub client_received_bps: f64,
    /// Receiver-side packets missing from the sequence ranges, in the window.
    pub lost: i64,
    /// UDP datagrams dropped by full receive buffers machine-wide in the window (`/proc/net/snmp`).
    pub udp_rcvbuf_errors: Option<u64>,
    /// `lost` over expected.
    pub loss_ratio: f64,
    /// Publisher stamp → receiver arrival through the SFU, µs (decrypting receivers only). The
    /// arrival is the kernel's stamp on the receiver's socket, so the time a busy tester took
    /// to read the datagram is not in it; the server's wait for a CPU is.
    pub latency_us_p50: Option<u64>,
    /// 99th percentile of the same.
    pub latency_us_p99: Option<u64>,
    /// Latency samples in the window.
    pub latency_samples: u64,
    /// SFU-added delay in the window from the server's histogram, arrival → hand-off to the
    /// kernel per forwarded copy, µs: p50, p99 (interpolated in their buckets) and the upper
    /// bound of the highest bucket reached (see [`super::delay`]). None of the tester's
    /// scheduling is in it. A max past the last bound (2 s) is infinite (`null` in JSON).
    pub sfu_delay_us: Option<[f64; 3]>,
    /// Forwarded copies that histogram observed in the window.
    pub sfu_delay_copies: Option<u64>,
    /// The same two for the copies the lean pacer held (none held: `None`).
    pub sfu_paced_delay_us: Option<[f64; 3]>,
    pub sfu_paced_copies: Option<u64>,
    /// Server CPU seconds in the window (user + system).
    pub server_cpu_s: Option<f64>,
    /// Server CPU use in the window, % of one core.
    pub server_cpu_pct: Option<f64>,
    /// The headline: forwarded packets per server CPU-second.
    pub forwarded_per_cpu_s: Option<f64>,
    /// Load tester CPU use in the window, % of one core.
    pub loader_cpu_pct: Option<f64>,
    /// Time the load tester's threads spent runnable but waiting for a CPU, summed over its
    /// threads, % of the window (`schedstat`; `None` without it).
    pub loader_wait_pct: Option<f64>,
    /// The tester's mean wait for a CPU each time one of its threads was scheduled, µs: how
    /// late its socket reads and timers ran, on average.
    pub loader_wait_per_slice_us: Option<f64>,
    /// The server's run-queue wait, % of the window, summed over its threads.
    pub server_wait_pct: Option<f64>,
    /// CPUs of this machine.
    pub cores: usize,
    /// The tester was starved (see [`Report::starved`]): its publishers' frames left late and
    /// bunched and its reads ran late (a full socket buffer is loss), and tester and server
    /// took CPU from each other. Received latency is stamped by the kernel on arrival, so a
    /// late read no longer adds to it.
    pub loader_starved: Option<bool>,
    /// Server RSS when the window started, MiB.
    pub server_rss_mib: Option<f64>,
    /// (RSS at window start − RSS before the first join) / bots, KiB.
    pub rss_per_participant_kib: Option<f64>,
}

/// Above this share of the window spent waiting for a CPU, the tester counts as starved.
pub const STARVED_WAIT_PCT: f64 = 10.0;
/// Above this mean wait per scheduling, µs, likewise: a 5 ms p99 cannot be told from it.
pub const STARVED_WAIT_PER_SLICE_US: f64 = 500.0;
/// Above this share of all cores used by tester and server together, likewise.
pub const STARVED_CPU_SHARE: f64 = 0.8;

impl Report {
    /// Whether the tester was starved in the window: its threads waited for a CPU more than
    /// `STARVED_WAIT_PCT` of it or `STARVED_WAIT_PER_SLICE_US` per scheduling on
    /// average, or tester and server together used more than `STARVED_CPU_SHARE` of the
    /// machine. `None` when the tester's CPU was not observed.
    pub fn starved(&self) -> Option<bool> {
        let cpu = self.loader_cpu_pct?;
        let busy = (cpu + self.server_cpu_pct.unwrap_or(0.0))
            > STARVED_CPU_SHARE * 100.0 * self.cores.max(1) as f64;
        let waited = self.loader_wait_pct.is_some_and(|w| w > STARVED_WAIT_PCT)
            || self
                .loader_wait_per_slice_us
                .is_some_and(|w| w > STARVED_WAIT_PER_SLICE_US);
        Some(busy || waited)
    }

    /// Whether every bot joined, connected and received everything it should, with no loss.
    pub fn is_clean(&self) -> bool {
        self.joined == self.bots
            && self.connected == self.bots
            && self.ready == self.bots
            && self.stalled == 0
            && self
                .server_participants
                .is_none_or(|p| p as usize == self.bots)
            && self.lost == 0
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        fn f(v: Option<f64>, digits: usize) -> String {
            v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
        }
        fn u(v: Option<u64>) -> String {
            v.map_or("n/a".into(), |v| v.to_string())
        }
        let rows: Vec<(&str, String)> = vec![
            ("scenario", self.scenario.clone()),
            (
                "bots joined/connected/ready",
                format!(
                    "{}/{}/{} of {} ({} join errors)",
                    self.joined, self.connected, self.ready, self.bots, self.join_errors
                ),
            ),
            (
                "stalled receivers / server participants",
                format!("{} / {}", self.stalled, f(self.server_participants, 0)),
            ),
            (
                "join ms p50 / p99",
                format!("{} / {}", f(self.join_ms_p50, 1), f(self.join_ms_p99, 1)),
            ),
            (
                "connect ms p50 / p99",
                format!(
                    "{} / {}",
                    f(self.connect_ms_p50, 0),
                    f(self.connect_ms_p99, 0)
                ),
            ),
            ("window s", format!("{:.1}", self.window_s)),
            ("server forwarded pkt/s", f(self.server_forwarded_pps, 0)),
            (
                "server udp out / in pkt/s",
                format!(
                    "{} / {}",
                    f(self.server_udp_out_pps, 0),
                    f(self.server_udp_in_pps, 0)
                ),
            ),
            (
                "server receive calls / room passes per s",
                format!(
                    "{} / {}",
                    f(self.server_recv_calls_ps, 0),
                    f(self.server_room_passes_ps, 0)
                ),
            ),
            (
                "server feedback / allocations per s",
                format!(
                    "{} / {}",
                    f(self.server_feedback_ps, 0),
                    f(self.server_allocations_ps, 0)
                ),
            ),
            (
                "server datagrams per send call",
                f(self.server_datagrams_per_send, 1),
            ),
            (
                "server datagrams GSO-coalesced %",
                f(self.server_coalesced_pct, 1),
            ),
            ("server queue drops", f(self.server_dropped, 0)),
            (
                "publishers sent pkt/s",
                format!("{:.0}", self.client_sent_pps),
            ),
            (
                "receivers got pkt/s / Mbit/s",
                format!(
                    "{:.0} / {:.1}",
                    self.client_received_pps,
                    self.client_received_bps / 1e6
                ),
            ),
            (
                "lost at receivers",
                format!("{} ({:.4} %)", self.lost, self.loss_ratio * 100.0),
            ),
            (
                "kernel UDP rcvbuf drops",
                self.udp_rcvbuf_errors
                    .map_or("n/a".into(), |v| v.to_string()),
            ),
            (
                "latency us p50 / p99",
                format!(
                    "{} / {} ({} samples)",
                    u(self.latency_us_p50),
                    u(self.latency_us_p99),
                    self.latency_samples
                ),
            ),
            (
                "SFU delay us p50 / p99 / max (server)",
                match self.sfu_delay_us {
                    Some([p50, p99, max]) => format!(
                        "{p50:.0} / {p99:.0} / <= {max:.0} ({} copies)",
                        self.sfu_delay_copies.unwrap_or(0)
                    ),
                    None => "n/a".into(),
                },
            ),
            (
                "  of which the lean pacer held",
                match self.sfu_paced_delay_us {
                    Some([p50, p99, max]) => format!(
                        "{p50:.0} / {p99:.0} / <= {max:.0} ({} copies)",
                        self.sfu_paced_copies.unwrap_or(0)
                    ),
                    None => "none".into(),
                },
            ),
            (
                "server CPU s / %",
                format!(
                    "{} / {}",
                    f(self.server_cpu_s, 2),
                    f(self.server_cpu_pct, 0)
                ),
            ),
            (
                "FORWARDED PKT PER SERVER CPU-S",
                f(self.forwarded_per_cpu_s, 0),
            ),
            ("load tester CPU %", f(self.loader_cpu_pct, 0)),
            (
                "tester / server waited for a CPU %",
                format!(
                    "{} / {} of the window, tester {} us per wake-up, {} cores{}",
                    f(self.loader_wait_pct, 1),
                    f(self.server_wait_pct, 1),
                    f(self.loader_wait_per_slice_us, 0),
                    self.cores,
                    if self.loader_starved == Some(true) {
                        ": TESTER STARVED, it sent and read late"
                    } else {
                        ""
                    }
                ),
            ),
            ("server RSS MiB", f(self.server_rss_mib, 1)),
            (
                "RSS per participant KiB",
                f(self.rss_per_participant_kib, 0),
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}

/// The value at quantile `q` of `values` (nearest rank); `None` when empty.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_waiting_or_saturating_tester_is_starved() {
        let calm = Report {
            loader_cpu_pct: Some(35.0),
            server_cpu_pct: Some(25.0),
            loader_wait_pct: Some(2.0),
            loader_wait_per_slice_us: Some(40.0),
            cores: 2,
            ..Report::default()
        };
        assert_eq!(calm.starved(), Some(false));
        let waited = Report {
            loader_wait_pct: Some(25.0),
            ..calm.clone()
        };
        assert_eq!(waited.starved(), Some(true));
        let late = Report {
            loader_wait_per_slice_us: Some(900.0),
            ..calm.clone()
        };
        assert_eq!(late.starved(), Some(true));
        let busy = Report {
            loader_cpu_pct: Some(120.0),
            server_cpu_pct: Some(60.0),
            ..calm.clone()
        };
        assert_eq!(busy.starved(), Some(true));
        assert_eq!(Report::default().starved(), None);
    }

    #[test]
    fn table_names_every_headline() {
        let t = Report::default().table();
        assert!(t.contains("FORWARDED PKT PER SERVER CPU-S"));
        assert!(t.contains("latency"));
        assert!(t.contains("SFU delay"));
    }
}
