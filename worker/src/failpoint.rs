//! Crash failpoints for the exactly-once tests.
//!
//! `MAILHAUL_FAILPOINT=crash-after-append:N` makes the worker abort the whole process
//! right after its N-th successful APPEND and *before* recording it in the ledger — the
//! one window in which a duplicate could be born. Tests use it to prove the in-flight
//! lookup closes that window; a random SIGKILL only hits it by luck. Unset (the normal
//! case) it costs one relaxed atomic load per batch.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static CRASH_AFTER_APPEND: OnceLock<Option<u64>> = OnceLock::new();
static APPENDS: AtomicU64 = AtomicU64::new(0);

fn crash_after_append() -> Option<u64> {
    *CRASH_AFTER_APPEND.get_or_init(|| {
        let v = std::env::var("MAILHAUL_FAILPOINT").ok()?;
        let n = v.strip_prefix("crash-after-append:")?.parse().ok()?;
        tracing::warn!(
            after = n,
            "Failpoint armed: this worker will abort after that many appends."
        );
        Some(n)
    })
}

/// Called after an APPEND the target accepted, before it is recorded.
pub(crate) fn appended() {
    if let Some(n) = crash_after_append()
        && APPENDS.fetch_add(1, Ordering::Relaxed) + 1 >= n
    {
        eprintln!("failpoint crash-after-append:{n} reached; aborting");
        std::process::abort();
    }
}
