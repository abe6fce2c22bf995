//! Finding messages on the target that the ledger does not record yet — the only way a
//! duplicate could arise.
//!
//! Two cases, both rare and both bounded to the slice at hand:
//! - **In flight:** a worker died between the target accepting a batch and the ledger
//!   recording it. Those UIDs are in the slice's pending set; each is looked up on the
//!   target by Message-ID and exact size, then confirmed by content hash, so two
//!   different messages that share a Message-ID (or have none) are never confused.
//! - **Re-match:** the source folder's UIDVALIDITY changed, voiding the UIDs the old
//!   records are keyed by. The old records still say which target copy holds which
//!   content, so each message is matched by content hash to an unclaimed old copy that
//!   still exists on the target, instead of being copied again.
//!
//! A target UID is claimed in the ledger before it is recorded, so two source messages
//! with identical bytes never both map to one copy.

use crate::connect::Side;
use crate::slice::{Slice, SliceError, on};
use mailhaul_connectors::imap::{ImapSession, RawMessage};
use mailhaul_ledger::{Lease, Ledger, RecordEntry};
use mailhaul_proto::inspect::message_id;
use mailhaul_proto::ledger::{Record, content_hash};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{Uid, UidValidity};
use std::collections::{HashMap, HashSet};

pub(crate) struct TargetMatcher {
    ledger: Ledger,
    task: FolderTask,
    lease: Lease,
    voided: Vec<UidValidity>,
    loaded: Option<Loaded>,
}

struct Loaded {
    /// Content hash -> target copies recorded under a voided UIDVALIDITY.
    pool: HashMap<u64, Vec<Uid>>,
    /// Target UIDs that already stand for some source message.
    taken: HashSet<Uid>,
}

impl TargetMatcher {
    pub(crate) fn new(slice: &Slice<'_>, voided: Vec<UidValidity>) -> Self {
        TargetMatcher {
            ledger: slice.ledger().clone(),
            task: slice.task().clone(),
            lease: slice.lease().clone(),
            voided,
            loaded: None,
        }
    }

    /// Whether the folder is being re-matched after a UIDVALIDITY change.
    pub(crate) fn rematching(&self) -> bool {
        !self.voided.is_empty()
    }

    async fn load(&mut self) -> Result<&mut Loaded, SliceError> {
        if self.loaded.is_none() {
            let t = &self.task;
            let mut taken: HashSet<Uid> = self
                .ledger
                .claimed(&t.migration, &t.mailbox, &t.folder.id)
                .await?;
            for (_, r) in self
                .ledger
                .all_records(&t.migration, &t.mailbox, &t.folder.id, t.uid_validity)
                .await?
            {
                taken.insert(r.target_uid);
            }
            let mut pool: HashMap<u64, Vec<Uid>> = HashMap::new();
            for uv in &self.voided {
                for (_, r) in self
                    .ledger
                    .all_records(&t.migration, &t.mailbox, &t.folder.id, *uv)
                    .await?
                {
                    if !taken.contains(&r.target_uid) {
                        pool.entry(r.hash).or_default().push(r.target_uid);
                    }
                }
            }
            self.loaded = Some(Loaded { pool, taken });
        }
        Ok(self.loaded.as_mut().expect("just loaded"))
    }

    /// Looks for `m` on the target; if found, claims and records it and returns true.
    pub(crate) async fn resolve(
        &mut self,
        target: &mut ImapSession,
        m: &RawMessage,
        search: bool,
    ) -> Result<bool, SliceError> {
        let hash = content_hash(&m.body);
        let size = m.body.len() as u32;
        let rematching = self.rematching();
        let loaded = self.load().await?;

        let mut candidates: Vec<Uid> = Vec::new();
        if rematching && let Some(copies) = loaded.pool.get_mut(&hash) {
            // Old records carry the hash, but the copy may have been deleted since:
            // check it still exists with the right size.
            copies.retain(|u| !loaded.taken.contains(u));
            if !copies.is_empty() {
                let meta = target.fetch_meta(copies).await.map_err(on(Side::Target))?;
                let alive: HashSet<Uid> = meta
                    .iter()
                    .filter(|(_, _, _, s)| *s == size)
                    .map(|(u, ..)| *u)
                    .collect();
                candidates.extend(copies.iter().filter(|u| alive.contains(u)));
            }
        }
        if candidates.is_empty() && search {
            let id = message_id(&m.body);
            for c in target
                .find_candidates(id.as_deref(), size)
                .await
                .map_err(on(Side::Target))?
            {
                if loaded.taken.contains(&c) {
                    continue;
                }
                let bodies = target.fetch_bodies(&[c]).await.map_err(on(Side::Target))?;
                if bodies
                    .iter()
                    .any(|(u, b)| *u == c && content_hash(b) == hash)
                {
                    candidates.push(c);
                }
            }
        }
        for c in candidates {
            if !self
                .ledger
                .claim_target(&self.lease, &self.task.folder.id, c)
                .await?
            {
                continue;
            }
            let loaded = self.loaded.as_mut().expect("loaded above");
            loaded.taken.insert(c);
            if let Some(copies) = loaded.pool.get_mut(&hash) {
                copies.retain(|u| *u != c);
            }
            let entry = RecordEntry {
                uid: m.uid,
                record: Record {
                    target_uid: c,
                    hash,
                },
                size: u64::from(size),
            };
            let t = &self.task;
            self.ledger
                .record(&self.lease, t.pass, &t.folder.id, t.uid_validity, &[entry])
                .await?;
            tracing::debug!(task_id = %t.task_id, uid = m.uid.0, target_uid = c.0, "Found on the target; recorded without copying.");
            return Ok(true);
        }
        Ok(false)
    }
}
