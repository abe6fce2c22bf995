//! Slice leases: `SET NX PX` with a fencing token, so at most one worker copies a slice
//! at a time, even when RabbitMQ redelivers a task to a second worker while the first
//! is merely slow (consumer timeout, network partition).

use crate::{LedgerError, RedisLedger, Result, scripts};
use mailhaul_proto::ledger::{Keys, MailboxKeys};
use mailhaul_proto::{MailboxId, MigrationId, TaskId};
use redis::AsyncCommands;
use std::time::Duration;

/// A held lease on one slice. The token fences every record written under it.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    token: u64,
    mailbox: MailboxKeys,
    mig: MigrationId,
    mbx: MailboxId,
}

impl Lease {
    /// The lease on `task` of mailbox `mbx` under `token` (its key is the same string in
    /// both backends: the Redis key, or the embedded ledger's lease id).
    pub(crate) fn new(
        keys: &Keys,
        mig: &MigrationId,
        mbx: &MailboxId,
        task: &TaskId,
        token: u64,
    ) -> Lease {
        let mailbox = keys.mailbox(mig, mbx);
        Lease {
            key: mailbox.lease(task),
            token,
            mailbox,
            mig: mig.clone(),
            mbx: mbx.clone(),
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

    /// The lease's Redis key (the fence that record scripts check).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The mailbox's keys.
    pub(crate) fn mailbox(&self) -> &MailboxKeys {
        &self.mailbox
    }
}

impl RedisLedger {
    /// Tries to take the lease on `task` for `ttl`. `None` if another worker holds it.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn acquire_lease(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        task: &TaskId,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let mut con = self.con();
        let token: u64 = con.incr(self.keys.fence(), 1).await?;
        let lease = Lease::new(&self.keys, mig, mbx, task, token);
        let ok: Option<String> = redis::cmd("SET")
            .arg(lease.key())
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut con)
            .await?;
        Ok(ok.map(|_| lease))
    }

    /// Extends the lease. Fails with [`LedgerError::Fenced`] if it was lost.
    ///
    /// # Errors
    /// Redis errors, or the lease is gone.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let n: i64 = scripts::LEASE_RENEW
            .key(&lease.key)
            .arg(lease.token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.con())
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(LedgerError::Fenced)
        }
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
