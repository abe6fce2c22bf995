//! End to end: a tenant migrated IMAP -> IMAP where neither side is given a password.
//! The source logs in with SASL XOAUTH2 and a token from a file (`oauth_token_file`),
//! the target with XOAUTH2 and the app's token from a client credentials grant against a
//! token endpoint this test serves. Both Dovecots check every token at an introspection
//! endpoint served here too (the kit's `oauth2` passdb), so a login only succeeds with a
//! token the identity provider handed out.
//!
//! Like an app-only token on Exchange Online or a domain-wide delegated token on Gmail,
//! one token serves every mailbox of the tenant: the passdb compares only the domain part
//! of the login and of the token's user (`username_format = %d`; the test users have no
//! domain), and the target's passdb also insists on the token's scope.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use mailhaul_proto::MailboxId;
use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::harness::{Env, PASSWORD, email, show};
use mailhaul_tests::kit::oauth2_passdb;
use mailhaul_tests::snapshot::{MailboxSnapshot, assert_same};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The client credentials of the target's app registration.
const CLIENT_ID: &str = "mailhaul-app";
const CLIENT_SECRET: &str = "cc-secret-7f3a";
const TARGET_SCOPE: &str = "imap-target";

/// The identity provider: which tokens are live, and what the Dovecots asked about.
#[derive(Default)]
struct Idp {
    /// Tokens the source's introspection accepts.
    source_tokens: Mutex<Vec<String>>,
    /// Tokens minted by the token endpoint, with the scope they were minted for.
    minted: Mutex<HashMap<String, String>>,
    /// Introspections per (side, token).
    checked: Mutex<BTreeMap<(String, String), usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Idp {
    fn checks(&self, side: &str, token: &str) -> usize {
        lock(&self.checked)
            .get(&(side.to_owned(), token.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn minted(&self) -> Vec<String> {
        lock(&self.minted).keys().cloned().collect()
    }
}

/// Introspection (RFC 7662 style) as Dovecot's `introspection_mode = post` calls it;
/// `side` is `source` or `target`, from the URL.
async fn introspect(
    State(idp): State<Arc<Idp>>,
    axum::extract::Path(side): axum::extract::Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let token = form.get("token").cloned().unwrap_or_default();
    *lock(&idp.checked)
        .entry((side.clone(), token.clone()))
        .or_default() += 1;
    let scope = match side.as_str() {
        "source" => lock(&idp.source_tokens)
            .contains(&token)
            .then(|| "imap-source".to_owned()),
        _ => lock(&idp.minted).get(&token).cloned(),
    };
    match scope {
        Some(scope) => Json(json!({"active": true, "username": CLIENT_ID, "scope": scope})),
        None => Json(json!({"active": false})),
    }
}

/// The client credentials grant (RFC 6749 §4.4).
async fn token(
    State(idp): State<Arc<Idp>>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials"
        || field("client_id") != CLIENT_ID
        || field("client_secret") != CLIENT_SECRET
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        );
    }
    let mut minted = lock(&idp.minted);
    let access = format!("cc-token-{}", minted.len() + 1);
    minted.insert(access.clone(), field("scope").to_owned());
    (
        StatusCode::OK,
        Json(json!({"token_type": "Bearer", "expires_in": 3600, "access_token": access})),
    )
}

/// Serves the idp on a free loopback port, on a thread and runtime of its own: the test
/// blocks its own threads while `mailhaul migrate` runs, and Dovecot must still get
/// answers meanwhile.
fn serve_idp(idp: Arc<Idp>) -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/{side}/introspect", post(introspect))
        .route("/token", post(token))
        .with_state(idp);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            axum::serve(listener, app).await.expect("the idp serves");
        });
    });
    Ok(base)
}

fn progress_of<'a>(
    p: &'a mailhaul_ledger::PassProgress,
    user: &str,
) -> &'a mailhaul_ledger::MailboxProgress {
    p.mailboxes
        .iter()
        .find(|m| m.mailbox == MailboxId(email(user)))
        .expect("every manifest mailbox is in the progress")
}

/// Asserts that no token or client secret shows in what the processes printed.
fn assert_no_secrets(text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{s:?} leaked into:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_on_both_sides_migrates_byte_exact_and_delta_copies_nothing() -> anyhow::Result<()>
{
    let idp = Arc::new(Idp::default());
    let base = serve_idp(idp.clone())?;
    let files = tempfile::Builder::new()
        .prefix("mailhaul-xoauth2-")
        .tempdir()?;
    std::fs::set_permissions(
        files.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let (source_dir, target_dir) = (files.path().join("source"), files.path().join("target"));
    for d in [&source_dir, &target_dir] {
        std::fs::create_dir(d)?;
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let source_conf = oauth2_passdb(
        &source_dir,
        &format!("{base}/source/introspect"),
        "username_format = %d",
    )?;
    let target_conf = oauth2_passdb(
        &target_dir,
        &format!("{base}/target/introspect"),
        &format!("username_format = %d\nscope = {TARGET_SCOPE}"),
    )?;
    let users = ["alice", "bob"];
    let env = Env::with_servers(
        "xoauth2",
        &users,
        "slice_messages = 20",
        (&source_conf, PASSWORD),
        &target_conf,
    )?;

    // The manifest holds no password at all: the source reads its token from a file,
    // the target asks the token endpoint with the app's secret (in a file, by reference).
    let token_file = env.dir().join("source-token");
    std::fs::write(&token_file, "src-token-1\n")?;
    lock(&idp.source_tokens).push("src-token-1".into());
    let secret_file = env.dir().join("client-secret");
    std::fs::write(&secret_file, CLIENT_SECRET)?;
    let text = std::fs::read_to_string(&env.manifest)?
        .replace("password = \"env:MH_SOURCE_PW\"\n", "")
        .replacen(
            "tls = \"implicit\"\n",
            &format!(
                "tls = \"implicit\"\nlogin = \"xoauth2\"\noauth_token_file = \"{}\"\n",
                token_file.display()
            ),
            1,
        )
        .replacen(
            "password = \"env:MH_TARGET_PW\"\n",
            &format!(
                "login = \"xoauth2\"\noauth_token_url = \"{base}/token\"\n\
                 oauth_client_id = \"{CLIENT_ID}\"\noauth_client_secret = \"file:{}\"\n\
                 oauth_scope = \"{TARGET_SCOPE}\"\n",
                secret_file.display()
            ),
            1,
        );
    assert!(!text.contains("password"), "{text}");
    std::fs::write(&env.manifest, text)?;

    let corpora: Vec<Corpus> = vec![corpus::standard(41, 8), corpus::standard(42, 16)];
    for (u, c) in users.iter().zip(&corpora) {
        env.seed(u, c).await?;
    }
    env.spawn_worker(&["--concurrency", "2"], &[]);

    // Pass 1: everything, byte for byte.
    let out = env.migrate();
    assert!(
        out.status.success(),
        "first pass:\n{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let ledger = env.ledger().await?;
    let p1 = ledger.progress(&env.migration, 1).await?;
    let mut before: Vec<MailboxSnapshot> = Vec::new();
    for (u, c) in users.iter().zip(&corpora) {
        let target = env.target_snapshot(u).await?;
        assert_same(&env.source_snapshot(u).await?, &target);
        assert_eq!(target.message_count(), c.message_count(), "{u}: each once");
        assert_eq!(progress_of(&p1, u).copied_msgs, c.message_count() as u64);
        assert_eq!(progress_of(&p1, u).failed_msgs, 0, "{u}");
        before.push(target);
    }
    assert!(
        idp.checks("source", "src-token-1") > 0,
        "the source checked the file's token"
    );
    let minted = idp.minted();
    assert!(!minted.is_empty(), "the target's token came from the grant");
    assert!(
        minted.iter().any(|t| idp.checks("target", t) > 0),
        "the target checked the granted token"
    );

    // The token in the file is rotated (a refresher's job): the old one is revoked.
    lock(&idp.source_tokens).clear();
    lock(&idp.source_tokens).push("src-token-2".into());
    std::fs::write(&token_file, "src-token-2")?;

    // Pass 2: nothing new, nothing copied, the target unchanged.
    let out = env.migrate();
    assert!(
        out.status.success(),
        "second pass:\n{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let p2 = ledger.progress(&env.migration, 2).await?;
    assert_eq!(
        p2.tasks_total, 0,
        "a pass with nothing new publishes nothing"
    );
    for (u, b) in users.iter().zip(&before) {
        assert_eq!(progress_of(&p2, u).copied_msgs, 0, "{u}");
        assert_eq!(&env.target_snapshot(u).await?, b, "{u}: target changed");
    }
    assert!(
        idp.checks("source", "src-token-2") > 0,
        "the new token was read"
    );

    // New mail: the running worker logs in with the rotated token and copies just that.
    let fresh = corpus::standard(99, 8);
    let delta = Corpus {
        folders: vec![(
            "INBOX".into(),
            fresh.folder("INBOX").expect("INBOX")[..3].to_vec(),
        )],
    };
    env.seed("alice", &delta).await?;
    let out = env.migrate();
    assert!(
        out.status.success(),
        "third pass:\n{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let p3 = ledger.progress(&env.migration, 3).await?;
    assert_eq!(
        progress_of(&p3, "alice").copied_msgs,
        3,
        "exactly the new mail"
    );
    assert_eq!(progress_of(&p3, "bob").copied_msgs, 0);
    assert_same(
        &env.source_snapshot("alice").await?,
        &env.target_snapshot("alice").await?,
    );
    assert_eq!(env.target_snapshot("bob").await?, before[1]);

    let mut secrets = idp.minted();
    secrets.extend(["src-token-1", "src-token-2", CLIENT_SECRET].map(String::from));
    assert_no_secrets(&format!("{}{}", show(&out), env.worker_logs()), &secrets);
    Ok(())
}
