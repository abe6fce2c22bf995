//! Slice leases and fencing in the embedded ledger: the `leases` table holds each
//! slice's current token and expiry, `lease_takers` the last token that took it (an
//! expired lease nobody took since is taken again by its writer, as in Redis); the fence
//! counter lives in `meta`, the ledger epoch in `identity`.

use super::EmbeddedLedger;
use super::store::now_ms;
use crate::scripts::OWNER_TTL_MS;
use crate::{Lease, LedgerError, Result};
use mailhaul_proto::MigrationId;
use mailhaul_proto::task::FolderTask;
use rusqlite::{Connection, OptionalExtension as _, params};
use std::time::Duration;

/// The fence, as the Redis ledger's (`scripts::FENCE`), inside the write's transaction:
/// `Ok(0)` when the lease is live with the writer's token; `Ok(1)` when it expired and
/// nobody took it since (taken again); [`LedgerError::Fenced`] when a newer worker took
/// it (`live`: it holds it now); [`LedgerError::Vanished`] when the ledger does not
/// carry the task's epoch.
pub(super) fn check_fence(c: &Connection, lease: &Lease) -> Result<i64> {
    let now = now_ms();
    let cur: Option<(i64, i64)> = c
        .prepare_cached("SELECT token, expires FROM leases WHERE key = ?1")?
        .query_row([lease.key()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match cur {
        Some((token, expires)) if expires > now && token == lease.token() as i64 => return Ok(0),
        Some((_, expires)) if expires > now => return Err(LedgerError::Fenced { live: true }),
        _ => {}
    }
    check_epoch(c, lease.owner().0, lease.epoch())?;
    let taker: Option<i64> = c
        .prepare_cached("SELECT token FROM lease_takers WHERE key = ?1 AND expires > ?2")?
        .query_row(params![lease.key(), now], |r| r.get(0))
        .optional()?;
    if taker.is_some_and(|t| t != lease.token() as i64) {
        return Err(LedgerError::Fenced { live: false });
    }
    take(c, lease, now)?;
    Ok(1)
}

/// Fails with [`LedgerError::Vanished`] unless migration `mig` carries `epoch` ("" is
/// not checked: tasks of builds before epochs).
pub(super) fn check_epoch(c: &Connection, mig: &MigrationId, epoch: &str) -> Result<()> {
    if epoch.is_empty() {
        return Ok(());
    }
    let have: Option<String> = c
        .prepare_cached("SELECT epoch FROM identity WHERE mig = ?1")?
        .query_row([mig.as_str()], |r| r.get(0))
        .optional()?;
    if have.as_deref() == Some(epoch) {
        Ok(())
    } else {
        Err(LedgerError::Vanished)
    }
}

/// Sets the lease to the caller's token for its TTL and records it as the last taker.
fn take(c: &Connection, lease: &Lease, now: i64) -> Result<()> {
    for (table, ttl) in [("leases", lease.ttl_ms()), ("lease_takers", OWNER_TTL_MS)] {
        c.prepare_cached(&format!(
            "INSERT INTO {table}(key, token, expires) VALUES(?1, ?2, ?3) \
             ON CONFLICT(key) DO UPDATE SET token = excluded.token, expires = excluded.expires"
        ))?
        .execute(params![lease.key(), lease.token() as i64, now + ttl as i64])?;
    }
    Ok(())
}

impl EmbeddedLedger {
    /// As the Redis ledger's: a new token from the fence counter, then the lease if it
    /// is free or expired and the ledger carries the task's epoch.
    pub(crate) async fn acquire_lease(
        &self,
        task: &FolderTask,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let keys = self.keys.clone();
        let task = task.clone();
        self.store
            .write(move |tx| {
                check_epoch(
                    tx,
                    &task.migration,
                    task.ledger_epoch.as_deref().unwrap_or(""),
                )?;
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES('fence', 1) \
                     ON CONFLICT(key) DO UPDATE SET value = value + 1",
                    [],
                )?;
                let token: i64 =
                    tx.query_row("SELECT value FROM meta WHERE key = 'fence'", [], |r| {
                        r.get(0)
                    })?;
                let lease = Lease::new(&keys, &task, token as u64, ttl);
                let now = now_ms();
                let held: Option<i64> = tx
                    .prepare_cached("SELECT token FROM leases WHERE key = ?1 AND expires > ?2")?
                    .query_row(params![lease.key(), now], |r| r.get(0))
                    .optional()?;
                if held.is_some() {
                    return Ok(None);
                }
                take(tx, &lease, now)?;
                Ok(Some(lease))
            })
            .await
    }

    /// As the Redis ledger's: extends a live lease of the caller's token, or takes an
    /// expired one nobody took since again; else fenced.
    pub(crate) async fn renew_lease(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        self.store
            .write(move |tx| {
                if check_fence(tx, &lease)? == 0 {
                    tx.execute(
                        "UPDATE leases SET expires = ?2 WHERE key = ?1",
                        params![lease.key(), now_ms() + lease.ttl_ms() as i64],
                    )?;
                }
                Ok(())
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
