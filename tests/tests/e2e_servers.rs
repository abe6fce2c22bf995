//! End to end between real Dovecot, Cyrus and Courier: Cyrus -> Dovecot,
//! Courier -> Dovecot, Dovecot -> Cyrus, Dovecot -> Courier, Cyrus -> Courier.
//!
//! Each pair migrates one mailbox with nested and non-ASCII folders (`&`, `~`, `.` in
//! names, `v1.2 Release` from Dovecot, 15 levels, `Work` and `work`, an empty folder,
//! Sent) and hostile messages (bare LF, NUL, 8-bit headers, a 20,000-character line, a
//! 25 MB message, duplicates), through the real coordinator, RabbitMQ, Redis and a
//! worker; then a delta pass, then `verify`. (`Q1/Q2 Report` cannot be seeded: Courier
//! and Cyrus refuse `/` in a name, "Invalid mailbox name.", and it is Dovecot's
//! separator.)
//!
//! What is asserted, per folder: the folder arrives at the place the namespaces say
//! (`INBOX.a.b` on Cyrus/Courier is `a/b` on Dovecot) or renamed as `plan` said; each
//! message arrives byte-exact, or changed only the way the target server changes the
//! same bytes given to it by a plain APPEND (measured here on a scratch user of the same
//! server), or — bare LF onto Cyrus, which refuses it — normalised to CRLF by mailhaul;
//! nothing is lost or doubled, the delta pass copies nothing, `verify` exits 0.

use mailhaul_tests::harness::{run_with_timeout, show};
use mailhaul_tests::kit::{self, ImapServer, ServerKind};
use mailhaul_tests::snapshot;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const PASSWORD: &str = "pw-Servers-1";

/// The corpus: (folder path relative to the personal namespace, messages).
fn corpus() -> Vec<(String, Vec<Vec<u8>>)> {
    let msg = |id: &str, subject: &str, body: &str| {
        format!(
            "Message-ID: <{id}@servers.test>\r\nFrom: a@example.test\r\nTo: b@example.test\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    let mut deep = String::from("Deep");
    for level in 2..=15 {
        deep.push_str(&format!("/L{level}"));
    }
    let long_line = "x".repeat(20_000);
    let dup = msg("dup", "duplicate", "same bytes twice");
    let bare_lf =
        b"Message-ID: <barelf@servers.test>\nSubject: bare LF\n\nline one\nline two\n".to_vec();
    let nul = b"Message-ID: <nul@servers.test>\r\nSubject: NUL\r\n\r\nbefore\0after\r\n".to_vec();
    let eight_bit = "Message-ID: <8bit@servers.test>\r\nSubject: Grüße aus Köln\r\nFrom: Jürgen <j@example.test>\r\n\r\nhallo\r\n"
        .as_bytes()
        .to_vec();
    vec![
        (
            "INBOX".into(),
            vec![
                msg("i1", "first", "hello"),
                dup.clone(),
                dup,
                bare_lf,
                nul,
                eight_bit,
                msg("long", "long line", &long_line),
            ],
        ),
        ("Work".into(), vec![msg("w1", "upper", "W")]),
        ("work".into(), vec![msg("w2", "lower", "w")]),
        ("Projects/A&B ~x".into(), vec![msg("p1", "amp tilde", "p")]),
        ("Entwürfe/Größe".into(), vec![msg("u1", "umlaut", "u")]),
        ("日本語".into(), vec![msg("j1", "cjk", "j")]),
        ("Sent".into(), vec![msg("s1", "sent", "s")]),
        ("Empty".into(), vec![]),
        (deep, vec![msg("d1", "deep", "d")]),
        ("Big".into(), vec![big()]),
    ]
}

/// A 25 MB message: a base64 attachment in 76-character lines.
fn big() -> Vec<u8> {
    let mut m = b"Message-ID: <big@servers.test>\r\nSubject: 25 MB\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    let line = [b"QUJD".repeat(19).as_slice(), b"\r\n"].concat();
    while m.len() < 25 << 20 {
        m.extend_from_slice(&line);
    }
    m
}

/// Folders the user subscribed to on the source.
const SUBSCRIBED: [&str; 3] = ["INBOX", "Work", "Projects/A&B ~x"];

/// The subscribed folders of `user` (raw names).
async fn lsub(server: &ImapServer, user: &str) -> anyhow::Result<Vec<String>> {
    let mut raw = Raw::login(server.imap_port(), user).await?;
    let out = raw.cmd("LSUB \"\" \"*\"").await?;
    raw.cmd("LOGOUT").await?;
    // `* LSUB (attributes) "delimiter" name`; a \Noselect line is a parent shown for
    // the hierarchy (Courier sends those), not a subscription.
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix("* LSUB ("))
        .filter_map(|l| l.split_once(") "))
        .filter(|(attrs, _)| !attrs.to_ascii_lowercase().contains("\\noselect"))
        .filter_map(|(_, rest)| {
            rest.split_once(' ')
                .map(|(_, n)| n.trim().trim_matches('"').to_owned())
        })
        .collect())
}

/// A folder path only a `/`-server can hold: a `.` inside a name.
const DOTTED: &str = "v1.2 Release";

/// The wire name of `path` on a server of `kind` (mUTF-7, its prefix and separator).
fn wire(kind: ServerKind, path: &str) -> String {
    let encoded = mailhaul_connectors::mutf7::encode(path);
    match kind {
        ServerKind::Dovecot => encoded,
        _ if path == "INBOX" => encoded,
        _ => format!("INBOX.{}", encoded.replace('/', ".")),
    }
}

/// A tiny IMAP client of its own (independent of the code under test).
struct Raw {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    n: u32,
}

impl Raw {
    async fn login(port: u16, user: &str) -> anyhow::Result<Raw> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let (r, w) = tcp.into_split();
        let mut raw = Raw {
            r: BufReader::new(r),
            w,
            n: 0,
        };
        let mut greeting = String::new();
        raw.r.read_line(&mut greeting).await?;
        let done = raw.cmd(&format!("LOGIN {user} {PASSWORD}")).await?;
        anyhow::ensure!(done.contains(" OK"), "login {user}: {done}");
        Ok(raw)
    }

    /// Sends a command and reads to its tagged reply; literals in replies are read whole.
    async fn cmd(&mut self, line: &str) -> anyhow::Result<String> {
        self.n += 1;
        let tag = format!("r{}", self.n);
        self.w
            .write_all(format!("{tag} {line}\r\n").as_bytes())
            .await?;
        self.until(&tag).await
    }

    async fn until(&mut self, tag: &str) -> anyhow::Result<String> {
        let mut out = String::new();
        loop {
            let mut line = Vec::new();
            anyhow::ensure!(self.r.read_until(b'\n', &mut line).await? > 0, "EOF");
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(n) = text
                .trim_end()
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut lit = vec![0; n];
                self.r.read_exact(&mut lit).await?;
            }
            out.push_str(&text);
            if text.starts_with(&format!("{tag} ")) {
                return Ok(out);
            }
        }
    }

    /// APPEND with a synchronising literal (a literal8 when `binary`); the tagged reply.
    async fn append(&mut self, mailbox: &str, body: &[u8], binary: bool) -> anyhow::Result<String> {
        self.n += 1;
        let tag = format!("r{}", self.n);
        let tilde = if binary { "~" } else { "" };
        self.w
            .write_all(
                format!(
                    "{tag} APPEND \"{mailbox}\" (\\Seen) {tilde}{{{}}}\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        if !line.starts_with('+') {
            return Ok(line);
        }
        self.w.write_all(body).await?;
        self.w.write_all(b"\r\n").await?;
        self.until(&tag).await
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 16);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// Seeds `user` on `server` with the corpus (and, on Dovecot, the dotted folder);
/// returns the folders created.
async fn seed(server: &ImapServer, user: &str) -> anyhow::Result<Vec<String>> {
    let kind = server.kind();
    let mut raw = Raw::login(server.imap_port(), user).await?;
    let mut folders = corpus();
    if kind == ServerKind::Dovecot {
        folders.push((
            DOTTED.into(),
            vec![b"Message-ID: <v12@servers.test>\r\nSubject: dotted\r\n\r\nv\r\n".to_vec()],
        ));
    }
    let mut names = Vec::new();
    for (path, messages) in &folders {
        let name = wire(kind, path);
        if path != "INBOX" {
            let done = raw.cmd(&format!("CREATE \"{name}\"")).await?;
            anyhow::ensure!(done.contains(" OK"), "{kind:?} CREATE {name}: {done}");
        }
        for m in messages {
            // Cyrus takes NUL only in a literal8, and bare LF not at all (it cannot be
            // a Cyrus source's message).
            let binary = kind == ServerKind::Cyrus && m.contains(&0);
            let done = raw.append(&name, m, binary).await?;
            let refused_bare_lf = kind == ServerKind::Cyrus && done.contains("bare newlines");
            anyhow::ensure!(
                done.contains(" OK") || refused_bare_lf,
                "{kind:?} APPEND to {name}: {done}"
            );
        }
        names.push(path.clone());
    }
    for path in SUBSCRIBED {
        let done = raw
            .cmd(&format!("SUBSCRIBE \"{}\"", wire(kind, path)))
            .await?;
        anyhow::ensure!(done.contains(" OK"), "{kind:?} SUBSCRIBE {path}: {done}");
    }
    raw.cmd("LOGOUT").await?;
    Ok(names)
}

/// What the target server makes of `body` given by a plain APPEND (a literal8 for NUL
/// where it offers BINARY), on the scratch user: the bytes it stores, or `None` if it
/// refuses them.
async fn direct_append(target: &ImapServer, body: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let mut raw = Raw::login(target.imap_port(), "scratch").await?;
    let binary = target.kind() == ServerKind::Cyrus && body.contains(&0);
    let done = raw.append("INBOX", body, binary).await?;
    raw.cmd("LOGOUT").await?;
    if !done.contains(" OK") {
        return Ok(None);
    }
    // The newest message of INBOX is the one just appended.
    Ok(Some(last_body(target.imap_port(), "scratch").await?))
}

/// The bytes of the newest message in `user`'s INBOX.
async fn last_body(port: u16, user: &str) -> anyhow::Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?;
    let mut s = client.login(user, PASSWORD).await.map_err(|(e, _)| e)?;
    s.examine("INBOX").await?;
    use futures_util::TryStreamExt as _;
    let fetched: Vec<_> = s.fetch("*", "BODY.PEEK[]").await?.try_collect().await?;
    let body = fetched
        .last()
        .and_then(|f| f.body())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| anyhow::anyhow!("no body"))?;
    s.logout().await?;
    Ok(body)
}

/// A folder's display path as the kit's snapshot shows it on `kind`, made relative to
/// the personal namespace.
fn relative(kind: ServerKind, display: &str) -> String {
    match kind {
        ServerKind::Dovecot => display.to_owned(),
        _ => display.strip_prefix("INBOX/").unwrap_or(display).to_owned(),
    }
}

struct Pair {
    source: ImapServer,
    target: ImapServer,
    namespace: String,
    dir: tempfile::TempDir,
    manifest: std::path::PathBuf,
    workers: Vec<Child>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Pair {
    fn new(source: ServerKind, target: ServerKind) -> anyhow::Result<Pair> {
        let source = ImapServer::start(source)?;
        let target = ImapServer::start(target)?;
        source.add_user("alice", PASSWORD)?;
        target.add_user("alice", PASSWORD)?;
        target.add_user("scratch", PASSWORD)?;
        let namespace = kit::unique_namespace(&format!(
            "servers {} {}",
            source.kind().name(),
            target.kind().name()
        ));
        let dir = tempfile::tempdir()?;
        let manifest = dir.path().join("manifest.toml");
        std::fs::write(
            &manifest,
            format!(
                "tenant = \"{namespace}\"\n\n[source]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\n\
                 [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\npassword = \"env:MH_PW\"\n\n\
                 [[mailbox]]\nemail = \"alice@example.test\"\nusername = \"alice\"\npassword = \"env:MH_PW\"\ntarget_username = \"alice\"\n",
                source.imap_port(),
                target.imap_port()
            ),
        )?;
        Ok(Pair {
            source,
            target,
            namespace,
            dir,
            manifest,
            workers: Vec::new(),
        })
    }

    fn command(&self, bin: &str) -> Command {
        let shared = kit::shared();
        let mut c = Command::new(kit::bin_path(bin));
        c.env("MAILHAUL_AMQP_URL", &shared.amqp_url)
            .env("MAILHAUL_REDIS_URL", &shared.redis_url)
            .env("MAILHAUL_NAMESPACE", &self.namespace)
            .env("MH_PW", PASSWORD)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        c
    }

    fn mailhaul(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.command("mailhaul");
        c.args(args).arg(&self.manifest);
        run_with_timeout(c, Duration::from_secs(300))
    }

    fn spawn_worker(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.path().join("worker.log"))?;
        let mut c = self.command("mailhaul-worker");
        c.arg("--manifest")
            .arg(&self.manifest)
            .args(["--lease-ttl-secs", "5", "--drain-timeout-secs", "10"])
            .stdout(log.try_clone()?)
            .stderr(log);
        self.workers.push(c.spawn()?);
        Ok(())
    }

    fn worker_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }
}

/// What happened to one source message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    exact: u32,
    server_transformed: u32,
    normalised: u32,
    lost: u32,
}

async fn run_pair(source: ServerKind, target: ServerKind) -> anyhow::Result<()> {
    let mut pair = Pair::new(source, target)?;
    seed(&pair.source, "alice").await?;
    let before = snapshot::snapshot(pair.source.imap_port(), "alice", PASSWORD).await?;

    let plan = pair.mailhaul(&["plan"]);
    let plan_out = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "plan:\n{}", show(&plan));

    pair.spawn_worker()?;
    let first = pair.mailhaul(&["migrate"]);
    let first_out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "migrate:\n{}\n--- worker ---\n{}",
        show(&first),
        pair.worker_log()
    );
    let after = snapshot::snapshot(pair.target.imap_port(), "alice", PASSWORD).await?;

    // Where each source folder must be on the target (relative paths).
    let mut expected_place: BTreeMap<String, String> = BTreeMap::new();
    for display in before.folders.keys() {
        let rel = relative(source, display);
        let place = if rel == DOTTED && target != ServerKind::Dovecot {
            // `.` separates levels on Cyrus and Courier: renamed, and said so.
            assert!(
                plan_out.contains("\"v1.2 Release\" cannot be a folder name on the target")
                    && first_out.contains("v1_2 Release"),
                "plan and migrate say the rename:\n{plan_out}\n{first_out}"
            );
            "v1_2 Release".to_owned()
        } else {
            rel.clone()
        };
        expected_place.insert(rel, place);
    }
    let target_folders: BTreeMap<String, &Vec<snapshot::MessageSnapshot>> = after
        .folders
        .iter()
        .map(|(k, v)| (relative(target, k), v))
        .collect();
    for (rel, place) in &expected_place {
        assert!(
            target_folders.contains_key(place),
            "{source:?} -> {target:?}: folder {rel:?} not at {place:?}; target has {:?}\n{first_out}",
            target_folders.keys()
        );
    }
    // Nothing else appears on the target (parents of nested folders aside, which the
    // servers create).
    for place in target_folders.keys() {
        let is_parent = expected_place
            .values()
            .any(|p| p.starts_with(&format!("{place}/")));
        assert!(
            expected_place.values().any(|p| p == place) || is_parent,
            "{source:?} -> {target:?}: unexpected target folder {place:?}"
        );
    }

    // Message by message: exact, or as the target server changes it, or normalised.
    let mut tally = Tally::default();
    let source_bodies = bodies(&pair.source, "alice").await?;
    let target_bodies = bodies(&pair.target, "alice").await?;
    for (display, msgs) in &source_bodies {
        let rel = relative(source, display);
        let place = &expected_place[&rel];
        let there: Vec<String> = target_bodies
            .iter()
            .find(|(d, _)| relative(target, d) == *place)
            .map(|(_, v)| v.iter().map(|b| sha(b)).collect())
            .unwrap_or_default();
        let mut remaining = there.clone();
        for m in msgs {
            let mut take = |h: &str| match remaining.iter().position(|x| x == h) {
                Some(i) => {
                    remaining.remove(i);
                    true
                }
                None => false,
            };
            if take(&sha(m)) {
                tally.exact += 1;
                continue;
            }
            match direct_append(&pair.target, m).await? {
                Some(stored) if take(&sha(&stored)) => {
                    tally.server_transformed += 1;
                    eprintln!(
                        "{source:?} -> {target:?}: changed by the target as a plain APPEND is: {:?}",
                        String::from_utf8_lossy(&m[..m.len().min(60)])
                    );
                }
                None if take(&sha(&crlf(m))) => tally.normalised += 1,
                _ => {
                    tally.lost += 1;
                    eprintln!(
                        "{source:?} -> {target:?}: lost in {rel:?}: {:?}",
                        String::from_utf8_lossy(&m[..m.len().min(80)])
                    );
                }
            }
        }
        assert!(
            remaining.is_empty(),
            "{source:?} -> {target:?}: {} unexpected message(s) in {place:?}",
            remaining.len()
        );
    }
    eprintln!(
        "TABLE {} -> {}: folders {} right ({} renamed), messages {tally:?}",
        source.name(),
        target.name(),
        expected_place.len(),
        expected_place.iter().filter(|(a, b)| a != b).count()
    );
    assert_eq!(
        tally.lost, 0,
        "{source:?} -> {target:?}: {tally:?}\n{first_out}"
    );

    // The source's subscriptions are the target's (and only those).
    let subs = lsub(&pair.target, "alice").await?;
    for path in SUBSCRIBED {
        assert!(
            subs.contains(&wire(target, path)),
            "{source:?} -> {target:?}: {path:?} not subscribed on the target: {subs:?}"
        );
    }
    assert_eq!(subs.len(), SUBSCRIBED.len(), "{subs:?}");

    // A delta pass copies nothing; verify finds everything once.
    let delta = pair.mailhaul(&["migrate"]);
    assert!(delta.status.success(), "delta:\n{}", show(&delta));
    let again = snapshot::snapshot(pair.target.imap_port(), "alice", PASSWORD).await?;
    assert_eq!(
        again.contents(),
        after.contents(),
        "the delta pass changed the target"
    );
    let started = std::time::Instant::now();
    let verify = pair.mailhaul(&["verify"]);
    // A figure, not an assertion: verify's time on this corpus.
    eprintln!(
        "VERIFY {} -> {}: {:.2?}",
        source.name(),
        target.name(),
        started.elapsed()
    );
    assert!(verify.status.success(), "verify:\n{}", show(&verify));

    // verify checks subscriptions: drop one on the target, verify says so.
    let mut raw = Raw::login(pair.target.imap_port(), "alice").await?;
    raw.cmd(&format!("UNSUBSCRIBE \"{}\"", wire(target, "Work")))
        .await?;
    raw.cmd("LOGOUT").await?;
    let verify = pair.mailhaul(&["verify"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        !verify.status.success() && text.contains("not subscribed in \"Work\""),
        "verify after UNSUBSCRIBE:\n{}",
        show(&verify)
    );
    // The next pass subscribes it again.
    let delta = pair.mailhaul(&["migrate"]);
    assert!(delta.status.success(), "delta:\n{}", show(&delta));
    assert!(
        lsub(&pair.target, "alice")
            .await?
            .contains(&wire(target, "Work"))
    );
    Ok(())
}

/// Every folder's message bodies, by the snapshot's display path.
async fn bodies(server: &ImapServer, user: &str) -> anyhow::Result<Vec<(String, Vec<Vec<u8>>)>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.imap_port())).await?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?;
    let mut s = client.login(user, PASSWORD).await.map_err(|(e, _)| e)?;
    use futures_util::TryStreamExt as _;
    let names: Vec<_> = s.list(Some(""), Some("*")).await?.try_collect().await?;
    let mut out = Vec::new();
    for n in &names {
        if n.attributes()
            .iter()
            .any(|a| matches!(a, async_imap::imap_proto::NameAttribute::NoSelect))
        {
            continue;
        }
        let mut display = mailhaul_connectors::mutf7::decode(n.name())?;
        if let Some(d) = n.delimiter().filter(|d| *d != "/") {
            display = display.replace(d, "/");
        }
        let mb = s.examine(n.name()).await?;
        let mut msgs = Vec::new();
        if mb.exists > 0 {
            let f: Vec<_> = s.fetch("1:*", "BODY.PEEK[]").await?.try_collect().await?;
            msgs.extend(f.iter().filter_map(|f| f.body().map(<[u8]>::to_vec)));
        }
        out.push((display, msgs));
    }
    s.logout().await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_to_dovecot() -> anyhow::Result<()> {
    run_pair(ServerKind::Cyrus, ServerKind::Dovecot).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courier_to_dovecot() -> anyhow::Result<()> {
    run_pair(ServerKind::Courier, ServerKind::Dovecot).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_to_cyrus() -> anyhow::Result<()> {
    run_pair(ServerKind::Dovecot, ServerKind::Cyrus).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_to_courier() -> anyhow::Result<()> {
    run_pair(ServerKind::Dovecot, ServerKind::Courier).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_to_courier() -> anyhow::Result<()> {
    run_pair(ServerKind::Cyrus, ServerKind::Courier).await
}

/// Folder names of a Dovecot source, most of which a `.`-separated target (Cyrus,
/// Courier) cannot hold as they are: a `.` (its separator), and on Cyrus the characters
/// its name policy refuses (`CREATE` answers "Invalid mailbox name"); `?` and `@` both
/// take. (`/` cannot be in a Dovecot name: it is its separator.)
const ODD: [&str; 10] = [
    "v1.2 Release",
    "a.b.c",
    "back\\slash",
    "semi;colon",
    "bang!",
    "pipe|x",
    "what?",
    "less<than",
    "more>than",
    "at@home",
];

/// `plan` onto Cyrus and Courier lists every folder of a Dovecot source that the target
/// cannot hold under its own name, each with what it becomes (not the first only), and
/// `migrate` then creates every one of them where plan said: no CREATE is refused.
async fn plan_lists_every_odd_folder(target: ServerKind) -> anyhow::Result<()> {
    let mut pair = Pair::new(ServerKind::Dovecot, target)?;
    let mut raw = Raw::login(pair.source.imap_port(), "alice").await?;
    for (i, name) in ODD.iter().enumerate() {
        let wire = mailhaul_connectors::mutf7::encode(name).replace('\\', "\\\\");
        let done = raw.cmd(&format!("CREATE \"{wire}\"")).await?;
        anyhow::ensure!(done.contains(" OK"), "CREATE {name}: {done}");
        let m = format!("Message-ID: <odd{i}@servers.test>\r\nSubject: odd {i}\r\n\r\nx\r\n");
        let done = raw.append(&wire, m.as_bytes(), false).await?;
        anyhow::ensure!(done.contains(" OK"), "APPEND {name}: {done}");
    }
    raw.cmd("LOGOUT").await?;

    let plan = pair.mailhaul(&["plan"]);
    let out = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "plan:\n{}", show(&plan));
    let renamed: Vec<&str> = ODD
        .iter()
        .copied()
        .filter(|name| {
            out.lines().any(|l| {
                l.starts_with(&format!("  folder {name:?} -> "))
                    && l.contains("cannot be a folder name on the target")
            })
        })
        .collect();
    assert_eq!(
        renamed,
        ODD.iter()
            .copied()
            .filter(|n| {
                // Courier refuses `.` and `/` only; Cyrus' name policy much more, but
                // takes `?` and `@`.
                n.contains('.') || (target == ServerKind::Cyrus && !n.contains(['?', '@']))
            })
            .collect::<Vec<_>>(),
        "{target:?}: plan lists each folder it renames:\n{out}"
    );

    pair.spawn_worker()?;
    let first = pair.mailhaul(&["migrate"]);
    assert!(
        first.status.success(),
        "{target:?}: migrate (a refused CREATE fails it):\n{}\n--- worker ---\n{}",
        show(&first),
        pair.worker_log()
    );
    let after = snapshot::snapshot(pair.target.imap_port(), "alice", PASSWORD).await?;
    assert_eq!(
        after.message_count(),
        ODD.len(),
        "{target:?}: {:?}",
        after.folders.keys()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_every_folder_cyrus_cannot_hold() -> anyhow::Result<()> {
    plan_lists_every_odd_folder(ServerKind::Cyrus).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_every_folder_courier_cannot_hold() -> anyhow::Result<()> {
    plan_lists_every_odd_folder(ServerKind::Courier).await
}
