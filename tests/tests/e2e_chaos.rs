//! Chaos, end to end (issue 12): the ledger loses its data between passes and during
//! one, a message the worker cannot spool, a migration at `RUST_LOG=trace`, a secret
//! that cannot be read. Every scenario ends with an independent comparison of source
//! and target (per folder: count, content hashes, flags, dates) and the pass's counts:
//! nothing lost, nothing doubled, every failure reported, and nothing a human had to do
//! but what the tool told them.
//!
//! A FLUSHALL is played by deleting every key of the test's namespace: the same loss
//! for the migration, without emptying the Redis the other tests of this process share.

use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::harness::{Env, PASSWORD, show};
use mailhaul_tests::kit;
use mailhaul_tests::snapshot::assert_same;
use std::time::{Duration, Instant};

/// Deletes every ledger key of `env`'s namespace, as FLUSHALL (or a restart without
/// persistence) would; returns how many there were.
async fn flush(env: &Env) -> anyhow::Result<usize> {
    let client = redis::Client::open(kit::shared().redis_url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", env.namespace))
        .query_async(&mut con)
        .await?;
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut con).await?;
    }
    Ok(keys.len())
}

/// Messages copied so far in the latest pass.
async fn copied(env: &Env) -> anyhow::Result<u64> {
    let ledger = env.ledger().await?;
    let Some(pass) = ledger.latest_pass(&env.migration).await? else {
        return Ok(0);
    };
    let p = ledger.progress(&env.migration, pass).await?;
    Ok(p.mailboxes.iter().map(|m| m.copied_msgs).sum())
}

/// `migrate` stopped (exit 3) saying `what` happened and to run `--rebuild-ledger`.
/// Runs `migrate --rebuild-ledger` and checks it succeeds and leaves `user`'s target equal
/// to `source`, each message once.
async fn rebuild_then_target_is_source(
    env: &Env,
    user: &str,
    source: &mailhaul_tests::snapshot::MailboxSnapshot,
) -> anyhow::Result<()> {
    let m = env.manifest.display().to_string();
    let rebuilt = env.mailhaul(&["migrate", "--rebuild-ledger", &m]);
    assert!(
        rebuilt.status.success(),
        "{}\n{}",
        show(&rebuilt),
        env.worker_logs()
    );
    let target = env.target_snapshot(user).await?;
    assert_same(source, &target);
    assert_eq!(
        target.message_count(),
        source.message_count(),
        "no duplicate"
    );
    Ok(())
}

fn assert_told_to_rebuild(out: &std::process::Output, what: &str) {
    assert_eq!(out.status.code(), Some(3), "{}", show(out));
    let why = stderr(out);
    assert!(
        why.contains(what) && why.contains("mailhaul migrate --rebuild-ledger"),
        "says what happened and what to do:\n{why}"
    );
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_emptied_between_passes_is_refused_then_rebuilt() -> anyhow::Result<()> {
    let env = Env::new("flush-between", &["alice"], "slice_messages = 40")?;
    let c = corpus::standard(31, 16);
    env.seed("alice", &c).await?;
    let source = env.source_snapshot("alice").await?;
    env.workers(2, &[]);
    env.migrate_ok();
    assert_same(&source, &env.target_snapshot("alice").await?);

    assert!(flush(&env).await? > 0, "the pass left a ledger");
    let m = env.manifest.display().to_string();
    assert_told_to_rebuild(&env.mailhaul(&["migrate", &m]), "lost its data");
    // Refused before anything was copied again.
    let target = env.target_snapshot("alice").await?;
    assert_eq!(target.message_count(), c.message_count());
    assert_same(&source, &target);

    rebuild_then_target_is_source(&env, "alice", &source).await?;
    // The rebuilt ledger records every message: a delta pass finds nothing to do, and
    // the rebuild mark is gone.
    let ledger = env.ledger().await?;
    assert!(!ledger.rebuilding(&env.migration).await?);
    let delta = env.migrate();
    assert!(delta.status.success(), "{}", show(&delta));
    assert!(
        stdout(&delta).contains(" 0 messages copied"),
        "{}",
        show(&delta)
    );
    assert_same(&source, &env.target_snapshot("alice").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_emptied_during_a_pass_stops_it_and_the_rebuild_finishes_it() -> anyhow::Result<()>
{
    let env = Env::new("flush-during", &["bob"], "slice_messages = 20")?;
    let c = corpus::standard(32, 16);
    env.seed("bob", &c).await?;
    let source = env.source_snapshot("bob").await?;
    // One slow worker: one slice at a time, small batches, so the flush lands mid-pass.
    env.spawn_worker(&["--concurrency", "1", "--batch-messages", "2"], &[]);
    let mut follow = env.command("mailhaul");
    follow.args(["migrate", &env.manifest.display().to_string()]);
    let following = std::thread::spawn(move || {
        mailhaul_tests::harness::run_with_timeout(follow, Duration::from_secs(300))
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while copied(&env).await? < 10 {
        assert!(
            Instant::now() < deadline,
            "no progress:\n{}",
            env.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flush(&env).await?;
    let out = tokio::task::spawn_blocking(move || following.join())
        .await?
        .expect("the follower thread ends");
    assert_told_to_rebuild(&out, "lost its data during pass 1");
    // Nothing was copied twice meanwhile: the worker refuses tasks of the lost ledger.
    let partial = env.target_snapshot("bob").await?;
    assert!(partial.message_count() < c.message_count());

    env.spawn_worker(
        &["--concurrency", "2"],
        &[("RUST_LOG", "debug,lapin=info,redis=info")],
    );
    rebuild_then_target_is_source(&env, "bob", &source).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_spool_cannot_take_fails_alone_with_its_own_words() -> anyhow::Result<()> {
    let env = Env::new("spool-gone", &["carol"], "slice_messages = 200")?;
    let c = corpus::standard(33, 4);
    env.seed("carol", &c).await?;
    let threshold = 256 * 1024;
    let large = c
        .folders
        .iter()
        .flat_map(|(_, m)| m)
        .filter(|m| m.body.len() > threshold)
        .count();
    assert!(large > 0, "the corpus has messages to spool");
    // The spool directory exists when the worker starts (it checks), then goes away.
    let spool = env.dir().join("spool");
    std::fs::create_dir(&spool)?;
    let spool_arg = spool.display().to_string();
    env.spawn_worker(&["--spool-above", "256KiB", "--spool-dir", &spool_arg], &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.worker_logs().contains("Consuming tasks.") {
        assert!(Instant::now() < deadline, "{}", env.worker_logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_dir(&spool)?;

    let out = env.migrate();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{} messages copied", c.message_count() - large))
            && text.contains(&format!("{large} failed")),
        "only the messages to spool failed:\n{text}"
    );
    assert_eq!(
        text.matches("spooling a large message to").count(),
        large,
        "each failed with the spool's own words:\n{text}"
    );
    assert!(!text.contains("connection i/o"), "{text}");
    let ledger = env.ledger().await?;
    let p = ledger.progress(&env.migration, 1).await?;
    assert!(
        p.tasks_failed.is_empty(),
        "no slice gave up: {:?}",
        p.tasks_failed
    );

    // Everything else arrived once; the large ones are the whole difference.
    let target = env.target_snapshot("carol").await?;
    assert_eq!(target.message_count(), c.message_count() - large);
    let small = Corpus {
        folders: c
            .folders
            .iter()
            .map(|(f, m)| {
                let keep = m.iter().filter(|m| m.body.len() <= threshold).cloned();
                (f.clone(), keep.collect())
            })
            .collect(),
    };
    assert_same(
        &mailhaul_tests::snapshot::MailboxSnapshot::from_corpus(&small),
        &target,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_stay_out_of_trace_logs_queues_and_redis() -> anyhow::Result<()> {
    let env = Env::new("secrets-trace", &["dave"], "slice_messages = 20")?;
    let c = corpus::standard(34, 16);
    env.seed("dave", &c).await?;
    let source = env.source_snapshot("dave").await?;
    env.spawn_worker(&["--concurrency", "2"], &[("RUST_LOG", "trace")]);
    let mut migrate = env.command("mailhaul");
    migrate
        .args(["migrate", &env.manifest.display().to_string()])
        .env("RUST_LOG", "trace");
    let out = tokio::task::spawn_blocking(move || {
        mailhaul_tests::harness::run_with_timeout(migrate, Duration::from_secs(300))
    })
    .await?;
    assert!(out.status.success(), "{}", show(&out));
    assert_same(&source, &env.target_snapshot("dave").await?);

    let worker = std::fs::read_to_string(env.dir().join("worker-0.log"))?;
    assert!(
        worker.contains("TRACE"),
        "the worker logged at trace level (the scan means something)"
    );
    for (what, text) in [("worker log", worker), ("coordinator output", show(&out))] {
        assert!(!text.contains(PASSWORD), "the password is in the {what}");
    }
    // Redis: every key and value of the namespace.
    let client = redis::Client::open(kit::shared().redis_url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", env.namespace))
        .query_async(&mut con)
        .await?;
    assert!(!keys.is_empty());
    for k in &keys {
        let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(k).query_async(&mut con).await?;
        let dump = dump.unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&dump).contains(PASSWORD) && !k.contains(PASSWORD),
            "the password is in Redis key {k}"
        );
    }
    Ok(())
}

#[test]
fn validate_names_every_secret_it_cannot_read() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("no-such-secret");
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "tenant = \"Secrets\"\n[source]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = 993\n\
             password = \"file:{}\"\n[target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = 993\n\
             password = \"env:MH_CHAOS_UNSET_PW\"\n[[mailbox]]\nemail = \"erin@example.test\"\n",
            missing.display()
        ),
    )?;
    let mut c = std::process::Command::new(kit::bin_path("mailhaul"));
    c.args(["validate", &manifest.display().to_string()])
        .env_remove("MH_CHAOS_UNSET_PW");
    let out = mailhaul_tests::harness::run_with_timeout(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("secret file {}", missing.display()))
            && err.contains("cannot be read")
            && err.contains("environment variable MH_CHAOS_UNSET_PW")
            && err.contains("is not set"),
        "names both, with what to do:\n{err}"
    );

    std::fs::write(&missing, "hunter2\n")?;
    c = std::process::Command::new(kit::bin_path("mailhaul"));
    c.args(["validate", &manifest.display().to_string()])
        .env("MH_CHAOS_UNSET_PW", "x");
    let out = mailhaul_tests::harness::run_with_timeout(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    assert!(!show(&out).contains("hunter2"));
    Ok(())
}
