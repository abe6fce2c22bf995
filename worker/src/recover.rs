//! Finding messages on the target that the ledger does not record yet — the only way a
//! duplicate could arise.
//!
//! Two cases, both rare and both bounded to the slice at hand:
//! - **In flight:** a worker died between the target accepting a batch and the ledger
//!   recording it (or an HTTP target failed in a way that may have come after the
//!   commit: a 503, a timeout). Those UIDs are in the slice's pending set; each is
//!   looked up on the target. IMAP: by Message-ID and exact size, confirmed by content
//!   hash, so two different messages that share a Message-ID (or have none) are never
//!   confused. Exchange (Graph, EWS) rewrites what it stores, so there the Message-ID is
//!   the identity (one is given to messages without, from their content): copies with
//!   it that no record or claim holds are taken one per message, so k source messages
//!   sharing an id never take more than the k copies on the target.
//! - **Re-match:** the source folder's UIDVALIDITY changed, voiding the UIDs the old
//!   records are keyed by. The old records still say which target copy holds which
//!   content, so each message is matched by content hash to an unclaimed old copy that
//!   still exists on the target, instead of being copied again.
//!
//! A target copy (UID or item id) is claimed in the ledger before it is recorded, so
//! two source messages with identical bytes never both map to one copy.

use crate::connect::Side;
use crate::slice::{Slice, SliceError, on};
use mailhaul_connectors::imap::RawMessage;
use mailhaul_connectors::target::{TargetSession, has_flag};
use mailhaul_ledger::{Lease, Ledger, RecordEntry};
use mailhaul_proto::UidValidity;
use mailhaul_proto::ledger::{Delivery, Record, TargetRef};
use mailhaul_proto::task::FolderTask;
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
    pool: HashMap<u64, Vec<TargetRef>>,
    /// Target copies that already stand for some source message.
    taken: HashSet<TargetRef>,
    /// How the copies of voided records got there, kept for their new records.
    deliveries: HashMap<TargetRef, Delivery>,
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
            let mut taken: HashSet<TargetRef> = self
                .ledger
                .claimed(&t.migration, &t.mailbox, &t.folder.id)
                .await?;
            for (_, r) in self
                .ledger
                .all_records(&t.migration, &t.mailbox, &t.folder.id, t.uid_validity)
                .await?
            {
                taken.insert(r.target);
            }
            let mut pool: HashMap<u64, Vec<TargetRef>> = HashMap::new();
            let mut deliveries = HashMap::new();
            for uv in &self.voided {
                for (_, r) in self
                    .ledger
                    .all_records(&t.migration, &t.mailbox, &t.folder.id, *uv)
                    .await?
                {
                    if !taken.contains(&r.target) {
                        if let Some(d) = r.delivery {
                            deliveries.insert(r.target.clone(), d);
                        }
                        pool.entry(r.hash).or_default().push(r.target);
                    }
                }
            }
            self.loaded = Some(Loaded {
                pool,
                taken,
                deliveries,
            });
        }
        Ok(self.loaded.as_mut().expect("just loaded"))
    }

    /// Notes copies this slice just made, so a later lookup (a message with the same
    /// bytes further on) never takes one of them for its own.
    pub(crate) fn uploaded<'r>(&mut self, copies: impl IntoIterator<Item = &'r TargetRef>) {
        if let Some(l) = self.loaded.as_mut() {
            l.taken.extend(copies.into_iter().cloned());
        }
    }

    /// Looks for `m` in the target `folder`; if found, claims and records it and
    /// returns true. `search`: look it up by identity (it may have been sent by an
    /// attempt that did not record it); otherwise only re-match old copies.
    pub(crate) async fn resolve(
        &mut self,
        target: &mut TargetSession,
        folder: &str,
        m: &RawMessage,
        search: bool,
    ) -> Result<bool, SliceError> {
        let hash = m.body.hash();
        let size = m.body.len();
        let rematching = self.rematching();
        let draft = has_flag(&m.flags, "\\Draft");
        let loaded = self.load().await?;

        let mut candidates: Vec<TargetRef> = Vec::new();
        if rematching && let Some(copies) = loaded.pool.get_mut(&hash) {
            // Old records carry the hash, but the copy may have been deleted since:
            // check it is still there.
            copies.retain(|c| !loaded.taken.contains(c));
            if !copies.is_empty() {
                candidates = target
                    .still_there(folder, &m.body, draft, copies)
                    .await
                    .map_err(on(Side::Target))?;
            }
        }
        if candidates.is_empty() && search {
            candidates = target
                .find_copies(folder, &m.body, draft)
                .await
                .map_err(on(Side::Target))?
                .into_iter()
                .filter(|c| !loaded.taken.contains(c))
                .collect();
        }
        for c in candidates {
            // The copy's state first, then the claim: a copy whose state could not be set
            // stays unclaimed, so the retry finds it and sets it (importMime's PATCH).
            let delivery = if search {
                target
                    .restore(folder, &c, m)
                    .await
                    .map_err(on(Side::Target))?
            } else {
                self.loaded
                    .as_ref()
                    .and_then(|l| l.deliveries.get(&c).copied())
            };
            if !self
                .ledger
                .claim_target(&self.lease, &self.task.folder.id, &c)
                .await?
            {
                continue;
            }
            let loaded = self.loaded.as_mut().expect("loaded above");
            loaded.taken.insert(c.clone());
            if let Some(copies) = loaded.pool.get_mut(&hash) {
                copies.retain(|u| *u != c);
            }
            let t = &self.task;
            tracing::debug!(task_id = %t.task_id, uid = m.uid.0, target = %c, "Found on the target; recorded without copying.");
            let entry = RecordEntry {
                uid: m.uid,
                record: Record {
                    target: c,
                    hash,
                    delivery,
                },
                size,
            };
            self.ledger
                .record(&self.lease, t.pass, &t.folder.id, t.uid_validity, &[entry])
                .await?;
            return Ok(true);
        }
        Ok(false)
    }
}
