//! `mailhaul retry <manifest>`: a pass that re-runs only the messages the ledger records
//! as failed (after the admin fixed the cause: a size limit raised, a quota freed).
//!
//! Nothing is re-planned: folders without failures get no task. A failed message has no
//! record (only a failure entry), so a task whose UID range covers it copies it again;
//! other messages in the range that are recorded are skipped by the worker. A message
//! that lands loses its failure entry in the same atomic write (the ledger's RECORD
//! script); one that fails again is recorded as failed in this pass. The pass is a pass
//! like `migrate`'s, so `status` and `report` show it.

use crate::discover::{FolderPlan, MailboxPlan};
use crate::engine::Services;
use crate::migrate::{PassOutcome, publish_plans};
use crate::{follow, plan, status, survey};
use anyhow::Context as _;
use mailhaul_ledger::Ledger;
use mailhaul_proto::manifest::{MailboxSpec, Manifest, ServerKind};
use mailhaul_proto::{FolderId, MailboxId, Uid};
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

/// One folder's failed messages, to be tried again.
#[derive(Debug, Clone)]
pub struct Retried {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The folder (human path).
    pub folder: String,
    /// The failed UIDs.
    pub uids: Vec<Uid>,
}

/// What `retry` did.
#[derive(Debug, Clone)]
pub struct RetryOutcome {
    /// What was tried again (empty: nothing had failed).
    pub retried: Vec<Retried>,
    /// Folders with failures that could not be retried, and why.
    pub skipped: Vec<String>,
    /// The pass that retried them (`None` when there was nothing to retry).
    pub pass: Option<PassOutcome>,
}

/// `mailhaul retry`: runs the retry pass and prints what it retried and the outcome.
/// Exit 0 when nothing had failed or everything retried landed; 1 when something failed
/// again; 3 when the services cannot be reached.
pub async fn run(m: &Manifest, services: &Services, detach: bool) -> ExitCode {
    match run_inner(m, services, detach).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(3)
        }
    }
}

async fn run_inner(m: &Manifest, services: &Services, detach: bool) -> anyhow::Result<ExitCode> {
    let outcome = retry(m, services, detach, Duration::from_millis(500)).await?;
    for note in &outcome.skipped {
        eprintln!("not retried: {note}");
    }
    let Some(pass) = &outcome.pass else {
        println!("Migration {}: no failed messages to retry.", m.migration);
        return Ok(if outcome.skipped.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    };
    let total: usize = outcome.retried.iter().map(|r| r.uids.len()).sum();
    println!(
        "Migration {}, pass {}: retrying {total} failed messages in {} folders:",
        m.migration,
        pass.pass,
        outcome.retried.len()
    );
    for r in &outcome.retried {
        println!("  {} {:?}: {} messages", r.mailbox, r.folder, r.uids.len());
    }
    let Some(progress) = &pass.progress else {
        println!("Follow with `mailhaul status {}`.", m.migration);
        return Ok(ExitCode::SUCCESS);
    };
    print!("{}", status::table(&m.migration, progress));
    let ledger = services.read_ledger().await?;
    let failures = status::failures(&ledger, &m.migration, &pass.plans).await?;
    if failures.is_empty() {
        println!("Every retried message landed.");
    } else {
        println!("Messages still not migrated:");
        print!("{failures}");
    }
    Ok(
        if pass.has_problems() || !failures.is_empty() || !outcome.skipped.is_empty() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Finds the failed messages and, if there are any, runs a pass over them; unless
/// `detach`, follows it to the end.
///
/// # Errors
/// Redis or RabbitMQ cannot be reached; the migration is not in the ledger.
pub async fn retry(
    m: &Manifest,
    services: &Services,
    detach: bool,
    poll: Duration,
) -> anyhow::Result<RetryOutcome> {
    let engine = services.open(m).await?;
    let r = retry_on(&engine, m, services, detach, poll).await;
    engine.close().await;
    r
}

async fn retry_on(
    engine: &crate::engine::Engine,
    m: &Manifest,
    services: &Services,
    detach: bool,
    poll: Duration,
) -> anyhow::Result<RetryOutcome> {
    let (ledger, bus) = (&engine.ledger, &engine.bus);
    let mig = &m.migration;
    if ledger.latest_pass(mig).await?.is_none() {
        anyhow::bail!(
            "no migration {mig} in {}; run `mailhaul migrate` first",
            services.location()
        );
    }
    engine.finish_leftovers(mig).await?;
    let mut retried = Vec::new();
    let mut skipped = Vec::new();
    let mut plans = Vec::with_capacity(m.mailboxes.len());
    for (index, mbx) in m.mailboxes.iter().enumerate() {
        let (folders, notes) = failed_folders(ledger, m, mbx).await?;
        skipped.extend(notes);
        let mut plan_folders = Vec::with_capacity(folders.len());
        for (f, uids) in folders {
            retried.push(Retried {
                mailbox: mbx.id.clone(),
                folder: f.display.clone(),
                uids,
            });
            plan_folders.push(f);
        }
        plans.push(MailboxPlan {
            index,
            mailbox: mbx.id.clone(),
            folders: plan_folders,
            error: None,
        });
    }
    if plans.iter().all(|p| p.folders.is_empty()) {
        return Ok(RetryOutcome {
            retried,
            skipped,
            pass: None,
        });
    }
    let ids: Vec<MailboxId> = m.mailboxes.iter().map(|b| b.id.clone()).collect();
    let pass = ledger
        .begin_pass(mig, &m.tenant, &ids)
        .await
        .context("recording the pass")?;
    tracing::info!(migration = %mig, pass, "Retry pass started.");
    let info = crate::migrate::PassInfo {
        pass,
        epoch: ledger.epoch(mig).await?.unwrap_or_default(),
        rebuild: ledger.rebuilding(mig).await?,
    };
    let published = publish_plans(ledger, bus, m, &info, &plans).await?;
    tracing::info!(migration = %mig, pass, tasks = published, "Retry tasks published.");
    let progress = if detach {
        None
    } else {
        Some(follow::follow(engine, mig, pass, poll).await?)
    };
    Ok(RetryOutcome {
        retried,
        skipped,
        pass: Some(PassOutcome {
            pass,
            plans,
            progress,
        }),
    })
}

/// The folders of a mailbox with failed messages, each with slices covering them and
/// the failed UIDs, and notes on those that cannot be retried.
async fn failed_folders(
    ledger: &Ledger,
    m: &Manifest,
    mbx: &MailboxSpec,
) -> anyhow::Result<(Vec<(FolderPlan, Vec<Uid>)>, Vec<String>)> {
    let mig = &m.migration;
    let reports = ledger
        .folder_reports(mig, &mbx.id)
        .await
        .context("reading the ledger")?;
    let failing: Vec<_> = reports
        .into_iter()
        .filter(|r| !r.failures.is_empty())
        .collect();
    if failing.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Tasks name the source folder by its wire name, which the ledger keeps only as a
    // hash (the folder id): list the source's folders to find it again.
    let raw_names = match source_names(ledger, m, mbx).await {
        Ok(n) => n,
        Err(e) => {
            return Ok((
                Vec::new(),
                vec![format!("{}: cannot list the source folders: {e}", mbx.id)],
            ));
        }
    };
    let mut folders = Vec::new();
    let mut notes = Vec::new();
    for r in failing {
        let Some(raw) = raw_names.get(&r.id) else {
            notes.push(format!(
                "{} {:?}: the folder is gone from the source; its {} failed messages cannot be retried",
                mbx.id,
                r.name,
                r.failures.len()
            ));
            continue;
        };
        let Some(meta) = ledger.folder_meta(mig, &mbx.id, &r.id).await? else {
            continue;
        };
        let uids: Vec<Uid> = r.failures.iter().map(|(u, _)| *u).collect();
        // Sizes do not matter here: the slices cover failed messages only (and the
        // recorded ones between them, which the worker skips).
        let todo: Vec<(Uid, u32)> = uids.iter().map(|u| (*u, 0)).collect();
        let slices = plan::slices(&todo, m.options.slice_messages.get(), u64::MAX);
        let planned = plan::planned_sets(&todo, &slices);
        folders.push((
            FolderPlan {
                id: r.id.clone(),
                target_display: r.target.clone(),
                display: r.name.clone(),
                source_name: raw.clone(),
                target_name: meta.target_name.unwrap_or(r.target),
                target_id: None,
                uid_validity: meta.uid_validity,
                messages: r.counts.messages,
                bytes: r.counts.bytes,
                todo_messages: uids.len() as u64,
                failed_before: 0,
                todo_bytes: 0,
                slices,
                planned,
                rematch: false,
                notes: Vec::new(),
                subscribed: false,
            },
            uids,
        ));
    }
    Ok((folders, notes))
}

/// The source's folders by id.
async fn source_names(
    ledger: &Ledger,
    m: &Manifest,
    mbx: &MailboxSpec,
) -> Result<HashMap<FolderId, String>, String> {
    if m.source.kind == ServerKind::Pop3 {
        let inbox = survey::POP3_FOLDER.to_owned();
        return Ok(HashMap::from([(FolderId::of_raw_name(&inbox), inbox)]));
    }
    let mut source = survey::open(
        Some(ledger),
        &m.source,
        &mbx.source_user,
        &mbx.source_password,
        "source",
    )
    .await?;
    let listed = source.session.list_folders().await;
    source.close(Some(ledger)).await;
    let listed = listed.map_err(|e| format!("source: listing folders: {e}"))?;
    Ok(listed
        .into_iter()
        .map(|f| (FolderId::of_raw_name(&f.raw_name), f.raw_name))
        .collect())
}
