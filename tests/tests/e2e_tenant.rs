//! End to end, on both backends (RabbitMQ, Redis and worker processes; or `mailhaul
//! migrate` alone with its embedded queue and ledger): a tenant of several mailboxes
//! migrates IMAP -> IMAP; a second pass copies nothing; a pass after new mail arrives
//! copies exactly the new mail.

use mailhaul_proto::MailboxId;
use mailhaul_tests::both_backends;
use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::harness::{Backend, Env, email, show};
use mailhaul_tests::snapshot::{MailboxSnapshot, assert_same};

fn mailbox<'a>(
    p: &'a mailhaul_ledger::PassProgress,
    user: &str,
) -> &'a mailhaul_ledger::MailboxProgress {
    p.mailboxes
        .iter()
        .find(|m| m.mailbox == MailboxId(email(user)))
        .expect("every manifest mailbox is in the progress")
}

both_backends!(
    tenant_migrates_completely_then_delta_passes_copy_only_new_mail,
    tenant
);

async fn tenant(backend: Backend) -> anyhow::Result<()> {
    let users = ["alice", "bob", "carol"];
    // Small slices and a byte cap so folders are cut into several UID-range tasks.
    let env = Env::new(
        "tenant",
        &users,
        "slice_messages = 20\nslice_bytes = \"3MiB\"",
    )?
    .on(backend);
    let corpora: Vec<Corpus> = vec![
        corpus::standard(11, 1),
        corpus::standard(12, 8),
        corpus::standard(13, 16),
    ];
    for (u, c) in users.iter().zip(&corpora) {
        env.seed(u, c).await?;
    }
    let sources: Vec<MailboxSnapshot> = {
        let mut v = Vec::new();
        for u in users {
            v.push(env.source_snapshot(u).await?);
        }
        v
    };
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    match backend {
        Backend::Distributed => {
            env.spawn_worker(
                &["--concurrency", "2", "--metrics-addr", &metrics_addr],
                &[],
            );
            env.spawn_worker(&["--concurrency", "2"], &[]);
        }
        Backend::Embedded => env.workers(2, &["--concurrency", "2"]),
    }

    // Pass 1: everything.
    let out = env.migrate();
    assert!(
        out.status.success(),
        "first pass failed:\n{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let ledger = env.ledger().await?;
    let p1 = ledger.progress(&env.migration, 1).await?;
    assert!(
        p1.tasks_total > users.len() as u64 * 16,
        "folders were sliced: {} tasks",
        p1.tasks_total
    );
    for ((u, c), src) in users.iter().zip(&corpora).zip(&sources) {
        let target = env.target_snapshot(u).await?;
        assert_same(src, &target);
        assert_eq!(
            target.message_count(),
            c.message_count(),
            "{u}: every message exactly once"
        );
        let m = mailbox(&p1, u);
        assert_eq!(
            m.copied_msgs,
            c.message_count() as u64,
            "{u}: report counts every message"
        );
        assert_eq!(
            m.copied_bytes,
            c.total_bytes(),
            "{u}: report counts every byte"
        );
        assert_eq!(m.failed_msgs, 0, "{u}");
        // The empty folder is part of the tree too.
        assert!(
            target.folders.contains_key("Junk"),
            "{u}: empty folder created"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 failed"), "{stdout}");

    // `status` tells the same story; the metrics count what this worker copied.
    let status = env.mailhaul(&["status", env.migration.as_str()]);
    assert!(status.status.success(), "{}", show(&status));
    let table = String::from_utf8_lossy(&status.stdout);
    for u in users {
        let line = table
            .lines()
            .find(|l| l.starts_with(&email(u)))
            .unwrap_or_else(|| panic!("{u} in:\n{table}"));
        assert!(line.ends_with("done"), "{line}");
    }
    if backend == Backend::Embedded {
        // No broker and no Redis were started for this test.
        assert!(env.state_dir().join("ledger.sqlite").is_file());
    } else {
        let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
            .await?
            .text()
            .await?;
        let migrated: u64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("mailhaul_messages_migrated_total{source=\"imap\",target=\"imap\"} ")
            })
            .unwrap_or_else(|| panic!("no migrated counter in:\n{text}"))
            .parse()?;
        let total: u64 = corpora.iter().map(|c| c.message_count() as u64).sum();
        assert!(
            migrated > 0 && migrated <= total,
            "this worker copied {migrated} of {total}"
        );
        assert!(
            text.contains("mailhaul_task_duration_seconds_bucket{outcome=\"done\""),
            "{text}"
        );
    }

    // Pass 2: nothing new, nothing copied, nothing changes on the target.
    let before: Vec<MailboxSnapshot> = {
        let mut v = Vec::new();
        for u in users {
            v.push(env.target_snapshot(u).await?);
        }
        v
    };
    let out = env.migrate();
    assert!(out.status.success(), "second pass failed:\n{}", show(&out));
    let p2 = ledger.progress(&env.migration, 2).await?;
    assert_eq!(
        p2.tasks_total, 0,
        "a pass with nothing new publishes nothing"
    );
    for (u, b) in users.iter().zip(&before) {
        assert_eq!(mailbox(&p2, u).copied_msgs, 0);
        assert_eq!(
            &env.target_snapshot(u).await?,
            b,
            "{u}: second pass changed the target"
        );
    }

    // New mail arrives for alice, in INBOX and in a new nested folder.
    let fresh = corpus::standard(99, 16);
    let inbox_new: Vec<_> = fresh.folder("INBOX").expect("INBOX")[..5].to_vec();
    let nested_new: Vec<_> = fresh.folder("Sent").expect("Sent")[..3].to_vec();
    let delta = Corpus {
        folders: vec![
            ("INBOX".into(), inbox_new),
            ("Neu/Überfällig".into(), nested_new),
        ],
    };
    env.seed("alice", &delta).await?;
    let out = env.migrate();
    assert!(out.status.success(), "third pass failed:\n{}", show(&out));
    let p3 = ledger.progress(&env.migration, 3).await?;
    assert_eq!(mailbox(&p3, "alice").copied_msgs, 8, "exactly the new mail");
    assert_eq!(mailbox(&p3, "bob").copied_msgs, 0);
    assert_same(
        &env.source_snapshot("alice").await?,
        &env.target_snapshot("alice").await?,
    );
    assert_eq!(env.target_snapshot("bob").await?, before[1]);
    Ok(())
}
