//! `confab-load`: drives headless bots against a confab server and reports forwarding
//! throughput, server CPU per forwarded packet, loss, latency and memory.

use clap::{Parser, Subcommand};
use confab::bot::StreamShape;
use confab::load::{self, probe, LoadConfig, Scenario, Target};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Load tester for confab. Start a server (or pass --spawn), then e.g.
/// `confab-load --server-pid $(pgrep -n confab) webinar --viewers 100`.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Signalling URL of a running server; give it more than once for the nodes of a cluster:
    /// bots join through them in turn (round-robin; measurement scenarios only).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    /// Pid of the server, to read its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Start this confab binary on free loopback ports and measure it (ignores --url). Give it
    /// twice or more to compare builds: with --runs, they take turns, each run on a fresh
    /// server.
    /// A Janus wrapper is given as `janus:PATH` (see scripts/bench-janus.sh): it is started
    /// as `PATH --ws-port PORT` and must exec Janus, so its pid is Janus's.
    #[arg(long)]
    spawn: Vec<std::path::PathBuf>,
    /// The kind of server at --url and of --spawn binaries without a prefix: `confab`, or
    /// `janus` (its videoroom plugin over the WebSocket API, e.g. `ws://127.0.0.1:8188`),
    /// whose forwarded packets are counted from what the viewers receive.
    #[arg(long, value_enum, default_value_t = TargetArg::Confab)]
    target: TargetArg,
    /// Local address the Janus bots' UDP sockets bind to. Janus gathers no candidate on a
    /// loopback interface: scripts/bench-janus.sh gives it a test address in a network
    /// namespace of its own and passes that address here.
    #[arg(long, default_value = "127.0.0.1")]
    janus_media_ip: std::net::IpAddr,
    /// Runs per spawned binary (each with a fresh server); more than one prints the median
    /// and range of forwarded packets per CPU-second instead of one report.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up after every bot receives media, seconds.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Longest wait for every bot to receive every track, seconds.
    #[arg(long, default_value_t = 30)]
    ramp_timeout: u64,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Receivers per room that decrypt media and measure latency; the others only count
    /// packets from the clear RTP header (far cheaper for the tester).
    #[arg(long, default_value_t = 5)]
    decrypting: usize,
    /// Run the counting receivers up to 64 to a task with their sockets in one epoll set
    /// (Linux only: elsewhere `--herd true` is refused): about 30 % less tester CPU at
    /// 1 -> 300, but on loopback the server's sends then pay the nested epoll wake-ups (~7 %
    /// fewer forwarded packets per server CPU-second measured on 2026-11-30), so it is off for
    /// the figures.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    herd: bool,
    /// Video frames per second of each publisher.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// The camera's frame sizes: `light` (1.5 kB deltas, 6 kB keyframes, ~0.4 Mbit/s at
    /// 30 fps) or `heavy` (10 kB deltas, 20 kB keyframes, ~2.5 Mbit/s); --delta-bytes and
    /// --keyframe-bytes override either.
    #[arg(long, value_enum, default_value_t = Camera::Light)]
    camera: Camera,
    /// Bytes of a video delta frame (1100-byte packets; 1500 ≈ 2 packets ≈ 360 kbit/s at 30 fps).
    #[arg(long)]
    delta_bytes: Option<usize>,
    /// Bytes of a video keyframe (one every 3 s and on request).
    #[arg(long)]
    keyframe_bytes: Option<usize>,
    /// Publish the camera as three simulcast layers (1/8, 1/3 and all of the frame sizes), as
    /// the web client does; receivers get the layer the server allocates them
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    simulcast: bool,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    #[command(subcommand)]
    scenario: ScenarioArg,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum TargetArg {
    Confab,
    Janus,
}

/// Camera presets (frame sizes of the full layer).
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Camera {
    /// 1.5 kB deltas, 6 kB keyframes.
    Light,
    /// 10 kB deltas (about nine 1.1 kB packets a frame), 20 kB keyframes.
    Heavy,
}

impl Camera {
    /// (delta, keyframe) bytes.
    fn sizes(self) -> (usize, usize) {
        match self {
            Camera::Light => (1500, 6000),
            Camera::Heavy => (10_000, 20_000),
        }
    }
}

#[derive(Subcommand, Clone)]
enum ScenarioArg {
    /// One room, everyone publishes and receives everyone.
    Meeting {
        /// Participants.
        #[arg(long, default_value_t = 20)]
        size: usize,
    },
    /// Publishers on stage, receive-only viewers.
    Webinar {
        /// Publishers.
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        /// Viewers.
        #[arg(long, default_value_t = 100)]
        viewers: usize,
    },
    /// Fill a room with publishing bots that receive nothing and leave after `--duration`
    /// seconds: a large meeting to try a client in. Measures nothing.
    Crowd {
        /// Room to fill.
        #[arg(long)]
        room: String,
        /// Bots.
        #[arg(long, default_value_t = 30)]
        size: usize,
        /// How many of them talk (the others are silent).
        #[arg(long, default_value_t = 1)]
        talking: usize,
    },
    /// No server: how many datagrams per CPU-second this machine's kernel sends at all, in
    /// a fan-out's shape (each to another receiver, in batches). The ceiling for the
    /// scenarios' "forwarded per CPU-s" on the same machine.
    Ceiling {
        /// Receiving sockets.
        #[arg(long, default_value_t = 100)]
        peers: usize,
        /// Datagrams per second (default: what a 1 -> 100 webinar forwards).
        #[arg(long, default_value_t = 11_200)]
        pps: u64,
        /// Datagrams per `sendmmsg` batch, up to 1024 (default: --peers, a fan-out's
        /// natural batch: one datagram per receiver).
        #[arg(long)]
        batch: Option<usize>,
        /// Bytes per datagram.
        #[arg(long, default_value_t = 1130)]
        bytes: usize,
        /// CPUs the sending thread runs on (e.g. `1` or `0,1`), as a pinned server would:
        /// the receivers stay on the process's own CPUs (`taskset` for those).
        #[arg(long, value_delimiter = ',')]
        sender_cpus: Vec<usize>,
        /// Datagrams each receiver gets in a row (a video frame's packets).
        #[arg(long, default_value_t = 1)]
        per_peer: usize,
        /// Send a receiver's datagrams in a row as one GSO message, as the server does.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        gso: bool,
        /// Each receiver sends a feedback datagram back every this many ms, which the
        /// sending thread reads as a server reads its subscribers' RTCP (0: none; browsers
        /// send transport-wide feedback every 50 ms).
        #[arg(long, default_value_t = 0)]
        feedback_every: u64,
    },
    /// A long stretch of room life at bounded rates (join/leave churn, chat, Q&A votes, raised
    /// hands, renegotiations, ICE restarts) for `--duration` seconds, sampling the server's RSS
    /// (needs --server-pid or --spawn): reports start, baseline, peak and end RSS, crashes and
    /// lost sessions. Fails unless memory returns to its baseline and nothing was lost.
    Soak {
        /// Rooms.
        #[arg(long, default_value_t = 2)]
        rooms: usize,
        /// Bots per room that stay throughout (checked for lost sessions).
        #[arg(long, default_value_t = 3)]
        resident: usize,
        /// Places per room taken by bots that come and go.
        #[arg(long, default_value_t = 3)]
        churners: usize,
        /// Average stay of a churning bot, seconds.
        #[arg(long, default_value_t = 10)]
        stay: u64,
        /// Chat / Q&A / hand / ICE-restart actions per second, over all rooms.
        #[arg(long, default_value_t = 2.0)]
        actions_per_sec: f64,
        /// RSS sample interval, seconds.
        #[arg(long, default_value_t = 5)]
        sample_every: u64,
        /// Settling time before the baseline and before the end sample, seconds.
        #[arg(long, default_value_t = 10)]
        settle: u64,
    },
    /// Many small meetings.
    Rooms {
        /// Rooms.
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        /// Participants per room.
        #[arg(long, default_value_t = 2)]
        size: usize,
    },
}

impl From<ScenarioArg> for Scenario {
    fn from(s: ScenarioArg) -> Self {
        match s {
            ScenarioArg::Meeting { size } => Scenario::Meeting { size },
            ScenarioArg::Webinar {
                publishers,
                viewers,
            } => Scenario::Webinar {
                publishers,
                viewers,
            },
            ScenarioArg::Rooms { rooms, size } => Scenario::Rooms { rooms, size },
            // Handled before any scenario runs.
            ScenarioArg::Crowd { size, .. } => Scenario::Meeting { size },
            ScenarioArg::Soak { resident, .. } => Scenario::Meeting { size: resident },
            ScenarioArg::Ceiling { peers, .. } => Scenario::Meeting { size: peers },
        }
    }
}

fn free_port(udp: bool) -> std::io::Result<u16> {
    if udp {
        Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    } else {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }
}

/// Starts the server binary on free loopback ports; returns it and its signalling URL.
async fn spawn(path: &std::path::Path, max_room: usize) -> Result<(Child, String), String> {
    let http = free_port(false).map_err(|e| e.to_string())?;
    let udp = free_port(true).map_err(|e| e.to_string())?;
    let child = Command::new(path)
        .args(["--listen", &format!("127.0.0.1:{http}")])
        .args(["--udp-port", &udp.to_string()])
        .args(["--max-participants", &max_room.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        // Our stdout may be the JSON report: the server's log must not land in it.
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
    let host = format!("127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe::healthy(&host).await {
        if Instant::now() >= deadline {
            return Err("the spawned server did not answer /healthz within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, format!("ws://{host}/ws")))
}

/// Starts a Janus wrapper (`PATH --ws-port PORT`) and waits for its WebSocket port.
async fn spawn_janus(path: &std::path::Path) -> Result<(Child, String), String> {
    let port = free_port(false).map_err(|e| e.to_string())?;
    let mut child = Command::new(path)
        .args(["--ws-port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() >= deadline || !matches!(child.try_wait(), Ok(None)) {
            return Err(format!(
                "{} did not open its WebSocket port {port} within 15 s",
                path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((child, format!("ws://127.0.0.1:{port}")))
}

/// What a --spawn entry names: the server kind and the program (`janus:PATH` is Janus).
fn spawn_target(entry: &std::path::Path, default: Target) -> (Target, std::path::PathBuf) {
    match entry.to_str().and_then(|s| s.strip_prefix("janus:")) {
        Some(rest) => (Target::Janus, rest.into()),
        None => (default, entry.to_path_buf()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (delta, keyframe) = cli.camera.sizes();
    let shape = StreamShape {
        fps: cli.fps,
        delta_bytes: cli.delta_bytes.unwrap_or(delta),
        keyframe_bytes: cli.keyframe_bytes.unwrap_or(keyframe),
        simulcast: cli.simulcast,
        ..StreamShape::default()
    };
    if let ScenarioArg::Crowd {
        room,
        size,
        talking,
    } = &cli.scenario
    {
        let crowd = load::crowd::CrowdConfig {
            url: cli.url[0].clone(),
            room: room.clone(),
            size: *size,
            talking: *talking,
            hold: Duration::from_secs(cli.duration),
            shape,
        };
        return match load::crowd::run(&crowd, !cli.quiet).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("confab-load: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let ScenarioArg::Soak {
        rooms,
        resident,
        churners,
        stay,
        actions_per_sec,
        sample_every,
        settle,
    } = cli.scenario
    {
        let mut soak = load::soak::SoakConfig::new(cli.url[0].clone());
        soak.server_pid = cli.server_pid;
        soak.duration = Duration::from_secs(cli.duration);
        soak.rooms = rooms;
        soak.resident = resident;
        soak.churners = churners;
        soak.stay = Duration::from_secs(stay);
        soak.actions_per_sec = actions_per_sec;
        soak.sample_every = Duration::from_secs(sample_every);
        soak.settle = Duration::from_secs(settle);
        soak.room_prefix = format!("soak{}", std::process::id());
        soak.shape = shape;
        soak.progress = !cli.quiet;
        return run_soak(soak, cli.spawn.first(), cli.json).await;
    }
    if let ScenarioArg::Ceiling {
        peers,
        pps,
        batch,
        bytes,
        sender_cpus,
        per_peer,
        gso,
        feedback_every,
    } = cli.scenario
    {
        let config = load::ceiling::CeilingConfig {
            peers,
            pps,
            batch: batch.unwrap_or(peers),
            bytes,
            duration: Duration::from_secs(cli.duration),
            sender_cpus,
            per_peer,
            gso,
            feedback_every: (feedback_every > 0).then(|| Duration::from_millis(feedback_every)),
        };
        return match load::ceiling::run(&config).await {
            Ok(report) => print_report(cli.json, &report, || report.table()),
            Err(e) => {
                eprintln!("confab-load: {e}");
                ExitCode::from(2)
            }
        };
    }
    let scenario: Scenario = cli.scenario.into();
    let mut config = LoadConfig::new(cli.url[0].clone(), scenario);
    config.more_urls = cli.url[1..].to_vec();
    config.server_pid = cli.server_pid;
    config.duration = Duration::from_secs(cli.duration);
    config.warmup = Duration::from_secs(cli.warmup);
    config.ramp_timeout = Duration::from_secs(cli.ramp_timeout);
    config.join_concurrency = cli.concurrency;
    config.decrypting = cli.decrypting;
    config.herd = cli.herd;
    config.progress = !cli.quiet;
    config.shape = shape;
    config.media_ip = cli.janus_media_ip;
    config.target = match cli.target {
        TargetArg::Confab => Target::Confab,
        TargetArg::Janus => Target::Janus,
    };
    // Distinct room names per run, so a run never joins a room a previous one left behind.
    config.room_prefix = format!("load{}", std::process::id());
    if cli.runs == 0 || cli.runs > MAX_RUNS {
        eprintln!("confab-load: --runs must be 1..={MAX_RUNS}");
        return ExitCode::from(2);
    }
    if cli.spawn.is_empty() {
        if cli.runs > 1 {
            eprintln!("confab-load: --runs needs --spawn (each run starts its own server)");
            return ExitCode::from(2);
        }
        return match load::run(&config).await {
            Ok(report) => finish(cli.json, &report),
            Err(e) => {
                eprintln!("confab-load: {e}");
                ExitCode::from(2)
            }
        };
    }
    let max_room = scenario.room_sizes().into_iter().max().unwrap_or(1);
    let mut reports: Vec<Vec<load::Report>> = vec![vec![]; cli.spawn.len()];
    for run in 0..cli.runs {
        // Binaries take turns, so a slow stretch of the machine falls on all of them alike.
        for (i, path) in cli.spawn.iter().enumerate() {
            let (target, program) = spawn_target(path, config.target);
            let started = match target {
                Target::Confab => spawn(&program, max_room + 1).await,
                Target::Janus => spawn_janus(&program).await,
            };
            let (child, url) = match started {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("confab-load: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut this = config.clone();
            this.url = url;
            this.target = target;
            this.server_pid = child.id();
            this.room_prefix = format!("{}r{run}b{i}", config.room_prefix);
            let report = match load::run(&this).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("confab-load: {e}");
                    return ExitCode::from(2);
                }
            };
            drop(child);
            if cli.spawn.len() == 1 && cli.runs == 1 {
                return finish(cli.json, &report);
            }
            if !cli.quiet {
                eprintln!(
                    "[run {}/{}] {}: {} fwd/CPU-s, {}",
                    run + 1,
                    cli.runs,
                    path.display(),
                    report
                        .forwarded_per_cpu_s
                        .map_or("n/a".into(), |v| format!("{v:.0}")),
                    if report.is_clean() {
                        "clean"
                    } else {
                        "NOT clean"
                    }
                );
            }
            reports[i].push(report);
        }
    }
    let summaries: Vec<load::compare::Summary> = cli
        .spawn
        .iter()
        .zip(&reports)
        .map(|(path, r)| load::compare::summarize(&path.display().to_string(), r))
        .collect();
    let all = Comparison {
        summaries,
        runs: reports,
    };
    let printed = print_report(cli.json, &all, || load::compare::table(&all.summaries));
    let clean = all.runs.iter().flatten().all(load::Report::is_clean);
    if printed == ExitCode::SUCCESS && clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs a soak, against a spawned server if `spawn` names a binary.
async fn run_soak(
    mut soak: load::soak::SoakConfig,
    spawn_path: Option<&std::path::PathBuf>,
    json: bool,
) -> ExitCode {
    if let Err(e) = soak.validate() {
        eprintln!("confab-load: {e}");
        return ExitCode::from(2);
    }
    let mut child = None;
    if let Some(path) = spawn_path {
        match spawn(path, soak.resident + soak.churners + 1).await {
            Ok((c, url)) => {
                soak.url = url;
                soak.server_pid = c.id();
                child = Some(c);
            }
            Err(e) => {
                eprintln!("confab-load: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut report = match load::soak::run(&soak).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confab-load: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(c) = child.as_mut() {
        // A spawned server that exited by itself crashed.
        if !matches!(c.try_wait(), Ok(None)) {
            report.crashed = true;
        }
    }
    let printed = print_report(json, &report, || report.table());
    if printed == ExitCode::SUCCESS && report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Most runs per binary.
const MAX_RUNS: usize = 50;

/// Several runs: the summary per binary, then every run's report.
#[derive(serde::Serialize)]
struct Comparison {
    summaries: Vec<load::compare::Summary>,
    runs: Vec<Vec<load::Report>>,
}

/// Prints one run's report; success only if the run was clean.
fn finish(json: bool, report: &load::Report) -> ExitCode {
    let printed = print_report(json, report, || report.table());
    if printed == ExitCode::SUCCESS && report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints `report` as JSON on stdout, or as the table `table` makes.
fn print_report<R: serde::Serialize>(
    json: bool,
    report: &R,
    table: impl Fn() -> String,
) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("confab-load: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", table());
    }
    ExitCode::SUCCESS
}
