//! The v1.0 JSON create body of a MIME message ([`super::UploadPath::JsonCreate`]).
//!
//! What is kept (research §1.2 b): subject, the HTML (else text) body, From, To, Cc,
//! Bcc, Reply-To, Message-ID, `X-` headers, attachments (inline ones stay inline), and
//! through MAPI properties the received date (0x0E06), the sent date (0x0039) and
//! message flags without MSGFLAG_UNSENT (0x0E07), so the item is not a draft. What is
//! lost: every other header (Received, DKIM, List-*), the MIME tree, signatures.
//!
//! Attachments are kept apart from the body ([`Converted`]): whether each rides in the
//! create or is added afterwards depends on sizes ([`super::upload`]).

use super::error::refused;
use crate::error::ConnectorError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use mail_parser::{Address, MessageParser, MimeHeaders as _, PartType};
use serde_json::{Map, Value, json};

/// PidTagMessageFlags bit MSGFLAG_READ; MSGFLAG_UNSENT (0x8, draft) is never set.
const MSGFLAG_READ: u32 = 0x1;

/// A MIME message converted for a JSON create.
#[derive(Debug)]
pub(super) struct Converted {
    /// The create body without attachments.
    pub(super) body: Map<String, Value>,
    /// The attachments in MIME order, decoded.
    pub(super) attachments: Vec<FileAttachment>,
}

/// One attachment, as a Graph `fileAttachment` will carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileAttachment {
    pub(super) name: String,
    pub(super) content_type: String,
    /// `isInline`: shown in the body (Content-Disposition: inline), not as a file.
    pub(super) inline: bool,
    /// `contentId`, which the HTML body references as `cid:`.
    pub(super) content_id: Option<String>,
    pub(super) bytes: Vec<u8>,
}

impl FileAttachment {
    /// The `fileAttachment` JSON: an entry of a create's `attachments`, or the body of
    /// `POST …/messages/{id}/attachments`.
    pub(super) fn json(&self) -> Value {
        self.json_with(STANDARD.encode(&self.bytes))
    }

    /// The length of [`FileAttachment::json`] serialised, without encoding the bytes.
    pub(super) fn json_len(&self) -> usize {
        // Base64 needs no JSON escaping: the empty string's two quotes stay, the
        // encoded bytes go between them.
        self.json_with(String::new()).to_string().len() + self.bytes.len().div_ceil(3) * 4
    }

    fn json_with(&self, content_bytes: String) -> Value {
        let mut a = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": self.name,
            "contentType": self.content_type,
            "isInline": self.inline,
            "contentBytes": content_bytes,
        });
        if let (Some(cid), Some(map)) = (&self.content_id, a.as_object_mut()) {
            map.insert("contentId".into(), json!(cid));
        }
        a
    }

    /// The `AttachmentItem` of `createUploadSession` (attachment-createuploadsession).
    pub(super) fn upload_item(&self) -> Value {
        let mut item = json!({
            "attachmentType": "file",
            "name": self.name,
            "contentType": self.content_type,
            "size": self.bytes.len(),
            "isInline": self.inline,
        });
        if let (Some(cid), Some(map)) = (&self.content_id, item.as_object_mut()) {
            map.insert("contentId".into(), json!(cid));
        }
        item
    }
}

/// The create body for `mime`, received at `received`, read or not, and its
/// attachments.
///
/// # Errors
/// Permanent when `mime` is not a message mail-parser can read.
pub(super) fn from_mime(
    mime: &[u8],
    received: DateTime<Utc>,
    seen: bool,
) -> Result<Converted, ConnectorError> {
    let mut message = MessageParser::default()
        .parse(mime)
        .filter(|_| !mime.is_empty())
        .ok_or_else(|| {
            refused(
                "create message",
                "the message is not readable MIME; it cannot be converted for Graph".into(),
            )
        })?;
    let mut body = Map::new();
    if let Some(subject) = message.subject() {
        body.insert("subject".into(), json!(subject));
    }
    // mail-parser renders a text-only message as HTML too: take HTML only if a part is.
    let html = message
        .html_part(0)
        .filter(|p| p.is_text_html())
        .and_then(|_| message.body_html(0));
    let content = match html {
        Some(html) => json!({"contentType": "html", "content": html}),
        None => json!({
            "contentType": "text",
            "content": message.body_text(0).unwrap_or_default(),
        }),
    };
    body.insert("body".into(), content);
    if let Some(from) = message
        .from()
        .and_then(|a| recipients(a).into_iter().next())
    {
        body.insert("from".into(), from);
    }
    for (key, address) in [
        ("toRecipients", message.to()),
        ("ccRecipients", message.cc()),
        ("bccRecipients", message.bcc()),
        ("replyTo", message.reply_to()),
    ] {
        if let Some(address) = address {
            body.insert(key.into(), Value::Array(recipients(address)));
        }
    }
    // The de-duplication lookup (`find_by_message_id`) reads this back.
    if let Some(id) = message.message_id() {
        body.insert("internetMessageId".into(), json!(format!("<{id}>")));
    }
    // Only `x-` headers may be set, and only at creation (research §1.2).
    let headers: Vec<Value> = message
        .headers_raw()
        .filter(|(name, _)| name.to_ascii_lowercase().starts_with("x-"))
        .map(|(name, value)| json!({"name": name, "value": unfold(value)}))
        .collect();
    if !headers.is_empty() {
        body.insert("internetMessageHeaders".into(), Value::Array(headers));
    }
    let flags = if seen { MSGFLAG_READ } else { 0 };
    let mut props = vec![
        json!({"id": "Integer 0x0E07", "value": flags.to_string()}),
        json!({"id": "SystemTime 0x0E06", "value": time(received)}),
    ];
    if let Some(sent) = message
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
    {
        props.push(json!({"id": "SystemTime 0x0039", "value": time(sent)}));
    }
    body.insert("singleValueExtendedProperties".into(), Value::Array(props));
    let attachments = take_attachments(&mut message);
    Ok(Converted { body, attachments })
}

/// The attachments of `message`, their decoded bytes moved out rather than copied
/// (a 40 MB attachment is held once, not twice).
fn take_attachments(message: &mut mail_parser::Message<'_>) -> Vec<FileAttachment> {
    let ids: Vec<usize> = message.attachments.iter().map(|&id| id as usize).collect();
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        let Some(part) = message.parts.get_mut(id) else {
            continue;
        };
        let content_type = part.content_type().map_or_else(
            || "application/octet-stream".to_owned(),
            |ct| match ct.subtype() {
                Some(sub) => format!("{}/{sub}", ct.ctype()),
                None => ct.ctype().to_owned(),
            },
        );
        let name = part
            .attachment_name()
            .map_or_else(|| format!("attachment-{}", i + 1), str::to_owned);
        let inline = part.content_disposition().is_some_and(|d| d.is_inline());
        let content_id = part.content_id().map(str::to_owned);
        let bytes = match &mut part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => std::mem::take(b).into_owned(),
            _ => part.contents().to_vec(),
        };
        out.push(FileAttachment {
            name,
            content_type,
            inline,
            content_id,
            bytes,
        });
    }
    out
}

/// Graph `recipient`s of an address header; entries without an address are dropped.
fn recipients(address: &Address<'_>) -> Vec<Value> {
    address
        .iter()
        .filter_map(|a| {
            let mut email = json!({ "address": a.address()? });
            if let (Some(name), Some(map)) = (a.name(), email.as_object_mut()) {
                map.insert("name".into(), json!(name));
            }
            Some(json!({ "emailAddress": email }))
        })
        .collect()
}

/// A raw header value without its folding (RFC 5322 §2.2.3) or surrounding space.
fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_owned()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIME: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.com, \
        Carol <carol@example.com>\r\nSubject: hi\r\nDate: Mon, 04 Mar 2019 10:00:00 +0000\r\n\
        Message-ID: <m1@example.com>\r\nX-Mailer: test\r\n x\r\nReceived: from a\r\n\r\nbody\r\n";

    #[test]
    fn a_message_becomes_a_non_draft_create() {
        let received = DateTime::from_timestamp(1_551_700_000, 0).expect("valid");
        let converted = from_mime(MIME.as_bytes(), received, false).expect("parsed");
        assert!(converted.attachments.is_empty());
        let body = Value::Object(converted.body);
        assert_eq!(body["subject"], "hi");
        assert_eq!(body["body"]["contentType"], "text");
        assert!(
            body["body"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("body"))
        );
        assert_eq!(body["from"]["emailAddress"]["address"], "alice@example.com");
        assert_eq!(body["from"]["emailAddress"]["name"], "Alice");
        assert_eq!(body["toRecipients"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["internetMessageId"], "<m1@example.com>");
        assert_eq!(
            body["internetMessageHeaders"],
            json!([{"name": "X-Mailer", "value": "test x"}])
        );
        assert_eq!(
            body["singleValueExtendedProperties"],
            json!([
                {"id": "Integer 0x0E07", "value": "0"},
                {"id": "SystemTime 0x0E06", "value": "2019-03-04T11:46:40Z"},
                {"id": "SystemTime 0x0039", "value": "2019-03-04T10:00:00Z"},
            ])
        );
        assert!(body.get("attachments").is_none());
        let read = from_mime(MIME.as_bytes(), received, true)
            .expect("parsed")
            .body;
        assert_eq!(read["singleValueExtendedProperties"][0]["value"], "1");
    }

    #[test]
    fn attachments_are_carried() {
        let mime = "From: a@example.com\r\nSubject: att\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
            <p>hi</p>\r\n--b\r\nContent-Type: application/pdf\r\n\
            Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n";
        let converted = from_mime(mime.as_bytes(), Utc::now(), true).expect("parsed");
        assert_eq!(converted.body["body"]["contentType"], "html");
        assert_eq!(converted.attachments.len(), 1);
        let a = converted.attachments[0].json();
        assert_eq!(a["name"], "r.pdf");
        assert_eq!(a["contentType"], "application/pdf");
        assert_eq!(a["contentBytes"], STANDARD.encode("%PDF"));
        assert_eq!(a["isInline"], false);
        assert!(a.get("contentId").is_none());
    }

    #[test]
    fn inline_parts_keep_their_content_id() {
        let mime = "From: a@example.com\r\nSubject: img\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
            <img src=\"cid:logo@x\">\r\n--b\r\nContent-Type: image/png\r\n\
            Content-Disposition: inline; filename=\"logo.png\"\r\nContent-ID: <logo@x>\r\n\
            Content-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n--b--\r\n";
        let converted = from_mime(mime.as_bytes(), Utc::now(), true).expect("parsed");
        let a = &converted.attachments[0];
        assert!(a.inline);
        assert_eq!(a.content_id.as_deref(), Some("logo@x"));
        assert_eq!(a.json()["contentId"], "logo@x");
        assert_eq!(a.json()["isInline"], true);
        let item = a.upload_item();
        assert_eq!(
            (
                &item["attachmentType"],
                &item["size"],
                &item["contentId"],
                &item["isInline"]
            ),
            (&json!("file"), &json!(4), &json!("logo@x"), &json!(true))
        );
    }

    #[test]
    fn json_len_is_exact() {
        for n in [0, 1, 2, 3, 4, 1000, 3 * 1024 * 1024] {
            let a = FileAttachment {
                name: "r\u{e9}sum\u{e9} \"q\".pdf".into(),
                content_type: "application/pdf".into(),
                inline: n % 2 == 0,
                content_id: (n % 3 == 0).then(|| "c@x".to_owned()),
                bytes: vec![7; n],
            };
            assert_eq!(a.json_len(), a.json().to_string().len(), "{n} bytes");
        }
    }

    #[test]
    fn empty_input_is_refused() {
        assert!(from_mime(b"", Utc::now(), true).is_err());
    }
}
