//! The v1.0 JSON create body of a MIME message ([`super::UploadPath::JsonCreate`]),
//! built from the whole MIME tree.
//!
//! What is kept (issue 11 §1): the decoded subject in any charset (mail-parser with
//! `full_encoding`; raw 8-bit headers through [`crate::mime::charset`]); every body
//! part in order ([`super::json_parts`], [`super::json_body`]); From, Sender, To, Cc,
//! Bcc, Reply-To, with what Exchange would refuse dropped and named
//! ([`super::json_addresses`]); the Message-ID; the header block, threading and display
//! headers as MAPI properties, `X-` headers only when listed ([`super::json_headers`]);
//! attachments with names users can open, inline exactly when the HTML shows them;
//! and through MAPI properties the received date (0x0E06), the sent date (0x0039) and
//! the message flags (0x0E07: read, and MSGFLAG_UNSENT only for drafts). What is lost:
//! the MIME tree itself and signatures (the router sends such messages by a MIME path
//! where it can, [`crate::mime::shape`]).
//!
//! Attachments are kept apart from the body ([`Converted`]): whether each rides in the
//! create or is added afterwards depends on sizes ([`super::upload`]).

use super::error::refused;
use super::{json_addresses, json_body, json_headers, json_parts};
use crate::error::ConnectorError;
use crate::mime::shape::Shape;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use mail_parser::MessageParser;
use mailhaul_proto::ledger::Lost;
use serde_json::{Map, Value, json};

/// A MIME message converted for a JSON create.
#[derive(Debug)]
pub(super) struct Converted {
    /// The create body without attachments.
    pub(super) body: Map<String, Value>,
    /// The attachments in MIME order, decoded.
    pub(super) attachments: Vec<FileAttachment>,
    /// Addresses left out because Exchange would refuse them, as written.
    pub(super) dropped: Vec<String>,
    /// What this conversion lost ([`Lost::ADDRESSES`] when `dropped` is not empty).
    pub(super) lost: Lost,
    /// The message's shape: what the JSON form cannot carry.
    pub(super) shape: Shape,
}

/// One attachment, as a Graph `fileAttachment` will carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileAttachment {
    pub(super) name: String,
    pub(super) content_type: String,
    /// `isInline`: shown in the body (its Content-ID is referenced by the HTML).
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

/// What the JSON path is told besides the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// `X-` header names (any case) carried in `internetMessageHeaders`; none by
    /// default, since each distinct name costs a named property of the mailbox.
    pub x_headers: Vec<String>,
}

/// The create body for `mime`, received at `received`, with PidTagMessageFlags
/// `message_flags` (read, draft), and its attachments.
///
/// # Errors
/// Permanent when `mime` is not a message mail-parser can read.
pub(super) fn from_mime(
    mime: &[u8],
    received: DateTime<Utc>,
    message_flags: u32,
    options: &JsonOptions,
) -> Result<Converted, ConnectorError> {
    let repaired = crate::mime::charset::repair_headers(mime);
    let mime = repaired.as_deref().unwrap_or(mime);
    let message = MessageParser::default()
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
    let parts = json_parts::collect(&message);
    let (kind, content) = json_body::body(&parts.segments);
    body.insert(
        "body".into(),
        json!({"contentType": kind, "content": content}),
    );
    let mut dropped = Vec::new();
    for (key, address) in [("from", message.from()), ("sender", message.sender())] {
        if let Some(first) = address.and_then(|a| {
            json_addresses::recipients(a, &mut dropped)
                .into_iter()
                .next()
        }) {
            body.insert(key.into(), first);
        }
    }
    for (key, address) in [
        ("toRecipients", message.to()),
        ("ccRecipients", message.cc()),
        ("bccRecipients", message.bcc()),
        ("replyTo", message.reply_to()),
    ] {
        if let Some(address) = address {
            let list = json_addresses::recipients(address, &mut dropped);
            if !list.is_empty() {
                body.insert(key.into(), Value::Array(list));
            }
        }
    }
    // The de-duplication lookup (`find_by_message_id`) reads this back.
    if let Some(id) = message.message_id() {
        body.insert("internetMessageId".into(), json!(format!("<{id}>")));
    }
    let headers = json_headers::header_fields(&message, mime, &options.x_headers);
    if !headers.x_headers.is_empty() {
        body.insert(
            "internetMessageHeaders".into(),
            Value::Array(headers.x_headers),
        );
    }
    if let Some(importance) = headers.importance {
        body.insert("importance".into(), json!(importance));
    }
    let mut props = vec![
        json!({"id": "Integer 0x0E07", "value": message_flags.to_string()}),
        json!({"id": "SystemTime 0x0E06", "value": time(received)}),
    ];
    if let Some(sent) = message
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
    {
        props.push(json!({"id": "SystemTime 0x0039", "value": time(sent)}));
    }
    props.extend(headers.props);
    body.insert("singleValueExtendedProperties".into(), Value::Array(props));
    let lost = if dropped.is_empty() {
        Lost::NONE
    } else {
        Lost::ADDRESSES
    };
    Ok(Converted {
        body,
        attachments: parts.attachments,
        dropped,
        lost,
        shape: Shape::of(&message),
    })
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
#[path = "message_json_tests.rs"]
mod tests;
