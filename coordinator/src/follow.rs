//! Following a pass until every task is finished: a progress bar on a terminal, a log
//! line now and then elsewhere, and a sweep of the dead-letter queue so a task the
//! broker gave up on (its workers kept dying) is counted as failed, not waited for.
//! Under `--metrics-addr` every tick also sets the coordinator's metrics
//! ([`crate::metrics`]): progress from the ledger, queue depths from the broker.
//!
//! Outages are ridden out: the ledger waits for Redis by itself (saying so once), and a
//! broker that went away is reconnected on the next tick, said once when it goes and
//! once when it is back; the pass's outcome, not the outage, decides the exit code.
//! Two things stop the loop: a ledger whose identity changed under the pass (it lost
//! its data: the pass cannot finish, and `--rebuild-ledger` is the way on), and
//! (embedded) an interrupt. Progress that stops while tasks are unfinished is warned
//! about once per stall.

use crate::engine::Engine;
use crate::metrics::{Metrics, Queue};
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use mailhaul_bus::{Bus, BusError};
use mailhaul_ledger::{Ledger, PassProgress};
use mailhaul_proto::MigrationId;
use mailhaul_proto::task::FolderTask;
use std::time::{Duration, Instant};

/// How long progress may stand still, with tasks unfinished, before the loop says so.
const STALL_WARNING: Duration = Duration::from_secs(90);

/// Polls the ledger every `poll` until the pass is finished; returns the final progress.
///
/// # Errors
/// Redis refused a command; the ledger lost its data during the pass; the embedded
/// state directory cannot be written; interrupted (embedded).
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
    let epoch = ledger
        .epoch(mig)
        .await
        .context("reading the ledger epoch")?;
    let mut broker = BrokerWatch::default();
    // The first tick sweeps too, so the dead-letter gauge is right from the start.
    let mut last_sweep: Option<Instant> = None;
    let mut last_log = Instant::now();
    let mut last_change = (Instant::now(), u64::MAX);
    let mut warned = false;
    let mut stall_warned = false;
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
            observe(m, &p, bus, &mut broker).await;
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
            stall_warned = false;
        } else {
            let still = last_change.0.elapsed();
            if !warned && still >= Duration::from_secs(20) {
                warned = warn_if_no_workers(bus, &bar, &mut broker).await;
            }
            if !stall_warned && still >= STALL_WARNING {
                stall_warned = true;
                let open = p.tasks_total.saturating_sub(p.tasks_done);
                bar.suspend(|| {
                    eprintln!(
                        "warning: no progress for {} s while {open} task(s) are not finished. A worker may be frozen \
                         or a mail server not answering: a worker's slices go back to the queue once its lease \
                         lapses and its server timeouts end them, so this should go on by itself; if it does not, \
                         check the workers' logs and `mailhaul status {mig}`",
                        still.as_secs()
                    )
                });
            }
        }
        if last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            let now = ledger
                .epoch(mig)
                .await
                .context("reading the ledger epoch")?;
            if now != epoch {
                bar.finish_and_clear();
                anyhow::bail!(
                    "the ledger lost its data during pass {pass} (its identity {} is gone: Redis FLUSHALL, or a \
                     restart without persistence); the workers stop copying for this pass and nothing they \
                     recorded is trusted. Run `mailhaul migrate --rebuild-ledger <manifest>`: it matches every \
                     source message against the target before copying anything",
                    epoch.as_deref().unwrap_or("?")
                );
            }
            match sweep_dead(ledger, bus, mig, pass).await {
                Ok(n) => {
                    broker.up();
                    if let Some(m) = &metrics {
                        m.set_queue(Queue::Dead, n as u64);
                    }
                }
                Err(err) => broker.down(&err, &bar),
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

/// Whether the broker is answering, so an outage is said once when it starts and once
/// when it ends, however many ticks it lasts.
#[derive(Debug, Default)]
struct BrokerWatch {
    since: Option<Instant>,
}

impl BrokerWatch {
    fn down(&mut self, err: &BusError, bar: &ProgressBar) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            bar.suspend(|| {
                eprintln!(
                    "warning: the message broker is not answering ({err}); waiting for it to come back. \
                     Workers wait too and the queued tasks are kept; nothing is lost."
                )
            });
        }
    }

    fn up(&mut self) {
        if let Some(t) = self.since.take() {
            eprintln!(
                "The message broker is back after {} s; going on.",
                t.elapsed().as_secs()
            );
        }
    }
}

/// Says so when nothing consumes the task queue; returns whether it warned.
async fn warn_if_no_workers(bus: &Bus, bar: &ProgressBar, broker: &mut BrokerWatch) -> bool {
    let stats = bus.queue_stats().await;
    match &stats {
        Ok(_) => broker.up(),
        Err(err) => broker.down(err, bar),
    }
    match stats {
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
async fn observe(m: &Metrics, p: &PassProgress, bus: &Bus, broker: &mut BrokerWatch) {
    m.observe(p);
    match bus.queue_stats().await {
        Ok(q) => {
            broker.up();
            m.set_queue(Queue::Tasks, u64::from(q.ready));
            m.set_queue(Queue::Retry, u64::from(q.retrying));
        }
        Err(err) => broker.down(&err, &ProgressBar::hidden()),
    }
}

/// Records this pass's dead-lettered tasks as failed; returns how many messages the
/// dead-letter queue holds (all migrations, at most 10 000).
///
/// # Errors
/// The dead-letter queue cannot be read (the broker is away).
pub(crate) async fn sweep_dead(
    ledger: &Ledger,
    bus: &Bus,
    mig: &MigrationId,
    pass: u32,
) -> Result<usize, BusError> {
    let dead = bus.peek_dead(10_000).await?;
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
    Ok(count)
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
