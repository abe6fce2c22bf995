//! Sending one Graph request: through the [`RequestGate`], with the bearer token
//! (renewed once on `401`), the answer read whole and a failure turned into a
//! classified error ([`super::error`]).
//!
//! Invariant: [`GraphClient::exchange`] is the only place a request is sent, and it
//! calls `admit` before and `done` exactly once after every request, including the
//! `401` that leads to a renewal and a request whose future is dropped mid-flight
//! (reported as [`Outcome::Failed`]). The token endpoint is not gated.

use super::error::{self, Failure};
use super::{GraphClient, HTTP_TIMEOUT};
use crate::error::ConnectorError;
use crate::gate::{Outcome, Pass};
use mailhaul_proto::ErrorClass;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};
use std::time::Duration;

/// A request body.
pub(super) enum Body {
    None,
    /// Serialised JSON, sent as `application/json`.
    Json(Vec<u8>),
    /// Base64 MIME, sent as `text/plain`.
    Mime(String),
}

impl Body {
    /// JSON from a value.
    pub(super) fn json(value: &serde_json::Value) -> Body {
        Body::Json(value.to_string().into_bytes())
    }

    /// Bytes on the wire, for the gate.
    pub(super) fn len(&self) -> usize {
        match self {
            Body::None => 0,
            Body::Json(bytes) => bytes.len(),
            Body::Mime(base64) => base64.len(),
        }
    }
}

/// A whole answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<Duration>,
    pub(super) bytes: Vec<u8>,
}

impl GraphClient {
    /// Sends `request` (whose body is `upload_bytes` long) once the gate admits it, and
    /// reads the whole answer. Any status is an `Ok` answer; only transport failures are
    /// errors.
    pub(super) async fn exchange(
        &self,
        op: &str,
        request: RequestBuilder,
        upload_bytes: usize,
    ) -> Result<Answer, ConnectorError> {
        self.gate
            .admit(u64::try_from(upload_bytes).unwrap_or(u64::MAX))
            .await?;
        let mut pass = Pass {
            gate: self.gate.as_ref(),
            outcome: Outcome::Failed,
        };
        let response = request.send().await.map_err(|e| transport(op, e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::http::parse_retry_after);
        let bytes = response.bytes().await.map_err(|e| transport(op, e))?;
        pass.outcome = if status.is_success() {
            Outcome::Ok
        } else {
            match error::class(status.as_u16(), retry_after) {
                ErrorClass::Throttled(after) => Outcome::Throttled(after),
                ErrorClass::Transient | ErrorClass::Permanent => Outcome::Failed,
            }
        };
        Ok(Answer {
            status,
            retry_after,
            bytes: bytes.to_vec(),
        })
    }

    /// Sends a request with the bearer token; on `401` renews the token and sends it once
    /// more. Returns the body of a 2xx answer.
    pub(super) async fn call_raw(
        &self,
        op: &'static str,
        upn: &str,
        method: Method,
        url: Url,
        body: Body,
    ) -> Result<Vec<u8>, ConnectorError> {
        let mut renewed = false;
        loop {
            let token = self.token(upn).await?;
            let request = self.request(method.clone(), url.clone(), &body, &token);
            let answer = self.exchange(op, request, body.len()).await?;
            if answer.status.is_success() {
                return Ok(answer.bytes);
            }
            if answer.status == StatusCode::UNAUTHORIZED && !renewed {
                // Expired or revoked early: drop it, fetch a new one, try once more.
                self.tokens.refused(&token).await;
                renewed = true;
                continue;
            }
            return Err(self.failure(op, upn, &answer, true));
        }
    }

    /// Like [`GraphClient::call_raw`], the answer read as JSON (`Null` when empty).
    pub(super) async fn call(
        &self,
        op: &'static str,
        upn: &str,
        method: Method,
        url: Url,
        body: Body,
    ) -> Result<serde_json::Value, ConnectorError> {
        let bytes = self.call_raw(op, upn, method, url, body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ConnectorError::Protocol(format!("graph {op} answered with bad json: {e}"))
        })
    }

    /// The classified error of a non-2xx answer.
    pub(super) fn failure(
        &self,
        op: &'static str,
        upn: &str,
        answer: &Answer,
        bearer: bool,
    ) -> ConnectorError {
        Failure {
            op,
            upn,
            server: self.server(),
            status: answer.status.as_u16(),
            retry_after: answer.retry_after,
            body: &String::from_utf8_lossy(&answer.bytes),
            bearer,
        }
        .into_error()
    }

    fn request(
        &self,
        method: Method,
        url: Url,
        body: &Body,
        token: &SecretString,
    ) -> RequestBuilder {
        let request = self
            .http
            .request(method, url)
            .bearer_auth(token.expose_secret())
            // Ids that survive moves, so a found item's id stays valid (research §1.2).
            .header("Prefer", "IdType=\"ImmutableId\"");
        match body {
            Body::None => request,
            Body::Json(json) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json.clone()),
            Body::Mime(base64) => request
                .header(reqwest::header::CONTENT_TYPE, "text/plain")
                .body(base64.clone()),
        }
    }

    async fn token(&self, upn: &str) -> Result<SecretString, ConnectorError> {
        self.tokens
            .token()
            .await
            .map_err(|e| match e.transient_endpoint() {
                Some(_) => ConnectorError::Io(std::io::Error::other(e)),
                None => ConnectorError::Auth {
                    user: upn.to_owned(),
                    server: self.server(),
                    server_said: e.to_string(),
                },
            })
    }

    /// Follows `@odata.nextLink` from `first`, collecting every `value` entry.
    pub(super) async fn collect(
        &self,
        op: &'static str,
        upn: &str,
        first: Url,
    ) -> Result<Vec<serde_json::Value>, ConnectorError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let page = self.call(op, upn, Method::GET, url, Body::None).await?;
            if let Some(values) = page.get("value").and_then(|v| v.as_array()) {
                out.extend(values.iter().cloned());
            }
            if let Some(link) = page.get("@odata.nextLink").and_then(|v| v.as_str()) {
                next = Some(Url::parse(link).map_err(|e| {
                    ConnectorError::Protocol(format!("graph {op}: bad @odata.nextLink ({e})"))
                })?);
            }
        }
        Ok(out)
    }
}

/// A failure to get an answer at all.
fn transport(op: &str, e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::Timeout {
            command: format!("graph {op}"),
            after: HTTP_TIMEOUT,
        }
    } else {
        ConnectorError::Io(std::io::Error::other(e))
    }
}
