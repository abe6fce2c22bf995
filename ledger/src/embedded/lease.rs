//! Slice leases and fencing in the embedded ledger: the `leases` table holds each
//! slice's current token and expiry; the fence counter lives in `meta`.

use super::EmbeddedLedger;
use super::store::now_ms;
use crate::{Lease, LedgerError, Result};
use mailhaul_proto::{MailboxId, MigrationId, TaskId};
use rusqlite::{Connection, OptionalExtension as _, params};
use std::time::Duration;

/// Fails with [`LedgerError::Fenced`] unless `lease` is live and still carries its token.
/// Called first in every fenced write, inside its transaction.
pub(super) fn check_fence(c: &Connection, lease: &Lease) -> Result<()> {
    let token: Option<i64> = c
        .prepare_cached("SELECT token FROM leases WHERE key = ?1 AND expires > ?2")?
        .query_row(params![lease.key(), now_ms()], |r| r.get(0))
        .optional()?;
    if token == Some(lease.token() as i64) {
        Ok(())
    } else {
        Err(LedgerError::Fenced)
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    ttl.as_millis().min(i64::MAX as u128) as i64
}

impl EmbeddedLedger {
    /// As the Redis ledger's: a new token from the fence counter, then the lease if it
    /// is free or expired.
    pub(crate) async fn acquire_lease(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        task: &TaskId,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let keys = self.keys.clone();
        let (mig, mbx, task) = (mig.clone(), mbx.clone(), task.clone());
        self.store
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES('fence', 1) \
                     ON CONFLICT(key) DO UPDATE SET value = value + 1",
                    [],
                )?;
                let token: i64 =
                    tx.query_row("SELECT value FROM meta WHERE key = 'fence'", [], |r| {
                        r.get(0)
                    })?;
                let lease = Lease::new(&keys, &mig, &mbx, &task, token as u64);
                let now = now_ms();
                tx.execute(
                    "DELETE FROM leases WHERE key = ?1 AND expires <= ?2",
                    params![lease.key(), now],
                )?;
                let n = tx.execute(
                    "INSERT OR IGNORE INTO leases(key, token, expires) VALUES(?1, ?2, ?3)",
                    params![lease.key(), token, now + ttl_ms(ttl)],
                )?;
                Ok((n == 1).then_some(lease))
            })
            .await
    }

    /// As the Redis ledger's: extends a live lease of the caller's token, else fenced.
    pub(crate) async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let lease = lease.clone();
        self.store
            .write(move |tx| {
                let now = now_ms();
                let n = tx.execute(
                    "UPDATE leases SET expires = ?3 WHERE key = ?1 AND token = ?2 AND expires > ?4",
                    params![lease.key(), lease.token() as i64, now + ttl_ms(ttl), now],
                )?;
                if n == 1 {
                    Ok(())
                } else {
                    Err(LedgerError::Fenced)
                }
            })
            .await
    }

    /// As the Redis ledger's: drops the lease if it still carries the caller's token.
    pub(crate) async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        self.store
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM leases WHERE key = ?1 AND token = ?2",
                    params![lease.key(), lease.token() as i64],
                )?;
                Ok(())
            })
            .await
    }
}
