//! Live tests of the POP3 connector (`mailhaul_connectors::pop3`) against a real Dovecot
//! that the test kit starts for this test process (POP3 with STLS, and POP3S, with the
//! kit's test CA).
//!
//! Each test has a mailbox user of its own, seeded over IMAP with the standard corpus's
//! INBOX (it holds lines starting with ".", a lone "." line and a 2 MB attachment), so
//! POP3 bodies can be checked byte for byte against IMAP `BODY[]` and the corpus.

use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::imap::{self, ImapSession, RawMessage};
use mailhaul_connectors::pop3::{self, Pop3Session};
use mailhaul_proto::ErrorClass;
use mailhaul_proto::ids::{Uid, UidRange};
use mailhaul_proto::manifest::{Manifest, ServerConfig, TlsMode};
use mailhaul_tests::corpus::{self, Corpus, Message};
use mailhaul_tests::kit::Dovecot;
use secrecy::SecretString;
use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

/// The Dovecot all tests of this binary share (the kit's reaper stops it at exit).
fn dovecot() -> &'static Dovecot {
    static D: OnceLock<Dovecot> = OnceLock::new();
    D.get_or_init(|| {
        let d = Dovecot::start().expect("the test kit starts Dovecot");
        // All users up front: Dovecot notices a changed passwd-file by its mtime, so a
        // user added in the same second as an earlier read can stay unknown for a while.
        for user in USERS {
            d.add_user(user, &password_of(user)).expect("add a user");
        }
        d
    })
}

/// The mailbox users, one per test.
const USERS: [&str; 4] = ["bytes", "limits", "tls", "wrongpw"];

fn password_of(user: &str) -> String {
    format!("pw-{user}")
}

/// A server entry as a manifest would give it (parsed, so it has every default).
fn server(port: u16, tls: TlsMode, ca: Option<&Path>) -> ServerConfig {
    let tls_name = tls.to_string();
    let ca_line = ca.map_or(String::new(), |p| {
        format!("ca_file = {:?}\n", p.display().to_string())
    });
    // `kind` is "imap" because the manifest has no "pop3" kind yet; pop3::connect does
    // not look at it.
    let toml = format!(
        "tenant = \"t\"\n\n[source]\nkind = \"imap\"\nhost = \"localhost\"\nport = {port}\n\
         tls = \"{tls_name}\"\n{ca_line}\n[target]\nkind = \"imap\"\nhost = \"localhost\"\n\n\
         [[mailbox]]\nemail = \"a@example.com\"\npassword = \"env:UNUSED\"\ntarget_password = \"env:UNUSED\"\n"
    );
    let (manifest, _) = Manifest::parse(&toml, Path::new("/test/manifest.toml"))
        .unwrap_or_else(|p| panic!("test manifest: {p:?}\n{toml}"));
    manifest.source
}

fn pop3_plain() -> ServerConfig {
    server(dovecot().pop3_port(), TlsMode::None, None)
}

/// A fresh user whose INBOX holds the standard corpus's INBOX (scale 1: the big
/// attachment is 2 MB). Returns the user, its password and the messages in order.
async fn seeded_user(name: &str) -> (String, SecretString, Vec<Message>) {
    let d = dovecot();
    let password = password_of(name);
    let inbox = corpus::standard(7, 1)
        .folder("INBOX")
        .expect("the standard corpus has an INBOX")
        .to_vec();
    let corpus = Corpus {
        folders: vec![("INBOX".to_owned(), inbox.clone())],
    };
    corpus::seed(d.imap_port(), name, &password, &corpus)
        .await
        .expect("seed INBOX over IMAP");
    (name.to_owned(), SecretString::from(password), inbox)
}

async fn pop3_session(user: &str, password: &SecretString) -> Pop3Session {
    pop3::connect(&pop3_plain(), user, password)
        .await
        .expect("POP3 login to the test Dovecot")
}

/// Every message of INBOX over IMAP (UID order, which is POP3's message order).
async fn imap_inbox(user: &str, password: &SecretString) -> Vec<RawMessage> {
    let server = server(dovecot().imap_port(), TlsMode::None, None);
    let mut s: ImapSession = imap::connect(&server, user, password)
        .await
        .expect("IMAP login");
    let st = s.examine("INBOX").await.expect("EXAMINE INBOX");
    let uids: Vec<(Uid, u32)> = s
        .uid_sizes(UidRange {
            first: Uid(1),
            last: Uid(st.uid_next.0.max(2) - 1),
        })
        .await
        .expect("UID sizes");
    assert_eq!(uids.len(), st.messages as usize);
    let messages = s.fetch_messages(&uids).await.expect("fetch INBOX");
    s.logout().await.expect("IMAP logout");
    messages
}

#[tokio::test]
async fn retr_is_byte_exact_and_the_mailbox_is_unchanged() {
    let (user, password, corpus) = seeded_user("bytes").await;
    // The corpus carries what this test is about; make sure it still does.
    assert!(
        corpus
            .iter()
            .any(|m| m.body.windows(3).any(|w| w == b"\n.."))
            || corpus
                .iter()
                .any(|m| m.body.windows(2).any(|w| w == b"\n.")),
        "the corpus has lines starting with '.'"
    );
    assert!(
        corpus
            .iter()
            .any(|m| m.body.windows(5).any(|w| w == b"\r\n.\r\n")),
        "the corpus has a lone '.' line"
    );
    assert!(
        corpus.iter().any(|m| m.body.len() > 2_000_000),
        "the corpus has a multi-MB message"
    );
    let before = imap_inbox(&user, &password).await;
    assert_eq!(before.len(), corpus.len());

    let mut s = pop3_session(&user, &password).await;
    let caps = s.capabilities().clone();
    assert!(
        caps.capa && caps.uidl && caps.top && caps.pipelining,
        "{caps:?}"
    );
    assert!(
        caps.has_sasl("PLAIN") && caps.stls,
        "login-time facts kept: {caps:?}"
    );

    let (count, total) = s.stat().await.expect("STAT");
    let list = s.list().await.expect("LIST");
    assert_eq!(count as usize, corpus.len());
    assert_eq!(list.len(), corpus.len());
    assert_eq!(
        list.iter().map(|&(_, size)| size).sum::<u64>(),
        total,
        "STAT = sum of LIST"
    );
    let uidl = s.uidl().await.expect("UIDL").expect("Dovecot has UIDL");
    assert_eq!(
        uidl.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        list.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "UIDL and LIST name the same messages"
    );
    let distinct: HashSet<&str> = uidl.iter().map(|(_, u)| u.as_str()).collect();
    assert_eq!(distinct.len(), uidl.len(), "unique ids are unique");

    let mut bytes = 0u64;
    for (i, &(n, size)) in list.iter().enumerate() {
        let body = s.retr(n, 64 * 1024 * 1024).await.expect("RETR");
        assert!(
            body == before[i].body,
            "message {n}: POP3 RETR ({} bytes) differs from IMAP BODY[] ({} bytes)",
            body.len(),
            before[i].body.len()
        );
        assert!(
            *body.whole().await.expect("reads") == corpus[i].body[..],
            "message {n} differs from the corpus"
        );
        assert_eq!(body.len(), size, "message {n}: LIST size");
        bytes += body.len();
    }
    assert_eq!(bytes, total);
    s.quit().await.expect("QUIT");

    // UIDL is stable across sessions, and over POP3S too.
    let d = dovecot();
    let pop3s = server(d.pop3s_port(), TlsMode::Implicit, Some(d.ca_pem()));
    let mut again = pop3::connect(&pop3s, &user, &password)
        .await
        .expect("POP3S login");
    assert_eq!(again.uidl().await.expect("UIDL"), Some(uidl));
    again.quit().await.expect("QUIT");

    // Nothing was deleted, nothing else changed either (flags included).
    let after = imap_inbox(&user, &password).await;
    assert_eq!(after.len(), before.len(), "message count over IMAP");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (a.uid, &a.flags),
            (b.uid, &b.flags),
            "uid and flags unchanged"
        );
        assert!(a.body == b.body, "uid {:?}: body unchanged", a.uid);
    }
}

#[tokio::test]
async fn retr_over_the_size_limit_fails_and_the_session_goes_on() {
    let (user, password, corpus) = seeded_user("limits").await;
    let (big, _) = corpus
        .iter()
        .enumerate()
        .max_by_key(|(_, m)| m.body.len())
        .expect("a message");
    let big_no = big as u32 + 1;
    let mut s = pop3_session(&user, &password).await;
    let err = s
        .retr(big_no, 1024 * 1024)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(
            err,
            ConnectorError::MessageTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    // Exactly at the limit is fine.
    let exact = corpus[0].body.len() as u64;
    assert_eq!(
        s.retr(1, exact)
            .await
            .expect("RETR at the limit")
            .in_memory(),
        Some(&corpus[0].body[..])
    );
    assert!(matches!(
        s.retr(1, exact - 1).await,
        Err(ConnectorError::MessageTooLarge { .. })
    ));
    // The session is still in step after a refused body.
    let err = s.retr(99_999, u64::MAX).await.expect_err("no such message");
    assert!(
        matches!(&err, ConnectorError::No { command, .. } if command == "RETR"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(s.stat().await.expect("STAT").0 as usize, corpus.len());
    s.quit().await.expect("QUIT");
}

#[tokio::test]
async fn pop3s_and_stls_with_the_kit_ca_and_an_unknown_ca_is_refused() {
    let d = dovecot();
    let password = SecretString::from(password_of("tls"));
    for (name, port, tls) in [
        ("POP3S", d.pop3s_port(), TlsMode::Implicit),
        ("STLS", d.pop3_port(), TlsMode::StartTls),
    ] {
        let good = server(port, tls, Some(d.ca_pem()));
        let mut s = pop3::connect(&good, "tls", &password)
            .await
            .unwrap_or_else(|e| panic!("{name} with the kit CA: {e:#?}"));
        assert_eq!(s.stat().await.expect("STAT"), (0, 0), "{name}");
        assert_eq!(s.uidl().await.expect("UIDL"), Some(vec![]), "{name}");
        s.quit().await.expect("QUIT");

        // Only webpki roots: the kit's CA is unknown.
        let unknown = server(port, tls, None);
        let err = pop3::connect(&unknown, "tls", &password)
            .await
            .expect_err("an unknown CA must be refused");
        assert!(matches!(err, ConnectorError::Tls { .. }), "{name}: {err:?}");
        assert_eq!(err.class(), ErrorClass::Permanent, "{name}: {err}");
    }
}

#[tokio::test]
async fn a_bad_password_is_a_permanent_auth_error_naming_the_user() {
    let wrong = "pw-definitely-wrong";
    let err = pop3::connect(
        &pop3_plain(),
        "wrongpw",
        &SecretString::from(wrong.to_owned()),
    )
    .await
    .expect_err("a wrong password must fail");
    assert!(
        matches!(&err, ConnectorError::Auth { user, .. } if user == "wrongpw"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("wrongpw"), "{shown}");
    assert!(!shown.contains(wrong), "the password leaked: {shown}");
}
