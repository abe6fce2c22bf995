//! Graph error answers as [`ConnectorError`]s with the right retry class.
//!
//! `ConnectorError` has no HTTP variant yet, so the class is carried by the text of
//! [`ConnectorError::No`], which `ConnectorError::class` reads: "throttled … Suggested
//! Backoff Time: N milliseconds" is `Throttled(N ms)`, `[UNAVAILABLE]` is `Transient`,
//! anything else `Permanent`. The unit tests below pin each mapping to its class, so a
//! change in that classifier shows up here.
//!
//! Mapping (research §1.4, §1.5): 429/503/504 with `Retry-After` → throttled for that
//! long, without → transient; other 5xx → transient; 401 (after the one renewal) →
//! [`ConnectorError::Auth`]; 403 → permanent, naming the permission; 413 → permanent,
//! naming the 4 MB limit; any other 4xx (`ErrorMimeContentInvalid*`, …) → permanent.

use crate::error::ConnectorError;
use std::time::Duration;

/// A non-2xx Graph answer and what it was for.
pub(super) struct Failure<'a> {
    /// What was being done (`importMime`, `create folder`, …).
    pub(super) op: &'static str,
    /// The mailbox.
    pub(super) upn: &'a str,
    /// `host[:port]` of the endpoint.
    pub(super) server: String,
    /// HTTP status.
    pub(super) status: u16,
    /// Parsed `Retry-After`.
    pub(super) retry_after: Option<Duration>,
    /// The response body (a Graph error envelope, usually).
    pub(super) body: &'a str,
}

impl Failure<'_> {
    /// The error for this answer.
    pub(super) fn into_error(self) -> ConnectorError {
        let (code, message) = envelope(self.body);
        let said = format!("http {} {code}: {message}", self.status);
        let no = |text: String| ConnectorError::No {
            command: format!("graph {}", self.op),
            text,
        };
        match (self.status, self.retry_after) {
            (429 | 503 | 504, Some(after)) => no(format!(
                "{said}; request is throttled. Suggested Backoff Time: {} milliseconds",
                after.as_millis()
            )),
            (401, _) => ConnectorError::Auth {
                user: self.upn.to_owned(),
                server: self.server,
                server_said: format!("{said} (again after renewing the token)"),
            },
            (403, _) => no(format!(
                "{said}; the app needs the application permission {} with admin consent, \
                 and access to mailbox {} (RBAC for Applications)",
                permission(self.op),
                self.upn
            )),
            (413, _) => no(format!("{said}; {}", too_large_text(None))),
            (s, _) if s == 429 || s >= 500 => no(format!("{} [UNAVAILABLE]", unthrottled(&said))),
            _ => no(unthrottled(&said)),
        }
    }
}

/// The permission an operation needs (research §1.5).
fn permission(op: &str) -> &'static str {
    if op == "importMime" {
        "Mail-Advanced.ReadWrite.All"
    } else {
        "Mail.ReadWrite"
    }
}

/// Text that the classifier must not read as throttling (no `Retry-After` was given).
fn unthrottled(text: &str) -> String {
    text.replace("Throttled", "Limited")
        .replace("throttled", "limited")
        .replace("THROTTLED", "LIMITED")
}

/// The refusal text of a message over Graph's request limit.
pub(super) fn too_large_text(bytes: Option<usize>) -> String {
    let size = bytes.map_or(String::new(), |b| format!(" ({b} bytes as sent)"));
    format!(
        "message too large for Graph's 4 MB request limit{size}; it needs another upload \
         path (EWS or IMAP)"
    )
}

/// The refusal of a message over Graph's request limit, before sending it.
pub(super) fn too_large(op: &'static str, bytes: usize) -> ConnectorError {
    ConnectorError::No {
        command: format!("graph {op}"),
        text: too_large_text(Some(bytes)),
    }
}

/// `code` and `message` of a Graph error envelope, or placeholders and the body's start.
fn envelope(body: &str) -> (String, String) {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let error = json.as_ref().and_then(|j| j.get("error"));
    let field = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    match (field("code"), field("message")) {
        (Some(code), Some(message)) => (code, message),
        (Some(code), None) => (code, String::new()),
        _ => (
            "(no error code)".to_owned(),
            body.trim().chars().take(200).collect(),
        ),
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay in seconds, or an HTTP date.
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhaul_proto::ErrorClass;

    fn error(
        op: &'static str,
        status: u16,
        retry_after: Option<u64>,
        code: &str,
    ) -> ConnectorError {
        let body = format!(r#"{{"error":{{"code":"{code}","message":"m {code}"}}}}"#);
        Failure {
            op,
            upn: "bob@contoso.com",
            server: "graph.microsoft.com".into(),
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: &body,
        }
        .into_error()
    }

    #[test]
    fn statuses_are_classified() {
        use ErrorClass::*;
        let secs = |s| Throttled(Duration::from_secs(s));
        for (status, after, code, want) in [
            (429, Some(7), "ApplicationThrottled", secs(7)),
            (503, Some(2), "ServiceUnavailable", secs(2)),
            (504, Some(0), "GatewayTimeout", secs(0)),
            (429, None, "ApplicationThrottled", Transient),
            (503, None, "ServiceUnavailable", Transient),
            (504, None, "GatewayTimeout", Transient),
            (500, None, "InternalServerError", Transient),
            (401, None, "InvalidAuthenticationToken", Permanent),
            (403, None, "ErrorAccessDenied", Permanent),
            (413, None, "RequestEntityTooLarge", Permanent),
            (400, None, "ErrorMimeContentInvalidBase64String", Permanent),
            (400, None, "ErrorMimeContentInvalid", Permanent),
            (404, None, "ErrorItemNotFound", Permanent),
            (409, None, "ErrorFolderExists", Permanent),
        ] {
            let err = error("create", status, after, code);
            assert_eq!(err.class(), want, "{status} {code}: {err}");
            assert!(err.to_string().contains(&format!("http {status}")), "{err}");
        }
    }

    #[test]
    fn texts_name_the_fix() {
        let denied = error("importMime", 403, None, "ErrorAccessDenied").to_string();
        assert!(denied.contains("Mail-Advanced.ReadWrite.All"), "{denied}");
        let denied = error("create folder", 403, None, "ErrorAccessDenied").to_string();
        assert!(
            denied.contains("Mail.ReadWrite") && denied.contains("bob@contoso.com"),
            "{denied}"
        );
        let big = error("importMime", 413, None, "RequestEntityTooLarge").to_string();
        assert!(big.contains("4 MB request limit"), "{big}");
        assert!(matches!(
            error("x", 401, None, "InvalidAuthenticationToken"),
            ConnectorError::Auth { .. }
        ));
        assert!(
            too_large("importMime", 5)
                .to_string()
                .contains("4 MB request limit")
        );
    }

    #[test]
    fn bodies_without_envelope_are_kept() {
        let (code, message) = envelope("<html>Service Unavailable</html>");
        assert_eq!(code, "(no error code)");
        assert_eq!(message, "<html>Service Unavailable</html>");
    }

    #[test]
    fn retry_after_is_parsed() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
