//! EWS failures as [`ConnectorError::Service`] with the retry class decided here.
//!
//! EWS fails in three places (research §2.1, §2.3): the HTTP status (401, 403, 503 from
//! IIS), a SOAP fault for the whole request (HTTP 500: `ErrorServerBusy`,
//! `ErrorSchemaValidation`, impersonation errors) and a response message per item or
//! folder (`ResponseClass="Error"` inside an HTTP 200). All three end in [`classify`]:
//!
//! - a `BackOffMilliseconds` hint (`ErrorServerBusy`, or `ErrorInternalServerError`
//!   carrying it) → `Throttled(hint)`; `ErrorExceededConnectionCount` → `Throttled(1 s)`;
//! - the codes Exchange documents as passing with time (`ErrorServerBusy` without a hint,
//!   `ErrorInternalServerTransientError`, `ErrorMailboxStoreUnavailable`,
//!   `ErrorMailboxMoveInProgress`, `ErrorTimeoutExpired`, `ErrorTooManyObjectsOpened`,
//!   `ErrorBatchProcessingStopped`, `ErrorInternalServerError`) → `Transient`;
//! - anything else, sizes, quota and unreadable MIME included → `Permanent`, with a text
//!   that names the limit or permission and the fix.
//!
//! HTTP statuses without a SOAP answer: 503/429 with `Retry-After` → `Throttled`, without
//! → `Transient`; other 5xx → `Transient`; other 4xx → `Permanent`. 401 is
//! [`ConnectorError::Auth`], built by the client, which knows the login.

use super::xml::Element;
use crate::error::ConnectorError;
use crate::exchange_state::{is_named_property_quota, named_property_quota_advice};
use mailhaul_proto::ErrorClass;
use std::time::Duration;

/// How long to wait after `ErrorExceededConnectionCount`, which carries no hint: one of
/// this account's other requests has to finish first.
const CONNECTION_COUNT_WAIT: Duration = Duration::from_secs(1);

/// Codes that pass with time (research §2.2, §2.3).
const TRANSIENT: &[&str] = &[
    "ErrorServerBusy",
    "ErrorInternalServerTransientError",
    "ErrorInternalServerError",
    "ErrorMailboxStoreUnavailable",
    "ErrorMailboxMoveInProgress",
    "ErrorTimeoutExpired",
    "ErrorTooManyObjectsOpened",
    "ErrorBatchProcessingStopped",
];

/// What EWS said about a request, an item or a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    /// `ResponseCode` (`ErrorQuotaExceeded`, …).
    pub(super) code: String,
    /// `MessageText` or `faultstring`.
    pub(super) message: String,
    /// `BackOffMilliseconds` from `MessageXml`, when given.
    pub(super) back_off: Option<Duration>,
}

impl Refusal {
    /// The refusal in a response message (`ResponseClass="Error"`).
    pub(super) fn from_response(message: &Element) -> Refusal {
        Refusal {
            code: message
                .child_text("ResponseCode")
                .unwrap_or("(no ResponseCode)")
                .to_owned(),
            message: message.child_text("MessageText").unwrap_or("").to_owned(),
            back_off: back_off(message),
        }
    }

    /// The SOAP fault in an envelope, if it holds one. The code is the detail's
    /// `ResponseCode`, else the `faultcode` without its prefix.
    pub(super) fn from_fault(envelope: &Element) -> Option<Refusal> {
        let fault = envelope.path(&["Body", "Fault"])?;
        let faultcode = fault.child_text("faultcode").unwrap_or("");
        let code = fault
            .path(&["detail", "ResponseCode"])
            .map(|c| c.text.trim())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| faultcode.rsplit(':').next().unwrap_or(faultcode));
        Some(Refusal {
            code: code.to_owned(),
            message: fault.child_text("faultstring").unwrap_or("").to_owned(),
            back_off: back_off(fault),
        })
    }

    /// The error for this refusal while doing `op` for `mailbox`.
    pub(super) fn into_error(self, op: &str, mailbox: &str) -> ConnectorError {
        let class = classify(&self.code, self.back_off);
        let mut text = format!("{}: {}", self.code, self.message);
        if let Some(advice) = advice(&self.code, &self.message, mailbox) {
            text.push_str("; ");
            text.push_str(&advice);
        }
        service(op, text, class)
    }
}

/// `BackOffMilliseconds` anywhere below `e` (`MessageXml/Value[@Name]`).
fn back_off(e: &Element) -> Option<Duration> {
    e.descendants()
        .into_iter()
        .find(|v| v.name == "Value" && v.attr("Name") == Some("BackOffMilliseconds"))
        .and_then(|v| v.text.trim().parse().ok())
        .map(Duration::from_millis)
}

/// The retry class of an EWS response code.
pub(super) fn classify(code: &str, back_off: Option<Duration>) -> ErrorClass {
    if let Some(wait) = back_off {
        return ErrorClass::Throttled(wait);
    }
    if code == "ErrorExceededConnectionCount" {
        return ErrorClass::Throttled(CONNECTION_COUNT_WAIT);
    }
    if TRANSIENT.contains(&code) {
        return ErrorClass::Transient;
    }
    ErrorClass::Permanent
}

/// What to do about a code, for the admin reading the error.
fn advice(code: &str, message: &str, mailbox: &str) -> Option<String> {
    let text = match code {
        "ErrorQuotaExceeded" if is_named_property_quota(message) => {
            named_property_quota_advice(mailbox)
        }
        "ErrorMessageSizeExceeded" => format!(
            "the message is larger than {mailbox} accepts: its MaxReceiveSize (Exchange \
             Online: 36 MB by default, at most 150 MB; Exchange Server: also the EWS \
             maxAllowedContentLength and maxReceivedMessageSize); raise the limit \
             (Set-Mailbox -MaxReceiveSize) or carry this message another way (IMAP)"
        ),
        "ErrorQuotaExceeded" => format!(
            "mailbox {mailbox} is full (its ProhibitSendReceiveQuota); raise the quota or \
             free space, then run the migration again"
        ),
        c if c.starts_with("ErrorMimeContent") => "Exchange cannot read this message's \
             MIME as stored on the source, so it is skipped; check the message on the source"
            .to_owned(),
        "ErrorImpersonateUserDenied" => format!(
            "the account may not impersonate {mailbox}: give the service account the \
             ApplicationImpersonation role (Exchange Server), or the app the \
             full_access_as_app permission (Exchange Online)"
        ),
        "ErrorNonExistentMailbox" | "ErrorInvalidExchangeImpersonationHeaderData" => format!(
            "there is no mailbox {mailbox:?} on this server; check the target address in \
             the manifest or the CSV"
        ),
        "ErrorAccessDenied" => format!(
            "the account has no access to {mailbox}; grant it impersonation or FullAccess \
             rights on the mailbox"
        ),
        "ErrorInvalidServerVersion" => "the server does not accept this EWS server_version; \
             set server_version to one it supports (Exchange2013_SP1 from Exchange 2013 on)"
            .to_owned(),
        "ErrorExceededConnectionCount" => "too many EWS requests at once for this account \
             (EWSMaxConcurrency); lower the concurrency per mailbox if this persists"
            .to_owned(),
        "ErrorSchemaValidation" => "Exchange found the request malformed; this is a bug \
             in mailhaul's EWS client, please report it with this message"
            .to_owned(),
        _ => return None,
    };
    Some(text)
}

/// An HTTP answer without a SOAP fault (IIS, a proxy, a load balancer).
pub(super) fn http(
    op: &str,
    url: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> ConnectorError {
    let snippet: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    let said = if snippet.is_empty() {
        format!("http {status}")
    } else {
        format!("http {status}: {snippet}")
    };
    let (class, advice) = match (status, retry_after) {
        (429 | 503, Some(wait)) => (ErrorClass::Throttled(wait), "the server asked to wait"),
        (s, _) if s == 429 || s >= 500 => (
            ErrorClass::Transient,
            "the server or a proxy in front of it failed; trying again later may help",
        ),
        (403, _) => (
            ErrorClass::Permanent,
            "EWS access was refused: with OAuth the app needs the full_access_as_app \
             application permission with admin consent; with a password, EWS must be \
             enabled for the account (Set-CASMailbox -EwsEnabled $true)",
        ),
        (404, _) => (
            ErrorClass::Permanent,
            "there is no EWS endpoint at this url; set the EWS url to \
             https://<host>/EWS/Exchange.asmx",
        ),
        (413, _) => (
            ErrorClass::Permanent,
            "the request is larger than the server accepts (IIS maxAllowedContentLength); \
             send fewer or smaller messages per request or raise the limit",
        ),
        _ => (ErrorClass::Permanent, "the server refused the request"),
    };
    service(op, format!("{said} from {url}; {advice}"), class)
}

fn service(op: &str, text: String, class: ErrorClass) -> ConnectorError {
    ConnectorError::Service {
        service: "ews",
        op: op.to_owned(),
        text,
        class,
    }
}

#[cfg(test)]
mod tests {
    use super::super::xml::parse;
    use super::*;

    const FAULT: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
 <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
 <faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
 <detail>
  <e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
  <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>
  <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
   <t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml>
 </detail></s:Fault></s:Body></s:Envelope>"#;

    #[test]
    fn server_busy_fault_is_throttled_for_its_hint() {
        let root = parse(FAULT).expect("well-formed");
        let refusal = Refusal::from_fault(&root).expect("a fault");
        assert_eq!(refusal.code, "ErrorServerBusy");
        assert_eq!(refusal.back_off, Some(Duration::from_millis(297_749)));
        let err = refusal.into_error("CreateItem", "bob@contoso.com");
        assert_eq!(
            err.class(),
            ErrorClass::Throttled(Duration::from_millis(297_749))
        );
        assert!(
            err.to_string()
                .starts_with("ews CreateItem: ErrorServerBusy"),
            "{err}"
        );
    }

    #[test]
    fn fault_code_without_detail_is_used() {
        let xml = r#"<Envelope><Body><Fault><faultcode>a:ErrorInvalidServerVersion</faultcode><faultstring>bad</faultstring></Fault></Body></Envelope>"#;
        let refusal = Refusal::from_fault(&parse(xml).expect("xml")).expect("fault");
        assert_eq!(refusal.code, "ErrorInvalidServerVersion");
        let no_fault = parse("<Envelope><Body><X/></Body></Envelope>").expect("xml");
        assert_eq!(Refusal::from_fault(&no_fault), None);
    }

    #[test]
    fn codes_are_classified() {
        use ErrorClass::*;
        let ms = |n| Throttled(Duration::from_millis(n));
        for (code, hint, want) in [
            ("ErrorServerBusy", Some(500), ms(500)),
            ("ErrorInternalServerError", Some(20), ms(20)),
            ("ErrorServerBusy", None, Transient),
            ("ErrorExceededConnectionCount", None, ms(1000)),
            ("ErrorInternalServerTransientError", None, Transient),
            ("ErrorMailboxStoreUnavailable", None, Transient),
            ("ErrorMailboxMoveInProgress", None, Transient),
            ("ErrorTimeoutExpired", None, Transient),
            ("ErrorTooManyObjectsOpened", None, Transient),
            ("ErrorBatchProcessingStopped", None, Transient),
            ("ErrorMessageSizeExceeded", None, Permanent),
            ("ErrorQuotaExceeded", None, Permanent),
            ("ErrorMimeContentInvalid", None, Permanent),
            ("ErrorMimeContentInvalidBase64String", None, Permanent),
            ("ErrorMimeContentConversionFailed", None, Permanent),
            ("ErrorFolderExists", None, Permanent),
            ("ErrorImpersonateUserDenied", None, Permanent),
            ("ErrorSomethingNew", None, Permanent),
        ] {
            let back_off = hint.map(Duration::from_millis);
            assert_eq!(classify(code, back_off), want, "{code}");
        }
    }

    #[test]
    fn permanent_refusals_name_limit_and_fix() {
        let refusal = |code: &str| Refusal {
            code: code.to_owned(),
            message: "m".to_owned(),
            back_off: None,
        };
        for (code, says) in [
            ("ErrorMessageSizeExceeded", "MaxReceiveSize"),
            ("ErrorQuotaExceeded", "mailbox bob@contoso.com is full"),
            (
                "ErrorMimeContentInvalidBase64String",
                "check the message on the source",
            ),
            ("ErrorImpersonateUserDenied", "ApplicationImpersonation"),
            ("ErrorInvalidServerVersion", "server_version"),
        ] {
            let text = refusal(code)
                .into_error("op", "bob@contoso.com")
                .to_string();
            assert!(text.contains(code) && text.contains(says), "{text}");
        }
        let named = Refusal {
            code: "ErrorQuotaExceeded".to_owned(),
            message: "Cannot get ID from name.".to_owned(),
            back_off: None,
        }
        .into_error("op", "bob@contoso.com");
        assert_eq!(named.class(), ErrorClass::Permanent);
        let text = named.to_string();
        assert!(
            text.contains("named-property quota") && !text.contains("is full"),
            "{text}"
        );
    }

    #[test]
    fn http_statuses_are_classified() {
        use ErrorClass::*;
        for (status, after, want) in [
            (503, Some(7), Throttled(Duration::from_secs(7))),
            (429, Some(2), Throttled(Duration::from_secs(2))),
            (503, None, Transient),
            (502, None, Transient),
            (500, None, Transient),
            (403, None, Permanent),
            (404, None, Permanent),
            (413, None, Permanent),
            (400, None, Permanent),
        ] {
            let err = http(
                "FindFolder",
                "https://h/EWS/Exchange.asmx",
                status,
                after.map(Duration::from_secs),
                "<html>\n busy </html>",
            );
            assert_eq!(err.class(), want, "{status}: {err}");
            assert!(
                err.to_string()
                    .contains(&format!("http {status}: <html> busy </html>")),
                "{err}"
            );
        }
        let forbidden = http("x", "u", 403, None, "").to_string();
        assert!(forbidden.contains("full_access_as_app"), "{forbidden}");
    }
}
