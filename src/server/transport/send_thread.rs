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
//! - **Whole:** a queued batch under [`WHOLE_BELOW`] bytes (a light fan-out) is not split: it
//!   is one job in [`WHOLE_LANE`] that waits until the other lanes have sent their older jobs,
//!   and the other lanes' newer jobs wait for it (each job says how many jobs of each lane
//!   must be done first), so it leaves in one `sendmmsg`, one thread woken, and each
//!   destination still gets its datagrams in order. Splitting pays only when a lane's half
//!   is long enough to overlap the other's.
//! - **Who sends:** a thread takes the runnable lane (nobody sends it, its oldest job waits
//!   for nothing) with the most bytes queued, one job at a
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
//! - **Wakes:** rooms notify a thread only when one is parked and the lane they queued on is
//!   runnable; a sender that finishes a job wakes a parked thread for each other lane that is
//!   now runnable; the threads notify rooms only when one waits: a condvar's notify is a `futex`
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
/// Queued batches of fewer bytes are queued whole, as one job in [`WHOLE_LANE`] that waits for
/// the other lanes' older jobs and that their newer jobs wait for. Between a light fan-out
/// (1 → 100 light: ~100-150 KB for a flush of two inputs' copies, ~500 B a copy) and a heavy
/// one (1 → 100 heavy: ~220 KB, 1 → 300: ~225 KB a video packet's copies): split, a light
/// batch went out in two `sendmmsg` (~80 datagrams a call against ~90 whole) for no gain in
/// delay.
pub const WHOLE_BELOW: usize = 160 << 10;
/// The lane whole batches are queued in.
const WHOLE_LANE: usize = 0;
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
    /// Sent only once each lane `j` has finished its first `after[j]` jobs: a whole batch
    /// after the other lanes' older jobs, a part after the whole batches queued before it.
    after: [u64; LANES],
}

#[derive(Default)]
struct Lane {
    jobs: VecDeque<Job>,
    bytes: usize,
    /// The lane's token: its holder sends the lane's oldest job, and nobody else meanwhile.
    sending: bool,
    /// Jobs ever queued here, and ever finished (sent or failed).
    queued: u64,
    done: u64,
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
    /// [`WHOLE_LANE`]'s `queued` count just after its newest whole batch: parts queued in the
    /// other lanes wait until it has finished that many.
    whole_mark: u64,
}

impl State {
    /// Whether `lane`'s oldest job may be sent now: nobody sends the lane and the jobs it
    /// waits for in the other lanes are finished.
    fn runnable(&self, lane: usize) -> bool {
        let l = &self.lanes[lane];
        match l.jobs.front() {
            Some(job) if !l.sending => (0..LANES).all(|j| self.lanes[j].done >= job.after[j]),
            _ => false,
        }
    }

    /// The runnable lane with the most bytes queued.
    fn free_lane(&self) -> Option<usize> {
        (0..LANES)
            .filter(|&i| self.runnable(i))
            .max_by_key(|&i| self.lanes[i].bytes)
    }

    /// Runnable lanes.
    fn runnable_lanes(&self) -> usize {
        (0..LANES).filter(|&i| self.runnable(i)).count()
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
                Ok(_) => this.threads.fetch_add(1, Ordering::Release),
                Err(()) if i == 0 => return None,
                Err(()) => 0,
            };
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
            self.wake(&st, 0);
            self.notify_rooms(&st);
            return;
        }
        let deadline = Instant::now() + FULL_WAIT;
        let bytes = batch.iter().map(|t| t.contents.len()).sum();
        if bytes < WHOLE_BELOW {
            // Small: one `sendmmsg` of the whole batch, not one per lane.
            let mut job = st.spare.pop().unwrap_or_default();
            drop(st);
            std::mem::swap(&mut job.batch, batch);
            std::mem::swap(&mut job.forwards, forwards);
            job.bytes = bytes;
            let st = self.lock();
            drop(self.enqueue(st, WHOLE_LANE, job, deadline, true));
            return;
        }
        let mut parts: [Job; LANES] = std::array::from_fn(|_| st.spare.pop().unwrap_or_default());
        drop(st);
        split(batch, forwards, &mut parts);
        let mut st = self.lock();
        for (lane, job) in parts.into_iter().enumerate() {
            if job.batch.is_empty() {
                self.keep(&mut st, job);
            } else {
                st = self.enqueue(st, lane, job, deadline, false);
            }
        }
    }

    /// Queues `job` on `lane` (waiting for room until `deadline`, else dropping it); `whole`:
    /// it holds destinations of every lane.
    fn enqueue<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        lane: usize,
        mut job: Job,
        deadline: Instant,
        whole: bool,
    ) -> MutexGuard<'a, State> {
        loop {
            let l = &st.lanes[lane];
            let fits = l.jobs.len() < MAX_JOBS && l.bytes + job.bytes <= MAX_BYTES;
            if (fits || l.jobs.is_empty()) && !st.closed {
                break;
            }
            // Rather than wait, send this lane if nobody does (the thread has not run yet,
            // sends the other lane, or is gone), else another lane nobody sends.
            let free = if st.runnable(lane) {
                Some(lane)
            } else {
                st.free_lane()
            };
            if let Some(free) = free {
                st = self.send_lane(st, free);
                continue;
            }
            if st.closed && st.lanes.iter().all(Lane::idle) {
                // The threads are gone and nothing is queued: the room sends its part itself.
                drop(st);
                let job = self.send(job);
                st = self.lock();
                self.keep(&mut st, job);
                return st;
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
        job.after = [0; LANES];
        if whole {
            for j in (0..LANES).filter(|&j| j != lane) {
                job.after[j] = st.lanes[j].queued;
            }
        } else if lane != WHOLE_LANE {
            job.after[WHOLE_LANE] = st.whole_mark;
        }
        let l = &mut st.lanes[lane];
        l.bytes += job.bytes;
        l.queued += 1;
        l.jobs.push_back(job);
        if whole {
            st.whole_mark = st.lanes[lane].queued;
        }
        self.metrics.udp_send_handoffs.inc();
        if st.parked > 0 && st.runnable(lane) {
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
        loop {
            st.lanes[lane].sending = true;
            let Some(job) = st.lanes[lane].jobs.pop_front() else {
                break;
            };
            st.lanes[lane].bytes -= job.bytes;
            drop(st);
            let job = self.send(job);
            st = self.lock();
            st.lanes[lane].done += 1;
            self.keep(&mut st, job);
            st.lanes[lane].sending = false;
            if !st.runnable(lane) {
                break;
            }
        }
        st.lanes[lane].sending = false;
        // A finished whole batch may free the other lanes' parts, and theirs a whole batch.
        self.wake(&st, 0);
        self.notify_rooms(&st);
        st
    }

    /// Wakes a parked thread per runnable lane, but for `taken` of them (the caller's).
    fn wake(&self, st: &State, taken: usize) {
        if st.parked == 0 {
            return;
        }
        let ready = st.runnable_lanes().saturating_sub(taken);
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
                st.lanes[lane].done += 1;
                if let Ok(job) = sent {
                    self.keep(&mut st, job);
                }
                // This thread takes one runnable lane next; a parked one may take another.
                self.wake(&st, 1);
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
