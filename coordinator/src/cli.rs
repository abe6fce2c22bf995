//! Command-line interface: argument parsing and the commands' top level.

use crate::engine::{Backend, Services, Slots};
use crate::migrate;
use crate::status;
use clap::{Parser, Subcommand};
use mailhaul_connectors::config::{ConfigError, load_manifest};
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

/// Shared service flags: both URLs for the distributed mode, neither for the embedded
/// mode (state in `--state-dir`).
#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    /// RabbitMQ URL (distributed mode, with --redis-url). Without both URLs, mailhaul runs
    /// embedded: one process, no broker, state in --state-dir.
    #[arg(long, env = "MAILHAUL_AMQP_URL")]
    pub amqp_url: Option<String>,
    /// Redis URL, the ledger (distributed mode, with --amqp-url).
    #[arg(long, env = "MAILHAUL_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Namespace of queues and ledger keys (distributed mode; workers must use the same).
    #[arg(long, env = "MAILHAUL_NAMESPACE", default_value = "mailhaul")]
    pub namespace: String,
    /// Embedded mode: where the ledger and task queue live (default
    /// `./.mailhaul/<migration>/`). Keep it: delta passes, `status`, `report`, `verify`
    /// and `retry` read it.
    #[arg(long, env = "MAILHAUL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The copying slots of the embedded mode.
#[derive(Debug, Clone, clap::Args)]
pub struct SlotArgs {
    /// Embedded mode: worker loops copying in this process (each with --concurrency
    /// slots; default 1).
    #[arg(long)]
    pub workers: Option<u16>,
    /// Embedded mode: slices each worker loop copies at once (default 4).
    #[arg(long)]
    pub concurrency: Option<u16>,
    /// Embedded mode: messages per upload batch (default 64).
    #[arg(long)]
    pub batch_messages: Option<usize>,
    /// Embedded mode: messages larger than this are copied through a temporary file
    /// (`4MiB`, `512KiB`, or bytes), as `mailhaul-worker --spool-above`.
    #[arg(long, env = "MAILHAUL_SPOOL_ABOVE", value_parser = parse_size)]
    pub spool_above: Option<u64>,
    /// Embedded mode: directory for those temporary files (default: $TMPDIR).
    #[arg(long, env = "MAILHAUL_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    mailhaul_proto::manifest::parse_size(text)
}

impl ServiceArgs {
    /// The mode these flags ask for, for migration `mig`.
    ///
    /// # Errors
    /// Only one of the two URLs is given, or a state directory with them.
    pub fn services(
        &self,
        mig: &MigrationId,
        slots: Option<&SlotArgs>,
    ) -> Result<Services, String> {
        let url = |u: &Option<String>| u.clone().filter(|u| !u.trim().is_empty());
        let backend = match (url(&self.amqp_url), url(&self.redis_url)) {
            (Some(amqp_url), Some(redis_url)) => {
                if self.state_dir.is_some() {
                    return Err("--state-dir (MAILHAUL_STATE_DIR) is for the embedded mode; leave it out when --amqp-url and --redis-url name the services".into());
                }
                if let Some(s) = slots
                    && (s.workers.is_some()
                        || s.concurrency.is_some()
                        || s.batch_messages.is_some())
                {
                    return Err("--workers, --concurrency and --batch-messages set the copying slots of the embedded mode; in the distributed mode start `mailhaul-worker --concurrency N` processes instead".into());
                }
                Backend::Distributed {
                    amqp_url,
                    redis_url,
                }
            }
            (None, None) => Backend::Embedded {
                state_dir: self
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| crate::engine::default_state_dir(mig)),
            },
            (amqp, _) => {
                let (given, missing) = if amqp.is_some() {
                    ("--amqp-url", "--redis-url (MAILHAUL_REDIS_URL)")
                } else {
                    ("--redis-url", "--amqp-url (MAILHAUL_AMQP_URL)")
                };
                return Err(format!(
                    "{given} is set but not {missing}: give both for the distributed mode (RabbitMQ, Redis, mailhaul-worker processes), or neither for the embedded mode (one process, state in --state-dir)"
                ));
            }
        };
        let mut out = Services {
            backend,
            namespace: self.namespace.clone(),
            slots: Slots::default(),
        };
        if let Some(s) = slots {
            let workers = s.workers.unwrap_or(1).max(1);
            let each = s.concurrency.unwrap_or(out.slots.concurrency).max(1);
            out.slots.concurrency = workers.saturating_mul(each);
            if let Some(b) = s.batch_messages {
                out.slots.batch_messages = b.max(1);
            }
            if out.embedded() {
                mailhaul_connectors::body::configure(mailhaul_connectors::body::SpoolConfig {
                    threshold: s.spool_above.unwrap_or(4 << 20),
                    dir: s.spool_dir.clone(),
                });
            }
        }
        Ok(out)
    }
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
    /// Without --amqp-url/--redis-url it runs embedded: everything in this process.
    Migrate {
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Publish the tasks and return at once, without following progress
        /// (distributed mode only).
        #[arg(long)]
        detach: bool,
        /// The ledger lost its data (Redis emptied or replaced) and `migrate` refused:
        /// rebuild its records by matching every source message against the target
        /// (Message-ID and size, confirmed by content hash) before copying anything.
        #[arg(long)]
        rebuild_ledger: bool,
        /// Service flags.
        #[command(flatten)]
        services: ServiceArgs,
        /// Copying slots (embedded mode).
        #[command(flatten)]
        slots: SlotArgs,
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
        /// Publish the tasks and return at once, without following progress
        /// (distributed mode only).
        #[arg(long)]
        detach: bool,
        /// Service flags.
        #[command(flatten)]
        services: ServiceArgs,
        /// Copying slots (embedded mode).
        #[command(flatten)]
        slots: SlotArgs,
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

/// Exit codes: 0 all good; 1 the pass finished with problems; 2 bad input or flags; 3 services
/// unreachable, or the embedded state directory unusable (locked, not writable, full).
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
                let problems = crate::secrets::problems(&m);
                if !problems.is_empty() {
                    eprintln!(
                        "{}: {} secret(s) cannot be read here; nothing was done:",
                        manifest.display(),
                        problems.len()
                    );
                    for p in &problems {
                        eprintln!("  {p}");
                    }
                    return ExitCode::from(2);
                }
                let source = match &m.pst {
                    Some(pst) => format!(
                        "source pst ({} files under {}, mapped by {})",
                        m.mailboxes.iter().map(|b| b.pst.len()).sum::<usize>(),
                        pst.location.display(),
                        pst.mapping_csv.display()
                    ),
                    None => format!(
                        "source {} {}:{} ({})",
                        m.source.kind, m.source.host, m.source.port, m.source.tls
                    ),
                };
                println!(
                    "{}: OK. Tenant {:?} (migration id {}), {} mailboxes, {source}, target {} {}:{} ({}).",
                    manifest.display(),
                    m.tenant,
                    m.migration,
                    m.mailboxes.len(),
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
            let m = match load_for(&manifest, "plan") {
                Ok(m) => m,
                Err(code) => return code,
            };
            run_plan(&m, quick, json.as_deref(), rate_mb_s, rate_msgs_s).await
        }
        Command::Migrate {
            manifest,
            detach,
            rebuild_ledger,
            services,
            slots,
            metrics,
        } => {
            let m = match load_for(&manifest, "migrate") {
                Ok(m) => m,
                Err(code) => return code,
            };
            let services = match pass_services(&services, &m.migration, &slots, detach, "migrate") {
                Ok(s) => s,
                Err(code) => return code,
            };
            // Detached, nothing follows the pass, so there is nothing to serve.
            let metrics = if detach { Default::default() } else { metrics };
            let opts = migrate::PassOptions {
                detach,
                poll: Duration::from_millis(500),
                rebuild: rebuild_ledger,
                mirror: Some(crate::identity::Mirror::beside(&manifest, &m.migration)),
            };
            match crate::metrics::serving(&metrics, run_migrate(&m, &services, &opts)).await {
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
        } => {
            let mig = MigrationId(migration);
            let services = match services.services(&mig, None) {
                Ok(s) => s,
                Err(e) => return usage(&e),
            };
            match run_report(&mig, &format, &services).await {
                Ok(code) => code,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Verify {
            manifest,
            format,
            services,
        } => match load_for(&manifest, "verify") {
            Ok(m) => match services.services(&m.migration, None) {
                Ok(s) => crate::verify::run(&m, &format, &s).await,
                Err(e) => usage(&e),
            },
            Err(code) => code,
        },
        Command::Retry {
            manifest,
            detach,
            services,
            slots,
        } => match load_for(&manifest, "retry") {
            Ok(m) => match pass_services(&services, &m.migration, &slots, detach, "retry") {
                Ok(s) => crate::retry::run(&m, &s, detach).await,
                Err(code) => code,
            },
            Err(code) => code,
        },
        Command::Status {
            migration,
            pass,
            services,
        } => {
            let mig = MigrationId(migration);
            let services = match services.services(&mig, None) {
                Ok(s) => s,
                Err(e) => return usage(&e),
            };
            match run_status(&mig, pass, &services).await {
                Ok(code) => code,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::from(3)
                }
            }
        }
    }
}

/// A usage error: says what to change, exit 2.
fn usage(text: &str) -> ExitCode {
    eprintln!("error: {text}");
    ExitCode::from(2)
}

/// The services of a pass (`migrate`, `retry`); refuses `--detach` in embedded mode.
fn pass_services(
    args: &ServiceArgs,
    mig: &MigrationId,
    slots: &SlotArgs,
    detach: bool,
    command: &str,
) -> Result<Services, ExitCode> {
    let services = args.services(mig, Some(slots)).map_err(|e| usage(&e))?;
    if detach && let Backend::Embedded { .. } = services.backend {
        return Err(usage(&format!(
            "`mailhaul {command} --detach` needs the distributed mode: in the embedded mode (no --amqp-url and --redis-url) \
             the copying runs inside this process, which cannot return before the pass is done. \
             Run without --detach (follow it later with `mailhaul status`), or give --amqp-url and --redis-url and start mailhaul-worker processes"
        )));
    }
    Ok(services)
}

/// [`load`] for a command that reads or writes mail: refuses what it cannot run yet.
fn load_for(path: &Path, command: &str) -> Result<Manifest, ExitCode> {
    let m = load(path)?;
    if let Some(why) = mailhaul_connectors::config::not_runnable(&m) {
        eprintln!("error: {}: `mailhaul {command}`: {why}", path.display());
        return Err(ExitCode::from(2));
    }
    Ok(m)
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

async fn run_migrate(
    m: &Manifest,
    services: &Services,
    opts: &migrate::PassOptions,
) -> anyhow::Result<ExitCode> {
    let outcome = migrate::migrate(m, services, opts).await?;
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
    let ledger = services.read_ledger().await?;
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

async fn run_report(mig: &MigrationId, format: &str, s: &Services) -> anyhow::Result<ExitCode> {
    let ledger = s.read_ledger().await?;
    let report = match crate::report::build(&ledger, mig).await {
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
    mig: &MigrationId,
    pass: Option<u32>,
    s: &Services,
) -> anyhow::Result<ExitCode> {
    let ledger = s.read_ledger().await?;
    let pass = match pass {
        Some(p) => p,
        None => match ledger.latest_pass(mig).await? {
            Some(p) => p,
            None => {
                eprintln!(
                    "error: no migration {mig:?} in {}; check the id printed by `mailhaul validate`",
                    s.location()
                );
                return Ok(ExitCode::from(2));
            }
        },
    };
    let p = ledger.progress(mig, pass).await?;
    print!("{}", status::table(mig, &p));
    Ok(ExitCode::SUCCESS)
}
