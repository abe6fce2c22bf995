//! Following a pass until every task is finished: a progress bar on a terminal, a log
//! line now and then elsewhere, and a sweep of the dead-letter queue so a task the
//! broker gave up on (its workers kept dying) is counted as failed, not waited for.

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
/// Redis errors.
pub async fn follow(
    ledger: &Ledger,
    bus: &Bus,
    mig: &MigrationId,
    pass: u32,
    poll: Duration,
) -> anyhow::Result<PassProgress> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} msgs {msg} (eta {eta})",
        )
        .expect("the template is valid"),
    );
    let mut last_sweep = Instant::now();
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
        if last_sweep.elapsed() >= Duration::from_secs(5) {
            sweep_dead(ledger, bus, mig, pass).await;
            last_sweep = Instant::now();
        }
        tokio::time::sleep(poll).await;
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

async fn sweep_dead(ledger: &Ledger, bus: &Bus, mig: &MigrationId, pass: u32) {
    let dead = match bus.peek_dead(10_000).await {
        Ok(d) => d,
        Err(err) => {
            tracing::warn!(%err, "Cannot read the dead-letter queue.");
            return;
        }
    };
    for (raw, reason) in dead {
        if let Ok(t) = FolderTask::from_json(&raw)
            && &t.migration == mig
            && t.pass == pass
            && let Err(err) = ledger
                .task_failed(mig, pass, &t.mailbox, &t.task_id, &reason)
                .await
        {
            tracing::warn!(%err, "Cannot record a dead-lettered task.");
        }
    }
}
