//! Following a pass until every task is finished: a progress bar on a terminal, a log
//! line now and then elsewhere, and a sweep of the dead-letter queue so a task the
//! broker gave up on (its workers kept dying) is counted as failed, not waited for.
//! Under `--metrics-addr` every tick also sets the coordinator's metrics
//! ([`crate::metrics`]): progress from the ledger, queue depths from the broker.

use crate::engine::Engine;
use crate::metrics::{Metrics, Queue};
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use mailhaul_bus::Bus;
use mailhaul_ledger::{Ledger, PassProgress};
use mailhaul_proto::MigrationId;
use mailhaul_proto::task::FolderTask;
use std::time::{Duration, Instant};

/// Polls the ledger every `poll` until the pass is finished; returns the final progress.
///
/// # Errors
/// Redis errors; the embedded state directory cannot be written; interrupted (embedded).
pub async fn follow(
    engine: &Engine,
    mig: &MigrationId,
    pass: u32,
    poll: Duration,
) -> anyhow::Result<PassProgress> {
    let (ledger, bus) = (&engine.ledger, &engine.bus);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} msgs {msg} (eta {eta})",
        )
        .expect("the template is valid"),
    );
    let metrics = crate::metrics::current();
    // The first tick sweeps too, so the dead-letter gauge is right from the start.
    let mut last_sweep: Option<Instant> = None;
    let mut last_log = Instant::now();
    let mut last_change = (Instant::now(), u64::MAX);
    let mut warned = false;
    loop {
        let p = ledger
            .progress(mig, pass)
            .await
            .context("reading progress")?;
        let planned: u64 = p.mailboxes.iter().map(|m| m.planned_msgs).sum();
        let done: u64 = p
            .mailboxes
            .iter()
            .map(|m| m.copied_msgs + m.failed_msgs)
            .sum();
        if let Some(m) = &metrics {
            observe(m, &p, bus).await;
        }
        bar.set_length(planned);
        bar.set_position(done.min(planned));
        bar.set_message(format!("| {}/{} tasks", p.tasks_done, p.tasks_total));
        if bar.is_hidden() && last_log.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                tasks_done = p.tasks_done,
                tasks = p.tasks_total,
                messages = done,
                planned,
                "Progress."
            );
            last_log = Instant::now();
        }
        if p.finished() {
            bar.finish_and_clear();
            return Ok(p);
        }
        let moved = p.tasks_done + done;
        if moved != last_change.1 {
            last_change = (Instant::now(), moved);
        } else if !warned && last_change.0.elapsed() >= Duration::from_secs(20) {
            warned = warn_if_no_workers(bus, &bar).await;
        }
        if last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            let dead = sweep_dead(ledger, bus, mig, pass).await;
            if let (Some(m), Some(n)) = (&metrics, dead) {
                m.set_queue(Queue::Dead, n as u64);
            }
            last_sweep = Some(Instant::now());
        }
        if let Some(why) = engine.storage_failure() {
            bar.finish_and_clear();
            anyhow::bail!("{why}");
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = engine.interrupted() => {
                bar.finish_and_clear();
                anyhow::bail!(
                    "interrupted: the slices in hand were handed back to the queue; run the same command again to go on (nothing copied is lost or copied twice)"
                );
            }
        }
    }
}

/// Says so when nothing consumes the task queue; returns whether it warned.
async fn warn_if_no_workers(bus: &Bus, bar: &ProgressBar) -> bool {
    match bus.queue_stats().await {
        Ok(q) if q.consumers == 0 => {
            bar.suspend(|| {
                eprintln!(
                    "warning: no worker is consuming tasks ({} waiting); start `mailhaul-worker --manifest <manifest>` \
                     with the same --amqp-url, --redis-url and --namespace",
                    q.ready
                )
            });
            true
        }
        _ => false,
    }
}

/// Sets the progress gauges and the task and retry queues' depths.
async fn observe(m: &Metrics, p: &PassProgress, bus: &Bus) {
    m.observe(p);
    match bus.queue_stats().await {
        Ok(q) => {
            m.set_queue(Queue::Tasks, u64::from(q.ready));
            m.set_queue(Queue::Retry, u64::from(q.retrying));
        }
        Err(err) => tracing::warn!(%err, "Cannot read the task queue's depth."),
    }
}

/// Records this pass's dead-lettered tasks as failed; returns how many messages the
/// dead-letter queue holds (all migrations, at most 10 000), `None` when unreadable.
pub(crate) async fn sweep_dead(
    ledger: &Ledger,
    bus: &Bus,
    mig: &MigrationId,
    pass: u32,
) -> Option<usize> {
    let dead = match bus.peek_dead(10_000).await {
        Ok(d) => d,
        Err(err) => {
            tracing::warn!(%err, "Cannot read the dead-letter queue.");
            return None;
        }
    };
    let count = dead.len();
    for (raw, reason) in dead {
        if let Ok(t) = FolderTask::from_json(&raw)
            && &t.migration == mig
            && t.pass == pass
            && let Err(err) = ledger.task_failed(&t, &reason).await
        {
            tracing::warn!(%err, "Cannot record a dead-lettered task.");
        }
    }
    Some(count)
}

/// Where folders went, as `mailhaul plan` shows it: once per mailbox, every folder whose
/// name changed or that has mapping notes (special folders merged, renames by rule,
/// case-insensitive collisions and reserved names resolved). Empty when nothing moved.
pub fn mapping_notes(plans: &[crate::discover::MailboxPlan]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for p in plans {
        let mut moved = p
            .folders
            .iter()
            .filter(|f| f.display != f.target_display || !f.notes.is_empty())
            .peekable();
        if moved.peek().is_none() {
            continue;
        }
        if out.is_empty() {
            out.push_str("Folder mapping:\n");
        }
        let _ = writeln!(out, "{}:", p.mailbox);
        for f in moved {
            let _ = write!(out, "  folder {:?} -> {:?}", f.display, f.target_display);
            if !f.notes.is_empty() {
                let _ = write!(out, ": {}", f.notes.join("; "));
            }
            out.push('\n');
        }
    }
    out
}
