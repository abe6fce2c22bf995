//! Connection permits: a Redis semaphore per (server, login), global across every worker,
//! so all of them together stay under a server's per-user connection limit (Dovecot's
//! `mail_max_userip_connections` is 10 by default; Exchange IMAP about 16-20).
//!
//! Entries carry an expiry, renewed while held, so a worker killed with SIGKILL gives
//! its permits back within one TTL.

use crate::{Ledger, Result, scripts};
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

/// A held permit. Renewed in the background until released or dropped; if dropped
/// without [`Permit::release`], it lapses after one TTL.
#[derive(Debug)]
pub struct Permit {
    key: String,
    token: String,
    renewer: JoinHandle<()>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// How long a permit lives without renewal.
const PERMIT_TTL: Duration = Duration::from_secs(20);

impl Ledger {
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
        let token = format!("{:016x}", rand::rng().random::<u64>());
        let started = Instant::now();
        let mut delay = Duration::from_millis(20);
        loop {
            let got: i64 = scripts::PERMIT_ACQUIRE
                .key(&key)
                .arg(&token)
                .arg(spec.limit)
                .arg(PERMIT_TTL.as_millis() as u64)
                .invoke_async(&mut self.con())
                .await?;
            if got == 1 {
                let renewer = tokio::spawn(renew(self.clone(), key.clone(), token.clone()));
                return Ok(Some(Permit {
                    key,
                    token,
                    renewer,
                }));
            }
            if started.elapsed() >= max_wait {
                return Ok(None);
            }
            // Full jitter, so waiting workers do not poll in lockstep.
            let sleep = rand::rng().random_range(Duration::ZERO..=delay);
            tokio::time::sleep(sleep).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Gives a permit back at once.
    ///
    /// # Errors
    /// Redis errors (the permit then lapses by itself).
    pub async fn release_permit(&self, permit: Permit) -> Result<()> {
        permit.renewer.abort();
        let _: i64 = redis::cmd("ZREM")
            .arg(&permit.key)
            .arg(&permit.token)
            .query_async(&mut self.con())
            .await?;
        Ok(())
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

async fn renew(ledger: Ledger, key: String, token: String) {
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
