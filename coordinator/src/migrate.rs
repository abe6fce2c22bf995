//! `mailhaul migrate`: one pass of a migration — record it, discover every mailbox with
//! bounded concurrency, create the target trees, publish the tasks interleaved across
//! mailboxes, then (unless detached) follow the workers to the end.
//!
//! Before anything runs, the ledger's identity is compared with the one kept beside the
//! manifest ([`crate::identity`]): a ledger that lost its data is refused, not trusted,
//! and `--rebuild-ledger` rebuilds its records by matching source against target.

use crate::discover::{MailboxPlan, discover};
use crate::engine::Services;
use crate::follow;
use crate::identity::{Mirror, Verdict};
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

/// How `mailhaul migrate` runs a pass.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// Return once the tasks are published (distributed mode).
    pub detach: bool,
    /// How often the follow loop reads progress.
    pub poll: Duration,
    /// `--rebuild-ledger`: the ledger lost its data; every message is looked up on the
    /// target (Message-ID and size, confirmed by content hash) before it is copied.
    pub rebuild: bool,
    /// Where the ledger's identity is kept (beside the manifest); `None`: not checked.
    pub mirror: Option<Mirror>,
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
/// Redis or RabbitMQ cannot be reached, or the embedded state directory cannot be used;
/// the ledger is not the one earlier passes wrote (the text says to rebuild it).
/// Mailbox-level problems are not errors: they are in the outcome.
pub async fn migrate(
    manifest: &Manifest,
    services: &Services,
    opts: &PassOptions,
) -> anyhow::Result<PassOutcome> {
    let detach = opts.detach;
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
    let r = run_pass(manifest, services, opts, &span)
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
    opts: &PassOptions,
    span: &tracing::Span,
) -> anyhow::Result<PassOutcome> {
    let engine = services.open(manifest).await?;
    let r = pass_on(&engine, manifest, opts, span).await;
    engine.close().await;
    r
}

async fn pass_on(
    engine: &crate::engine::Engine,
    manifest: &Manifest,
    opts: &PassOptions,
    span: &tracing::Span,
) -> anyhow::Result<PassOutcome> {
    let (ledger, bus) = (&engine.ledger, &engine.bus);
    let mig = &manifest.migration;
    // Before anything runs on it (leftover tasks included): is this the ledger the
    // earlier passes wrote?
    let known = ledger
        .epoch(mig)
        .await
        .context("reading the ledger epoch")?;
    let kept = match &opts.mirror {
        Some(mirror) => mirror.read()?,
        None => None,
    };
    if let Some(mirror) = &opts.mirror {
        refuse_unless_same(
            crate::identity::judge(kept.as_ref().map(|k| k.epoch.as_str()), known.as_deref()),
            mirror,
            opts.rebuild,
        )?;
    }
    // Said before anything runs: a Redis that a restart would empty.
    match ledger.persistence().await {
        Ok(Some(p)) => {
            if let Some(warning) = p.warning() {
                eprintln!("warning: {warning}");
            }
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(%err, "Cannot read Redis's persistence settings."),
    }
    let rebuild = opts.rebuild
        || (known.is_some() && ledger.rebuilding(mig).await.context("reading the ledger")?);
    engine.finish_leftovers(mig).await?;
    let ids: Vec<MailboxId> = manifest.mailboxes.iter().map(|m| m.id.clone()).collect();
    let pass = ledger
        .begin_pass(mig, &manifest.tenant, &ids)
        .await
        .context("recording the migration")?;
    span.record("pass", pass);
    if rebuild {
        // Kept until a rebuilding pass finishes with every task done, so an
        // interrupted rebuild goes on in the next pass (and in `retry`).
        ledger
            .set_rebuilding(mig, true)
            .await
            .context("recording the rebuild")?;
        eprintln!(
            "Rebuilding the ledger of {mig}: every message is looked up on the target (Message-ID and size, \
             confirmed by content hash) and recorded where found; only what is not there is copied."
        );
        if let Some(kept) = &kept {
            restore_folders(ledger, manifest, kept).await?;
        }
    }
    tracing::info!(migration = %mig, pass, mailboxes = ids.len(), rebuild, "Pass started; discovering mailboxes.");

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
        rebuild,
    };
    let planned = plans.iter().flat_map(|p| {
        p.folders.iter().map(|f| crate::identity::KeptFolder {
            mailbox: p.mailbox.clone(),
            folder: f.id.clone(),
            uid_validity: f.uid_validity,
            display: f.display.clone(),
            target_name: f.target_name.clone(),
        })
    });
    if let Some(mirror) = &opts.mirror
        && let Err(err) = mirror.write(&info.epoch, mig, planned)
    {
        // Not fatal: the pass is right; only a later loss of the ledger would go unseen.
        eprintln!(
            "warning: cannot keep the ledger's identity in {}: {err:#}; if Redis loses its data, \
             the next pass will not notice (make the directory writable)",
            mirror.path().display()
        );
    }
    let published = publish_plans(ledger, bus, manifest, &info, &plans).await?;
    span.record("tasks", published);
    tracing::info!(migration = %mig, pass, tasks = published, "Tasks published.");

    let progress = if opts.detach {
        None
    } else {
        let p = follow::follow(engine, mig, pass, opts.poll).await?;
        if rebuild && p.tasks_failed.is_empty() {
            ledger
                .set_rebuilding(mig, false)
                .await
                .context("recording the rebuild")?;
        }
        Some(p)
    };
    Ok(PassOutcome {
        pass,
        plans,
        progress,
    })
}

/// Gives the rebuilt ledger back the target folder each source folder went to (the
/// first pass's choice, kept beside the manifest), so discovery keeps it instead of
/// mapping the folder again onto a target tree the earlier passes changed.
async fn restore_folders(
    ledger: &Ledger,
    manifest: &Manifest,
    kept: &crate::identity::Kept,
) -> anyhow::Result<()> {
    let mig = &manifest.migration;
    for f in &kept.folders {
        if !manifest.mailboxes.iter().any(|m| m.id == f.mailbox) {
            continue;
        }
        // The first target recorded for a folder stands: a ledger that still knows the
        // folder keeps its own.
        ledger
            .observe_folder(
                mig,
                &f.mailbox,
                &f.folder,
                f.uid_validity,
                &f.display,
                &f.target_name,
            )
            .await
            .context("restoring where the folders went")?;
    }
    Ok(())
}

/// Refuses a pass on a ledger that is not the one the earlier passes wrote, unless it
/// is rebuilt.
fn refuse_unless_same(verdict: Verdict, mirror: &Mirror, rebuild: bool) -> anyhow::Result<()> {
    let why = match verdict {
        Verdict::New | Verdict::Same => return Ok(()),
        _ if rebuild => return Ok(()),
        Verdict::Lost { kept } => format!(
            "the ledger has no record of this migration, but earlier passes ran on a ledger \
             with identity {kept} (kept in {}): it lost its data (Redis FLUSHALL, or a restart \
             without persistence) or this is another Redis or --namespace",
            mirror.path().display()
        ),
        Verdict::Replaced { kept, found } => format!(
            "the ledger's identity is {found}, but earlier passes ran on one with identity {kept} \
             (kept in {}): this is another ledger (another Redis, --namespace or state directory)",
            mirror.path().display()
        ),
    };
    anyhow::bail!(
        "{why}. Nothing was copied: a pass on it would copy every message again. If the earlier ledger \
         can be brought back (the right --redis-url and --namespace, a Redis backup), use it; otherwise \
         run `mailhaul migrate --rebuild-ledger <manifest>`, which matches every source message against \
         the target (Message-ID and size, confirmed by content hash) and records it before copying anything"
    )
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
            failed_msgs: p.folders.iter().map(|f| f.failed_before).sum(),
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
        // A rebuild copies a folder in one slice: its lookups must see every copy the
        // slice itself makes, and two slices of one folder looking up and uploading at
        // once could both take one copy for two identical messages.
        let merged;
        let (slices, planned) = match (f.slices.first(), f.slices.last()) {
            (Some(first), Some(last)) if info.rebuild && f.slices.len() > 1 => {
                merged = (
                    vec![mailhaul_proto::UidRange {
                        first: first.first,
                        last: last.last,
                    }],
                    vec![f.planned.join(",")],
                );
                (&merged.0, &merged.1)
            }
            _ => (&f.slices, &f.planned),
        };
        let n = slices.len() as u32;
        for (i, range) in slices.iter().enumerate() {
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
                planned: planned.get(i).cloned(),
                rebuild: info.rebuild,
            });
        }
    }
    out
}
