//! End to end: messages larger than the worker's spool threshold (4 MiB by default) go
//! through a temporary file instead of memory — IMAP partial FETCHes or POP3 RETR into
//! it, APPEND literals and EWS base64 out of it — and still arrive byte-exact, exactly
//! once, also when a worker dies right after appending one (the lookup then hashes the
//! target's copy in pieces). The sizes sit on the edges: exactly the threshold (kept in
//! memory), one byte over, exactly two FETCH pieces (the last FETCH comes back empty),
//! and a 21 MiB one.
//!
//! How much memory that saves is measured by `mailhaul-bench --profile large`, not here.

use chrono::{DateTime, FixedOffset};
use mailhaul_tests::corpus::{self, Corpus, Message};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig};
use mailhaul_tests::exchange_check::{
    Compare, assert_exchange_same, ews_reader, exchange_path, expected, graph_reader,
};
use mailhaul_tests::harness::{Env, email, show};
use mailhaul_tests::snapshot::diff;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A plain-text message of exactly `size` bytes. Every 7th line starts with a dot
/// (POP3 byte-stuffs those); `with_id: false` leaves out the Message-ID.
fn big(i: usize, size: usize, with_id: bool) -> Message {
    let mut body = format!(
        "From: Big Sender <big@example.com>\r\nTo: ivy@example.com\r\nSubject: large {i}\r\n\
         Date: Tue, 05 Mar 2024 10:00:00 +0000\r\n"
    );
    if with_id {
        body.push_str(&format!("Message-ID: <large-{i}@example.com>\r\n"));
    }
    body.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    let mut bytes = body.into_bytes();
    let mut line = 0usize;
    while bytes.len() < size {
        let text = if line.is_multiple_of(7) {
            format!(".{i} line {line:08} starts with a dot\r\n")
        } else {
            format!("{i} line {line:08} of a large message, padded to a sensible width\r\n")
        };
        bytes.extend_from_slice(text.as_bytes());
        line += 1;
    }
    // Trim to the exact size and end with a line break.
    bytes.truncate(size - 2);
    bytes.extend_from_slice(b"\r\n");
    let date: DateTime<FixedOffset> = DateTime::parse_from_rfc3339("2024-03-05T10:01:00+01:00")
        .expect("valid date")
        + chrono::Duration::minutes(i as i64);
    Message {
        body: bytes,
        flags: if i.is_multiple_of(2) {
            vec!["\\Seen".into(), "$Forwarded".into()]
        } else {
            vec!["\\Flagged".into()]
        },
        internal_date: date,
    }
}

/// An INBOX (only, so one task copies it in order) with large messages on the spool
/// edges around the INBOX of a small standard corpus.
fn mailbox(seed: u64) -> Corpus {
    let small = corpus::standard(seed, 4)
        .folder("INBOX")
        .expect("INBOX")
        .to_vec();
    let mut inbox = vec![
        big(0, 4 * MIB, true),
        big(1, 4 * MIB + 1, true),
        big(2, 8 * MIB, false),
    ];
    inbox.extend(small);
    inbox.push(big(3, 21 * MIB + 3, true));
    Corpus {
        folders: vec![("INBOX".into(), inbox)],
    }
}

/// A worker that dies right after its second APPEND, then a healthy one. The large
/// messages go one per batch, so the second APPEND is the spooled 4 MiB + 1 message,
/// which the next worker must find on the target (hashing the copy in pieces).
async fn crash_then_finish(env: &Env) -> anyhow::Result<()> {
    let w = env.spawn_worker(
        &["--concurrency", "1", "--batch-messages", "5"],
        &[("MAILHAUL_FAILPOINT", "crash-after-append:2")],
    );
    let m = env.manifest.display().to_string();
    let out = env.mailhaul(&["migrate", "--detach", &m]);
    anyhow::ensure!(out.status.success(), "{}", show(&out));
    let status = env
        .wait_worker(w, Duration::from_secs(180))
        .ok_or_else(|| anyhow::anyhow!("the failpoint did not fire"))?;
    anyhow::ensure!(!status.success(), "the first worker should have crashed");
    env.spawn_worker(&[], &[]);
    let p = env.wait_pass_done(Duration::from_secs(300)).await?;
    anyhow::ensure!(p.tasks_failed.is_empty(), "{:?}", p.tasks_failed);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_imap_messages_arrive_byte_exact_once_after_a_crash() -> anyhow::Result<()> {
    let env = Env::new("large-imap", &["ivy"], "slice_messages = 500")?;
    env.seed("ivy", &mailbox(61)).await?;
    crash_then_finish(&env).await?;
    let (source, target) = (
        env.source_snapshot("ivy").await?,
        env.target_snapshot("ivy").await?,
    );
    if let Some(d) = diff(&source, &target) {
        panic!("target differs from source:\n{d}");
    }
    // A delta pass finds nothing new.
    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        env.target_snapshot("ivy").await?.message_count(),
        source.message_count()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_pop3_messages_arrive_byte_exact_once_after_a_crash() -> anyhow::Result<()> {
    let env = Env::new("large-pop3", &["ivy"], "slice_messages = 500")?;
    env.use_pop3()?;
    let c = mailbox(62);
    env.seed("ivy", &c).await?;
    let source = env.source_snapshot("ivy").await?;
    crash_then_finish(&env).await?;
    let target = env.target_snapshot("ivy").await?;
    assert_eq!(
        target.contents()["INBOX"],
        source.contents()["INBOX"],
        "byte-exact, each message once"
    );
    assert_eq!(target.message_count(), c.message_count());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_bodies_reach_exchange_intact() -> anyhow::Result<()> {
    // Two mailboxes: one into EWS (MIME streamed as base64 from the spool), one into
    // Graph (the JSON path reads a spooled body whole, one at a time). The threshold is
    // lowered so that nearly every message is spooled.
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    for (kind, compare, seed) in [
        (
            "ews",
            Compare {
                received: true,
                mime: true,
                drafts_by_json: false,
            },
            63,
        ),
        (
            "graph",
            Compare {
                received: true,
                mime: false,
                drafts_by_json: false,
            },
            64,
        ),
    ] {
        let user = format!("{kind}-large");
        let env = Env::new(&format!("large-{kind}"), &[&user], "slice_messages = 30")?;
        env.use_exchange(kind, &emu, "")?;
        let mut c = corpus::standard(seed, 8);
        if kind == "ews" {
            // Graph's JSON path cannot take a 6 MB text body; EWS takes the MIME whole.
            c.folders[0].1.push(big(4, 6 * MIB, false));
        }
        env.seed(&user, &c).await?;
        tokio::task::block_in_place(|| env.publish_pass());
        env.spawn_worker(
            &["--concurrency", "2"],
            &[("MAILHAUL_SPOOL_ABOVE", "16KiB")],
        );
        env.wait_pass_done(Duration::from_secs(300)).await?;
        // Read back as the user's client would: EWS for the EWS mailbox, Graph for Graph.
        let reader = match kind {
            "ews" => ews_reader(&emu, &email(&user)),
            _ => graph_reader(&emu, &email(&user)),
        };
        assert_exchange_same(&expected(&c, &exchange_path, compare), &reader, compare).await?;
    }
    Ok(())
}
