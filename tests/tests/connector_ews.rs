//! The EWS target client (`mailhaul_connectors::ews`) against the Exchange emulator:
//! each way of logging in, the folder tree (nested, case-insensitive, racing creators,
//! distinguished folders), non-draft batch imports with their state, per-item failures,
//! and how throttling and faults are classified.
//!
//! The emulator speaks EWS with OAuth only (as Exchange Online does). The password
//! logins of Exchange Server are tested through [`BasicFront`], a small front end that
//! checks Basic credentials as IIS would and hands the request on with a token; for a
//! login as the mailbox's own user it adds the impersonation of that user, which is what
//! "the logged-on user's mailbox" means to the emulator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use mailhaul_connectors::body::{BodySink, Mime};
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::ews::{EwsAuth, EwsClient, EwsConfig, EwsRole};
use mailhaul_connectors::gate::{Admit, Outcome, RequestGate};
use mailhaul_connectors::graph::ImportItem;
use mailhaul_connectors::oauth::TokenProvider;
use mailhaul_connectors::special::SpecialUse;
use mailhaul_proto::ErrorClass;
use mailhaul_proto::manifest::{SecretRef, TokenSource};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig, Fault, FlagStatus, Origin};
use secrecy::SecretString;

const UPN: &str = "bob@contoso.com";
const BOB_PASSWORD: &str = "bob-secret-pw";
const SERVICE: &str = "svc-migrate@contoso.com";
const SERVICE_PASSWORD: &str = "svc-secret-pw";

fn mime(message_id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: hi {message_id}\r\n\
         Date: Mon, 04 Mar 2019 10:00:00 +0000\r\nMessage-ID: <{message_id}>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn internal_date() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2019-03-04T10:05:00Z")
        .expect("valid date")
        .with_timezone(&Utc)
}

/// An unread, unflagged message without keywords, received at [`internal_date`].
fn plain(mime: &[u8]) -> ImportItem<'_> {
    ImportItem {
        mime: mime.into(),
        received: internal_date(),
        seen: false,
        flagged: false,
        keywords: &[],
    }
}

fn path(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

fn assert_refused(err: &ConnectorError, class: ErrorClass, says: &str) {
    assert_eq!(err.class(), class, "{err}");
    assert!(err.to_string().contains(says), "{err} should say {says:?}");
}

/// What [`BasicFront`] saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// The Basic login, if any.
    user: Option<String>,
    /// Whether the body carried `ExchangeImpersonation`.
    impersonates: bool,
    /// `X-AnchorMailbox`.
    anchor: Option<String>,
}

/// A password-checking front end before the emulator's EWS endpoint (see the module
/// docs). Bearer requests pass through unchanged, so it can watch every kind of login.
#[derive(Clone)]
struct BasicFront {
    target: String,
    token: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn front(State(f): State<BasicFront>, headers: HeaderMap, body: String) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = text(header::AUTHORIZATION).unwrap_or_default();
    let login = authorization
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let user = match login.as_deref().and_then(|l| l.split_once(':')) {
        Some((user, password))
            if [(UPN, BOB_PASSWORD), (SERVICE, SERVICE_PASSWORD)].contains(&(user, password)) =>
        {
            Some(user.to_owned())
        }
        Some(_) => {
            let mut refused = (StatusCode::UNAUTHORIZED, "").into_response();
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"mail.contoso.com\""),
            );
            return refused;
        }
        None => None,
    };
    let impersonates = body.contains("ExchangeImpersonation");
    f.seen.lock().expect("not poisoned").push(Seen {
        user: user.clone(),
        impersonates,
        anchor: text(header::HeaderName::from_static("x-anchormailbox")),
    });
    // The anchor goes on as sent; a Basic login as the mailbox's own user becomes
    // impersonation of it, so it is anchored on itself (the emulator requires the header
    // with impersonation, as Exchange Online does).
    let mut anchor = text(header::HeaderName::from_static("x-anchormailbox"));
    let (authorization, body) = match user {
        Some(own) if !impersonates => {
            anchor = Some(own.clone());
            // Relies on the client's `soap:`/`t:` prefixes; fine for a test front end.
            let sid = format!(
                "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{own}\
                 </t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></soap:Header>"
            );
            (
                format!("Bearer {}", f.token),
                body.replacen("</soap:Header>", &sid, 1),
            )
        }
        Some(_) => (format!("Bearer {}", f.token), body),
        None => (authorization, body),
    };
    let mut forward = reqwest::Client::new()
        .post(&f.target)
        .header(header::AUTHORIZATION, authorization)
        .header(header::CONTENT_TYPE, "text/xml; charset=utf-8");
    if let Some(anchor) = anchor {
        forward = forward.header("x-anchormailbox", anchor);
    }
    let forwarded = forward.body(body).send().await;
    match forwarded {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, r.text().await.unwrap_or_default()).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// An emulator with Bob's mailbox, the Basic front end, and an OAuth client.
struct Setup {
    emu: Emulator,
    client: EwsClient,
    front_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _front: tokio::task::JoinHandle<()>,
}

fn config(url: &str) -> EwsConfig {
    EwsConfig {
        url: url.to_owned(),
        server_version: "Exchange2013_SP1".to_owned(),
        ca_file: None,
        tls_verify: true,
        categories: Default::default(),
    }
}

impl Setup {
    async fn start(emu_config: EmulatorConfig) -> anyhow::Result<Self> {
        let emu = Emulator::start(emu_config).await?;
        emu.add_mailbox(UPN);
        let target = format!("{}/EWS/Exchange.asmx", emu.base_url());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let front_url = format!("http://{}/EWS/Exchange.asmx", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/EWS/Exchange.asmx", post(front))
            .with_state(BasicFront {
                target,
                token: emu.issue_ews_token(),
                seen: Arc::clone(&seen),
            });
        let front = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = Self::oauth_client(&emu, &emu.config().client_secret.clone())?;
        Ok(Setup {
            emu,
            client,
            front_url,
            seen,
            _front: front,
        })
    }

    async fn default() -> anyhow::Result<Self> {
        Self::start(EmulatorConfig::default()).await
    }

    /// A client straight to the emulator, logging in with client credentials.
    fn oauth_client(emu: &Emulator, secret: &SecretString) -> anyhow::Result<EwsClient> {
        let url = format!("{}/EWS/Exchange.asmx", emu.base_url());
        Ok(EwsClient::new(&config(&url), oauth(emu, secret), UPN)?)
    }

    /// A client through the front end (which passes bearer tokens on unchanged).
    fn front_client(&self, auth: EwsAuth) -> anyhow::Result<EwsClient> {
        Ok(EwsClient::new(&config(&self.front_url), auth, UPN)?)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

/// Client-credentials login to the emulator's token endpoint, with its own token cache.
fn oauth(emu: &Emulator, secret: &SecretString) -> EwsAuth {
    let cfg = emu.config();
    EwsAuth::OAuth(Arc::new(TokenProvider::new(
        TokenSource::ClientCredentials {
            url: format!("{}/{}/oauth2/v2.0/token", emu.base_url(), cfg.tenant),
            client_id: cfg.client_id.clone(),
            client_secret: SecretRef::Inline(secret.clone()),
            scope: "https://outlook.office365.com/.default".into(),
        },
    )))
}

/// Waits (at most 10 s) until `ready`.
async fn wait_for(ready: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ensure!(ready(), "the requests never lined up at the emulator");
    Ok(())
}

/// Waits until `ready`, then releases held requests (also when it timed out).
async fn release_when(emu: &Emulator, ready: impl Fn() -> bool) -> anyhow::Result<()> {
    let came = wait_for(ready).await;
    emu.release();
    came
}

#[tokio::test]
async fn each_login_kind_reaches_the_mailbox() -> anyhow::Result<()> {
    let s = Setup::default().await?;

    // Basic as the mailbox's own user: no impersonation, no anchor header.
    let own = s.front_client(EwsAuth::Basic {
        user: UPN.into(),
        password: SecretString::from(BOB_PASSWORD),
    })?;
    let own_id = own.ensure_folder(&path(&["ByOwnUser"])).await?;
    // Basic as a service account impersonating Bob.
    let service = s.front_client(EwsAuth::Impersonation {
        user: SERVICE.into(),
        password: SecretString::from(SERVICE_PASSWORD),
    })?;
    let service_id = service.ensure_folder(&path(&["ByService"])).await?;
    let view = s.emu.mailbox(UPN);
    assert_eq!(
        view.folder("ByOwnUser").map(|f| f.id.as_str()),
        Some(own_id.as_str())
    );
    assert_eq!(
        view.folder("ByService").map(|f| f.id.as_str()),
        Some(service_id.as_str())
    );

    let seen = s.seen();
    ensure!(!seen.is_empty(), "nothing went through the front end");
    for request in &seen {
        match request.user.as_deref() {
            Some(UPN) => ensure!(
                !request.impersonates && request.anchor.is_none(),
                "{request:?}"
            ),
            Some(SERVICE) => ensure!(
                request.impersonates && request.anchor.as_deref() == Some(UPN),
                "{request:?}"
            ),
            _ => anyhow::bail!("unexpected login {request:?}"),
        }
    }
    ensure!(seen.iter().any(|r| r.user.as_deref() == Some(UPN)));
    ensure!(seen.iter().any(|r| r.user.as_deref() == Some(SERVICE)));

    // OAuth through the front end too, to see its headers.
    let secret = s.emu.config().client_secret.clone();
    let through_front = s.front_client(oauth(&s.emu, &secret))?;
    through_front.folders().await?;
    let last = s.seen().pop().context("a request")?;
    ensure!(
        last.user.is_none() && last.impersonates && last.anchor.as_deref() == Some(UPN),
        "{last:?}"
    );

    // OAuth: the token is renewed after it expires (last: the front end's token dies too).
    let id = s.client.ensure_folder(&path(&["ByOAuth"])).await?;
    s.emu.inject(Fault::ExpireTokens);
    assert_eq!(s.client.ensure_folder(&path(&["ByOAuth"])).await?, id);
    Ok(())
}

#[tokio::test]
async fn bad_credentials_are_auth_errors_without_secrets() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let wrong = "wrong-pw-0451";
    for auth in [
        EwsAuth::Basic {
            user: UPN.into(),
            password: SecretString::from(wrong),
        },
        EwsAuth::Impersonation {
            user: SERVICE.into(),
            password: SecretString::from(wrong),
        },
    ] {
        let client = s.front_client(auth)?;
        let debug = format!("{client:?}");
        assert!(
            !debug.contains(wrong) && debug.contains("contoso.com"),
            "{debug}"
        );
        let err = client.folders().await.expect_err("wrong password");
        assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
        assert_refused(&err, ErrorClass::Permanent, "http 401");
        assert!(!err.to_string().contains(wrong) && !format!("{err:?}").contains(wrong));
    }

    let bad_secret = SecretString::from("not-the-client-secret");
    let client = Setup::oauth_client(&s.emu, &bad_secret)?;
    assert!(!format!("{client:?}").contains("not-the-client-secret"));
    let err = client.folders().await.expect_err("bad client secret");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert_refused(&err, ErrorClass::Permanent, "invalid_client");

    // Nor does the good client's secret, once it holds a token.
    s.client.folders().await?;
    let debug = format!("{:?}", s.client);
    assert!(
        !debug.contains("emulator-secret") && !debug.contains("eyJ"),
        "{debug}"
    );
    Ok(())
}

#[tokio::test]
async fn folder_tree_is_created_and_matched_case_insensitively() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let nested = path(&["Projects", "2024", "Café ☕ <&>"]);
    let id = s.client.ensure_folder(&nested).await?;
    let view = s.emu.mailbox(UPN);
    let folder = view
        .folder("Projects/2024/Café ☕ <&>")
        .context("nested folder created")?;
    assert_eq!(folder.id, id);

    // Case variants are the same folders; nothing new is created.
    let again = s
        .client
        .ensure_folder(&path(&["PROJECTS", "2024", "CAFÉ ☕ <&>"]))
        .await?;
    assert_eq!(again, id);
    let inbox = s.client.ensure_folder(&path(&["inbox"])).await?;
    assert_eq!(
        Some(inbox.as_str()),
        view.folder("Inbox").map(|f| f.id.as_str())
    );
    assert_eq!(s.emu.mailbox(UPN).folders.len(), view.folders.len());
    let root = s.client.ensure_folder(&[]).await?;
    assert_eq!(Some(root.as_str()), view.folder("").map(|f| f.id.as_str()));
    let err = s
        .client
        .ensure_folder(&path(&["a", " "]))
        .await
        .expect_err("empty name");
    assert_refused(&err, ErrorClass::Permanent, "empty name at level 2");

    // Racing creators with different case: both list before either creates (the
    // emulator holds the listings), so one gets ErrorFolderExists and takes the other's.
    s.emu.hold();
    let (shared, upper) = (path(&["Shared"]), path(&["SHARED"]));
    let (a, b, lined_up) = tokio::join!(
        s.client.ensure_folder(&shared),
        s.client.ensure_folder(&upper),
        release_when(&s.emu, || s.emu.ews_in_flight(UPN) == 2)
    );
    lined_up?;
    assert_eq!(a?, b?);
    let shared = s.emu.mailbox(UPN);
    let count = shared
        .folders
        .iter()
        .filter(|f| f.path.eq_ignore_ascii_case("Shared"))
        .count();
    assert_eq!(count, 1);
    Ok(())
}

#[tokio::test]
async fn folders_list_the_tree_with_roles() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let deep = s
        .client
        .ensure_folder(&path(&["Inbox", "Clients", "ACME"]))
        .await?;
    let folders = s.client.folders().await?;
    let view = s.emu.mailbox(UPN);
    let role = |r: EwsRole| {
        folders
            .iter()
            .find(|f| f.role == Some(r))
            .map(|f| (f.path.join("/"), f.id.clone()))
    };
    for (r, want) in [
        (EwsRole::Inbox, "Inbox"),
        (EwsRole::Special(SpecialUse::Sent), "Sent Items"),
        (EwsRole::Special(SpecialUse::Trash), "Deleted Items"),
        (EwsRole::Special(SpecialUse::Drafts), "Drafts"),
        (EwsRole::Special(SpecialUse::Junk), "Junk Email"),
        (EwsRole::Special(SpecialUse::Archive), "Archive"),
    ] {
        let id = view.folder(want).map(|f| f.id.clone());
        assert_eq!(role(r), Some((want.to_owned(), id.context(want)?)), "{r:?}");
    }
    let acme = folders
        .iter()
        .find(|f| f.path == ["Inbox", "Clients", "ACME"])
        .context("nested folder listed")?;
    assert_eq!((acme.id.as_str(), acme.role), (deep.as_str(), None));
    // Every folder below msgfolderroot, and only those.
    let below: Vec<&str> = view
        .folders
        .iter()
        .filter(|f| !f.path.is_empty() && !f.path.starts_with('/'))
        .map(|f| f.path.as_str())
        .collect();
    let mut listed: Vec<String> = folders.iter().map(|f| f.path.join("/")).collect();
    let mut below: Vec<String> = below.into_iter().map(str::to_owned).collect();
    listed.sort();
    below.sort();
    assert_eq!(listed, below);
    Ok(())
}

#[tokio::test]
async fn a_batch_is_imported_as_received_mail_with_its_state() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let folder = s.client.ensure_folder(&path(&["Imported"])).await?;
    let work = vec![
        "Work".to_owned(),
        "\\Seen".to_owned(),
        "Größe & <Co>".to_owned(),
    ];
    let binary: Vec<u8> = [
        mime("m3@example.com", "").as_slice(),
        &[0xE2, 0x98, 0x95, b'\r', b'\n'],
    ]
    .concat();
    let (m1, m2) = (mime("m1@example.com", "one"), mime("m2@example.com", "two"));
    // A 6 MB message without a Message-ID, spooled to a file (over the 4 MiB
    // threshold), sent with a Message-ID line in front: its base64 is streamed.
    let big_text: String = (0..100_000)
        .map(|i| format!("line {i:06} of a large attachment-like body.......\r\n"))
        .collect();
    let big = format!("Subject: big\r\nFrom: a@example.com\r\n\r\n{big_text}");
    let mut sink = BodySink::new();
    for piece in big.as_bytes().chunks(65_536) {
        sink.write(piece).await?;
    }
    let big_body = sink.finish().await?;
    anyhow::ensure!(big_body.is_spooled(), "the big body is spooled");
    let prefix = b"Message-ID: <m4@example.com>\r\n";
    let items = [
        ImportItem {
            mime: Mime::Bytes(&m1),
            received: internal_date(),
            seen: true,
            flagged: true,
            keywords: &work,
        },
        ImportItem {
            mime: Mime::Bytes(&m2),
            received: internal_date() - chrono::Duration::days(400),
            seen: false,
            flagged: false,
            keywords: &[],
        },
        ImportItem {
            mime: Mime::Bytes(&binary),
            received: internal_date(),
            seen: true,
            flagged: false,
            keywords: &[],
        },
        ImportItem {
            mime: Mime::Body {
                prefix,
                body: &big_body,
            },
            received: internal_date(),
            seen: false,
            flagged: true,
            keywords: &[],
        },
    ];
    let results = s.client.create_items(&folder, &items).await?;
    assert_eq!(results.len(), 4);
    let view = s.emu.mailbox(UPN);
    for (result, item) in results.into_iter().zip(&items) {
        let id = result?;
        let stored = view.item(&id).context("item stored")?;
        assert_eq!(stored.folder_path, "Imported");
        assert_eq!(stored.origin, Origin::EwsMime);
        assert!(!stored.is_draft, "{id} is a draft");
        assert_eq!(stored.received, item.received);
        assert_eq!(stored.is_read, item.seen);
        let flag = if item.flagged {
            FlagStatus::Flagged
        } else {
            FlagStatus::NotFlagged
        };
        assert_eq!(stored.flag, flag);
        let sent = item.mime.whole().await?;
        assert!(
            stored.mime.as_deref() == Some(&sent[..]),
            "{id}: MIME byte-equal"
        );
    }
    let first = &view.items_in("Imported")[0];
    assert_eq!(first.categories, ["Work", "Größe & <Co>"]);
    assert!(view.items_in("Imported")[1].categories.is_empty());

    // A distinguished folder name works as the target too.
    let sent = s.client.create_items("sentitems", &items[..1]).await?;
    let id = sent.into_iter().next().context("one result")??;
    assert_eq!(
        s.emu.mailbox(UPN).item(&id).map(|i| i.folder_path.as_str()),
        Some("Sent Items")
    );
    assert!(s.client.create_items("inbox", &[]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_oversized_item_fails_alone() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig {
        ews_max_item_bytes: 1000,
        ..EmulatorConfig::default()
    })
    .await?;
    let big = mime("big@example.com", &"x".repeat(2000));
    let (a, c) = (mime("a@example.com", "a"), mime("c@example.com", "c"));
    let results = s
        .client
        .create_items("inbox", &[plain(&a), plain(&big), plain(&c)])
        .await?;
    let [first, second, third] =
        <[_; 3]>::try_from(results).map_err(|_| anyhow::anyhow!("3 results"))?;
    let (first, third) = (first?, third?);
    let err = second.expect_err("too big");
    assert_refused(&err, ErrorClass::Permanent, "ErrorMessageSizeExceeded");
    assert_refused(&err, ErrorClass::Permanent, "MaxReceiveSize");
    let view = s.emu.mailbox(UPN);
    let inbox: Vec<&str> = view
        .items_in("Inbox")
        .iter()
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(inbox, [first.as_str(), third.as_str()]);
    Ok(())
}

#[tokio::test]
async fn a_full_mailbox_is_a_permanent_refusal() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig {
        mailbox_quota_bytes: 100,
        ..EmulatorConfig::default()
    })
    .await?;
    let m = mime("q@example.com", "quota");
    let item = plain(&m);
    let results = s.client.create_items("inbox", &[item]).await?;
    let err = results
        .into_iter()
        .next()
        .context("one result")?
        .expect_err("quota");
    assert_refused(&err, ErrorClass::Permanent, "ErrorQuotaExceeded");
    assert_refused(&err, ErrorClass::Permanent, "is full");
    Ok(())
}

#[tokio::test]
async fn throttling_and_outages_are_classified() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig {
        ews_max_concurrency: 1,
        ..EmulatorConfig::default()
    })
    .await?;
    let m = mime("t@example.com", "t");
    let item = plain(&m);

    s.emu.inject(Fault::EwsServerBusy {
        count: 1,
        back_off_ms: 5250,
    });
    let err = s
        .client
        .create_items("inbox", &[item])
        .await
        .expect_err("busy");
    assert_refused(
        &err,
        ErrorClass::Throttled(Duration::from_millis(5250)),
        "ErrorServerBusy",
    );
    assert!(s.emu.mailbox(UPN).items.is_empty());

    s.emu.inject(Fault::Ews503 {
        count: 1,
        retry_after: Some(Duration::from_secs(7)),
    });
    let err = s.client.folders().await.expect_err("503");
    assert_refused(
        &err,
        ErrorClass::Throttled(Duration::from_secs(7)),
        "http 503",
    );
    s.emu.inject(Fault::Ews503 {
        count: 1,
        retry_after: None,
    });
    let err = s.client.folders().await.expect_err("503");
    assert_refused(&err, ErrorClass::Transient, "http 503");

    // One request at a time for this mailbox: the second gets ErrorExceededConnectionCount.
    s.emu.hold();
    let held = s.client.clone();
    let first = tokio::spawn(async move { held.ensure_folder(&[]).await });
    let lined_up = wait_for(|| s.emu.ews_in_flight(UPN) == 1).await;
    let second = s.client.folders().await;
    s.emu.release();
    lined_up?;
    first.await??;
    let err = second.expect_err("over the connection limit");
    assert_refused(
        &err,
        ErrorClass::Throttled(Duration::from_secs(1)),
        "ErrorExceededConnectionCount",
    );

    let ok = s.client.create_items("inbox", &[item]).await?;
    assert!(ok.into_iter().all(|r| r.is_ok()));
    Ok(())
}

#[tokio::test]
async fn uploads_are_found_by_message_id() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let folder = s.client.ensure_folder(&path(&["Found"])).await?;
    let m = mime("found.1@example.com", "x");
    let item = ImportItem {
        seen: true,
        ..plain(&m)
    };
    let id = s
        .client
        .create_items(&folder, &[item])
        .await?
        .into_iter()
        .next()
        .context("one result")??;
    for asked in ["found.1@example.com", "<found.1@example.com>"] {
        let found = s.client.find_by_message_id(&folder, asked).await?;
        assert_eq!(found.len(), 1, "{asked}");
        assert_eq!(found[0].id, id);
        assert_eq!(found[0].received, Some(internal_date()));
        assert!(!found[0].is_draft && found[0].complete);
    }
    assert!(
        s.client
            .find_by_message_id(&folder, "other@example.com")
            .await?
            .is_empty()
    );
    assert!(
        s.client
            .find_by_message_id("inbox", "found.1@example.com")
            .await?
            .is_empty()
    );
    Ok(())
}

/// A self-signed certificate for 127.0.0.1 (made with `openssl`) and a TLS front end
/// with it before the emulator's plain port. Returns the https EWS url and the PEM.
async fn tls_front(
    emu: &Emulator,
    dir: &std::path::Path,
) -> anyhow::Result<(String, std::path::PathBuf, tokio::task::JoinHandle<()>)> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{ServerConfig, crypto::aws_lc_rs};
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl")?;
    ensure!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let certs = CertificateDer::pem_file_iter(&cert)?.collect::<Result<Vec<_>, _>>()?;
    let tls = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, PrivateKeyDer::from_pem_file(&key)?)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}/EWS/Exchange.asmx", listener.local_addr()?);
    let plain = emu.base_url().trim_start_matches("http://").to_owned();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, plain) = (acceptor.clone(), plain.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(plain).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    Ok((url, cert, task))
}

#[tokio::test]
async fn tls_is_verified_against_ca_file_unless_turned_off() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let dir = tempfile::tempdir()?;
    let (url, cert, _front) = tls_front(&s.emu, dir.path()).await?;
    let secret = s.emu.config().client_secret.clone();
    let client = |ews: EwsConfig| EwsClient::new(&ews, oauth(&s.emu, &secret), UPN);

    let untrusted = client(config(&url))?;
    let err = untrusted.folders().await.expect_err("unknown issuer");
    assert!(matches!(err, ConnectorError::Tls { .. }), "{err:?}");
    assert_refused(&err, ErrorClass::Permanent, "ca_file");

    let trusted = client(EwsConfig {
        ca_file: Some(cert),
        ..config(&url)
    })?;
    assert!(!trusted.folders().await?.is_empty());

    let unverified = client(EwsConfig {
        tls_verify: false,
        ..config(&url)
    })?;
    assert!(!unverified.folders().await?.is_empty());
    Ok(())
}

/// A gate that records what passes it.
#[derive(Debug, Default)]
struct Recorder {
    admitted: Mutex<Vec<u64>>,
    outcomes: Mutex<Vec<Outcome>>,
}

impl RequestGate for Recorder {
    fn admit(&self, upload_bytes: u64) -> Admit<'_> {
        self.admitted
            .lock()
            .expect("not poisoned")
            .push(upload_bytes);
        Box::pin(async { Ok(()) })
    }

    fn done(&self, outcome: Outcome) {
        self.outcomes.lock().expect("not poisoned").push(outcome);
    }
}

#[tokio::test]
async fn every_request_passes_the_gate() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let gate = Arc::new(Recorder::default());
    let client = s
        .client
        .with_gate(Arc::clone(&gate) as Arc<dyn RequestGate>);
    let m = mime("g@example.com", &"g".repeat(3000));
    let item = plain(&m);
    client.create_items("inbox", &[item]).await?;
    s.emu.inject(Fault::EwsServerBusy {
        count: 1,
        back_off_ms: 40,
    });
    client
        .create_items("inbox", &[item])
        .await
        .expect_err("busy");
    // A 401 and its renewal are two requests.
    s.emu.inject(Fault::ExpireTokens);
    client.folders().await?;
    let admitted = gate.admitted.lock().expect("not poisoned").clone();
    let outcomes = gate.outcomes.lock().expect("not poisoned").clone();
    assert_eq!(admitted.len(), outcomes.len(), "{admitted:?} {outcomes:?}");
    assert!(
        admitted[0] > 4000,
        "the body size is reported: {admitted:?}"
    );
    assert_eq!(
        outcomes[..4],
        [
            Outcome::Ok,
            Outcome::Throttled(Duration::from_millis(40)),
            Outcome::Failed,
            Outcome::Ok
        ]
    );
    Ok(())
}
