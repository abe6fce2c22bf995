//! Session tests against scripted POP3 servers on loopback: the paths Dovecot does not
//! take (no CAPA, USER/PASS, no UIDL, long SASL responses, refusals with RFC 2449/3206
//! codes, STLS refused, silent or vanishing servers), and what the client sends.

use super::*;
use crate::error::ConnectorError;
use mailhaul_proto::ErrorClass;
use mailhaul_proto::manifest::{Manifest, ServerConfig, TlsMode};
use secrecy::SecretString;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One step of a scripted server: the line the client must send, and the reply.
type Step = (&'static str, &'static str);

/// A server that greets with `greeting`, then for each step reads one line, checks it
/// and answers; then reads on until the client closes. A reply `"<silent>"` is not
/// sent; a reply ending in `"<close>"` is sent up to there, then the connection closes.
/// Returns every line the client sent.
async fn scripted(
    greeting: &'static str,
    steps: Vec<Step>,
) -> (ServerConfig, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut sent = Vec::new();
        w.write_all(greeting.as_bytes()).await.expect("greet");
        for (want, reply) in steps {
            let Ok(Some(line)) = lines.next_line().await else {
                return sent;
            };
            assert_eq!(line, want, "client sent {line:?}, script wanted {want:?}");
            sent.push(line);
            if let Some(last_words) = reply.strip_suffix("<close>") {
                w.write_all(last_words.as_bytes()).await.expect("reply");
                return sent;
            }
            if reply != "<silent>" {
                w.write_all(reply.as_bytes()).await.expect("reply");
            }
        }
        while let Ok(Some(line)) = lines.next_line().await {
            sent.push(line);
        }
        sent
    });
    (server(port, TlsMode::None), task)
}

fn server(port: u16, tls: TlsMode) -> ServerConfig {
    // Through the manifest parser, so the config has every default.
    let toml = format!(
        "tenant = \"t\"\n[source]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"{tls}\"\n[target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\n\
         [[mailbox]]\nemail = \"a@example.com\"\npassword = \"env:X\"\n\
         target_password = \"env:X\"\n"
    );
    match Manifest::parse(&toml, Path::new("/t/manifest.toml")) {
        Ok((m, _)) => m.source,
        Err(p) => panic!("test manifest: {p:?}"),
    }
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn quick() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_millis(300),
    }
}

const OK: &str = "+OK\r\n";
const NO_CAPA: &str = "-ERR unknown command\r\n";

/// A server without CAPA that lets "alice" in with password "x", then runs `steps`.
fn logged_in_then(steps: Vec<Step>) -> Vec<Step> {
    let mut script = vec![
        ("CAPA", NO_CAPA),
        ("USER alice", OK),
        ("PASS x", OK),
        ("CAPA", NO_CAPA),
    ];
    script.extend(steps);
    script
}

#[tokio::test]
async fn rfc_1939_server_user_pass_no_uidl_and_no_dele() {
    let (cfg, srv) = scripted(
        "+OK POP3 ready\r\n",
        vec![
            ("CAPA", NO_CAPA),
            ("USER alice", OK),
            ("PASS s3cret pass", OK),
            ("CAPA", NO_CAPA),
            ("UIDL", "-ERR unknown command\r\n"),
            ("STAT", "+OK 2 45\r\n"),
            ("LIST", "+OK 2 messages\r\n1 20\r\n2 25\r\n.\r\n"),
            (
                "RETR 2",
                "+OK 25 octets\r\nA: b\r\n\r\n..\r\n...x\r\nend\n.\r\n",
            ),
            ("RSET", OK),
            ("QUIT", "+OK bye\r\n"),
        ],
    )
    .await;
    let mut s = connect(&cfg, "alice", &pw("s3cret pass"))
        .await
        .expect("login");
    assert!(!s.capabilities().capa, "{:?}", s.capabilities());
    assert_eq!(s.uidl().await.expect("UIDL"), None);
    assert_eq!(s.stat().await.expect("STAT"), (2, 45));
    assert_eq!(s.list().await.expect("LIST"), vec![(1, 20), (2, 25)]);
    let body = s.retr(2, 1000).await.expect("RETR");
    assert_eq!(
        body.in_memory(),
        Some(&b"A: b\r\n\r\n.\r\n..x\r\nend\n"[..])
    );
    s.quit().await.expect("QUIT");
    let sent = srv.await.expect("server");
    assert!(!sent.iter().any(|l| l.starts_with("DELE")), "{sent:?}");
    assert_eq!(sent.last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn sasl_plain_with_initial_response_and_no_uidl_in_capa() {
    let (cfg, srv) = scripted(
        "+OK ready\r\n",
        vec![
            ("CAPA", "+OK\r\nSASL PLAIN\r\nTOP\r\n.\r\n"),
            // base64("\0alice\0secret")
            ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "+OK logged in\r\n"),
            ("CAPA", "+OK\r\nTOP\r\nPIPELINING\r\n.\r\n"),
            ("RSET", OK),
            ("QUIT", OK),
        ],
    )
    .await;
    let mut s = connect(&cfg, "alice", &pw("secret")).await.expect("login");
    let caps = s.capabilities().clone();
    assert!(caps.top && caps.pipelining && !caps.uidl && caps.has_sasl("PLAIN"));
    assert_eq!(
        s.uidl().await.expect("UIDL"),
        None,
        "not sent: CAPA has no UIDL"
    );
    s.quit().await.expect("QUIT");
    let sent = srv.await.expect("server");
    assert!(!sent.contains(&"UIDL".to_owned()), "{sent:?}");
}

#[tokio::test]
async fn a_long_plain_response_waits_for_the_continuation() {
    // 300 characters of password make "AUTH PLAIN <b64>" longer than 255 octets.
    let long = "p".repeat(300);
    let b64_len = (2 + 5 + long.len()).div_ceil(3) * 4;
    let (cfg, srv) = scripted(
        "+OK ready\r\n",
        vec![
            ("CAPA", "+OK\r\nSASL PLAIN\r\nUIDL\r\n.\r\n"),
            ("AUTH PLAIN", "+ \r\n"),
        ],
    )
    .await;
    // The script ends after the continuation: the server records the response line
    // and answers nothing, so the login times out.
    let err = connect_with(&cfg, "alice", &pw(&long), &quick())
        .await
        .expect_err("the script does not answer the response");
    assert!(matches!(err, ConnectorError::Timeout { .. }), "{err:?}");
    let sent = srv.await.expect("server");
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[2].len(), b64_len, "the response on its own line");
}

#[tokio::test]
async fn login_refusals_are_classified_by_response_code() {
    for (reply, auth, class) in [
        (
            "-ERR [AUTH] Authentication failed.\r\n",
            true,
            ErrorClass::Permanent,
        ),
        (
            "-ERR Authentication failed.\r\n",
            true,
            ErrorClass::Permanent,
        ),
        (
            "-ERR [IN-USE] Mailbox locked\r\n",
            false,
            ErrorClass::Transient,
        ),
        (
            "-ERR [SYS/TEMP] Try later\r\n",
            false,
            ErrorClass::Transient,
        ),
    ] {
        let (cfg, _srv) = scripted(
            "+OK ready\r\n",
            vec![
                ("CAPA", NO_CAPA),
                ("USER alice", OK),
                ("PASS hunter2", reply),
            ],
        )
        .await;
        let err = connect(&cfg, "alice", &pw("hunter2"))
            .await
            .expect_err("refused");
        assert_eq!(
            matches!(err, ConnectorError::Auth { .. }),
            auth,
            "{reply}: {err:?}"
        );
        assert_eq!(err.class(), class, "{reply}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "password leaked: {shown}");
    }
}

#[tokio::test]
async fn greeting_refused_and_stls_refused() {
    let (cfg, _srv) = scripted("-ERR [SYS/TEMP] too many connections\r\n", vec![]).await;
    let err = connect(&cfg, "alice", &pw("x")).await.expect_err("refused");
    assert!(matches!(err, ConnectorError::Bye { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);

    let (plain, srv) = scripted(
        "+OK ready\r\n",
        vec![
            ("CAPA", "+OK\r\nUSER\r\n.\r\n"),
            ("STLS", "-ERR not here\r\n"),
        ],
    )
    .await;
    let cfg = ServerConfig {
        tls: TlsMode::StartTls,
        ..plain
    };
    let err = connect(&cfg, "alice", &pw("x")).await.expect_err("no STLS");
    assert!(matches!(err, ConnectorError::Tls { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let sent = srv.await.expect("server");
    assert_eq!(sent, ["CAPA", "STLS"], "nothing else before TLS");
}

#[tokio::test]
async fn a_silent_server_times_out_and_the_session_is_not_reused() {
    let (cfg, srv) = scripted("+OK ready\r\n", logged_in_then(vec![("STAT", "<silent>")])).await;
    let mut s = connect_with(&cfg, "alice", &pw("x"), &quick())
        .await
        .expect("login");
    let err = s.stat().await.expect_err("no answer");
    assert!(matches!(err, ConnectorError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    let err = s.list().await.expect_err("broken");
    assert!(
        matches!(&err, ConnectorError::Io(e) if e.kind() == std::io::ErrorKind::NotConnected),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    s.quit().await.expect("a broken session is just dropped");
    let sent = srv.await.expect("server");
    assert_eq!(
        sent.last().map(String::as_str),
        Some("STAT"),
        "nothing after: {sent:?}"
    );
}

#[tokio::test]
async fn a_server_gone_mid_retr_is_a_transient_io_error() {
    let (cfg, _srv) = scripted(
        "+OK ready\r\n",
        logged_in_then(vec![(
            "RETR 1",
            "+OK\r\nSubject: cut\r\n\r\nhalf a bo<close>",
        )]),
    )
    .await;
    let mut s = connect(&cfg, "alice", &pw("x")).await.expect("login");
    let err = s.retr(1, 1000).await.expect_err("cut off");
    assert!(matches!(err, ConnectorError::Io(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn without_uidl_identities_are_content_hashes_and_copies_stay_apart() {
    // Messages 1 and 3 are identical; a server with no UIDL (RFC 1939 makes it optional).
    let same = "+OK\r\nSubject: same\r\n\r\nx\r\n.\r\n";
    let (cfg, srv) = scripted(
        "+OK POP3 ready\r\n",
        logged_in_then(vec![
            ("LIST", "+OK\r\n1 20\r\n2 21\r\n3 20\r\n.\r\n"),
            ("UIDL", "-ERR unknown command\r\n"),
            ("RETR 1", same),
            ("RETR 2", "+OK\r\nSubject: other\r\n\r\ny\r\n.\r\n"),
            ("RETR 3", same),
            ("RSET", OK),
            ("QUIT", "+OK bye\r\n"),
        ]),
    )
    .await;
    let mut s = connect_with(&cfg, "alice", &pw("x"), &quick())
        .await
        .expect("login");
    let l = s.listing(1 << 20).await.expect("listing");
    assert!(l.by_content, "reported as identified by content");
    let ids: Vec<&str> = l.entries.iter().map(|e| e.id.as_str()).collect();
    assert!(ids.iter().all(|i| i.starts_with("sha256:")), "{ids:?}");
    assert_eq!(
        ids[0].split('#').next(),
        ids[2].split('#').next(),
        "same content, same hash"
    );
    assert_ne!(ids[0], ids[2], "identical copies keep distinct identities");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        l.entries.iter().map(|e| e.msgno).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    s.quit().await.expect("QUIT");
    srv.await.expect("server");
}
