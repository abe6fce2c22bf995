//! End to end into Exchange Online through Microsoft Graph (the emulator): real Dovecot
//! source, RabbitMQ, Redis and worker processes.
//!
//! - A tenant migrates: every message exactly once, in the right folder (special folders
//!   on Exchange's well-known ones, merges included), not a draft, with read state,
//!   flag, keywords as categories and the received date; a second pass adds nothing.
//! - Under a throttling storm and 503s that come after the item was committed, with
//!   several workers on one mailbox: zero duplicates, zero losses, and the emulator never
//!   sees more than 4 requests at once for a mailbox.
//! - A worker killed between an upload and its record: exactly one copy at the end.
//! - Messages of 5, 20 and 40 MB: each lands (through an upload session) or is reported.

use anyhow::Context as _;
use mailhaul_tests::both_backends;
use mailhaul_tests::corpus::{self, Corpus, Message};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig, Fault};
use mailhaul_tests::exchange_check::{
    Compare, assert_exchange_same, exchange_path, expected, graph_reader, message_count,
};
use mailhaul_tests::harness::{Backend, Env, email};
use std::time::{Duration, Instant};

const JSON: Compare = Compare {
    received: true,
    mime: false,
    drafts_by_json: false,
};

/// The beta `importMime` path keeps the MIME, not the received date.
const IMPORT_MIME: Compare = Compare {
    received: false,
    mime: true,
    drafts_by_json: true,
};

fn migrate(env: &Env) {
    tokio::task::block_in_place(|| env.migrate_ok());
}

both_backends!(
    graph_tenant_migrates_exactly_once_with_state_and_dates,
    graph_tenant
);

async fn graph_tenant(backend: Backend) -> anyhow::Result<()> {
    let users = ["alice", "bob"];
    let env = Env::new("graph", &users, "slice_messages = 25")?.on(backend);
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    env.use_exchange("graph", &emu, "")?;
    let corpora: Vec<Corpus> = vec![corpus::standard(31, 16), corpus::standard(32, 16)];
    for (u, c) in users.iter().zip(&corpora) {
        env.seed(u, c).await?;
    }
    env.workers(2, &["--concurrency", "3"]);

    let started = Instant::now();
    migrate(&env);
    let took = started.elapsed();
    let total: usize = corpora.iter().map(Corpus::message_count).sum();
    for (u, c) in users.iter().zip(&corpora) {
        let reader = graph_reader(&emu, &email(u));
        assert_exchange_same(&expected(c, &exchange_path, JSON), &reader, JSON).await?;
        assert!(
            emu.peak_concurrency(&email(u)) <= 4,
            "peak {} requests at once for {u}",
            emu.peak_concurrency(&email(u))
        );
    }
    println!(
        "graph: {total} messages in {:.1} s = {:.1} messages/s over {} mailboxes",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        users.len()
    );

    // A second pass finds everything recorded and sends nothing.
    let mut before = 0;
    for u in &users {
        before += message_count(&graph_reader(&emu, &email(u))).await?;
    }
    migrate(&env);
    let mut after = 0;
    for u in &users {
        after += message_count(&graph_reader(&emu, &email(u))).await?;
    }
    assert_eq!(before, after, "the second pass created items");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mime_path_keeps_the_mime_as_sent() -> anyhow::Result<()> {
    let users = ["ivy"];
    let env = Env::new("graph-mime", &users, "")?;
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    env.use_exchange("graph", &emu, "upload = \"import-mime\"")?;
    let c = corpus::standard(35, 16);
    env.seed("ivy", &c).await?;
    env.spawn_worker(&["--concurrency", "2"], &[]);
    migrate(&env);
    let reader = graph_reader(&emu, &email("ivy"));
    assert_exchange_same(
        &expected(&c, &exchange_path, IMPORT_MIME),
        &reader,
        IMPORT_MIME,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_storm_and_503_after_commit_lose_and_duplicate_nothing() -> anyhow::Result<()> {
    let users = ["dave"];
    // Small slices: many tasks of one mailbox run at once on three workers.
    let env = Env::new("graph-storm", &users, "slice_messages = 8")?;
    let emu = Emulator::start(EmulatorConfig {
        // Requests overlap, so the concurrency gate is really tested.
        latency: Duration::from_millis(15),
        ..EmulatorConfig::default()
    })
    .await?;
    env.use_exchange("graph", &emu, "")?;
    let c = corpus::standard(33, 16);
    env.seed("dave", &c).await?;
    // Plan first (the coordinator's own requests are throttled like any, but the storm
    // is for the workers), then the storm, then the workers.
    tokio::task::block_in_place(|| env.publish_pass());
    emu.inject(Fault::Fail503AfterCommit { count: 6 });
    emu.inject(Fault::Throttle429 {
        count: 40,
        retry_after: Duration::from_secs(1),
    });
    emu.inject(Fault::Fail503 {
        count: 4,
        retry_after: None,
    });
    emu.inject(Fault::Fail504 { count: 2 });
    emu.inject(Fault::Fail503AfterCommit { count: 4 });
    for _ in 0..3 {
        env.spawn_worker(&["--concurrency", "4"], &[]);
    }
    env.wait_pass_done(Duration::from_secs(300)).await?;
    let reader = graph_reader(&emu, &email("dave"));
    assert_exchange_same(&expected(&c, &exchange_path, JSON), &reader, JSON).await?;
    let peak = emu.peak_concurrency(&email("dave"));
    assert!(peak <= 4, "the emulator saw {peak} requests at once");
    assert!(
        peak >= 2,
        "requests never overlapped (peak {peak}): the test proves nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_leaves_exactly_one_copy() -> anyhow::Result<()> {
    let users = ["erin"];
    let env = Env::new("graph-crash", &users, "slice_messages = 40")?;
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    env.use_exchange("graph", &emu, "")?;
    let c = corpus::standard(34, 16);
    env.seed("erin", &c).await?;
    // The first worker dies right after its 3rd upload was accepted, before recording it.
    let doomed = env.spawn_worker(
        &["--concurrency", "1"],
        &[("MAILHAUL_FAILPOINT", "crash-after-append:3")],
    );
    tokio::task::block_in_place(|| env.publish_pass());
    let status = tokio::task::block_in_place(|| env.wait_worker(doomed, Duration::from_secs(60)))
        .expect("the worker with the failpoint dies after its third upload");
    assert!(
        !status.success(),
        "the failpoint worker exited cleanly: {status:?}"
    );
    env.spawn_worker(&["--concurrency", "2"], &[]);
    env.wait_pass_done(Duration::from_secs(240)).await?;
    let reader = graph_reader(&emu, &email("erin"));
    assert_exchange_same(&expected(&c, &exchange_path, JSON), &reader, JSON).await?;
    // The third upload landed but was never recorded: without the lookup of in-flight
    // messages it would be there twice, and the comparison above would fail.
    assert_eq!(message_count(&reader).await?, c.message_count());
    Ok(())
}

fn big_message(i: usize, megabytes: usize) -> Message {
    let attachment: String = {
        let raw: Vec<u8> = (0..megabytes * 1024 * 1024 * 3 / 4)
            .map(|n| (n * 31 + i) as u8)
            .collect();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        b64.as_bytes()
            .chunks(76)
            .map(|l| format!("{}\r\n", String::from_utf8_lossy(l)))
            .collect()
    };
    let body = format!(
        "From: Big Sender <big@example.org>\r\nTo: erin@example.test\r\nSubject: Big {megabytes} MB\r\n\
         Date: Tue, 03 Mar 2026 10:00:0{i} +0000\r\nMessage-ID: <big-{i}@example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
         --b\r\nContent-Type: application/octet-stream; name=\"data{i}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"data{i}.bin\"\r\n\r\n{attachment}--b--\r\n"
    );
    Message {
        body: body.into_bytes(),
        flags: vec!["\\Seen".to_owned()],
        internal_date: chrono::DateTime::parse_from_rfc3339("2026-03-03T10:00:00+00:00")
            .expect("valid date"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_land_or_are_reported() -> anyhow::Result<()> {
    let users = ["frank"];
    let env = Env::new("graph-large", &users, "")?;
    let emu = Emulator::start(EmulatorConfig {
        upload_bytes_per_5min: 4 << 30,
        ..EmulatorConfig::default()
    })
    .await?;
    env.use_exchange("graph", &emu, "max_upload_per_5min = \"4GiB\"")?;
    let c = Corpus {
        folders: vec![(
            "INBOX".to_owned(),
            vec![big_message(1, 5), big_message(2, 20), big_message(3, 40)],
        )],
    };
    env.seed("frank", &c).await?;
    env.spawn_worker(&["--concurrency", "2"], &[]);
    migrate(&env);
    let reader = graph_reader(&emu, &email("frank"));
    let inbox = reader.folder("Inbox").await?.context("Inbox")?;
    let messages = reader.messages(&inbox.id).await?;
    for i in 1..=3 {
        let id = format!("<big-{i}@example.org>");
        let copies: Vec<_> = messages
            .iter()
            .filter(|m| m.internet_message_id.as_deref() == Some(id.as_str()))
            .collect();
        assert_eq!(copies.len(), 1, "{id}: {} copies", copies.len());
        let m = copies[0];
        assert!(!m.is_draft && m.is_read);
        let attachments = reader.attachments(&m.id).await?;
        let file = attachments
            .iter()
            .find(|a| a.name == format!("data{i}.bin"))
            .with_context(|| format!("{id}: data{i}.bin in {attachments:?}"))?;
        let want = [5, 20, 40][i - 1] * 1024 * 1024 * 3 / 4;
        assert_eq!(file.size, want as u64, "{id}: attachment size");
        let bytes = reader.attachment_bytes(&m.id, &file.id).await?;
        let expected: Vec<u8> = (0..want).map(|n| (n * 31 + i) as u8).collect();
        assert!(bytes == expected, "{id}: the attachment's bytes differ");
    }
    Ok(())
}
