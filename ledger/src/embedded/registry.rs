//! The migration registry in the embedded ledger: migrations, passes, folder epochs,
//! task completion and the counters `migrate`, `status` and `report` read.

use super::EmbeddedLedger;
use super::records::{bump, find_folder, folder_row};
use crate::Result;
use crate::registry::{mailbox_progress, parse_uvs};
use crate::{FolderCounts, FolderMeta, FolderReport, LedgerError, MailboxProgress, PassProgress};
use mailhaul_proto::Uid;
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{FolderId, MailboxId, MigrationId, UidValidity};
use rusqlite::{Connection, OptionalExtension as _, params};
use std::collections::HashMap;

/// Sets a mailbox counter (or, with `text`, a text field such as `p<n>:error`).
fn set_stat(c: &Connection, mig: &MigrationId, mbx: &MailboxId, field: &str, n: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO stats(mig, mbx, field, n) VALUES(?1, ?2, ?3, ?4) \
         ON CONFLICT(mig, mbx, field) DO UPDATE SET n = excluded.n, text = NULL",
    )?
    .execute(params![mig.as_str(), mbx.as_str(), field, n])?;
    Ok(())
}

fn meta_of(c: &Connection, folder: i64) -> Result<Option<FolderMeta>> {
    Ok(c.query_row(
        "SELECT uv, old, dst FROM folders WHERE id = ?1 AND uv IS NOT NULL",
        [folder],
        |r| {
            Ok(FolderMeta {
                uid_validity: UidValidity(r.get(0)?),
                voided: parse_uvs(Some(&r.get::<_, String>(1)?)),
                target_name: r.get(2)?,
            })
        },
    )
    .optional()?)
}

/// Refuses a migration other than the one the state directory holds.
fn same_migration(c: &Connection, dir: &std::path::Path, mig: &MigrationId) -> Result<()> {
    let other: Option<String> = c
        .query_row(
            "SELECT mig FROM migrations WHERE mig <> ?1 LIMIT 1",
            [mig.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    match other {
        Some(other) => Err(LedgerError::StateDir(format!(
            "the state directory {} holds migration {other}, not {mig}; give this manifest its own --state-dir",
            dir.display()
        ))),
        None => Ok(()),
    }
}

impl EmbeddedLedger {
    /// Fails unless the state directory is empty or holds migration `mig`: one state
    /// directory serves one migration (checked before anything runs on it).
    ///
    /// # Errors
    /// [`LedgerError::StateDir`] naming both migrations; database errors.
    pub async fn check_migration(&self, mig: &MigrationId) -> Result<()> {
        let (mig, dir) = (mig.clone(), self.dir.clone());
        self.store
            .read(move |c| same_migration(c, &dir, &mig))
            .await
    }

    /// As the Redis ledger's. A state directory holds one migration: another one's
    /// manifest is refused.
    pub(crate) async fn begin_pass(
        &self,
        mig: &MigrationId,
        tenant: &str,
        mailboxes: &[MailboxId],
    ) -> Result<u32> {
        let (mig, tenant, mailboxes) = (mig.clone(), tenant.to_owned(), mailboxes.to_vec());
        let dir = self.dir.clone();
        self.store
            .write(move |tx| {
                same_migration(tx, &dir, &mig)?;
                tx.execute(
                    "INSERT INTO migrations(mig, tenant, passes) VALUES(?1, ?2, 1) \
                     ON CONFLICT(mig) DO UPDATE SET tenant = excluded.tenant, passes = passes + 1",
                    params![mig.as_str(), tenant],
                )?;
                tx.execute(
                    "INSERT OR IGNORE INTO identity(mig, epoch) VALUES(?1, ?2)",
                    params![mig.as_str(), crate::registry::new_epoch()],
                )?;
                let pass: u32 = tx.query_row(
                    "SELECT passes FROM migrations WHERE mig = ?1",
                    [mig.as_str()],
                    |r| r.get(0),
                )?;
                tx.execute("DELETE FROM mailboxes WHERE mig = ?1", [mig.as_str()])?;
                let mut st =
                    tx.prepare_cached("INSERT INTO mailboxes(mig, pos, mbx) VALUES(?1, ?2, ?3)")?;
                for (i, m) in mailboxes.iter().enumerate() {
                    st.execute(params![mig.as_str(), i as i64, m.as_str()])?;
                }
                Ok(pass)
            })
            .await
    }

    pub(crate) async fn latest_pass(&self, mig: &MigrationId) -> Result<Option<u32>> {
        let mig = mig.clone();
        self.store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT passes FROM migrations WHERE mig = ?1",
                    [mig.as_str()],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await
    }

    pub(crate) async fn observe_folder(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
        name: &str,
        target_name: &str,
    ) -> Result<FolderMeta> {
        let (mig, mbx, fid) = (mig.clone(), mbx.clone(), fid.clone());
        let (name, target_name) = (name.to_owned(), target_name.to_owned());
        self.store
            .write(move |tx| {
                let folder = folder_row(tx, &mig, &mbx, &fid)?;
                let (cur, old): (Option<u32>, String) = tx.query_row(
                    "SELECT uv, old FROM folders WHERE id = ?1",
                    [folder],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let mut voided = parse_uvs(Some(&old));
                if let Some(cur) = cur.filter(|&c| c != uv.0) {
                    tracing::info!(mailbox = %mbx, folder = name, old = cur, new = uv.0, "Folder UIDVALIDITY changed; it will be re-matched.");
                    voided.push(UidValidity(cur));
                }
                let old = voided
                    .iter()
                    .map(|v| v.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                tx.execute(
                    "UPDATE folders SET uv = ?2, old = ?3, name = ?4, dst = coalesce(dst, ?5) WHERE id = ?1",
                    params![folder, uv.0, old, name, target_name],
                )?;
                let target: String =
                    tx.query_row("SELECT dst FROM folders WHERE id = ?1", [folder], |r| {
                        r.get(0)
                    })?;
                Ok(FolderMeta {
                    uid_validity: uv,
                    voided,
                    target_name: Some(target),
                })
            })
            .await
    }

    pub(crate) async fn record_folder_counts(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        counts: FolderCounts,
    ) -> Result<()> {
        let (mig, mbx, fid) = (mig.clone(), mbx.clone(), fid.clone());
        self.store
            .write(move |tx| {
                let folder = folder_row(tx, &mig, &mbx, &fid)?;
                tx.execute(
                    "UPDATE folders SET listed = 1, src = ?2, src_bytes = ?3, filtered = ?4 WHERE id = ?1",
                    params![folder, counts.messages as i64, counts.bytes as i64, counts.filtered as i64],
                )?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn folder_reports(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
    ) -> Result<Vec<FolderReport>> {
        let (mig, mbx) = (mig.clone(), mbx.clone());
        self.store
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT f.id, f.fid, coalesce(f.uv, 0), coalesce(f.name, ''), coalesce(f.dst, ''), \
                     coalesce(f.src, 0), coalesce(f.src_bytes, 0), coalesce(f.filtered, 0), \
                     (SELECT count(*) FROM records r WHERE r.folder = f.id AND r.uv = coalesce(f.uv, 0)) \
                     FROM folders f WHERE f.mig = ?1 AND f.mbx = ?2 AND f.listed = 1",
                )?;
                let rows = st.query_map(params![mig.as_str(), mbx.as_str()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        FolderReport {
                            id: FolderId(r.get(1)?),
                            name: r.get(3)?,
                            target: r.get(4)?,
                            counts: FolderCounts {
                                messages: r.get::<_, i64>(5)?.max(0) as u64,
                                bytes: r.get::<_, i64>(6)?.max(0) as u64,
                                filtered: r.get::<_, i64>(7)?.max(0) as u64,
                            },
                            migrated: r.get::<_, i64>(8)?.max(0) as u64,
                            failures: Vec::new(),
                        },
                        r.get::<_, u32>(2)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (folder, mut rep, uv) = row?;
                    let mut f = c.prepare_cached(
                        "SELECT uid, reason FROM failures WHERE folder = ?1 AND uv = ?2 ORDER BY uid",
                    )?;
                    rep.failures = f
                        .query_map(params![folder, uv], |r| Ok((Uid(r.get(0)?), r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    out.push(rep);
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            })
            .await
    }

    pub(crate) async fn folder_meta(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
    ) -> Result<Option<FolderMeta>> {
        let (mig, mbx, fid) = (mig.clone(), mbx.clone(), fid.clone());
        self.store
            .read(move |c| match find_folder(c, &mig, &mbx, &fid)? {
                Some(folder) => meta_of(c, folder),
                None => Ok(None),
            })
            .await
    }

    pub(crate) async fn set_mailbox_plan(
        &self,
        mig: &MigrationId,
        pass: u32,
        p: &MailboxProgress,
    ) -> Result<()> {
        let (mig, p) = (mig.clone(), p.clone());
        self.store
            .write(move |tx| {
                let mbx = &p.mailbox;
                for (f, v) in [
                    ("source", p.source_msgs),
                    ("source_bytes", p.source_bytes),
                    ("planned", p.planned_msgs),
                    ("planned_bytes", p.planned_bytes),
                    ("tasks", p.tasks),
                ] {
                    set_stat(tx, &mig, mbx, &format!("p{pass}:{f}"), v as i64)?;
                }
                // Where the pass's failures start; once per pass (as on Redis).
                tx.execute(
                    "INSERT INTO stats(mig, mbx, field, n) VALUES(?1, ?2, ?3, ?4) \
                     ON CONFLICT(mig, mbx, field) DO NOTHING",
                    params![
                        mig.as_str(),
                        mbx.as_str(),
                        format!("p{pass}:failed"),
                        p.failed_msgs as i64
                    ],
                )?;
                let field = format!("p{pass}:error");
                match &p.error {
                    Some(e) => tx.execute(
                        "INSERT INTO stats(mig, mbx, field, text) VALUES(?1, ?2, ?3, ?4) \
                         ON CONFLICT(mig, mbx, field) DO UPDATE SET text = excluded.text, n = NULL",
                        params![mig.as_str(), mbx.as_str(), field, e],
                    )?,
                    None => tx.execute(
                        "DELETE FROM stats WHERE mig = ?1 AND mbx = ?2 AND field = ?3",
                        params![mig.as_str(), mbx.as_str(), field],
                    )?,
                };
                Ok(())
            })
            .await
    }

    pub(crate) async fn set_pass_tasks(
        &self,
        mig: &MigrationId,
        pass: u32,
        total: u64,
    ) -> Result<()> {
        let mig = mig.clone();
        self.store
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO passes(mig, pass, tasks) VALUES(?1, ?2, ?3) \
                     ON CONFLICT(mig, pass) DO UPDATE SET tasks = excluded.tasks",
                    params![mig.as_str(), pass, total as i64],
                )?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn task_done(&self, task: &FolderTask) -> Result<()> {
        self.finish_task(task, None).await
    }

    pub(crate) async fn task_failed(&self, task: &FolderTask, reason: &str) -> Result<()> {
        self.finish_task(task, Some(reason.to_owned())).await
    }

    async fn finish_task(&self, task: &FolderTask, failed: Option<String>) -> Result<()> {
        let task = task.clone();
        self.store
            .write(move |tx| {
                let (mig, mbx, pass) = (&task.migration, &task.mailbox, task.pass);
                super::lease::check_epoch(tx, mig, task.ledger_epoch.as_deref().unwrap_or(""))?;
                if let Some(reason) = failed {
                    tx.execute(
                        "INSERT INTO failed_tasks(mig, pass, task, reason) VALUES(?1, ?2, ?3, ?4) \
                         ON CONFLICT(mig, pass, task) DO UPDATE SET reason = excluded.reason",
                        params![mig.as_str(), pass, task.task_id.as_str(), reason],
                    )?;
                }
                let added = tx.execute(
                    "INSERT OR IGNORE INTO done_tasks(mig, pass, task) VALUES(?1, ?2, ?3)",
                    params![mig.as_str(), pass, task.task_id.as_str()],
                )?;
                if added == 1 {
                    bump(tx, mig, mbx, &format!("p{pass}:tasks_done"), 1)?;
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn epoch(&self, mig: &MigrationId) -> Result<Option<String>> {
        let mig = mig.clone();
        self.store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT epoch FROM identity WHERE mig = ?1",
                    [mig.as_str()],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await
    }

    pub(crate) async fn set_rebuilding(&self, mig: &MigrationId, rebuilding: bool) -> Result<()> {
        let mig = mig.clone();
        self.store
            .write(move |tx| {
                tx.execute(
                    "UPDATE identity SET rebuild = ?2 WHERE mig = ?1",
                    params![mig.as_str(), i64::from(rebuilding)],
                )?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn rebuilding(&self, mig: &MigrationId) -> Result<bool> {
        let mig = mig.clone();
        self.store
            .read(move |c| {
                let v: Option<i64> = c
                    .query_row(
                        "SELECT rebuild FROM identity WHERE mig = ?1",
                        [mig.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(v.unwrap_or(0) != 0)
            })
            .await
    }

    pub(crate) async fn progress(&self, mig: &MigrationId, pass: u32) -> Result<PassProgress> {
        let mig = mig.clone();
        self.store
            .read(move |c| {
                let m = mig.as_str();
                let tasks_total: Option<i64> = c
                    .query_row(
                        "SELECT tasks FROM passes WHERE mig = ?1 AND pass = ?2",
                        params![m, pass],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                let tasks_done: i64 = c.query_row(
                    "SELECT count(*) FROM done_tasks WHERE mig = ?1 AND pass = ?2",
                    params![m, pass],
                    |r| r.get(0),
                )?;
                let mut st = c.prepare_cached(
                    "SELECT task, reason FROM failed_tasks WHERE mig = ?1 AND pass = ?2 ORDER BY task",
                )?;
                let tasks_failed = st
                    .query_map(params![m, pass], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
                let mut st =
                    c.prepare_cached("SELECT mbx FROM mailboxes WHERE mig = ?1 ORDER BY pos")?;
                let ids = st
                    .query_map([m], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                let mut st = c.prepare_cached(
                    "SELECT field, coalesce(CAST(n AS TEXT), text, '') FROM stats WHERE mig = ?1 AND mbx = ?2",
                )?;
                let mut mailboxes = Vec::with_capacity(ids.len());
                for id in ids {
                    let fields: HashMap<String, String> = st
                        .query_map(params![m, id], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    mailboxes.push(mailbox_progress(MailboxId(id), pass, &fields));
                }
                Ok(PassProgress {
                    pass,
                    tasks_total: tasks_total.map_or(u64::MAX, |t| t.max(0) as u64),
                    tasks_done: tasks_done.max(0) as u64,
                    tasks_failed,
                    mailboxes,
                })
            })
            .await
    }
}
