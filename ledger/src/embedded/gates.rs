//! Connection and request permits, adaptive limits and request budgets in the embedded
//! ledger. One process is their only user, so the semaphores and AIMD limits live in its
//! memory (the same rules as the PERMIT_ACQUIRE and ADAPT scripts); the budgets' token
//! buckets live in the database, so a restart does not hand out a fresh burst.

use super::EmbeddedLedger;
use super::store::now_ms;
use crate::permits::{permit_token, wait_for};
use crate::{Budget, Permit, PermitSpec, Result};
use rusqlite::{OptionalExtension as _, params};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An adaptive limit nobody touched for this long is forgotten (the Redis key's TTL).
const AIMD_IDLE: Duration = Duration::from_secs(1800);

/// The process's semaphores, by permit key.
#[derive(Debug, Default)]
pub(crate) struct Gates {
    sems: Mutex<HashMap<String, Sem>>,
}

#[derive(Debug, Default)]
struct Sem {
    holders: HashSet<String>,
    /// The adaptive limit, when throttling has lowered it, and when it last moved.
    adapted: Option<(f64, Instant)>,
    last_halved: Option<Instant>,
}

impl Sem {
    fn adapted(&mut self) -> Option<f64> {
        if self
            .adapted
            .is_some_and(|(_, at)| at.elapsed() >= AIMD_IDLE)
        {
            self.adapted = None;
            self.last_halved = None;
        }
        self.adapted.map(|(l, _)| l)
    }
}

impl Gates {
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut Sem) -> T) -> T {
        let mut sems = self.sems.lock().unwrap_or_else(|p| p.into_inner());
        f(sems.entry(key.to_owned()).or_default())
    }

    fn try_take(&self, key: &str, token: &str, limit: u32) -> bool {
        self.with(key, |s| {
            let mut limit = f64::from(limit);
            if let Some(a) = s.adapted() {
                limit = limit.min(a.floor()).max(1.0);
            }
            if s.holders.contains(token) || (s.holders.len() as f64) < limit {
                s.holders.insert(token.to_owned());
                true
            } else {
                false
            }
        })
    }

    /// Gives a permit back (called when a [`Permit`] is dropped).
    pub(crate) fn release(&self, key: &str, token: &str) {
        self.with(key, |s| s.holders.remove(token));
    }

    fn adapt(&self, key: &str, max: u32, throttled: bool, step: f64) -> f64 {
        self.with(key, |s| {
            let max = f64::from(max);
            let mut cur = s.adapted().unwrap_or(max);
            if throttled {
                if s.last_halved
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    cur = (cur / 2.0).max(1.0);
                    s.last_halved = Some(Instant::now());
                }
            } else {
                cur = (cur + step / cur).min(max);
            }
            s.adapted = Some((cur, Instant::now()));
            cur
        })
    }

    fn held(&self, key: &str) -> u64 {
        self.with(key, |s| s.holders.len() as u64)
    }
}

impl EmbeddedLedger {
    /// As the Redis ledger's: waits (polling, with jitter) for one of `spec.limit`
    /// permits, or the adapted limit if throttling lowered it.
    pub(crate) async fn acquire_permit(
        &self,
        spec: &PermitSpec,
        max_wait: Duration,
    ) -> Result<Option<Permit>> {
        let key = self.keys.permits(&spec.server, &spec.user);
        let token = permit_token();
        let got = wait_for(max_wait, || async {
            Ok(self.gates.try_take(&key, &token, spec.limit))
        })
        .await?;
        Ok(got.then(|| Permit::embedded(key, token, self.gates.clone())))
    }

    /// Gives a permit back (dropping it does the same).
    pub(crate) fn release_permit(&self, permit: Permit) {
        drop(permit);
    }

    /// As the Redis ledger's ADAPT script.
    pub(crate) fn adapt_limit(&self, spec: &PermitSpec, throttled: bool, step: f64) -> f64 {
        let key = self.keys.permits(&spec.server, &spec.user);
        self.gates.adapt(&key, spec.limit, throttled, step)
    }

    /// Permits held now for `spec`.
    pub(crate) fn permits_held(&self, spec: &PermitSpec) -> u64 {
        self.gates
            .held(&self.keys.permits(&spec.server, &spec.user))
    }

    /// As the Redis ledger's BUDGET script: both buckets admit (and are charged) or the
    /// wait until they would is returned, charging nothing.
    pub(crate) async fn spend_budget(
        &self,
        spec: &PermitSpec,
        budget: &Budget,
        bytes: u64,
    ) -> Result<Duration> {
        let key = format!("{}:budget", self.keys.permits(&spec.server, &spec.user));
        let (rcap, rrate) = budget.requests.bucket();
        let (bcap, brate) = budget.bytes.bucket();
        let wait = self
            .store
            .write(move |tx| {
                let now = now_ms();
                let rc = 1f64.min(rcap);
                let bc = (bytes as f64).min(bcap);
                let row: Option<(f64, f64, i64)> = tx
                    .query_row(
                        "SELECT r, b, ts FROM budgets WHERE key = ?1 AND expires > ?2",
                        params![key, now],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let (r, b, ts) = row.unwrap_or((rcap, bcap, now));
                let el = (now - ts).max(0) as f64;
                let mut r = rcap.min(r + el * rrate);
                let mut b = bcap.min(b + el * brate);
                let mut wait = 0f64;
                if r >= rc && b >= bc {
                    r -= rc;
                    b -= bc;
                } else {
                    wait = ((rc - r) / rrate).max((bc - b) / brate);
                }
                let keep = ((rcap / rrate).max(bcap / brate)).ceil() as i64 * 2 + 1000;
                tx.execute(
                    "INSERT INTO budgets(key, r, b, ts, expires) VALUES(?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT(key) DO UPDATE SET r = excluded.r, b = excluded.b, ts = excluded.ts, expires = excluded.expires",
                    params![key, r, b, now, now + keep],
                )?;
                Ok(wait.ceil() as u64)
            })
            .await?;
        Ok(Duration::from_millis(wait))
    }
}
