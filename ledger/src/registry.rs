//! The migration registry: migrations, passes, folder epochs, task completion and the
//! counters that `migrate`'s progress bar and `status` read.

use crate::{RedisLedger, Result, fence_answer, scripts};
use mailhaul_proto::Uid;
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{FolderId, MailboxId, MigrationId, UidValidity};
use redis::AsyncCommands;
use std::collections::HashMap;

/// What the ledger knows of a source folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderMeta {
    /// The UIDVALIDITY the folder's current records belong to.
    pub uid_validity: UidValidity,
    /// Earlier UIDVALIDITY values whose records are void: the folder is re-matched
    /// against the target copies they point to, not copied again.
    pub voided: Vec<UidValidity>,
    /// The target folder (wire name) chosen the first time the folder was seen; every
    /// later pass keeps it, so a delta never splits a folder over two targets.
    pub target_name: Option<String>,
}

/// What the latest planning counted in a source folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderCounts {
    /// Messages the filters keep.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages the filters leave out.
    pub filtered: u64,
}

/// One folder as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderReport {
    /// Folder id.
    pub id: FolderId,
    /// Source path.
    pub name: String,
    /// Target wire name.
    pub target: String,
    /// Source counts at the latest planning.
    pub counts: FolderCounts,
    /// Messages recorded as migrated (current UIDVALIDITY).
    pub migrated: u64,
    /// Messages that failed, with the reason.
    pub failures: Vec<(Uid, String)>,
}

/// Progress of one mailbox in one pass (plus its all-time totals).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxProgress {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Messages in the selected source folders at discovery.
    pub source_msgs: u64,
    /// Their bytes.
    pub source_bytes: u64,
    /// Messages this pass planned to copy (not yet in the ledger at planning).
    pub planned_msgs: u64,
    /// Their bytes.
    pub planned_bytes: u64,
    /// Messages copied in this pass.
    pub copied_msgs: u64,
    /// Their bytes.
    pub copied_bytes: u64,
    /// Messages that failed in this pass, and those failed for good in an earlier one
    /// that this pass did not run again (`mailhaul retry` does).
    pub failed_msgs: u64,
    /// Messages in the ledger over all passes.
    pub total_msgs: u64,
    /// Tasks planned for this mailbox in this pass.
    pub tasks: u64,
    /// Tasks finished (copied or given up).
    pub tasks_done: u64,
    /// A mailbox-level problem found at discovery (e.g. a login that failed).
    pub error: Option<String>,
}

/// Progress of one pass of a migration.
#[derive(Debug, Clone, Default)]
pub struct PassProgress {
    /// The pass number.
    pub pass: u32,
    /// Tasks published (known once planning is done).
    pub tasks_total: u64,
    /// Tasks finished, copied or given up.
    pub tasks_done: u64,
    /// Tasks given up, with reasons.
    pub tasks_failed: Vec<(String, String)>,
    /// Per mailbox, in manifest order.
    pub mailboxes: Vec<MailboxProgress>,
}

impl PassProgress {
    /// Whether every task of the pass has finished.
    pub fn finished(&self) -> bool {
        self.tasks_done >= self.tasks_total
    }
}

pub(crate) fn parse_uvs(field: Option<&str>) -> Vec<UidValidity> {
    field
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.parse().ok())
        .map(UidValidity)
        .collect()
}

impl RedisLedger {
    /// Registers (or re-opens) a migration and starts a new pass; returns its number.
    /// The first time a migration is recorded it gets its ledger epoch (see
    /// [`Ledger::epoch`]); every pass stamps it on each of `mailboxes`, which is where
    /// the workers' fenced writes check it.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn begin_pass(
        &self,
        mig: &MigrationId,
        tenant: &str,
        mailboxes: &[MailboxId],
    ) -> Result<u32> {
        let mut con = self.con();
        let key = self.keys.migration(mig);
        let fresh = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let (_, _, _, epoch, pass): ((), (), bool, String, u32) = redis::pipe()
            .atomic()
            .sadd(self.keys.migrations(), mig.as_str())
            .hset(&key, "tenant", tenant)
            .hset_nx(&key, "epoch", &fresh)
            .hget(&key, "epoch")
            .hincr(&key, "passes", 1)
            .query_async(&mut con)
            .await?;
        let list = self.keys.mailboxes(mig);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&list);
        for chunk in mailboxes.chunks(1000) {
            pipe.rpush(&list, chunk.iter().map(|m| m.as_str()).collect::<Vec<_>>());
        }
        let _: () = pipe.query_async(&mut con).await?;
        for chunk in mailboxes.chunks(1000) {
            let mut pipe = redis::pipe();
            for m in chunk {
                pipe.hset(self.keys.mailbox(mig, m).stats(), "epoch", &epoch)
                    .ignore();
            }
            let _: () = pipe.query_async(&mut con).await?;
        }
        Ok(pass)
    }

    /// The migration's ledger epoch: a random id written when the migration was first
    /// recorded. `None` when this ledger has never heard of the migration — a first pass,
    /// or a ledger that lost its data; the coordinator tells them apart with the epoch
    /// it keeps beside the manifest.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn epoch(&self, mig: &MigrationId) -> Result<Option<String>> {
        let v: Option<String> = self.con().hget(self.keys.migration(mig), "epoch").await?;
        Ok(v)
    }

    /// Marks the migration as rebuilding its ledger from source and target: until
    /// [`Ledger::set_rebuilding`] clears it, every pass looks each message up on the
    /// target before copying it (an interrupted rebuild goes on in the next pass).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn set_rebuilding(&self, mig: &MigrationId, rebuilding: bool) -> Result<()> {
        let key = self.keys.migration(mig);
        let _: () = if rebuilding {
            self.con().hset(key, "rebuild", 1).await?
        } else {
            self.con().hdel(key, "rebuild").await?
        };
        Ok(())
    }

    /// Whether a rebuild of the ledger is under way (see [`Ledger::set_rebuilding`]).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn rebuilding(&self, mig: &MigrationId) -> Result<bool> {
        let v: Option<u32> = self.con().hget(self.keys.migration(mig), "rebuild").await?;
        Ok(v.is_some())
    }

    /// The latest pass of a migration, or `None` if it is unknown.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn latest_pass(&self, mig: &MigrationId) -> Result<Option<u32>> {
        let v: Option<u32> = self.con().hget(self.keys.migration(mig), "passes").await?;
        Ok(v)
    }

    /// Records the folder's UIDVALIDITY seen at discovery; a changed one voids the old
    /// records (kept for re-matching). Returns the folder's epochs.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn observe_folder(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
        name: &str,
        target_name: &str,
    ) -> Result<FolderMeta> {
        let key = self.keys.mailbox(mig, mbx).folder(fid);
        let mut con = self.con();
        let (cur, old): (Option<u32>, Option<String>) = redis::pipe()
            .hget(&key, "uv")
            .hget(&key, "old")
            .query_async(&mut con)
            .await?;
        let mut voided: Vec<UidValidity> = parse_uvs(old.as_deref());
        if let Some(cur) = cur.filter(|&c| c != uv.0) {
            tracing::info!(mailbox = %mbx, folder = name, old = cur, new = uv.0, "Folder UIDVALIDITY changed; it will be re-matched.");
            voided.push(UidValidity(cur));
        }
        let old_field = voided
            .iter()
            .map(|v| v.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let (_, _, _, _, target): ((), (), (), bool, String) = redis::pipe()
            .hset(&key, "uv", uv.0)
            .hset(&key, "old", old_field)
            .hset(&key, "name", name)
            .hset_nx(&key, "dst", target_name)
            .hget(&key, "dst")
            .query_async(&mut con)
            .await?;
        Ok(FolderMeta {
            uid_validity: uv,
            voided,
            target_name: Some(target),
        })
    }

    /// Stores what the latest planning counted in a folder (for `report`), and indexes
    /// the folder under its mailbox.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn record_folder_counts(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        counts: FolderCounts,
    ) -> Result<()> {
        let k = self.keys.mailbox(mig, mbx);
        let key = k.folder(fid);
        let _: () = redis::pipe()
            .sadd(k.folders(), fid.as_str())
            .hset(&key, "src", counts.messages)
            .hset(&key, "src_bytes", counts.bytes)
            .hset(&key, "filtered", counts.filtered)
            .query_async(&mut self.con())
            .await?;
        Ok(())
    }

    /// What the ledger knows of every folder of a mailbox, for `report`.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn folder_reports(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
    ) -> Result<Vec<FolderReport>> {
        let k = self.keys.mailbox(mig, mbx);
        let mut con = self.con();
        let fids: Vec<String> = con.smembers(k.folders()).await?;
        let mut out = Vec::with_capacity(fids.len());
        for fid in fids.into_iter().map(FolderId) {
            let meta: HashMap<String, String> = con.hgetall(k.folder(&fid)).await?;
            let num = |f: &str| meta.get(f).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let uv = UidValidity(num("uv") as u32);
            let buckets: Vec<u32> = con.smembers(k.buckets(&fid, uv)).await?;
            let mut migrated = 0u64;
            for chunk in buckets.chunks(256) {
                let mut pipe = redis::pipe();
                for b in chunk {
                    pipe.hlen(k.records(&fid, uv, *b));
                }
                let lens: Vec<u64> = pipe.query_async(&mut con).await?;
                migrated += lens.iter().sum::<u64>();
            }
            let failures = self.failures(mig, mbx, &fid, uv).await?;
            out.push(FolderReport {
                name: meta.get("name").cloned().unwrap_or_default(),
                target: meta.get("dst").cloned().unwrap_or_default(),
                counts: FolderCounts {
                    messages: num("src"),
                    bytes: num("src_bytes"),
                    filtered: num("filtered"),
                },
                migrated,
                failures: failures.into_iter().collect(),
                id: fid,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The folder's epochs as last observed, if any.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn folder_meta(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
    ) -> Result<Option<FolderMeta>> {
        let key = self.keys.mailbox(mig, mbx).folder(fid);
        let (cur, old, target): (Option<u32>, Option<String>, Option<String>) = redis::pipe()
            .hget(&key, "uv")
            .hget(&key, "old")
            .hget(&key, "dst")
            .query_async(&mut self.con())
            .await?;
        Ok(cur.map(|c| FolderMeta {
            uid_validity: UidValidity(c),
            voided: parse_uvs(old.as_deref()),
            target_name: target,
        }))
    }

    /// Stores what discovery found for a mailbox in this pass. `failed_msgs` is what
    /// the pass starts from (messages failed for good earlier, not run again); it is
    /// set only once per pass, so a second plan of the pass never resets what workers
    /// have counted since.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn set_mailbox_plan(
        &self,
        mig: &MigrationId,
        pass: u32,
        p: &MailboxProgress,
    ) -> Result<()> {
        let key = self.keys.mailbox(mig, &p.mailbox).stats();
        let mut pipe = redis::pipe();
        pipe.hset(&key, format!("p{pass}:source"), p.source_msgs)
            .hset(&key, format!("p{pass}:source_bytes"), p.source_bytes)
            .hset(&key, format!("p{pass}:planned"), p.planned_msgs)
            .hset(&key, format!("p{pass}:planned_bytes"), p.planned_bytes)
            .hset(&key, format!("p{pass}:tasks"), p.tasks)
            .hset_nx(&key, format!("p{pass}:failed"), p.failed_msgs);
        match &p.error {
            Some(e) => pipe.hset(&key, format!("p{pass}:error"), e),
            None => pipe.hdel(&key, format!("p{pass}:error")),
        };
        let _: () = pipe.query_async(&mut self.con()).await?;
        Ok(())
    }

    /// Sets how many tasks a pass has; the pass is finished when that many are done.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn set_pass_tasks(&self, mig: &MigrationId, pass: u32, total: u64) -> Result<()> {
        let _: () = self
            .con()
            .hset(self.keys.migration(mig), format!("p{pass}:tasks"), total)
            .await?;
        Ok(())
    }

    /// Marks a task finished (idempotent: a redelivered task counts once).
    ///
    /// # Errors
    /// [`crate::LedgerError::Vanished`] when the ledger is not the task's; Redis errors.
    pub async fn task_done(&self, task: &FolderTask) -> Result<()> {
        let (mig, pass) = (&task.migration, task.pass);
        let k = self.keys.mailbox(mig, &task.mailbox);
        let n: i64 = scripts::TASK_DONE
            .key(k.stats())
            .key(k.done(pass))
            .arg(task.ledger_epoch.as_deref().unwrap_or(""))
            .arg(pass)
            .arg(task.task_id.as_str())
            .invoke_async(&mut self.con())
            .await?;
        fence_answer(n)?;
        // After the mailbox's own count: a retry of this (idempotent) set finds it there.
        let _: () = self
            .con()
            .sadd(self.keys.done_tasks(mig, pass), task.task_id.as_str())
            .await?;
        Ok(())
    }

    /// Marks a task given up, with the reason, and finished.
    ///
    /// # Errors
    /// [`crate::LedgerError::Vanished`] when the ledger is not the task's; Redis errors.
    pub async fn task_failed(&self, task: &FolderTask, reason: &str) -> Result<()> {
        if task.ledger_epoch.as_deref().is_some_and(|e| !e.is_empty())
            && self.epoch(&task.migration).await?.as_deref() != task.ledger_epoch.as_deref()
        {
            return Err(crate::LedgerError::Vanished);
        }
        let _: () = self
            .con()
            .hset(
                self.keys.failed_tasks(&task.migration, task.pass),
                task.task_id.as_str(),
                reason,
            )
            .await?;
        self.task_done(task).await
    }

    /// Reads a pass's progress, per mailbox in manifest order.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn progress(&self, mig: &MigrationId, pass: u32) -> Result<PassProgress> {
        let mut con = self.con();
        let tasks_total: Option<u64> = con
            .hget(self.keys.migration(mig), format!("p{pass}:tasks"))
            .await?;
        let tasks_done: u64 = con.scard(self.keys.done_tasks(mig, pass)).await?;
        let failed: HashMap<String, String> =
            con.hgetall(self.keys.failed_tasks(mig, pass)).await?;
        let mut tasks_failed: Vec<_> = failed.into_iter().collect();
        tasks_failed.sort();
        let ids: Vec<String> = con.lrange(self.keys.mailboxes(mig), 0, -1).await?;
        let mut mailboxes = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hgetall(self.keys.mailbox(mig, &MailboxId(id.clone())).stats());
            }
            let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
            for (id, m) in chunk.iter().zip(maps) {
                mailboxes.push(mailbox_progress(MailboxId(id.clone()), pass, &m));
            }
        }
        Ok(PassProgress {
            pass,
            tasks_total: tasks_total.unwrap_or(u64::MAX),
            tasks_done,
            tasks_failed,
            mailboxes,
        })
    }
}

/// A fresh ledger epoch: 128 random bits in hex.
pub(crate) fn new_epoch() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// A mailbox's progress in `pass` from its counters (field -> value, as the Redis hash
/// `<tag>:st` holds them and the embedded ledger keeps them too).
pub(crate) fn mailbox_progress(
    mailbox: MailboxId,
    pass: u32,
    m: &HashMap<String, String>,
) -> MailboxProgress {
    let n = |f: &str| {
        m.get(f)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0) as u64
    };
    let p = |f: &str| n(&format!("p{pass}:{f}"));
    MailboxProgress {
        mailbox,
        source_msgs: p("source"),
        source_bytes: p("source_bytes"),
        planned_msgs: p("planned"),
        planned_bytes: p("planned_bytes"),
        copied_msgs: p("msgs"),
        copied_bytes: p("bytes"),
        failed_msgs: p("failed"),
        total_msgs: n("msgs"),
        tasks: p("tasks"),
        tasks_done: p("tasks_done"),
        error: m.get(&format!("p{pass}:error")).cloned(),
    }
}
