//! End to end: the per-message router of Graph targets, what `plan` and `report` say
//! about it, and importMime state on a copy claimed after a 503 (issue 11 §2). Real
//! Dovecot source, RabbitMQ, Redis, worker processes, the Exchange emulator.
//!
//! - `upload = "json"` with `mime_route = "import-mime"`: an S/MIME signed message and a
//!   meeting request go by importMime (their MIME kept as sent), plain mail by JSON;
//!   `plan` counts them per path before anything is written, `report` per folder after.
//! - The same without `mime_route`: both go by JSON and `report` names, per message,
//!   what each lost.
//! - `upload = "import-mime"` while imports are committed but answered 503: every copy
//!   found again gets its read state, flag and categories (the PATCH the failed attempt
//!   never sent), and drafts go by JSON so they stay drafts.

use mailhaul_tests::corpus::{self, Corpus, Message};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig, Fault, FlagStatus};
use mailhaul_tests::exchange_check::{
    Compare, assert_exchange_same, exchange_path, expected, graph_reader,
};
use mailhaul_tests::harness::{Env, email, show};
use serde_json::Value;
use std::time::Duration;

fn message(n: u32, content_type: &str, body: &str, flags: &[&str]) -> Message {
    let text = format!(
        "From: Sender {n} <s{n}@example.org>\r\nTo: user@example.test\r\nSubject: Shape {n}\r\n\
         Date: Tue, 03 Mar 2026 10:00:0{n} +0000\r\nMessage-ID: <shape-{n}@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}"
    );
    Message {
        body: text.into_bytes(),
        flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        internal_date: chrono::DateTime::parse_from_rfc3339("2026-03-03T10:00:00+00:00")
            .expect("valid date"),
    }
}

/// A plain message, an S/MIME clear-signed one and a meeting request.
fn shapes() -> Corpus {
    let signed = "--s\r\nContent-Type: text/plain\r\n\r\nSigned words\r\n--s\r\n\
        Content-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n\
        MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwEAAA==\r\n--s--\r\n";
    let meeting = "--m\r\nContent-Type: text/plain\r\n\r\nPlease join\r\n--m\r\n\
        Content-Type: text/calendar; charset=UTF-8; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n\
        BEGIN:VEVENT\r\nUID:1@example.org\r\nDTSTART:20260310T100000Z\r\nSUMMARY:Review\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--m--\r\n";
    Corpus {
        folders: vec![(
            "INBOX".to_owned(),
            vec![
                message(1, "text/plain", "Plain words\r\n", &["\\Seen"]),
                message(
                    2,
                    "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"s\"",
                    signed,
                    &["\\Seen"],
                ),
                message(3, "multipart/alternative; boundary=\"m\"", meeting, &[]),
            ],
        )],
    }
}

fn report_json(env: &Env) -> Value {
    let out = env.mailhaul(&["report", env.migration.as_str(), "--format", "json"]);
    assert!(out.status.success(), "{}", show(&out));
    serde_json::from_slice(&out.stdout).expect("report is JSON")
}

/// The INBOX line of the only mailbox of a report.
fn inbox(report: &Value) -> Value {
    report["mailboxes"][0]["folders"]
        .as_array()
        .and_then(|f| f.iter().find(|l| l["folder"] == "INBOX"))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mime_only_shapes_go_by_import_mime_when_allowed() -> anyhow::Result<()> {
    let env = Env::new("route-mime", &["gus"], "")?;
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    env.use_exchange("graph", &emu, "mime_route = \"import-mime\"")?;
    let c = shapes();
    env.seed("gus", &c).await?;

    let m = env.manifest.display().to_string();
    let plan = tokio::task::block_in_place(|| env.mailhaul(&["plan", &m]));
    let text = String::from_utf8_lossy(&plan.stdout);
    // Per mailbox: how many go which way, what each path keeps, what they will lose.
    assert!(
        text.contains("1 message(s) will go by graph-json: keeps received date")
            && text.contains("2 message(s) will go by graph-import-mime: keeps the MIME as given")
            && text.contains(
                "2 message(s) will lose the received date (importMime stamps the import time) \
                 (graph-import-mime)"
            ),
        "{}",
        show(&plan)
    );
    env.spawn_worker(&["--concurrency", "2"], &[]);
    tokio::task::block_in_place(|| env.migrate_ok());

    let view = emu.mailbox(&email("gus"));
    let by_id = |id: &str| {
        view.items
            .iter()
            .find(|i| i.internet_message_id.as_deref() == Some(id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} not migrated"))
    };
    for (n, mime_kept) in [(1, false), (2, true), (3, true)] {
        let item = by_id(&format!("<shape-{n}@example.org>"));
        let sent = &c.folders[0].1[n - 1].body;
        assert_eq!(
            item.mime.as_deref() == Some(sent.as_slice()),
            mime_kept,
            "shape {n}"
        );
    }
    let line = inbox(&tokio::task::block_in_place(|| report_json(&env)));
    assert_eq!(line["paths"]["graph-json"], 1, "{line}");
    assert_eq!(line["paths"]["graph-import-mime"], 2, "{line}");
    // importMime keeps the MIME but not the received date: the report names each message.
    let lost: Vec<(u64, &str)> = line["lost"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            (
                x["uid"].as_u64().unwrap_or(0),
                x["lost"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        lost,
        [
            (2, "the received date (importMime stamps the import time)"),
            (3, "the received date (importMime stamps the import time)")
        ],
        "{line}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mime_route_the_report_says_what_was_lost() -> anyhow::Result<()> {
    let env = Env::new("route-json", &["hal"], "")?;
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    env.use_exchange("graph", &emu, "")?;
    env.seed("hal", &shapes()).await?;
    env.spawn_worker(&["--concurrency", "2"], &[]);
    tokio::task::block_in_place(|| env.migrate_ok());
    let report = tokio::task::block_in_place(|| report_json(&env));
    let line = inbox(&report);
    assert_eq!(line["paths"]["graph-json"], 3, "{line}");
    let lost: Vec<(u64, String)> = line["lost"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| {
                    (
                        x["uid"].as_u64().unwrap_or(0),
                        x["lost"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(lost.len(), 2, "{line}");
    assert!(
        lost[0].0 == 2 && lost[0].1.contains("S/MIME signature"),
        "{lost:?}"
    );
    assert!(
        lost[1].0 == 3 && lost[1].1.contains("meeting request"),
        "{lost:?}"
    );
    let table = tokio::task::block_in_place(|| env.mailhaul(&["report", env.migration.as_str()]));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("3 by graph-json: keeps received date")
            && text.contains(
                "migrated with less: \"INBOX\" UID 3 (graph-json): lost the meeting request"
            ),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mime_copies_claimed_after_a_503_get_their_state() -> anyhow::Result<()> {
    let env = Env::new("route-claim", &["ida"], "")?;
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    env.use_exchange("graph", &emu, "upload = \"import-mime\"")?;
    let c = corpus::standard(37, 16);
    env.seed("ida", &c).await?;
    tokio::task::block_in_place(|| env.publish_pass());
    // The imports are committed but answered 503: the worker finds each copy by its
    // Message-ID, and before recording it must send the state the import lacked.
    emu.inject(Fault::Fail503AfterCommit { count: 5 });
    env.spawn_worker(&["--concurrency", "1"], &[]);
    env.wait_pass_done(Duration::from_secs(240)).await?;
    let view = emu.mailbox(&email("ida"));
    let cmp = Compare {
        received: false,
        mime: true,
        drafts_by_json: true,
    };
    let reader = graph_reader(&emu, &email("ida"));
    assert_exchange_same(&expected(&c, &exchange_path, cmp), &reader, cmp).await?;
    // The check above compares read/flag/categories; make sure it had something to see.
    assert!(
        view.items.iter().any(|i| i.is_read)
            && view.items.iter().any(|i| i.flag == FlagStatus::Flagged)
    );
    Ok(())
}
