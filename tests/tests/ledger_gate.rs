//! The per-mailbox gate's ledger side, against a real Redis and the embedded ledger
//! (one test body each): request and byte budgets
//! never let more through than the service's limit allows, and the adaptive request
//! limit (AIMD) halves on throttling, once per storm, grows back slowly, and bounds how
//! many permits can be held.

use mailhaul_ledger::{Budget, Ledger, PermitSpec, Rate, StateDir};
use mailhaul_tests::kit;
use std::time::{Duration, Instant};

/// Clock granularity of the buckets (milliseconds, rounded up).
const SLACK: Duration = Duration::from_millis(2);

/// A fresh ledger: Redis, or embedded in a temp state directory (kept with it).
async fn ledger(
    embedded: bool,
    test: &str,
) -> anyhow::Result<(Ledger, Option<(tempfile::TempDir, StateDir)>)> {
    if embedded {
        let dir = tempfile::tempdir()?;
        let state = StateDir::lock(dir.path())?;
        let l = Ledger::open_embedded(&state)?;
        return Ok((l, Some((dir, state))));
    }
    let l = Ledger::connect(&kit::shared().redis_url, &kit::unique_namespace(test)).await?;
    Ok((l, None))
}

macro_rules! on_both {
    ($($name:ident),*) => {
        $(
            mod $name {
                #[tokio::test]
                async fn redis() -> anyhow::Result<()> { super::$name(false).await }
                #[tokio::test]
                async fn embedded() -> anyhow::Result<()> { super::$name(true).await }
            }
        )*
    };
}

on_both!(
    budgets_admit_a_tenth_at_once_then_pace_the_rest,
    throttling_halves_the_request_limit_once_per_storm_and_it_grows_back
);

fn spec() -> PermitSpec {
    PermitSpec {
        server: "graph.example:443".into(),
        user: "bob@contoso.com".into(),
        limit: 4,
    }
}

async fn budgets_admit_a_tenth_at_once_then_pace_the_rest(embedded: bool) -> anyhow::Result<()> {
    let (l, _dir) = ledger(embedded, "budget").await?;
    let budget = Budget {
        requests: Rate {
            amount: 100,
            window: Duration::from_secs(10),
        },
        bytes: Rate {
            amount: 1_000_000,
            window: Duration::from_secs(10),
        },
    };
    // The burst is 10 % of each limit: 10 requests (or 100 kB) at once, no more. The
    // buckets refill in real time (Redis TIME, the embedded store's clock), so every
    // lower bound below subtracts what the clock did meanwhile: on a loaded machine the
    // burst itself may take longer than a refill step.
    let started = Instant::now();
    for i in 0..10 {
        let wait = l.spend_budget(&spec(), &budget, 100).await?;
        assert_eq!(wait, Duration::ZERO, "request {i} of the burst had to wait");
    }
    let wait = l.spend_budget(&spec(), &budget, 100).await?;
    // Refill is 90 % of the average rate: 9 requests per second → ~111 ms per request.
    let least = Duration::from_millis(111).saturating_sub(started.elapsed() + SLACK);
    assert!(
        wait >= least && wait <= Duration::from_millis(112),
        "11th request told to wait {wait:?} (at least {least:?})"
    );
    // Bytes bind too: a fresh mailbox, 100 kB burst, then 90 kB/s.
    let other = PermitSpec {
        user: "carol@contoso.com".into(),
        ..spec()
    };
    let started = Instant::now();
    assert_eq!(
        l.spend_budget(&other, &budget, 100_000).await?,
        Duration::ZERO
    );
    let wait = l.spend_budget(&other, &budget, 45_000).await?;
    let least = Duration::from_millis(500).saturating_sub(started.elapsed() + SLACK);
    assert!(
        wait >= least && wait <= Duration::from_millis(501),
        "45 kB after a spent byte budget told to wait {wait:?} (at least {least:?})"
    );
    // Nothing was deducted by the refusal: after the wait it is admitted.
    tokio::time::sleep(wait).await;
    assert_eq!(
        l.spend_budget(&other, &budget, 45_000).await?,
        Duration::ZERO
    );
    Ok(())
}

async fn throttling_halves_the_request_limit_once_per_storm_and_it_grows_back(
    embedded: bool,
) -> anyhow::Result<()> {
    let (l, _dir) = ledger(embedded, "aimd").await?;
    let s = spec();
    assert_eq!(l.adapt_limit(&s, true, 0.1).await?, 2.0);
    // The same storm seen by other workers within a second does not halve it again.
    assert_eq!(l.adapt_limit(&s, true, 0.1).await?, 2.0);
    // Two permits can be held now, not four.
    let a = l.acquire_permit(&s, Duration::from_secs(1)).await?;
    let b = l.acquire_permit(&s, Duration::from_secs(1)).await?;
    let c = l.acquire_permit(&s, Duration::from_millis(300)).await?;
    assert!(a.is_some() && b.is_some(), "the adapted limit is 2");
    assert!(
        c.is_none(),
        "a third permit was granted under an adapted limit of 2"
    );
    // Successes grow it by step/limit each: slowly, and never past the configured 4.
    let mut limit = 2.0;
    let mut successes = 0;
    while limit < 3.0 {
        limit = l.adapt_limit(&s, false, 0.1).await?;
        successes += 1;
    }
    assert!(successes >= 15, "grew from 2 to 3 in {successes} successes");
    for _ in 0..500 {
        limit = l.adapt_limit(&s, false, 0.1).await?;
    }
    assert_eq!(limit, 4.0);
    for p in [a, b].into_iter().flatten() {
        l.release_permit(p).await?;
    }
    Ok(())
}
