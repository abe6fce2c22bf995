//! End to end: `mailhaul plan` on a tenant with mixed problems reports every bad login
//! (source and target), the folder mapping, counts and sizes, the messages that need
//! attention (malformed, over the target's APPENDLIMIT) with what will be done, an ETA, as a table and as JSON — and writes
//! nothing anywhere. `migrate` then ends with the same folder mapping notes.

use mailhaul_tests::corpus::{self, Corpus, Message};
use mailhaul_tests::harness::{Env, PASSWORD, email, show};

fn message(body: Vec<u8>) -> Message {
    Message {
        body,
        flags: vec![],
        internal_date: chrono::DateTime::parse_from_rfc3339("2020-05-01T10:00:00+02:00")
            .expect("valid"),
    }
}

/// The target's APPENDLIMIT: the long message is over it.
const LIMIT: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reports_every_problem_and_writes_nothing() -> anyhow::Result<()> {
    // The target advertises the largest message it takes (RFC 7889).
    let env = Env::with_target_config(
        "plan",
        &["alice"],
        "",
        &format!("imap_capability = +APPENDLIMIT={LIMIT}"),
    )?;
    // bob cannot log in to the source (no such user there), carol not to the target.
    env.target.add_user("bob", PASSWORD)?;
    env.source.add_user("carol", PASSWORD)?;
    let mut text = std::fs::read_to_string(&env.manifest)?;
    for u in ["bob", "carol"] {
        text.push_str(&format!(
            "\n[[mailbox]]\nemail = \"{}\"\nusername = \"{u}\"\npassword = \"env:MH_SOURCE_PW\"\ntarget_username = \"{u}\"\n",
            email(u)
        ));
    }
    std::fs::write(&env.manifest, text)?;

    let long = format!(
        "Message-ID: <long@x>\r\nSubject: long\r\n\r\n{}\r\n",
        "y".repeat(12_000)
    );
    let mut c = Corpus {
        folders: vec![
            (
                "INBOX".into(),
                vec![
                    message(long.into_bytes()),
                    message(b"Subject: no id\r\n\r\nbody\r\n".to_vec()),
                ],
            ),
            (
                "Gesendete Elemente".into(),
                corpus::standard(91, 16).folder("Sent").expect("Sent")[..2].to_vec(),
            ),
        ],
    };
    let total: usize = c.folders.iter().map(|(_, m)| m.len()).sum();
    let over = c
        .folders
        .iter()
        .flat_map(|(_, m)| m)
        .filter(|m| m.body.len() > LIMIT)
        .count();
    env.seed("alice", &c).await?;
    c.folders.clear();
    env.target
        .doveadm(&["mailbox", "create", "-u", "alice", "Sent"])?;
    let target_before = env.target_snapshot("alice").await?;

    let json = env.dir().join("plan.json");
    let m = env.manifest.display().to_string();
    let j = json.display().to_string();
    let out = env.mailhaul(&["plan", &m, "--json", &j]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad logins make plan exit 1:\n{}",
        show(&out)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("3 mailboxes (2 with problems)"), "{table}");
    assert!(
        table.contains("folder \"Gesendete Elemente\" -> \"Sent\""),
        "mapping shown:\n{table}"
    );
    assert!(table.contains("line over 10,000 characters"), "{table}");
    assert!(table.contains("no Message-ID"), "{table}");
    let sized = table
        .lines()
        .find(|l| l.contains("over the target's size limit"))
        .unwrap_or_else(|| panic!("no size finding in:\n{table}"));
    assert!(
        sized.starts_with(&format!(
            "  {over} message(s) over the target's size limit: will be reported as failed: \
             over the target's limit of {LIMIT} bytes (its APPENDLIMIT); raise the target \
             server's maximum message size (e.g. "
        )) && sized.contains("\"INBOX\" 1"),
        "{sized}"
    );
    assert!(table.contains("ETA"), "{table}");
    assert!(
        !table.contains(PASSWORD) && !String::from_utf8_lossy(&out.stderr).contains(PASSWORD),
        "no secret printed"
    );

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let mbx = |e: &str| {
        report["mailboxes"]
            .as_array()
            .expect("array")
            .iter()
            .find(|m| m["mailbox"] == e)
            .cloned()
            .expect("mailbox in report")
    };
    let alice = mbx(&email("alice"));
    assert!(
        alice["source_login"].is_null() && alice["target_login"].is_null(),
        "{alice}"
    );
    assert_eq!(alice["messages"], total as u64);
    assert_eq!(alice["findings"]["long_line"], 1);
    assert!(over >= 1);
    assert_eq!(
        alice["findings"]["over_target_limit"], over as u64,
        "{alice}"
    );
    assert_eq!(alice["target_limit"]["bytes"], LIMIT as u64, "{alice}");
    assert!(
        alice["findings"]["no_message_id"].as_u64().unwrap_or(0) >= 1,
        "{alice}"
    );
    let bob = mbx(&email("bob"));
    assert!(
        bob["source_login"]
            .as_str()
            .is_some_and(|s| s.contains("bob")),
        "{bob}"
    );
    let carol = mbx(&email("carol"));
    assert!(
        carol["target_login"]
            .as_str()
            .is_some_and(|s| s.contains("carol")),
        "{carol}"
    );
    assert!(
        carol["source_login"].is_null(),
        "carol's source login works: {carol}"
    );

    // Nothing was written: no ledger keys, no target folders.
    let client = redis::Client::open(mailhaul_tests::kit::shared().redis_url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", env.namespace))
        .query_async(&mut con)
        .await?;
    assert!(keys.is_empty(), "plan wrote to Redis: {keys:?}");
    assert_eq!(
        env.target_snapshot("alice").await?,
        target_before,
        "plan changed the target"
    );

    // `migrate` ends with the same mapping notes, once per mailbox.
    let line = table
        .lines()
        .find(|l| l.contains("folder \"Gesendete Elemente\" -> \"Sent\""))
        .expect("shown above");
    env.spawn_worker(&[], &[]);
    let out = env.migrate();
    assert_eq!(out.status.code(), Some(1), "bad logins:\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}:\n{line}\n", email("alice"))),
        "migrate shows plan's mapping:\n{line}\n{}",
        show(&out)
    );
    assert_eq!(stdout.matches(line).count(), 1, "{stdout}");

    // What plan said will happen to the messages over the APPENDLIMIT happens: they are
    // reported and not sent (this Dovecot only advertises the limit; it would take them).
    let refused: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(&format!("is larger than the {LIMIT}-byte limit")))
        .collect();
    assert_eq!(refused.len(), over, "{stdout}");
    let target = env.target_snapshot("alice").await?;
    let source = env.source_snapshot("alice").await?;
    assert_eq!(
        target.message_count(),
        source.message_count() - over,
        "everything but the messages over the limit"
    );
    assert!(
        target.folders.values().flatten().all(|m| m.size <= LIMIT),
        "nothing over the APPENDLIMIT was appended"
    );
    Ok(())
}
