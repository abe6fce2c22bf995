//! The Graph target client (`mailhaul_connectors::graph`) against the Exchange emulator:
//! tokens reused and renewed, the folder tree (nested, non-ASCII, case-insensitive,
//! hidden, paged), non-draft imports on both upload paths, and how throttling, faults
//! and size limits are classified.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::graph::{GraphClient, GraphConfig, ImportItem, UploadPath};
use mailhaul_connectors::special::SpecialUse;
use mailhaul_proto::ErrorClass;
use mailhaul_proto::manifest::{SecretRef, TokenSource};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig, Fault, FlagStatus, Origin};
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
        mime,
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
        .filter(|f| !f.path.is_empty() && !f.path.starts_with('/'))
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
    let id = s
        .client
        .import(UPN, &folder, &item(MIME.as_bytes(), &keywords))
        .await?;

    let view = s.emu.mailbox(UPN);
    let items = view.items_in("Inbox/Projects");
    assert_eq!(items.len(), 1);
    let got = items[0];
    assert_eq!(got.id, id);
    assert_eq!(got.origin, Origin::GraphImportMime);
    assert!(!got.is_draft);
    assert!(got.is_read);
    assert_eq!(got.flag, FlagStatus::Flagged);
    assert_eq!(got.categories, keywords);
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
    let id = s.client.import(UPN, &folder, &unread).await?;

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
    assert!(
        got.headers
            .iter()
            .any(|(n, v)| n == "X-Source" && v == "imap"),
        "{:?}",
        got.headers
    );
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
            "http 429",
        );
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

/// A MIME message of about `bytes` bytes (a base64 body).
fn big_mime(bytes: usize) -> Vec<u8> {
    let mut mime = b"From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\
Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    let line = [b'A'; 76];
    while mime.len() < bytes {
        mime.extend_from_slice(&line);
        mime.extend_from_slice(b"\r\n");
    }
    mime
}

#[tokio::test]
async fn oversized_messages_are_refused_naming_the_limit() -> anyhow::Result<()> {
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
            .expect_err("5 MB");
        assert_refused(&err, ErrorClass::Permanent, "4 MB request limit");
        assert_eq!(
            s.emu.request_count(UPN),
            requests,
            "{upload:?}: nothing sent"
        );
    }

    // A server with a lower cap answers 413: the same permanent refusal.
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
    })?;
    let err = client.folders(UPN).await.expect_err("bad secret");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err}");
    assert_eq!(emu.request_count(UPN), 0);
    Ok(())
}
