//! Per-message records in the embedded ledger: what landed where, what is in flight,
//! what failed and why, claimed target copies and POP3 ids — each write one transaction
//! that first checks the fence, as the Redis ledger's Lua scripts do.

use super::EmbeddedLedger;
use super::lease::check_fence;
use crate::{Lease, LedgerError, RecordEntry, Result};
use mailhaul_proto::ledger::{Record, TargetRef};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{FolderId, MailboxId, MigrationId, Uid, UidValidity};
use rusqlite::{Connection, OptionalExtension as _, params};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The row id of a folder, created if the ledger has not seen it yet.
pub(super) fn folder_row(
    c: &Connection,
    mig: &MigrationId,
    mbx: &MailboxId,
    fid: &FolderId,
) -> Result<i64> {
    c.prepare_cached("INSERT OR IGNORE INTO folders(mig, mbx, fid) VALUES(?1, ?2, ?3)")?
        .execute(params![mig.as_str(), mbx.as_str(), fid.as_str()])?;
    Ok(find_folder(c, mig, mbx, fid)?.expect("the folder row was just made"))
}

/// The row id of a folder, if the ledger knows it.
pub(super) fn find_folder(
    c: &Connection,
    mig: &MigrationId,
    mbx: &MailboxId,
    fid: &FolderId,
) -> Result<Option<i64>> {
    Ok(
        c.prepare_cached("SELECT id FROM folders WHERE mig = ?1 AND mbx = ?2 AND fid = ?3")?
            .query_row(params![mig.as_str(), mbx.as_str(), fid.as_str()], |r| {
                r.get(0)
            })
            .optional()?,
    )
}

/// Adds `by` to a mailbox counter (the fields of the Redis hash `<tag>:st`).
pub(super) fn bump(
    c: &Connection,
    mig: &MigrationId,
    mbx: &MailboxId,
    field: &str,
    by: i64,
) -> Result<()> {
    if by != 0 {
        c.prepare_cached(
            "INSERT INTO stats(mig, mbx, field, n) VALUES(?1, ?2, ?3, ?4) \
             ON CONFLICT(mig, mbx, field) DO UPDATE SET n = coalesce(n, 0) + excluded.n",
        )?
        .execute(params![mig.as_str(), mbx.as_str(), field, by])?;
    }
    Ok(())
}

fn corrupt(key: String, value: String) -> LedgerError {
    LedgerError::Corrupt { key, value }
}

impl EmbeddedLedger {
    /// As the Redis ledger's RECORD script.
    pub(crate) async fn record(
        &self,
        lease: &Lease,
        pass: u32,
        fid: &FolderId,
        uv: UidValidity,
        entries: &[RecordEntry],
    ) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let lease = lease.clone();
        let fid = fid.clone();
        let rows: Vec<(u32, String, u64)> = entries
            .iter()
            .map(|e| (e.uid.0, e.record.encode(), e.size))
            .collect();
        self.store
            .write(move |tx| {
                check_fence(tx, &lease)?;
                let (mig, mbx) = lease.owner();
                let folder = folder_row(tx, mig, mbx, &fid)?;
                let (mut added, mut bytes, mut unfailed) = (0i64, 0i64, 0i64);
                for (uid, rec, size) in rows {
                    let key = params![folder, uv.0, uid];
                    let n = tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO records(folder, uv, uid, rec) VALUES(?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![folder, uv.0, uid, rec])?;
                    if n == 1 {
                        added += 1;
                        bytes += size as i64;
                    }
                    tx.prepare_cached(
                        "DELETE FROM pending WHERE folder = ?1 AND uv = ?2 AND uid = ?3",
                    )?
                    .execute(key)?;
                    unfailed += tx
                        .prepare_cached(
                            "DELETE FROM failures WHERE folder = ?1 AND uv = ?2 AND uid = ?3",
                        )?
                        .execute(key)? as i64;
                }
                bump(tx, mig, mbx, "msgs", added)?;
                bump(tx, mig, mbx, "bytes", bytes)?;
                bump(tx, mig, mbx, &format!("p{pass}:msgs"), added)?;
                bump(tx, mig, mbx, &format!("p{pass}:bytes"), bytes)?;
                bump(tx, mig, mbx, "failed", -unfailed)?;
                Ok(added as u64)
            })
            .await
    }

    /// As the Redis ledger's MARK_PENDING script.
    pub(crate) async fn mark_pending(
        &self,
        lease: &Lease,
        fid: &FolderId,
        uv: UidValidity,
        uids: &[Uid],
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let (lease, fid, uids) = (lease.clone(), fid.clone(), uids.to_vec());
        self.store
            .write(move |tx| {
                check_fence(tx, &lease)?;
                let (mig, mbx) = lease.owner();
                let folder = folder_row(tx, mig, mbx, &fid)?;
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO pending(folder, uv, uid) VALUES(?1, ?2, ?3)",
                )?;
                for u in uids {
                    st.execute(params![folder, uv.0, u.0])?;
                }
                Ok(())
            })
            .await
    }

    /// As the Redis ledger's FAIL script.
    pub(crate) async fn record_failure(
        &self,
        lease: &Lease,
        pass: u32,
        fid: &FolderId,
        uv: UidValidity,
        uid: Uid,
        reason: &str,
    ) -> Result<()> {
        let (lease, fid, reason) = (lease.clone(), fid.clone(), reason.to_owned());
        self.store
            .write(move |tx| {
                check_fence(tx, &lease)?;
                let (mig, mbx) = lease.owner();
                let folder = folder_row(tx, mig, mbx, &fid)?;
                let key = params![folder, uv.0, uid.0];
                tx.execute(
                    "DELETE FROM pending WHERE folder = ?1 AND uv = ?2 AND uid = ?3",
                    key,
                )?;
                let old: Option<u32> = tx
                    .query_row(
                        "SELECT pass FROM failures WHERE folder = ?1 AND uv = ?2 AND uid = ?3",
                        key,
                        |r| r.get(0),
                    )
                    .optional()?;
                if old.is_none() {
                    bump(tx, mig, mbx, "failed", 1)?;
                }
                if old != Some(pass) {
                    bump(tx, mig, mbx, &format!("p{pass}:failed"), 1)?;
                }
                tx.execute(
                    "INSERT INTO failures(folder, uv, uid, pass, reason) VALUES(?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT(folder, uv, uid) DO UPDATE SET pass = excluded.pass, reason = excluded.reason",
                    params![folder, uv.0, uid.0, pass, reason],
                )?;
                Ok(())
            })
            .await
    }

    /// As the Redis ledger's CLAIM script.
    pub(crate) async fn claim_target(
        &self,
        lease: &Lease,
        fid: &FolderId,
        target: &TargetRef,
    ) -> Result<bool> {
        let (lease, fid, target) = (lease.clone(), fid.clone(), target.encode());
        self.store
            .write(move |tx| {
                check_fence(tx, &lease)?;
                let (mig, mbx) = lease.owner();
                let folder = folder_row(tx, mig, mbx, &fid)?;
                let n = tx.execute(
                    "INSERT OR IGNORE INTO claimed(folder, target) VALUES(?1, ?2)",
                    params![folder, target],
                )?;
                if n == 1 {
                    tx.execute(
                        "INSERT OR REPLACE INTO claimers(folder, target, token) VALUES(?1, ?2, ?3)",
                        params![folder, target, lease.token() as i64],
                    )?;
                    return Ok(true);
                }
                // The same lease claiming again (a retry) is granted, as in Redis.
                let by: Option<i64> = tx
                    .query_row(
                        "SELECT token FROM claimers WHERE folder = ?1 AND target = ?2",
                        params![folder, target],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(by == Some(lease.token() as i64))
            })
            .await
    }

    /// As the Redis ledger's FAIL_UNRECORDED script: every UID without a record is
    /// recorded failed (once per pass; a reason recorded before keeps its words).
    pub(crate) async fn fail_unrecorded(
        &self,
        task: &FolderTask,
        uids: &[Uid],
        reason: &str,
    ) -> Result<u64> {
        let (task, uids, reason) = (task.clone(), uids.to_vec(), reason.to_owned());
        self.store
            .write(move |tx| {
                let (mig, mbx, pass, uv) =
                    (&task.migration, &task.mailbox, task.pass, task.uid_validity.0);
                super::lease::check_epoch(tx, mig, task.ledger_epoch.as_deref().unwrap_or(""))?;
                let folder = folder_row(tx, mig, mbx, &task.folder.id)?;
                let mut marked = 0u64;
                for u in uids {
                    let key = params![folder, uv, u.0];
                    let recorded: Option<i64> = tx
                        .prepare_cached(
                            "SELECT 1 FROM records WHERE folder = ?1 AND uv = ?2 AND uid = ?3",
                        )?
                        .query_row(key, |r| r.get(0))
                        .optional()?;
                    if recorded.is_some() {
                        continue;
                    }
                    marked += 1;
                    let old: Option<u32> = tx
                        .prepare_cached(
                            "SELECT pass FROM failures WHERE folder = ?1 AND uv = ?2 AND uid = ?3",
                        )?
                        .query_row(key, |r| r.get(0))
                        .optional()?;
                    if old.is_none() {
                        bump(tx, mig, mbx, "failed", 1)?;
                    }
                    if old != Some(pass) {
                        bump(tx, mig, mbx, &format!("p{pass}:failed"), 1)?;
                    }
                    tx.prepare_cached(
                        "INSERT INTO failures(folder, uv, uid, pass, reason) VALUES(?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT(folder, uv, uid) DO UPDATE SET pass = excluded.pass",
                    )?
                    .execute(params![folder, uv, u.0, pass, reason])?;
                }
                Ok(marked)
            })
            .await
    }

    /// As the Redis ledger's ASSIGN_IDS script: a UIDL keeps its id; new ones count up
    /// from 1.
    pub(crate) async fn assign_ids(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uidls: &[String],
    ) -> Result<Vec<Uid>> {
        let (mig, mbx, fid, uidls) = (mig.clone(), mbx.clone(), fid.clone(), uidls.to_vec());
        self.store
            .write(move |tx| {
                let folder = folder_row(tx, &mig, &mbx, &fid)?;
                let mut next: u32 =
                    tx.query_row("SELECT next_id FROM folders WHERE id = ?1", [folder], |r| {
                        r.get(0)
                    })?;
                let mut out = Vec::with_capacity(uidls.len());
                for u in &uidls {
                    let id: Option<u32> = tx
                        .prepare_cached("SELECT id FROM uidls WHERE folder = ?1 AND uidl = ?2")?
                        .query_row(params![folder, u], |r| r.get(0))
                        .optional()?;
                    let id = match id {
                        Some(id) => id,
                        None => {
                            next += 1;
                            tx.prepare_cached(
                                "INSERT INTO uidls(folder, uidl, id) VALUES(?1, ?2, ?3)",
                            )?
                            .execute(params![folder, u, next])?;
                            next
                        }
                    };
                    out.push(Uid(id));
                }
                tx.execute(
                    "UPDATE folders SET next_id = ?2 WHERE id = ?1",
                    params![folder, next],
                )?;
                Ok(out)
            })
            .await
    }

    /// The records of these UIDs that exist.
    pub(crate) async fn records_of(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, Record>> {
        if uids.is_empty() {
            return Ok(HashMap::new());
        }
        let (mig, mbx, fid, uids) = (mig.clone(), mbx.clone(), fid.clone(), uids.to_vec());
        self.store
            .read(move |c| {
                let mut out = HashMap::new();
                let Some(folder) = find_folder(c, &mig, &mbx, &fid)? else {
                    return Ok(out);
                };
                let mut st = c.prepare_cached(
                    "SELECT rec FROM records WHERE folder = ?1 AND uv = ?2 AND uid = ?3",
                )?;
                for u in uids {
                    let rec: Option<String> = st
                        .query_row(params![folder, uv.0, u.0], |r| r.get(0))
                        .optional()?;
                    if let Some(v) = rec {
                        let r = Record::decode(&v)
                            .ok_or_else(|| corrupt(format!("records {fid}:{uv}:{u}"), v))?;
                        out.insert(u, r);
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Every record of a folder epoch, in UID order.
    pub(crate) async fn all_records(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<Vec<(Uid, Record)>> {
        let (mig, mbx, fid) = (mig.clone(), mbx.clone(), fid.clone());
        self.store
            .read(move |c| {
                let Some(folder) = find_folder(c, &mig, &mbx, &fid)? else {
                    return Ok(Vec::new());
                };
                let mut st = c.prepare_cached(
                    "SELECT uid, rec FROM records WHERE folder = ?1 AND uv = ?2 ORDER BY uid",
                )?;
                let rows = st.query_map(params![folder, uv.0], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (u, v) = row?;
                    let r = Record::decode(&v)
                        .ok_or_else(|| corrupt(format!("records {fid}:{uv}:{u}"), v))?;
                    out.push((Uid(u), r));
                }
                Ok(out)
            })
            .await
    }

    /// UIDs marked in flight for a folder epoch.
    pub(crate) async fn pending(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<HashSet<Uid>> {
        self.folder_column(
            mig,
            mbx,
            fid,
            uv,
            "SELECT uid FROM pending WHERE folder = ?1 AND uv = ?2",
        )
        .await
        .map(|v: Vec<u32>| v.into_iter().map(Uid).collect())
    }

    /// Target copies claimed in a folder.
    pub(crate) async fn claimed(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
    ) -> Result<HashSet<TargetRef>> {
        let v: Vec<String> = self
            .folder_column(
                mig,
                mbx,
                fid,
                UidValidity(0),
                "SELECT target FROM claimed WHERE folder = ?1 AND ?2 = ?2",
            )
            .await?;
        v.into_iter()
            .map(|s| TargetRef::decode(&s).ok_or_else(|| corrupt(format!("claimed {fid}"), s)))
            .collect()
    }

    /// Failed messages of a folder epoch: UID -> reason.
    pub(crate) async fn failures(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<BTreeMap<Uid, String>> {
        let v: Vec<(u32, String)> = self
            .folder_rows(
                mig,
                mbx,
                fid,
                uv,
                "SELECT uid, reason FROM failures WHERE folder = ?1 AND uv = ?2",
            )
            .await?;
        Ok(v.into_iter().map(|(u, r)| (Uid(u), r)).collect())
    }

    /// One column of the rows `sql` selects for a folder (`?1`) and epoch (`?2`).
    async fn folder_column<T>(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
        sql: &'static str,
    ) -> Result<Vec<T>>
    where
        T: rusqlite::types::FromSql + Send + 'static,
    {
        let (mig, mbx, fid) = (mig.clone(), mbx.clone(), fid.clone());
        self.store
            .read(move |c| {
                let Some(folder) = find_folder(c, &mig, &mbx, &fid)? else {
                    return Ok(Vec::new());
                };
                let mut st = c.prepare_cached(sql)?;
                let rows = st.query_map(params![folder, uv.0], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
            })
            .await
    }

    /// Two columns of the rows `sql` selects for a folder (`?1`) and epoch (`?2`).
    async fn folder_rows<A, B>(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
        sql: &'static str,
    ) -> Result<Vec<(A, B)>>
    where
        A: rusqlite::types::FromSql + Send + 'static,
        B: rusqlite::types::FromSql + Send + 'static,
    {
        let (mig, mbx, fid) = (mig.clone(), mbx.clone(), fid.clone());
        self.store
            .read(move |c| {
                let Some(folder) = find_folder(c, &mig, &mbx, &fid)? else {
                    return Ok(Vec::new());
                };
                let mut st = c.prepare_cached(sql)?;
                let rows = st.query_map(params![folder, uv.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<Vec<(A, B)>>>()?)
            })
            .await
    }
}
