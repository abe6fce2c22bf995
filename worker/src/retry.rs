//! The one place that decides how long to wait before trying again: exponential backoff
//! with full jitter, never less than what the server asked for (Retry-After,
//! BackOffMilliseconds, "Suggested Backoff Time").

use mailhaul_proto::ErrorClass;
use rand::Rng;
use std::time::Duration;

/// Attempts before a task that keeps failing transiently is given up (dead-lettered).
pub const MAX_ATTEMPTS: u32 = 8;

/// The backoff policy.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay cap for the first retry.
    pub base: Duration,
    /// Delay cap for any retry.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// How long to wait before attempt `attempt + 1` after a failure of `class`;
    /// `None` if the failure is permanent or the attempts are used up.
    pub fn delay(&self, class: ErrorClass, attempt: u32) -> Option<Duration> {
        if attempt + 1 >= MAX_ATTEMPTS {
            return None;
        }
        let cap = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let jittered = rand::rng().random_range(Duration::ZERO..=cap);
        match class {
            ErrorClass::Permanent => None,
            ErrorClass::Transient => Some(jittered),
            // The server's hint is a floor: retrying sooner only earns another throttle.
            ErrorClass::Throttled(hint) => Some(hint.max(jittered)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_never_retries() {
        assert_eq!(Backoff::default().delay(ErrorClass::Permanent, 0), None);
    }

    #[test]
    fn attempts_run_out() {
        let b = Backoff::default();
        assert!(b.delay(ErrorClass::Transient, MAX_ATTEMPTS - 2).is_some());
        assert_eq!(b.delay(ErrorClass::Transient, MAX_ATTEMPTS - 1), None);
    }

    #[test]
    fn transient_delays_stay_under_the_exponential_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        for attempt in 0..6 {
            let cap = Duration::from_secs(1 << attempt).min(b.max);
            for _ in 0..200 {
                let d = b.delay(ErrorClass::Transient, attempt).expect("retries");
                assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
            }
        }
    }

    #[test]
    fn throttling_waits_at_least_the_hint() {
        let hint = Duration::from_secs(42);
        for attempt in 0..5 {
            let d = Backoff::default()
                .delay(ErrorClass::Throttled(hint), attempt)
                .expect("retries");
            assert!(d >= hint);
        }
    }
}
