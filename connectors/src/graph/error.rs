//! Graph error answers as [`ConnectorError::Service`]s that carry their retry class.
//!
//! Mapping (research §1.4, §1.5): 429 → throttled for its `Retry-After`, or for 3 s
//! without one (the Graph SDKs' initial back-off); 503/504 with `Retry-After` →
//! throttled for that long, without → transient; other 5xx → transient; 401 (after the
//! one renewal) → [`ConnectorError::Auth`]; 403 → permanent, naming the permission;
//! 413 and `ErrorMessageSizeExceeded` → permanent, naming the limit;
//! `ErrorQuotaExceeded` → permanent; 404 `MailboxNotEnabledForRESTAPI` → throttled for
//! five minutes (the mailbox is not ready yet); any other 4xx → permanent. The text keeps what
//! Graph said ("http 429 ApplicationThrottled: …") and adds what to do.

use crate::error::ConnectorError;
use crate::exchange_state::{is_named_property_quota, named_property_quota_advice};
use mailhaul_proto::ErrorClass;
use std::time::Duration;

/// [`ConnectorError::Service::service`] of every Graph error.
pub(super) const SERVICE: &str = "graph";

/// The wait after a `429` without `Retry-After`: the Graph SDKs' initial back-off
/// (msgraph-sdk-design RetryHandler, research §1.4).
const DEFAULT_THROTTLE: Duration = Duration::from_secs(3);

/// Graph's code for a mailbox that exists in the directory but has no Exchange Online
/// mailbox yet (unlicensed, or provisioning: exchange-fidelity.md §4.3).
const NOT_PROVISIONED: &str = "MailboxNotEnabledForRESTAPI";

/// How long a not-yet-provisioned mailbox waits before it is tried again: licences are
/// often assigned during the migration window, and provisioning takes minutes.
const NOT_PROVISIONED_WAIT: Duration = Duration::from_secs(300);

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
    /// Whether the request carried the app's bearer token (an upload session's URL
    /// carries its own, so its `401` is not a login problem).
    pub(super) bearer: bool,
}

/// The retry class of a non-2xx status.
pub(super) fn class(status: u16, retry_after: Option<Duration>) -> ErrorClass {
    match (status, retry_after) {
        (429, after) => ErrorClass::Throttled(after.unwrap_or(DEFAULT_THROTTLE)),
        (503 | 504, Some(after)) => ErrorClass::Throttled(after),
        (s, _) if s >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

impl Failure<'_> {
    /// The error for this answer.
    pub(super) fn into_error(self) -> ConnectorError {
        let (code, message) = envelope(self.body);
        let said = format!("http {} {code}: {message}", self.status);
        // A full quota does not empty itself while we wait, whatever the status; a
        // mailbox still being provisioned (or not yet licensed) will be ready later, and
        // is so for every message at once: the whole slice waits, none fails.
        let class = match code.as_str() {
            "ErrorQuotaExceeded" => ErrorClass::Permanent,
            NOT_PROVISIONED => ErrorClass::Throttled(NOT_PROVISIONED_WAIT),
            _ => class(self.status, self.retry_after),
        };
        let text = match (self.status, code.as_str()) {
            (401, _) if self.bearer => {
                return ConnectorError::Auth {
                    user: self.upn.to_owned(),
                    server: self.server,
                    server_said: format!("{said} (again after renewing the token)"),
                };
            }
            (401, _) => format!(
                "{said}; the upload session refused its own URL (expired or altered); the \
                 attachment must be uploaded again"
            ),
            (_, NOT_PROVISIONED) => format!(
                "{said}; mailbox {} is not ready for Graph yet (no Exchange Online licence, \
                 or still being provisioned): its messages wait and are tried again in {} \
                 minutes; assign a licence if this lasts",
                self.upn,
                NOT_PROVISIONED_WAIT.as_secs() / 60
            ),
            (_, "ErrorQuotaExceeded") if is_named_property_quota(&message) => {
                format!("{said}; {}", named_property_quota_advice(self.upn))
            }
            (_, "ErrorQuotaExceeded") => format!(
                "{said}; mailbox {} is full: free space or raise its quota, then migrate again",
                self.upn
            ),
            (_, "ErrorMessageSizeExceeded") => format!(
                "{said}; the message is over the mailbox's maximum message size (Exchange \
                 Online: 36 MB received by default, at most 150 MB): raise MaxReceiveSize of \
                 mailbox {} or leave the message out",
                self.upn
            ),
            (413, _) => format!("{said}; {}", over_request_limit(self.op)),
            (403, _) => format!(
                "{said}; the app needs the application permission {} with admin consent, \
                 and access to mailbox {} (RBAC for Applications)",
                permission(self.op),
                self.upn
            ),
            _ => match (class, self.retry_after) {
                (ErrorClass::Throttled(after), Some(_)) => {
                    format!("{said} (Retry-After {}s)", after.as_secs())
                }
                (ErrorClass::Throttled(after), None) => {
                    format!("{said} (no Retry-After; waiting {}s)", after.as_secs())
                }
                _ => said,
            },
        };
        ConnectorError::Service {
            service: SERVICE,
            op: self.op.to_owned(),
            text,
            class,
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

/// What a `413` means for `op`.
fn over_request_limit(op: &str) -> &'static str {
    if op == "upload attachment" {
        "the chunk passed the upload session's 4 MB limit"
    } else {
        "the request passed Graph's 4 MB request limit"
    }
}

/// A permanent refusal decided before sending (or after, by this client): `text` says
/// why and what to do.
pub(super) fn refused(op: &'static str, text: String) -> ConnectorError {
    ConnectorError::Service {
        service: SERVICE,
        op: op.to_owned(),
        text,
        class: ErrorClass::Permanent,
    }
}

/// Whether `e` is Graph's answer `status` with error `code`.
pub(super) fn is_answer(e: &ConnectorError, status: u16, code: &str) -> bool {
    matches!(e, ConnectorError::Service { service: SERVICE, text, .. }
        if text.starts_with(&format!("http {status} {code}:")))
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

#[cfg(test)]
mod tests {
    use super::*;

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
            bearer: true,
        }
        .into_error()
    }

    #[test]
    fn statuses_are_classified() {
        use ErrorClass::*;
        let secs = |s| Throttled(Duration::from_secs(s));
        for (status, after, code, want) in [
            (429, Some(7), "ApplicationThrottled", secs(7)),
            (429, None, "ApplicationThrottled", secs(3)),
            (503, Some(2), "ServiceUnavailable", secs(2)),
            (504, Some(0), "GatewayTimeout", secs(0)),
            (503, None, "ServiceUnavailable", Transient),
            (504, None, "GatewayTimeout", Transient),
            (500, None, "InternalServerError", Transient),
            (502, Some(9), "BadGateway", Transient),
            (401, None, "InvalidAuthenticationToken", Permanent),
            (403, None, "ErrorAccessDenied", Permanent),
            (403, None, "ErrorQuotaExceeded", Permanent),
            (413, None, "RequestEntityTooLarge", Permanent),
            (400, None, "ErrorMessageSizeExceeded", Permanent),
            (400, None, "ErrorMimeContentInvalidBase64String", Permanent),
            (400, None, "ErrorMimeContentInvalid", Permanent),
            (404, None, "ErrorItemNotFound", Permanent),
            (404, None, "MailboxNotEnabledForRESTAPI", secs(300)),
            (409, None, "ErrorFolderExists", Permanent),
            (416, None, "InvalidRange", Permanent),
        ] {
            let err = error("create", status, after, code);
            assert_eq!(err.class(), want, "{status} {code}: {err}");
            let text = err.to_string();
            if status != 401 {
                assert!(
                    text.starts_with(&format!("graph create: http {status} {code}: m {code}")),
                    "{text}"
                );
                assert!(is_answer(&err, status, code), "{text}");
            }
        }
    }

    #[test]
    fn texts_name_the_fix() {
        let says = |e: ConnectorError, what: &[&str]| {
            let text = e.to_string();
            for w in what {
                assert!(text.contains(w), "{text} should say {w:?}");
            }
        };
        says(
            error("importMime", 403, None, "ErrorAccessDenied"),
            &["Mail-Advanced.ReadWrite.All"],
        );
        says(
            error("create folder", 403, None, "ErrorAccessDenied"),
            &["Mail.ReadWrite", "bob@contoso.com"],
        );
        says(
            error("importMime", 413, None, "RequestEntityTooLarge"),
            &["4 MB request limit"],
        );
        says(
            error("upload attachment", 413, None, "RequestEntityTooLarge"),
            &["upload session's 4 MB limit"],
        );
        says(
            error("add attachment", 400, None, "ErrorMessageSizeExceeded"),
            &["maximum message size", "150 MB", "MaxReceiveSize"],
        );
        says(
            error("create message", 403, None, "ErrorQuotaExceeded"),
            &["bob@contoso.com is full"],
        );
        let quota = Failure {
            op: "create message",
            upn: "bob@contoso.com",
            server: "graph.microsoft.com".into(),
            status: 500,
            retry_after: None,
            body: r#"{"error":{"code":"ErrorQuotaExceeded","message":"Cannot get ID from name."}}"#,
            bearer: true,
        }
        .into_error();
        let text = quota.to_string();
        assert!(!text.contains("is full"), "{text}");
        says(
            quota,
            &[
                "named-property quota",
                "not a full mailbox",
                "Microsoft Support",
                "x_headers",
            ],
        );
        says(
            error("create message", 429, Some(7), "ApplicationThrottled"),
            &["Retry-After 7s"],
        );
        says(
            error("create message", 429, None, "ApplicationThrottled"),
            &["no Retry-After; waiting 3s"],
        );
        assert!(matches!(
            error("x", 401, None, "InvalidAuthenticationToken"),
            ConnectorError::Auth { .. }
        ));
        let session = Failure {
            op: "upload attachment",
            upn: "bob@contoso.com",
            server: "outlook.office.com".into(),
            status: 401,
            retry_after: None,
            body: "",
            bearer: false,
        }
        .into_error();
        assert_eq!(session.class(), ErrorClass::Permanent);
        says(session, &["upload session refused its own URL"]);
        let r = refused("create message", "why".into());
        assert_eq!(r.class(), ErrorClass::Permanent);
        assert_eq!(r.to_string(), "graph create message: why");
    }

    #[test]
    fn bodies_without_envelope_are_kept() {
        let (code, message) = envelope("<html>Service Unavailable</html>");
        assert_eq!(code, "(no error code)");
        assert_eq!(message, "<html>Service Unavailable</html>");
    }
}
