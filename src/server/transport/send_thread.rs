//! The send threads: rooms hand their send batches to threads that call `sendmmsg`, so the
//! kernel's send of one batch overlaps the room's sealing of the next, and a burst is sent in
//! lanes, on two cores at once, with each destination's datagrams in order.
//!
//! A frame's packets arrive together and a room fans each out to its whole audience: at
//! 1 → 100 with a heavy camera that is ~900 sealed copies per frame, and sending them costs
//! ~5 times more than sealing them (on loopback a send also runs the receiver's softirq). On
//! one thread the last copy of a burst waits for both; with the sends on this thread it waits
//! for about the larger of the two; with the sends split in lanes that two threads send at
//! once (`--send-threads 2`, or one and the room), for about half of it.
//!
//! - **Lanes:** a handed-off batch is split by destination ([`lane_of`]) into [`LANES`]
//!   FIFOs, each with its own token: whoever holds a lane's token sends its oldest job, so
//!   each lane's jobs leave in the order rooms handed them over, and a destination, always in
//!   the same lane, gets its datagrams in order (receivers NACK a reordered RTP packet). Both
//!   lanes send through the same socket: a UDP send that is not corked takes no socket lock.
//! - **Who sends:** a thread takes the free lane with the most bytes queued, one job at a
//!   time. A room sends lanes nobody sends: when its lane is full (that lane, or another
//!   rather than wait), and when the room is about to wait ([`SendThread::help`]). With one
//!   thread, that is what puts the second core to work at the end of a burst: the room has
//!   sealed it all, the thread sends one lane and the room the other.
//! - **Inline:** small batches (reports, STUN answers, a paced copy), and any batch while the
//!   room has nothing more queued to seal, are sent by the room itself, whole, in one call,
//!   when every lane is idle (it takes every token): the thread's wake-up and the batch's trip
//!   to another core cost CPU that only an overlap pays back. Light loads stay there.
//! - **Bounded:** each lane holds at most [`MAX_JOBS`] jobs and [`MAX_BYTES`] (a part bigger
//!   than that is queued alone), so at most `LANES × MAX_BYTES` sealed bytes wait here. A room
//!   finding its lane full sends the lane's jobs itself if nobody holds its token (the thread
//!   has not been scheduled yet, or sends the other lane), else another free lane's, else
//!   waits for the holder, which sends one job at a time (~1 ms), up to [`FULL_WAIT`]: a
//!   tokio worker blocks that long at most; past that its part is dropped and counted
//!   (`confab_udp_send_dropped_datagrams`), as a full socket buffer drops.
//! - **Buffers** sent here go back to [`crate::media::fast::pool`]'s shared list, one lock per
//!   job; emptied job vectors go back to the rooms as spares.
//! - **Delay:** the sender reads the clock right before its `sendmmsg` and observes the job's
//!   logged copies then ([`super::super::forward_delay`]). A split batch's logged copies go to
//!   its lanes in proportion to their datagrams (a fan-out's copies spread over the lanes as
//!   its destinations do).
//! - **Wakes:** rooms notify the thread only when it is parked and the lane they queued on is
//!   free, and the thread notifies rooms only when one waits: a condvar's notify is a `futex`
//!   call even when nobody waits. (Spinning up to 50 µs before parking was tried: it did not
//!   change how often the thread parks, since the next batch is usually the next datagram's
//!   fan-out, milliseconds away.)
//! - **Failure:** the thread catches a panic per job and keeps going; if it ever ends, the
//!   lanes are closed and rooms send their own batches again. It ends when the server shuts
//!   down or the transport is dropped, after sending what is queued.

use super::media_socket::MediaSocket;
use crate::media::fast::pool;
use crate::server::forward_delay::Forward;
use crate::server::metrics::Metrics;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use str0m::net::Transmit;
use tokio::sync::watch;

/// Lanes a handed-off batch is split over: two, the cores of the machine this was tuned on.
pub const LANES: usize = 2;
/// Most jobs queued per lane.
pub const MAX_JOBS: usize = 16;
/// Most bytes queued per lane (a part bigger than this is queued alone). The senders are the
/// slower side, so one or two fan-outs queued keep them busy; every queued byte is a buffer
/// sealed early, and the process keeps what a burst took at its peak (measured: with 2 MiB in
/// one queue, RSS per participant at 1 → 100 heavy rose from ~190 to ~213 KiB). At 1 → 300 one
/// input's fan-out is ~360 KB, ~180 KB per lane.
pub const MAX_BYTES: usize = 256 << 10;
/// Batches of fewer datagrams, with every lane idle, are sent by the room itself, whole. Set
/// above a light fan-out (1 → 100 light: ~90 copies a flush), which lanes only cost: split,
/// it took two `sendmmsg` of ~50 and lost ~10 % of its fwd/CPU-s (was 16 before the lanes).
pub const HAND_OFF_FROM: usize = 128;
/// Longest a room waits for room in a full lane (its holder sends one job, ~1 ms) before
/// dropping its part.
pub const FULL_WAIT: Duration = Duration::from_millis(50);
/// Emptied jobs kept for reuse, and the largest capacity kept (a batch vector is ~100 bytes
/// per datagram).
const SPARE: usize = 4 * LANES;
const SPARE_CAPACITY: usize = 512;
/// How often an idle thread looks whether the server is shutting down.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// The lane of datagrams to `to`: a multiplicative hash of its address, so that ports the
/// kernel handed out in any pattern spread evenly.
pub fn lane_of(to: SocketAddr) -> usize {
    let ip = match to.ip() {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    let h = (ip << 16 | u64::from(to.port())).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) as usize) % LANES
}

/// One lane's part of a room's send batch and the logged copies it carries.
#[derive(Default)]
struct Job {
    batch: Vec<Transmit>,
    forwards: Vec<Forward>,
    bytes: usize,
}

#[derive(Default)]
struct Lane {
    jobs: VecDeque<Job>,
    bytes: usize,
    /// The lane's token: its holder sends the lane's oldest job, and nobody else meanwhile.
    sending: bool,
}

impl Lane {
    fn idle(&self) -> bool {
        !self.sending && self.jobs.is_empty()
    }
}

#[derive(Default)]
struct State {
    lanes: [Lane; LANES],
    closed: bool,
    spare: Vec<Job>,
    /// Threads waiting on `ready`: a job queued on a free lane must notify one.
    parked: usize,
    /// Rooms waiting on `freed`.
    waiting: usize,
}

impl State {
    /// The lane nobody sends with the most bytes queued.
    fn free_lane(&self) -> Option<usize> {
        (0..LANES)
            .filter(|&i| !self.lanes[i].sending && !self.lanes[i].jobs.is_empty())
            .max_by_key(|&i| self.lanes[i].bytes)
    }
}

/// The media sockets' sender, shared by every room.
pub struct SendThread {
    state: Mutex<State>,
    /// The threads wait here for jobs.
    ready: Condvar,
    /// Rooms wait here for room in a full lane (or a lane's token).
    freed: Condvar,
    sockets: Vec<(SocketAddr, Arc<MediaSocket>)>,
    metrics: Arc<Metrics>,
    /// Threads started: each holds a handle, so with the transport's gone this many remain.
    threads: AtomicUsize,
}

impl SendThread {
    /// Starts `threads` (at least one) send threads for `sockets`; `None` if the system
    /// refused the first (rooms then send their own batches).
    pub fn start(
        sockets: Vec<(SocketAddr, Arc<MediaSocket>)>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
        threads: usize,
    ) -> Option<Arc<SendThread>> {
        let threads = threads.clamp(1, LANES);
        let this = Arc::new(SendThread {
            state: Mutex::default(),
            ready: Condvar::new(),
            freed: Condvar::new(),
            sockets,
            metrics,
            threads: AtomicUsize::new(0),
        });
        // Every thread's handle exists before any thread runs: a thread that counted the
        // handles while the next was not yet made took the transport for gone and closed the
        // lanes for good (1 start in 8 with two threads, in the order test).
        let handles: Vec<_> = (0..threads).map(|_| Arc::clone(&this)).collect();
        for (i, t) in handles.into_iter().enumerate() {
            let shutdown = shutdown.clone();
            let started = std::thread::Builder::new()
                .name(format!("confab-send{i}"))
                .spawn(move || t.run(shutdown))
                .map_err(|e| tracing::warn!(error = %e, "a send thread refused"));
            match started {
                Ok(_) => {
                    this.threads.fetch_add(1, Ordering::Release);
                }
                Err(()) if i == 0 => return None,
                Err(()) => {}
            }
        }
        Some(this)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `batch` with its logged copies `forwards`: through the lanes if `hand_off` (the
    /// room has more to do meanwhile) or a lane is busy, else at once; leaves both empty (with
    /// spare capacity).
    pub fn submit(&self, batch: &mut Vec<Transmit>, forwards: &mut Vec<Forward>, hand_off: bool) {
        if batch.is_empty() {
            self.observe(forwards);
            return;
        }
        let mut st = self.lock();
        let inline = !hand_off || batch.len() < HAND_OFF_FROM;
        if inline && !st.closed && st.lanes.iter().all(Lane::idle) {
            st.lanes.iter_mut().for_each(|l| l.sending = true);
            drop(st);
            self.observe(forwards);
            super::send_runs(&self.sockets, &self.metrics, batch);
            super::egress::recycle(batch);
            let mut st = self.lock();
            st.lanes.iter_mut().for_each(|l| l.sending = false);
            // Rooms that queued meanwhile saw the tokens taken and woke nobody; a room may
            // also wait for a token (a full lane) rather than for the thread.
            self.wake(&st);
            self.notify_rooms(&st);
            return;
        }
        let mut parts: [Job; LANES] = std::array::from_fn(|_| st.spare.pop().unwrap_or_default());
        drop(st);
        split(batch, forwards, &mut parts);
        let deadline = Instant::now() + FULL_WAIT;
        let mut st = self.lock();
        for (lane, job) in parts.into_iter().enumerate() {
            if job.batch.is_empty() {
                self.keep(&mut st, job);
            } else {
                st = self.enqueue(st, lane, job, deadline);
            }
        }
    }

    /// Queues `job` on `lane` (waiting for room until `deadline`, else dropping it).
    fn enqueue<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        lane: usize,
        mut job: Job,
        deadline: Instant,
    ) -> MutexGuard<'a, State> {
        loop {
            let l = &st.lanes[lane];
            let fits = l.jobs.len() < MAX_JOBS && l.bytes + job.bytes <= MAX_BYTES;
            if (fits || l.jobs.is_empty()) && !st.closed {
                break;
            }
            if !l.sending {
                // Nobody sends this lane (the thread has not run yet, sends the other lane,
                // or is gone): send what it holds, in order.
                st = self.send_lane(st, lane);
                if st.closed {
                    st.lanes[lane].sending = true;
                    drop(st);
                    let job = self.send(job);
                    st = self.lock();
                    st.lanes[lane].sending = false;
                    self.keep(&mut st, job);
                    self.notify_rooms(&st);
                    return st;
                }
                continue;
            }
            if let Some(other) = st.free_lane() {
                // Rather than wait, send another lane nobody sends.
                st = self.send_lane(st, other);
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                self.metrics.udp_send_dropped.inc_by(job.batch.len() as u64);
                job.forwards.clear();
                pool::give_all(job.batch.drain(..).map(|t| t.contents.into()));
                self.keep(&mut st, job);
                return st;
            }
            st.waiting += 1;
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.waiting -= 1;
        }
        let l = &mut st.lanes[lane];
        l.bytes += job.bytes;
        l.jobs.push_back(job);
        let free = !l.sending;
        self.metrics.udp_send_handoffs.inc();
        if free && st.parked > 0 {
            self.ready.notify_one();
        }
        st
    }

    /// A room is about to wait: it sends the lanes nobody has started on.
    pub fn help(&self) {
        let mut st = self.lock();
        while let Some(lane) = st.free_lane() {
            st = self.send_lane(st, lane);
        }
    }

    /// With `lane`'s token free: takes it, sends the lane's queued jobs in order, gives it
    /// back.
    fn send_lane<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        lane: usize,
    ) -> MutexGuard<'a, State> {
        st.lanes[lane].sending = true;
        while let Some(job) = st.lanes[lane].jobs.pop_front() {
            st.lanes[lane].bytes -= job.bytes;
            drop(st);
            let job = self.send(job);
            st = self.lock();
            self.keep(&mut st, job);
        }
        st.lanes[lane].sending = false;
        self.notify_rooms(&st);
        st
    }

    /// Wakes a parked thread per free lane with jobs queued.
    fn wake(&self, st: &State) {
        let ready = (0..LANES)
            .filter(|&i| !st.lanes[i].sending && !st.lanes[i].jobs.is_empty())
            .count();
        for _ in 0..ready.min(st.parked) {
            self.ready.notify_one();
        }
    }

    /// Wakes rooms waiting for room in a lane or for a token, if any.
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
        job.bytes = 0;
        job
    }

    fn keep(&self, st: &mut State, job: Job) {
        if st.spare.len() < SPARE && job.batch.capacity() <= SPARE_CAPACITY {
            st.spare.push(job);
        }
    }

    /// A thread: sends jobs until shut down and nothing is queued.
    fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        // However the loop ends, rooms go back to sending their own batches.
        struct Closing<'a>(&'a SendThread);
        impl Drop for Closing<'_> {
            fn drop(&mut self) {
                let mut st = self.0.lock();
                st.closed = true;
                self.0.freed.notify_all();
                self.0.ready.notify_all();
            }
        }
        let _closing = Closing(&self);
        let mut st = self.lock();
        loop {
            if let Some(lane) = st.free_lane() {
                let l = &mut st.lanes[lane];
                l.sending = true;
                let job = l.jobs.pop_front().unwrap_or_default();
                l.bytes -= job.bytes;
                drop(st);
                let sent = std::panic::catch_unwind(AssertUnwindSafe(|| self.send(job)));
                st = self.lock();
                st.lanes[lane].sending = false;
                if let Ok(job) = sent {
                    self.keep(&mut st, job);
                }
                self.notify_rooms(&st);
                continue;
            }
            // Only the threads' handles and the transport's: the transport is gone.
            let orphan = Arc::strong_count(&self) <= self.threads.load(Ordering::Acquire);
            let empty = st.lanes.iter().all(|l| l.jobs.is_empty());
            if (st.closed || *shutdown.borrow() || orphan) && empty {
                return;
            }
            st.parked += 1;
            st = self
                .ready
                .wait_timeout(st, IDLE_CHECK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.parked -= 1;
        }
    }

    /// Stops the threads once what is queued is sent.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Moves `batch` into the lanes' `parts` by destination, and `forwards` in proportion to the
/// datagrams each part got (the largest part takes what rounding leaves).
fn split(batch: &mut Vec<Transmit>, forwards: &mut Vec<Forward>, parts: &mut [Job; LANES]) {
    let total = batch.len() as u64;
    for t in batch.drain(..) {
        let p = &mut parts[lane_of(t.destination)];
        p.bytes += t.contents.len();
        p.batch.push(t);
    }
    let largest = (0..LANES)
        .max_by_key(|&i| parts[i].batch.len())
        .unwrap_or(0);
    for &(at, n, held) in forwards.iter() {
        let mut left = n;
        for (i, p) in parts.iter_mut().enumerate() {
            if i != largest {
                let share = (u64::from(n) * p.batch.len() as u64 / total.max(1)) as u32;
                if share > 0 {
                    p.forwards.push((at, share, held));
                    left -= share;
                }
            }
        }
        if left > 0 {
            parts[largest].forwards.push((at, left, held));
        }
    }
    forwards.clear();
}

#[cfg(test)]
#[path = "send_thread_tests.rs"]
mod tests;
