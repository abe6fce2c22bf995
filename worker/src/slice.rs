//! Copying one slice: the heart of the worker.
//!
//! For a slice (a UID range of one folder) the worker:
//! 1. EXAMINEs the source folder and checks its UIDVALIDITY against the task's;
//! 2. lists the slice's UIDs and sizes, and drops those the ledger already records;
//! 3. resolves on the target the messages a dead worker may already have sent (the
//!    slice's in-flight set) and, after a UIDVALIDITY change, the messages the void
//!    epoch's records point to (re-matching by content hash) — these are claimed and
//!    recorded, not sent again; a task of a pass that rebuilds a lost ledger
//!    (`mailhaul migrate --rebuild-ledger`) looks every message up this way;
//! 4. sends the rest in batches bounded by count and bytes (MULTIAPPEND where offered),
//!    fetching the next batch while the current one uploads, marking each batch in
//!    flight before sending and recording it as it lands.
//!
//! A message the target refuses for good, or that the source cannot hand over as listed
//! (left out of the FETCH answer, another size, unparsable, too big for the spool), is
//! recorded as failed with the reason and the slice goes on; anything transient ends the slice with an error, and its
//! retry starts again from the ledger.

use crate::connect::{Endpoints, Side};
use crate::metrics::Metrics;
use crate::recover::TargetMatcher;
use crate::retry::Backoff;
use crate::source::Source;
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::imap::RawMessage;
use mailhaul_connectors::target::TargetSession;
use mailhaul_ledger::{Lease, Ledger, LedgerError, RecordEntry};
use mailhaul_proto::ledger::Record;
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{ErrorClass, Uid, UidValidity};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Bounds on one upload batch (two batches are in memory at once: one uploading, one
/// being fetched).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Messages per batch.
    pub max_messages: usize,
    /// Bytes per batch (a single larger message goes alone).
    pub max_bytes: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_messages: 64,
            max_bytes: 8 << 20,
        }
    }
}

/// What a slice did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SliceReport {
    /// Messages sent to the target.
    pub copied: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages found already on the target and recorded without sending.
    pub recovered: u64,
    /// Messages that failed for good (recorded with their reason).
    pub failed: u64,
    /// Messages the ledger already had.
    pub skipped: u64,
}

/// Why a slice stopped.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    /// The source or target server failed.
    #[error("{side} server: {source}")]
    Connector {
        /// Which side.
        side: Side,
        /// What went wrong.
        #[source]
        source: ConnectorError,
    },
    /// The ledger failed, or our lease was taken over.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A credential could not be resolved.
    #[error("{0}")]
    Config(String),
    /// No connection permit came free in time.
    #[error("no {0} connection permit came free in time (the mailbox is at its connection limit)")]
    PermitTimeout(Side),
    /// The folder's UIDVALIDITY is not the one the task was planned with.
    #[error(
        "the source folder's UIDVALIDITY changed from {planned} to {found} since planning; run `mailhaul migrate` again to re-match it"
    )]
    FolderChanged {
        /// At planning.
        planned: UidValidity,
        /// Now.
        found: UidValidity,
    },
    /// Shutdown asked us to stop between batches.
    #[error("interrupted by shutdown")]
    Cancelled,
}

impl SliceError {
    /// Retry intent.
    pub fn class(&self) -> ErrorClass {
        match self {
            SliceError::Connector { source, .. } => source.class(),
            SliceError::Ledger(e) => e.class(),
            SliceError::Config(_) | SliceError::FolderChanged { .. } => ErrorClass::Permanent,
            SliceError::PermitTimeout(_) | SliceError::Cancelled => ErrorClass::Transient,
        }
    }

    /// Stage label for `mailhaul_errors_total`.
    pub fn stage(&self) -> &'static str {
        match self {
            SliceError::Connector {
                side: Side::Source, ..
            } => "source",
            SliceError::Connector {
                side: Side::Target, ..
            } => "target",
            SliceError::Ledger(_) => "ledger",
            SliceError::Config(_) => "config",
            SliceError::PermitTimeout(_) => "permit",
            SliceError::FolderChanged { .. } => "plan",
            SliceError::Cancelled => "shutdown",
        }
    }
}

pub(crate) fn on(side: Side) -> impl Fn(ConnectorError) -> SliceError {
    move |source| SliceError::Connector { side, source }
}

/// Everything one slice needs.
pub(crate) struct Slice<'a> {
    pub ledger: &'a Ledger,
    pub metrics: &'a Metrics,
    pub endpoints: &'a Endpoints<'a>,
    pub task: &'a FolderTask,
    pub lease: &'a Lease,
    pub cancel: &'a CancellationToken,
    pub limits: BatchLimits,
}

/// How long one slice may wait out throttling of an HTTP target before it gives the
/// task back to the retry queue.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(600);

/// Tries in a row a transient failure of an HTTP target is waited out within a slice.
const MAX_TRANSIENT_TRIES: u32 = 5;

impl Slice<'_> {
    /// Copies the slice. See the module docs for the steps.
    pub(crate) async fn run(&self) -> Result<SliceReport, SliceError> {
        let t = self.task;
        let (mut source, source_permit) =
            Source::open(self.endpoints, self.ledger, self.metrics).await?;
        let result = async {
            let filters = &self
                .endpoints
                .manifest
                .options_for(self.endpoints.mailbox)
                .filters;
            let listed = source.list(self.ledger, t, filters).await?;
            let uids: Vec<Uid> = listed.iter().map(|(u, _)| *u).collect();
            let recorded = self
                .ledger
                .records_of(
                    &t.migration,
                    &t.mailbox,
                    &t.folder.id,
                    t.uid_validity,
                    &uids,
                )
                .await?;
            let todo: Vec<(Uid, u32)> = listed
                .into_iter()
                .filter(|(u, _)| !recorded.contains_key(u))
                .collect();
            let mut report = SliceReport {
                skipped: recorded.len() as u64,
                ..Default::default()
            };
            if todo.is_empty() {
                return Ok(report);
            }
            let (mut target, target_permit) = self
                .endpoints
                .open_target(self.ledger, self.metrics)
                .await?;
            let r = self
                .copy(&mut source, &mut target, &todo, &mut report)
                .await;
            target.logout().await;
            if let Some(p) = target_permit {
                let _ = self.ledger.release_permit(p).await;
            }
            r.map(|()| report)
        }
        .await;
        source.close().await;
        let _ = self.ledger.release_permit(source_permit).await;
        result
    }

    async fn copy(
        &self,
        source: &mut Source,
        target: &mut TargetSession,
        todo: &[(Uid, u32)],
        report: &mut SliceReport,
    ) -> Result<(), SliceError> {
        let t = self.task;
        // The coordinator created the tree; an IMAP folder that vanished since is
        // created again here. A folder the target refuses for good fails alone: each
        // of its messages is recorded as failed with the server's words (unsent), and
        // the task is done.
        let folder = match target
            .open_folder(&t.folder.target_name, t.folder.target_id.as_deref())
            .await
        {
            Ok(folder) => folder,
            Err(e) if e.class() == ErrorClass::Permanent => {
                let reason = format!(
                    "the target folder {:?} cannot be created or opened: {e}",
                    t.folder.target_name
                );
                tracing::warn!(task_id = %t.task_id, %reason, "Folder not migrated.");
                for (uid, _) in todo {
                    self.record_failed("target", *uid, &reason, report).await?;
                }
                return Ok(());
            }
            Err(e) => return Err(on(Side::Target)(e)),
        };
        let pending = self
            .ledger
            .pending(&t.migration, &t.mailbox, &t.folder.id, t.uid_validity)
            .await?;
        let meta = self
            .ledger
            .folder_meta(&t.migration, &t.mailbox, &t.folder.id)
            .await?;
        let voided = meta.map(|m| m.voided).unwrap_or_default();
        let mut matcher = TargetMatcher::new(self, voided);
        let mut to = Upload {
            target,
            folder: &folder,
            matcher: &mut matcher,
        };

        let batches = plan_batches(todo, self.limits);
        let first = source.fetch(&batches[0]).await?;
        let mut fetched = self.keep_fetched(first, report).await?;
        for i in 0..batches.len() {
            if self.cancel.is_cancelled() {
                return Err(SliceError::Cancelled);
            }
            let current = std::mem::take(&mut fetched);
            let next = batches.get(i + 1);
            let batch = tracing::info_span!(
                "batch",
                task_id = %t.task_id,
                folder = %t.folder.id,
                batch = i,
                messages = current.len(),
                bytes = current.iter().map(|m| m.body.len()).sum::<u64>(),
            );
            let process = self
                .process(&mut to, &pending, current, report)
                .instrument(batch);
            let (done, prefetched) = tokio::join!(process, async {
                match next {
                    Some(uids) => source.fetch(uids).await.map(Some),
                    None => Ok(None),
                }
            });
            done?;
            if let Some(f) = prefetched? {
                fetched = self.keep_fetched(f, report).await?;
            }
        }
        Ok(())
    }

    /// Resolves what may already be on the target, then uploads the rest.
    async fn process(
        &self,
        to: &mut Upload<'_, '_>,
        pending: &HashSet<Uid>,
        msgs: Vec<RawMessage>,
        report: &mut SliceReport,
    ) -> Result<(), SliceError> {
        let mut upload = Vec::with_capacity(msgs.len());
        for m in msgs {
            // As the target will get it (e.g. bare LF made CRLF for Cyrus), before the
            // lookups, so a retry looks for exactly what was sent.
            let (m, changed) = to
                .target
                .prepare(m)
                .await
                .map_err(|e| on(Side::Source)(e.into()))?;
            if let Some(what) = changed {
                tracing::warn!(task_id = %self.task.task_id, uid = m.uid.0, what, "Message changed for the target.");
            }
            // Rebuilding a lost ledger, every message may be on the target already.
            let in_flight = self.task.rebuild || pending.contains(&m.uid);
            if (to.matcher.rematching() || in_flight)
                && to
                    .matcher
                    .resolve(to.target, to.folder, &m, in_flight)
                    .await?
            {
                report.recovered += 1;
                self.metrics
                    .recovered
                    .with_label_values(&[to.target.kind()])
                    .inc();
            } else {
                upload.push(m);
            }
        }
        self.upload(to, &upload, report).await
    }

    /// Marks `msgs` in flight, uploads them, and records each as it is answered. An HTTP
    /// target that throttles or fails for a while is waited out here (its session
    /// survives); the message it stopped at may have been committed, so it is looked up
    /// before it is sent again.
    async fn upload(
        &self,
        to: &mut Upload<'_, '_>,
        msgs: &[RawMessage],
        report: &mut SliceReport,
    ) -> Result<(), SliceError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let t = self.task;
        let kind = to.target.kind();
        let uids: Vec<Uid> = msgs.iter().map(|m| m.uid).collect();
        self.ledger
            .mark_pending(self.lease, &t.folder.id, t.uid_validity, &uids)
            .await?;
        let policy = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        let mut rest = msgs;
        let mut waited = Duration::ZERO;
        let mut tries = 0u32;
        loop {
            let started = Instant::now();
            let span = tracing::info_span!(
                "upload",
                task_id = %t.task_id,
                folder = %t.folder.id,
                target = kind,
                messages = rest.len(),
                bytes = rest.iter().map(|m| m.body.len()).sum::<u64>(),
            );
            let up = to
                .target
                .upload(to.folder, rest)
                .instrument(span.clone())
                .await;
            if let Some(err) = &up.stopped {
                mailhaul_bus::trace::record_error(&span, err);
            }
            drop(span);
            self.metrics
                .upload_seconds
                .with_label_values(&[kind])
                .observe(started.elapsed().as_secs_f64());
            crate::failpoint::appended();
            let answered = up.results.len();
            let mut entries = Vec::new();
            let mut landed = Vec::new();
            for (m, r) in rest.iter().zip(up.results) {
                match r {
                    Ok(copy) => {
                        entries.push(RecordEntry {
                            uid: m.uid,
                            record: Record {
                                target: copy.target,
                                hash: m.body.hash(),
                                delivery: copy.delivery,
                            },
                            size: m.body.len(),
                        });
                        landed.push(m);
                    }
                    Err(e) => self.fail(m, &e, report).await?,
                }
            }
            to.matcher
                .uploaded(entries.iter().map(|e| &e.record.target));
            self.ledger
                .record(self.lease, t.pass, &t.folder.id, t.uid_validity, &entries)
                .await?;
            self.count(report, kind, &landed);
            let Some(err) = up.stopped else {
                return Ok(());
            };
            let class = err.class();
            tries = if answered > 0 { 1 } else { tries + 1 };
            let wait = match policy.delay(class, tries.min(MAX_TRANSIENT_TRIES)) {
                Some(w) if to.target.survives_throttling() => w,
                _ => return Err(on(Side::Target)(err)),
            };
            if (class == ErrorClass::Transient && tries > MAX_TRANSIENT_TRIES)
                || waited + wait > MAX_THROTTLE_WAIT
            {
                return Err(on(Side::Target)(err));
            }
            tracing::debug!(task_id = %t.task_id, %err, ?wait, "Target asked to wait; waiting, then going on.");
            self.metrics
                .throttle_wait_seconds
                .with_label_values(&[kind])
                .inc_by(wait.as_secs_f64());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.cancel.cancelled() => return Err(SliceError::Cancelled),
            }
            waited += wait;
            rest = &rest[answered..];
            // The create that failed may have been committed (a 503 after the write, a
            // timeout): look it up before sending it again.
            if to
                .matcher
                .resolve(to.target, to.folder, &rest[0], true)
                .await?
            {
                report.recovered += 1;
                self.metrics.recovered.with_label_values(&[kind]).inc();
                rest = &rest[1..];
            }
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Records the messages the source could not hand over as failed (each alone, with
    /// its reason) and returns the rest.
    async fn keep_fetched(
        &self,
        f: crate::source::Fetched,
        report: &mut SliceReport,
    ) -> Result<Vec<RawMessage>, SliceError> {
        for (uid, why) in &f.failed {
            tracing::warn!(task_id = %self.task.task_id, uid = uid.0, reason = %why, "Message not migrated.");
            self.record_failed("source", *uid, why, report).await?;
        }
        Ok(f.msgs)
    }

    async fn fail(
        &self,
        m: &RawMessage,
        err: &ConnectorError,
        report: &mut SliceReport,
    ) -> Result<(), SliceError> {
        let t = self.task;
        tracing::warn!(task_id = %t.task_id, uid = m.uid.0, size = m.body.len(), %err, "Message not migrated.");
        self.record_failed(
            "target",
            m.uid,
            &format!("target refused the message: {err}"),
            report,
        )
        .await
    }

    /// Records message `uid` as failed for good with `reason`; `stage` (`source`,
    /// `target`) labels the error metric.
    async fn record_failed(
        &self,
        stage: &'static str,
        uid: Uid,
        reason: &str,
        report: &mut SliceReport,
    ) -> Result<(), SliceError> {
        let t = self.task;
        self.metrics
            .errors
            .with_label_values(&[stage, "permanent"])
            .inc();
        self.ledger
            .record_failure(
                self.lease,
                t.pass,
                &t.folder.id,
                t.uid_validity,
                uid,
                reason,
            )
            .await?;
        report.failed += 1;
        Ok(())
    }

    fn count(&self, report: &mut SliceReport, target: &str, msgs: &[&RawMessage]) {
        let source = self.endpoints.manifest.source.kind.to_string();
        let bytes: u64 = msgs.iter().map(|m| m.body.len()).sum();
        report.copied += msgs.len() as u64;
        report.bytes += bytes;
        self.metrics
            .messages
            .with_label_values(&[source.as_str(), target])
            .inc_by(msgs.len() as u64);
        self.metrics
            .bytes
            .with_label_values(&[source.as_str(), target])
            .inc_by(bytes);
    }

    pub(crate) fn task(&self) -> &FolderTask {
        self.task
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        self.ledger
    }

    pub(crate) fn lease(&self) -> &Lease {
        self.lease
    }
}

/// The target side of a slice in progress.
struct Upload<'s, 'm> {
    target: &'s mut TargetSession,
    folder: &'s str,
    matcher: &'m mut TargetMatcher,
}

/// Cuts the UIDs to copy into batches bounded by count and bytes, in UID order.
pub(crate) fn plan_batches(todo: &[(Uid, u32)], limits: BatchLimits) -> Vec<Vec<(Uid, u32)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0u64;
    for &(uid, size) in todo {
        if !cur.is_empty()
            && (cur.len() >= limits.max_messages || bytes + u64::from(size) > limits.max_bytes)
        {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push((uid, size));
        bytes += u64::from(size);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let limits = BatchLimits {
            max_messages: 3,
            max_bytes: 100,
        };
        let todo: Vec<(Uid, u32)> = [
            (1, 10),
            (2, 10),
            (3, 10),
            (4, 10),
            (5, 95),
            (6, 200),
            (7, 1),
        ]
        .into_iter()
        .map(|(u, s)| (Uid(u), s))
        .collect();
        let b = plan_batches(&todo, limits);
        let b: Vec<Vec<u32>> = b
            .into_iter()
            .map(|v| v.into_iter().map(|(u, _)| u.0).collect())
            .collect();
        assert_eq!(b, vec![vec![1, 2, 3], vec![4], vec![5], vec![6], vec![7]]);
    }

    #[test]
    fn no_batches_for_nothing() {
        assert!(plan_batches(&[], BatchLimits::default()).is_empty());
    }
}
