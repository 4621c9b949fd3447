//! A fixed-size log-linear histogram of one-way delays: constant memory, cheap to copy.
//!
//! The bot records a delay for every packet it receives. A growing `Vec` of samples made every
//! stats snapshot copy megabytes; this keeps ≈ 6 % precision (16 buckets per power of two, exact
//! below 64 µs) in 1.6 KiB whatever the packet count, and two snapshots subtract to give the
//! distribution of a measurement window.

/// Values below this are counted exactly, one bucket each.
const EXACT: u64 = 64;
/// Sub-buckets per power of two above `EXACT` (4 mantissa bits).
const SUB: u64 = 16;
/// Powers of two covered above `EXACT`: up to 2^26 µs ≈ 67 s; larger values land in the last.
const OCTAVES: u64 = 20;
const BUCKETS: usize = (EXACT + OCTAVES * SUB) as usize;

/// Counts of delays in microseconds.
#[derive(PartialEq, Eq)]
pub struct DelayHistogram {
    counts: Box<[u32; BUCKETS]>,
    total: u64,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

impl Clone for DelayHistogram {
    fn clone(&self) -> Self {
        DelayHistogram {
            counts: self.counts.clone(),
            total: self.total,
        }
    }

    /// Reuses the counts' memory, and copies nothing between two empty histograms (a bot's
    /// stats copy refreshes one per track 20 times a second, most of them never filled).
    fn clone_from(&mut self, source: &Self) {
        if self.total != 0 || source.total != 0 {
            self.counts.clone_from(&source.counts);
            self.total = source.total;
        }
    }
}

impl std::fmt::Debug for DelayHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayHistogram")
            .field("count", &self.total)
            .field("p50_us", &self.quantile(0.5))
            .field("p99_us", &self.quantile(0.99))
            .finish()
    }
}

fn bucket_of(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    let octave = 63 - u64::from(us.leading_zeros()); // ≥ 6
    let sub = (us >> (octave - 4)) & (SUB - 1);
    let i = EXACT + (octave - 6) * SUB + sub;
    i.min(BUCKETS as u64 - 1) as usize
}

/// The smallest value that lands in bucket `i`.
fn floor_of(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let octave = (i - EXACT) / SUB + 6;
    let sub = (i - EXACT) % SUB;
    (1 << octave) | (sub << (octave - 4))
}

impl DelayHistogram {
    /// Counts one delay.
    pub fn record(&mut self, us: u64) {
        let b = &mut self.counts[bucket_of(us)];
        *b = b.saturating_add(1);
        self.total += 1;
    }

    /// How many delays were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &DelayHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
    }

    /// What was counted since `earlier` (a previous snapshot of this histogram).
    pub fn since(&self, earlier: &DelayHistogram) -> DelayHistogram {
        let mut d = DelayHistogram::default();
        for (i, (a, b)) in self.counts.iter().zip(earlier.counts.iter()).enumerate() {
            d.counts[i] = a.saturating_sub(*b);
        }
        d.total = d.counts.iter().map(|c| u64::from(*c)).sum();
        d
    }

    /// The delay at quantile `q` (0.0–1.0): the lower edge of its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(floor_of(i));
            }
        }
        Some(floor_of(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for us in 0..200_000u64 {
            let b = bucket_of(us);
            assert!(b >= last);
            last = b;
            let lo = floor_of(b);
            assert!(lo <= us, "{us} in bucket starting at {lo}");
            // Within one sub-bucket: at most 1/16 below the value.
            assert!(us - lo <= us / 16, "{us} vs {lo}");
        }
    }

    #[test]
    fn quantiles_and_windows() {
        let mut h = DelayHistogram::default();
        for us in 1..=100 {
            h.record(us * 100);
        }
        let p50 = h.quantile(0.5).expect("non-empty");
        assert!((4_700..=5_000).contains(&p50), "{p50}");
        let before = h.clone();
        for _ in 0..10 {
            h.record(30);
        }
        let window = h.since(&before);
        assert_eq!(window.count(), 10);
        assert_eq!(window.quantile(0.99), Some(30));
        assert_eq!(DelayHistogram::default().quantile(0.5), None);
        // Huge values saturate into the last bucket instead of panicking.
        h.record(u64::MAX);
        assert!(h.quantile(1.0).is_some());
    }
}
