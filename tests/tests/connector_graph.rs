//! The Graph target client (`mailhaul_connectors::graph`) against the Exchange emulator:
//! tokens reused and renewed, the folder tree (nested, non-ASCII, case-insensitive,
//! hidden, paged), non-draft imports on both upload paths, messages over Graph's 4 MB
//! request limit (attachments added after the create, upload sessions, the fallback
//! from importMime), the request gate around every request, and how throttling,
//! faults and size limits are classified.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::gate::{Admit, Outcome, RequestGate};
use mailhaul_connectors::graph::{
    ATTACHMENT_LIMIT, GraphClient, GraphConfig, ImportItem, REQUEST_LIMIT, UPLOAD_CHUNK, UploadPath,
};
use mailhaul_connectors::special::SpecialUse;
use mailhaul_proto::ErrorClass;
use mailhaul_proto::manifest::{SecretRef, TokenSource};
use mailhaul_tests::exchange::{
    Emulator, EmulatorConfig, Fault, FlagStatus, MailboxSettings, Origin,
};
use secrecy::SecretString;

const UPN: &str = "bob@contoso.com";

const MIME: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: hi\r\n\
Date: Mon, 04 Mar 2019 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\
X-Source: imap\r\n\r\nbody\r\n";

/// An emulator with Bob's mailbox, a token endpoint in front of it that counts the
/// token requests, and a client.
struct Setup {
    emu: Emulator,
    token_requests: Arc<AtomicUsize>,
    client: GraphClient,
    _proxy: tokio::task::JoinHandle<()>,
}

/// Forwards a token request to the emulator and counts it.
async fn count_token(
    State((count, url)): State<(Arc<AtomicUsize>, String)>,
    body: String,
) -> (axum::http::StatusCode, String) {
    count.fetch_add(1, Ordering::SeqCst);
    let forwarded = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    match forwarded {
        Ok(r) => {
            let status = axum::http::StatusCode::from_u16(r.status().as_u16())
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

impl Setup {
    async fn start(config: EmulatorConfig, upload: UploadPath) -> anyhow::Result<Self> {
        let emu = Emulator::start(config).await?;
        emu.add_mailbox(UPN);
        let cfg = emu.config().clone();
        let token_url = format!("{}/{}/oauth2/v2.0/token", emu.base_url(), cfg.tenant);
        let token_requests = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let proxy_url = format!("http://{}/token", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/token", post(count_token))
            .with_state((Arc::clone(&token_requests), token_url));
        let proxy = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = GraphClient::new(GraphConfig {
            base_url: emu.base_url(),
            token: TokenSource::ClientCredentials {
                url: proxy_url,
                client_id: cfg.client_id.clone(),
                client_secret: SecretRef::Inline(cfg.client_secret.clone()),
                scope: "https://graph.microsoft.com/.default".into(),
            },
            upload,
            ca_file: None,
            tls_verify: true,
            options: Default::default(),
        })?;
        Ok(Setup {
            emu,
            token_requests,
            client,
            _proxy: proxy,
        })
    }

    async fn default() -> anyhow::Result<Self> {
        Self::start(EmulatorConfig::default(), UploadPath::default()).await
    }
}

fn internal_date() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2019-03-04T10:05:00Z")
        .expect("valid date")
        .with_timezone(&Utc)
}

fn item<'a>(mime: &'a [u8], keywords: &'a [String]) -> ImportItem<'a> {
    ImportItem {
        mime: mime.into(),
        received: internal_date(),
        seen: true,
        flagged: true,
        keywords,
    }
}

fn path(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

fn assert_refused(err: &ConnectorError, class: ErrorClass, says: &str) {
    assert_eq!(err.class(), class, "{err}");
    assert!(err.to_string().contains(says), "{err} should say {says:?}");
}

#[tokio::test]
async fn token_is_fetched_once_and_renewed_after_expiry() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    for _ in 0..3 {
        s.client.folders(UPN).await?;
    }
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 1);
    s.emu.inject(Fault::ExpireTokens);
    let folders = s.client.folders(UPN).await?;
    assert!(folders.iter().any(|f| f.path == ["Inbox"]), "{folders:?}");
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn a_token_refused_twice_is_an_auth_error() -> anyhow::Result<()> {
    // Tokens that are dead on arrival: the client renews once, then gives up.
    let config = EmulatorConfig {
        token_lifetime: Duration::ZERO,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config, UploadPath::default()).await?;
    let err = s.client.folders(UPN).await.expect_err("expired tokens");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err}");
    assert_refused(&err, ErrorClass::Permanent, "InvalidAuthenticationToken");
    // One token, one renewal after the first 401, then no more.
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn folder_tree_is_created_walked_and_matched_case_insensitively() -> anyhow::Result<()> {
    // Two per page, so every listing needs @odata.nextLink.
    let config = EmulatorConfig {
        page_size: 2,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config, UploadPath::default()).await?;
    let nested = path(&["Projects", "2024", "Café ☕ Ünïcode"]);
    let id = s.client.ensure_folder(UPN, &nested).await?;
    let view = s.emu.mailbox(UPN);
    let folder = view
        .folder("Projects/2024/Café ☕ Ünïcode")
        .context("nested folder created")?;
    assert_eq!(folder.id, id);

    // Case variants are the same folders; nothing new is created.
    let again = s
        .client
        .ensure_folder(UPN, &path(&["PROJECTS", "2024", "café ☕ üNÏCODE"]))
        .await?;
    assert_eq!(again, id);
    let inbox = s.client.ensure_folder(UPN, &path(&["inbox"])).await?;
    assert_eq!(
        Some(inbox.as_str()),
        view.folder("Inbox").map(|f| f.id.as_str())
    );
    assert_eq!(s.emu.mailbox(UPN).folders.len(), view.folders.len());

    // Racing creators: one gets 409 ErrorFolderExists and finds the other's folder.
    let racers = path(&["Shared"]);
    let (a, b) = tokio::join!(
        s.client.ensure_folder(UPN, &racers),
        s.client.ensure_folder(UPN, &racers)
    );
    assert_eq!(a?, b?);
    let shared = s.emu.mailbox(UPN);
    assert_eq!(
        shared.folders.iter().filter(|f| f.path == "Shared").count(),
        1
    );

    // Below a well-known parent.
    let sent = GraphClient::well_known(SpecialUse::Sent);
    assert_eq!(sent, "sentitems");
    let sub = s
        .client
        .ensure_folder_under(UPN, sent, &path(&["2019"]))
        .await?;
    let sub_view = s.emu.mailbox(UPN);
    assert_eq!(
        sub_view.folder("Sent Items/2019").map(|f| f.id.as_str()),
        Some(sub.as_str())
    );

    // A hidden folder made by someone else is listed too.
    let token = s.emu.issue_token();
    let response = reqwest::Client::new()
        .post(format!("{}/v1.0/users/{UPN}/mailFolders", s.emu.base_url()))
        .bearer_auth(token)
        .json(&serde_json::json!({"displayName": "Hidden", "isHidden": true}))
        .send()
        .await?;
    ensure!(
        response.status() == 201,
        "hidden folder: {}",
        response.status()
    );

    let listed = s.client.folders(UPN).await?;
    let find = |p: &[&str]| listed.iter().find(|f| f.path == path(p));
    assert_eq!(
        find(&["Projects", "2024", "Café ☕ Ünïcode"]).map(|f| f.id.as_str()),
        Some(id.as_str())
    );
    assert!(find(&["Hidden"]).is_some_and(|f| f.hidden), "{listed:?}");
    assert!(find(&["Sent Items", "2019"]).is_some(), "{listed:?}");
    // Every folder below msgfolderroot in the emulator is listed, no more, no fewer.
    let expected = sub_view.folders.len() + 1;
    let in_root = s
        .emu
        .mailbox(UPN)
        .folders
        .iter()
        .filter(|f| !f.path.is_empty() && !f.path.starts_with('/') && f.is_mail_folder)
        .count();
    assert_eq!(in_root, listed.len());
    assert!(
        listed.len() < expected,
        "root and outside folders are not listed"
    );

    let empty = s.client.ensure_folder(UPN, &path(&["A", " "])).await;
    let err = empty.expect_err("an empty name is refused");
    assert_refused(&err, ErrorClass::Permanent, "empty name");
    Ok(())
}

#[tokio::test]
async fn import_mime_lands_as_a_delivered_message_with_its_state() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let folder = s
        .client
        .ensure_folder(UPN, &path(&["Inbox", "Projects"]))
        .await?;
    let keywords = path(&["Work", "$Label1"]);
    let before = Utc::now() - chrono::Duration::seconds(5);
    let imported = s
        .client
        .import(UPN, &folder, &item(MIME.as_bytes(), &keywords))
        .await?;
    assert_eq!(imported.path, UploadPath::ImportMime);
    let id = imported.id;

    let view = s.emu.mailbox(UPN);
    let items = view.items_in("Inbox/Projects");
    assert_eq!(items.len(), 1);
    let got = items[0];
    assert_eq!(got.id, id);
    assert_eq!(got.origin, Origin::GraphImportMime);
    assert!(!got.is_draft);
    assert!(got.is_read);
    assert_eq!(got.flag, FlagStatus::Flagged);
    // `$Label1` is Thunderbird's tag key, a category only when keyword_categories names it.
    assert_eq!(got.categories, ["Work"]);
    assert_eq!(got.mime.as_deref(), Some(MIME.as_bytes()), "full MIME kept");
    // Graph cannot set the received date of an imported item: it is the import time
    // (the documented loss of this path; UploadPath::JsonCreate keeps it).
    assert!(got.received >= before, "{}", got.received);
    assert_eq!(
        got.sent,
        Some(DateTime::from_timestamp(1_551_693_600, 0).expect("valid"))
    );
    Ok(())
}

#[tokio::test]
async fn json_create_lands_non_draft_with_the_internaldate() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default(), UploadPath::JsonCreate).await?;
    let folder = s
        .client
        .ensure_folder(UPN, &path(&["Archive 2019"]))
        .await?;
    let keywords = path(&["Red"]);
    let unread = ImportItem {
        seen: false,
        ..item(MIME.as_bytes(), &keywords)
    };
    let imported = s.client.import(UPN, &folder, &unread).await?;
    assert_eq!(imported.path, UploadPath::JsonCreate);
    let id = imported.id;

    let view = s.emu.mailbox(UPN);
    let items = view.items_in("Archive 2019");
    assert_eq!(items.len(), 1);
    let got = items[0];
    assert_eq!(got.id, id);
    assert_eq!(got.origin, Origin::GraphJson);
    assert!(!got.is_draft);
    assert!(!got.is_read);
    assert_eq!(got.flag, FlagStatus::Flagged);
    assert_eq!(got.categories, keywords);
    assert_eq!(got.received, internal_date());
    assert_eq!(
        got.sent,
        Some(DateTime::from_timestamp(1_551_693_600, 0).expect("valid"))
    );
    assert_eq!(got.internet_message_id.as_deref(), Some("<m1@example.com>"));
    assert_eq!(got.subject.as_deref(), Some("hi"));
    // No X- header unless the manifest lists it: each distinct name costs the mailbox a
    // named property (issue 11).
    assert!(got.headers.is_empty(), "{:?}", got.headers);
    // Into a well-known folder by name.
    let inbox = GraphClient::well_known(SpecialUse::Junk);
    s.client.import(UPN, inbox, &unread).await?;
    assert_eq!(s.emu.mailbox(UPN).items_in("Junk Email").len(), 1);
    Ok(())
}

#[tokio::test]
async fn json_create_carries_attachments() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default(), UploadPath::JsonCreate).await?;
    let mime = "From: a@example.com\r\nSubject: att\r\nMessage-ID: <att@example.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--b\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n";
    let none: Vec<String> = Vec::new();
    s.client
        .import(UPN, "inbox", &item(mime.as_bytes(), &none))
        .await?;
    let view = s.emu.mailbox(UPN);
    let items = view.items_in("Inbox");
    assert_eq!(items.len(), 1);
    let attachments = &items[0].attachments;
    assert_eq!(attachments.len(), 1, "{attachments:?}");
    assert_eq!(attachments[0].name, "r.pdf");
    assert_eq!(attachments[0].content_type, "application/pdf");
    assert_eq!(attachments[0].bytes, b"%PDF");
    assert!(!attachments[0].is_inline);
    assert!(!items[0].is_draft);
    Ok(())
}

/// A mailbox not provisioned yet answers every call `404 MailboxNotEnabledForRESTAPI`:
/// a mailbox-level "not ready, try later" that names the mailbox and the fix, not a
/// permanent per-message failure.
#[tokio::test]
async fn a_mailbox_not_provisioned_yet_is_retried_later() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let late = "late@contoso.example";
    s.emu.configure_mailbox(
        late,
        MailboxSettings {
            provisioned: false,
            ..MailboxSettings::default()
        },
    );
    let err = s
        .client
        .ensure_folder(late, &path(&["T"]))
        .await
        .expect_err("not provisioned");
    assert_refused(
        &err,
        ErrorClass::Throttled(Duration::from_secs(300)),
        "http 404 MailboxNotEnabledForRESTAPI",
    );
    let text = err.to_string();
    assert!(
        text.contains(late) && text.contains("not ready") && text.contains("licence"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn throttling_and_outages_are_classified() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let folder = s.client.ensure_folder(UPN, &path(&["T"])).await?;
    let none: Vec<String> = Vec::new();
    let msg = item(MIME.as_bytes(), &none);

    s.emu.inject(Fault::Throttle429 {
        count: 5,
        retry_after: Duration::from_secs(7),
    });
    for _ in 0..5 {
        let err = s.client.import(UPN, &folder, &msg).await.expect_err("429");
        assert_refused(
            &err,
            ErrorClass::Throttled(Duration::from_secs(7)),
            "http 429 ApplicationThrottled",
        );
        assert!(err.to_string().contains("Retry-After 7s"), "{err}");
    }
    s.emu.inject(Fault::Fail503 {
        count: 1,
        retry_after: Some(Duration::from_secs(3)),
    });
    let err = s.client.folders(UPN).await.expect_err("503");
    assert_refused(
        &err,
        ErrorClass::Throttled(Duration::from_secs(3)),
        "http 503",
    );
    s.emu.inject(Fault::Fail503 {
        count: 1,
        retry_after: None,
    });
    let err = s.client.folders(UPN).await.expect_err("503");
    assert_refused(&err, ErrorClass::Transient, "http 503");
    s.emu.inject(Fault::Fail504 { count: 1 });
    let err = s.client.import(UPN, &folder, &msg).await.expect_err("504");
    assert_refused(&err, ErrorClass::Transient, "http 504");
    assert!(s.emu.mailbox(UPN).items_in("T").is_empty());

    // The storm is over: the same message goes in.
    s.client.import(UPN, &folder, &msg).await?;
    assert_eq!(s.emu.mailbox(UPN).items_in("T").len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_503_after_commit_is_found_by_message_id() -> anyhow::Result<()> {
    for upload in [UploadPath::ImportMime, UploadPath::JsonCreate] {
        let s = Setup::start(EmulatorConfig::default(), upload).await?;
        let folder = s.client.ensure_folder(UPN, &path(&["Dedup"])).await?;
        let none: Vec<String> = Vec::new();
        assert!(
            s.client
                .find_by_message_id(UPN, &folder, "m1@example.com")
                .await?
                .is_empty()
        );

        s.emu.inject(Fault::Fail503AfterCommit { count: 1 });
        let err = s
            .client
            .import(UPN, &folder, &item(MIME.as_bytes(), &none))
            .await
            .expect_err("503 after commit");
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");

        let view = s.emu.mailbox(UPN);
        let stored = view.items_in("Dedup");
        assert_eq!(stored.len(), 1, "{upload:?}: the item was committed");
        for id in ["m1@example.com", "<m1@example.com>"] {
            let found = s.client.find_by_message_id(UPN, &folder, id).await?;
            assert_eq!(found.len(), 1, "{upload:?} {id}");
            assert_eq!(found[0].id, stored[0].id);
            assert!(!found[0].is_draft);
        }
        // Another folder does not have it.
        let inbox = s
            .client
            .find_by_message_id(UPN, "inbox", "m1@example.com")
            .await?;
        assert!(inbox.is_empty());
        // Quotes in the id are escaped, not an OData syntax error.
        let odd = s
            .client
            .find_by_message_id(UPN, &folder, "<o'neil@example.com>")
            .await?;
        assert!(odd.is_empty());
    }
    Ok(())
}

/// A MIME message whose text body alone is about `bytes` bytes.
fn big_mime(bytes: usize) -> Vec<u8> {
    let mut mime = b"From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\
Content-Type: text/plain\r\n\r\n"
        .to_vec();
    let line = [b'A'; 76];
    while mime.len() < bytes {
        mime.extend_from_slice(&line);
        mime.extend_from_slice(b"\r\n");
    }
    mime
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_sending() -> anyhow::Result<()> {
    for upload in [UploadPath::ImportMime, UploadPath::JsonCreate] {
        let s = Setup::start(EmulatorConfig::default(), upload).await?;
        let folder = s.client.ensure_folder(UPN, &path(&["Big"])).await?;
        let none: Vec<String> = Vec::new();
        let requests = s.emu.request_count(UPN);
        let mime = big_mime(5 * 1024 * 1024);
        let err = s
            .client
            .import(UPN, &folder, &item(&mime, &none))
            .await
            .expect_err("5 MB of text");
        assert_refused(&err, ErrorClass::Permanent, "4 MB request limit");
        assert!(err.to_string().contains("EWS or IMAP"), "{err}");
        assert_eq!(
            s.emu.request_count(UPN),
            requests,
            "{upload:?}: nothing sent"
        );
    }

    // A server with a lower cap answers 413: a permanent refusal naming the limit.
    let config = EmulatorConfig {
        max_request_bytes: 1024 * 1024,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config, UploadPath::ImportMime).await?;
    let none: Vec<String> = Vec::new();
    let mime = big_mime(2 * 1024 * 1024);
    let err = s
        .client
        .import(UPN, "inbox", &item(&mime, &none))
        .await
        .expect_err("413");
    assert_refused(&err, ErrorClass::Permanent, "http 413");
    assert!(err.to_string().contains("4 MB request limit"), "{err}");
    assert!(s.emu.mailbox(UPN).items.is_empty());
    Ok(())
}

#[tokio::test]
async fn refusals_are_permanent_and_name_the_fix() -> anyhow::Result<()> {
    // importMime without Mail-Advanced.ReadWrite.All.
    let config = EmulatorConfig {
        graph_roles: vec!["Mail.ReadWrite".to_owned()],
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config, UploadPath::ImportMime).await?;
    let none: Vec<String> = Vec::new();
    let err = s
        .client
        .import(UPN, "inbox", &item(MIME.as_bytes(), &none))
        .await
        .expect_err("403");
    assert_refused(&err, ErrorClass::Permanent, "Mail-Advanced.ReadWrite.All");

    // Not MIME at all.
    let s = Setup::default().await?;
    let err = s
        .client
        .import(UPN, "inbox", &item(b"", &none))
        .await
        .expect_err("empty MIME");
    assert_refused(&err, ErrorClass::Permanent, "ErrorMimeContentInvalid");

    // A mailbox outside the app's scope.
    s.emu.deny_mailbox(UPN);
    let err = s.client.folders(UPN).await.expect_err("denied");
    assert_refused(&err, ErrorClass::Permanent, "ErrorAccessDenied");
    assert!(err.to_string().contains("Mail.ReadWrite"), "{err}");

    // A bad client secret: an Auth error, no token ever sent.
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    emu.add_mailbox(UPN);
    let cfg = emu.config().clone();
    let client = GraphClient::new(GraphConfig {
        base_url: emu.base_url(),
        token: TokenSource::ClientCredentials {
            url: format!("{}/{}/oauth2/v2.0/token", emu.base_url(), cfg.tenant),
            client_id: cfg.client_id,
            client_secret: SecretRef::Inline(SecretString::from("wrong")),
            scope: "https://graph.microsoft.com/.default".into(),
        },
        upload: UploadPath::default(),
        ca_file: None,
        tls_verify: true,
        options: Default::default(),
    })?;
    let err = client.folders(UPN).await.expect_err("bad secret");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err}");
    assert_eq!(emu.request_count(UPN), 0);
    Ok(())
}

/// An attachment for [`mime_with`].
struct Part {
    name: &'static str,
    bytes: Vec<u8>,
    /// `Content-ID` of an inline part (shown in the HTML body).
    cid: Option<&'static str>,
}

/// A file attachment of `len` bytes of [`noise`].
fn attachment(name: &'static str, len: usize, seed: u64) -> Part {
    Part {
        name,
        bytes: noise(len, seed),
        cid: None,
    }
}

/// Deterministic bytes that do not compress or repeat, so byte-equality means something.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// A multipart/mixed message with an HTML body and `parts` as base64 attachments.
fn mime_with(message_id: &str, parts: &[Part]) -> Vec<u8> {
    let mut mime = format!(
        "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: large {message_id}\r\n\
Date: Mon, 04 Mar 2019 10:00:00 +0000\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n--b0\r\nContent-Type: text/html\r\n\r\n\
<p>see attached</p><img src=\"cid:logo@example.com\">\r\n"
    )
    .into_bytes();
    for part in parts {
        let disposition = if part.cid.is_some() {
            "inline"
        } else {
            "attachment"
        };
        mime.extend_from_slice(
            format!(
                "--b0\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: {disposition}; filename=\"{}\"\r\nContent-Transfer-Encoding: base64\r\n",
                part.name
            )
            .as_bytes(),
        );
        if let Some(cid) = part.cid {
            mime.extend_from_slice(format!("Content-ID: <{cid}>\r\n").as_bytes());
        }
        mime.extend_from_slice(b"\r\n");
        for line in STANDARD.encode(&part.bytes).as_bytes().chunks(76) {
            mime.extend_from_slice(line);
            mime.extend_from_slice(b"\r\n");
        }
    }
    mime.extend_from_slice(b"--b0--\r\n");
    mime
}

const MB: usize = 1024 * 1024;

/// Checks that `folder` holds exactly one non-draft item for `message_id`, with the
/// internal date, the keywords (no marker left) and exactly `parts` as attachments.
fn assert_imported(s: &Setup, folder: &str, id: &str, message_id: &str, parts: &[Part]) {
    let view = s.emu.mailbox(UPN);
    let items: Vec<_> = view
        .items_in(folder)
        .into_iter()
        .filter(|i| i.internet_message_id.as_deref() == Some(&format!("<{message_id}>")))
        .collect();
    assert_eq!(items.len(), 1, "{message_id}: one item");
    let got = items[0];
    assert_eq!(got.id, id);
    assert_eq!(got.origin, Origin::GraphJson);
    assert!(!got.is_draft, "{message_id}");
    assert_eq!(got.received, internal_date(), "{message_id}");
    assert_eq!(got.categories, ["Work"], "{message_id}");
    assert_eq!(got.attachments.len(), parts.len(), "{message_id}");
    for part in parts {
        let stored = got
            .attachments
            .iter()
            .find(|a| a.name == part.name)
            .unwrap_or_else(|| panic!("{message_id}: {} missing", part.name));
        assert!(
            stored.bytes == part.bytes,
            "{message_id}: {} differs",
            part.name
        );
        assert_eq!(stored.is_inline, part.cid.is_some(), "{}", part.name);
    }
}

#[tokio::test]
async fn large_messages_go_in_with_every_attachment() -> anyhow::Result<()> {
    // The 40 MB message needs the tenant's max message size raised from its default of
    // 36 MB, as an admin does before migrating large mail.
    let config = EmulatorConfig {
        max_message_bytes: 150 * MB,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config, UploadPath::JsonCreate).await?;
    let folder = s.client.ensure_folder(UPN, &path(&["Large"])).await?;
    let keywords = path(&["Work"]);
    let cases = [
        ("5mb@example.com", vec![(5 * MB, None)]),
        ("20mb@example.com", vec![(20 * MB, None)]),
        ("40mb@example.com", vec![(40 * MB, None)]),
        // One rides in the create, the other is posted after it (and stays inline).
        (
            "two@example.com",
            vec![(5 * MB / 2, None), (5 * MB / 2, Some("logo@example.com"))],
        ),
    ];
    for (seed, (message_id, sizes)) in (1_u64..).zip(cases) {
        let names = ["one.bin", "two.bin"];
        let parts: Vec<Part> = sizes
            .iter()
            .zip(names)
            .map(|((len, cid), name)| Part {
                name,
                bytes: noise(*len, seed),
                cid: *cid,
            })
            .collect();
        let mime = mime_with(message_id, &parts);
        let imported = s
            .client
            .import(UPN, &folder, &item(&mime, &keywords))
            .await?;
        assert_eq!(imported.path, UploadPath::JsonCreate);
        assert_imported(&s, "Large", &imported.id, message_id, &parts);
        let found = s
            .client
            .find_by_message_id(UPN, &folder, message_id)
            .await?;
        assert_eq!(found.len(), 1, "{message_id}");
        assert!(found[0].complete && !found[0].is_draft, "{found:?}");
    }
    assert_eq!(s.emu.mailbox(UPN).items_in("Large").len(), 4);
    Ok(())
}

#[tokio::test]
async fn import_mime_falls_back_to_json_for_a_large_message() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let keywords = path(&["Work"]);
    let parts = [attachment("one.bin", 5 * MB, 9)];
    let mime = mime_with("fallback@example.com", &parts);
    let imported = s
        .client
        .import(UPN, "inbox", &item(&mime, &keywords))
        .await?;
    assert_eq!(imported.path, UploadPath::JsonCreate);
    assert_imported(&s, "Inbox", &imported.id, "fallback@example.com", &parts);

    // A small one stays on importMime, and its MIME reads back as sent.
    let small = s
        .client
        .import(UPN, "inbox", &item(MIME.as_bytes(), &keywords))
        .await?;
    assert_eq!(small.path, UploadPath::ImportMime);
    assert_eq!(
        s.client.message_mime(UPN, &small.id).await?,
        MIME.as_bytes()
    );
    s.client.delete_message(UPN, &small.id).await?;
    assert!(
        s.client
            .find_by_message_id(UPN, "inbox", "m1@example.com")
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn an_attachment_over_150_mb_is_refused_and_nothing_is_left() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let folder = s.client.ensure_folder(UPN, &path(&["Huge"])).await?;
    let none: Vec<String> = Vec::new();
    let parts = [
        attachment("small.bin", MB, 3),
        Part {
            name: "huge.bin",
            bytes: vec![0; ATTACHMENT_LIMIT + 1],
            cid: None,
        },
    ];
    let mime = mime_with("huge@example.com", &parts);
    drop(parts);
    let requests = s.emu.request_count(UPN);
    let err = s
        .client
        .import(UPN, &folder, &item(&mime, &none))
        .await
        .expect_err("over 150 MB");
    assert_refused(&err, ErrorClass::Permanent, "150 MB attachment limit");
    assert!(err.to_string().contains("huge.bin"), "{err}");
    assert_eq!(s.emu.request_count(UPN), requests, "nothing sent");
    assert!(s.emu.mailbox(UPN).items.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_failed_attachment_deletes_the_half_made_item() -> anyhow::Result<()> {
    // The mailbox has room for the create, not for the 20 MB attachment: the upload
    // session's last PUT is refused with ErrorQuotaExceeded.
    let config = EmulatorConfig {
        mailbox_quota_bytes: 8 * MB as u64,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config, UploadPath::JsonCreate).await?;
    let folder = s.client.ensure_folder(UPN, &path(&["Full"])).await?;
    let keywords = path(&["Work"]);
    let parts = [attachment("big.bin", 20 * MB, 5)];
    let mime = mime_with("full@example.com", &parts);
    let err = s
        .client
        .import(UPN, &folder, &item(&mime, &keywords))
        .await
        .expect_err("quota");
    assert_refused(&err, ErrorClass::Permanent, "ErrorQuotaExceeded");
    assert!(err.to_string().contains("deleted again"), "{err}");
    assert!(s.emu.mailbox(UPN).items_in("Full").is_empty());
    let found = s
        .client
        .find_by_message_id(UPN, &folder, "full@example.com")
        .await?;
    assert!(found.is_empty(), "{found:?}");
    Ok(())
}

#[tokio::test]
async fn a_large_create_committed_despite_503_is_found_incomplete() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default(), UploadPath::JsonCreate).await?;
    let folder = s.client.ensure_folder(UPN, &path(&["Dedup"])).await?;
    let keywords = path(&["Work"]);
    let parts = [attachment("one.bin", 5 * MB, 7)];
    let mime = mime_with("half@example.com", &parts);
    s.emu.inject(Fault::Fail503AfterCommit { count: 1 });
    let err = s
        .client
        .import(UPN, &folder, &item(&mime, &keywords))
        .await
        .expect_err("503 after commit");
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");

    // The create went in without its attachment: the lookup says it is unfinished.
    let found = s
        .client
        .find_by_message_id(UPN, &folder, "half@example.com")
        .await?;
    assert_eq!(found.len(), 1);
    assert!(!found[0].complete, "{found:?}");
    assert!(
        s.emu.mailbox(UPN).items_in("Dedup")[0]
            .attachments
            .is_empty()
    );

    // The worker's way out: delete it and import again.
    s.client.delete_message(UPN, &found[0].id).await?;
    let imported = s
        .client
        .import(UPN, &folder, &item(&mime, &keywords))
        .await?;
    assert_imported(&s, "Dedup", &imported.id, "half@example.com", &parts);
    let found = s
        .client
        .find_by_message_id(UPN, &folder, "half@example.com")
        .await?;
    assert_eq!(found.len(), 1);
    assert!(found[0].complete, "{found:?}");
    Ok(())
}

/// A gate that admits everything and counts what it sees.
#[derive(Debug, Default)]
struct CountingGate {
    admits: AtomicU64,
    bytes: AtomicU64,
    largest: AtomicU64,
    outcomes: Mutex<Vec<Outcome>>,
}

impl RequestGate for CountingGate {
    fn admit(&self, upload_bytes: u64) -> Admit<'_> {
        self.admits.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(upload_bytes, Ordering::SeqCst);
        self.largest.fetch_max(upload_bytes, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }

    fn done(&self, outcome: Outcome) {
        self.outcomes
            .lock()
            .expect("no test thread panicked holding it")
            .push(outcome);
    }
}

#[tokio::test]
async fn the_gate_sees_every_request() -> anyhow::Result<()> {
    let s = Setup::default().await?;
    let gate = Arc::new(CountingGate::default());
    let client = s
        .client
        .with_gate(Arc::clone(&gate) as Arc<dyn RequestGate>);
    let keywords = path(&["Work"]);

    let folder = client.ensure_folder(UPN, &path(&["Gated"])).await?;
    let small = client
        .import(UPN, &folder, &item(MIME.as_bytes(), &keywords))
        .await?;
    s.emu.inject(Fault::Throttle429 {
        count: 1,
        retry_after: Duration::from_secs(7),
    });
    client.folders(UPN).await.expect_err("throttled");
    // The 401 before the renewal is a request too, though it never reaches a mailbox.
    s.emu.inject(Fault::ExpireTokens);
    client.folders(UPN).await?;
    let size = 5 * MB;
    let parts = [attachment("one.bin", size, 11)];
    let big = client
        .import(
            UPN,
            &folder,
            &item(&mime_with("gated@example.com", &parts), &keywords),
        )
        .await?;
    assert_eq!(big.path, UploadPath::JsonCreate);
    client
        .find_by_message_id(UPN, &folder, "gated@example.com")
        .await?;
    client.message_mime(UPN, &small.id).await?;
    client.delete_message(UPN, &small.id).await?;

    // Upload-session PUTs go to the uploadUrl, outside the mailbox's Graph pipeline.
    let puts = size.div_ceil(UPLOAD_CHUNK) as u64;
    let unauthorized = 1;
    let admits = gate.admits.load(Ordering::SeqCst);
    assert_eq!(admits, s.emu.request_count(UPN) + puts + unauthorized);
    let outcomes = gate.outcomes.lock().expect("not poisoned").clone();
    assert_eq!(outcomes.len() as u64, admits, "done once per request");
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(count(Outcome::Throttled(Duration::from_secs(7))), 1);
    assert_eq!(count(Outcome::Failed), 1, "the 401");
    assert_eq!(count(Outcome::Ok) as u64, admits - 2);
    assert!(gate.bytes.load(Ordering::SeqCst) >= size as u64);
    assert!(gate.largest.load(Ordering::SeqCst) <= REQUEST_LIMIT as u64);
    // The gated clone shares the client's token: one fetch, one renewal.
    assert_eq!(s.token_requests.load(Ordering::SeqCst), 2);
    s.client.folders(UPN).await?;
    assert_eq!(
        gate.admits.load(Ordering::SeqCst),
        admits,
        "the original is not gated"
    );
    Ok(())
}
