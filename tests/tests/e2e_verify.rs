//! End to end: `mailhaul verify` re-reads both sides and finds a lost and a doubled
//! message; `mailhaul retry` re-runs exactly the failed messages once their cause is
//! fixed; `verify` against Exchange (Graph, the emulator).

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig};
use mailhaul_tests::harness::{Env, ONE_MB_LIMIT, PASSWORD, show};
use std::time::{Duration, Instant};

type ImapSession = async_imap::Session<tokio::net::TcpStream>;

async fn login(port: u16, user: &str) -> anyhow::Result<ImapSession> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?.context("no IMAP greeting")?;
    client
        .login(user, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .context("IMAP LOGIN")
}

/// Two INBOX messages of the corpus with Message-IDs of their own: (id, body) each.
fn two_inbox_messages(c: &Corpus) -> ((String, Vec<u8>), (String, Vec<u8>)) {
    let inbox = c.folder("INBOX").expect("the corpus has an INBOX");
    let mut ids: Vec<(String, Vec<u8>)> = inbox
        .iter()
        .filter_map(|m| mailhaul_proto::inspect::message_id(&m.body).map(|id| (id, m.body.clone())))
        .collect();
    ids.retain(|(id, _)| {
        inbox
            .iter()
            .filter(|m| mailhaul_proto::inspect::message_id(&m.body).as_deref() == Some(id))
            .count()
            == 1
    });
    assert!(
        ids.len() >= 2,
        "the corpus has two INBOX messages with ids of their own"
    );
    let b = ids.remove(1);
    let a = ids.remove(0);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_lost_and_a_doubled_message() -> anyhow::Result<()> {
    let env = Env::new("verify", &["alice"], "")?;
    let c = corpus::standard(81, 1);
    env.seed("alice", &c).await?;
    env.spawn_worker(&["--concurrency", "2"], &[]);
    tokio::task::block_in_place(|| env.migrate_ok());
    let m = env.manifest.display().to_string();

    let out = tokio::task::block_in_place(|| env.mailhaul(&["verify", &m]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "a clean migration verifies:\n{}",
        show(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK,"), "{stdout}");

    // Lose one message and double another on the target.
    let ((lost, _), (doubled, body)) = two_inbox_messages(&c);
    let mut s = login(env.target.imap_port(), "alice").await?;
    s.select("INBOX").await?;
    let uids = s
        .uid_search(format!("HEADER Message-ID \"{lost}\""))
        .await?;
    assert_eq!(uids.len(), 1, "{lost} is on the target once");
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
        .await?
        .try_collect::<Vec<_>>()
        .await?;
    // UID EXPUNGE (RFC 4315): the corpus has messages flagged \Deleted of its own.
    s.uid_expunge(&set).await?.try_collect::<Vec<_>>().await?;
    s.append("INBOX", None, None, &body).await?;
    s.logout().await?;

    let out = tokio::task::block_in_place(|| env.mailhaul(&["verify", &m]));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("missing in \"INBOX\": {lost}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("duplicated in \"INBOX\": {doubled}")),
        "{stdout}"
    );

    let out = tokio::task::block_in_place(|| env.mailhaul(&["verify", &m, "--format", "json"]));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let inbox = v["mailboxes"][0]["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .find(|f| f["target"] == "INBOX")
        .expect("INBOX")
        .clone();
    assert_eq!(
        (inbox["missing"].as_u64(), inbox["duplicated"].as_u64()),
        (Some(1), Some(1))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_copies_exactly_the_failed_messages_once_the_limit_is_lifted() -> anyhow::Result<()> {
    let limits = tempfile::tempdir()?;
    let limit_conf = limits.path().join("limit.conf");
    std::fs::write(&limit_conf, ONE_MB_LIMIT)?;
    let env = Env::with_target_config(
        "verify-retry",
        &["bob"],
        "slice_messages = 40",
        &format!("!include_try {}\n", limit_conf.display()),
    )?;
    env.target.add_user("probe", PASSWORD)?;
    let c = corpus::standard(82, 1); // three attachments of 2, 4 and 6 MB
    env.seed("bob", &c).await?;
    let source = env.source_snapshot("bob").await?;
    env.spawn_worker(&["--concurrency", "2"], &[]);
    let m = env.manifest.display().to_string();

    let out = tokio::task::block_in_place(|| env.migrate());
    assert_eq!(out.status.code(), Some(1), "refusals:\n{}", show(&out));
    assert_eq!(
        env.target_snapshot("bob").await?.message_count(),
        c.message_count() - 3
    );

    // Lift the limit and wait until the target takes a big message.
    std::fs::write(&limit_conf, "")?;
    env.target.doveadm(&["reload"])?;
    let big = vec![b'x'; 2 << 20];
    let probe = [b"Subject: probe\r\n\r\n".as_slice(), &big].concat();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut s = login(env.target.imap_port(), "probe").await?;
        let taken = s.append("INBOX", None, None, &probe).await.is_ok();
        let _ = s.logout().await;
        if taken {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the target kept its size limit after reload"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let out = tokio::task::block_in_place(|| env.mailhaul(&["retry", &m]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("retrying 3 failed messages"), "{stdout}");
    let target = env.target_snapshot("bob").await?;
    assert_eq!(
        target.message_count(),
        c.message_count(),
        "nothing else was copied again"
    );
    mailhaul_tests::snapshot::assert_same(&source, &target);

    let out = tokio::task::block_in_place(|| {
        env.mailhaul(&["report", env.migration.as_str(), "--format", "json"])
    });
    assert!(out.status.success(), "{}", show(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let failed: usize = r["mailboxes"][0]["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .map(|f| f["failed"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(failed, 0, "{r}");

    // Nothing left: a second retry says so and publishes nothing.
    let out = tokio::task::block_in_place(|| env.mailhaul(&["retry", &m]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no failed messages"),
        "{}",
        show(&out)
    );
    let out = tokio::task::block_in_place(|| env.mailhaul(&["verify", &m]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_graph() -> anyhow::Result<()> {
    let env = Env::new("verify-graph", &["carol"], "")?;
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    env.use_exchange("graph", &emu, "")?;
    let c = corpus::standard(83, 1);
    env.seed("carol", &c).await?;
    env.spawn_worker(&["--concurrency", "2"], &[]);
    tokio::task::block_in_place(|| env.migrate_ok());
    let m = env.manifest.display().to_string();
    let out = tokio::task::block_in_place(|| env.mailhaul(&["verify", &m, "--format", "json"]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let expected: u64 = v["mailboxes"][0]["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .map(|f| f["expected"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(expected, c.message_count() as u64, "{v}");
    Ok(())
}

/// POP3 (Dovecot) -> Dovecot with a message in bare LF, as the issue saw it: the
/// target's copy is what the target makes of it, and `verify` finds each message once
/// (sizes the two servers count differently are compared by content, not called
/// missing and duplicated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_pop3_with_bare_lf() -> anyhow::Result<()> {
    let env = Env::new("verify-pop3", &["alice"], "")?;
    env.use_pop3()?;
    let date = chrono::DateTime::parse_from_rfc2822("Mon, 1 Jan 2024 10:00:00 +0000")?;
    let message = |body: &[u8]| corpus::Message {
        body: body.to_vec(),
        flags: Vec::new(),
        internal_date: date,
    };
    let c = Corpus {
        folders: vec![(
            "INBOX".into(),
            vec![
                message(b"Message-ID: <lf@pop3.test>\nSubject: bare LF\n\none\ntwo\n"),
                message(b"Message-ID: <crlf@pop3.test>\r\nSubject: CRLF\r\n\r\nthree\r\n"),
            ],
        )],
    };
    env.seed("alice", &c).await?;
    env.spawn_worker(&[], &[]);
    tokio::task::block_in_place(|| env.migrate_ok());
    let m = env.manifest.display().to_string();
    let out = tokio::task::block_in_place(|| env.mailhaul(&["verify", &m]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stdout.contains("2 expected messages, 0 missing, 0 duplicated"),
        "{stdout}"
    );
    eprintln!("{stdout}");
    Ok(())
}
