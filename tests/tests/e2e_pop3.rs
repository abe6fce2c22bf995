//! End to end, on both backends: a POP3 mailbox migrates into the target's INBOX:
//! byte-exact, received dates from the newest `Received:` header (else
//! `Date:`), delta passes take only new mail, a worker that dies between APPEND and
//! record leaves no duplicate, and nothing on the source changes.

use mailhaul_proto::inspect::received_date;
use mailhaul_tests::both_backends;
use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::harness::{Backend, Env, PASSWORD, show};
use mailhaul_tests::snapshot::{MailboxSnapshot, MessageSnapshot};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// (hash, flags but \Seen) of the INBOX messages whose hash is in `keep`, sorted.
///
/// `\Seen` is left out: Dovecot sets it on every message a POP3 session RETRs when the
/// session ends without QUIT (a worker killed mid-session); the clean path sends RSET
/// before QUIT and changes nothing.
fn state(s: &MailboxSnapshot, keep: &HashSet<String>) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = s.folders["INBOX"]
        .iter()
        .filter(|m| keep.contains(&m.sha256))
        .map(|m| {
            (
                m.sha256.clone(),
                m.flags.iter().filter(|f| *f != "\\Seen").cloned().collect(),
            )
        })
        .collect();
    v.sort();
    v
}

both_backends!(pop3_mailbox_migrates_exactly_once_and_stays_untouched, pop3);

async fn pop3(backend: Backend) -> anyhow::Result<()> {
    let env = Env::new("pop3", &["alice"], "slice_messages = 25")?.on(backend);
    env.use_pop3()?;
    let pool = corpus::standard(81, 4);
    let inbox = pool.folder("INBOX").expect("INBOX").to_vec();
    env.seed(
        "alice",
        &Corpus {
            folders: vec![("INBOX".into(), inbox.clone())],
        },
    )
    .await?;
    let source_before = env.source_snapshot("alice").await?;

    // A worker (or the embedded run) that dies right after its second APPEND, before
    // recording it; then a healthy one finishes.
    let m = env.manifest.display().to_string();
    let crash = [("MAILHAUL_FAILPOINT", "crash-after-append:2")];
    let slow = ["--concurrency", "1", "--batch-messages", "5"];
    let w = match backend {
        Backend::Distributed => {
            let w = env.spawn_worker(&slow, &crash);
            let out = env.mailhaul(&["migrate", "--detach", &m]);
            assert!(out.status.success(), "{}", show(&out));
            w
        }
        Backend::Embedded => env.spawn_migrate(&slow, &crash),
    };
    let status = env
        .wait_worker(w, Duration::from_secs(120))
        .expect("the failpoint fires");
    assert!(!status.success());
    let p = match backend {
        Backend::Distributed => {
            env.spawn_worker(&[], &[]);
            env.wait_pass_done(Duration::from_secs(240)).await?
        }
        Backend::Embedded => {
            env.migrate_ok();
            env.wait_pass_done(Duration::from_secs(10)).await?
        }
    };
    assert!(p.tasks_failed.is_empty(), "{:?}", p.tasks_failed);

    let target = env.target_snapshot("alice").await?;
    assert_eq!(
        target.contents()["INBOX"],
        source_before.contents()["INBOX"],
        "byte-exact, each message once"
    );
    assert_eq!(
        target.folders.len(),
        1,
        "POP3 has one folder: {:?}",
        target.folders.keys()
    );
    // Received dates: the newest Received: header, else Date:.
    let by_hash: HashMap<String, &corpus::Message> = inbox
        .iter()
        .map(|m| {
            (
                MessageSnapshot::of(&m.body, Vec::<String>::new(), m.internal_date).sha256,
                m,
            )
        })
        .collect();
    for t in &target.folders["INBOX"] {
        if let Some(want) = received_date(&by_hash[&t.sha256].body) {
            assert_eq!(t.internal_date, want, "received date of {:?}", t.subject);
        }
        assert!(t.flags.is_empty(), "POP3 carries no flags: {:?}", t.flags);
    }

    // New mail: the delta pass takes exactly that.
    let fresh = corpus::standard(82, 16).folder("Sent").expect("Sent")[..3].to_vec();
    corpus::append(
        env.source.imap_port(),
        "alice",
        PASSWORD,
        &Corpus {
            folders: vec![("INBOX".into(), fresh)],
        },
    )
    .await?;
    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));
    let source_after = env.source_snapshot("alice").await?;
    let target = env.target_snapshot("alice").await?;
    assert_eq!(target.contents()["INBOX"], source_after.contents()["INBOX"]);
    assert_eq!(target.message_count(), inbox.len() + 3);

    // Nothing on the source was deleted or changed (see `state` for \Seen).
    let original: HashSet<String> = source_before.folders["INBOX"]
        .iter()
        .map(|m| m.sha256.clone())
        .collect();
    assert_eq!(
        state(&source_after, &original),
        state(&source_before, &original),
        "the source is read, never changed"
    );

    // `verify` re-reads both sides (TOP for Message-IDs, a download for the messages
    // without one) and agrees; then it finds a message lost on the target.
    let out = env.mailhaul(&["verify", &m]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!("{} expected messages, 0 missing", inbox.len() + 3);
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        inbox
            .iter()
            .any(|m| mailhaul_proto::inspect::message_id(&m.body).is_none()),
        "the corpus has messages without Message-ID (verified by content)"
    );
    let lost = inbox
        .iter()
        .filter_map(|m| mailhaul_proto::inspect::message_id(&m.body))
        .find(|id| {
            inbox
                .iter()
                .filter(|m| mailhaul_proto::inspect::message_id(&m.body).as_deref() == Some(id))
                .count()
                == 1
        })
        .expect("a message with an id of its own");
    env.target.doveadm(&[
        "expunge",
        "-u",
        "alice",
        "mailbox",
        "INBOX",
        "header",
        "Message-ID",
        &lost,
    ])?;
    let out = env.mailhaul(&["verify", &m]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("missing in \"INBOX\": {lost}")),
        "{stdout}"
    );
    Ok(())
}
