//! `mailhaul-demo`: a real migration on this machine, start to finish.
//!
//! Starts a source and a target Dovecot, seeds a sample tenant ("Example Corp": three
//! mailboxes with nested and non-ASCII folders, flags, old dates, big attachments) and
//! runs `mailhaul migrate` on it — by default in the embedded mode (one process, no
//! broker, no Redis; its state in a directory of the demo's), with `--distributed`
//! through RabbitMQ, Redis and two `mailhaul-worker` processes. Then it compares every
//! mailbox on both servers, runs a delta pass, shows `report` and `verify`, and says
//! where to look next.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Backend, Env, show};
use mailhaul_tests::snapshot::diff;
use std::process::{ExitCode, Stdio};

#[tokio::main]
async fn main() -> ExitCode {
    let backend = match std::env::args().nth(1).as_deref() {
        None | Some("--embedded") => Backend::Embedded,
        Some("--distributed") => Backend::Distributed,
        Some(other) => {
            eprintln!("unknown flag {other}; use --embedded (the default) or --distributed");
            return ExitCode::from(2);
        }
    };
    match run(backend).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("demo failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `out` with a heading, only when it has something to show.
fn section(heading: &str, out: &str) {
    if !out.trim().is_empty() {
        println!("\n{heading}\n{}", out.trim_end());
    }
}

async fn run(backend: Backend) -> anyhow::Result<bool> {
    let users = ["alice", "bob", "carol"];
    match backend {
        Backend::Embedded => println!(
            "Starting a source and a target Dovecot on loopback (the embedded mode needs nothing else) ..."
        ),
        Backend::Distributed => {
            println!("Starting a source and a target Dovecot, RabbitMQ and Redis on loopback ...")
        }
    }
    let env = Env::new("demo", &users, "slice_messages = 50")?
        .on(backend)
        .rename_tenant("Example Corp")?;
    for (i, u) in users.iter().enumerate() {
        let c = corpus::standard(100 + i as u64, 2 + 2 * i);
        println!(
            "Seeding {u}: {} messages, {:.1} MB, {} folders.",
            c.message_count(),
            c.total_bytes() as f64 / 1e6,
            c.folders.len()
        );
        env.seed(u, &c).await?;
    }
    println!(
        "\nManifest ({}):\n{}",
        env.manifest.display(),
        std::fs::read_to_string(&env.manifest)?.trim_end()
    );
    let m = env.manifest.display().to_string();
    let mut cmd = env.command("mailhaul");
    cmd.args(["migrate", &m]);
    match backend {
        Backend::Embedded => {
            cmd.args(["--concurrency", "4"]);
            println!(
                "\nRunning `mailhaul migrate manifest.toml --concurrency 4` (embedded: state in {}) ...\n",
                env.state_dir().display()
            );
        }
        Backend::Distributed => {
            env.spawn_worker(&["--concurrency", "2"], &[]);
            env.spawn_worker(&["--concurrency", "2"], &[]);
            println!("\nTwo workers started. Running `mailhaul migrate manifest.toml` ...\n");
        }
    }
    let status = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()?;
    let mut all_same = status.success();
    if !status.success() {
        println!("\n`mailhaul migrate` exited with {status}.");
    }

    let mut compared = String::new();
    for u in users {
        let s = env.source_snapshot(u).await?;
        let t = env.target_snapshot(u).await?;
        match diff(&s, &t) {
            None => compared.push_str(&format!(
                "  {u}: identical — {} messages, {:.1} MB in {} folders.\n",
                t.message_count(),
                t.total_bytes() as f64 / 1e6,
                t.folders.len()
            )),
            Some(d) => {
                all_same = false;
                compared.push_str(&format!("  {u}: DIFFERENT\n{d}\n"));
            }
        }
    }
    section(
        "Source and target compared, folder by folder (bytes, flags, dates):",
        &compared,
    );

    let out = env.migrate();
    if !out.status.success() {
        all_same = false;
        println!("{}", show(&out));
    }
    section(
        "A second pass (delta) copies only what is new — nothing here:",
        &String::from_utf8_lossy(&out.stdout),
    );
    let report = env.mailhaul(&["report", env.migration.as_str()]);
    section(
        &format!("`mailhaul report {}`:", env.migration),
        &String::from_utf8_lossy(&report.stdout),
    );
    let verify = env.mailhaul(&["verify", &m]);
    if !verify.status.success() {
        all_same = false;
    }
    section(
        "`mailhaul verify manifest.toml` (re-reads both servers, independent of the ledger):",
        &String::from_utf8_lossy(&verify.stdout),
    );
    println!(
        "\nDemo {}.",
        if all_same {
            "succeeded: every message arrived exactly once"
        } else {
            "FAILED"
        }
    );
    let state = match backend {
        Backend::Embedded => " (add --state-dir if you moved its state directory)",
        Backend::Distributed => " (with the same --amqp-url, --redis-url and --namespace)",
    };
    println!(
        "\nWhere to look next, for your own tenant{state}:\n\
         \x20 mailhaul plan manifest.toml        pre-flight: logins, folder mapping, counts, problem messages\n\
         \x20 mailhaul status <migration>        progress of the latest pass, while it runs or after\n\
         \x20 mailhaul report <migration>        every message accounted for; --format csv lists each failure\n\
         \x20 mailhaul verify manifest.toml      both servers re-read and compared\n\
         \x20 mailhaul retry manifest.toml       only the failed messages again, after a fix\n\
         The README says when to run embedded (one machine) and when distributed."
    );
    Ok(all_same)
}
