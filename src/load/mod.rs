//! The load tester's engine: starts many bots against a running server, measures a window.
//!
//! A run has four phases, each bounded in time: **join** (publishers of every room first, a
//! bounded number of joins in flight), **ramp** (until every bot receives every track it
//! should, or `ramp_timeout`), **warm-up**, then the **measured window**, whose start and end
//! snapshots give every rate in the [`Report`]. Server CPU and memory come from `/proc` when
//! the server's pid is known, server counters from `/metrics`, the rest from the bots' own
//! statistics (loss from sequence ranges, latency from the send stamps inside payloads).
//!
//! The bots run in this process, so on a small machine the tester competes with the server
//! for CPU. Receivers past the first `decrypting` per room therefore only count SRTP from its
//! clear header (see [`crate::bot::BotConfig::decrypt`]); the report states the tester's CPU.

pub mod ceiling;
pub mod compare;
pub mod crowd;
pub mod delay;
pub mod janus;
mod janus_shell;
mod plan;
pub mod probe;
mod report;
pub mod soak;

pub use plan::{BotPlan, Scenario};
pub use report::{percentile, Report};

use crate::bot::{Bot, BotConfig, BotStats, DelayHistogram, StreamShape};
use futures_util::StreamExt;
use probe::{ProcSample, ServerCounters};
use std::time::{Duration, Instant};

/// Most bots one run may start.
pub const MAX_BOTS: usize = 2000;
/// Longest warm-up or window.
pub const MAX_PHASE: Duration = Duration::from_secs(600);
/// How long one join may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Which server the bots talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// confab's signalling protocol; server counters from `/metrics`.
    #[default]
    Confab,
    /// Janus's videoroom plugin over its WebSocket API ([`janus`]): no `/metrics`, so the
    /// forwarded packets are what the receivers got.
    Janus,
}

/// How to run the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server's `ws://host:port/ws`.
    pub url: String,
    /// More nodes of a cluster: bots join through `url` and these in turn (round-robin).
    pub more_urls: Vec<String>,
    /// What to start.
    pub scenario: Scenario,
    /// Time after the ramp before measuring (default 3 s).
    pub warmup: Duration,
    /// The measured window (default 10 s).
    pub duration: Duration,
    /// Longest wait for every bot to receive every track (default 30 s).
    pub ramp_timeout: Duration,
    /// Synthetic stream shape of publishers.
    pub shape: StreamShape,
    /// The server's pid, for CPU and RSS from `/proc`.
    pub server_pid: Option<u32>,
    /// Joins in flight at once (default 16).
    pub join_concurrency: usize,
    /// Receivers per room that decrypt (and so measure latency); the rest count only
    /// (default 5).
    pub decrypting: usize,
    /// Counting receivers run in herds (`bot::Herd`): less tester CPU, but the nested epoll
    /// wake-ups are charged to the server's sends on loopback (default off).
    pub herd: bool,
    /// Room names start with this (default `load`), so runs do not share rooms.
    pub room_prefix: String,
    /// Progress lines on stderr.
    pub progress: bool,
    /// The kind of server at `url` (default confab).
    pub target: Target,
    /// Local address of the Janus bots' UDP sockets (default 127.0.0.1). Janus never gathers
    /// on a loopback interface, so scripts/bench-janus.sh runs it in a network namespace of
    /// its own on a test address, and its bots there.
    pub media_ip: std::net::IpAddr,
}

impl LoadConfig {
    /// Defaults for `scenario` against `url`.
    pub fn new(url: impl Into<String>, scenario: Scenario) -> Self {
        LoadConfig {
            url: url.into(),
            more_urls: vec![],
            scenario,
            warmup: Duration::from_secs(3),
            duration: Duration::from_secs(10),
            ramp_timeout: Duration::from_secs(30),
            shape: StreamShape::default(),
            server_pid: None,
            join_concurrency: 16,
            decrypting: 5,
            herd: false,
            room_prefix: "load".into(),
            progress: false,
            target: Target::Confab,
            media_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration is out of bounds.
    #[error("invalid load configuration: {0}")]
    Invalid(String),
}

struct Running {
    bot: Bot,
    plan: BotPlan,
    started: Instant,
    connect_ms: Option<f64>,
}

/// Sums over every bot's statistics at one moment.
#[derive(Default)]
struct Totals {
    received: u64,
    bytes: u64,
    /// Sum of sequence-range widths: what should have arrived.
    expected: u64,
    sent: u64,
    delays: DelayHistogram,
    ready: usize,
    /// Per bot that should receive something: packets received so far.
    per_receiver: Vec<u64>,
}

impl Totals {
    fn add(&mut self, s: &BotStats, plan: &BotPlan) {
        let mut receiving = 0;
        let mut received = 0;
        for t in s.tracks.values().chain(s.undecrypted.values()) {
            received += t.packets;
            self.received += t.packets;
            self.bytes += t.bytes;
            self.expected += t.seq_range.map_or(0, |(lo, hi)| hi - lo + 1);
            self.delays.merge(&t.delays_us);
            receiving += usize::from(t.packets > 0);
        }
        self.sent += s.sent_packets;
        self.ready += usize::from(receiving >= plan.expected_tracks);
        if plan.expected_tracks > 0 {
            self.per_receiver.push(received);
        }
    }
}

/// One observation of everything.
struct Snapshot {
    at: Instant,
    totals: Totals,
    server: Option<ProcSample>,
    counters: Option<ServerCounters>,
    loader: Option<ProcSample>,
    rcvbuf_errors: Option<u64>,
}

struct Observer {
    pid: Option<u32>,
    host: Option<String>,
    progress: bool,
}

impl Observer {
    async fn snapshot(&self, bots: &[Running]) -> Snapshot {
        let mut totals = Totals::default();
        for r in bots {
            totals.add(&r.bot.stats(), &r.plan);
        }
        let counters = match &self.host {
            Some(h) => probe::scrape(h).await,
            None => None,
        };
        Snapshot {
            at: Instant::now(),
            totals,
            server: self.pid.and_then(probe::proc_sample),
            counters,
            loader: probe::proc_sample(std::process::id()),
            rcvbuf_errors: probe::udp_rcvbuf_errors(),
        }
    }

    /// Sleeps `d` in one-second steps, printing rates for each step.
    async fn watch(&self, phase: &str, d: Duration, bots: &[Running]) {
        let end = Instant::now() + d;
        let mut prev = self.snapshot(bots).await;
        while Instant::now() < end {
            let step = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(step.min(Duration::from_secs(1))).await;
            let now = self.snapshot(bots).await;
            if self.progress {
                eprintln!("[{phase}] {}", progress_line(&prev, &now));
            }
            prev = now;
        }
    }
}

fn progress_line(a: &Snapshot, b: &Snapshot) -> String {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let fwd = match (a.counters, b.counters) {
        (Some(x), Some(y)) => format!("{:.0}", (y.forwarded - x.forwarded) / secs),
        _ => "n/a".into(),
    };
    let cpu = match (a.server, b.server) {
        (Some(x), Some(y)) => format!("{:.0}%", (y.cpu_s - x.cpu_s) / secs * 100.0),
        _ => "n/a".into(),
    };
    let loader = match (a.loader, b.loader) {
        (Some(x), Some(y)) => format!("{:.0}%", (y.cpu_s - x.cpu_s) / secs * 100.0),
        _ => "n/a".into(),
    };
    let rx = (b.totals.received - a.totals.received.min(b.totals.received)) as f64 / secs;
    let lost = lost_between(&a.totals, &b.totals);
    format!(
        "server fwd {fwd} pkt/s, cpu {cpu} | receivers {rx:.0} pkt/s, lost {lost}, \
         ready {} | tester cpu {loader}",
        b.totals.ready
    )
}

fn lost_between(a: &Totals, b: &Totals) -> i64 {
    let expected = b.expected as i64 - a.expected as i64;
    let received = b.received as i64 - a.received as i64;
    expected - received
}

/// Runs the load described by `config` and returns what it measured.
pub async fn run(config: &LoadConfig) -> Result<Report, LoadError> {
    let bots_n = config.scenario.bots();
    if bots_n == 0 || bots_n > MAX_BOTS {
        return Err(LoadError::Invalid(format!(
            "{bots_n} bots; between 1 and {MAX_BOTS} allowed"
        )));
    }
    if config.herd && !crate::bot::Herd::AVAILABLE {
        return Err(LoadError::Invalid(
            "herds (--herd true) need Linux's epoll; run without them".into(),
        ));
    }
    if config.duration.is_zero() || config.duration > MAX_PHASE || config.warmup > MAX_PHASE {
        return Err(LoadError::Invalid(format!(
            "warm-up and window must be at most {MAX_PHASE:?}, window above zero"
        )));
    }
    let observer = Observer {
        pid: config.server_pid,
        host: match config.target {
            Target::Confab => probe::metrics_host(&config.url),
            Target::Janus => None,
        },
        progress: config.progress,
    };
    let say = |m: String| {
        if config.progress {
            eprintln!("{m}");
        }
    };
    let baseline = config.server_pid.and_then(probe::proc_sample);
    let plans = config.scenario.plan(&config.room_prefix, config.decrypting);
    let mut report = Report {
        scenario: config.scenario.to_string(),
        bots: plans.len(),
        ..Default::default()
    };

    // Join: every room's publishers first, so viewers find the tracks in `joined`.
    let (first, second): (Vec<BotPlan>, Vec<BotPlan>) = plans.into_iter().partition(|p| p.publish);
    let mut bots: Vec<Running> = vec![];
    let mut join_ms = vec![];
    let urls: Vec<&String> = std::iter::once(&config.url)
        .chain(&config.more_urls)
        .collect();
    let mut next_url = 0usize;
    let webinar = matches!(config.scenario, Scenario::Webinar { .. });
    // With `herd`, counting receivers share tasks: one wake-up per herd and frame, not one
    // per bot.
    let herd = config.herd.then(crate::bot::Herd::new);
    for wave in [first, second] {
        let mut joins = futures_util::stream::iter(wave.into_iter().map(|plan| {
            let url = urls[next_url % urls.len()].clone();
            next_url += 1;
            let bc = BotConfig {
                role: Some(plan.role),
                // A webinar's stage opens the room as one (its audience may then be served
                // by edge nodes in a cluster, past `--max-audience-per-node`).
                mode: webinar.then_some(crate::protocol::RoomMode::Webinar),
                publish: plan.publish,
                decrypt: plan.decrypt,
                shape: config.shape,
                herd: herd.clone(),
                ..BotConfig::new(url, plan.room.clone(), plan.name.clone())
            };
            let (target, media_ip) = (config.target, config.media_ip);
            async move {
                let started = Instant::now();
                let join = async {
                    match target {
                        Target::Confab => Bot::join(bc).await,
                        Target::Janus => janus::join(bc, media_ip).await,
                    }
                };
                let r = tokio::time::timeout(JOIN_TIMEOUT, join).await;
                (plan, started, r)
            }
        }))
        .buffered(config.join_concurrency.max(1));
        while let Some((plan, started, r)) = joins.next().await {
            match r {
                Ok(Ok(bot)) => {
                    join_ms.push(started.elapsed().as_secs_f64() * 1e3);
                    bots.push(Running {
                        bot,
                        plan,
                        started,
                        connect_ms: None,
                    });
                    if bots.len().is_multiple_of(50) {
                        say(format!("[join] {} of {} joined", bots.len(), report.bots));
                    }
                }
                Ok(Err(e)) => {
                    report.join_errors += 1;
                    say(format!("[join] {} in {}: {e}", plan.name, plan.room));
                }
                Err(_) => {
                    report.join_errors += 1;
                    say(format!("[join] {} in {}: timed out", plan.name, plan.room));
                }
            }
        }
    }
    report.joined = bots.len();
    report.join_ms_p50 = percentile(&join_ms, 0.5);
    report.join_ms_p99 = percentile(&join_ms, 0.99);
    say(format!(
        "[join] {} joined, {} errors; waiting for media",
        report.joined, report.join_errors
    ));

    // Ramp: until everyone is connected and receives every track it should.
    let ramp_end = Instant::now() + config.ramp_timeout;
    let mut last_say = Instant::now();
    loop {
        let mut ready = 0;
        for r in bots.iter_mut() {
            let s = r.bot.stats();
            if r.connect_ms.is_none() && s.connected {
                r.connect_ms = Some(r.started.elapsed().as_secs_f64() * 1e3);
            }
            let mut t = Totals::default();
            t.add(&s, &r.plan);
            ready += t.ready;
        }
        if ready == bots.len() || Instant::now() >= ramp_end {
            break;
        }
        if last_say.elapsed() >= Duration::from_secs(1) {
            last_say = Instant::now();
            say(format!("[ramp] {ready} of {} ready", bots.len()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect: Vec<f64> = bots.iter().filter_map(|r| r.connect_ms).collect();
    report.connected = connect.len();
    report.connect_ms_p50 = percentile(&connect, 0.5);
    report.connect_ms_p99 = percentile(&connect, 0.99);

    observer.watch("warm-up", config.warmup, &bots).await;
    let start = observer.snapshot(&bots).await;
    observer.watch("measure", config.duration, &bots).await;
    let end = observer.snapshot(&bots).await;
    fill(&mut report, &start, &end, baseline);
    if config.target == Target::Janus {
        // Janus counts nothing for us: what it forwarded is what the receivers got.
        report.server_forwarded_pps = Some(report.client_received_pps);
        report.forwarded_per_cpu_s = report
            .server_cpu_s
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| report.client_received_pps * report.window_s / cpu);
    }

    say(format!("[leave] {} bots", bots.len()));
    futures_util::stream::iter(bots.into_iter().map(|r| r.bot.leave()))
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    Ok(report)
}

fn fill(r: &mut Report, a: &Snapshot, b: &Snapshot, baseline: Option<ProcSample>) {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    r.window_s = secs;
    r.ready = a.totals.ready;
    // A receiver that got nothing in the window was cut off (reaped, starved), whatever it
    // received before.
    r.stalled = a
        .totals
        .per_receiver
        .iter()
        .zip(&b.totals.per_receiver)
        .filter(|(x, y)| y <= x)
        .count();
    if let (Some(x), Some(y)) = (a.counters, b.counters) {
        r.server_forwarded_pps = Some((y.forwarded - x.forwarded) / secs);
        r.server_udp_out_pps = Some((y.udp_out - x.udp_out) / secs);
        let calls = y.udp_send_calls - x.udp_send_calls;
        if calls > 0.0 {
            r.server_datagrams_per_send = Some((y.udp_out - x.udp_out) / calls);
        }
        let out = y.udp_out - x.udp_out;
        if out > 0.0 {
            r.server_coalesced_pct = Some(100.0 * (y.udp_coalesced - x.udp_coalesced) / out);
        }
        r.server_udp_in_pps = Some((y.udp_in - x.udp_in) / secs);
        r.server_recv_calls_ps = Some((y.udp_recv_calls - x.udp_recv_calls) / secs);
        r.server_room_passes_ps = Some((y.room_passes - x.room_passes) / secs);
        r.server_feedback_ps = Some((y.twcc_feedback - x.twcc_feedback) / secs);
        r.server_allocations_ps = Some((y.allocations - x.allocations) / secs);
        r.server_dropped = Some(y.udp_dropped - x.udp_dropped);
        r.server_participants = Some(y.participants);
        if let Some(w) = x
            .delay
            .zip(y.delay)
            .and_then(|(x, y)| delay::window(&x, &y))
        {
            r.sfu_delay_copies = Some(w.copies);
            r.sfu_delay_us = Some([w.p50_us, w.p99_us, w.max_us]);
        }
        let paced = x.delay_paced.zip(y.delay_paced);
        if let Some(w) = paced.and_then(|(x, y)| delay::window(&x, &y)) {
            r.sfu_paced_copies = Some(w.copies);
            r.sfu_paced_delay_us = Some([w.p50_us, w.p99_us, w.max_us]);
        }
    }
    let (ta, tb) = (&a.totals, &b.totals);
    r.client_sent_pps = tb.sent.saturating_sub(ta.sent) as f64 / secs;
    r.client_received_pps = tb.received.saturating_sub(ta.received) as f64 / secs;
    r.client_received_bps = tb.bytes.saturating_sub(ta.bytes) as f64 * 8.0 / secs;
    r.lost = lost_between(ta, tb);
    let expected = tb.expected.saturating_sub(ta.expected);
    r.loss_ratio = if expected > 0 {
        r.lost as f64 / expected as f64
    } else {
        0.0
    };
    let delays = tb.delays.since(&ta.delays);
    r.latency_samples = delays.count();
    r.latency_us_p50 = delays.quantile(0.5);
    r.latency_us_p99 = delays.quantile(0.99);
    if let (Some(x), Some(y)) = (a.server, b.server) {
        let cpu = y.cpu_s - x.cpu_s;
        r.server_cpu_s = Some(cpu);
        r.server_cpu_pct = Some(cpu / secs * 100.0);
        if let Some(fwd) = r.server_forwarded_pps {
            r.forwarded_per_cpu_s = (cpu > 0.0).then(|| fwd * secs / cpu);
        }
        r.server_rss_mib = Some(x.rss_kib as f64 / 1024.0);
        if let Some(base) = baseline {
            r.rss_per_participant_kib =
                Some((x.rss_kib as f64 - base.rss_kib as f64) / r.bots.max(1) as f64);
        }
    }
    if let (Some(x), Some(y)) = (a.rcvbuf_errors, b.rcvbuf_errors) {
        r.udp_rcvbuf_errors = Some(y.saturating_sub(x));
    }
    if let (Some(x), Some(y)) = (a.loader, b.loader) {
        r.loader_cpu_pct = Some((y.cpu_s - x.cpu_s) / secs * 100.0);
        if let (Some(wa), Some(wb)) = (x.run_wait_s, y.run_wait_s) {
            let wait = (wb - wa).max(0.0);
            r.loader_wait_pct = Some(wait / secs * 100.0);
            let slices = y
                .run_slices
                .unwrap_or(0)
                .saturating_sub(x.run_slices.unwrap_or(0));
            r.loader_wait_per_slice_us = (slices > 0).then(|| wait * 1e6 / slices as f64);
        }
    }
    if let (Some(x), Some(y)) = (a.server, b.server) {
        if let (Some(wa), Some(wb)) = (x.run_wait_s, y.run_wait_s) {
            r.server_wait_pct = Some((wb - wa).max(0.0) / secs * 100.0);
        }
    }
    r.cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    r.loader_starved = r.starved();
}
