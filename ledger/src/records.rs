//! Per-message records: what landed where, what is in flight, what failed and why.

use crate::{Lease, LedgerError, RedisLedger, Result, fence_answer, scripts};
use mailhaul_proto::ledger::{MailboxKeys, Record, TargetRef, bucket_of};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{FolderId, MailboxId, MigrationId, Uid, UidValidity};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One landed message, ready to be recorded.
#[derive(Debug, Clone)]
pub struct RecordEntry {
    /// Source UID.
    pub uid: Uid,
    /// Where it went and its content hash.
    pub record: Record,
    /// Size in bytes (for the counters).
    pub size: u64,
}

impl RedisLedger {
    /// Records landed messages atomically, under the lease. Returns how many were new
    /// (a redone slice re-records nothing twice and counts nothing twice).
    ///
    /// # Errors
    /// [`LedgerError::Fenced`] if the lease was lost; Redis errors.
    pub async fn record(
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
        let k = lease.mailbox();
        let mut inv = lease.fence(&scripts::RECORD);
        inv.key(k.pending(fid, uv))
            .key(k.failures(fid, uv))
            .key(k.buckets(fid, uv));
        inv.arg(pass);
        for e in entries {
            let b = bucket_of(e.uid);
            inv.key(k.records(fid, uv, b));
            inv.arg(e.uid.0).arg(e.record.encode()).arg(e.size).arg(b);
        }
        let n: i64 = inv.invoke_async(&mut self.con()).await?;
        Ok(fence_answer(n)? as u64)
    }

    /// Marks UIDs as about to be sent. After a crash these are the only messages that may
    /// be on the target without a record, so only they need a lookup before resending.
    ///
    /// # Errors
    /// [`LedgerError::Fenced`]; Redis errors.
    pub async fn mark_pending(
        &self,
        lease: &Lease,
        fid: &FolderId,
        uv: UidValidity,
        uids: &[Uid],
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut inv = lease.fence(&scripts::MARK_PENDING);
        inv.key(lease.mailbox().pending(fid, uv));
        for u in uids {
            inv.arg(u.0);
        }
        let n: i64 = inv.invoke_async(&mut self.con()).await?;
        fence_answer(n).map(|_| ())
    }

    /// Records a message that could not be migrated, with the reason users will read.
    ///
    /// # Errors
    /// [`LedgerError::Fenced`]; Redis errors.
    pub async fn record_failure(
        &self,
        lease: &Lease,
        pass: u32,
        fid: &FolderId,
        uv: UidValidity,
        uid: Uid,
        reason: &str,
    ) -> Result<()> {
        let k = lease.mailbox();
        let n: i64 = lease
            .fence(&scripts::FAIL)
            .key(k.pending(fid, uv))
            .key(k.failures(fid, uv))
            .arg(pass)
            .arg(uid.0)
            .arg(reason)
            .invoke_async(&mut self.con())
            .await?;
        fence_answer(n).map(|_| ())
    }

    /// Records as failed, with `reason`, every one of `uids` that has no record: the
    /// messages of a task that gave up for good, so the pass's counts, `report` and the
    /// exit code account for them. A message that failed on its own keeps its words.
    /// Returns how many were marked.
    ///
    /// # Errors
    /// [`LedgerError::Vanished`] when the ledger is not the task's; Redis errors.
    pub async fn fail_unrecorded(
        &self,
        task: &FolderTask,
        uids: &[Uid],
        reason: &str,
    ) -> Result<u64> {
        let k = self.keys.mailbox(&task.migration, &task.mailbox);
        let (fid, uv) = (&task.folder.id, task.uid_validity);
        let mut marked = 0;
        for chunk in uids.chunks(500) {
            let mut inv = scripts::FAIL_UNRECORDED.prepare_invoke();
            inv.key(k.stats()).key(k.failures(fid, uv));
            inv.arg(task.ledger_epoch.as_deref().unwrap_or(""))
                .arg(task.pass)
                .arg(reason);
            for u in chunk {
                inv.key(k.records(fid, uv, bucket_of(*u))).arg(u.0);
            }
            let n: i64 = inv.invoke_async(&mut self.con()).await?;
            marked += fence_answer(n)? as u64;
        }
        Ok(marked)
    }

    /// Claims a copy on the target for a message found there (after a crash, or when
    /// re-matching a folder whose UIDVALIDITY changed). `false` if already claimed.
    ///
    /// # Errors
    /// [`LedgerError::Fenced`]; Redis errors.
    pub async fn claim_target(
        &self,
        lease: &Lease,
        fid: &FolderId,
        target: &TargetRef,
    ) -> Result<bool> {
        let n: i64 = lease
            .fence(&scripts::CLAIM)
            .key(lease.mailbox().claimed(fid))
            .key(lease.mailbox().claimers(fid))
            .arg(target.encode())
            .invoke_async(&mut self.con())
            .await?;
        Ok(fence_answer(n)? == 1)
    }

    /// Assigns (or looks up) the numeric ids that stand in for POP3 UIDLs, in order.
    /// A UIDL keeps its id forever, so delta passes and redeliveries agree.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn assign_ids(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uidls: &[String],
    ) -> Result<Vec<Uid>> {
        let key = self.keys.mailbox(mig, mbx).uidl_ids(fid);
        let mut out = Vec::with_capacity(uidls.len());
        for chunk in uidls.chunks(1000) {
            let mut inv = scripts::ASSIGN_IDS.prepare_invoke();
            inv.key(&key);
            for u in chunk {
                inv.arg(u);
            }
            let ids: Vec<u32> = inv.invoke_async(&mut self.con()).await?;
            out.extend(ids.into_iter().map(Uid));
        }
        Ok(out)
    }

    /// The records of these UIDs that exist (one pipelined HMGET per bucket).
    ///
    /// # Errors
    /// Redis errors; a stored value this build cannot read.
    pub async fn records_of(
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
        let k = self.keys.mailbox(mig, mbx);
        let mut by_bucket: BTreeMap<u32, Vec<Uid>> = BTreeMap::new();
        for &u in uids {
            by_bucket.entry(bucket_of(u)).or_default().push(u);
        }
        let mut pipe = redis::pipe();
        for (b, us) in &by_bucket {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(k.records(fid, uv, *b));
            for u in us {
                cmd.arg(u.0);
            }
            pipe.add_command(cmd);
        }
        let replies: Vec<Vec<Option<String>>> = pipe.query_async(&mut self.con()).await?;
        let mut out = HashMap::new();
        for ((b, us), vals) in by_bucket.iter().zip(replies) {
            for (u, v) in us.iter().zip(vals) {
                if let Some(v) = v {
                    let rec = Record::decode(&v).ok_or_else(|| LedgerError::Corrupt {
                        key: k.records(fid, uv, *b),
                        value: v.clone(),
                    })?;
                    out.insert(*u, rec);
                }
            }
        }
        Ok(out)
    }

    /// Every record of a folder epoch (for recovery and re-matching, which are rare).
    ///
    /// # Errors
    /// Redis errors; a stored value this build cannot read.
    pub async fn all_records(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<Vec<(Uid, Record)>> {
        let k = self.keys.mailbox(mig, mbx);
        all_records_in(self, &k, fid, uv).await
    }

    /// UIDs marked in flight for a folder epoch.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn pending(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<HashSet<Uid>> {
        let k = self.keys.mailbox(mig, mbx);
        let v: Vec<u32> = redis::cmd("SMEMBERS")
            .arg(k.pending(fid, uv))
            .query_async(&mut self.con())
            .await?;
        Ok(v.into_iter().map(Uid).collect())
    }

    /// Target copies claimed by recovery or re-matching in a folder.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn claimed(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
    ) -> Result<HashSet<TargetRef>> {
        let k = self.keys.mailbox(mig, mbx);
        let v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(k.claimed(fid))
            .query_async(&mut self.con())
            .await?;
        v.into_iter()
            .map(|s| {
                TargetRef::decode(&s).ok_or_else(|| LedgerError::Corrupt {
                    key: k.claimed(fid),
                    value: s,
                })
            })
            .collect()
    }

    /// Failed messages of a folder epoch: UID -> reason.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn failures(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<BTreeMap<Uid, String>> {
        let k = self.keys.mailbox(mig, mbx);
        let v: HashMap<u32, String> = redis::cmd("HGETALL")
            .arg(k.failures(fid, uv))
            .query_async(&mut self.con())
            .await?;
        // Stored as `<pass>|<reason>` (see the FAIL script).
        Ok(v.into_iter()
            .map(|(u, r)| {
                (
                    Uid(u),
                    r.split_once('|')
                        .map_or(r.clone(), |(_, reason)| reason.to_owned()),
                )
            })
            .collect())
    }
}

async fn all_records_in(
    l: &RedisLedger,
    k: &MailboxKeys,
    fid: &FolderId,
    uv: UidValidity,
) -> Result<Vec<(Uid, Record)>> {
    let buckets: Vec<u32> = redis::cmd("SMEMBERS")
        .arg(k.buckets(fid, uv))
        .query_async(&mut l.con())
        .await?;
    let mut out = Vec::new();
    for chunk in buckets.chunks(256) {
        let mut pipe = redis::pipe();
        for b in chunk {
            pipe.cmd("HGETALL").arg(k.records(fid, uv, *b));
        }
        let maps: Vec<HashMap<u32, String>> = pipe.query_async(&mut l.con()).await?;
        for (b, m) in chunk.iter().zip(maps) {
            for (u, v) in m {
                let rec = Record::decode(&v).ok_or_else(|| LedgerError::Corrupt {
                    key: k.records(fid, uv, *b),
                    value: v.clone(),
                })?;
                out.push((Uid(u), rec));
            }
        }
    }
    out.sort_by_key(|(u, _)| *u);
    Ok(out)
}
