//! The kit's Cyrus and Courier: they start on free ports, take the users they are
//! given (and refuse wrong passwords), and behave as their packages do: the `INBOX.`
//! personal namespace with `.` as separator, top-level folders refused.

use mailhaul_tests::kit::{ImapServer, ServerKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Sends `lines` one command at a time over plain TCP and returns everything read.
async fn converse(port: u16, lines: &[&str]) -> anyhow::Result<String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let mut out = String::new();
    r.read_line(&mut out).await?;
    for (i, line) in lines.iter().enumerate() {
        let tag = format!("t{i}");
        w.write_all(format!("{tag} {line}\r\n").as_bytes()).await?;
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).await? == 0 {
                return Ok(out);
            }
            out.push_str(&l);
            if l.starts_with(&format!("{tag} ")) {
                break;
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_and_courier_start_and_log_in() -> anyhow::Result<()> {
    for kind in [ServerKind::Cyrus, ServerKind::Courier] {
        let server = ImapServer::start(kind)?;
        server.add_user("alice", "pw-alice")?;
        let bad = converse(server.imap_port(), &["LOGIN alice wrong"]).await?;
        assert!(bad.contains("t0 NO"), "{kind:?}: {bad}");
        let talk = converse(
            server.imap_port(),
            &[
                "LOGIN alice pw-alice",
                "NAMESPACE",
                "CREATE Top",
                "CREATE INBOX.Work",
                "LIST \"\" \"*\"",
                "LOGOUT",
            ],
        )
        .await?;
        assert!(talk.contains("t0 OK"), "{kind:?}: {talk}");
        assert!(
            talk.contains("* NAMESPACE ((\"INBOX.\" \".\"))"),
            "{kind:?}: {talk}"
        );
        assert!(
            talk.contains("t2 NO"),
            "{kind:?} refuses a top-level folder: {talk}"
        );
        assert!(talk.contains("t3 OK"), "{kind:?}: {talk}");
        assert!(talk.contains("INBOX.Work"), "{kind:?}: {talk}");
    }
    Ok(())
}

fn config(port: u16) -> mailhaul_proto::manifest::ServerConfig {
    use mailhaul_proto::manifest::{Login, ServerConfig, ServerKind as Kind, TlsMode};
    ServerConfig {
        kind: Kind::Imap,
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        tls_verify: true,
        ca_file: None,
        max_connections_per_mailbox: std::num::NonZeroU32::MIN,
        password: None,
        login: Login::Password,
        http: None,
        imap: Default::default(),
    }
}

/// mailhaul's IMAP connector against Cyrus: a literal8 FETCH answer parses, and APPEND
/// sends a message with NUL as a literal8 (BINARY), which Cyrus stores as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_reads_and_writes_nul_on_cyrus() -> anyhow::Result<()> {
    use mailhaul_connectors::body::Body;
    use mailhaul_connectors::imap::{self, AppendItem};
    let server = ImapServer::start(ServerKind::Cyrus)?;
    server.add_user("alice", "pw-alice")?;
    let pw = secrecy::SecretString::from("pw-alice".to_owned());
    let mut s = imap::connect(&config(server.imap_port()), "alice", &pw).await?;
    assert!(s.capabilities().binary && s.is_cyrus(), "{}", s.greeting());
    let naming = s.naming().await?;
    assert_eq!(
        (naming.prefix.as_str(), naming.delimiter),
        ("INBOX.", Some('.'))
    );
    let body = Body::from(b"Subject: nul\r\n\r\nbefore\0after\r\n".to_vec());
    let flags = vec!["\\Seen".to_owned()];
    let date = chrono::DateTime::parse_from_rfc3339("2024-01-01T10:00:00+01:00")?;
    let item = AppendItem {
        flags: &flags,
        internal_date: date,
        body: &body,
    };
    let uids = s.append_batch("INBOX", &[item, item]).await?;
    assert_eq!(uids.len(), 2);
    s.examine("INBOX").await?;
    let got = s.fetch_bodies(&uids).await?;
    assert_eq!(got.len(), 2);
    for (_, b) in got {
        assert_eq!(b, b"Subject: nul\r\n\r\nbefore\0after\r\n");
    }
    let metas = s
        .uid_meta(mailhaul_proto::UidRange {
            first: mailhaul_proto::Uid(1),
            last: mailhaul_proto::Uid(10),
        })
        .await?;
    assert_eq!(metas.len(), 2);
    let wanted: Vec<_> = metas.iter().map(|m| (m.uid, m.size)).collect();
    assert_eq!(s.fetch_messages(&wanted).await?.len(), 2);
    s.logout().await?;
    Ok(())
}

/// Cyrus refuses bare LF; with `bare_lf = "crlf"` (the default) the message is made
/// CRLF before it is sent and lands; with `"refuse"` the refusal is reported in the
/// server's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_lf_onto_cyrus_by_policy() -> anyhow::Result<()> {
    use mailhaul_connectors::body::Body;
    use mailhaul_connectors::gate::Open;
    use mailhaul_connectors::imap::RawMessage;
    use mailhaul_connectors::target::TargetSession;
    use mailhaul_proto::manifest::BareLf;
    let server = ImapServer::start(ServerKind::Cyrus)?;
    server.add_user("alice", "pw-alice")?;
    let pw = secrecy::SecretString::from("pw-alice".to_owned());
    let raw = b"Subject: lf\n\nline one\nline two\n".to_vec();
    let message = RawMessage {
        uid: mailhaul_proto::Uid(7),
        flags: vec![],
        internal_date: chrono::DateTime::parse_from_rfc3339("2024-01-01T10:00:00+01:00")?,
        body: Body::from(raw.clone()),
    };
    for policy in [BareLf::Crlf, BareLf::Refuse] {
        let mut cfg = config(server.imap_port());
        cfg.imap.bare_lf = policy;
        let mut t = TargetSession::connect(&cfg, "alice", &pw, std::sync::Arc::new(Open)).await?;
        let (m, changed) = t.prepare(message.clone()).await?;
        let folder = t.open_folder("INBOX", None).await?;
        let up = t.upload(&folder, std::slice::from_ref(&m)).await;
        assert!(up.stopped.is_none(), "{:?}", up.stopped);
        match policy {
            BareLf::Crlf => {
                assert!(changed.is_some());
                assert_eq!(
                    m.body.in_memory(),
                    Some(&b"Subject: lf\r\n\r\nline one\r\nline two\r\n"[..])
                );
                assert!(up.results[0].is_ok(), "{:?}", up.results);
                // A retry finds the copy it sent (same bytes, same hash).
                let copies = t.find_copies(&folder, &m.body, false).await?;
                assert_eq!(copies.len(), 1);
            }
            BareLf::Refuse => {
                assert!(changed.is_none());
                let err = up.results[0].as_ref().expect_err("refused");
                assert!(err.to_string().contains("bare newlines"), "{err}");
            }
        }
        t.logout().await;
    }
    Ok(())
}
