//! `mailhaul migrate`: one pass of a migration — record it, discover every mailbox with
//! bounded concurrency, create the target trees, publish the tasks interleaved across
//! mailboxes, then (unless detached) follow the workers to the end.

use crate::discover::{MailboxPlan, discover};
use crate::engine::Services;
use crate::follow;
use crate::plan;
use anyhow::Context as _;
use futures_util::StreamExt;
use mailhaul_bus::Bus;
use mailhaul_ledger::{Ledger, MailboxProgress};
use mailhaul_proto::manifest::Manifest;
use mailhaul_proto::task::{FolderRef, FolderTask, TASK_VERSION};
use mailhaul_proto::{MailboxId, TaskId};
use std::time::Duration;
use tracing::Instrument as _;

/// What every task of a pass carries about its ledger.
#[derive(Debug, Clone)]
pub struct PassInfo {
    /// The pass number.
    pub pass: u32,
    /// The ledger's epoch (see [`Ledger::epoch`]).
    pub epoch: String,
    /// Whether the pass rebuilds a lost ledger (every message looked up first).
    pub rebuild: bool,
}

/// What a pass did, for the summary and the exit code.
#[derive(Debug, Clone)]
pub struct PassOutcome {
    /// The pass number.
    pub pass: u32,
    /// Per-mailbox plans.
    pub plans: Vec<MailboxPlan>,
    /// Final progress (when followed).
    pub progress: Option<mailhaul_ledger::PassProgress>,
}

impl PassOutcome {
    /// Whether anything needs the admin's attention: a mailbox that could not be
    /// planned, a task given up, or a message that failed.
    pub fn has_problems(&self) -> bool {
        self.plans.iter().any(|p| p.error.is_some())
            || self.progress.as_ref().is_some_and(|p| {
                !p.tasks_failed.is_empty() || p.mailboxes.iter().any(|m| m.failed_msgs > 0)
            })
    }
}

/// Runs one pass. With `detach`, returns once the tasks are published.
///
/// # Errors
/// Redis or RabbitMQ cannot be reached, or the embedded state directory cannot be used.
/// Mailbox-level problems are not errors: they are in the outcome.
pub async fn migrate(
    manifest: &Manifest,
    services: &Services,
    detach: bool,
    poll: Duration,
) -> anyhow::Result<PassOutcome> {
    // The root of the pass's trace: tasks are published inside it, so every task span a
    // worker opens is its child (the context travels in the AMQP headers).
    let span = tracing::info_span!(
        "migration",
        migration = %manifest.migration,
        mailboxes = manifest.mailboxes.len(),
        pass = tracing::field::Empty,
        tasks = tracing::field::Empty,
        detach,
    );
    let r = run_pass(manifest, services, detach, poll, &span)
        .instrument(span.clone())
        .await;
    if let Err(err) = &r {
        mailhaul_bus::trace::record_error(&span, &format_args!("{err:#}"));
    }
    r
}

async fn run_pass(
    manifest: &Manifest,
    services: &Services,
    detach: bool,
    poll: Duration,
    span: &tracing::Span,
) -> anyhow::Result<PassOutcome> {
    let engine = services.open(manifest).await?;
    let r = pass_on(&engine, manifest, detach, poll, span).await;
    engine.close().await;
    r
}

async fn pass_on(
    engine: &crate::engine::Engine,
    manifest: &Manifest,
    detach: bool,
    poll: Duration,
    span: &tracing::Span,
) -> anyhow::Result<PassOutcome> {
    let (ledger, bus) = (&engine.ledger, &engine.bus);
    engine.finish_leftovers(&manifest.migration).await?;
    let mig = &manifest.migration;
    let ids: Vec<MailboxId> = manifest.mailboxes.iter().map(|m| m.id.clone()).collect();
    let pass = ledger
        .begin_pass(mig, &manifest.tenant, &ids)
        .await
        .context("recording the migration")?;
    span.record("pass", pass);
    tracing::info!(migration = %mig, pass, mailboxes = ids.len(), "Pass started; discovering mailboxes.");

    let concurrency = manifest.options.discovery_concurrency.get() as usize;
    let plans: Vec<MailboxPlan> = futures_util::stream::iter(manifest.mailboxes.iter().enumerate())
        .map(|(i, mbx)| discover(ledger, manifest, mig, i, mbx))
        .buffered(concurrency)
        .collect()
        .await;

    let info = PassInfo {
        pass,
        epoch: ledger
            .epoch(mig)
            .await
            .context("reading the ledger epoch")?
            .unwrap_or_default(),
        rebuild: false,
    };
    let published = publish_plans(ledger, bus, manifest, &info, &plans).await?;
    span.record("tasks", published);
    tracing::info!(migration = %mig, pass, tasks = published, "Tasks published.");

    let progress = if detach {
        None
    } else {
        Some(follow::follow(engine, mig, pass, poll).await?)
    };
    Ok(PassOutcome {
        pass,
        plans,
        progress,
    })
}

/// Records each mailbox's plan for `pass` (counts, tasks, error), then the pass's task
/// count, and publishes the tasks, mailboxes interleaved. Returns how many there were.
///
/// # Errors
/// Redis or RabbitMQ failed.
pub(crate) async fn publish_plans(
    ledger: &Ledger,
    bus: &Bus,
    manifest: &Manifest,
    info: &PassInfo,
    plans: &[MailboxPlan],
) -> anyhow::Result<usize> {
    let mig = &manifest.migration;
    let pass = info.pass;
    let mut per_mailbox = Vec::with_capacity(plans.len());
    for p in plans {
        let tasks = tasks_of(manifest, info, p);
        let progress = MailboxProgress {
            mailbox: p.mailbox.clone(),
            source_msgs: p.folders.iter().map(|f| f.messages).sum(),
            source_bytes: p.folders.iter().map(|f| f.bytes).sum(),
            planned_msgs: p.folders.iter().map(|f| f.todo_messages).sum(),
            planned_bytes: p.folders.iter().map(|f| f.todo_bytes).sum(),
            tasks: tasks.len() as u64,
            error: p.error.clone(),
            ..Default::default()
        };
        ledger
            .set_mailbox_plan(mig, pass, &progress)
            .await
            .context("recording the plan")?;
        per_mailbox.push(tasks);
    }
    let tasks = plan::interleave(per_mailbox);
    ledger
        .set_pass_tasks(mig, pass, tasks.len() as u64)
        .await
        .context("recording the plan")?;
    bus.publish(&tasks).await.context("publishing tasks")?;
    Ok(tasks.len())
}

/// The tasks of one planned mailbox: one per slice of each folder.
pub(crate) fn tasks_of(manifest: &Manifest, info: &PassInfo, p: &MailboxPlan) -> Vec<FolderTask> {
    let mig = &manifest.migration;
    let pass = info.pass;
    let mut out = Vec::new();
    for f in &p.folders {
        let n = f.slices.len() as u32;
        for (i, range) in f.slices.iter().enumerate() {
            out.push(FolderTask {
                version: TASK_VERSION,
                task_id: TaskId(format!("{mig}/{pass}/{}/{}/{i}", p.index, f.id)),
                migration: mig.clone(),
                pass,
                mailbox: p.mailbox.clone(),
                folder: FolderRef {
                    id: f.id.clone(),
                    source_name: f.source_name.clone(),
                    target_name: f.target_name.clone(),
                    display: f.display.clone(),
                    target_id: f.target_id.clone(),
                },
                uid_validity: f.uid_validity,
                range: *range,
                slice: i as u32,
                slices: n,
                attempt: 0,
                ledger_epoch: Some(info.epoch.clone()).filter(|e| !e.is_empty()),
                planned: f.planned.get(i).cloned(),
                rebuild: info.rebuild,
            });
        }
    }
    out
}
