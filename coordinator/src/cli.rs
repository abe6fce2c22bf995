//! Command-line interface: argument parsing and the commands' top level.

use crate::migrate::{self, Services};
use crate::status;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mailhaul_connectors::config::{ConfigError, load_manifest};
use mailhaul_ledger::Ledger;
use mailhaul_proto::MigrationId;
use mailhaul_proto::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Moves whole organisations' mail from IMAP servers to Exchange or IMAP, server to server.
#[derive(Debug, Parser)]
#[command(name = "mailhaul", version)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Shared service flags.
#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "MAILHAUL_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Redis URL (the ledger).
    #[arg(
        long,
        env = "MAILHAUL_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,
    /// Namespace of queues and ledger keys (workers must use the same).
    #[arg(long, env = "MAILHAUL_NAMESPACE", default_value = "mailhaul")]
    pub namespace: String,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a manifest and report every problem at once, without connecting anywhere.
    Validate {
        /// The manifest (TOML).
        manifest: PathBuf,
    },
    /// Pre-flight: test every login, map the folders, count and inspect the messages,
    /// estimate the duration. Writes nothing anywhere.
    Plan {
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Count messages but do not read them (faster; no per-message findings).
        #[arg(long)]
        quick: bool,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Throughput the ETA assumes, in MB/s for the whole deployment.
        #[arg(long, default_value_t = 50.0)]
        rate_mb_s: f64,
        /// Throughput the ETA assumes, in messages/s for the whole deployment.
        #[arg(long, default_value_t = 500.0)]
        rate_msgs_s: f64,
    },
    /// Run a migration pass (the first copies everything; later ones only what is new).
    Migrate {
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Publish the tasks and return at once, without following progress.
        #[arg(long)]
        detach: bool,
        /// Service flags.
        #[command(flatten)]
        services: ServiceArgs,
        /// Metrics flags (served while following; not with --detach).
        #[command(flatten)]
        metrics: crate::metrics::MetricsArgs,
    },
    /// Per mailbox and folder: source vs migrated counts, and every message that did
    /// not go with its reason.
    Report {
        /// The migration id.
        migration: String,
        /// `table` (default), `json` or `csv`.
        #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
        format: String,
        /// Service flags.
        #[command(flatten)]
        services: ServiceArgs,
    },
    /// Re-read source and target and compare, independent of the ledger: every source
    /// message (after filters) must be on the target exactly once. Exit 1 otherwise.
    Verify {
        /// The manifest (TOML); the migration is its tenant's.
        manifest: PathBuf,
        /// `table` (default) or `json`.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Service flags (the ledger says where each folder was sent).
        #[command(flatten)]
        services: ServiceArgs,
    },
    /// Run a pass over only the messages recorded as failed (after fixing the cause).
    Retry {
        /// The manifest (TOML); the migration is its tenant's.
        manifest: PathBuf,
        /// Publish the tasks and return at once, without following progress.
        #[arg(long)]
        detach: bool,
        /// Service flags.
        #[command(flatten)]
        services: ServiceArgs,
    },
    /// Show per-mailbox progress of a migration's latest (or given) pass.
    Status {
        /// The migration id (printed by `validate` and `migrate`).
        migration: String,
        /// Which pass (default: the latest).
        #[arg(long)]
        pass: Option<u32>,
        /// Service flags.
        #[command(flatten)]
        services: ServiceArgs,
    },
}

/// Exit codes: 0 all good; 1 the pass finished with problems; 2 bad input; 3 services unreachable.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(run(cli))
}

/// Runs a parsed command line and returns the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { manifest } => match load(&manifest) {
            Ok(m) => {
                println!(
                    "{}: OK. Tenant {:?} (migration id {}), {} mailboxes, source {} {}:{} ({}), target {} {}:{} ({}).",
                    manifest.display(),
                    m.tenant,
                    m.migration,
                    m.mailboxes.len(),
                    m.source.kind,
                    m.source.host,
                    m.source.port,
                    m.source.tls,
                    m.target.kind,
                    m.target.host,
                    m.target.port,
                    m.target.tls,
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Plan {
            manifest,
            quick,
            json,
            rate_mb_s,
            rate_msgs_s,
        } => {
            let m = match load(&manifest) {
                Ok(m) => m,
                Err(code) => return code,
            };
            run_plan(&m, quick, json.as_deref(), rate_mb_s, rate_msgs_s).await
        }
        Command::Migrate {
            manifest,
            detach,
            services,
            metrics,
        } => {
            let m = match load(&manifest) {
                Ok(m) => m,
                Err(code) => return code,
            };
            let services = Services {
                amqp_url: services.amqp_url,
                redis_url: services.redis_url,
                namespace: services.namespace,
            };
            // Detached, nothing follows the pass, so there is nothing to serve.
            let metrics = if detach { Default::default() } else { metrics };
            match crate::metrics::serving(&metrics, run_migrate(&m, &services, detach)).await {
                Ok(code) => code,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Report {
            migration,
            format,
            services,
        } => match run_report(&migration, &format, &services).await {
            Ok(code) => code,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::from(3)
            }
        },
        Command::Verify {
            manifest,
            format,
            services,
        } => match load(&manifest) {
            Ok(m) => {
                crate::verify::run(&m, &format, &services.redis_url, &services.namespace).await
            }
            Err(code) => code,
        },
        Command::Retry {
            manifest,
            detach,
            services,
        } => match load(&manifest) {
            Ok(m) => {
                let services = Services {
                    amqp_url: services.amqp_url,
                    redis_url: services.redis_url,
                    namespace: services.namespace,
                };
                crate::retry::run(&m, &services, detach).await
            }
            Err(code) => code,
        },
        Command::Status {
            migration,
            pass,
            services,
        } => match run_status(&migration, pass, &services).await {
            Ok(code) => code,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::from(3)
            }
        },
    }
}

fn load(path: &Path) -> Result<Manifest, ExitCode> {
    load_manifest(path).map_err(|err| {
        match err {
            ConfigError::Invalid(problems) => {
                eprintln!(
                    "{}: {} problem(s); nothing was done:",
                    path.display(),
                    problems.0.len()
                );
                for p in &problems.0 {
                    eprintln!("  {p}");
                }
            }
            other => eprintln!("error: {other}"),
        }
        ExitCode::from(2)
    })
}

async fn run_plan(
    m: &Manifest,
    quick: bool,
    json: Option<&Path>,
    rate_mb_s: f64,
    rate_msgs_s: f64,
) -> ExitCode {
    let rate = crate::preflight::Rate {
        mb_per_s: rate_mb_s.max(0.001),
        msgs_per_s: rate_msgs_s.max(0.001),
    };
    let report = crate::preflight::plan(m, quick, rate).await;
    print!("{}", crate::preflight::render(&report));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).expect("a report always serialises");
        if let Err(err) = std::fs::write(path, text) {
            eprintln!("error: writing {}: {err}", path.display());
            return ExitCode::from(3);
        }
    }
    if report.mailboxes.iter().all(|m| m.ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run_migrate(m: &Manifest, services: &Services, detach: bool) -> anyhow::Result<ExitCode> {
    let outcome = migrate::migrate(m, services, detach, Duration::from_millis(500)).await?;
    for p in outcome.plans.iter().filter(|p| p.error.is_some()) {
        eprintln!(
            "mailbox {}: {}",
            p.mailbox,
            p.error.as_deref().unwrap_or_default()
        );
    }
    print!("{}", crate::follow::mapping_notes(&outcome.plans));
    let Some(progress) = &outcome.progress else {
        let tasks: usize = outcome
            .plans
            .iter()
            .flat_map(|p| &p.folders)
            .map(|f| f.slices.len())
            .sum();
        println!(
            "Migration {}, pass {}: {tasks} tasks published. Follow with `mailhaul status {}`.",
            m.migration, outcome.pass, m.migration
        );
        return Ok(if outcome.has_problems() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    };
    print!("{}", status::table(&m.migration, progress));
    let ledger = Ledger::connect(&services.redis_url, &services.namespace)
        .await
        .context("connecting to Redis")?;
    let failures = status::failures(&ledger, &m.migration, &outcome.plans).await?;
    if !failures.is_empty() {
        println!("Messages not migrated:");
        print!("{failures}");
    }
    Ok(if outcome.has_problems() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_report(migration: &str, format: &str, s: &ServiceArgs) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::connect(&s.redis_url, &s.namespace)
        .await
        .context("connecting to Redis (the ledger)")?;
    let report = match crate::report::build(&ledger, &MigrationId(migration.to_owned())).await {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: {err:#}");
            return Ok(ExitCode::from(2));
        }
    };
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serialises")
        ),
        "csv" => print!("{}", crate::report::csv(&report)),
        _ => print!("{}", crate::report::table(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_status(
    migration: &str,
    pass: Option<u32>,
    s: &ServiceArgs,
) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::connect(&s.redis_url, &s.namespace)
        .await
        .context("connecting to Redis (the ledger)")?;
    let mig = MigrationId(migration.to_owned());
    let pass = match pass {
        Some(p) => p,
        None => match ledger.latest_pass(&mig).await? {
            Some(p) => p,
            None => {
                eprintln!(
                    "error: no migration {migration:?} in the ledger (namespace {}); check the id printed by `mailhaul validate`",
                    s.namespace
                );
                return Ok(ExitCode::from(2));
            }
        },
    };
    let p = ledger.progress(&mig, pass).await?;
    print!("{}", status::table(&mig, &p));
    Ok(ExitCode::SUCCESS)
}
