//! The shapes of message that Graph's JSON create cannot represent faithfully, so the
//! router sends them by a MIME path where the target has one (issue 11 §2).
//!
//! Found from the top-level message's own parts (a signed message forwarded inside
//! `message/rfc822` is an attachment like any other and needs nothing):
//! - S/MIME or PGP/MIME clear-signed: `multipart/signed` (RFC 8551 §3.5, RFC 3156 §5);
//! - opaque-signed: `application/pkcs7-mime; smime-type=signed-data` (RFC 8551 §3.4);
//! - encrypted: `application/pkcs7-mime` with `enveloped-data`, `authEnveloped-data` or
//!   no `smime-type` (Outlook's default), and `multipart/encrypted` (PGP/MIME);
//! - meetings: a `text/calendar` (or `application/ics`) part whose `method` (parameter
//!   or `METHOD:` line, RFC 5546 §3.2) is an iTIP scheduling method — `PUBLISH` is a
//!   plain event attachment and is not one;
//! - TNEF: `application/ms-tnef`, `application/vnd.ms-tnef` or a `winmail.dat`;
//! - reports: `multipart/report` (delivery status RFC 3464, read receipts RFC 8098).

use mail_parser::{Message, MessageParser, MimeHeaders as _, PartType};
use mailhaul_proto::ledger::Lost;

/// What about a message's shape needs a MIME path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// What the JSON path would lose: the shape bits of [`Lost`] (never `RAW_MIME`,
    /// `ADDRESSES` or `DRAFT`, which depend on the path and the conversion).
    pub lost_by_json: Lost,
}

impl Shape {
    /// The shape of `message`.
    pub fn of(message: &Message<'_>) -> Shape {
        let mut lost = Lost::NONE;
        if let Some(root) = message.parts.first() {
            match content_type(root).as_str() {
                "multipart/signed" => lost |= Lost::SIGNATURE,
                "multipart/encrypted" => lost |= Lost::ENCRYPTED,
                "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
                    // Opaque-signed content is inside the PKCS#7 blob: unreadable in JSON
                    // just like encrypted content.
                    lost |= Lost::ENCRYPTED;
                }
                "multipart/report" => lost |= Lost::REPORT,
                _ => {}
            }
        }
        for part in &message.parts {
            let ct = content_type(part);
            if is_calendar(&ct) && is_scheduling(part) {
                lost |= Lost::MEETING;
            }
            let name = part.attachment_name().unwrap_or_default();
            if matches!(
                ct.as_str(),
                "application/ms-tnef" | "application/vnd.ms-tnef"
            ) || name.eq_ignore_ascii_case("winmail.dat")
            {
                lost |= Lost::TNEF;
            }
        }
        Shape { lost_by_json: lost }
    }

    /// The shape of the raw message `mime` (nothing for what mail-parser cannot read).
    pub fn of_mime(mime: &[u8]) -> Shape {
        MessageParser::default()
            .parse(mime)
            .map(|m| Shape::of(&m))
            .unwrap_or_default()
    }

    /// Whether the JSON path would lose something of this shape.
    pub fn needs_mime(self) -> bool {
        !self.lost_by_json.is_empty()
    }
}

/// `type/subtype`, lowercase; `text/plain` when absent (RFC 2045 §5.2).
pub(crate) fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type().map_or_else(
        || "text/plain".to_owned(),
        |ct| match ct.subtype() {
            Some(sub) => format!("{}/{sub}", ct.ctype()).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
    )
}

/// An iCalendar part (`text/calendar`, or `application/ics` as Google attaches it).
pub(crate) fn is_calendar(content_type: &str) -> bool {
    matches!(content_type, "text/calendar" | "application/ics")
}

/// Whether a calendar part carries an iTIP scheduling method (RFC 5546 §1.4).
fn is_scheduling(part: &mail_parser::MessagePart<'_>) -> bool {
    const METHODS: [&str; 7] = [
        "REQUEST",
        "CANCEL",
        "REPLY",
        "COUNTER",
        "DECLINECOUNTER",
        "ADD",
        "REFRESH",
    ];
    let param = part
        .content_type()
        .and_then(|ct| ct.attribute("method"))
        .map(str::to_ascii_uppercase);
    let method = param.or_else(|| {
        let text = match &part.body {
            PartType::Text(t) => t.to_string(),
            _ => String::from_utf8_lossy(part.contents()).into_owned(),
        };
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix("METHOD:")
                .map(|m| m.trim().to_ascii_uppercase())
        })
    });
    method.is_some_and(|m| METHODS.contains(&m.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multipart(ct: &str, parts: &[&str]) -> String {
        let mut s =
            format!("From: a@x.com\r\nSubject: s\r\nContent-Type: {ct}; boundary=b\r\n\r\n");
        for p in parts {
            s.push_str(&format!("--b\r\n{p}\r\n"));
        }
        s.push_str("--b--\r\n");
        s
    }

    #[test]
    fn shapes_that_need_mime() {
        let ics = |method: &str| {
            format!(
                "Content-Type: text/calendar; charset=utf-8{method}\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR"
            )
        };
        let ics_line =
            "Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nEND:VCALENDAR";
        let table: Vec<(String, Lost)> = vec![
            ("Subject: plain\r\n\r\nhi".into(), Lost::NONE),
            (
                multipart(
                    "multipart/signed; protocol=\"application/pkcs7-signature\"",
                    &["Content-Type: text/plain\r\n\r\nhi", "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n\r\nAAAA"],
                ),
                Lost::SIGNATURE,
            ),
            (
                "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\r\nAAAA".into(),
                Lost::ENCRYPTED,
            ),
            (
                "Content-Type: application/x-pkcs7-mime; smime-type=signed-data\r\n\r\nAAAA".into(),
                Lost::ENCRYPTED,
            ),
            (
                multipart("multipart/encrypted; protocol=\"application/pgp-encrypted\"", &["Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1"]),
                Lost::ENCRYPTED,
            ),
            (
                multipart("multipart/alternative", &["Content-Type: text/plain\r\n\r\nhi", &ics("; method=REQUEST")]),
                Lost::MEETING,
            ),
            (multipart("multipart/mixed", &["Content-Type: text/plain\r\n\r\nhi", ics_line]), Lost::MEETING),
            // A published event is an attachment like any other.
            (multipart("multipart/mixed", &["Content-Type: text/plain\r\n\r\nhi", &ics("; method=PUBLISH")]), Lost::NONE),
            (
                multipart(
                    "multipart/mixed",
                    &["Content-Type: text/plain\r\n\r\nhi", "Content-Type: application/ms-tnef; name=\"winmail.dat\"\r\n\r\nx"],
                ),
                Lost::TNEF,
            ),
            (
                multipart(
                    "multipart/mixed",
                    &["Content-Type: text/plain\r\n\r\nhi", "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=WINMAIL.DAT\r\n\r\nx"],
                ),
                Lost::TNEF,
            ),
            (
                multipart(
                    "multipart/report; report-type=delivery-status",
                    &["Content-Type: text/plain\r\n\r\nfailed", "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x"],
                ),
                Lost::REPORT,
            ),
            // A signed message forwarded as an attachment needs nothing.
            (
                multipart(
                    "multipart/mixed",
                    &["Content-Type: text/plain\r\n\r\nfwd", "Content-Type: message/rfc822\r\n\r\nContent-Type: application/pkcs7-mime\r\n\r\nAAAA"],
                ),
                Lost::NONE,
            ),
        ];
        for (mime, want) in table {
            let shape = Shape::of_mime(mime.as_bytes());
            assert_eq!(shape.lost_by_json, want, "{mime}");
            assert_eq!(shape.needs_mime(), !want.is_empty());
        }
    }
}
