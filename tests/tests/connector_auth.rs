//! Logins without the mailbox's password, against a real Dovecot from the kit
//! ([`AuthDovecot`]): master users (SASL PLAIN with an authorization identity, and
//! Dovecot's `user*master` LOGIN) and XOAUTH2 with tokens that Dovecot's `oauth2` passdb
//! checks at an introspection endpoint this test serves (axum on 127.0.0.1). The token
//! endpoint for the client credentials flow is served here too.
//!
//! Server configs come from manifest text through `Manifest::parse`, so the `login`
//! fields are exercised end to end.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::imap::{ImapSession, connect};
use mailhaul_proto::ErrorClass;
use mailhaul_proto::manifest::{Manifest, ServerConfig};
use mailhaul_tests::kit::AuthDovecot;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const MASTER_PW: &str = "master-secret-pw";

/// The tokens the introspection endpoint accepts (token -> user), and the token
/// endpoint's state.
#[derive(Default)]
struct Idp {
    accepted: Mutex<HashMap<String, String>>,
    /// Client credentials requests received.
    token_requests: AtomicUsize,
    /// `expires_in` of the tokens handed out.
    expires_in: AtomicUsize,
    /// Which user the minted tokens are for.
    mint_for: Mutex<String>,
}

impl Idp {
    fn accept(&self, token: &str, user: &str) {
        lock(&self.accepted).insert(token.to_owned(), user.to_owned());
    }

    fn revoke_all(&self) {
        lock(&self.accepted).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// RFC 7662-style introspection as Dovecot's `introspection_mode = post` calls it.
async fn introspect(
    State(idp): State<Arc<Idp>>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let token = form.get("token").cloned().unwrap_or_default();
    match lock(&idp.accepted).get(&token) {
        Some(user) => Json(json!({"active": true, "username": user})),
        None => Json(json!({"active": false})),
    }
}

/// Client credentials (RFC 6749 §4.4): client "mailhaul" with secret "cc-secret".
async fn token(
    State(idp): State<Arc<Idp>>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let n = idp.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" || field("scope").is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "bad form"})),
        );
    }
    if field("client_id") != "mailhaul" || field("client_secret") != "cc-secret" {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"
            })),
        );
    }
    let minted = format!("cc-token-{n}");
    let user = lock(&idp.mint_for).clone();
    idp.accept(&minted, &user);
    let expires_in = idp.expires_in.load(Ordering::SeqCst);
    (
        StatusCode::OK,
        Json(json!({"token_type": "Bearer", "expires_in": expires_in, "access_token": minted})),
    )
}

/// Serves the introspection and token endpoints on a free loopback port.
async fn serve_idp() -> (Arc<Idp>, String) {
    let idp = Arc::new(Idp::default());
    idp.expires_in.store(3600, Ordering::SeqCst);
    let app = Router::new()
        .route("/introspect", post(introspect))
        .route("/token", post(token))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the idp");
    let addr = listener.local_addr().expect("idp address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("idp serves");
    });
    (idp, format!("http://{addr}"))
}

/// A temp dir for secret and token files, kept for the test's duration.
fn files() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `[source]` from manifest text: plain IMAP to `port` plus the `login` lines.
fn server(port: u16, login_lines: &str, dir: &Path) -> ServerConfig {
    let text = format!(
        "tenant = \"t\"\n[source]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\n{login_lines}\n\
         [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\npassword = \"env:UNUSED\"\n\
         [[mailbox]]\nemail = \"alice@example.com\"\n"
    );
    match Manifest::parse(&text, &dir.join("manifest.toml")) {
        Ok((m, _)) => m.source,
        Err(p) => panic!("test manifest:\n{p}\n{text}"),
    }
}

fn master_lines(method: &str, dir: &Path, password: &str) -> String {
    let file = dir.join(format!("master-pw-{method}"));
    std::fs::write(&file, password).expect("write the master password file");
    format!(
        "login = \"{method}\"\nmaster_user = \"admin\"\npassword = \"file:{}\"",
        file.display()
    )
}

/// Dovecot with users alice and bob, master user admin; alice has a folder of her own.
async fn dovecot(introspection: Option<&str>) -> AuthDovecot {
    let d = AuthDovecot::start(&[("admin", MASTER_PW)], introspection).expect("start dovecot");
    d.add_user("alice", "alice-pw").expect("add alice");
    d.add_user("bob", "bob-pw").expect("add bob");
    let plain = server(d.imap_port(), "password = \"env:UNUSED\"", Path::new("/"));
    let mut s = connect(&plain, "alice", &pw("alice-pw"))
        .await
        .expect("alice logs in with her password");
    s.create_folder("AliceOnly").await.expect("create");
    s.logout().await.expect("logout");
    d
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

async fn folders(s: &mut ImapSession) -> Vec<String> {
    let mut names: Vec<String> = s
        .list_folders()
        .await
        .expect("list")
        .into_iter()
        .map(|f| f.raw_name)
        .collect();
    names.sort();
    names
}

/// The mailbox password handed to connect for master and xoauth2 logins: it must not
/// matter, so it is deliberately wrong.
fn unused() -> SecretString {
    pw("not-the-password")
}

fn assert_auth_refusal(err: &ConnectorError, user: &str, method: &str, secrets: &[&str]) {
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let text = format!("{err} {err:?}");
    assert!(text.contains(user), "names the user: {text}");
    assert!(text.contains(method), "names the method: {text}");
    for s in secrets {
        assert!(!text.contains(s), "leaks a secret: {text}");
    }
}

#[tokio::test]
async fn master_logins_see_the_users_mailbox() {
    let d = dovecot(None).await;
    let dir = files();
    // "master": SASL PLAIN with authzid; "master-star": LOGIN "alice*admin".
    for method in ["master", "master-star"] {
        let lines = master_lines(method, dir.path(), MASTER_PW);
        let cfg = server(d.imap_port(), &lines, dir.path());
        let mut alice = connect(&cfg, "alice", &unused())
            .await
            .unwrap_or_else(|e| panic!("{method} login as alice: {e}"));
        assert!(
            folders(&mut alice).await.contains(&"AliceOnly".to_owned()),
            "{method}: alice's mailbox"
        );
        alice.logout().await.expect("logout");
        let mut bob = connect(&cfg, "bob", &unused())
            .await
            .unwrap_or_else(|e| panic!("{method} login as bob: {e}"));
        assert_eq!(
            folders(&mut bob).await,
            ["INBOX"],
            "{method}: bob's mailbox"
        );
        bob.logout().await.expect("logout");
    }
}

#[tokio::test]
async fn a_wrong_master_password_is_an_auth_error() {
    let d = dovecot(None).await;
    let dir = files();
    for (method, named) in [
        ("master", "AUTHENTICATE PLAIN as master user \"admin\""),
        ("master-star", "alice*admin"),
    ] {
        let cfg = server(
            d.imap_port(),
            &master_lines(method, dir.path(), "wrong-master-pw"),
            dir.path(),
        );
        let err = connect(&cfg, "alice", &unused())
            .await
            .expect_err("wrong master password");
        assert_auth_refusal(&err, "alice", named, &["wrong-master-pw", MASTER_PW]);
    }
}

#[tokio::test]
async fn xoauth2_with_a_token_file_logs_in_refuses_bad_tokens_and_rereads_the_file() {
    let (idp, base) = serve_idp().await;
    let d = dovecot(Some(&format!("{base}/introspect"))).await;
    idp.accept("good-token-1", "alice");
    let dir = files();
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, "good-token-1\n").expect("write token");
    let cfg = server(
        d.imap_port(),
        &format!(
            "login = \"xoauth2\"\noauth_token_file = \"{}\"",
            token_file.display()
        ),
        dir.path(),
    );

    let mut alice = connect(&cfg, "alice", &unused())
        .await
        .expect("xoauth2 login");
    assert!(folders(&mut alice).await.contains(&"AliceOnly".to_owned()));
    alice.logout().await.expect("logout");

    // The same token is not bob's.
    let err = connect(&cfg, "bob", &unused())
        .await
        .expect_err("alice's token for bob");
    assert_auth_refusal(&err, "bob", "AUTHENTICATE XOAUTH2", &["good-token-1"]);

    std::fs::write(&token_file, "forged-token").expect("write token");
    let err = connect(&cfg, "alice", &unused())
        .await
        .expect_err("bad token");
    assert_auth_refusal(&err, "alice", "AUTHENTICATE XOAUTH2", &["forged-token"]);

    // A refresher replaced the file: the next login uses the new token.
    idp.accept("good-token-2", "alice");
    std::fs::write(&token_file, "good-token-2").expect("write token");
    let alice = connect(&cfg, "alice", &unused())
        .await
        .expect("the new token from the file");
    alice.logout().await.expect("logout");

    std::fs::remove_file(&token_file).expect("rm token");
    let err = connect(&cfg, "alice", &unused())
        .await
        .expect_err("no token file");
    assert_auth_refusal(&err, "alice", "oauth token file", &[]);
}

#[tokio::test]
async fn xoauth2_client_credentials_caches_renews_and_reports_bad_secrets() {
    let (idp, base) = serve_idp().await;
    let d = dovecot(Some(&format!("{base}/introspect"))).await;
    *lock(&idp.mint_for) = "alice".to_owned();
    let dir = files();
    let secret_file = dir.path().join("cc-secret");
    std::fs::write(&secret_file, "cc-secret").expect("write secret");
    // Each scope gets its own provider (and cache) in this process.
    let cfg = |scope: &str, secret: &PathBuf| {
        server(
            d.imap_port(),
            &format!(
                "login = \"xoauth2\"\noauth_token_url = \"{base}/token\"\n\
                 oauth_client_id = \"mailhaul\"\noauth_client_secret = \"file:{}\"\n\
                 oauth_scope = \"{scope}\"",
                secret.display()
            ),
            dir.path(),
        )
    };
    let requests = || idp.token_requests.load(Ordering::SeqCst);

    // Cached: two logins, one token request.
    let long = cfg("imap-long", &secret_file);
    for _ in 0..2 {
        let s = connect(&long, "alice", &unused()).await.expect("login");
        s.logout().await.expect("logout");
    }
    assert_eq!(requests(), 1, "the token is cached");

    // The server stops accepting it: the refusal drops the cached token and a fresh
    // one is fetched and used on the same connection.
    idp.revoke_all();
    let s = connect(&long, "alice", &unused())
        .await
        .expect("login with a renewed token");
    s.logout().await.expect("logout");
    assert_eq!(requests(), 2, "one renewal after the refusal");

    // Tokens that expire within five minutes are renewed before each use.
    idp.expires_in.store(300, Ordering::SeqCst);
    let short = cfg("imap-short", &secret_file);
    let before = requests();
    for _ in 0..2 {
        let s = connect(&short, "alice", &unused()).await.expect("login");
        s.logout().await.expect("logout");
    }
    assert_eq!(requests() - before, 2, "short-lived tokens are renewed");

    // A wrong client secret: a clear, permanent error.
    let wrong = dir.path().join("wrong-secret");
    std::fs::write(&wrong, "not-the-cc-secret").expect("write secret");
    let err = connect(&cfg("imap-wrong", &wrong), "alice", &unused())
        .await
        .expect_err("wrong client secret");
    assert_auth_refusal(
        &err,
        "alice",
        "invalid_client: AADSTS7000215",
        &["not-the-cc-secret"],
    );
    assert!(err.to_string().contains("no xoauth2 token"), "{err}");
}

/// What the scripted responder saw: command lines, and the decoded SASL responses.
type Transcript = Vec<String>;

/// A one-connection IMAP responder for what Dovecot cannot show: servers without
/// SASL-IR, without a mechanism. It speaks only CAPABILITY (advertising `caps`),
/// AUTHENTICATE (no initial response: it asks with `+ `; a response equal to `accept`
/// succeeds, any other gets Gmail's JSON challenge, then NO) and LOGOUT.
async fn responder(
    caps: &'static str,
    accept: &'static [u8],
) -> (u16, tokio::task::JoinHandle<Transcript>) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut seen = Transcript::new();
        write
            .write_all(b"* OK scripted ready\r\n")
            .await
            .expect("greet");
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line.clone());
            let (tag, command) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let reply = match command.to_ascii_uppercase().as_str() {
                "CAPABILITY" => format!("* CAPABILITY IMAP4rev1 {caps}\r\n{tag} OK done\r\n"),
                // Without SASL-IR the command is only the mechanism's name.
                c if c.starts_with("AUTHENTICATE ") && c.matches(' ').count() == 1 => {
                    write.write_all(b"+ \r\n").await.expect("ask");
                    let answer = lines.next_line().await.expect("read").unwrap_or_default();
                    let decoded = B64.decode(answer.trim()).expect("base64 response");
                    seen.push(String::from_utf8_lossy(&decoded).into_owned());
                    if decoded == accept {
                        format!("{tag} OK logged in\r\n")
                    } else {
                        let json = r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
                        let challenge = format!("+ {}\r\n", B64.encode(json));
                        write
                            .write_all(challenge.as_bytes())
                            .await
                            .expect("challenge");
                        let empty = lines.next_line().await.expect("read").unwrap_or_default();
                        seen.push(format!("after challenge: {empty:?}"));
                        format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
                    }
                }
                "LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n"),
                _ => format!("{tag} BAD not scripted\r\n"),
            };
            write.write_all(reply.as_bytes()).await.expect("reply");
        }
        seen
    });
    (port, task)
}

/// Just the commands of a transcript, tags removed.
fn commands(seen: &Transcript) -> Vec<&str> {
    seen.iter()
        .filter_map(|l| l.split_once(' ').map(|(_, c)| c))
        .filter(|c| c.chars().next().is_some_and(|ch| ch.is_ascii_uppercase()))
        .collect()
}

#[tokio::test]
async fn without_sasl_ir_the_response_follows_the_first_challenge() {
    let dir = files();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-1").expect("write token");
    let xoauth2 = format!(
        "login = \"xoauth2\"\noauth_token_file = \"{}\"",
        token.display()
    );
    let (port, seen) = responder(
        "AUTH=PLAIN AUTH=XOAUTH2",
        b"user=alice@x.example\x01auth=Bearer tok-1\x01\x01",
    )
    .await;
    let s = connect(
        &server(port, &xoauth2, dir.path()),
        "alice@x.example",
        &unused(),
    )
    .await
    .expect("xoauth2 without SASL-IR");
    s.logout().await.expect("logout");
    let seen = seen.await.expect("responder");
    assert_eq!(
        commands(&seen),
        ["CAPABILITY", "AUTHENTICATE XOAUTH2", "CAPABILITY", "LOGOUT"],
        "{seen:?}"
    );
    assert_eq!(seen[2], "user=alice@x.example\x01auth=Bearer tok-1\x01\x01");

    // A refused token: the JSON challenge is answered with an empty line, then NO.
    let (port, seen) = responder("AUTH=XOAUTH2", b"never").await;
    let err = connect(
        &server(port, &xoauth2, dir.path()),
        "alice@x.example",
        &unused(),
    )
    .await
    .expect_err("refused token");
    assert_auth_refusal(&err, "alice@x.example", "Invalid credentials", &["tok-1"]);
    assert!(err.to_string().contains(r#""status":"400""#), "{err}");
    let seen = seen.await.expect("responder");
    assert!(
        seen.contains(&"after challenge: \"\"".to_owned()),
        "{seen:?}"
    );

    // SASL PLAIN with an authorization identity (RFC 4616), no SASL-IR either.
    let lines = master_lines("master", dir.path(), MASTER_PW);
    let (port, seen) = responder("AUTH=PLAIN", b"alice\0admin\0master-secret-pw").await;
    let s = connect(&server(port, &lines, dir.path()), "alice", &unused())
        .await
        .expect("plain with authzid");
    s.logout().await.expect("logout");
    let seen = seen.await.expect("responder");
    assert_eq!(commands(&seen)[1], "AUTHENTICATE PLAIN", "{seen:?}");
}

#[tokio::test]
async fn a_mechanism_the_server_lacks_is_not_tried() {
    let dir = files();
    std::fs::write(dir.path().join("token"), "tok").expect("write token");
    let xoauth2 = "login = \"xoauth2\"\noauth_token_file = \"token\"";
    let (port, seen) = responder("AUTH=PLAIN", b"").await;
    let err = connect(&server(port, xoauth2, dir.path()), "alice", &unused())
        .await
        .expect_err("no AUTH=XOAUTH2");
    assert_auth_refusal(&err, "alice", "does not advertise", &["tok"]);
    assert!(
        err.to_string().contains("AUTH=PLAIN"),
        "lists what it has: {err}"
    );
    let seen = seen.await.expect("responder");
    assert_eq!(commands(&seen), ["CAPABILITY"], "{seen:?}");
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_transient() {
    let dir = files();
    std::fs::write(dir.path().join("secret"), "s").expect("write secret");
    // A port nobody listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let lines = format!(
        "login = \"xoauth2\"\noauth_token_url = \"http://127.0.0.1:{closed}/token\"\n\
         oauth_client_id = \"c\"\noauth_client_secret = \"file:secret\"\noauth_scope = \"s\""
    );
    let (port, _seen) = responder("AUTH=XOAUTH2", b"").await;
    let err = connect(&server(port, &lines, dir.path()), "alice", &unused())
        .await
        .expect_err("no token endpoint");
    assert!(matches!(err, ConnectorError::Connect { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_fetches_share_one_token_request() {
    use mailhaul_connectors::oauth::TokenProvider;
    use mailhaul_proto::manifest::{SecretRef, TokenSource};
    use secrecy::ExposeSecret as _;

    let (idp, base) = serve_idp().await;
    let dir = files();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "cc-secret").expect("write secret");
    let provider = Arc::new(TokenProvider::new(TokenSource::ClientCredentials {
        url: format!("{base}/token"),
        client_id: "mailhaul".into(),
        client_secret: SecretRef::File(secret),
        scope: "imap".into(),
    }));
    let fetches: Vec<_> = (0..8)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.token().await.map(|t| t.expose_secret().to_owned()) })
        })
        .collect();
    for f in fetches {
        let token = f.await.expect("task").expect("token");
        assert_eq!(token, "cc-token-1");
    }
    assert_eq!(idp.token_requests.load(Ordering::SeqCst), 1);
}
