//! Per-mailbox Outlook throttling as Graph documents it (throttling-limits, "Outlook
//! service limits"): a concurrency gate (4), a sliding 10-minute request budget
//! (10,000) and a sliding 5-minute upload budget (150 MB of POST/PATCH/PUT bodies).
//!
//! Invariants: every request that reaches a mailbox is counted, throttled or not,
//! because the docs say usage keeps counting while throttled; only admitted requests
//! hold a concurrency slot and spend upload bytes; `peak` is the highest number of
//! admitted requests in flight at once.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Which documented limit a request ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    Concurrency,
    Requests,
    IncomingBytes,
}

impl Limit {
    /// The message Outlook puts in the `ApplicationThrottled` error (the request-count
    /// wording is not documented; the other two are seen in the wild).
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Concurrency => "Application is over its MailboxConcurrency limit.",
            Self::Requests => "Application is over its MailboxRequests limit.",
            Self::IncomingBytes => "Application is over its IncomingBytes limit.",
        }
    }
}

/// A refusal: which limit, and when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Throttled {
    pub(crate) limit: Limit,
    pub(crate) retry_after: Duration,
}

/// The limits, copied from the config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) concurrency: u32,
    pub(crate) requests: u32,
    pub(crate) request_window: Duration,
    pub(crate) upload_bytes: u64,
    pub(crate) upload_window: Duration,
}

/// Counters of one mailbox.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    pub(crate) in_flight: u32,
    pub(crate) peak: u32,
    pub(crate) total: u64,
    requests: VecDeque<Instant>,
    uploads: VecDeque<(Instant, u64)>,
}

/// Seconds for `Retry-After`: whole seconds, rounded up, at least 1.
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

impl Throttle {
    /// Counts a request and decides whether it may run; on success the caller holds a
    /// concurrency slot until [`Throttle::release`].
    pub(crate) fn admit(
        &mut self,
        limits: &Limits,
        now: Instant,
        upload: u64,
    ) -> Result<(), Throttled> {
        self.total += 1;
        while self
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limits.request_window)
        {
            self.requests.pop_front();
        }
        while self
            .uploads
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= limits.upload_window)
        {
            self.uploads.pop_front();
        }
        self.requests.push_back(now);
        if self.requests.len() > limits.requests as usize {
            let oldest = self.requests.front().copied().unwrap_or(now);
            let wait = limits
                .request_window
                .saturating_sub(now.duration_since(oldest));
            return Err(Throttled {
                limit: Limit::Requests,
                retry_after: whole_seconds(wait),
            });
        }
        if self.in_flight >= limits.concurrency {
            return Err(Throttled {
                limit: Limit::Concurrency,
                retry_after: Duration::from_secs(1),
            });
        }
        if upload > 0 {
            let used: u64 = self.uploads.iter().map(|(_, b)| b).sum();
            if used + upload > limits.upload_bytes {
                // Come back when enough of the window has slid out to make room.
                let mut freed = 0;
                let mut wait = limits.upload_window;
                for (t, b) in &self.uploads {
                    freed += b;
                    if used - freed + upload <= limits.upload_bytes {
                        wait = limits.upload_window.saturating_sub(now.duration_since(*t));
                        break;
                    }
                }
                return Err(Throttled {
                    limit: Limit::IncomingBytes,
                    retry_after: whole_seconds(wait),
                });
            }
            self.uploads.push_back((now, upload));
        }
        self.in_flight += 1;
        self.peak = self.peak.max(self.in_flight);
        Ok(())
    }

    /// Gives back a concurrency slot.
    pub(crate) fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            concurrency: 2,
            requests: 3,
            request_window: Duration::from_secs(600),
            upload_bytes: 100,
            upload_window: Duration::from_secs(300),
        }
    }

    #[test]
    fn concurrency_gate_counts_peak_and_refuses_the_extra_request() {
        let mut t = Throttle::default();
        let now = Instant::now();
        assert!(t.admit(&limits(), now, 0).is_ok());
        assert!(t.admit(&limits(), now, 0).is_ok());
        let err = t.admit(&limits(), now, 0).expect_err("must be refused");
        assert_eq!(err.limit, Limit::Concurrency);
        assert_eq!(t.peak, 2);
        assert_eq!(t.total, 3);
        t.release();
        t.release();
        assert_eq!(t.in_flight, 0);
    }

    #[test]
    fn request_budget_slides_and_counts_throttled_requests() {
        let mut t = Throttle::default();
        let start = Instant::now();
        for i in 0..3 {
            t.admit(&limits(), start + Duration::from_secs(i), 0)
                .expect("under budget");
            t.release();
        }
        let err = t
            .admit(&limits(), start + Duration::from_secs(10), 0)
            .expect_err("must be refused");
        assert_eq!(err.limit, Limit::Requests);
        assert_eq!(err.retry_after, Duration::from_secs(590));
        // Once the first three slid out, the throttled one still occupies the window.
        let later = start + Duration::from_secs(605);
        t.admit(&limits(), later, 0).expect("window slid");
    }

    #[test]
    fn upload_budget_refuses_until_bytes_slide_out() {
        let table = [(60_u64, true), (40, true), (1, false)];
        let mut t = Throttle::default();
        let now = Instant::now();
        for (bytes, ok) in table {
            let r = t.admit(&limits(), now, bytes);
            assert_eq!(r.is_ok(), ok, "{bytes} bytes");
            if r.is_ok() {
                t.release();
            } else {
                let e = r.expect_err("must be refused");
                assert_eq!(e.limit, Limit::IncomingBytes);
                assert_eq!(e.retry_after, Duration::from_secs(300));
            }
        }
    }
}
