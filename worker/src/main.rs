//! `mailhaul-worker`: the task runner. Parses flags, sets up logging, runs the library.

use anyhow::Context as _;
use clap::Parser;
use mailhaul_worker::{BatchLimits, WorkerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Consumes mailhaul folder tasks from RabbitMQ and copies them.
#[derive(Debug, Parser)]
#[command(name = "mailhaul-worker", version)]
struct Args {
    /// Manifest of a migration this worker serves (repeat for several). Credentials are
    /// read from it; they never travel with the tasks.
    #[arg(
        long = "manifest",
        env = "MAILHAUL_MANIFESTS",
        value_delimiter = ',',
        required = true
    )]
    manifests: Vec<PathBuf>,
    /// RabbitMQ URL (required: separate workers serve the distributed mode).
    #[arg(long, env = "MAILHAUL_AMQP_URL")]
    amqp_url: Option<String>,
    /// Redis URL (required: separate workers serve the distributed mode).
    #[arg(long, env = "MAILHAUL_REDIS_URL")]
    redis_url: Option<String>,
    /// Namespace of queues and ledger keys (must match the coordinator's).
    #[arg(long, env = "MAILHAUL_NAMESPACE", default_value = "mailhaul")]
    namespace: String,
    /// Slices copied at once.
    #[arg(long, env = "MAILHAUL_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// Address for /metrics and /healthz.
    #[arg(long, env = "MAILHAUL_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Slice lease lifetime in seconds.
    #[arg(long, default_value_t = 30)]
    lease_ttl_secs: u64,
    /// Seconds SIGTERM waits for slices in hand to checkpoint.
    #[arg(long, default_value_t = 30)]
    drain_timeout_secs: u64,
    /// Messages per upload batch.
    #[arg(long, default_value_t = 64)]
    batch_messages: usize,
    /// Messages larger than this are copied through a temporary file instead of memory
    /// (`4MiB`, `512KiB`, or bytes), so a worker's memory does not grow with the largest
    /// message. Disk use is at most about 2 x concurrency x the largest message.
    #[arg(long, env = "MAILHAUL_SPOOL_ABOVE", default_value = "4MiB", value_parser = parse_size)]
    spool_above: u64,
    /// Directory for those temporary files (default: $TMPDIR, else /tmp). Files have no
    /// name there: nothing is left behind, even after a crash.
    #[arg(long, env = "MAILHAUL_SPOOL_DIR")]
    spool_dir: Option<PathBuf>,
    /// Connection name shown in RabbitMQ.
    #[arg(long, default_value = "mailhaul-worker")]
    name: String,
}

fn main() -> ExitCode {
    // Logs to stderr; traces over OTLP when OTEL_EXPORTER_OTLP_*ENDPOINT is set.
    let telemetry = match mailhaul_bus::trace::init("mailhaul-worker", "info") {
        Ok(t) => t,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    };
    // After the drain, with the runtime gone: export the spans still buffered (blocks).
    drop(runtime);
    telemetry.shutdown();
    code
}

fn parse_size(text: &str) -> Result<u64, String> {
    mailhaul_proto::manifest::parse_size(text)
}

/// Why a worker cannot run without both services.
const NEEDS_SERVICES: &str = "mailhaul-worker serves the distributed mode and needs both --amqp-url and --redis-url \
(or MAILHAUL_AMQP_URL and MAILHAUL_REDIS_URL), the same as the coordinator's. Without RabbitMQ and Redis, \
`mailhaul migrate manifest.toml` copies in its own process (embedded mode; --workers N sets its copying slots) \
and needs no separate workers.";

async fn main_async(args: Args) -> anyhow::Result<()> {
    let (Some(amqp_url), Some(redis_url)) = (
        args.amqp_url.clone().filter(|u| !u.is_empty()),
        args.redis_url.clone().filter(|u| !u.is_empty()),
    ) else {
        anyhow::bail!(NEEDS_SERVICES);
    };
    // Fail at start, not on the first large message, when the spool cannot be written.
    let dir = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    tempfile::tempfile_in(&dir).with_context(|| {
        format!(
            "the spool directory {} is not writable; create it or point --spool-dir \
             (MAILHAUL_SPOOL_DIR) at a writable directory",
            dir.display()
        )
    })?;
    mailhaul_connectors::body::configure(mailhaul_connectors::body::SpoolConfig {
        threshold: args.spool_above,
        dir: args.spool_dir.clone(),
    });
    let mut manifests = Vec::new();
    for path in &args.manifests {
        let m = mailhaul_connectors::config::load_manifest(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        if let Some(why) = mailhaul_connectors::config::not_runnable(&m) {
            anyhow::bail!("manifest {}: {why}", path.display());
        }
        manifests.push(m);
    }
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            shutdown.cancel();
        });
    }
    let cfg = WorkerConfig {
        amqp_url,
        redis_url,
        namespace: args.namespace,
        manifests,
        concurrency: args.concurrency,
        metrics_addr: args.metrics_addr,
        lease_ttl: Duration::from_secs(args.lease_ttl_secs.max(3)),
        permit_wait: Duration::from_secs(120),
        batch: BatchLimits {
            max_messages: args.batch_messages.max(1),
            ..BatchLimits::default()
        },
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        name: args.name,
    };
    mailhaul_worker::run(cfg, shutdown).await
}

async fn wait_for_signal() {
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
    tracing::info!("Signal received; draining.");
}
