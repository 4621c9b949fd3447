//! A token bucket: the one rate limit used for signalling messages, chat and Q&A, and the room API.

use std::time::Instant;

/// Allows `per_sec` events per second on average and bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(per_sec: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            per_sec,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let t = Instant::now();
        let mut b = TokenBucket::new(2.0, 3.0, t);
        assert!((0..3).all(|_| b.allow(t)));
        assert!(!b.allow(t));
        assert!(!b.allow(t + Duration::from_millis(400)));
        assert!(b.allow(t + Duration::from_millis(900)));
        // Never more than the burst, however long it rested.
        let later = t + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.allow(later)).count(), 3);
    }
}
