//! The Exchange emulator behaves as Microsoft documents Graph, checked over HTTP with
//! reqwest (no mailhaul client code involved): tokens and their expiry, MIME drafts,
//! `importMime`, JSON create with MAPI properties, folders and paging, throttling,
//! faults and the request size cap; the read API and the documented limits in their
//! own modules.

mod ews_faults;
mod limits;
mod read;
mod standalone;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mailhaul_tests::exchange::{Emulator, EmulatorConfig, Fault, FlagStatus, Origin};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const UPN: &str = "bob@contoso.com";

const MIME: &str = "From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\
Date: Mon, 04 Mar 2019 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\nbody\r\n";

/// A running emulator with Bob's mailbox, a client and a Graph token.
struct Setup {
    emu: Emulator,
    http: Client,
    token: String,
}

impl Setup {
    async fn start(config: EmulatorConfig) -> anyhow::Result<Self> {
        let emu = Emulator::start(config).await?;
        emu.add_mailbox(UPN);
        let token = emu.issue_token();
        Ok(Self {
            emu,
            http: Client::new(),
            token,
        })
    }

    fn url(&self, version: &str, path: &str) -> String {
        format!("{}/{version}/users/{UPN}{path}", self.emu.base_url())
    }

    async fn get(&self, path: &str) -> anyhow::Result<Response> {
        Ok(self
            .http
            .get(self.url("v1.0", path))
            .bearer_auth(&self.token)
            .send()
            .await?)
    }

    async fn get_url(&self, url: &str) -> anyhow::Result<Response> {
        Ok(self.http.get(url).bearer_auth(&self.token).send().await?)
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.send_json(Method::POST, path, body).await
    }

    async fn patch_json(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.send_json(Method::PATCH, path, body).await
    }

    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Response> {
        let request = self.http.request(method, self.url("v1.0", path));
        Ok(request.bearer_auth(&self.token).json(body).send().await?)
    }

    async fn post_mime(&self, version: &str, path: &str, body: String) -> anyhow::Result<Response> {
        Ok(self
            .http
            .post(self.url(version, path))
            .bearer_auth(&self.token)
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await?)
    }
}

/// Asserts the status and returns the JSON body.
async fn expect(response: Response, status: StatusCode) -> anyhow::Result<Value> {
    let got = response.status();
    let text = response.text().await?;
    ensure!(got == status, "expected {status}, got {got}: {text}");
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("body is not JSON: {text}"))
}

/// Asserts a Graph error envelope with `code` and a request id.
async fn expect_error(response: Response, status: StatusCode, code: &str) -> anyhow::Result<Value> {
    let header_id = response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = expect(response, status).await?;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let inner_id = body["error"]["innerError"]["request-id"].as_str();
    assert_eq!(
        inner_id,
        header_id.as_deref(),
        "request-id header and innerError agree"
    );
    assert!(body["error"]["innerError"]["date"].is_string(), "{body}");
    Ok(body)
}

/// Waits until `ready` (polling; at most 10 s), then releases the held emulator,
/// whether or not `ready` came, so held requests never hang the test.
async fn release_when(emu: &Emulator, ready: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let came = ready();
    emu.release();
    ensure!(came, "the requests never lined up at the gate");
    Ok(())
}

fn token_form(secret: &str) -> Vec<(&'static str, String)> {
    let config = EmulatorConfig::default();
    vec![
        ("client_id", config.client_id),
        ("client_secret", secret.to_owned()),
        ("scope", "https://graph.microsoft.com/.default".to_owned()),
        ("grant_type", "client_credentials".to_owned()),
    ]
}

#[tokio::test]
async fn tokens_are_issued_checked_and_expire() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token_url = format!(
        "{}/contoso.onmicrosoft.com/oauth2/v2.0/token",
        s.emu.base_url()
    );

    let bad = s
        .http
        .post(&token_url)
        .form(&token_form("wrong"))
        .send()
        .await?;
    let bad = expect(bad, StatusCode::UNAUTHORIZED).await?;
    assert_eq!(bad["error"], "invalid_client");
    assert!(
        bad["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000215"))
    );

    let ok = s
        .http
        .post(&token_url)
        .form(&token_form("emulator-secret"))
        .send()
        .await?;
    let ok = expect(ok, StatusCode::OK).await?;
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3599);
    let token = ok["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned();

    let folders = s
        .http
        .get(s.url("v1.0", "/mailFolders"))
        .bearer_auth(&token)
        .send()
        .await?;
    expect(folders, StatusCode::OK).await?;
    let anonymous = s.http.get(s.url("v1.0", "/mailFolders")).send().await?;
    expect_error(
        anonymous,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await?;

    s.emu.inject(Fault::ExpireTokens);
    let expired = s
        .http
        .get(s.url("v1.0", "/mailFolders"))
        .bearer_auth(&token)
        .send()
        .await?;
    let body = expect_error(
        expired,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn mime_post_makes_a_read_draft_in_drafts() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let drafts = expect(s.get("/mailFolders/drafts").await?, StatusCode::OK).await?;

    let created = expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(created["isDraft"], true);
    assert_eq!(created["isRead"], true);
    assert_eq!(created["sentDateTime"], "2019-03-04T10:00:00Z");
    assert_eq!(created["internetMessageId"], "<m1@example.com>");
    assert_eq!(created["subject"], "hi");
    assert_eq!(created["parentFolderId"], drafts["id"]);

    let view = s.emu.mailbox(UPN);
    let items = view.items_in("Drafts");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].mime.as_deref(), Some(MIME.as_bytes()));
    assert_eq!(items[0].origin, Origin::GraphMime);
    assert_eq!(Some(items[0].id.as_str()), created["id"].as_str());

    for bad in [
        format!("{}\r\n", STANDARD.encode(MIME)),
        "not*base64".to_owned(),
        "QUJD".repeat(3) + "Q",
    ] {
        let response = s.post_mime("v1.0", "/messages", bad).await?;
        expect_error(
            response,
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
        )
        .await?;
    }
    let to_folder = s
        .post_mime("v1.0", "/mailFolders/inbox/messages", STANDARD.encode(MIME))
        .await?;
    expect_error(
        to_folder,
        StatusCode::BAD_REQUEST,
        "UnableToDeserializePostBody",
    )
    .await?;
    assert_eq!(
        s.emu.mailbox(UPN).items.len(),
        1,
        "refused uploads store nothing"
    );
    Ok(())
}

#[tokio::test]
async fn import_mime_makes_a_delivered_item_in_the_named_folder_with_its_role_only()
-> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let folder = expect(
        s.post_json("/mailFolders", &json!({"displayName": "Projects"}))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let id = folder["id"].as_str().context("folder id")?;

    let path = format!("/mailFolders/{id}/importMime");
    let imported = expect(
        s.post_mime("beta", &path, STANDARD.encode(MIME)).await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(imported["isDraft"], false);
    assert_eq!(imported["parentFolderId"], id);
    let items = s.emu.mailbox(UPN).items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].folder_path, "Projects");
    assert!(!items[0].is_draft);
    assert_eq!(items[0].origin, Origin::GraphImportMime);

    let v1 = s.post_mime("v1.0", &path, STANDARD.encode(MIME)).await?;
    assert_eq!(
        v1.status(),
        StatusCode::BAD_REQUEST,
        "importMime is beta only"
    );

    let config = EmulatorConfig {
        graph_roles: vec!["Mail.ReadWrite".to_owned()],
        ..EmulatorConfig::default()
    };
    let without_role = Setup::start(config).await?;
    let denied = without_role
        .post_mime(
            "beta",
            "/mailFolders/inbox/importMime",
            STANDARD.encode(MIME),
        )
        .await?;
    expect_error(denied, StatusCode::FORBIDDEN, "ErrorAccessDenied").await?;
    assert!(without_role.emu.mailbox(UPN).items.is_empty());
    Ok(())
}

#[tokio::test]
async fn json_create_honours_mapi_flags_and_dates_and_patch_rules() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let body = json!({
        "subject": "hi",
        "body": {"contentType": "text", "content": "body"},
        "internetMessageId": "<j1@example.com>",
        "internetMessageHeaders": [{"name": "x-migrated-from", "value": "imap://src/INBOX;UID=42"}],
        "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
            "contentType": "text/plain", "contentBytes": STANDARD.encode("hello")}],
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
            {"id": "SystemTime 0x0E06", "value": "2019-03-04T10:05:00Z"},
            {"id": "SystemTime 0x0039", "value": "2019-03-04T10:00:00Z"}]});
    let created = expect(
        s.post_json("/mailFolders/inbox/messages", &body).await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(created["isDraft"], false);
    assert_eq!(created["isRead"], true);
    assert_eq!(created["receivedDateTime"], "2019-03-04T10:05:00Z");
    assert_eq!(created["sentDateTime"], "2019-03-04T10:00:00Z");
    let id = created["id"].as_str().context("id")?.to_owned();

    let draft = json!({"subject": "plain", "internetMessageId": "<j2@example.com>"});
    let draft = expect(
        s.post_json("/mailFolders/inbox/messages", &draft).await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(draft["isDraft"], true, "no 0x0E07 means a draft");

    let filter =
        "/mailFolders/inbox/messages?$filter=internetMessageId%20eq%20'%3Cj1%40example.com%3E'";
    let found = expect(s.get(filter).await?, StatusCode::OK).await?;
    let ids: Vec<&str> = found["value"]
        .as_array()
        .context("value")?
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let elsewhere = expect(
        s.get(&filter.replace("inbox", "drafts")).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(elsewhere["value"], json!([]));

    let patch =
        json!({"isRead": false, "flag": {"flagStatus": "flagged"}, "categories": ["Migrated"]});
    let in_inbox = format!("/mailFolders/inbox/messages/{id}");
    let patched = expect(s.patch_json(&in_inbox, &patch).await?, StatusCode::OK).await?;
    assert_eq!(patched["isRead"], false);
    let elsewhere = s.get(&format!("/mailFolders/drafts/messages/{id}")).await?;
    expect_error(elsewhere, StatusCode::NOT_FOUND, "ErrorItemNotFound").await?;
    let subject = s
        .patch_json(&format!("/messages/{id}"), &json!({"subject": "changed"}))
        .await?;
    expect_error(
        subject,
        StatusCode::BAD_REQUEST,
        "ErrorInvalidPropertyUpdateSentMessage",
    )
    .await?;
    let flags = json!({"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "9"}]});
    let flags = s.patch_json(&format!("/messages/{id}"), &flags).await?;
    assert_eq!(
        flags.status(),
        StatusCode::BAD_REQUEST,
        "message flags are fixed after creation"
    );
    let header =
        json!({"subject": "x", "internetMessageHeaders": [{"name": "Received", "value": "x"}]});
    let header = s.post_json("/messages", &header).await?;
    expect_error(
        header,
        StatusCode::BAD_REQUEST,
        "InvalidInternetMessageHeader",
    )
    .await?;

    let view = s.emu.mailbox(UPN);
    let item = view.item(&id).context("item stored")?;
    assert_eq!(item.folder_path, "Inbox");
    assert!(!item.is_read);
    assert_eq!(item.flag, FlagStatus::Flagged);
    assert_eq!(item.categories, ["Migrated"]);
    assert_eq!(
        item.subject.as_deref(),
        Some("hi"),
        "refused PATCH changed nothing"
    );
    assert_eq!(
        item.headers,
        [(
            "x-migrated-from".to_owned(),
            "imap://src/INBOX;UID=42".to_owned()
        )]
    );
    let names: Vec<(&str, &[u8])> = item
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.bytes.as_slice()))
        .collect();
    assert_eq!(names, [("a.txt", &b"hello"[..])]);
    Ok(())
}

/// Every `displayName` of a collection, following `@odata.nextLink`; also the pages.
async fn all_names(s: &Setup, first: String) -> anyhow::Result<(Vec<String>, usize)> {
    let (mut names, mut pages, mut url) = (Vec::new(), 0, Some(first));
    while let Some(next) = url {
        let page = expect(s.get_url(&next).await?, StatusCode::OK).await?;
        pages += 1;
        for f in page["value"].as_array().context("value")? {
            names.push(f["displayName"].as_str().context("displayName")?.to_owned());
        }
        url = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    Ok((names, pages))
}

#[tokio::test]
async fn folders_create_refuse_duplicates_and_page() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let projects = expect(
        s.post_json("/mailFolders", &json!({"displayName": "Projects"}))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(projects["displayName"], "Projects");
    let dup = s
        .post_json("/mailFolders", &json!({"displayName": "PROJECTS"}))
        .await?;
    expect_error(dup, StatusCode::CONFLICT, "ErrorFolderExists").await?;
    let id = projects["id"].as_str().context("id")?;
    let child = s
        .post_json(
            &format!("/mailFolders/{id}/childFolders"),
            &json!({"displayName": "projects"}),
        )
        .await?;
    expect(child, StatusCode::CREATED).await?;
    let orphan = s
        .post_json(
            "/mailFolders/AQMkADnope/childFolders",
            &json!({"displayName": "x"}),
        )
        .await?;
    expect_error(orphan, StatusCode::NOT_FOUND, "ErrorItemNotFound").await?;
    let unknown = s
        .post_json("/mailFolders", &json!({"displayName": "y", "color": "red"}))
        .await?;
    expect_error(unknown, StatusCode::BAD_REQUEST, "RequestBodyRead").await?;

    let (names, pages) = all_names(&s, s.url("v1.0", "/mailFolders?$top=3")).await?;
    let visible = [
        "Archive",
        "Conversation History",
        "Deleted Items",
        "Drafts",
        "Inbox",
        "Junk Email",
        "Outbox",
        "Projects",
        "Sent Items",
        "Sync Issues",
    ];
    assert_eq!(names, visible);
    assert_eq!(pages, 4);
    let (hidden, _) =
        all_names(&s, s.url("v1.0", "/mailFolders?includeHiddenFolders=true")).await?;
    assert_eq!(hidden.len(), visible.len() + 1);
    assert!(hidden.iter().any(|n| n == "Conversation Action Settings"));
    let (children, _) = all_names(
        &s,
        s.url("v1.0", &format!("/mailFolders/{id}/childFolders")),
    )
    .await?;
    assert_eq!(children, ["projects"]);
    let (sync, _) = all_names(&s, s.url("v1.0", "/mailFolders/syncissues/childFolders")).await?;
    assert_eq!(sync, ["Conflicts", "Local Failures", "Server Failures"]);
    assert!(s.emu.mailbox(UPN).folder("Projects/projects").is_some());
    Ok(())
}

#[tokio::test]
async fn five_concurrent_requests_to_one_mailbox_meet_the_gate_of_four() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.hold();
    let requests = futures_util::future::join_all((0..5).map(|_| s.get("/mailFolders")));
    let lined_up = || s.emu.in_flight(UPN) == 4 && s.emu.request_count(UPN) == 5;
    let (responses, lined_up) = tokio::join!(requests, release_when(&s.emu, lined_up));
    lined_up?;
    let mut throttled = 0;
    for response in responses {
        let response = response?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            assert!(
                after.is_some_and(|a| a.parse::<u64>().is_ok_and(|n| n >= 1)),
                "Retry-After in seconds"
            );
            let body = expect_error(
                response,
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
            )
            .await?;
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("MailboxConcurrency"))
            );
        } else {
            expect(response, StatusCode::OK).await?;
        }
    }
    assert_eq!(throttled, 1);
    assert_eq!(s.emu.peak_concurrency(UPN), 4);
    assert_eq!(s.emu.request_count(UPN), 5);
    Ok(())
}

#[tokio::test]
async fn upload_budget_throttles_incoming_bytes() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        upload_bytes_per_5min: 300,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let second = s
        .post_mime("v1.0", "/messages", STANDARD.encode(MIME))
        .await?;
    let after = second
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = expect_error(
        second,
        StatusCode::TOO_MANY_REQUESTS,
        "ApplicationThrottled",
    )
    .await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("IncomingBytes"))
    );
    assert_eq!(after.as_deref(), Some("300"));
    assert_eq!(s.emu.mailbox(UPN).items.len(), 1);
    Ok(())
}

#[tokio::test]
async fn request_budget_throttles_and_keeps_counting_throttled_requests() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        requests_per_10min: 2,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    for _ in 0..2 {
        expect(s.get("/mailFolders").await?, StatusCode::OK).await?;
    }
    for _ in 0..2 {
        let refused = s.get("/mailFolders").await?;
        let after = refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let after: u64 = after.context("Retry-After")?.parse()?;
        assert!(
            (599..=600).contains(&after),
            "about the whole 10-minute window: {after}"
        );
        expect_error(
            refused,
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
        )
        .await?;
    }
    assert_eq!(s.emu.request_count(UPN), 4, "throttled requests count too");
    Ok(())
}

#[tokio::test]
async fn injected_faults_fire_once_each_and_503_after_commit_keeps_the_item() -> anyhow::Result<()>
{
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.inject(Fault::Throttle429 {
        count: 1,
        retry_after: Duration::from_secs(7),
    });
    s.emu.inject(Fault::Fail503 {
        count: 1,
        retry_after: None,
    });
    let first = s.get("/mailFolders").await?;
    assert_eq!(
        first.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"7"[..])
    );
    expect_error(first, StatusCode::TOO_MANY_REQUESTS, "ApplicationThrottled").await?;
    let second = s.get("/mailFolders").await?;
    assert!(second.headers().get("retry-after").is_none());
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    expect(s.get("/mailFolders").await?, StatusCode::OK).await?;

    s.emu.inject(Fault::Fail503AfterCommit { count: 1 });
    expect(s.get("/mailFolders").await?, StatusCode::OK).await?; // reads are not writes
    let lost = s
        .post_mime("v1.0", "/messages", STANDARD.encode(MIME))
        .await?;
    assert_eq!(lost.status(), StatusCode::SERVICE_UNAVAILABLE);
    let view = s.emu.mailbox(UPN);
    assert_eq!(
        view.items_in("Drafts").len(),
        1,
        "the write was committed before the 503"
    );
    let lookup = "/messages?$filter=internetMessageId%20eq%20'%3Cm1%40example.com%3E'";
    let found = expect(s.get(lookup).await?, StatusCode::OK).await?;
    assert_eq!(
        found["value"].as_array().map(Vec::len),
        Some(1),
        "a client can find it to de-duplicate"
    );
    expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn bodies_over_four_megabytes_get_413() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let limit = s.emu.config().max_request_bytes;
    let at_limit = STANDARD.encode(vec![b'a'; limit / 4 * 3]);
    assert_eq!(at_limit.len(), limit);
    let over = format!("{at_limit}AAAA");
    let response = s.post_mime("v1.0", "/messages", over).await?;
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
    )
    .await?;
    assert!(s.emu.mailbox(UPN).items.is_empty());
    Ok(())
}

const SOAP_NS: &str = r#"xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages""#;

/// An EWS request with the given header parts and body.
fn soap(version: Option<&str>, impersonate: Option<&str>, body: &str) -> String {
    let version = version.map_or_else(String::new, |v| {
        format!(r#"<t:RequestServerVersion Version="{v}"/>"#)
    });
    let impersonation = impersonate.map_or_else(String::new, |upn| {
        format!("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{upn}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>")
    });
    format!(
        "<soap:Envelope {SOAP_NS}><soap:Header>{version}{impersonation}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// Posts to EWS with an EWS token; returns status and body.
async fn ews(s: &Setup, token: &str, xml: String) -> anyhow::Result<(StatusCode, String)> {
    let url = format!("{}/EWS/Exchange.asmx", s.emu.base_url());
    let response = s
        .http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "text/xml; charset=utf-8")
        .header("x-anchormailbox", UPN)
        .body(xml)
        .send()
        .await?;
    Ok((response.status(), response.text().await?))
}

fn ews_message(children: &str) -> String {
    format!("<t:Message>{children}</t:Message>")
}

fn extended(tag: &str, ty: &str, value: &str) -> String {
    format!(
        r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="{tag}" PropertyType="{ty}"/><t:Value>{value}</t:Value></t:ExtendedProperty>"#
    )
}

#[tokio::test]
async fn ews_create_item_imports_mime_with_mapi_flags_per_item() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let mime = format!(
        "<t:MimeContent CharacterSet=\"UTF-8\">{}</t:MimeContent>",
        STANDARD.encode(MIME)
    );
    let imported = ews_message(&format!(
        "{mime}{}{}{}<t:IsRead>false</t:IsRead>",
        extended("0x0E07", "Integer", "1"),
        extended("0x0E06", "SystemTime", "2019-03-04T10:05:00Z"),
        extended("0x1090", "Integer", "2"),
    ));
    let broken = ews_message("<t:MimeContent>not base64!</t:MimeContent>");
    // xs:base64Binary may be wrapped; this one is read the same as the unwrapped one.
    let wrapped = STANDARD
        .encode(MIME)
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n");
    let wrapped = ews_message(&format!("<t:MimeContent>{wrapped}</t:MimeContent>"));
    let body = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>{imported}{broken}{wrapped}</m:Items></m:CreateItem>"#
    );
    let (status, xml) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), &body)).await?;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let success = xml
        .find(r#"ResponseClass="Success""#)
        .context("first item succeeded")?;
    let error = xml
        .find(r#"ResponseClass="Error""#)
        .context("second item failed")?;
    let third = xml
        .rfind(r#"ResponseClass="Success""#)
        .context("third item")?;
    assert!(
        success < error && error < third,
        "response messages in request order: {xml}"
    );
    assert!(
        xml.contains("<m:ResponseCode>ErrorMimeContentInvalidBase64String</m:ResponseCode>"),
        "{xml}"
    );

    let view = s.emu.mailbox(UPN);
    assert_eq!(view.items.len(), 2);
    assert_eq!(
        view.items[1].mime.as_deref(),
        Some(MIME.as_bytes()),
        "wrapped base64"
    );
    let item = &view.items[0];
    assert!(
        xml.contains(&format!(r#"<t:ItemId Id="{}""#, item.id)),
        "{xml}"
    );
    assert_eq!(
        (item.folder_path.as_str(), item.origin),
        ("Inbox", Origin::EwsMime)
    );
    assert!(!item.is_draft, "0x0E07 without MSGFLAG_UNSENT");
    assert!(!item.is_read, "IsRead wins over the read bit");
    assert_eq!(item.flag, FlagStatus::Flagged);
    assert_eq!(item.received.to_rfc3339(), "2019-03-04T10:05:00+00:00");
    assert_eq!(item.mime.as_deref(), Some(MIME.as_bytes()));

    // Default namespaces instead of prefixes; no flags means a draft, saved in Drafts.
    let plain = format!(
        r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Header><RequestServerVersion xmlns="http://schemas.microsoft.com/exchange/services/2006/types" Version="Exchange2016"/><ExchangeImpersonation xmlns="http://schemas.microsoft.com/exchange/services/2006/types"><ConnectingSID><SmtpAddress>{UPN}</SmtpAddress></ConnectingSID></ExchangeImpersonation></Header><Body><CreateItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages" MessageDisposition="SaveOnly"><Items><Message xmlns="http://schemas.microsoft.com/exchange/services/2006/types"><MimeContent>{}</MimeContent></Message></Items></CreateItem></Body></Envelope>"#,
        STANDARD.encode(MIME)
    );
    let (status, xml) = ews(&s, &token, plain).await?;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let drafts = s
        .emu
        .mailbox(UPN)
        .items_in("Drafts")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(drafts.len(), 1);
    assert!(drafts[0].is_draft);
    assert_eq!(
        drafts[0].sent.map(|t| t.to_rfc3339()).as_deref(),
        Some("2019-03-04T10:00:00+00:00")
    );
    Ok(())
}

#[tokio::test]
async fn ews_refuses_bad_envelopes_with_soap_faults() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let out_of_order = ews_message(&format!(
        "<t:MimeContent>{}</t:MimeContent><t:IsRead>true</t:IsRead>{}",
        STANDARD.encode(MIME),
        extended("0x0E07", "Integer", "1")
    ));
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items>{out_of_order}</m:Items></m:CreateItem>"#
    );
    let cases = [
        (
            soap(Some("Exchange2013_SP1"), Some(UPN), &create),
            "ErrorSchemaValidation",
        ),
        (soap(None, Some(UPN), &create), "ErrorInvalidServerVersion"),
        (
            soap(Some("Exchange2099"), Some(UPN), &create),
            "ErrorInvalidServerVersion",
        ),
        (
            soap(Some("Exchange2013_SP1"), None, &create),
            "ErrorInvalidExchangeImpersonationHeaderData",
        ),
        (
            soap(
                Some("Exchange2013_SP1"),
                Some("nobody@contoso.com"),
                &create,
            ),
            "ErrorNonExistentMailbox",
        ),
        ("<soap:Envelope".to_owned(), "ErrorSchemaValidation"),
    ];
    for (xml, code) in cases {
        let (status, body) = ews(&s, &token, xml).await?;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{code}: {body}");
        assert!(
            body.contains(&format!("a:{code}</faultcode>")),
            "{code}: {body}"
        );
    }
    assert!(
        s.emu.mailbox(UPN).items.is_empty(),
        "a schema fault stores nothing"
    );

    let (status, _) = ews(
        &s,
        &s.token,
        soap(Some("Exchange2013_SP1"), Some(UPN), &create),
    )
    .await?;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a Graph token is not an EWS token"
    );

    s.emu.inject(Fault::EwsServerBusy {
        count: 1,
        back_off_ms: 5000,
    });
    let find = r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#;
    let (status, body) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), find)).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("a:ErrorServerBusy</faultcode>"), "{body}");
    assert!(
        body.contains(r#"<t:Value Name="BackOffMilliseconds">5000</t:Value>"#),
        "{body}"
    );
    let (status, _) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), find)).await?;
    assert_eq!(status, StatusCode::OK, "the fault fired once");
    Ok(())
}

#[tokio::test]
async fn ews_folders_create_find_and_page() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let create = |name: &str| {
        let body = format!(
            r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderId><m:Folders><t:Folder><t:DisplayName>{name}</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>"#
        );
        soap(Some("Exchange2013_SP1"), Some(UPN), &body)
    };
    let (_, xml) = ews(&s, &token, create("Projects")).await?;
    assert!(xml.contains(r#"ResponseClass="Success""#), "{xml}");
    let id = s
        .emu
        .mailbox(UPN)
        .folder("Projects")
        .context("created")?
        .id
        .clone();
    assert!(xml.contains(&format!(r#"<t:FolderId Id="{id}""#)), "{xml}");
    let (status, xml) = ews(&s, &token, create("PROJECTS")).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        xml.contains("<m:ResponseCode>ErrorFolderExists</m:ResponseCode>"),
        "{xml}"
    );

    let find = |traversal: &str, view: &str| {
        let body = format!(
            r#"<m:FindFolder Traversal="{traversal}"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>{view}<m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#
        );
        soap(Some("Exchange2013_SP1"), Some(UPN), &body)
    };
    let (_, shallow) = ews(&s, &token, find("Shallow", "")).await?;
    assert!(
        shallow.contains("<t:DisplayName>Projects</t:DisplayName>"),
        "{shallow}"
    );
    assert!(
        !shallow.contains("<t:DisplayName>Conflicts</t:DisplayName>"),
        "{shallow}"
    );
    let (_, deep) = ews(&s, &token, find("Deep", "")).await?;
    assert!(
        deep.contains("<t:DisplayName>Conflicts</t:DisplayName>"),
        "{deep}"
    );
    let paged =
        r#"<m:IndexedPageFolderView MaxEntriesReturned="2" Offset="0" BasePoint="Beginning"/>"#;
    let (_, page) = ews(&s, &token, find("Shallow", paged)).await?;
    assert_eq!(page.matches("<t:Folder>").count(), 2, "{page}");
    assert!(
        page.contains(r#"IncludesLastItemInRange="false""#),
        "{page}"
    );
    Ok(())
}

/// Posts a `$batch` to `version` and returns status and body.
async fn batch(s: &Setup, version: &str, requests: Value) -> anyhow::Result<(StatusCode, Value)> {
    let url = format!("{}/{version}/$batch", s.emu.base_url());
    let response = s
        .http
        .post(url)
        .bearer_auth(&s.token)
        .json(&json!({"requests": requests}))
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

/// The batch response with `id`.
fn by_id<'v>(body: &'v Value, id: &str) -> anyhow::Result<&'v Value> {
    let responses = body["responses"].as_array().context("responses")?;
    responses
        .iter()
        .find(|r| r["id"] == id)
        .with_context(|| format!("no response {id} in {body}"))
}

#[tokio::test]
async fn batch_runs_items_through_the_pipeline_with_depends_on_and_limits() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let users = format!("/users/{UPN}");
    let json_headers = json!({"Content-Type": "application/json"});
    let requests = json!([
        {"id": "1", "method": "POST", "url": format!("{users}/mailFolders"), "headers": json_headers, "body": {"displayName": "Projects"}},
        {"id": "2", "method": "POST", "url": format!("{users}/mailFolders"), "headers": json_headers, "body": {"displayName": "projects"}, "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": format!("{users}/mailFolders"), "dependsOn": ["2"]},
        {"id": "4", "method": "POST", "url": format!("{users}/messages"), "headers": {"Content-Type": "text/plain"},
         "body": STANDARD.encode(STANDARD.encode(MIME))},
    ]);
    let (status, body) = batch(&s, "v1.0", requests).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(by_id(&body, "1")?["status"], 201);
    assert_eq!(by_id(&body, "2")?["status"], 409);
    assert_eq!(
        by_id(&body, "2")?["body"]["error"]["code"],
        "ErrorFolderExists"
    );
    assert_eq!(by_id(&body, "3")?["status"], 424, "its dependency failed");
    assert_eq!(by_id(&body, "4")?["status"], 201);
    assert_eq!(by_id(&body, "4")?["body"]["isDraft"], true);
    assert_eq!(s.emu.mailbox(UPN).items_in("Drafts").len(), 1);

    s.emu.inject(Fault::Throttle429 {
        count: 1,
        retry_after: Duration::from_secs(9),
    });
    let (_, body) = batch(
        &s,
        "beta",
        json!([{"id": "a", "method": "GET", "url": format!("{users}/mailFolders")}]),
    )
    .await?;
    assert_eq!(by_id(&body, "a")?["status"], 429);
    assert_eq!(by_id(&body, "a")?["headers"]["Retry-After"], "9");

    let get =
        |id: String| json!({"id": id, "method": "GET", "url": format!("{users}/mailFolders")});
    let refused = [
        Value::Array((0..21).map(|i| get(i.to_string())).collect()),
        json!([get("x".into()), get("x".into())]),
        json!([{"id": "b", "method": "POST", "url": format!("{users}/mailFolders"), "body": {"displayName": "x"}}]),
        json!([{"id": "c", "method": "GET", "url": format!("{users}/mailFolders"), "dependsOn": ["nope"]}]),
    ];
    for requests in refused {
        let (status, body) = batch(&s, "v1.0", requests).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn get_value_move_and_attachments_of_a_message() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let created = expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    let got = expect(s.get(&format!("/messages/{id}")).await?, StatusCode::OK).await?;
    assert_eq!(got["internetMessageId"], "<m1@example.com>");
    let raw = s.get(&format!("/messages/{id}/$value")).await?;
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.bytes().await?.as_ref(), MIME.as_bytes());

    let small = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
        "contentType": "text/plain", "contentBytes": STANDARD.encode("hello")});
    expect(
        s.post_json(&format!("/messages/{id}/attachments"), &small)
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let too_small =
        json!({"AttachmentItem": {"attachmentType": "file", "name": "b.bin", "size": 1000}});
    let refused = s
        .post_json(
            &format!("/messages/{id}/attachments/createUploadSession"),
            &too_small,
        )
        .await?;
    expect_error(
        refused,
        StatusCode::BAD_REQUEST,
        "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
    )
    .await?;

    let size = 5 * 1024 * 1024;
    let big: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let item =
        json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": size}});
    let session = s
        .post_json(
            &format!("/messages/{id}/attachments/createUploadSession"),
            &item,
        )
        .await?;
    let session = expect(session, StatusCode::CREATED).await?;
    let upload = session["uploadUrl"]
        .as_str()
        .context("uploadUrl")?
        .to_owned();
    let put = |start: usize, end: usize, auth: bool| {
        let mut request = s
            .http
            .put(&upload)
            .header("content-range", format!("bytes {start}-{}/{size}", end - 1))
            .body(big[start..end].to_vec());
        if auth {
            request = request.bearer_auth(&s.token);
        }
        request.send()
    };
    assert_eq!(
        put(0, 1024, true).await?.status(),
        StatusCode::UNAUTHORIZED,
        "no Authorization to uploadUrl"
    );
    let half = 3 * 1024 * 1024;
    let first = expect(put(0, half, false).await?, StatusCode::OK).await?;
    assert_eq!(first["nextExpectedRanges"], json!([format!("{half}-")]));
    assert_eq!(
        put(half + 1, size, false).await?.status(),
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    let last = put(half, size, false).await?;
    assert_eq!(last.status(), StatusCode::CREATED);
    assert!(last.headers().contains_key("location"));

    let moved = s
        .post_json(
            &format!("/messages/{id}/move"),
            &json!({"destinationId": "inbox"}),
        )
        .await?;
    let moved = expect(moved, StatusCode::CREATED).await?;
    let new_id = moved["id"].as_str().context("id")?.to_owned();
    assert_ne!(
        new_id, id,
        "a move gives a new id without Prefer: IdType=\"ImmutableId\""
    );
    assert_eq!(moved["isDraft"], true, "still a draft after the move");
    let view = s.emu.mailbox(UPN);
    let item = view.item(&new_id).context("moved item")?;
    assert_eq!(item.folder_path, "Inbox");
    let names: Vec<(&str, usize)> = item
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.bytes.len()))
        .collect();
    assert_eq!(names, [("a.txt", 5), ("big.bin", size)]);
    assert_eq!(item.attachments[1].bytes, big);

    let immutable = s
        .http
        .post(s.url("v1.0", &format!("/messages/{new_id}/move")))
        .bearer_auth(&s.token)
        .header("prefer", "IdType=\"ImmutableId\"")
        .json(&json!({"destinationId": "archive"}))
        .send()
        .await?;
    let immutable = expect(immutable, StatusCode::CREATED).await?;
    assert_eq!(immutable["id"], new_id.as_str());

    let url = s.url("v1.0", &format!("/messages/{new_id}"));
    let deleted = s.http.delete(url).bearer_auth(&s.token).send().await?;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let view = s.emu.mailbox(UPN);
    let item = view.item(&new_id).context("soft-deleted item is kept")?;
    assert_eq!(item.folder_path, "Deleted Items");
    Ok(())
}

#[tokio::test]
async fn unknown_and_denied_mailboxes_are_refused() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let other = format!(
        "{}/v1.0/users/nobody@contoso.com/mailFolders",
        s.emu.base_url()
    );
    let response = s.get_url(&other).await?;
    expect_error(response, StatusCode::NOT_FOUND, "ErrorInvalidUser").await?;
    s.emu.deny_mailbox(UPN);
    expect_error(
        s.get("/mailFolders").await?,
        StatusCode::FORBIDDEN,
        "ErrorAccessDenied",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn ews_connection_limit_and_http_503() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        ews_max_concurrency: 2,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    let token = s.emu.issue_ews_token();
    let find = r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>"#;
    let request = || ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), find));
    s.emu.hold();
    let requests = futures_util::future::join_all((0..3).map(|_| request()));
    let lined_up = || s.emu.ews_in_flight(UPN) == 2 && s.emu.request_count(UPN) == 3;
    let (results, lined_up) = tokio::join!(requests, release_when(&s.emu, lined_up));
    lined_up?;
    let mut refused = 0;
    for result in results {
        let (status, body) = result?;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            assert!(
                body.contains("a:ErrorExceededConnectionCount</faultcode>"),
                "{body}"
            );
            refused += 1;
        } else {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                body.contains("<t:DisplayName>Inbox</t:DisplayName>"),
                "{body}"
            );
        }
    }
    assert_eq!(refused, 1);
    assert_eq!(s.emu.ews_peak_concurrency(UPN), 2);
    assert_eq!(s.emu.request_count(UPN), 3);

    s.emu.inject(Fault::Ews503 {
        count: 1,
        retry_after: Some(Duration::from_secs(2)),
    });
    let (status, _) = request().await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = request().await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_full_mailbox_refuses_new_items_on_graph_and_ews() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        mailbox_quota_bytes: 200,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let full = s
        .post_mime("v1.0", "/messages", STANDARD.encode(MIME))
        .await?;
    expect_error(full, StatusCode::FORBIDDEN, "ErrorQuotaExceeded").await?;
    let token = s.emu.issue_ews_token();
    let message = ews_message(&format!(
        "<t:MimeContent>{}</t:MimeContent>",
        STANDARD.encode(MIME)
    ));
    let body = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items>{message}</m:Items></m:CreateItem>"#
    );
    let (status, xml) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), &body)).await?;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert!(
        xml.contains("<m:ResponseCode>ErrorQuotaExceeded</m:ResponseCode>"),
        "{xml}"
    );
    assert_eq!(s.emu.mailbox(UPN).items.len(), 1);
    Ok(())
}

#[tokio::test]
async fn batch_runs_at_most_four_items_at_once() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.hold();
    let url = format!("/users/{UPN}/mailFolders");
    let requests: Vec<Value> = (0..6)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": url}))
        .collect();
    let first_four = || s.emu.in_flight(UPN) == 4;
    let (answer, lined_up) = tokio::join!(
        batch(&s, "v1.0", Value::Array(requests)),
        release_when(&s.emu, first_four)
    );
    lined_up?;
    let (status, body) = answer?;
    assert_eq!(status, StatusCode::OK, "{body}");
    for i in 0..6 {
        assert_eq!(by_id(&body, &i.to_string())?["status"], 200, "{body}");
    }
    assert_eq!(
        s.emu.peak_concurrency(UPN),
        4,
        "four at once, never a fifth"
    );
    Ok(())
}

#[tokio::test]
async fn ews_find_item_finds_an_upload_by_message_id() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let message = ews_message(&format!(
        "<t:MimeContent>{}</t:MimeContent>{}",
        STANDARD.encode(MIME),
        extended("0x0E07", "Integer", "1")
    ));
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>{message}</m:Items></m:CreateItem>"#
    );
    let (status, _) = ews(
        &s,
        &token,
        soap(Some("Exchange2013_SP1"), Some(UPN), &create),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let find = |field: &str, value: &str, folder: &str| {
        let body = format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:Restriction><t:IsEqualTo>{field}<t:FieldURIOrConstant><t:Constant Value="{value}"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="{folder}"/></m:ParentFolderIds></m:FindItem>"#
        );
        soap(Some("Exchange2013_SP1"), Some(UPN), &body)
    };
    let by_uri = r#"<t:FieldURI FieldURI="message:InternetMessageId"/>"#;
    let by_tag = r#"<t:ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/>"#;
    let id = s.emu.mailbox(UPN).items[0].id.clone();
    for field in [by_uri, by_tag] {
        let (status, xml) = ews(&s, &token, find(field, "&lt;m1@example.com&gt;", "inbox")).await?;
        assert_eq!(status, StatusCode::OK, "{xml}");
        assert!(xml.contains(&format!(r#"<t:ItemId Id="{id}""#)), "{xml}");
        assert!(
            xml.contains(&format!("<t:Size>{}</t:Size>", MIME.len())),
            "{xml}"
        );
        assert!(xml.contains(r#"TotalItemsInView="1""#), "{xml}");
    }
    for (value, folder) in [
        ("&lt;other@example.com&gt;", "inbox"),
        ("&lt;m1@example.com&gt;", "drafts"),
    ] {
        let (_, xml) = ews(&s, &token, find(by_uri, value, folder)).await?;
        assert!(xml.contains(r#"TotalItemsInView="0""#), "{xml}");
    }
    let subject = r#"<t:FieldURI FieldURI="item:Subject"/>"#;
    let (status, xml) = ews(&s, &token, find(subject, "hi", "inbox")).await?;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "unsupported restrictions are refused: {xml}"
    );
    Ok(())
}
