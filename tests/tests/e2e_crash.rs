//! End to end: workers die mid-slice (SIGKILL, or an abort exactly between "the target
//! accepted the batch" and "the ledger recorded it"), others take over, and the end
//! state is exactly one copy of every message. SIGTERM drains without loss.

use mailhaul_proto::MailboxId;
use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Env, email, show};
use mailhaul_tests::snapshot::assert_same;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

async fn copied(env: &Env) -> anyhow::Result<u64> {
    let ledger = env.ledger().await?;
    let pass = ledger.latest_pass(&env.migration).await?.unwrap_or(1);
    let p = ledger.progress(&env.migration, pass).await?;
    Ok(p.mailboxes.iter().map(|m| m.copied_msgs).sum())
}

/// Waits until the pass has copied at least `n` messages.
async fn wait_copied(env: &Env, n: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while copied(env).await? < n {
        assert!(
            Instant::now() < deadline,
            "workers made no progress:\n{}",
            env.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn detach(env: &Env) {
    let m = env.manifest.display().to_string();
    let out = env.mailhaul(&["migrate", "--detach", &m]);
    assert!(out.status.success(), "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_mid_slice_leaves_exactly_one_copy() -> anyhow::Result<()> {
    let env = Env::new("sigkill", &["alice"], "slice_messages = 60")?;
    let c = corpus::standard(21, 4);
    env.seed("alice", &c).await?;
    let source = env.source_snapshot("alice").await?;

    // One slow-ish worker: one slice at a time, small batches, so it is mid-slice.
    let a = env.spawn_worker(&["--concurrency", "1", "--batch-messages", "3"], &[]);
    detach(&env);
    wait_copied(&env, 25).await?;
    env.signal_worker(a, Signal::SIGKILL);
    let at_kill = copied(&env).await?;
    assert!(
        at_kill < c.message_count() as u64,
        "killed before the end ({at_kill})"
    );

    env.spawn_worker(&["--concurrency", "2"], &[]);
    let p = env.wait_pass_done(Duration::from_secs(240)).await?;
    assert!(p.tasks_failed.is_empty(), "{:?}", p.tasks_failed);
    let target = env.target_snapshot("alice").await?;
    assert_same(&source, &target);
    assert_eq!(target.message_count(), c.message_count());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_between_append_and_record_never_duplicate() -> anyhow::Result<()> {
    // INBOX holds exact duplicates, messages without Message-ID and two different
    // messages sharing one; the lookup must tell them all apart.
    let env = Env::new("failpoint", &["alice"], "slice_messages = 500")?;
    let c = corpus::standard(22, 16);
    env.seed("alice", &c).await?;
    let source = env.source_snapshot("alice").await?;
    detach(&env);

    // Four workers in turn, each aborting right after an APPEND the target accepted and
    // before the ledger heard of it; each successor must find that batch on the target.
    for crash_after in [3, 5, 8, 13] {
        let before = copied(&env).await?;
        let fp = format!("crash-after-append:{crash_after}");
        let w = env.spawn_worker(
            &["--concurrency", "1", "--batch-messages", "4"],
            &[("MAILHAUL_FAILPOINT", &fp)],
        );
        let status = env
            .wait_worker(w, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("worker with {fp} did not crash:\n{}", env.worker_logs()));
        assert!(!status.success(), "the failpoint aborts the worker");
        let target_now = env.target_snapshot("alice").await?.message_count() as u64;
        let recorded = copied(&env).await?;
        assert!(recorded > before, "progress was made before the crash");
        assert!(
            target_now > recorded,
            "the crash left appended-but-unrecorded messages on the target ({target_now} on target, {recorded} recorded)"
        );
    }
    env.spawn_worker(&["--concurrency", "2"], &[]);
    let p = env.wait_pass_done(Duration::from_secs(240)).await?;
    assert!(p.tasks_failed.is_empty(), "{:?}", p.tasks_failed);
    let target = env.target_snapshot("alice").await?;
    assert_same(&source, &target);
    assert_eq!(
        target.message_count(),
        c.message_count(),
        "exactly one copy of each message"
    );
    let ledger = env.ledger().await?;
    let pass = ledger.latest_pass(&env.migration).await?.unwrap_or(1);
    let m = ledger.progress(&env.migration, pass).await?;
    let m = m
        .mailboxes
        .iter()
        .find(|m| m.mailbox == MailboxId(email("alice")))
        .expect("alice");
    assert_eq!(
        m.total_msgs,
        c.message_count() as u64,
        "the ledger records every message once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_another_worker_finishes() -> anyhow::Result<()> {
    let env = Env::new("sigterm", &["alice"], "slice_messages = 80")?;
    let c = corpus::standard(23, 4);
    env.seed("alice", &c).await?;
    let source = env.source_snapshot("alice").await?;
    let a = env.spawn_worker(&["--concurrency", "2", "--batch-messages", "2"], &[]);
    detach(&env);
    wait_copied(&env, 10).await?;
    let started = Instant::now();
    let status = env.signal_worker(a, Signal::SIGTERM);
    assert!(
        status.success(),
        "SIGTERM is a clean exit: {status:?}\n{}",
        env.worker_logs()
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "drained within the drain timeout"
    );
    assert!(
        env.worker_logs().contains("Drained"),
        "{}",
        env.worker_logs()
    );

    env.spawn_worker(&[], &[]);
    env.wait_pass_done(Duration::from_secs(240)).await?;
    assert_same(&source, &env.target_snapshot("alice").await?);
    Ok(())
}
