//! End to end: messages the target refuses for good are recorded with the server's
//! reason and reported; everything else still arrives, and a later pass neither loses
//! nor duplicates anything. On both backends.

use mailhaul_proto::MailboxId;
use mailhaul_tests::both_backends;
use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Backend, Env, ONE_MB_LIMIT, email, show};
use mailhaul_tests::snapshot::MailboxSnapshot;

/// The source snapshot without messages over `limit` bytes.
fn without_big(s: &MailboxSnapshot, limit: usize) -> MailboxSnapshot {
    let mut s = s.clone();
    for msgs in s.folders.values_mut() {
        msgs.retain(|m| m.size <= limit);
    }
    s
}

both_backends!(refused_messages_are_reported_and_the_rest_arrive, refused);

async fn refused(backend: Backend) -> anyhow::Result<()> {
    let env = Env::with_target_config("refused", &["alice"], "slice_messages = 40", ONE_MB_LIMIT)?
        .on(backend);
    let c = corpus::standard(61, 1); // three attachments of 2, 4 and 6 MB
    env.seed("alice", &c).await?;
    let source = env.source_snapshot("alice").await?;
    let big: Vec<_> = source
        .folders
        .values()
        .flatten()
        .filter(|m| m.size > 1 << 20)
        .collect();
    assert_eq!(big.len(), 3, "the corpus has three big messages");
    env.workers(1, &["--concurrency", "2"]);

    for pass in 1..=2u32 {
        let out = env.migrate();
        assert_eq!(
            out.status.code(),
            Some(1),
            "refusals are problems to report:\n{}",
            show(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Messages not migrated:"), "{stdout}");
        let reported: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains("target refused the message"))
            .collect();
        assert_eq!(
            reported.len(),
            3,
            "each refused message is listed with the reason:\n{stdout}"
        );
        let target = env.target_snapshot("alice").await?;
        mailhaul_tests::snapshot::assert_same(&without_big(&source, 1 << 20), &target);
        assert_eq!(
            target.message_count(),
            c.message_count() - 3,
            "pass {pass}: nothing lost, nothing twice"
        );
        let p = env.ledger().await?.progress(&env.migration, pass).await?;
        let m = p
            .mailboxes
            .iter()
            .find(|m| m.mailbox == MailboxId(email("alice")))
            .expect("alice");
        assert_eq!(m.failed_msgs, 3, "pass {pass}");
        if pass > 1 {
            // Failed for good: not run again by a delta pass (`mailhaul retry` does),
            // yet still counted and listed above.
            assert_eq!(
                (m.planned_msgs, m.tasks),
                (0, 0),
                "pass {pass} ran the failed messages again"
            );
        }
        assert!(
            p.tasks_failed.is_empty(),
            "a refused message does not fail its task: {:?}",
            p.tasks_failed
        );
    }

    // `report` accounts for every message, per folder, in all three forms.
    let target = env.target_snapshot("alice").await?;
    let out = env.mailhaul(&["report", env.migration.as_str(), "--format", "json"]);
    assert!(out.status.success(), "{}", show(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let folders = r["mailboxes"][0]["folders"]
        .as_array()
        .expect("folders")
        .clone();
    let mut failed = 0;
    for f in &folders {
        let name = f["folder"].as_str().expect("name");
        let on_target = target.folders.get(name).map_or(0, Vec::len) as u64;
        assert_eq!(
            f["migrated"].as_u64(),
            Some(on_target),
            "{name}: migrated = what the target holds"
        );
        let n = f["failed"].as_array().expect("failed").len() as u64;
        assert_eq!(
            f["source_messages"].as_u64(),
            Some(on_target + n),
            "{name}: source = migrated + failed"
        );
        failed += n;
    }
    assert_eq!(failed, 3);
    let csv = env.mailhaul(&["report", env.migration.as_str(), "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert_eq!(
        csv.lines()
            .filter(|l| l.contains("target refused the message"))
            .count(),
        3,
        "{csv}"
    );
    let table = env.mailhaul(&["report", env.migration.as_str()]);
    let table = String::from_utf8_lossy(&table.stdout);
    let summary = format!(
        "{}: {} of {} messages migrated, 3 failed",
        email("alice"),
        c.message_count() - 3,
        c.message_count()
    );
    assert!(table.contains(&summary), "{table}");
    Ok(())
}
