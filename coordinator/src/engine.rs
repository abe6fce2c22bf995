//! Where a pass runs: on RabbitMQ and Redis with separate workers (distributed mode), or
//! in this process on the embedded queue and ledger of a state directory (embedded
//! mode: no broker, no Redis, the copying slots run here).
//!
//! The mode follows from the flags: both `--amqp-url` and `--redis-url` (or their
//! `MAILHAUL_*` variables) mean distributed; neither means embedded, with the state in
//! `--state-dir` (default `./.mailhaul/<migration>/`). Embedded, the state directory is
//! locked for the whole run, so no second process writes the same ledger.

use anyhow::Context as _;
use mailhaul_bus::{Bus, EmbeddedBus};
use mailhaul_ledger::{EmbeddedLedger, Ledger, StateDir};
use mailhaul_proto::MigrationId;
use mailhaul_proto::manifest::Manifest;
use mailhaul_worker::{BatchLimits, WorkerConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which services a command uses.
#[derive(Debug, Clone)]
pub enum Backend {
    /// RabbitMQ and Redis, shared with `mailhaul-worker` processes.
    Distributed {
        /// RabbitMQ URL.
        amqp_url: String,
        /// Redis URL.
        redis_url: String,
    },
    /// The embedded queue and ledger in a state directory.
    Embedded {
        /// The state directory.
        state_dir: PathBuf,
    },
}

/// How the embedded mode copies: its in-process worker slots.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    /// Slices copied at once.
    pub concurrency: u16,
    /// Messages per upload batch.
    pub batch_messages: usize,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            concurrency: 4,
            batch_messages: BatchLimits::default().max_messages,
        }
    }
}

/// Where the services are.
#[derive(Debug, Clone)]
pub struct Services {
    /// The mode and its place.
    pub backend: Backend,
    /// Queue and key namespace (distributed mode).
    pub namespace: String,
    /// The copying slots (embedded mode).
    pub slots: Slots,
}

/// The default state directory of a migration: `./.mailhaul/<migration>/`.
pub fn default_state_dir(mig: &MigrationId) -> PathBuf {
    Path::new(".mailhaul").join(mig.as_str())
}

/// An open bus and ledger, and in embedded mode the copying slots running on them.
pub struct Engine {
    /// The ledger.
    pub ledger: Ledger,
    /// The bus.
    pub bus: Bus,
    workers: Option<Workers>,
}

struct Workers {
    stop: CancellationToken,
    interrupt: CancellationToken,
    run: tokio::task::JoinHandle<anyhow::Result<()>>,
    state: StateDir,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("embedded", &self.workers.is_some())
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Whether this is the embedded mode.
    pub fn embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded { .. })
    }

    /// Opens the bus and ledger for a pass of `manifest`; in embedded mode locks the
    /// state directory and starts the copying slots here.
    ///
    /// # Errors
    /// A service cannot be reached; the state directory is locked, unwritable or damaged.
    pub async fn open(&self, manifest: &Manifest) -> anyhow::Result<Engine> {
        match &self.backend {
            Backend::Distributed {
                amqp_url,
                redis_url,
            } => {
                let ledger = Ledger::connect(redis_url, &self.namespace)
                    .await
                    .context("connecting to Redis (the ledger); is it running? set --redis-url or MAILHAUL_REDIS_URL")?;
                let bus = Bus::connect(amqp_url, &self.namespace, "mailhaul-coordinator")
                    .await
                    .context(
                        "connecting to RabbitMQ; is it running? set --amqp-url or MAILHAUL_AMQP_URL",
                    )?;
                Ok(Engine {
                    ledger,
                    bus,
                    workers: None,
                })
            }
            Backend::Embedded { state_dir } => {
                let state = StateDir::lock(state_dir)?;
                let embedded = EmbeddedLedger::open(&state)?;
                embedded.check_migration(&manifest.migration).await?;
                let ledger = Ledger::Embedded(embedded);
                let queue = EmbeddedBus::open(state.path())?;
                let bus = Bus::Embedded(queue.clone());
                let worker_bus = Bus::Embedded(queue);
                let cfg = WorkerConfig {
                    amqp_url: String::new(),
                    redis_url: String::new(),
                    namespace: self.namespace.clone(),
                    manifests: vec![manifest.clone()],
                    concurrency: self.slots.concurrency.max(1),
                    metrics_addr: None,
                    lease_ttl: Duration::from_secs(30),
                    permit_wait: Duration::from_secs(120),
                    batch: BatchLimits {
                        max_messages: self.slots.batch_messages.max(1),
                        ..BatchLimits::default()
                    },
                    drain_timeout: Duration::from_secs(30),
                    name: "mailhaul".into(),
                };
                let stop = CancellationToken::new();
                // Ctrl-C or SIGTERM ends the run cleanly: the follower stops, the slots
                // drain and hand their tasks back. Listening from here on for the whole
                // run, so no signal falls between two polls.
                let interrupt = CancellationToken::new();
                {
                    let interrupt = interrupt.clone();
                    tokio::spawn(async move {
                        wait_for_signal().await;
                        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                        interrupt.cancel();
                    });
                }
                // The slots' metrics go out on `migrate --metrics-addr` when it serves.
                let copying = mailhaul_worker::metrics::Metrics::new();
                if let Some(served) = crate::metrics::current() {
                    served.include_copying(copying.clone());
                }
                let run = tokio::spawn(mailhaul_worker::run_in_process(
                    worker_bus,
                    ledger.clone(),
                    cfg,
                    copying,
                    stop.clone(),
                ));
                Ok(Engine {
                    ledger,
                    bus,
                    workers: Some(Workers {
                        stop,
                        interrupt,
                        run,
                        state,
                    }),
                })
            }
        }
    }

    /// The ledger, for reading (`status`, `report`, `verify`, and the summary after a
    /// pass). Embedded it is opened read-only without the lock, so it works while a
    /// run writes it.
    ///
    /// # Errors
    /// Redis cannot be reached; there is no embedded ledger in the state directory.
    pub async fn read_ledger(&self) -> anyhow::Result<Ledger> {
        match &self.backend {
            Backend::Distributed { redis_url, .. } => Ledger::connect(redis_url, &self.namespace)
                .await
                .context("connecting to Redis (the ledger); is it running? set --redis-url or MAILHAUL_REDIS_URL"),
            Backend::Embedded { state_dir } => {
                Ok(Ledger::Embedded(EmbeddedLedger::open_read_only(state_dir)?))
            }
        }
    }

    /// Where the migration's state is, for messages.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Distributed { .. } => format!("the ledger (namespace {})", self.namespace),
            Backend::Embedded { state_dir } => {
                format!("the state directory {}", state_dir.display())
            }
        }
    }
}

impl Engine {
    /// Why the run cannot go on: the embedded state directory cannot be written (with
    /// what the file system says and what to do).
    pub fn storage_failure(&self) -> Option<String> {
        let why = self
            .ledger
            .storage_failure()
            .or_else(|| self.bus.storage_failure())?;
        let dir = self.workers.as_ref().map(|w| w.state.path())?;
        Some(match probe(dir) {
            Some(cause) => format!("{why}\n{cause}"),
            None => why,
        })
    }

    /// Resolves when the run is asked to stop (embedded: Ctrl-C or SIGTERM); never in
    /// distributed mode, where nothing runs here that needs handing back.
    pub async fn interrupted(&self) {
        match &self.workers {
            Some(w) => w.interrupt.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// Embedded: runs the tasks an interrupted run left in the queue to the end, so the
    /// new pass plans after them (two passes copying one folder at once could both send
    /// a message neither had recorded yet). Returns how many there were.
    ///
    /// # Errors
    /// The queue cannot be read; the state directory cannot be written.
    pub async fn finish_leftovers(&self, mig: &MigrationId) -> anyhow::Result<u64> {
        let Bus::Embedded(queue) = &self.bus else {
            return Ok(0);
        };
        let left = queue.outstanding().await?;
        if left == 0 {
            return Ok(0);
        }
        eprintln!(
            "Finishing {left} task(s) an interrupted run left in the state directory, then planning this pass ..."
        );
        let last = self.ledger.latest_pass(mig).await?;
        loop {
            if let Some(why) = self.storage_failure() {
                anyhow::bail!("{why}");
            }
            if let Some(pass) = last
                && let Err(err) =
                    crate::follow::sweep_dead(&self.ledger, &self.bus, mig, pass).await
            {
                tracing::warn!(%err, "Cannot read the dead-letter queue.");
            }
            if queue.outstanding().await? == 0 {
                return Ok(left);
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(300)) => {}
                () = self.interrupted() => anyhow::bail!(
                    "interrupted: the slices in hand were handed back to the queue; run the same command again to go on"
                ),
            }
        }
    }

    /// Stops the copying slots (embedded: the slices in hand reach a checkpoint and go
    /// back to the queue) and closes the bus.
    pub async fn close(self) {
        if let Some(w) = self.workers {
            w.stop.cancel();
            match w.run.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(
                    err = format!("{err:#}"),
                    "The copying slots stopped with an error."
                ),
                Err(err) => tracing::warn!(%err, "The copying slots panicked."),
            }
        }
        self.bus.close().await;
    }
}

/// Set when an embedded run was ended by SIGTERM or SIGINT.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether an embedded run in this process was ended by SIGTERM or SIGINT (Ctrl-C).
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Returns on the first SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What the file system says when asked to write a little into `dir`, in the admin's
/// words with the fix; `None` if that works (the failure was elsewhere).
fn probe(dir: &Path) -> Option<String> {
    use std::io::Write as _;
    let path = dir.join(".write-probe");
    let r = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    let err = r.err()?;
    let d = dir.display();
    Some(match err.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => format!(
            "the state directory {d} is full: free space there, then run the same command again (nothing already copied is lost or copied twice)"
        ),
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => format!(
            "the state directory {d} is not writable ({err}): make it writable, then run the same command again (nothing already copied is lost or copied twice)"
        ),
        _ => format!(
            "the state directory {d} cannot be written ({err}): fix that, then run the same command again (nothing already copied is lost or copied twice)"
        ),
    })
}
