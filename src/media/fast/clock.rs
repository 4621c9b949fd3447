//! Instants as nanoseconds on one process-wide scale, so per-copy time arithmetic is a
//! subtraction of integers.
//!
//! `Instant::saturating_duration_since` goes through std's signed `timespec` difference, ~55
//! instructions a call, and a forwarded copy made two of them (its sender's epoch, its pacer's
//! refill): ~110 of a copy's ~4,900 at 1 → 300 (callgrind). The fan-out now converts the
//! packet's arrival once ([`Now::of`]) and every copy subtracts `u64`s.
//!
//! The scale's zero is a day before the first instant converted, so an instant a test or the
//! simulator builds in the past (before that first one) still converts exactly; one earlier
//! still saturates to zero, which keeps `saturating_duration_since`'s answer for any pair
//! converted the same way (both saturated: zero, as the earlier-minus-later it then is).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How far before the first converted instant the scale starts.
const HEADROOM: Duration = Duration::from_secs(86_400);

static BASE: OnceLock<Instant> = OnceLock::new();

/// `t` in nanoseconds on the process's scale (see the module docs).
#[inline]
pub fn nanos(t: Instant) -> u64 {
    let base = *BASE.get_or_init(|| t.checked_sub(HEADROOM).unwrap_or(t));
    t.saturating_duration_since(base).as_nanos() as u64
}

/// A moment both ways: the `Instant` the rest of the code speaks, and its [`nanos`] for the
/// per-copy arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The moment.
    pub at: Instant,
    /// [`nanos`] of it.
    pub ns: u64,
}

impl Now {
    /// `at`, converted once.
    #[inline]
    pub fn of(at: Instant) -> Now {
        Now { at, ns: nanos(at) }
    }

    /// The time from `earlier` (in [`nanos`]) to this moment, zero if `earlier` is later:
    /// `Instant::saturating_duration_since`'s answer.
    #[inline]
    pub fn since(self, earlier: u64) -> Duration {
        Duration::from_nanos(self.ns.saturating_sub(earlier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_match_instants_including_the_past_and_saturation() {
        let t0 = Instant::now();
        let now = Now::of(t0 + Duration::from_millis(1500));
        assert_eq!(now.since(nanos(t0)), Duration::from_millis(1500));
        // An instant before the first one converted (a test's `t0 - x`) is still exact.
        let past = t0 - Duration::from_secs(3);
        assert_eq!(now.since(nanos(past)), Duration::from_millis(4500));
        // Later than now: zero, as `saturating_duration_since` says.
        let later = nanos(t0 + Duration::from_secs(2));
        assert_eq!(now.since(later), Duration::ZERO);
        assert_eq!(
            Now::of(t0 + Duration::from_nanos(7)).since(nanos(t0)),
            Duration::from_nanos(7)
        );
    }
}
