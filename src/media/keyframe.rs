//! Keyframe requests toward a publisher: coalesced and throttled.
//!
//! Many subscribers asking at once (a join burst, a loss burst) must become one PLI, and a
//! publisher must not be asked again before it could have answered.

use std::time::{Duration, Instant};

/// Settings for keyframe requests.
#[derive(Debug, Clone, Copy)]
pub struct KeyframeConfig {
    /// At most one request per track in this interval.
    pub min_interval: Duration,
}

impl Default for KeyframeConfig {
    fn default() -> Self {
        KeyframeConfig {
            min_interval: Duration::from_millis(300),
        }
    }
}

/// Per-track throttle for keyframe requests.
#[derive(Debug, Clone, Default)]
pub struct KeyframeThrottle {
    last: Option<Instant>,
}

impl KeyframeThrottle {
    /// Whether a request should go out now; records it if so.
    pub fn should_request(&mut self, now: Instant, config: &KeyframeConfig) -> bool {
        match self.last {
            Some(at) if now.saturating_duration_since(at) < config.min_interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_within_interval() {
        let c = KeyframeConfig::default();
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        assert!(k.should_request(t0, &c));
        assert!(!k.should_request(t0 + Duration::from_millis(10), &c));
        assert!(!k.should_request(t0 + Duration::from_millis(299), &c));
        assert!(k.should_request(t0 + Duration::from_millis(300), &c));
    }
}
