//! Graph's error envelope (`{"error":{"code","message","innerError":{…}}}`, json-batching
//! and errors docs) and the per-request ids that go into it.
//!
//! Handlers return a [`GraphError`]; its response carries the error in an extension and
//! the pipeline renders the body, so every error gets the request's own `request-id`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde_json::json;

/// The ids of one request.
#[derive(Clone, Debug)]
pub(crate) struct RequestCtx {
    pub(crate) request_id: String,
    pub(crate) client_request_id: String,
}

impl RequestCtx {
    /// A fresh `request-id` (a GUID, as Graph's are); `client-request-id` echoes the
    /// client's header or else repeats the request id.
    pub(crate) fn new(client_request_id: Option<&str>) -> Self {
        let b: [u8; 16] = rand::random();
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let request_id = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        let client_request_id = client_request_id.map_or_else(|| request_id.clone(), str::to_owned);
        Self {
            request_id,
            client_request_id,
        }
    }
}

/// An error answer from the Graph emulator.
#[derive(Clone, Debug)]
pub(crate) struct GraphError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
    /// `Retry-After` as an HTTP date rather than seconds.
    pub(crate) retry_after_date: bool,
}

impl GraphError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            retry_after_date: false,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Exchange's wording for an id that names nothing.
    pub(crate) fn item_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// A full mailbox (seen as `403`, "Mailbox has exceeded maximum mailbox size.").
    pub(crate) fn quota_exceeded() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ErrorQuotaExceeded",
            "Mailbox has exceeded maximum mailbox size.",
        )
    }

    /// An unknown JSON property, as OData's reader reports it.
    pub(crate) fn unknown_property(name: &str, ty: &str) -> Self {
        Self::bad_request(
            "RequestBodyRead",
            format!(
                "The property '{name}' does not exist on type 'microsoft.graph.{ty}'. Make sure to only use property names that are defined by the type or mark the type as open type."
            ),
        )
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The full response, with the envelope's `innerError` filled from `ctx`.
    pub(crate) fn render(&self, ctx: &RequestCtx) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id,
            }
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            let value = if self.retry_after_date {
                let at = Utc::now() + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(1));
                HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
            } else {
                Some(HeaderValue::from(secs))
            };
            if let Some(value) = value {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize""#),
            );
        }
        response
    }
}

impl IntoResponse for GraphError {
    /// A placeholder carrying the error; the pipeline replaces it with [`GraphError::render`].
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Result of a Graph handler.
pub(crate) type GraphResult = Result<Response, GraphError>;
