//! The ledger's operations, each dispatched to the backend in use. The Redis versions
//! live in `records`, `lease`, `permits` and `registry` (their atomic parts in Lua,
//! `scripts`); the embedded ones in `embedded`, with the same semantics.

use crate::{
    Budget, FolderCounts, FolderMeta, FolderReport, Lease, Ledger, MailboxProgress, PassProgress,
    Permit, PermitSpec, RecordEntry, Result,
};
use mailhaul_proto::ledger::{Record, TargetRef};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{FolderId, MailboxId, MigrationId, Uid, UidValidity};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Calls the same method, with the same arguments, on whichever backend `self` is.
macro_rules! on_backend {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Ledger::Redis(l) => l.$method($($arg),*).await,
            Ledger::Embedded(l) => l.$method($($arg),*).await,
        }
    };
}

impl Ledger {
    /// Tries to take the lease on `task`'s slice for `ttl`. `None` if another worker
    /// holds it.
    ///
    /// # Errors
    /// [`crate::LedgerError::Vanished`] when the ledger is not the one the task was
    /// planned against (it carries another epoch, or none); backend errors.
    pub async fn acquire_lease(&self, task: &FolderTask, ttl: Duration) -> Result<Option<Lease>> {
        on_backend!(self.acquire_lease(task, ttl))
    }

    /// Extends the lease for its TTL, or takes it again if it expired and nobody took
    /// it since (an expired lease is not a lost one).
    ///
    /// # Errors
    /// [`crate::LedgerError::Fenced`] when a newer worker took it (saying whether that
    /// worker holds it now), [`crate::LedgerError::Vanished`]; backend errors.
    pub async fn renew_lease(&self, lease: &Lease) -> Result<()> {
        on_backend!(self.renew_lease(lease))
    }

    /// Gives the lease up (no-op if it already expired or was taken over).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        on_backend!(self.release_lease(lease))
    }

    /// Records landed messages atomically, under the lease. Returns how many were new
    /// (a redone slice re-records nothing twice and counts nothing twice). Every fenced
    /// write (this one, [`Ledger::mark_pending`], [`Ledger::record_failure`],
    /// [`Ledger::claim_target`]) takes an expired lease that nobody took again, and
    /// refuses when a newer worker took it or the ledger lost the task's epoch.
    ///
    /// # Errors
    /// [`crate::LedgerError::Fenced`], [`crate::LedgerError::Vanished`]; backend errors.
    pub async fn record(
        &self,
        lease: &Lease,
        pass: u32,
        fid: &FolderId,
        uv: UidValidity,
        entries: &[RecordEntry],
    ) -> Result<u64> {
        on_backend!(self.record(lease, pass, fid, uv, entries))
    }

    /// Marks UIDs as about to be sent. After a crash these are the only messages that may
    /// be on the target without a record, so only they need a lookup before resending.
    ///
    /// # Errors
    /// [`crate::LedgerError::Fenced`]; backend errors.
    pub async fn mark_pending(
        &self,
        lease: &Lease,
        fid: &FolderId,
        uv: UidValidity,
        uids: &[Uid],
    ) -> Result<()> {
        on_backend!(self.mark_pending(lease, fid, uv, uids))
    }

    /// Records a message that could not be migrated, with the reason users will read.
    ///
    /// # Errors
    /// [`crate::LedgerError::Fenced`]; backend errors.
    pub async fn record_failure(
        &self,
        lease: &Lease,
        pass: u32,
        fid: &FolderId,
        uv: UidValidity,
        uid: Uid,
        reason: &str,
    ) -> Result<()> {
        on_backend!(self.record_failure(lease, pass, fid, uv, uid, reason))
    }

    /// Claims a copy on the target for a message found there (after a crash, or when
    /// re-matching a folder whose UIDVALIDITY changed). `false` if another lease claimed
    /// it (the same lease claiming again, a retry, is granted).
    ///
    /// # Errors
    /// [`crate::LedgerError::Fenced`]; backend errors.
    pub async fn claim_target(
        &self,
        lease: &Lease,
        fid: &FolderId,
        target: &TargetRef,
    ) -> Result<bool> {
        on_backend!(self.claim_target(lease, fid, target))
    }

    /// Assigns (or looks up) the numeric ids that stand in for POP3 UIDLs, in order.
    /// A UIDL keeps its id forever, so delta passes and redeliveries agree.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn assign_ids(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uidls: &[String],
    ) -> Result<Vec<Uid>> {
        on_backend!(self.assign_ids(mig, mbx, fid, uidls))
    }

    /// The records of these UIDs that exist.
    ///
    /// # Errors
    /// Backend errors; a stored value this build cannot read.
    pub async fn records_of(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, Record>> {
        on_backend!(self.records_of(mig, mbx, fid, uv, uids))
    }

    /// Every record of a folder epoch, in UID order (for recovery and re-matching).
    ///
    /// # Errors
    /// Backend errors; a stored value this build cannot read.
    pub async fn all_records(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<Vec<(Uid, Record)>> {
        on_backend!(self.all_records(mig, mbx, fid, uv))
    }

    /// UIDs marked in flight for a folder epoch.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn pending(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<HashSet<Uid>> {
        on_backend!(self.pending(mig, mbx, fid, uv))
    }

    /// Target copies claimed by recovery or re-matching in a folder.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn claimed(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
    ) -> Result<HashSet<TargetRef>> {
        on_backend!(self.claimed(mig, mbx, fid))
    }

    /// Failed messages of a folder epoch: UID -> reason.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn failures(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
    ) -> Result<BTreeMap<Uid, String>> {
        on_backend!(self.failures(mig, mbx, fid, uv))
    }

    /// Waits until a connection permit is free, then takes it. `None` after `max_wait`.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn acquire_permit(
        &self,
        spec: &PermitSpec,
        max_wait: Duration,
    ) -> Result<Option<Permit>> {
        on_backend!(self.acquire_permit(spec, max_wait))
    }

    /// Gives a permit back at once.
    ///
    /// # Errors
    /// Redis errors (the permit then lapses by itself).
    pub async fn release_permit(&self, permit: Permit) -> Result<()> {
        match self {
            Ledger::Redis(l) => l.release_permit(permit).await,
            Ledger::Embedded(l) => {
                l.release_permit(permit);
                Ok(())
            }
        }
    }

    /// Adapts the semaphore's limit to the server's throttle signals (AIMD, global across
    /// workers): `throttled` halves it (at most once a second, never below 1); a success
    /// grows it by `step / limit`, back up to `spec.limit`. Returns the limit now in force.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn adapt_limit(&self, spec: &PermitSpec, throttled: bool, step: f64) -> Result<f64> {
        match self {
            Ledger::Redis(l) => l.adapt_limit(spec, throttled, step).await,
            Ledger::Embedded(l) => Ok(l.adapt_limit(spec, throttled, step)),
        }
    }

    /// Takes one request carrying `bytes` from the mailbox's request and byte budgets,
    /// or says how long to wait before asking again ([`Duration::ZERO`] = admitted).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn spend_budget(
        &self,
        spec: &PermitSpec,
        budget: &Budget,
        bytes: u64,
    ) -> Result<Duration> {
        on_backend!(self.spend_budget(spec, budget, bytes))
    }

    /// How many permits are held now for `spec` (for tests and `status`).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn permits_held(&self, spec: &PermitSpec) -> Result<u64> {
        match self {
            Ledger::Redis(l) => l.permits_held(spec).await,
            Ledger::Embedded(l) => Ok(l.permits_held(spec)),
        }
    }

    /// Registers (or re-opens) a migration and starts a new pass; returns its number.
    /// The first time a migration is recorded it gets its ledger epoch
    /// ([`Ledger::epoch`]); every pass stamps it on each of `mailboxes`.
    ///
    /// # Errors
    /// Backend errors; an embedded state directory that holds another migration.
    pub async fn begin_pass(
        &self,
        mig: &MigrationId,
        tenant: &str,
        mailboxes: &[MailboxId],
    ) -> Result<u32> {
        on_backend!(self.begin_pass(mig, tenant, mailboxes))
    }

    /// The latest pass of a migration, or `None` if it is unknown.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn latest_pass(&self, mig: &MigrationId) -> Result<Option<u32>> {
        on_backend!(self.latest_pass(mig))
    }

    /// Records the folder's UIDVALIDITY seen at discovery; a changed one voids the old
    /// records (kept for re-matching). Returns the folder's epochs.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn observe_folder(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        uv: UidValidity,
        name: &str,
        target_name: &str,
    ) -> Result<FolderMeta> {
        on_backend!(self.observe_folder(mig, mbx, fid, uv, name, target_name))
    }

    /// Stores what the latest planning counted in a folder (for `report`), and indexes
    /// the folder under its mailbox.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn record_folder_counts(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
        counts: FolderCounts,
    ) -> Result<()> {
        on_backend!(self.record_folder_counts(mig, mbx, fid, counts))
    }

    /// What the ledger knows of every folder of a mailbox, for `report`.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn folder_reports(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
    ) -> Result<Vec<FolderReport>> {
        on_backend!(self.folder_reports(mig, mbx))
    }

    /// The folder's epochs as last observed, if any.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn folder_meta(
        &self,
        mig: &MigrationId,
        mbx: &MailboxId,
        fid: &FolderId,
    ) -> Result<Option<FolderMeta>> {
        on_backend!(self.folder_meta(mig, mbx, fid))
    }

    /// Stores what discovery found for a mailbox in this pass.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn set_mailbox_plan(
        &self,
        mig: &MigrationId,
        pass: u32,
        p: &MailboxProgress,
    ) -> Result<()> {
        on_backend!(self.set_mailbox_plan(mig, pass, p))
    }

    /// Sets how many tasks a pass has; the pass is finished when that many are done.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn set_pass_tasks(&self, mig: &MigrationId, pass: u32, total: u64) -> Result<()> {
        on_backend!(self.set_pass_tasks(mig, pass, total))
    }

    /// Marks a task finished (idempotent: a redelivered task counts once).
    ///
    /// # Errors
    /// [`crate::LedgerError::Vanished`] when the ledger is not the task's; backend errors.
    pub async fn task_done(&self, task: &FolderTask) -> Result<()> {
        on_backend!(self.task_done(task))
    }

    /// Marks a task given up, with the reason, and finished.
    ///
    /// # Errors
    /// [`crate::LedgerError::Vanished`] when the ledger is not the task's; backend errors.
    pub async fn task_failed(&self, task: &FolderTask, reason: &str) -> Result<()> {
        on_backend!(self.task_failed(task, reason))
    }

    /// Records as failed, with `reason`, every one of `uids` that has no record: the
    /// messages of a task that gave up for good, so the pass's counts, `report` and the
    /// exit code account for them. A message that failed on its own keeps its words;
    /// a failure counts once per pass. Returns how many were marked.
    ///
    /// # Errors
    /// [`crate::LedgerError::Vanished`] when the ledger is not the task's; backend errors.
    pub async fn fail_unrecorded(
        &self,
        task: &FolderTask,
        uids: &[Uid],
        reason: &str,
    ) -> Result<u64> {
        on_backend!(self.fail_unrecorded(task, uids, reason))
    }

    /// The migration's ledger epoch: a random id written when the migration was first
    /// recorded ([`Ledger::begin_pass`]). `None` when this ledger has never heard of the
    /// migration — a first pass, or a ledger that lost its data; the coordinator tells
    /// them apart with the epoch it keeps beside the manifest.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn epoch(&self, mig: &MigrationId) -> Result<Option<String>> {
        on_backend!(self.epoch(mig))
    }

    /// Marks the migration as rebuilding its ledger from source and target (or clears
    /// the mark): while it is set, every pass looks each message up on the target before
    /// copying it, so an interrupted rebuild goes on in the next pass.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn set_rebuilding(&self, mig: &MigrationId, rebuilding: bool) -> Result<()> {
        on_backend!(self.set_rebuilding(mig, rebuilding))
    }

    /// Whether a rebuild of the ledger is under way (see [`Ledger::set_rebuilding`]).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn rebuilding(&self, mig: &MigrationId) -> Result<bool> {
        on_backend!(self.rebuilding(mig))
    }

    /// Reads a pass's progress, per mailbox in manifest order.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn progress(&self, mig: &MigrationId, pass: u32) -> Result<PassProgress> {
        on_backend!(self.progress(mig, pass))
    }
}
