//! The Exchange emulator behaves as Microsoft documents Graph and EWS, checked over
//! HTTP with reqwest (no mailhaul client code involved), one concern per module; the
//! shared setup and helpers are here.

mod ews;
mod ews_faults;
mod graph;
mod items;
mod limits;
mod read;
mod standalone;
mod throttle;

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
