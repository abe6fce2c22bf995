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
/// `cfg`'s URLs are not used.
///
/// # Errors
/// The metrics address cannot be bound.
pub async fn run_in_process(
    bus: Bus,
    ledger: Ledger,
    cfg: WorkerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = start_metrics(&cfg, &shutdown).await?;
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
                    tracing::warn!(err = format!("{err:#}"), retry_in = ?delay, "Cannot reach the broker or the ledger; retrying.");
                    tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = shutdown.cancelled() => {} }
                    delay = (delay * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
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
        Outcome::Failed(SliceError::Cancelled | SliceError::Ledger(LedgerError::Fenced)) => {}
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
    let lease = match shared
        .ledger
        .acquire_lease(&task.migration, &task.mailbox, &task.task_id, ttl)
        .await
    {
        Ok(Some(l)) => l,
        Ok(None) => return Outcome::Busy,
        Err(e) => return Outcome::Failed(e.into()),
    };
    // Keep the lease while we work; if it is lost, stop at the next checkpoint (every
    // ledger write is fenced anyway, so nothing stale can land).
    let slice_cancel = cancel.child_token();
    let renewer = {
        let (ledger, lease, stop) = (shared.ledger.clone(), lease.clone(), slice_cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = ledger.renew_lease(&lease, ttl).await {
                    tracing::warn!(%err, "Could not renew the slice lease.");
                    if matches!(err, LedgerError::Fenced) {
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
    match r {
        Ok(report) => Outcome::Done(report),
        Err(e) => Outcome::Failed(e),
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
            if let Err(err) = l
                .task_done(&task.migration, task.pass, &task.mailbox, &task.task_id)
                .await
            {
                // Not acking means the slice runs again, finds everything recorded, and
                // marks the task done then.
                tracing::warn!(%err, "Could not mark the task done; it will be redelivered.");
                return "retried";
            }
            let _ = delivery.ack().await;
            "done"
        }
        Outcome::Busy => {
            tracing::debug!(task_id = %task.task_id, "Slice leased by another worker; retrying later.");
            if shared
                .bus
                .retry_later(task, Duration::from_secs(5))
                .await
                .is_ok()
            {
                let _ = delivery.ack().await;
            }
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
        Outcome::Failed(SliceError::Ledger(LedgerError::Fenced)) => {
            tracing::warn!(task_id = %task.task_id, "Lost the slice lease to another worker; leaving the slice to it.");
            let _ = delivery.ack().await;
            "fenced"
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
        // Publish the retry (confirmed) before acking: a crash in between leaves two
        // copies of the task, which the lease and the ledger make harmless.
        if shared.bus.retry_later(&again, delay).await.is_ok() {
            let _ = delivery.ack().await;
        }
        return "retried";
    }
    tracing::error!(task_id = %task.task_id, folder = %task.folder.display, err = %reason, "Slice given up.");
    let l = &shared.ledger;
    if l.task_failed(
        &task.migration,
        task.pass,
        &task.mailbox,
        &task.task_id,
        &reason,
    )
    .await
    .is_ok()
        && shared.bus.dead_letter(&delivery.raw, &reason).await.is_ok()
    {
        let _ = delivery.ack().await;
    }
    "failed"
}
