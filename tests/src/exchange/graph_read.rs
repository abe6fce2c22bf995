//! Graph's read side of mail, as a user's client sees it (resources/message,
//! message-get, singlevaluelegacyextendedproperty-get, attachment-get): the `message`
//! JSON with `$select` and `$expand=singleValueExtendedProperties($filter=id eq '…')`
//! (several ids joined by `or`) or `$expand=attachments`, and the attachment JSON.
//!
//! As Graph documents: `internetMessageHeaders` is returned only when `$select` names
//! it; `singleValueExtendedProperties` only when expanded, and only the ones that
//! exist; `id` and `@odata.etag` always. Strictness: a `$select` of a property the
//! message type does not have, or an `$expand` other than these, is a `400`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::graph_error::GraphError;
use super::item::{Address, Attachment, AttachmentKind, Item, PropId};
use super::props;

/// Properties of `microsoft.graph.message` the emulator can show, default ones first.
const DEFAULT: &[&str] = &[
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "isRead",
    "isDraft",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
];

/// Returned only when `$select` names them.
const SELECT_ONLY: &[&str] = &["internetMessageHeaders", "uniqueBody"];

/// What a read asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shape {
    select: Option<Vec<String>>,
    /// `Some(ids as asked)`: expand these extended properties.
    extended: Option<Vec<(String, PropId)>>,
    attachments: bool,
}

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", message)
}

/// Parses `$select` and `$expand` out of `pairs` (other options are the caller's).
pub(crate) fn shape(pairs: &[(String, String)]) -> Result<Shape, GraphError> {
    let mut s = Shape::default();
    for (key, value) in pairs {
        match key.as_str() {
            "$select" => {
                let mut fields = Vec::new();
                for f in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    let known = f == "id"
                        || f == "singleValueExtendedProperties"
                        || DEFAULT.contains(&f)
                        || SELECT_ONLY.contains(&f);
                    if !known {
                        return Err(bad(format!(
                            "Could not find a property named '{f}' on type 'microsoft.graph.message'."
                        )));
                    }
                    fields.push(f.to_owned());
                }
                s.select = Some(fields);
            }
            "$expand" => expand(value, &mut s)?,
            _ => {}
        }
    }
    Ok(s)
}

fn expand(value: &str, s: &mut Shape) -> Result<(), GraphError> {
    let value = value.trim();
    if value == "attachments" {
        s.attachments = true;
        return Ok(());
    }
    let unsupported = || {
        bad(format!(
            "The $expand '{value}' is not supported; use singleValueExtendedProperties($filter=id eq '<id>' [or id eq '<id>']…) or attachments."
        ))
    };
    let inner = value
        .strip_prefix("singleValueExtendedProperties(")
        .and_then(|v| v.strip_suffix(')'))
        .and_then(|v| v.trim().strip_prefix("$filter="))
        .ok_or_else(unsupported)?;
    let mut ids = Vec::new();
    for clause in inner.split(" or ") {
        let literal = clause
            .trim()
            .strip_prefix("id")
            .map(str::trim_start)
            .and_then(|c| c.strip_prefix("eq"))
            .map(str::trim)
            .and_then(|c| c.strip_prefix('\''))
            .and_then(|c| c.strip_suffix('\''))
            .ok_or_else(unsupported)?;
        let id = PropId::parse(literal).ok_or_else(|| {
            GraphError::bad_request(
                "ErrorInvalidExtendedPropertyValue",
                format!("'{literal}' is not an extended property id."),
            )
        })?;
        ids.push((literal.to_owned(), id));
    }
    s.extended = Some(ids);
    Ok(())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn address(a: &Address) -> Value {
    json!({"emailAddress": {"name": a.name.clone().unwrap_or_else(|| a.address.clone()), "address": a.address}})
}

fn addresses(list: &[Address]) -> Value {
    Value::Array(list.iter().map(address).collect())
}

fn preview(item: &Item) -> String {
    let Some((kind, content)) = &item.body else {
        return String::new();
    };
    let text = if kind == "html" {
        let mut out = String::new();
        let mut in_tag = false;
        for c in content.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    } else {
        content.clone()
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(255).collect()
}

fn field(item: &Item, name: &str) -> Value {
    let (content_type, content) = item
        .body
        .clone()
        .unwrap_or_else(|| ("text".to_owned(), String::new()));
    match name {
        "createdDateTime" => json!(time(item.created)),
        "lastModifiedDateTime" => json!(time(item.modified)),
        "changeKey" => json!(format!("CQAAABYAAA{:08x}", item.change_key)),
        "categories" => json!(item.categories),
        "receivedDateTime" => json!(time(item.received)),
        "sentDateTime" => json!(item.sent.map(time)),
        "hasAttachments" => json!(item.attachments.iter().any(|a| !a.is_inline)),
        "internetMessageId" => json!(item.internet_message_id),
        "subject" => json!(item.subject),
        "bodyPreview" => json!(preview(item)),
        "importance" => json!(item.importance),
        "parentFolderId" => json!(item.folder),
        "isRead" => json!(item.is_read),
        "isDraft" => json!(item.is_draft),
        "body" => json!({"contentType": content_type, "content": content}),
        "uniqueBody" => json!({"contentType": content_type, "content": content}),
        "sender" => item.people.sender.as_ref().map_or(Value::Null, address),
        "from" => item.people.from.as_ref().map_or(Value::Null, address),
        "toRecipients" => addresses(&item.people.to),
        "ccRecipients" => addresses(&item.people.cc),
        "bccRecipients" => addresses(&item.people.bcc),
        "replyTo" => addresses(&item.people.reply_to),
        "flag" => json!({"flagStatus": item.flag.as_graph()}),
        "internetMessageHeaders" => Value::Array(
            item.headers
                .iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// The `message` JSON of `item` in `shape`; `context` goes in `@odata.context` unless
/// empty (collection members carry none).
pub(crate) fn message(item: &Item, shape: &Shape, context: &str) -> Value {
    let mut out = Map::new();
    if !context.is_empty() {
        out.insert("@odata.context".into(), json!(context));
    }
    out.insert(
        "@odata.etag".into(),
        json!(format!("W/\"CQAAABYAAA{:08x}\"", item.change_key)),
    );
    out.insert("id".into(), json!(item.id));
    let names: Vec<&str> = match &shape.select {
        Some(fields) => fields.iter().map(String::as_str).collect(),
        None => DEFAULT.to_vec(),
    };
    for name in names {
        if name != "id" && name != "singleValueExtendedProperties" {
            out.insert(name.to_owned(), field(item, name));
        }
    }
    if let Some(ids) = &shape.extended {
        let found: Vec<Value> = ids
            .iter()
            .filter_map(|(asked, id)| {
                props::read(item, id).map(|v| json!({"id": asked, "value": v}))
            })
            .collect();
        if !found.is_empty() {
            out.insert("singleValueExtendedProperties".into(), Value::Array(found));
        }
    }
    if shape.attachments {
        out.insert(
            "attachments".into(),
            Value::Array(
                item.attachments
                    .iter()
                    .map(|a| attachment(item, a))
                    .collect(),
            ),
        );
    }
    Value::Object(out)
}

/// The `attachment` JSON (file attachments with `contentBytes`, as attachment-get
/// returns them; item attachments without their item).
pub(crate) fn attachment(item: &Item, a: &Attachment) -> Value {
    let mut out = json!({
        "id": a.id,
        "lastModifiedDateTime": time(item.modified),
        "name": a.name,
        "contentType": a.content_type,
        "size": a.bytes.len(),
        "isInline": a.is_inline,
    });
    match a.kind {
        AttachmentKind::File => {
            out["@odata.type"] = json!("#microsoft.graph.fileAttachment");
            out["contentId"] = json!(a.content_id);
            out["contentLocation"] = Value::Null;
            out["contentBytes"] = json!(STANDARD.encode(&a.bytes));
        }
        AttachmentKind::Item => {
            out["@odata.type"] = json!("#microsoft.graph.itemAttachment");
        }
    }
    out
}
