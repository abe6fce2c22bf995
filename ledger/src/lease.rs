//! Slice leases: `SET NX PX` with a fencing token, so at most one worker copies a slice
//! at a time, even when RabbitMQ redelivers a task to a second worker while the first
//! is merely slow (consumer timeout, network partition, a frozen process).
//!
//! A lease that *expired* is not a lease that was *lost*: beside the lease the ledger
//! keeps the token of its last taker (for a day). A writer whose lease expired while
//! nobody took it (a worker paused past its TTL, Redis restarted) takes it again in the
//! same atomic step as its write and goes on; only a newer taker fences it off, and
//! [`crate::LedgerError::Fenced`] says whether that taker holds the lease now. Every
//! lease also carries the ledger epoch of its task: a ledger that lost it refuses.

use crate::{RedisLedger, Result, fence_answer, scripts};
use mailhaul_proto::ledger::{Keys, MailboxKeys};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{MailboxId, MigrationId};
use std::time::Duration;

/// A held lease on one slice. The token fences every record written under it.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    taker: String,
    token: u64,
    ttl_ms: u64,
    epoch: String,
    mailbox: MailboxKeys,
    mig: MigrationId,
    mbx: MailboxId,
}

impl Lease {
    /// The lease on `task`'s slice under `token`, for `ttl` (its key is the same string
    /// in both backends: the Redis key, or the embedded ledger's lease id).
    pub(crate) fn new(keys: &Keys, task: &FolderTask, token: u64, ttl: Duration) -> Lease {
        let mailbox = keys.mailbox(&task.migration, &task.mailbox);
        Lease {
            key: mailbox.lease(&task.task_id),
            taker: mailbox.lease_owner(&task.task_id),
            token,
            ttl_ms: ttl.as_millis().clamp(1, u128::from(u64::MAX >> 1)) as u64,
            epoch: task.ledger_epoch.clone().unwrap_or_default(),
            mailbox,
            mig: task.migration.clone(),
            mbx: task.mailbox.clone(),
        }
    }

    /// The migration and mailbox the slice belongs to.
    pub(crate) fn owner(&self) -> (&MigrationId, &MailboxId) {
        (&self.mig, &self.mbx)
    }

    /// The fencing token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The lease's key (the Redis key, or the embedded ledger's lease id).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// How long the lease lives without renewal, in milliseconds.
    pub(crate) fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// The ledger epoch of the task ("" for tasks that carry none: not checked).
    pub(crate) fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The mailbox's keys.
    pub(crate) fn mailbox(&self) -> &MailboxKeys {
        &self.mailbox
    }

    /// Starts a fenced script invocation: KEYS lease, last taker, stats and ARGV token,
    /// ttl, epoch, as the fence expects (see `scripts`).
    pub(crate) fn fence<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(&self.key)
            .key(&self.taker)
            .key(self.mailbox.stats())
            .arg(self.token)
            .arg(self.ttl_ms)
            .arg(&self.epoch);
        inv
    }
}

impl RedisLedger {
    /// Tries to take the lease on `task`'s slice for `ttl`. `None` if another worker
    /// holds it.
    ///
    /// # Errors
    /// [`crate::LedgerError::Vanished`] when the ledger is not the one the task was
    /// planned against; Redis errors.
    pub async fn acquire_lease(&self, task: &FolderTask, ttl: Duration) -> Result<Option<Lease>> {
        let mut con = self.con();
        let token: u64 = redis::cmd("INCR")
            .arg(self.keys.fence())
            .query_async(&mut con)
            .await?;
        let lease = Lease::new(&self.keys, task, token, ttl);
        let got: i64 = lease
            .fence(&scripts::LEASE_ACQUIRE)
            .invoke_async(&mut con)
            .await?;
        match fence_answer(got)? {
            1 => Ok(Some(lease)),
            _ => Ok(None),
        }
    }

    /// Extends the lease, or takes it again if it expired and nobody took it since.
    ///
    /// # Errors
    /// [`crate::LedgerError::Fenced`] when a newer worker took it,
    /// [`crate::LedgerError::Vanished`] when the ledger is gone; Redis errors.
    pub async fn renew_lease(&self, lease: &Lease) -> Result<()> {
        let n: i64 = lease
            .fence(&scripts::LEASE_RENEW)
            .invoke_async(&mut self.con())
            .await?;
        if n == 1 {
            tracing::info!(
                token = lease.token,
                "The slice lease had expired with nobody taking it; took it again."
            );
        }
        fence_answer(n).map(|_| ())
    }

    /// Gives the lease up (no-op if it already expired or was taken over).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let _: i64 = scripts::LEASE_RELEASE
            .key(&lease.key)
            .arg(lease.token)
            .invoke_async(&mut self.con())
            .await?;
        Ok(())
    }
}
