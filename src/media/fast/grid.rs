//! One time grid per room for the lean path's periodic work, so that it wakes the room once.
//!
//! Every subscriber has work on a period: its estimator's tick (every 50 ms), its sender
//! reports and its receiver reports (every second). Each scheduled from its own `now` drifts
//! onto a phase of its own, and at 1 → 100 the room woke ~114 times a second for a few peers
//! each time, and sent their reports alone. On a grid of [`SLOT`]s counted from the room's
//! first peer, every deadline is a slot boundary: all the ticks of a slot, and the reports
//! that fall in it, are handled in one wake and leave in one batch. A deadline keeps its
//! phase ([`Grid::next`] counts from the deadline served, not from the late `now`), so a
//! period stays a period however late the wake. Nothing here must be prompt: NACKs, PLI and
//! paced video are not on the grid. A slot keeps a wake of its own: doing its work early in a
//! wake the room has for media moved the estimator's ticks, which changed when a capped
//! viewer's allocation saw its estimate (a virtual-time test then climbed a layer).

use std::time::{Duration, Instant};

/// The grid's step: the estimator's tick period (its contract: 25–100 ms), so every tick of
/// the room falls in the same wake, and each report lands on a tick's wake.
pub const SLOT: Duration = Duration::from_millis(50);

/// Slot boundaries counted from a room's base instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    base: Instant,
}

impl Grid {
    /// A grid whose boundaries are `base` plus whole slots.
    pub fn new(base: Instant) -> Self {
        Grid { base }
    }

    /// The first boundary at or after `t` (the base itself for anything before it).
    pub fn ceil(&self, t: Instant) -> Instant {
        let Some(since) = t.checked_duration_since(self.base) else {
            return self.base;
        };
        let slot = SLOT.as_nanos();
        let slots = since.as_nanos().div_ceil(slot);
        self.base + Duration::from_nanos((slots * slot).min(u128::from(u64::MAX)) as u64)
    }

    /// The first deadline of work with `period` scheduled at `now`: a boundary in
    /// `(now + period - SLOT, now + period]`, so never later than `period` from now.
    pub fn first(&self, now: Instant, period: Duration) -> Instant {
        let early = now + period.saturating_sub(SLOT);
        let at = self.ceil(early);
        if at == early {
            at + SLOT
        } else {
            at
        }
    }

    /// The deadline after `served` (a boundary, reached at `now`): one `period` on, same
    /// phase; when the wake came more than a period late, the first boundary due after `now`
    /// instead (no burst of catch-up wakes).
    pub fn next(&self, served: Instant, now: Instant, period: Duration) -> Instant {
        let on = served + period;
        if on > now {
            on
        } else {
            self.first(now, period)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fall_on_boundaries_and_keep_their_period_through_late_wakes() {
        let t0 = Instant::now();
        let g = Grid::new(t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let on_grid = |t: Instant| {
            t.duration_since(t0)
                .as_nanos()
                .is_multiple_of(SLOT.as_nanos())
        };
        assert_eq!(g.ceil(ms(0)), ms(0));
        assert_eq!(g.ceil(ms(1)), ms(50));
        assert_eq!(g.ceil(ms(50)), ms(50));
        assert_eq!(g.ceil(t0 - Duration::from_millis(5)), t0, "before the base");
        // Scheduled at any moment: a boundary no later than one period, and more than a
        // period less a slot away.
        for n in [0u64, 1, 49, 50, 51, 977, 1_000] {
            for period in [SLOT, Duration::from_secs(1)] {
                let at = g.first(ms(n), period);
                assert!(on_grid(at), "{n} {period:?}");
                assert!(
                    at <= ms(n) + period && at > ms(n) + period - SLOT,
                    "{n} {period:?}"
                );
            }
        }
        // Served a little late or right on time: the same phase, one period on.
        assert_eq!(g.next(ms(100), ms(100), SLOT), ms(150));
        assert_eq!(g.next(ms(100), ms(149), SLOT), ms(150));
        assert_eq!(
            g.next(ms(1_000), ms(1_030), Duration::from_secs(1)),
            ms(2_000)
        );
        // More than a period late: the next boundary due after now, not a burst.
        let at = g.next(ms(100), ms(260), SLOT);
        assert_eq!(at, ms(300));
        assert!(at > ms(260));
    }
}
