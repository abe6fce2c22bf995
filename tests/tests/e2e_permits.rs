//! End to end: per-mailbox connection permits hold across all workers. Three workers
//! with four slots each work one mailbox whose servers allow two connections; Dovecot's
//! own count of logged-in sessions never exceeds two on either side.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Env, show};
use mailhaul_tests::kit::Dovecot;
use mailhaul_tests::snapshot::assert_same;
use std::time::{Duration, Instant};

/// Sessions Dovecot counts for `user` right now (`doveadm who`: `user  count  proto ...`).
fn sessions(d: &Dovecot, user: &str) -> anyhow::Result<u32> {
    let out = d.doveadm(&["who", "-1", user])?;
    Ok(out
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(user))
        .count() as u32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_permits_hold_across_workers() -> anyhow::Result<()> {
    let env = Env::new("permits", &["alice"], "slice_messages = 8")?;
    let text = std::fs::read_to_string(&env.manifest)?
        .replace(
            "tls = \"implicit\"\n",
            "tls = \"implicit\"\nmax_connections_per_mailbox = 2\n",
        )
        .replace(
            "tls = \"starttls\"\n",
            "tls = \"starttls\"\nmax_connections_per_mailbox = 2\n",
        );
    std::fs::write(&env.manifest, text)?;
    let c = corpus::standard(51, 16);
    env.seed("alice", &c).await?;
    let source = env.source_snapshot("alice").await?;
    for _ in 0..3 {
        env.spawn_worker(&["--concurrency", "4", "--batch-messages", "4"], &[]);
    }
    let m = env.manifest.display().to_string();
    let out = env.mailhaul(&["migrate", "--detach", &m]);
    assert!(out.status.success(), "{}", show(&out));

    let (mut max_source, mut max_target, mut samples) = (0, 0, 0);
    let ledger = env.ledger().await?;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        max_source = max_source.max(sessions(&env.source, "alice")?);
        max_target = max_target.max(sessions(&env.target, "alice")?);
        samples += 1;
        let p = ledger.progress(&env.migration, 1).await?;
        if p.finished() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done: {p:?}\n{}",
            env.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        max_source >= 1 && max_target >= 1,
        "the sampling saw the sessions ({samples} samples)"
    );
    assert!(
        max_source <= 2,
        "source saw {max_source} sessions for one mailbox with a limit of 2"
    );
    assert!(
        max_target <= 2,
        "target saw {max_target} sessions for one mailbox with a limit of 2"
    );
    assert_same(&source, &env.target_snapshot("alice").await?);
    Ok(())
}
