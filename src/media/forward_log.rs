//! When the forwarded copies the router has put out arrived: the room task takes them with
//! their send batch, and the thread that hands that batch to the kernel turns each into an
//! arrival → send delay (`confab_forward_delay_seconds`, see `server::forward_delay`).
//!
//! One entry per fan-out (its copies sent at once), one per copy the lean pacer releases,
//! and on the str0m path one per fan-out written into the subscribers' `Rtc`s, counted out at
//! the next timeout pass that drains them. str0m's own pacer may hold a written copy past
//! that pass: on that path the delay is a lower bound. Copies a lean room's subscriber sends
//! through str0m (its keys not yet known) are not logged. Off unless the room task asks
//! ([`Router::log_forwards`]); bounded in entries.

use super::config::SendPath;
use super::router::Router;
use std::time::Instant;

/// Entries kept between two takes (in each list); past it, new ones are counted in [`ForwardLog::missed`]
/// (a room task takes them after every input, so only a log nobody reads fills).
pub const MAX_ENTRIES: usize = 4096;

/// Arrival times of forwarded copies not yet taken, as (arrival, copies).
#[derive(Debug, Default)]
pub struct ForwardLog {
    on: bool,
    /// Copies written into str0m count only once a timeout drains them.
    str0m: bool,
    out: Vec<(Instant, u32)>,
    /// Of those, the copies the lean pacer held.
    paced: Vec<(Instant, u32)>,
    written: Vec<(Instant, u32)>,
    /// Copies not logged because the log was full.
    pub missed: u64,
}

impl ForwardLog {
    /// One fan-out of a packet that arrived at `arrival`: `now` copies put out at once,
    /// `later` marked due (written to str0m, or held by the lean pacer, logged on release).
    pub fn fanned_out(&mut self, arrival: Instant, now: u32, later: u32) {
        if !self.on {
            return;
        }
        if now > 0 {
            push(&mut self.out, &mut self.missed, arrival, now);
        }
        if later > 0 && self.str0m {
            push(&mut self.written, &mut self.missed, arrival, later);
        }
    }

    /// One copy the lean pacer released.
    pub fn released(&mut self, arrival: Instant) {
        if self.on {
            push(&mut self.paced, &mut self.missed, arrival, 1);
        }
    }

    /// Hands over (arrival, copies, whether the lean pacer held them) for every copy put out
    /// since the last take: call it when those copies are sent.
    pub fn take(&mut self, mut f: impl FnMut(Instant, u32, bool)) {
        for (list, held) in [(&mut self.out, false), (&mut self.paced, true)] {
            for &(at, n) in list.iter() {
                f(at, n, held);
            }
            list.clear();
        }
    }

    /// A timeout pass drained every subscriber str0m copies were written to.
    pub fn drained(&mut self) {
        if self.on {
            // `drain` keeps the list's allocation for the next pass (`mem::take` would not).
            for (at, n) in self.written.drain(..) {
                push(&mut self.out, &mut self.missed, at, n);
            }
        }
    }
}

fn push(log: &mut Vec<(Instant, u32)>, missed: &mut u64, at: Instant, n: u32) {
    let full = log.len() >= MAX_ENTRIES;
    match log.last_mut() {
        Some((last, count)) if *last == at => *count += n,
        _ if full => *missed += u64::from(n),
        _ => log.push((at, n)),
    }
}

impl Router {
    /// Starts logging forwarded copies' arrival times for [`Self::take_forwards`].
    pub fn log_forwards(&mut self) {
        self.forward_log.on = true;
        self.forward_log.str0m = self.config.send_path == SendPath::Str0m;
    }

    /// Copies put out (or released by the lean pacer) since the last take: how big the
    /// room's next send batch is, about.
    pub fn forwards_pending(&self) -> u32 {
        let log = &self.forward_log;
        log.out.iter().chain(&log.paced).map(|&(_, n)| n).sum()
    }

    /// [`ForwardLog::take`] of the room's log.
    pub fn take_forwards(&mut self, f: impl FnMut(Instant, u32, bool)) {
        self.forward_log.take(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn logs_only_when_on_merges_runs_and_counts_str0m_writes_once_drained() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        let mut log = ForwardLog::default();
        log.fanned_out(t0, 5, 0);
        assert!(log.out.is_empty());
        log.on = true;
        log.fanned_out(t0, 5, 3);
        log.released(t0);
        log.released(t1);
        log.released(t1);
        assert_eq!(log.out, vec![(t0, 5)]);
        assert_eq!(log.paced, vec![(t0, 1), (t1, 2)]);
        log.str0m = true;
        log.fanned_out(t1, 0, 4);
        assert_eq!(log.out.len(), 1);
        log.drained();
        assert_eq!(log.out, vec![(t0, 5), (t1, 4)]);
        assert!(log.written.is_empty());
    }

    #[test]
    fn a_log_nobody_reads_stays_bounded() {
        let t0 = Instant::now();
        let mut log = ForwardLog {
            on: true,
            ..Default::default()
        };
        for i in 0..MAX_ENTRIES as u64 + 10 {
            log.fanned_out(t0 + Duration::from_micros(i), 2, 0);
        }
        assert_eq!(log.out.len(), MAX_ENTRIES);
        assert_eq!(log.missed, 20);
    }
}
