//! Exponential backoff with jitter, as the Java client computes it for
//! `reconnect.backoff.ms`/`reconnect.backoff.max.ms` and
//! `retry.backoff.ms`/`retry.backoff.max.ms`.
//!
//! The n-th delay (n from 0) is `initial * 2^n`, capped at `max`, then
//! multiplied by a uniform random factor in `[0.8, 1.2]`. When `max <= initial`
//! the delay is constant (still jittered). Sans-IO: the caller supplies time.

use std::time::{Duration, Instant};

/// Relative jitter applied to each delay (±20%, as in the Java client).
pub const JITTER: f64 = 0.2;

/// The backoff state of one thing being retried (a broker connection, a
/// metadata refresh, a request).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff starting at `initial` and growing to at most `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Backoff::with_seed(initial, max, seed)
    }

    /// As [`Backoff::new`] with a fixed random seed (for tests).
    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// Consecutive failures recorded since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt, without jitter.
    pub fn base_delay(&self) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let exp = self.failures.saturating_sub(1).min(32);
        let factor = 2f64.powi(exp as i32);
        let d = self.initial.as_secs_f64() * factor;
        Duration::from_secs_f64(d.min(self.max.as_secs_f64()))
    }

    /// Records a failure and returns how long to wait before trying again.
    pub fn on_failure(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base = self.base_delay();
        let r = self.next_unit();
        let factor = 1.0 - JITTER + 2.0 * JITTER * r;
        Duration::from_secs_f64(base.as_secs_f64() * factor)
    }

    /// Records a success: the next failure starts from `initial` again.
    pub fn on_success(&mut self) {
        self.failures = 0;
    }

    /// A uniform number in `[0, 1)` (splitmix64).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A [`Backoff`] that also remembers until when the next attempt must wait.
#[derive(Debug, Clone)]
pub struct BackoffTimer {
    backoff: Backoff,
    not_before: Option<Instant>,
}

impl BackoffTimer {
    pub fn new(initial: Duration, max: Duration) -> Self {
        BackoffTimer {
            backoff: Backoff::new(initial, max),
            not_before: None,
        }
    }

    /// When the next attempt may start (`None`: now).
    pub fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Records a failure at `now`.
    pub fn fail(&mut self, now: Instant) -> Duration {
        let d = self.backoff.on_failure();
        self.not_before = Some(now + d);
        d
    }

    /// Records a success.
    pub fn succeed(&mut self) {
        self.backoff.on_success();
        self.not_before = None;
    }

    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::with_seed(Duration::from_millis(50), Duration::from_millis(1000), 7);
        let bases: Vec<u128> = (0..8)
            .map(|_| {
                let d = b.on_failure();
                let base = b.base_delay();
                let lo = base.as_secs_f64() * (1.0 - JITTER);
                let hi = base.as_secs_f64() * (1.0 + JITTER);
                assert!(
                    d.as_secs_f64() >= lo - 1e-9 && d.as_secs_f64() <= hi + 1e-9,
                    "{d:?} outside jitter of {base:?}"
                );
                base.as_millis()
            })
            .collect();
        assert_eq!(bases, vec![50, 100, 200, 400, 800, 1000, 1000, 1000]);
        b.on_success();
        b.on_failure();
        assert_eq!(b.base_delay(), Duration::from_millis(50));
    }

    #[test]
    fn jitter_actually_varies() {
        let mut b = Backoff::with_seed(Duration::from_millis(100), Duration::from_millis(100), 42);
        let ds: std::collections::HashSet<u128> =
            (0..20).map(|_| b.on_failure().as_micros()).collect();
        assert!(ds.len() > 10, "jitter should spread delays: {ds:?}");
    }

    #[test]
    fn max_below_initial_means_constant() {
        let mut b = Backoff::with_seed(Duration::from_millis(200), Duration::from_millis(10), 1);
        for _ in 0..5 {
            b.on_failure();
            assert_eq!(b.base_delay(), Duration::from_millis(200));
        }
    }

    #[test]
    fn timer_tracks_not_before() {
        let mut t = BackoffTimer::new(Duration::from_millis(50), Duration::from_secs(1));
        let now = Instant::now();
        assert!(t.not_before().is_none());
        let d = t.fail(now);
        assert_eq!(t.not_before(), Some(now + d));
        t.succeed();
        assert!(t.not_before().is_none());
    }
}
