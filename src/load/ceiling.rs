//! The machine's own limit: datagrams per CPU-second that this kernel sends when nothing else
//! is done per packet.
//!
//! A fan-out's figure (forwarded packets per server CPU-second) only means something next to
//! what the same machine does with no SFU at all. This sends datagrams shaped like a fan-out
//! (one socket, each datagram to another of `peers` receivers, batches through the server's
//! own [`send_batch`]) at a fixed rate from one thread, and divides what it sent by that
//! thread's CPU time. On loopback the sending call also delivers into the receiving socket and
//! wakes its reader, so the figure includes that, exactly as the server's own CPU time does.
//! The receivers are tokio sockets in this process, like the bots.
//!
//! An SFU also reads what its subscribers send back: a browser's transport-wide feedback,
//! one datagram per 50 ms each. With `feedback_every`, every receiver sends a feedback-sized
//! datagram to the sender at that period (from a random phase), and the sending thread reads
//! them as the server reads its RTCP socket (`recvmmsg` batches, at most every
//! 5 ms, `READ_EVERY`); their kernel cost is then in the same CPU time.

use crate::server::transport::egress::{send_batch, MAX_BATCH, SOCKET_BUFFER};
use crate::server::transport::recv_batch::{RecvBatch, RECV_BATCH};
use serde::Serialize;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::net::{Protocol, Transmit};
use tokio::net::UdpSocket;

/// Most receivers one run may bind.
pub const MAX_PEERS: usize = 2000;
/// Fastest rate one run may ask for.
pub const MAX_PPS: u64 = 2_000_000;
/// CPU numbers `--sender-cpus` accepts are below this (the size of `cpu_set_t`).
const MAX_CPU: usize = 1024;
/// Time the sender runs before the measured window (socket buffers, caches, wake-up pattern).
const WARMUP: Duration = Duration::from_millis(500);
/// Bytes of one feedback datagram: a transport-cc packet for a few frames' packets, sealed
/// (SRTCP index and GCM tag).
const FEEDBACK_BYTES: usize = 72;
/// How often, at most, the sender reads the feedback: the server's RTCP side after media.
const READ_EVERY: Duration = Duration::from_millis(5);
/// Shortest feedback period a run may ask for.
const MIN_FEEDBACK_EVERY: Duration = Duration::from_millis(10);

/// What to send.
#[derive(Debug, Clone)]
pub struct CeilingConfig {
    /// Receiving sockets, each a destination in turn.
    pub peers: usize,
    /// Datagrams per second to send.
    pub pps: u64,
    /// Datagrams handed to the kernel per batch, up to `sendmmsg`'s own cap of
    /// [`MAX_BATCH`] (a fan-out's natural batch is its width).
    pub batch: usize,
    /// Bytes per datagram (an SRTP video packet is ~1,130).
    pub bytes: usize,
    /// Measured window.
    pub duration: Duration,
    /// CPUs the sending thread is pinned to (empty: wherever the process may run), so that
    /// a ceiling for a pinned server is measured on the server's CPUs while its receivers
    /// stay on the tester's.
    pub sender_cpus: Vec<usize>,
    /// Datagrams each receiver gets in a row (a video frame's packets to one subscriber);
    /// 1 is one datagram per receiver in turn.
    pub per_peer: usize,
    /// Whether a receiver's datagrams in a row go as one GSO message, as the server sends
    /// them ([`crate::server::transport::coalesce`]).
    pub gso: bool,
    /// Each receiver sends the sender one feedback datagram per this period, which the
    /// sending thread reads (`None`: nothing comes back).
    pub feedback_every: Option<Duration>,
}

/// What the kernel did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CeilingReport {
    /// Receivers.
    pub peers: usize,
    /// Datagrams per batch.
    pub batch: usize,
    /// Bytes per datagram.
    pub bytes: usize,
    /// Rate asked for, per second.
    pub target_pps: u64,
    /// Length of the measured window, s.
    pub window_s: f64,
    /// Datagrams the kernel took per second.
    pub sent_pps: f64,
    /// Datagrams the receivers read per second.
    pub received_pps: f64,
    /// Sent but never read, in the window (full receive buffers).
    pub lost: u64,
    /// CPU of the sending thread, percent of one core.
    pub sender_cpu_pct: f64,
    /// Datagrams sent per CPU-second of the sending thread (which also read the feedback,
    /// if any came): the most any server on this machine could forward per CPU-second at
    /// this rate and batch size.
    pub sent_per_cpu_s: f64,
    /// Feedback datagrams the sending thread read per second (0 without `feedback_every`).
    pub feedback_read_pps: f64,
    /// The same as a cost, µs per datagram.
    pub us_per_datagram: f64,
    /// Datagrams per sending system call in the window (the batching achieved).
    pub datagrams_per_call: f64,
}

impl CeilingConfig {
    fn check(&self) -> Result<(), String> {
        if self.peers == 0 || self.peers > MAX_PEERS {
            return Err(format!("--peers must be 1..={MAX_PEERS}"));
        }
        if self.pps == 0 || self.pps > MAX_PPS {
            return Err(format!("--pps must be 1..={MAX_PPS}"));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(format!("--batch must be 1..={MAX_BATCH}"));
        }
        if !(12..=1400).contains(&self.bytes) {
            return Err("--bytes must be 12..=1400".into());
        }
        if self.duration.is_zero() || self.duration > super::MAX_PHASE {
            return Err("the window must be 1..=600 s".into());
        }
        if !(1..=crate::server::transport::coalesce::MAX_SEGMENTS).contains(&self.per_peer) {
            return Err("--per-peer must be 1..=64".into());
        }
        if self.feedback_every.is_some_and(|e| e < MIN_FEEDBACK_EVERY) {
            return Err("--feedback-every must be at least 10 ms".into());
        }
        if let Some(cpu) = self.sender_cpus.iter().find(|c| **c >= MAX_CPU) {
            return Err(format!("--sender-cpus: CPU {cpu} is past {}", MAX_CPU - 1));
        }
        Ok(())
    }
}

/// Binds the receivers, sends for warm-up plus the window, and reports.
pub async fn run(config: &CeilingConfig) -> Result<CeilingReport, String> {
    config.check()?;
    let received = Arc::new(AtomicU64::new(0));
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let sender_addr = sender.local_addr().map_err(|e| e.to_string())?;
    let mut destinations = Vec::with_capacity(config.peers);
    let mut readers = Vec::with_capacity(config.peers);
    for _ in 0..config.peers {
        let socket = receiver().map_err(|e| format!("cannot bind a receiver: {e}"))?;
        destinations.push(socket.local_addr().map_err(|e| e.to_string())?);
        let count = received.clone();
        let every = config.feedback_every;
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let Some(every) = every else {
                while socket.recv(&mut buf).await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                return;
            };
            // RTCP's first two bytes (version 2, transport-cc), as the server's split steers.
            let mut feedback = vec![0u8; FEEDBACK_BYTES];
            feedback[..2].copy_from_slice(&[0x8f, 205]);
            let phase = every.mul_f64(rand::random::<f64>());
            let mut tick = tokio::time::interval_at((Instant::now() + phase).into(), every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    r = socket.recv(&mut buf) => match r {
                        Ok(_) => { count.fetch_add(1, Ordering::Relaxed); }
                        Err(_) => return,
                    },
                    _ = tick.tick() => { let _ = socket.send_to(&feedback, sender_addr).await; }
                }
            }
        }));
    }
    let config = config.clone();
    let counted = received.clone();
    let sent =
        tokio::task::spawn_blocking(move || send_paced(&config, sender, &destinations, &counted))
            .await
            .map_err(|e| format!("the sender failed: {e}"))??;
    // What is still in flight arrives within milliseconds on loopback.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let read_after = received.load(Ordering::Relaxed);
    for r in readers {
        r.abort();
    }
    let window_s = sent.window.as_secs_f64();
    let read = read_after.saturating_sub(sent.received_before);
    Ok(CeilingReport {
        peers: sent.peers,
        batch: sent.batch,
        bytes: sent.bytes,
        target_pps: sent.target_pps,
        window_s,
        sent_pps: sent.datagrams as f64 / window_s,
        received_pps: read as f64 / window_s,
        lost: sent.datagrams.saturating_sub(read),
        sender_cpu_pct: 100.0 * sent.cpu_s / window_s,
        sent_per_cpu_s: sent.datagrams as f64 / sent.cpu_s.max(1e-9),
        feedback_read_pps: sent.feedback as f64 / window_s,
        us_per_datagram: 1e6 * sent.cpu_s / sent.datagrams.max(1) as f64,
        datagrams_per_call: sent.datagrams as f64 / sent.calls.max(1) as f64,
    })
}

fn receiver() -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // As the bots do: the default 208 KiB overflows on bursts.
    let _ = socket.set_recv_buffer_size(1 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    UdpSocket::from_std(socket.into())
}

struct Sent {
    peers: usize,
    batch: usize,
    bytes: usize,
    target_pps: u64,
    window: Duration,
    datagrams: u64,
    calls: u64,
    cpu_s: f64,
    /// Receivers' count when the window started.
    received_before: u64,
    /// Feedback datagrams read in the window.
    feedback: u64,
}

/// Runs on its own thread, so that thread's CPU clock is the sending cost alone (and the
/// feedback's reading, if any comes back).
fn send_paced(
    config: &CeilingConfig,
    std_socket: std::net::UdpSocket,
    destinations: &[SocketAddr],
    received: &AtomicU64,
) -> Result<Sent, String> {
    pin(&config.sender_cpus)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let _guard = runtime.enter();
    let _ = socket2::SockRef::from(&std_socket).set_send_buffer_size(SOCKET_BUFFER);
    std_socket
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let socket = UdpSocket::from_std(std_socket).map_err(|e| e.to_string())?;
    let source = socket.local_addr().map_err(|e| e.to_string())?;
    // `send_batch` sends only while tokio knows the socket is writable; this runtime's
    // reactor runs only here and after a full buffer, not once per batch.
    runtime
        .block_on(socket.writable())
        .map_err(|e| e.to_string())?;
    crate::server::transport::coalesce::set_enabled(config.gso);
    // Every destination once (`per_peer` times in a row), then the start again, so that
    // each batch is one slice.
    let k = config.per_peer;
    let each = destinations.iter().flat_map(|d| std::iter::repeat_n(d, k));
    let ring: Vec<Transmit> = each
        .clone()
        .chain(each.cycle().take(config.batch))
        .map(|d| Transmit {
            proto: Protocol::Udp,
            source,
            destination: *d,
            contents: vec![0x80; config.bytes].into(),
        })
        .collect();
    let interval = Duration::from_secs_f64(config.batch as f64 / config.pps as f64);
    let start = Instant::now();
    let mut next = start;
    let mut at = 0;
    let mut datagrams = 0u64;
    let mut calls = 0u64;
    let mut window_start: Option<(Instant, f64, u64, u64, u64, u64)> = None;
    let mut inbox = RecvBatch::default();
    let mut feedback = 0u64;
    let mut read_at = start;
    loop {
        let now = Instant::now();
        if window_start.is_none() && now >= start + WARMUP {
            window_start = Some((
                now,
                thread_cpu_s(),
                datagrams,
                calls,
                received.load(Ordering::Relaxed),
                feedback,
            ));
        }
        if config.feedback_every.is_some() && now >= read_at + READ_EVERY {
            read_at = now;
            feedback += read_all(&mut inbox, &socket);
        }
        if let Some((t0, cpu0, sent0, calls0, received0, feedback0)) = window_start {
            if now >= t0 + config.duration {
                return Ok(Sent {
                    peers: config.peers,
                    batch: config.batch,
                    bytes: config.bytes,
                    target_pps: config.pps,
                    window: now - t0,
                    datagrams: datagrams - sent0,
                    calls: calls - calls0,
                    cpu_s: thread_cpu_s() - cpu0,
                    received_before: received0,
                    feedback: feedback - feedback0,
                });
            }
        }
        let sent = send_batch(&socket, &ring[at..at + config.batch]);
        let n = sent.datagrams;
        datagrams += n as u64;
        calls += sent.calls as u64;
        if n < config.batch {
            runtime
                .block_on(socket.writable())
                .map_err(|e| e.to_string())?;
        }
        at = (at + config.batch) % (config.peers * k);
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Reads what the socket holds, in batches as the server does (bounded: a fast sender of
/// feedback cannot keep the loop here); how many datagrams.
fn read_all(inbox: &mut RecvBatch, socket: &UdpSocket) -> u64 {
    use std::os::fd::AsFd;
    let mut n = 0;
    for _ in 0..64 {
        match inbox.recv(socket.as_fd()) {
            Ok(k) => {
                n += k as u64;
                if k < RECV_BATCH {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    n
}

/// Pins the calling thread to `cpus` (nothing when empty).
fn pin(cpus: &[usize]) -> Result<(), String> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is a plain bitmask for which all-zero is the empty set; the CPU_SET
    // indexes were checked against its size (MAX_CPU) in `check`.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        return Err(format!(
            "cannot pin the sender to CPUs {cpus:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// CPU seconds the calling thread has used.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

impl CeilingReport {
    /// The report as aligned text.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rows = [
            (
                "shape",
                format!(
                    "{} receivers, {} B datagrams, batches of {}",
                    self.peers, self.bytes, self.batch
                ),
            ),
            ("window s", format!("{:.1}", self.window_s)),
            (
                "sent / received pkt/s",
                format!(
                    "{:.0} / {:.0} (asked {})",
                    self.sent_pps, self.received_pps, self.target_pps
                ),
            ),
            ("never read", self.lost.to_string()),
            (
                "sending thread CPU %",
                format!("{:.1}", self.sender_cpu_pct),
            ),
            ("µs per datagram", format!("{:.2}", self.us_per_datagram)),
            (
                "datagrams per send call",
                format!("{:.1}", self.datagrams_per_call),
            ),
            (
                "feedback read pkt/s",
                format!("{:.0}", self.feedback_read_pps),
            ),
            (
                "SENT PKT PER CPU-S (ceiling)",
                format!("{:.0}", self.sent_per_cpu_s),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "{name:<40} {value}");
        }
        out
    }
}
