//! Chaos, end to end (issue 12): RabbitMQ goes away for 10 s in the middle of a pass
//! while `mailhaul migrate` follows it. The follower says once that it waits for the
//! broker and once that it is back, the workers reconnect, the queued tasks survive
//! (quorum queues), the pass finishes by itself with exit 0, and the target equals the
//! source. In a binary of its own: every test of a process shares its broker.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Env, run_with_timeout, show};
use mailhaul_tests::kit;
use mailhaul_tests::snapshot::assert_same;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_pass_is_ridden_out_by_workers_and_the_follower() -> anyhow::Result<()>
{
    let users = ["frank", "grace", "heidi"];
    let env = Env::new("broker-restart", &users, "slice_messages = 10")?;
    let c = corpus::standard(35, 16);
    let mut sources = Vec::new();
    for u in users {
        env.seed(u, &c).await?;
        sources.push(env.source_snapshot(u).await?);
    }
    let total = (c.message_count() * users.len()) as u64;
    // Slow workers (one slice at a time, one message a batch), so the outage is mid-pass.
    for _ in 0..2 {
        env.spawn_worker(&["--concurrency", "1", "--batch-messages", "1"], &[]);
    }
    let mut follow = env.command("mailhaul");
    follow.args(["migrate", &env.manifest.display().to_string()]);
    let following = std::thread::spawn(move || run_with_timeout(follow, Duration::from_secs(400)));

    let ledger = env.ledger().await?;
    let copied = || async {
        let p = ledger.progress(&env.migration, 1).await?;
        anyhow::Ok(p.mailboxes.iter().map(|m| m.copied_msgs).sum::<u64>())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while copied().await? < 20 {
        assert!(
            Instant::now() < deadline,
            "no progress:\n{}",
            env.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::spawn_blocking(|| kit::broker_app(false)).await??;
    let at_stop = copied().await?;
    // The outage itself lasts 10 s (the fault, not a wait for anything).
    tokio::time::sleep(Duration::from_secs(10)).await;
    tokio::task::spawn_blocking(|| kit::broker_app(true)).await??;
    assert!(
        at_stop < total,
        "the broker went away mid-pass ({at_stop} copied)"
    );

    let out = tokio::task::spawn_blocking(move || following.join())
        .await?
        .expect("the follower thread ends");
    assert!(
        out.status.success(),
        "{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("the message broker is not answering").count(),
        1,
        "said once:\n{err}"
    );
    assert!(err.contains("The message broker is back"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" 0 failed"),
        "{}",
        show(&out)
    );
    for (u, source) in users.iter().zip(&sources) {
        let target = env.target_snapshot(u).await?;
        assert_same(source, &target);
        assert_eq!(target.message_count(), c.message_count());
    }
    Ok(())
}
