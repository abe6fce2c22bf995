//! `mailhaul-bench`: measures a full migration through the coordinator, RabbitMQ, Redis
//! and N workers, and prints messages/s, MB/s, CPU seconds and peak RSS of our
//! processes, plus the ledger's bytes per message.
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
use mailhaul_tests::exchange_check::{Compare, assert_exchange_same, exchange_path, expected};
use mailhaul_tests::harness::{Env, email, show};
use mailhaul_tests::snapshot::diff;
use std::time::{Duration, Instant};

struct Args {
    profile: Profile,
    workers: usize,
    concurrency: u16,
    graph: bool,
    pop3: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        profile: Profile::Small,
        workers: 2,
        concurrency: 4,
        graph: false,
        pop3: false,
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
            "--source" => {
                a.pop3 = match value()?.as_str() {
                    "imap" => false,
                    "pop3" => true,
                    other => anyhow::bail!("unknown source {other:?}; use imap or pop3"),
                }
            }
            other => anyhow::bail!(
                "unknown flag {other}; flags: --profile small|medium|large --workers N \
                 --concurrency N --source imap|pop3 --target imap|graph"
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let n = args.profile.mailboxes();
    let users: Vec<String> = (0..n).map(|i| format!("user{i:02}")).collect();
    let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let env = Env::new(
        "bench",
        &user_refs,
        "slice_messages = 500\nslice_bytes = \"64MiB\"\ndiscovery_concurrency = 8",
    )?;

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
    let workers: Vec<u32> = (0..args.workers)
        .map(|_| env.spawn_worker(&["--concurrency", &conc], &[]))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let mut cmd = env.command("mailhaul");
    cmd.args(["migrate", &env.manifest.display().to_string()])
        .env("RUST_LOG", "warn");
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
            };
            let view = emu.mailbox(&email(u));
            assert_exchange_same(&expected(c, &exchange_path, cmp), &view, cmp);
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

    // Ledger size: every key of this namespace.
    let ledger = env.ledger().await?;
    let client = redis::Client::open(mailhaul_tests::kit::shared().redis_url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", env.namespace))
        .query_async(&mut con)
        .await?;
    let mut ledger_bytes = 0u64;
    for k in &keys {
        ledger_bytes += ledger.memory_usage(k).await?;
    }

    println!(
        "workers: {} x concurrency {}",
        args.workers, args.concurrency
    );
    println!("wall time:        {wall:.1} s");
    println!(
        "throughput:       {:.0} messages/s, {:.1} MB/s",
        msgs as f64 / wall,
        bytes as f64 / 1e6 / wall
    );
    println!("CPU (ours):       coordinator {coord_cpu:.1} s, workers {worker_cpu:.1} s in total");
    println!(
        "peak RSS (ours):  coordinator {:.0} MB, largest worker {:.0} MB",
        coord_rss as f64 / 1e6,
        worker_rss as f64 / 1e6
    );
    println!(
        "ledger:           {} keys, {:.1} MB, {:.0} bytes per message",
        keys.len(),
        ledger_bytes as f64 / 1e6,
        ledger_bytes as f64 / msgs as f64
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
    Ok(())
}
