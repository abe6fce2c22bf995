//! The consume loop: take tasks, run their slices with bounded concurrency, answer the
//! broker for each (ack, retry later, dead-letter, or hand back on shutdown), reconnect
//! when the broker goes away, and drain on SIGTERM.

use crate::connect::Endpoints;
use crate::metrics::{self, Metrics};
use crate::retry::Backoff;
use crate::slice::{BatchLimits, Slice, SliceError};
use anyhow::Context as _;
use mailhaul_bus::{Bus, TaskDelivery};
use mailhaul_ledger::{Ledger, LedgerError};
use mailhaul_proto::manifest::Manifest;
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{ErrorClass, MigrationId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Queue and key namespace.
    pub namespace: String,
    /// The manifests of the migrations this worker serves (for credentials).
    pub manifests: Vec<Manifest>,
    /// Tasks run at once (and the consumer prefetch).
    pub concurrency: u16,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Slice lease lifetime (renewed every third of it while working).
    pub lease_ttl: Duration,
    /// Longest wait for a connection permit before the task is retried later.
    pub permit_wait: Duration,
    /// Upload batch bounds.
    pub batch: BatchLimits,
    /// How long SIGTERM waits for slices in hand to reach a checkpoint.
    pub drain_timeout: Duration,
    /// Connection name shown in RabbitMQ.
    pub name: String,
}

struct Shared {
    ledger: Ledger,
    bus: Bus,
    metrics: Metrics,
    manifests: HashMap<MigrationId, Manifest>,
    cfg: WorkerConfig,
    backoff: Backoff,
}

async fn start_metrics(
    cfg: &WorkerConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Metrics> {
    let metrics = Metrics::new();
    if let Some(addr) = cfg.metrics_addr {
        let bound = metrics::serve(metrics.clone(), addr, shutdown.clone())
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
        tracing::info!(%bound, "Serving /metrics.");
    }
    Ok(metrics)
}

fn manifests_of(cfg: &WorkerConfig) -> HashMap<MigrationId, Manifest> {
    cfg.manifests
        .iter()
        .map(|m| (m.migration.clone(), m.clone()))
        .collect()
}

/// Runs the worker loop in this process on a bus and ledger opened by the caller (the
/// embedded mode: `mailhaul migrate` copies its own tasks) until `shutdown` fires, then
/// drains: the slices in hand reach a checkpoint and their tasks go back to the queue.
/// `cfg`'s URLs and metrics address are not used: the caller serves `metrics` (the
/// `mailhaul migrate --metrics-addr` endpoint shows them beside its own).
///
/// # Errors
/// None today; the result keeps the shape of [`run`].
pub async fn run_in_process(
    bus: Bus,
    ledger: Ledger,
    cfg: WorkerConfig,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let shared = Arc::new(Shared {
        ledger,
        bus,
        metrics,
        manifests: manifests_of(&cfg),
        cfg: cfg.clone(),
        backoff: Backoff::default(),
    });
    while !shutdown.is_cancelled() {
        consume(&shared, &tracker, &shutdown).await;
        if !shutdown.is_cancelled() {
            // The queue failed (its database); the run's owner sees why and stops us.
            tokio::select! { () = tokio::time::sleep(Duration::from_millis(500)) => {}, () = shutdown.cancelled() => {} }
        }
    }
    drain(&tracker, cfg.drain_timeout).await;
    Ok(())
}

/// Runs the worker until `shutdown` fires, then drains.
///
/// # Errors
/// The metrics address cannot be bound. Broker and Redis outages are retried, not returned.
pub async fn run(cfg: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = start_metrics(&cfg, &shutdown).await?;
    let manifests = manifests_of(&cfg);
    let tracker = TaskTracker::new();
    let mut delay = Duration::from_millis(200);
    let mut waiting_since: Option<Instant> = None;
    while !shutdown.is_cancelled() {
        let session = async {
            let ledger = Ledger::connect(&cfg.redis_url, &cfg.namespace)
                .await
                .context("connecting to Redis")?;
            let bus = Bus::connect(&cfg.amqp_url, &cfg.namespace, &cfg.name)
                .await
                .context("connecting to RabbitMQ")?;
            anyhow::Ok((ledger, bus))
        };
        let (ledger, bus) = tokio::select! {
            r = session => match r {
                Ok(v) => v,
                Err(err) => {
                    // Said once per outage; the retries are quiet.
                    if waiting_since.is_none() {
                        waiting_since = Some(Instant::now());
                        tracing::warn!(err = format!("{err:#}"), "Cannot reach the broker or the ledger; waiting for them (retrying with backoff).");
                    } else {
                        tracing::debug!(err = format!("{err:#}"), retry_in = ?delay, "Still cannot reach the broker or the ledger.");
                    }
                    tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = shutdown.cancelled() => {} }
                    delay = (delay * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        if let Some(t) = waiting_since.take() {
            tracing::warn!(after = ?t.elapsed(), "Broker and ledger reachable again; consuming.");
        }
        delay = Duration::from_millis(200);
        let shared = Arc::new(Shared {
            ledger,
            bus,
            metrics: metrics.clone(),
            manifests: manifests.clone(),
            cfg: cfg.clone(),
            backoff: Backoff::default(),
        });
        consume(&shared, &tracker, &shutdown).await;
        if shutdown.is_cancelled() {
            drain(&tracker, cfg.drain_timeout).await;
            shared.bus.close().await;
            return Ok(());
        }
    }
    drain(&tracker, cfg.drain_timeout).await;
    Ok(())
}

async fn drain(tracker: &TaskTracker, timeout: Duration) {
    tracker.close();
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        tracing::warn!(
            ?timeout,
            "Slices still running at the drain deadline; the broker will hand them out again."
        );
    } else {
        tracing::info!("Drained: every slice in hand reached a checkpoint.");
    }
}

async fn consume(shared: &Arc<Shared>, tracker: &TaskTracker, shutdown: &CancellationToken) {
    let mut stream = match shared
        .bus
        .consume(shared.cfg.concurrency.max(1), &shared.cfg.name)
        .await
    {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%err, "Cannot start consuming; reconnecting.");
            return;
        }
    };
    tracing::info!(concurrency = shared.cfg.concurrency, "Consuming tasks.");
    loop {
        let next = tokio::select! {
            d = stream.next() => d,
            _ = shutdown.cancelled() => {
                tracing::info!("Shutdown requested: no new tasks; finishing the slices in hand.");
                stream.cancel().await;
                return;
            }
        };
        match next {
            Some(Ok(delivery)) => {
                let shared = shared.clone();
                let cancel = shutdown.child_token();
                tracker.spawn(async move { handle(&shared, delivery, cancel).await });
            }
            Some(Err(err)) => {
                tracing::warn!(%err, "Lost the broker; reconnecting.");
                return;
            }
            None => {
                tracing::warn!("The broker closed the consumer; reconnecting.");
                return;
            }
        }
    }
}

async fn handle(shared: &Shared, delivery: TaskDelivery, cancel: CancellationToken) {
    let task = match &delivery.task {
        Ok(t) => t.clone(),
        Err(err) => {
            let reason = format!("unreadable task: {err}");
            tracing::error!(%reason, "Dead-lettering a task.");
            shared
                .metrics
                .errors
                .with_label_values(&["task", "permanent"])
                .inc();
            if shared.bus.dead_letter(&delivery.raw, &reason).await.is_ok() {
                let _ = delivery.ack().await;
            }
            return;
        }
    };
    // One span per task, the child of the span that published it (the migration, or
    // the task run that retried it). Closed fields only: ids and counts.
    let span = tracing::info_span!(
        "task",
        task_id = %task.task_id,
        migration = %task.migration,
        pass = task.pass,
        folder = %task.folder.id,
        slice = task.slice,
        attempt = task.attempt,
        delivery_count = delivery.delivery_count,
        outcome = tracing::field::Empty,
    );
    mailhaul_bus::trace::set_parent(&span, &delivery.trace);
    shared.metrics.in_flight.inc();
    let started = Instant::now();
    let outcome = run_task(shared, &task, cancel)
        .instrument(span.clone())
        .await;
    shared.metrics.in_flight.dec();
    match &outcome {
        // Handed back on shutdown, or left to the worker that holds the lease: no error.
        Outcome::Failed(SliceError::Cancelled | SliceError::Ledger(LedgerError::Fenced { .. })) => {
        }
        Outcome::Failed(err) => mailhaul_bus::trace::record_error(&span, err),
        Outcome::NoManifest => mailhaul_bus::trace::record_error(
            &span,
            &"this worker has no manifest for the task's migration",
        ),
        _ => {}
    }
    // Answering inside the span: a retry published here carries the task's context.
    let label = answer(shared, &task, delivery, outcome)
        .instrument(span.clone())
        .await;
    span.record("outcome", label);
    shared
        .metrics
        .task_seconds
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
}

/// What became of a task run.
enum Outcome {
    Done(crate::SliceReport),
    /// Another worker holds the slice's lease: try again a little later.
    Busy,
    Failed(SliceError),
    /// The manifest for the task is not loaded here.
    NoManifest,
}

async fn run_task(shared: &Shared, task: &FolderTask, cancel: CancellationToken) -> Outcome {
    let Some(manifest) = shared.manifests.get(&task.migration) else {
        return Outcome::NoManifest;
    };
    let Some(mailbox) = manifest.mailbox(&task.mailbox) else {
        return Outcome::Failed(SliceError::Config(format!(
            "mailbox {} is not in this worker's manifest for migration {}; give the workers the same manifest as the coordinator",
            task.mailbox, task.migration
        )));
    };
    let ttl = shared.cfg.lease_ttl;
    let lease = match shared.ledger.acquire_lease(task, ttl).await {
        Ok(Some(l)) => l,
        Ok(None) => return Outcome::Busy,
        Err(e) => return Outcome::Failed(e.into()),
    };
    // Keep the lease while we work. An expired lease that nobody took is taken again
    // (by the renewal or by the next fenced write); if a newer worker took it or the
    // ledger is gone, stop at the next checkpoint (every ledger write is fenced anyway,
    // so nothing stale can land) and say why.
    let slice_cancel = cancel.child_token();
    let lost: Arc<std::sync::Mutex<Option<LedgerError>>> = Arc::default();
    let renewer = {
        let (ledger, lease, stop, lost) = (
            shared.ledger.clone(),
            lease.clone(),
            slice_cancel.clone(),
            lost.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = ledger.renew_lease(&lease).await {
                    tracing::warn!(%err, "Could not renew the slice lease.");
                    if matches!(err, LedgerError::Fenced { .. } | LedgerError::Vanished) {
                        *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                        stop.cancel();
                        return;
                    }
                }
            }
        })
    };
    let endpoints = Endpoints {
        manifest,
        mailbox,
        permit_wait: shared.cfg.permit_wait,
    };
    let slice = Slice {
        ledger: &shared.ledger,
        metrics: &shared.metrics,
        endpoints: &endpoints,
        task,
        lease: &lease,
        cancel: &slice_cancel,
        limits: shared.cfg.batch,
    };
    let r = slice.run().await;
    renewer.abort();
    let _ = shared.ledger.release_lease(&lease).await;
    let lost = lost.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (r, lost) {
        (Ok(report), _) => Outcome::Done(report),
        // Stopped because the lease was lost, not because of a shutdown.
        (Err(SliceError::Cancelled), Some(lost)) if !cancel.is_cancelled() => {
            Outcome::Failed(lost.into())
        }
        (Err(e), _) => Outcome::Failed(e),
    }
}

/// Tells the broker what became of the task; returns the outcome label for metrics.
async fn answer(
    shared: &Shared,
    task: &FolderTask,
    delivery: TaskDelivery,
    outcome: Outcome,
) -> &'static str {
    let l = &shared.ledger;
    match outcome {
        Outcome::Done(r) => {
            tracing::info!(task_id = %task.task_id, folder = %task.folder.display, copied = r.copied, bytes = r.bytes,
                recovered = r.recovered, failed = r.failed, skipped = r.skipped, "Slice done.");
            match l.task_done(task).await {
                Ok(()) => {
                    let _ = delivery.ack().await;
                    "done"
                }
                Err(LedgerError::Vanished) => ledger_gone(shared, task, delivery).await,
                Err(err) => {
                    // Handed back: the slice runs again, finds everything recorded, and
                    // marks the task done then.
                    tracing::warn!(%err, "Could not mark the task done; handing it back.");
                    put_back(shared, task, delivery, Duration::from_secs(1)).await;
                    "retried"
                }
            }
        }
        Outcome::Busy => {
            tracing::debug!(task_id = %task.task_id, "Slice leased by another worker; retrying later.");
            put_back(shared, task, delivery, Duration::from_secs(5)).await;
            "busy"
        }
        Outcome::NoManifest => {
            let err = SliceError::Config(format!(
                "this worker has no manifest for migration {}; start workers with --manifest for it",
                task.migration
            ));
            tracing::warn!(task_id = %task.task_id, %err, "Cannot run task here.");
            retry_or_give_up(shared, task, delivery, &err, ErrorClass::Transient).await
        }
        Outcome::Failed(SliceError::Cancelled) => {
            let _ = delivery.requeue().await;
            "interrupted"
        }
        Outcome::Failed(SliceError::Ledger(LedgerError::Fenced { live: true })) => {
            tracing::warn!(task_id = %task.task_id, "Another worker took over the slice and is copying it; leaving it to that worker.");
            let _ = delivery.ack().await;
            "fenced"
        }
        Outcome::Failed(SliceError::Ledger(LedgerError::Fenced { live: false })) => {
            // The newer owner finished or died: not a reason to drop the task. Put it
            // back; the next run finds what is recorded and copies the rest.
            tracing::warn!(task_id = %task.task_id, "Another worker took the slice and let it go; handing the task back to the queue.");
            put_back(shared, task, delivery, Duration::from_secs(1)).await;
            "fenced"
        }
        Outcome::Failed(SliceError::Ledger(LedgerError::Vanished)) => {
            ledger_gone(shared, task, delivery).await
        }
        Outcome::Failed(err) => {
            shared
                .metrics
                .errors
                .with_label_values(&[err.stage(), err.class().label()])
                .inc();
            let class = err.class();
            retry_or_give_up(shared, task, delivery, &err, class).await
        }
    }
}

/// Puts `task` back to be run again after `delay`. The retry is published (confirmed)
/// before the ack: a crash in between leaves two copies of the task, which the lease and
/// the ledger make harmless. If the broker cannot take it, the delivery is handed back
/// as it is.
async fn put_back(shared: &Shared, task: &FolderTask, delivery: TaskDelivery, delay: Duration) {
    if shared.bus.retry_later(task, delay).await.is_ok() {
        let _ = delivery.ack().await;
    } else {
        let _ = delivery.requeue().await;
    }
}

/// The ledger the task was planned against is gone (emptied or replaced): copying on
/// would trust records that are not the plan's. The task is dead-lettered with the
/// reason (the coordinator stops the pass and says how to rebuild), not dropped.
async fn ledger_gone(shared: &Shared, task: &FolderTask, delivery: TaskDelivery) -> &'static str {
    let reason = LedgerError::Vanished.to_string();
    tracing::error!(task_id = %task.task_id, "The ledger this task was planned against is gone (Redis emptied or replaced); not copying. Run `mailhaul migrate --rebuild-ledger`.");
    shared
        .metrics
        .errors
        .with_label_values(&["ledger", "permanent"])
        .inc();
    if shared.bus.dead_letter(&delivery.raw, &reason).await.is_ok() {
        let _ = delivery.ack().await;
    } else {
        let _ = delivery.requeue().await;
    }
    "failed"
}

async fn retry_or_give_up(
    shared: &Shared,
    task: &FolderTask,
    delivery: TaskDelivery,
    err: &SliceError,
    class: ErrorClass,
) -> &'static str {
    let reason = format!("{err}");
    if let Some(delay) = shared.backoff.delay(class, task.attempt) {
        let mut again = task.clone();
        again.attempt += 1;
        tracing::warn!(task_id = %task.task_id, attempt = again.attempt, ?delay, err = %reason, "Slice failed; retrying later.");
        put_back(shared, &again, delivery, delay).await;
        return "retried";
    }
    tracing::error!(task_id = %task.task_id, folder = %task.folder.display, err = %reason, "Slice given up.");
    let l = &shared.ledger;
    // Every message of the slice that did not land is accounted for as failed, with the
    // task's reason (a message that failed on its own keeps its words), so the pass's
    // table, `report` and the exit code count it.
    let why = format!("its task gave up: {reason}");
    let marked = match task.planned_uids() {
        Some(uids) => l.fail_unrecorded(task, &uids, &why).await,
        None => Ok(0),
    };
    match marked {
        Ok(n) => {
            tracing::warn!(task_id = %task.task_id, messages = n, "Messages of the given-up slice recorded as failed.")
        }
        Err(LedgerError::Vanished) => return ledger_gone(shared, task, delivery).await,
        Err(err) => {
            tracing::warn!(%err, "Could not record the given-up slice's messages as failed.")
        }
    }
    match l.task_failed(task, &reason).await {
        Ok(()) => {}
        Err(LedgerError::Vanished) => return ledger_gone(shared, task, delivery).await,
        Err(err) => {
            tracing::warn!(%err, "Could not record the given-up task; handing it back.");
            let _ = delivery.requeue().await;
            return "failed";
        }
    }
    if shared.bus.dead_letter(&delivery.raw, &reason).await.is_ok() {
        let _ = delivery.ack().await;
    } else {
        let _ = delivery.requeue().await;
    }
    "failed"
}
