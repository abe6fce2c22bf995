//! Live tests of the IMAP connector (`mailhaul_connectors::imap`) against a real
//! Dovecot that the test kit starts for this test process (plain IMAP with STARTTLS,
//! and IMAPS with the kit's test CA).
//!
//! Tests share the mailbox users, so each works in folders of its own (`t<pid>-<n>-...`).

use chrono::{DateTime, FixedOffset};
use mailhaul_connectors::body::{Body, BodySink};
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::imap::{AppendItem, Capabilities, ImapSession, connect};
use mailhaul_connectors::mapping;
use mailhaul_proto::ErrorClass;
use mailhaul_proto::ids::{Uid, UidRange};
use mailhaul_proto::ledger::content_hash;
use mailhaul_proto::manifest::{Login, ServerConfig, ServerKind, TlsMode};
use mailhaul_tests::kit::Dovecot;
use secrecy::SecretString;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The Dovecot all tests of this binary share (the kit's reaper stops it at exit).
fn dovecot() -> &'static Dovecot {
    static D: OnceLock<Dovecot> = OnceLock::new();
    D.get_or_init(|| {
        let d = Dovecot::start().expect("the test kit starts Dovecot");
        d.add_user("live1", "pw-live1").expect("add a user");
        d.add_user("live2", "pw-live2").expect("add a user");
        d
    })
}

/// The settings these tests were written against, now from the kit's Dovecot.
fn env(name: &str) -> String {
    let d = dovecot();
    match name {
        "MAILHAUL_TEST_IMAP" => format!("localhost:{}", d.imap_port()),
        "MAILHAUL_TEST_IMAPS" => format!("localhost:{}", d.imaps_port()),
        "MAILHAUL_TEST_IMAP_CA" => d.ca_pem().display().to_string(),
        "MAILHAUL_TEST_IMAP_USERS" => "live1:pw-live1,live2:pw-live2".to_owned(),
        other => panic!("unknown setting {other}"),
    }
}

fn server(var: &str, tls: TlsMode) -> ServerConfig {
    let addr = env(var);
    let (host, port) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{var}={addr:?} is not host:port"));
    ServerConfig {
        kind: ServerKind::Imap,
        host: host.to_owned(),
        port: port
            .parse()
            .unwrap_or_else(|_| panic!("{var}={addr:?}: bad port")),
        tls,
        tls_verify: true,
        ca_file: match tls {
            TlsMode::None => None,
            _ => Some(PathBuf::from(env("MAILHAUL_TEST_IMAP_CA"))),
        },
        max_connections_per_mailbox: NonZeroU32::MIN,
        password: None,
        login: Login::Password,
        http: None,
        imap: Default::default(),
    }
}

fn user(index: usize) -> (String, SecretString) {
    let users = env("MAILHAUL_TEST_IMAP_USERS");
    let entry = users.split(',').nth(index).unwrap_or_else(|| {
        panic!(
            "MAILHAUL_TEST_IMAP_USERS needs at least {} users",
            index + 1
        )
    });
    let (u, p) = entry
        .split_once(':')
        .unwrap_or_else(|| panic!("MAILHAUL_TEST_IMAP_USERS entry {entry:?} is not user:pass"));
    (u.to_owned(), SecretString::from(p.to_owned()))
}

async fn session() -> ImapSession {
    let (u, p) = user(0);
    connect(&server("MAILHAUL_TEST_IMAP", TlsMode::None), &u, &p)
        .await
        .expect("login to the test Dovecot")
}

/// A folder name no other test (or earlier run) uses, as display segments.
fn unique(label: &str) -> Vec<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    vec![
        format!(
            "t{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ),
        label.to_owned(),
    ]
}

async fn new_folder(s: &mut ImapSession, label: &str) -> (Vec<String>, String) {
    let segs = unique(label);
    let delim = s.delimiter().await.expect("delimiter");
    let raw = mapping::target_name(&segs, delim);
    s.create_folder(&raw).await.expect("create folder");
    (segs, raw)
}

fn message(i: usize, extra: usize) -> Vec<u8> {
    let mut m = format!(
        "Message-ID: <live-{i}-{extra}@mailhaul.test>\r\nFrom: a@example.com\r\nTo: b@example.com\r\n\
         Subject: live test {i}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nline one\r\n\
         .leading dot\r\nFrom the start\r\n"
    )
    .into_bytes();
    m.extend(std::iter::repeat_n(b'x', extra));
    m.extend_from_slice(b"\r\n");
    m
}

fn date(i: usize) -> DateTime<FixedOffset> {
    let offsets = ["+0000", "-0700", "+0530", "+0100"];
    DateTime::parse_from_str(
        &format!(
            "{:02}-Mar-{} 0{}:1{}:2{} {}",
            1 + i % 28,
            1998 + i % 29,
            i % 10,
            i % 6,
            i % 10,
            offsets[i % 4]
        ),
        "%d-%b-%Y %H:%M:%S %z",
    )
    .expect("valid test date")
}

fn flags(i: usize) -> Vec<String> {
    let all = [
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Draft",
        "$Forwarded",
        "Project_X",
    ];
    all.iter()
        .enumerate()
        .filter(|(k, _)| (i >> k) & 1 == 1)
        .map(|(_, f)| (*f).to_owned())
        .collect()
}

/// `n` test messages (body `i` padded by `extra(i)` bytes) and their flags.
fn batch(n: usize, extra: impl Fn(usize) -> usize) -> (Vec<Vec<u8>>, Vec<Vec<String>>) {
    (
        (0..n).map(|i| message(i, extra(i))).collect(),
        (0..n).map(flags).collect(),
    )
}

/// The items for [`batch`]'s messages, message `i` dated [`date`]`(i)`.
fn append_items<'a>(bodies: &'a [Body], flags: &'a [Vec<String>]) -> Vec<AppendItem<'a>> {
    bodies
        .iter()
        .zip(flags)
        .enumerate()
        .map(|(i, (body, flags))| AppendItem {
            flags,
            internal_date: date(i),
            body,
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn login_capabilities_and_bad_password() {
    let s = session().await;
    let caps = s.capabilities();
    assert!(
        caps.uidplus && caps.multiappend && caps.literal_plus,
        "{caps:?}"
    );
    s.logout().await.expect("logout");

    let (u, _) = user(0);
    let wrong = SecretString::from("definitely-wrong".to_owned());
    let err = connect(&server("MAILHAUL_TEST_IMAP", TlsMode::None), &u, &wrong)
        .await
        .expect_err("wrong password must fail");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let text = err.to_string();
    assert!(
        text.contains(&u) && !text.contains("definitely-wrong"),
        "{text}"
    );
}

#[tokio::test]
async fn list_status_examine_sizes_fetch() {
    let mut s = session().await;
    let (segs, raw) = new_folder(&mut s, "Отправленные & Co").await;
    let (bodies, fl) = batch(3, |i| i * 100);
    let sent: Vec<Body> = bodies.iter().cloned().map(Body::from).collect();
    let items = append_items(&sent, &fl);
    let uids = s.append_batch(&raw, &items).await.expect("append");

    let listed = s.list_folders().await.expect("list");
    let mine = listed
        .iter()
        .find(|f| f.raw_name == raw)
        .unwrap_or_else(|| panic!("{raw} not in LIST: {listed:?}"));
    assert_eq!(
        mine.segments, segs,
        "non-ASCII name decodes to what we created"
    );
    assert!(raw.contains("&BB4"), "the wire name is mUTF-7: {raw}");
    let inbox = listed
        .iter()
        .find(|f| f.raw_name == "INBOX")
        .expect("INBOX listed");
    assert_eq!(inbox.segments, vec!["INBOX"]);

    let st = s.status(&raw).await.expect("status");
    assert_eq!(st.messages, 3);
    assert!(st.uid_next > uids[2]);
    let ex = s.examine(&raw).await.expect("examine");
    assert_eq!(ex, st, "EXAMINE and STATUS agree");

    let sizes = s
        .uid_sizes(UidRange {
            first: Uid(1),
            last: Uid(st.uid_next.0 + 100),
        })
        .await
        .expect("sizes");
    let want: Vec<(Uid, u32)> = uids
        .iter()
        .zip(&bodies)
        .map(|(u, b)| (*u, b.len() as u32))
        .collect();
    assert_eq!(sizes, want);
    // A range above every UID: the server answers with the highest UID ("*" semantics);
    // it must be filtered out.
    let empty = s
        .uid_sizes(UidRange {
            first: Uid(st.uid_next.0 + 10),
            last: Uid(st.uid_next.0 + 20),
        })
        .await
        .expect("sizes of an empty range");
    assert!(empty.is_empty(), "{empty:?}");

    let got = s
        .fetch_messages(&[
            (uids[2], bodies[2].len() as u32),
            (uids[0], bodies[0].len() as u32),
            (Uid(999_999), 10),
        ])
        .await
        .expect("fetch");
    assert_eq!(got.len(), 2);
    for (m, i) in got.iter().zip([0, 2]) {
        assert_eq!(m.uid, uids[i]);
        assert_eq!(m.body.in_memory(), Some(&bodies[i][..]), "byte-exact");
        assert_eq!(sorted(m.flags.clone()), sorted(fl[i].clone()));
        assert_eq!(m.internal_date, date(i));
    }
    s.logout().await.expect("logout");
}

#[tokio::test]
async fn multiappend_fifty_keeps_flags_and_dates() {
    let mut s = session().await;
    let (_, raw) = new_folder(&mut s, "multi").await;
    let (bodies, fl) = batch(50, |i| i * 37);
    let sent: Vec<Body> = bodies.iter().cloned().map(Body::from).collect();
    let items = append_items(&sent, &fl);
    let uids = s.append_batch(&raw, &items).await.expect("multiappend");
    assert_eq!(uids.len(), 50);
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "{uids:?}");

    s.select(&raw).await.expect("select");
    let meta = s.fetch_meta(&uids).await.expect("meta");
    assert_eq!(meta.len(), 50);
    for (i, (uid, f, d, size)) in meta.into_iter().enumerate() {
        assert_eq!(uid, uids[i]);
        assert_eq!(sorted(f), sorted(fl[i].clone()), "flags of #{i}");
        assert_eq!(d, date(i), "date of #{i}");
        assert_eq!(size as usize, bodies[i].len());
    }
    let got = s.fetch_bodies(&uids).await.expect("bodies");
    assert_eq!(got.len(), 50);
    for (i, (uid, body)) in got.iter().enumerate() {
        assert_eq!((*uid, body), (uids[i], &bodies[i]));
    }
    s.logout().await.expect("logout");
}

#[tokio::test]
async fn single_appends_and_five_megabytes() {
    let mut s = session().await;
    let (_, raw) = new_folder(&mut s, "big").await;
    s.restrict_capabilities(Capabilities {
        multiappend: false,
        ..s.capabilities()
    });
    let big = message(1, 9 * 1024 * 1024 + 17);
    let small = message(2, 10);
    // The big one is spooled to a file (over the 4 MiB threshold) and its APPEND
    // literal is sent from there.
    let mut sink = BodySink::new();
    for piece in big.chunks(100_000) {
        sink.write(piece).await.expect("spools");
    }
    let big_body = sink.finish().await.expect("spooled");
    assert!(big_body.is_spooled());
    let small_body = Body::from(small.clone());
    let none: Vec<String> = Vec::new();
    let items = [
        AppendItem {
            flags: &none,
            internal_date: date(1),
            body: &big_body,
        },
        AppendItem {
            flags: &none,
            internal_date: date(2),
            body: &small_body,
        },
    ];
    let uids = s.append_batch(&raw, &items).await.expect("append");
    assert_eq!(uids.len(), 2);
    s.select(&raw).await.expect("select");
    let got = s.fetch_bodies(&uids).await.expect("bodies");
    assert_eq!(got[0].1.len(), big.len());
    assert!(got[0].1 == big && got[1].1 == small, "byte-exact");

    // Read back: the big one in partial FETCHes into a file, byte-exact, with its flags
    // and date; the small one in memory.
    let wanted = [(uids[1], small.len() as u32), (uids[0], big.len() as u32)];
    let fetched = s.fetch_messages(&wanted).await.expect("fetch");
    assert_eq!(fetched.len(), 2);
    assert_eq!(fetched[0].uid, uids[0]);
    assert!(fetched[0].body.is_spooled(), "a large body is spooled");
    assert_eq!(fetched[0].body.len(), big.len() as u64);
    assert_eq!(fetched[0].body.hash(), content_hash(&big));
    assert!(
        *fetched[0].body.whole().await.expect("reads") == big[..],
        "byte-exact"
    );
    assert_eq!(fetched[0].internal_date, date(1));
    assert_eq!(fetched[1].body.in_memory(), Some(&small[..]));
    assert_eq!(
        s.body_hash(uids[0]).await.expect("hash"),
        Some((big.len() as u64, content_hash(&big)))
    );
    assert_eq!(s.body_hash(Uid(999_999)).await.expect("no such UID"), None);
    s.logout().await.expect("logout");
}

#[tokio::test]
async fn find_candidates_by_id_and_size() {
    let mut s = session().await;
    let (_, raw) = new_folder(&mut s, "dups").await;
    let a = message(7, 10);
    let b = message(8, 10); // same size, other Message-ID
    let none: Vec<String> = Vec::new();
    let (a_body, b_body) = (Body::from(a.clone()), Body::from(b.clone()));
    let item = |body| AppendItem {
        flags: &none,
        internal_date: date(0),
        body,
    };
    let uids = s
        .append_batch(&raw, &[item(&a_body), item(&b_body)])
        .await
        .expect("append");
    s.select(&raw).await.expect("select");
    let size = a.len() as u32;
    let by_id = s
        .find_candidates(Some("<live-7-10@mailhaul.test>"), size)
        .await
        .expect("search");
    assert_eq!(by_id, vec![uids[0]]);
    let bare = s
        .find_candidates(Some("live-8-10@mailhaul.test"), size)
        .await
        .expect("search");
    assert_eq!(bare, vec![uids[1]]);
    let by_size = s.find_candidates(None, size).await.expect("search");
    assert_eq!(by_size, uids);
    let wrong_size = s
        .find_candidates(Some("<live-7-10@mailhaul.test>"), size + 1)
        .await
        .expect("search");
    assert!(wrong_size.is_empty());
    s.logout().await.expect("logout");
}

#[tokio::test]
async fn create_is_idempotent_and_refusals_are_classified() {
    let mut s = session().await;
    let mut segs = unique("a");
    segs.extend(["b/c".to_owned(), "日本語".to_owned()]);
    let delim = s.delimiter().await.expect("delimiter");
    let raw = mapping::target_name(&segs, delim);
    s.create_folder(&raw).await.expect("create nested");
    s.create_folder(&raw).await.expect("create again is fine");
    let listed = s.list_folders().await.expect("list");
    assert!(
        listed
            .iter()
            .any(|f| f.raw_name == raw && f.segments.last().map(String::as_str) == Some("日本語"))
    );

    let missing = format!("{}-missing", segs[0]);
    let err = s.select(&missing).await.expect_err("no such folder");
    assert!(matches!(err, ConnectorError::No { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let none: Vec<String> = Vec::new();
    let body = Body::from(message(1, 1));
    let item = AppendItem {
        flags: &none,
        internal_date: date(1),
        body: &body,
    };
    let err = s
        .append_batch(&missing, &[item])
        .await
        .expect_err("TRYCREATE");
    assert!(err.to_string().contains("TRYCREATE"), "{err}");
    // The session is still usable after a refusal.
    s.status(&raw).await.expect("status after refusal");
    s.logout().await.expect("logout");
}

#[tokio::test]
async fn implicit_tls_and_starttls() {
    let (u, p) = user(0);
    for cfg in [
        server("MAILHAUL_TEST_IMAPS", TlsMode::Implicit),
        server("MAILHAUL_TEST_IMAP", TlsMode::StartTls),
    ] {
        let mut s = connect(&cfg, &u, &p).await.expect("tls login");
        s.status("INBOX").await.expect("status over tls");
        s.logout().await.expect("logout");
    }
    // Without the test CA the certificate must be rejected, permanently.
    let mut no_ca = server("MAILHAUL_TEST_IMAPS", TlsMode::Implicit);
    no_ca.ca_file = None;
    let err = connect(&no_ca, &u, &p).await.expect_err("unknown CA");
    assert!(matches!(err, ConnectorError::Tls { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    // tls_verify = false accepts it (and warns).
    no_ca.tls_verify = false;
    let s = connect(&no_ca, &u, &p).await.expect("unverified tls");
    s.logout().await.expect("logout");
}

#[tokio::test]
async fn multiappend_with_synchronising_literals_and_no_uidplus() {
    let mut s = session().await;
    let (_, raw) = new_folder(&mut s, "sync").await;
    s.restrict_capabilities(Capabilities {
        literal_plus: false,
        ..s.capabilities()
    });
    let (bodies, fl) = batch(5, |i| i);
    let sent: Vec<Body> = bodies.iter().cloned().map(Body::from).collect();
    let items = append_items(&sent, &fl);
    let uids = s
        .append_batch(&raw, &items)
        .await
        .expect("append, waiting for each +");
    assert_eq!(uids.len(), 5);
    s.select(&raw).await.expect("select");
    let got = s.fetch_bodies(&uids).await.expect("bodies");
    assert!(
        got.iter().zip(&bodies).all(|((_, g), b)| g == b),
        "byte-exact"
    );

    s.restrict_capabilities(Capabilities {
        uidplus: false,
        ..s.capabilities()
    });
    let err = s.append_batch(&raw, &items).await.expect_err("no UIDPLUS");
    assert!(err.to_string().contains("UIDPLUS"), "{err}");
    assert_eq!(
        s.status(&raw).await.expect("status").messages,
        5,
        "nothing sent"
    );
    s.logout().await.expect("logout");
}
