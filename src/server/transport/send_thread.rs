//! The send thread: rooms hand their send batches to one thread that calls `sendmmsg`, so the
//! kernel's send of one batch overlaps the room's sealing of the next.
//!
//! A frame's packets arrive together and a room fans each out to its whole audience: at
//! 1 → 100 with a heavy camera that is ~900 sealed copies per frame, and sending them costs
//! more than sealing them. On one thread the last copy of a burst waits for both; with the
//! sends on this thread it waits for about the larger of the two.
//!
//! - **Order:** whoever sends holds the one token (`sending`) and sends the oldest batch, so
//!   batches leave in the order rooms handed them over, whichever thread sends them.
//! - **Only while the room has more to seal** (more input queued) does it hand a batch over;
//!   otherwise, with nothing queued, it sends the batch itself, as do small batches (reports,
//!   STUN answers, a paced copy): the thread's wake-up and the batch's trip to another core
//!   cost CPU that only an overlap pays back. A room about to wait sends whatever is still
//!   queued if the thread has not started on it ([`SendThread::help`]): under CPU
//!   contention the thread may not run soon, and the room would only sleep.
//! - **Bounded:** at most [`MAX_JOBS`] batches and [`MAX_BYTES`] queued. A room finding the
//!   queue full sends the queued batches itself if the thread is not sending (it has not been
//!   scheduled yet), else waits for it up to [`FULL_WAIT`]; past that its batch is dropped
//!   and counted (`confab_udp_send_dropped_datagrams`), as a full socket buffer drops.
//! - **Buffers** sent here go back to [`crate::media::fast::pool`]'s shared list, one lock per
//!   batch; emptied batch vectors go back to the rooms through the queue.
//! - **Delay:** the sender reads the clock right before its `sendmmsg` and observes the
//!   batch's logged copies then ([`super::super::forward_delay`]).
//! - **Wakes:** rooms notify the thread only when it is parked, and the thread notifies rooms
//!   only when one waits: a condvar's notify is a `futex` call even when nobody waits.
//!   (Spinning up to 50 µs before parking was tried: it did not change how often the thread
//!   parks, since the next batch is usually the next datagram's fan-out, milliseconds away.)
//! - **Failure:** the thread catches a panic per batch and keeps going; if it ever ends, the
//!   queue is closed and rooms send their own batches again. It ends when the server shuts
//!   down or the transport is dropped, after sending what is queued.

use super::media_socket::MediaSocket;
use crate::media::fast::pool;
use crate::server::forward_delay::Forward;
use crate::server::metrics::Metrics;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use str0m::net::Transmit;
use tokio::sync::watch;

/// Most batches queued.
pub const MAX_JOBS: usize = 16;
/// Most bytes queued (a batch bigger than this is queued alone). The thread is the slower
/// side, so one or two fan-outs queued keep it busy; every queued byte is a buffer sealed
/// early, and the process keeps what a burst took at its peak (measured: with 2 MiB, RSS per
/// participant at 1 → 100 heavy rose from ~190 to ~213 KiB).
pub const MAX_BYTES: usize = 256 << 10;
/// Batches of fewer datagrams, with nothing queued, are sent by the room itself.
pub const HAND_OFF_FROM: usize = 16;
/// Longest a room waits for room in a full queue before dropping its batch.
pub const FULL_WAIT: Duration = Duration::from_millis(50);
/// Emptied batches kept for reuse, and the largest capacity kept (a batch vector is ~100
/// bytes per datagram).
const SPARE: usize = 4;
const SPARE_CAPACITY: usize = 512;
/// How often an idle thread looks whether the server is shutting down.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// One room's send batch and the logged copies it carries.
#[derive(Default)]
struct Job {
    batch: Vec<Transmit>,
    forwards: Vec<Forward>,
    bytes: usize,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    bytes: usize,
    /// The token: its holder sends the oldest job, and nobody else sends meanwhile.
    sending: bool,
    closed: bool,
    spare: Vec<Job>,
    /// The thread waits on `ready`: a new job must notify it.
    parked: bool,
    /// Rooms waiting on `freed`.
    waiting: usize,
}

/// The media sockets' sender, shared by every room.
pub struct SendThread {
    state: Mutex<State>,
    /// The thread waits here for jobs.
    ready: Condvar,
    /// Rooms wait here for room in a full queue (or the token).
    freed: Condvar,
    sockets: Vec<(SocketAddr, Arc<MediaSocket>)>,
    metrics: Arc<Metrics>,
}

impl SendThread {
    /// Starts the thread for `sockets`; `None` if the system refused a thread (rooms then
    /// send their own batches).
    pub fn start(
        sockets: Vec<(SocketAddr, Arc<MediaSocket>)>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Option<Arc<SendThread>> {
        let this = Arc::new(SendThread {
            state: Mutex::default(),
            ready: Condvar::new(),
            freed: Condvar::new(),
            sockets,
            metrics,
        });
        let t = Arc::clone(&this);
        std::thread::Builder::new()
            .name("confab-send".into())
            .spawn(move || t.run(shutdown))
            .map_err(|e| tracing::warn!(error = %e, "no send thread: rooms send themselves"))
            .ok()?;
        Some(this)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `batch` with its logged copies `forwards`, through the thread if `hand_off` (the
    /// room has more to do meanwhile) or anything is queued, else at once; leaves both empty
    /// (with spare capacity).
    pub fn submit(&self, batch: &mut Vec<Transmit>, forwards: &mut Vec<Forward>, hand_off: bool) {
        if batch.is_empty() {
            self.observe(forwards);
            return;
        }
        let bytes = batch.iter().map(|t| t.contents.len()).sum();
        let mut st = self.lock();
        let inline = !hand_off || batch.len() < HAND_OFF_FROM;
        if !st.closed && !st.sending && st.jobs.is_empty() && inline {
            st.sending = true;
            drop(st);
            self.observe(forwards);
            super::send_runs(&self.sockets, &self.metrics, batch);
            super::egress::recycle(batch);
            let mut st = self.lock();
            st.sending = false;
            // Rooms that queued meanwhile saw the token taken and woke nobody; a room may also
            // wait for the token (a full queue) rather than for the thread.
            if !st.jobs.is_empty() && st.parked {
                self.ready.notify_one();
            }
            self.notify_rooms(&st);
            return;
        }
        let deadline = Instant::now() + FULL_WAIT;
        loop {
            let fits = st.jobs.len() < MAX_JOBS && st.bytes + bytes <= MAX_BYTES;
            if (fits || st.jobs.is_empty()) && !st.closed {
                break;
            }
            if !st.sending {
                // The thread is not running (or is gone): send what is queued, in order.
                st = self.send_queued(st);
                if st.closed {
                    drop(st);
                    self.observe(forwards);
                    super::send_runs(&self.sockets, &self.metrics, batch);
                    super::egress::recycle(batch);
                    return;
                }
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                drop(st);
                self.metrics.udp_send_dropped.inc_by(batch.len() as u64);
                forwards.clear();
                super::egress::recycle(batch);
                return;
            }
            st.waiting += 1;
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.waiting -= 1;
        }
        let mut job = st.spare.pop().unwrap_or_default();
        std::mem::swap(&mut job.batch, batch);
        std::mem::swap(&mut job.forwards, forwards);
        job.bytes = bytes;
        st.bytes += bytes;
        st.jobs.push_back(job);
        self.metrics.udp_send_handoffs.inc();
        if !st.sending && st.parked {
            self.ready.notify_one();
        }
    }

    /// A room is about to wait: if the thread has not started on what is queued, the room
    /// sends it.
    pub fn help(&self) {
        let st = self.lock();
        if !st.sending && !st.jobs.is_empty() {
            drop(self.send_queued(st));
        }
    }

    /// With the token free: takes it, sends every queued job in order, gives it back.
    fn send_queued<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.sending = true;
        while let Some(job) = st.jobs.pop_front() {
            st.bytes -= job.bytes;
            drop(st);
            let job = self.send(job);
            st = self.lock();
            self.keep(&mut st, job);
        }
        st.sending = false;
        self.notify_rooms(&st);
        st
    }

    /// Wakes rooms waiting for room in the queue or for the token, if any.
    fn notify_rooms(&self, st: &State) {
        if st.waiting > 0 {
            self.freed.notify_all();
        }
    }

    /// Observes `forwards` as sent now and empties it.
    fn observe(&self, forwards: &mut Vec<Forward>) {
        if !forwards.is_empty() {
            let m = &self.metrics;
            m.forward_delay
                .sent(&m.forward_delay_paced, forwards, Instant::now());
            forwards.clear();
        }
    }

    /// Sends one job; returns it emptied, its buffers back in the shared pool.
    fn send(&self, mut job: Job) -> Job {
        self.observe(&mut job.forwards);
        super::send_runs(&self.sockets, &self.metrics, &job.batch);
        pool::give_all(job.batch.drain(..).map(|t| t.contents.into()));
        job
    }

    fn keep(&self, st: &mut State, job: Job) {
        if st.spare.len() < SPARE && job.batch.capacity() <= SPARE_CAPACITY {
            st.spare.push(job);
        }
    }

    /// The thread: sends jobs until shut down and nothing is queued.
    fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        // However the loop ends, rooms go back to sending their own batches.
        struct Closing<'a>(&'a SendThread);
        impl Drop for Closing<'_> {
            fn drop(&mut self) {
                let mut st = self.0.lock();
                st.closed = true;
                self.0.freed.notify_all();
            }
        }
        let _closing = Closing(&self);
        let mut st = self.lock();
        loop {
            if !st.sending {
                if let Some(job) = st.jobs.pop_front() {
                    st.sending = true;
                    st.bytes -= job.bytes;
                    drop(st);
                    let sent = std::panic::catch_unwind(AssertUnwindSafe(|| self.send(job)));
                    st = self.lock();
                    st.sending = false;
                    if let Ok(job) = sent {
                        self.keep(&mut st, job);
                    }
                    self.notify_rooms(&st);
                    continue;
                }
            }
            // Only this thread's handle and the transport's: the transport is gone.
            let orphan = Arc::strong_count(&self) <= 1;
            if (st.closed || *shutdown.borrow() || orphan) && st.jobs.is_empty() {
                return;
            }
            st.parked = true;
            st = self
                .ready
                .wait_timeout(st, IDLE_CHECK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.parked = false;
        }
    }

    /// Stops the thread once what is queued is sent.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::net::Protocol;

    fn sockets() -> (Vec<(SocketAddr, Arc<MediaSocket>)>, std::net::UdpSocket) {
        let a = MediaSocket::bind("127.0.0.1:0".parse().expect("addr"), 1 << 20).expect("a");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("b");
        b.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (vec![(a.local_addr().expect("a"), Arc::new(a))], b)
    }

    fn burst(from: SocketAddr, to: SocketAddr, first: u16, n: u16) -> Vec<Transmit> {
        (first..first + n)
            .map(|i| Transmit {
                proto: Protocol::Udp,
                source: from,
                destination: to,
                contents: i.to_be_bytes().to_vec().into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn batches_leave_in_order_and_their_copies_are_observed_when_sent() {
        let (socks, rx) = sockets();
        let (from, to) = (socks[0].0, rx.local_addr().expect("b"));
        let metrics = Arc::new(Metrics::default());
        let (_tx, shutdown) = watch::channel(false);
        let st = SendThread::start(socks, Arc::clone(&metrics), shutdown).expect("thread");
        let t0 = Instant::now();
        let mut next = 0;
        for n in [40, 3, 100, 1, 20] {
            let mut b = burst(from, to, next, n);
            let mut fwd = vec![(t0, u32::from(n), false)];
            st.submit(&mut b, &mut fwd, true);
            assert!(b.is_empty() && fwd.is_empty());
            next += n;
        }
        let mut buf = [0u8; 8];
        for i in 0..next {
            let n = rx.recv(&mut buf).expect("a datagram");
            assert_eq!(&buf[..n], &i.to_be_bytes(), "in order");
        }
        st.close();
        // The counters move after `sendmmsg` returns, which may be after the datagrams
        // arrived: they are read once the thread has ended (and dropped its handle).
        let gone = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&st) > 1 {
            assert!(Instant::now() < gone, "the thread ends once closed");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(metrics.udp_out.get(), u64::from(next));
        assert_eq!(metrics.forward_delay.count(), u64::from(next));
        assert!(
            metrics.udp_send_handoffs.get() >= 3,
            "big batches were handed off"
        );
    }

    #[tokio::test]
    async fn once_the_thread_is_gone_rooms_send_themselves() {
        let (socks, rx) = sockets();
        let (from, to) = (socks[0].0, rx.local_addr().expect("b"));
        let metrics = Arc::new(Metrics::default());
        let (tx, shutdown) = watch::channel(false);
        let st = SendThread::start(socks, Arc::clone(&metrics), shutdown).expect("thread");
        tx.send(true).expect("shutdown");
        let gone = Instant::now() + Duration::from_secs(5);
        while !st.lock().closed {
            assert!(Instant::now() < gone, "the thread ends on shutdown");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut b = burst(from, to, 0, 50);
        st.submit(&mut b, &mut vec![], true);
        assert!(b.is_empty());
        let mut buf = [0u8; 8];
        for i in 0..50u16 {
            let n = rx.recv(&mut buf).expect("a datagram");
            assert_eq!(&buf[..n], &i.to_be_bytes());
        }
        assert_eq!(metrics.udp_send_handoffs.get(), 0);
    }
}
