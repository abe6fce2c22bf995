//! Sending one EWS request: through the [`RequestGate`], with the login (a bearer
//! token renewed once on `401`), the answer read whole and turned into the operation's
//! response element or a classified error ([`super::error`]); and reading paged
//! `FindFolder`/`FindItem` answers.
//!
//! Invariant: [`EwsClient::call_payload`] (which `call` wraps) is the only place a request
//! is sent, and it calls `admit` before and `done` exactly once after every request,
//! including the `401` that leads to a renewal and a request whose future is dropped
//! mid-flight (reported as [`Outcome::Failed`]). The token endpoint is not gated.

use super::error::{self, Refusal};
use super::xml::{self, Element};
use super::{EwsAuth, EwsClient, HTTP_TIMEOUT};
use crate::body::{Body, Mime};
use crate::error::ConnectorError;
use crate::gate::{Outcome, Pass};
use crate::oauth::TokenProvider;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt as _;
use mailhaul_proto::ErrorClass;
use secrecy::{ExposeSecret as _, SecretString};
use std::time::Duration;

impl EwsClient {
    /// Sends one operation (`body` is the `m:` operation element) and returns the
    /// operation's response element (`m:…Response`). SOAP faults and HTTP failures are
    /// errors; per-item response messages are left to the caller.
    pub(super) async fn call(
        &self,
        op: &'static str,
        body: &str,
    ) -> Result<Element, ConnectorError> {
        let mut payload = Payload::default();
        payload.text(body);
        self.call_payload(op, payload).await
    }

    /// [`EwsClient::call`] with a body that may stream MIME from temporary files.
    pub(super) async fn call_payload(
        &self,
        op: &'static str,
        body: Payload,
    ) -> Result<Element, ConnectorError> {
        let mut envelope = Payload::default();
        envelope.text(&xml::envelope_open(&self.header()));
        envelope.parts.extend(body.parts);
        envelope.text(xml::ENVELOPE_CLOSE);
        let mut renewed = false;
        loop {
            let mut request = self
                .http
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
                .header(reqwest::header::ACCEPT, "text/xml");
            if self.auth.impersonates() {
                request = request.header("X-AnchorMailbox", &self.mailbox);
            }
            let token = match &self.auth {
                EwsAuth::Basic { user, password } | EwsAuth::Impersonation { user, password } => {
                    request = request.basic_auth(user, Some(password.expose_secret()));
                    None
                }
                EwsAuth::OAuth(tokens) => {
                    let token = self.token(tokens).await?;
                    request = request.bearer_auth(token.expose_secret());
                    Some(token)
                }
            };
            // Only a request that may be sent again (OAuth, before the renewal) keeps a
            // copy of its body: batches of MIME can be tens of megabytes (spooled MIME
            // is shared, not copied).
            let may_resend = matches!(self.auth, EwsAuth::OAuth(_)) && !renewed;
            let body = if may_resend {
                envelope.clone()
            } else {
                std::mem::take(&mut envelope)
            };
            let length = body.len();
            self.gate.admit(length).await?;
            let mut pass = Pass {
                gate: self.gate.as_ref(),
                outcome: Outcome::Failed,
            };
            let response = request
                .header(reqwest::header::CONTENT_LENGTH, length)
                .body(body.into_request_body())
                .send()
                .await
                .map_err(|e| self.transport(op, e))?;
            let status = response.status();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let retry_after =
                header("retry-after").and_then(|v| crate::http::parse_retry_after(&v));
            let diagnostics = header("x-ms-diagnostics");
            let offered = header("www-authenticate");
            let text = response.text().await.map_err(|e| self.transport(op, e))?;
            if status == reqwest::StatusCode::UNAUTHORIZED {
                drop(pass);
                if let (Some(token), EwsAuth::OAuth(tokens)) = (&token, &self.auth)
                    && !renewed
                {
                    // Expired or revoked early: drop it, fetch a new one, try once more.
                    tokens.refused(token).await;
                    renewed = true;
                    continue;
                }
                return Err(self.refused_login(
                    diagnostics.as_deref(),
                    offered.as_deref(),
                    renewed,
                ));
            }
            let answer = self.answer(op, status.as_u16(), retry_after, &text);
            pass.outcome = match &answer {
                Ok(_) => Outcome::Ok,
                Err(e) => match e.class() {
                    ErrorClass::Throttled(after) => Outcome::Throttled(after),
                    ErrorClass::Transient | ErrorClass::Permanent => Outcome::Failed,
                },
            };
            return answer;
        }
    }

    /// Reads an answer that is not a `401`.
    fn answer(
        &self,
        op: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        text: &str,
    ) -> Result<Element, ConnectorError> {
        let parsed = xml::parse(text);
        if let Ok(root) = &parsed
            && let Some(mut refusal) = Refusal::from_fault(root)
        {
            if refusal.back_off.is_none() && refusal.code == "ErrorServerBusy" {
                refusal.back_off = retry_after;
            }
            return Err(refusal.into_error(op, &self.mailbox));
        }
        if !(200..300).contains(&status) {
            return Err(error::http(
                op,
                self.url.as_str(),
                status,
                retry_after,
                text,
            ));
        }
        let root = parsed.map_err(|why| {
            ConnectorError::Protocol(format!(
                "ews {op}: {} answered http {status} with a body that is not XML ({why})",
                self.url
            ))
        })?;
        root.path(&["Body"])
            .and_then(|b| b.children.first())
            .cloned()
            .ok_or_else(|| {
                ConnectorError::Protocol(format!(
                    "ews {op}: {} answered without a SOAP Body holding a response",
                    self.url
                ))
            })
    }

    /// The login that a `401` refused. `offered` is `WWW-Authenticate`: an Exchange
    /// Server whose EWS virtual directory has Basic turned off offers only NTLM and
    /// Negotiate, which this client does not speak.
    pub(super) fn refused_login(
        &self,
        diagnostics: Option<&str>,
        offered: Option<&str>,
        renewed: bool,
    ) -> ConnectorError {
        let user = match &self.auth {
            EwsAuth::Basic { user, .. } | EwsAuth::Impersonation { user, .. } => user.clone(),
            EwsAuth::OAuth(_) => format!("oauth app for {}", self.mailbox),
        };
        let mut said = "http 401".to_owned();
        if let Some(d) = diagnostics {
            said.push_str(&format!(" (x-ms-diagnostics: {d})"));
        }
        if renewed {
            said.push_str(", again after renewing the token");
        }
        if let Some(offered) = offered
            && !matches!(self.auth, EwsAuth::OAuth(_))
            && !offered.to_ascii_lowercase().contains("basic")
        {
            said.push_str(&format!(
                "; the server offers only {offered}: enable Basic authentication on its \
                 EWS virtual directory or use OAuth"
            ));
        }
        ConnectorError::Auth {
            user,
            server: self.server(),
            server_said: said,
        }
    }

    async fn token(&self, tokens: &TokenProvider) -> Result<SecretString, ConnectorError> {
        tokens
            .token()
            .await
            .map_err(|e| match e.transient_endpoint() {
                Some(_) => ConnectorError::Io(std::io::Error::other(e)),
                None => ConnectorError::Auth {
                    user: format!("oauth app for {}", self.mailbox),
                    server: self.server(),
                    server_said: e.to_string(),
                },
            })
    }

    /// `host[:port]` of the endpoint, for errors.
    pub(super) fn server(&self) -> String {
        let host = self.url.host_str().unwrap_or("ews");
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// A failure to get an answer at all.
    fn transport(&self, op: &str, e: reqwest::Error) -> ConnectorError {
        if e.is_timeout() {
            return ConnectorError::Timeout {
                command: format!("ews {op}"),
                after: HTTP_TIMEOUT,
            };
        }
        if let Some(tls) = tls_failure(&e) {
            return ConnectorError::Tls {
                server: self.server(),
                detail: format!(
                    "{tls}; if the server uses a private CA, set the EWS ca_file to its PEM file"
                ),
                source: None,
            };
        }
        if e.is_connect() {
            return ConnectorError::Connect {
                server: self.server(),
                source: std::io::Error::other(e),
            };
        }
        ConnectorError::Io(std::io::Error::other(e))
    }

    /// Every page of a `FindFolder`/`FindItem` (`make` builds the operation for an
    /// offset): the children of each page's `RootFolder/{container}`.
    pub(super) async fn pages(
        &self,
        op: &'static str,
        container: &str,
        make: impl Fn(usize) -> String,
    ) -> Result<Vec<Element>, ConnectorError> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let response = self.call(op, &make(offset)).await?;
            let message = single_message(op, &response)?;
            if message.attr("ResponseClass") == Some("Error") {
                return Err(Refusal::from_response(message).into_error(op, &self.mailbox));
            }
            let root = message.child("RootFolder").ok_or_else(|| {
                ConnectorError::Protocol(format!("ews {op} answered without a RootFolder"))
            })?;
            let entries = root.child(container).map_or(&[][..], |c| &c.children);
            out.extend(entries.iter().cloned());
            if root.attr("IncludesLastItemInRange") != Some("false") || entries.is_empty() {
                return Ok(out);
            }
            let next = root
                .attr("IndexedPagingOffset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(offset + entries.len());
            if next <= offset {
                return Err(ConnectorError::Protocol(format!(
                    "ews {op}: paging did not advance past offset {offset}"
                )));
            }
            offset = next;
        }
    }
}

/// The response messages of an operation response, in request order.
pub(super) fn messages(response: &Element) -> &[Element] {
    response
        .child("ResponseMessages")
        .map_or(&[][..], |m| &m.children)
}

/// The one response message of a single-target request.
pub(super) fn single_message<'a>(
    op: &str,
    response: &'a Element,
) -> Result<&'a Element, ConnectorError> {
    match messages(response) {
        [one] => Ok(one),
        other => Err(ConnectorError::Protocol(format!(
            "ews {op} answered {} response messages for one request",
            other.len()
        ))),
    }
}

/// The description of a TLS failure in `e`'s causes, if it is one. rustls reports
/// certificate and protocol failures as `io::ErrorKind::InvalidData` (the same rule as
/// [`ConnectorError::class`] for IMAP). `io::Error::source` skips the error it wraps,
/// so wrapped errors are followed with `get_ref`.
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let mut causes: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(c) = causes.pop() {
        if let Some(tls) = c.downcast_ref::<tokio_rustls::rustls::Error>() {
            return Some(format!("tls handshake failed ({tls})"));
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return Some(format!("tls handshake failed ({io})"));
            }
            if let Some(inner) = io.get_ref() {
                causes.push(inner);
            }
        }
        if let Some(next) = c.source() {
            causes.push(next);
        }
    }
    None
}

/// An operation's body: XML text with, in between, MIME that is sent as base64 while it
/// is read (a spooled body never sits whole in memory, base64 or not).
#[derive(Debug, Clone, Default)]
pub(super) struct Payload {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    /// `prefix` then `body`, base64-encoded on the way out.
    Base64 {
        prefix: Vec<u8>,
        body: Body,
    },
}

impl Payload {
    /// Appends XML text.
    pub(super) fn text(&mut self, xml: &str) {
        match self.parts.last_mut() {
            Some(Part::Text(t)) => t.push_str(xml),
            _ => self.parts.push(Part::Text(xml.to_owned())),
        }
    }

    /// Appends a MIME as base64: encoded here when it is in memory, streamed when spooled.
    pub(super) fn base64(&mut self, mime: Mime<'_>) {
        match mime {
            Mime::Body { prefix, body } if body.is_spooled() => self.parts.push(Part::Base64 {
                prefix: prefix.to_vec(),
                body: body.clone(),
            }),
            Mime::Body { prefix, body } => {
                // Encoded as one stream without joining the two first.
                use std::io::Write as _;
                let mut enc = base64::write::EncoderStringWriter::new(&STANDARD);
                enc.write_all(prefix)
                    .and_then(|()| enc.write_all(body.in_memory().unwrap_or_default()))
                    .expect("writing into a String cannot fail");
                self.text(&enc.into_inner());
            }
            Mime::Bytes(bytes) => self.text(&STANDARD.encode(bytes)),
        }
    }

    /// Its length in bytes, as sent.
    fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len() as u64,
                Part::Base64 { prefix, body } => Mime::Body { prefix, body }.base64_len(),
            })
            .sum()
    }

    fn into_request_body(self) -> reqwest::Body {
        let mut parts = self.parts;
        if let [Part::Text(_)] = parts.as_slice()
            && let Some(Part::Text(t)) = parts.pop()
        {
            return reqwest::Body::from(t);
        }
        let pieces = parts.into_iter().map(|p| match p {
            Part::Text(t) => futures_util::stream::once(async move { Ok(t.into_bytes()) }).boxed(),
            Part::Base64 { prefix, body } => Mime::Body {
                prefix: &prefix,
                body: &body,
            }
            .base64_pieces()
            .boxed(),
        });
        reqwest::Body::wrap_stream(futures_util::stream::iter(pieces).flatten())
    }

    /// The text of a payload without streamed parts (tests).
    #[cfg(test)]
    pub(super) fn into_text(self) -> String {
        self.parts
            .into_iter()
            .map(|p| match p {
                Part::Text(t) => t,
                Part::Base64 { .. } => panic!("a streamed part"),
            })
            .collect()
    }
}
