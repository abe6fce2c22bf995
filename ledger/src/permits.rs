//! Connection permits: a Redis semaphore per (server, login), global across every worker,
//! so all of them together stay under a server's per-user connection limit (Dovecot's
//! `mail_max_userip_connections` is 10 by default; Exchange IMAP about 16-20).
//!
//! Entries carry an expiry, renewed while held, so a worker killed with SIGKILL gives
//! its permits back within one TTL.

use crate::{RedisLedger, Result, scripts};
use rand::Rng;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Which semaphore, and how many may hold it.
#[derive(Debug, Clone)]
pub struct PermitSpec {
    /// `host:port` of the server.
    pub server: String,
    /// The login the connections are made as.
    pub user: String,
    /// How many connections the server allows for that login (across all workers).
    pub limit: u32,
}

/// A service's published limit: at most `amount` in any `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// How much (requests, or bytes).
    pub amount: u64,
    /// Per how long.
    pub window: Duration,
}

impl Rate {
    /// A token bucket that can never pass the limit in any window: 10 % of it as burst,
    /// refilled at 90 % of the average rate (burst + refill over one window = the limit).
    /// Returns (capacity, amount per millisecond).
    pub(crate) fn bucket(&self) -> (f64, f64) {
        let amount = self.amount.max(1) as f64;
        let ms = self.window.as_millis().max(1) as f64;
        (amount * 0.1, amount * 0.9 / ms)
    }
}

/// The request and upload budgets of one target mailbox (Graph: 10,000 requests per
/// 10 minutes, 150 MB uploaded per 5 minutes, per app and mailbox).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Requests.
    pub requests: Rate,
    /// Uploaded bytes.
    pub bytes: Rate,
}

/// A held permit. In Redis it is renewed in the background until released or dropped;
/// dropped without [`crate::Ledger::release_permit`] it lapses after one TTL. In the
/// embedded ledger (one process) dropping it gives it back at once.
#[derive(Debug)]
pub struct Permit {
    key: String,
    token: String,
    holder: Holder,
}

#[derive(Debug)]
enum Holder {
    /// The task renewing the Redis entry.
    Redis(JoinHandle<()>),
    /// The process's semaphores.
    Embedded(std::sync::Arc<crate::embedded::Gates>),
}

impl Permit {
    /// A permit held in the embedded ledger's semaphores.
    pub(crate) fn embedded(
        key: String,
        token: String,
        gates: std::sync::Arc<crate::embedded::Gates>,
    ) -> Permit {
        Permit {
            key,
            token,
            holder: Holder::Embedded(gates),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        match &self.holder {
            Holder::Redis(renewer) => renewer.abort(),
            Holder::Embedded(gates) => gates.release(&self.key, &self.token),
        }
    }
}

/// A fresh permit token.
pub(crate) fn permit_token() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Asks `take` for a permit until it says yes (`true`) or `max_wait` has passed, with
/// jittered exponential pauses, so waiting workers do not poll in lockstep.
pub(crate) async fn wait_for<F, Fut>(max_wait: Duration, mut take: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if take().await? {
            return Ok(true);
        }
        if started.elapsed() >= max_wait {
            return Ok(false);
        }
        let sleep = rand::rng().random_range(Duration::ZERO..=delay);
        tokio::time::sleep(sleep).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// How long a permit lives without renewal (Redis).
const PERMIT_TTL: Duration = Duration::from_secs(20);

impl RedisLedger {
    /// Waits until a permit is free, then takes it. Gives up with `None` after `max_wait`.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn acquire_permit(
        &self,
        spec: &PermitSpec,
        max_wait: Duration,
    ) -> Result<Option<Permit>> {
        let key = self.keys.permits(&spec.server, &spec.user);
        let token = permit_token();
        let got = wait_for(max_wait, || async {
            let got: i64 = scripts::PERMIT_ACQUIRE
                .key(&key)
                .key(format!("{key}:aimd"))
                .arg(&token)
                .arg(spec.limit)
                .arg(PERMIT_TTL.as_millis() as u64)
                .invoke_async(&mut self.con())
                .await?;
            Ok(got == 1)
        })
        .await?;
        if !got {
            return Ok(None);
        }
        let renewer = tokio::spawn(renew(self.clone(), key.clone(), token.clone()));
        Ok(Some(Permit {
            key,
            token,
            holder: Holder::Redis(renewer),
        }))
    }

    /// Gives a permit back at once.
    ///
    /// # Errors
    /// Redis errors (the permit then lapses by itself).
    pub async fn release_permit(&self, permit: Permit) -> Result<()> {
        if let Holder::Redis(renewer) = &permit.holder {
            renewer.abort();
        }
        let _: i64 = redis::cmd("ZREM")
            .arg(&permit.key)
            .arg(&permit.token)
            .query_async(&mut self.con())
            .await?;
        Ok(())
    }

    /// Adapts the semaphore's limit to the server's throttle signals (AIMD, global across
    /// workers): `throttled` halves it (at most once a second, never below 1); a success
    /// grows it by `step / limit`, back up to `spec.limit`. Returns the limit now in force.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn adapt_limit(&self, spec: &PermitSpec, throttled: bool, step: f64) -> Result<f64> {
        let key = format!("{}:aimd", self.keys.permits(&spec.server, &spec.user));
        let v: String = scripts::ADAPT
            .key(&key)
            .arg(spec.limit)
            .arg(if throttled { "dec" } else { "inc" })
            .arg(step)
            .invoke_async(&mut self.con())
            .await?;
        Ok(v.parse().unwrap_or(f64::from(spec.limit)))
    }

    /// Takes one request carrying `bytes` from the mailbox's request and byte budgets,
    /// or says how long to wait before asking again ([`Duration::ZERO`] = admitted).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn spend_budget(
        &self,
        spec: &PermitSpec,
        budget: &Budget,
        bytes: u64,
    ) -> Result<Duration> {
        let key = format!("{}:budget", self.keys.permits(&spec.server, &spec.user));
        let (rcap, rrate) = budget.requests.bucket();
        let (bcap, brate) = budget.bytes.bucket();
        let wait: u64 = scripts::BUDGET
            .key(&key)
            .arg(1)
            .arg(bytes)
            .arg(rcap)
            .arg(rrate)
            .arg(bcap)
            .arg(brate)
            .invoke_async(&mut self.con())
            .await?;
        Ok(Duration::from_millis(wait))
    }

    /// How many permits are held now for `spec` (for tests and `status`).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn permits_held(&self, spec: &PermitSpec) -> Result<u64> {
        let key = self.keys.permits(&spec.server, &spec.user);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let n: u64 = redis::cmd("ZCOUNT")
            .arg(&key)
            .arg(now_ms)
            .arg("+inf")
            .query_async(&mut self.con())
            .await?;
        Ok(n)
    }
}

async fn renew(ledger: RedisLedger, key: String, token: String) {
    let mut tick = tokio::time::interval(PERMIT_TTL / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        let r: redis::RedisResult<i64> = scripts::PERMIT_RENEW
            .key(&key)
            .arg(&token)
            .arg(PERMIT_TTL.as_millis() as u64)
            .invoke_async(&mut ledger.con())
            .await;
        match r {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(permit = %key, "Connection permit lapsed while held; the server may briefly see one connection too many.");
                return;
            }
            Err(err) => {
                tracing::warn!(permit = %key, %err, "Could not renew a connection permit; retrying.")
            }
        }
    }
}
