//! `mailhaul-bench`: measures a full migration and prints messages/s, MB/s, CPU seconds
//! and peak RSS, plus the state's bytes per message, for either backend:
//! `--backend distributed` (the coordinator, RabbitMQ, Redis and N worker processes;
//! CPU of our processes and, separately, of RabbitMQ and Redis; Redis `MEMORY USAGE`),
//! `--backend embedded` (`mailhaul migrate` alone with N x C slots; the state
//! directory's bytes on disk), or `--backend both` (the default): the same corpus
//! migrated each way, one after the other, and the figures side by side.
//!
//! `cargo run --release -p mailhaul-tests --bin mailhaul-bench -- --profile medium --workers 2`
//! (build the workspace in release first: `cargo build --release --workspace`).
//!
//! `--profile large` (13 messages per mailbox, 3 of them 32-192 MB) is for memory: the
//! peak RSS of the largest worker is the figure to read. `--source pop3` reads the
//! source over POP3 instead of IMAP (INBOX only, so use it with `--profile large`).
//!
//! `--target graph` migrates into the Exchange emulator with its default (Microsoft's)
//! per-mailbox limits instead, and also prints the rate as a fraction of what those
//! budgets allow (150 MB per 5 minutes and 10,000 requests per 10 minutes per mailbox).

use mailhaul_tests::corpus::{self, Profile};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig};
use mailhaul_tests::exchange_check::{
    Compare, assert_exchange_same, exchange_path, expected, graph_reader,
};
use mailhaul_tests::harness::{Backend, Env, email, show};
use mailhaul_tests::snapshot::diff;
use std::time::{Duration, Instant};

struct Args {
    profile: Profile,
    workers: usize,
    concurrency: u16,
    graph: bool,
    pop3: bool,
    backends: Vec<Backend>,
}

/// What one run measured.
struct Figures {
    backend: Backend,
    msgs: usize,
    wall: f64,
    mb: f64,
    cpu_ours: f64,
    cpu_services: f64,
    rss_coordinator: u64,
    rss_worker: u64,
    state_bytes: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        profile: Profile::Small,
        workers: 2,
        concurrency: 4,
        graph: false,
        pop3: false,
        backends: vec![Backend::Distributed, Backend::Embedded],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--profile" => {
                a.profile = match value()?.as_str() {
                    "small" => Profile::Small,
                    "medium" => Profile::Medium,
                    "large" => Profile::Large,
                    other => {
                        anyhow::bail!("unknown profile {other:?}; use small, medium or large")
                    }
                }
            }
            "--workers" => a.workers = value()?.parse()?,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--target" => {
                a.graph = match value()?.as_str() {
                    "imap" => false,
                    "graph" => true,
                    other => anyhow::bail!("unknown target {other:?}; use imap or graph"),
                }
            }
            "--backend" => {
                a.backends = match value()?.as_str() {
                    "distributed" => vec![Backend::Distributed],
                    "embedded" => vec![Backend::Embedded],
                    "both" => vec![Backend::Distributed, Backend::Embedded],
                    other => anyhow::bail!(
                        "unknown backend {other:?}; use distributed, embedded or both"
                    ),
                }
            }
            "--source" => {
                a.pop3 = match value()?.as_str() {
                    "imap" => false,
                    "pop3" => true,
                    other => anyhow::bail!("unknown source {other:?}; use imap or pop3"),
                }
            }
            other => anyhow::bail!(
                "unknown flag {other}; flags: --profile small|medium|large --workers N \
                 --concurrency N --source imap|pop3 --target imap|graph \
                 --backend distributed|embedded|both"
            ),
        }
    }
    Ok(a)
}

/// CPU seconds (user + system) and peak RSS (bytes) of a live process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = hwm.split_whitespace().nth(1)?.parse().ok()?;
    Some((cpu, kb * 1024))
}

/// CPU seconds of RabbitMQ and Redis (the test kit's, found by their ports).
fn services_cpu() -> f64 {
    let shared = mailhaul_tests::kit::shared();
    let port = |url: &str| {
        url.rsplit(':')
            .next()
            .map(|p| {
                p.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let (amqp, redis) = (
        port(
            shared
                .amqp_url
                .split('@')
                .nth(1)
                .unwrap_or(&shared.amqp_url),
        ),
        port(&shared.redis_url),
    );
    let mut cpu = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        let env = String::from_utf8_lossy(&env);
        let ours = (cmd.starts_with("/usr/bin/redis-server") || cmd.starts_with("redis-server"))
            && cmd.contains(&format!(":{redis}"))
            || cmd.contains("beam.smp") && env.contains(&format!("RABBITMQ_NODE_PORT={amqp}\0"));
        if ours && let Some((c, _)) = proc_usage(pid) {
            cpu += c;
        }
    }
    cpu
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut all = Vec::new();
    for backend in args.backends.clone() {
        all.push(run_once(&args, backend).await?);
    }
    if all.len() > 1 {
        println!("\n{:<34} {:>14} {:>14}", "", "distributed", "embedded");
        let row = |name: &str, f: &dyn Fn(&Figures) -> String| {
            println!("{name:<34} {:>14} {:>14}", f(&all[0]), f(&all[1]));
        };
        row("messages/s", &|f| format!("{:.0}", f.msgs as f64 / f.wall));
        row("MB/s", &|f| format!("{:.1}", f.mb / f.wall));
        row("CPU s, mailhaul processes", &|f| {
            format!("{:.1}", f.cpu_ours)
        });
        row("CPU s, RabbitMQ + Redis", &|f| {
            format!("{:.1}", f.cpu_services)
        });
        row("peak RSS MB, coordinator/run", &|f| {
            format!("{:.0}", f.rss_coordinator as f64 / 1e6)
        });
        row("peak RSS MB, largest worker", &|f| match f.backend {
            Backend::Distributed => format!("{:.0}", f.rss_worker as f64 / 1e6),
            Backend::Embedded => "(in the run)".into(),
        });
        row("state bytes per message", &|f| {
            format!("{:.0}", f.state_bytes as f64 / f.msgs as f64)
        });
    }
    Ok(())
}

async fn run_once(args: &Args, backend: Backend) -> anyhow::Result<Figures> {
    println!("\n== backend: {backend:?} ==");
    let n = args.profile.mailboxes();
    let users: Vec<String> = (0..n).map(|i| format!("user{i:02}")).collect();
    let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let env = Env::new(
        "bench",
        &user_refs,
        "slice_messages = 500\nslice_bytes = \"64MiB\"\ndiscovery_concurrency = 8",
    )?
    .on(backend);

    if args.pop3 {
        env.use_pop3()?;
    }
    let emulator = if args.graph {
        let emu = Emulator::start(EmulatorConfig::default()).await?;
        env.use_exchange("graph", &emu, "")?;
        Some(emu)
    } else {
        None
    };

    let t = Instant::now();
    let (mut msgs, mut bytes) = (0usize, 0u64);
    let mut corpora = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let c = corpus::bench(args.profile, i);
        msgs += c.message_count();
        bytes += c.total_bytes();
        env.seed(u, &c).await?;
        corpora.push(c);
    }
    println!(
        "corpus: {:?}, {n} mailboxes, {msgs} messages, {:.1} MB (seeded in {:.1} s)",
        args.profile,
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let conc = args.concurrency.to_string();
    let nworkers = args.workers.to_string();
    let workers: Vec<u32> = match backend {
        Backend::Distributed => (0..args.workers)
            .map(|_| env.spawn_worker(&["--concurrency", &conc], &[]))
            .collect(),
        Backend::Embedded => Vec::new(),
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let services_before = match backend {
        Backend::Distributed => services_cpu(),
        Backend::Embedded => 0.0,
    };

    let started = Instant::now();
    let mut cmd = env.command("mailhaul");
    cmd.args(["migrate", &env.manifest.display().to_string()])
        .env("RUST_LOG", "warn");
    if backend == Backend::Embedded {
        cmd.args(["--workers", &nworkers, "--concurrency", &conc]);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let coord_pid = child.id();
    let sampler = tokio::spawn(async move {
        let mut last = (0.0, 0u64);
        while let Some(u) = proc_usage(coord_pid) {
            last = u;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let wall = started.elapsed().as_secs_f64();
    let (coord_cpu, coord_rss) = sampler.await?;
    anyhow::ensure!(
        out.status.success(),
        "migration failed:\n{}\n{}",
        show(&out),
        env.worker_logs()
    );

    let mut worker_cpu = 0.0;
    let mut worker_rss = 0u64;
    for w in &workers {
        let (cpu, rss) = proc_usage(*w).unwrap_or_default();
        worker_cpu += cpu;
        worker_rss = worker_rss.max(rss);
    }

    // Everything arrived, exactly once.
    for (u, c) in users.iter().zip(&corpora) {
        if let Some(emu) = &emulator {
            let cmp = Compare {
                received: true,
                mime: false,
                drafts_by_json: false,
            };
            let reader = graph_reader(emu, &email(u));
            assert_exchange_same(&expected(c, &exchange_path, cmp), &reader, cmp).await?;
            continue;
        }
        let (source, target) = (env.source_snapshot(u).await?, env.target_snapshot(u).await?);
        if args.pop3 {
            // POP3 carries neither flags nor INTERNALDATE: compare the bytes.
            let hashes = |s: &mailhaul_tests::snapshot::MailboxSnapshot| {
                let mut v: Vec<String> = s.folders["INBOX"]
                    .iter()
                    .map(|m| m.sha256.clone())
                    .collect();
                v.sort();
                v
            };
            anyhow::ensure!(
                hashes(&source) == hashes(&target),
                "{u}: the target INBOX's messages differ from the source's"
            );
        } else if let Some(d) = diff(&source, &target) {
            anyhow::bail!("{u}: target differs from source:\n{d}");
        }
    }

    let services = match backend {
        Backend::Distributed => services_cpu() - services_before,
        Backend::Embedded => 0.0,
    };
    let state_bytes = match backend {
        // Ledger size: every key of this namespace.
        Backend::Distributed => {
            let ledger = env.ledger().await?;
            let client = redis::Client::open(mailhaul_tests::kit::shared().redis_url.as_str())?;
            let mut con = client.get_multiplexed_async_connection().await?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", env.namespace))
                .query_async(&mut con)
                .await?;
            let mut b = 0u64;
            for k in &keys {
                b += ledger.memory_usage(k).await?;
            }
            println!(
                "ledger:           {} Redis keys, {:.1} MB",
                keys.len(),
                b as f64 / 1e6
            );
            b
        }
        Backend::Embedded => {
            let b = dir_bytes(&env.state_dir());
            println!(
                "state directory:  {:.1} MB on disk (ledger, task queue, their WAL files)",
                b as f64 / 1e6
            );
            b
        }
    };
    match backend {
        Backend::Distributed => println!(
            "workers: {} x concurrency {}",
            args.workers, args.concurrency
        ),
        Backend::Embedded => println!(
            "embedded: one process, {} x {} slots",
            args.workers, args.concurrency
        ),
    }
    println!("wall time:        {wall:.1} s");
    println!(
        "throughput:       {:.0} messages/s, {:.1} MB/s",
        msgs as f64 / wall,
        bytes as f64 / 1e6 / wall
    );
    match backend {
        Backend::Distributed => {
            println!(
                "CPU (ours):       coordinator {coord_cpu:.1} s, workers {worker_cpu:.1} s in total"
            );
            println!("CPU (services):   RabbitMQ + Redis {services:.1} s");
            println!(
                "peak RSS (ours):  coordinator {:.0} MB, largest worker {:.0} MB",
                coord_rss as f64 / 1e6,
                worker_rss as f64 / 1e6
            );
        }
        Backend::Embedded => {
            println!(
                "CPU:              mailhaul migrate {coord_cpu:.1} s (everything: planning, copying, ledger, queue)"
            );
            println!("peak RSS:         {:.0} MB", coord_rss as f64 / 1e6);
        }
    }
    println!(
        "state:            {:.0} bytes per message",
        state_bytes as f64 / msgs as f64
    );
    if emulator.is_some() {
        // What Microsoft's per-mailbox budgets allow for this corpus, all mailboxes
        // in parallel: bytes (150 MB / 300 s) or requests (10,000 / 600 s, one per
        // message on the JSON path), whichever binds.
        let per_mailbox_bytes = 150.0 * 1024.0 * 1024.0 / 300.0;
        let avg = bytes as f64 / msgs as f64;
        let allowed = n as f64 * (per_mailbox_bytes / avg).min(10_000.0 / 600.0);
        let rate = msgs as f64 / wall;
        println!(
            "graph budget:     {allowed:.1} messages/s allowed over {n} mailboxes; achieved {rate:.1} = {:.0} %",
            100.0 * rate / allowed
        );
        println!(
            "verified:         every message in Exchange exactly once, folders/state/dates equal"
        );
    } else {
        println!(
            "verified:         every message on the target exactly once, {}",
            if args.pop3 {
                "bytes equal"
            } else {
                "bytes/flags/dates equal"
            }
        );
    }
    Ok(Figures {
        backend,
        msgs,
        wall,
        mb: bytes as f64 / 1e6,
        cpu_ours: coord_cpu + worker_cpu,
        cpu_services: services,
        rss_coordinator: coord_rss,
        rss_worker: worker_rss,
        state_bytes,
    })
}
