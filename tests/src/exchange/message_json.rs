//! The `message` resource as JSON: reading a JSON create (with the MAPI extended
//! properties migration tools use), reading a PATCH, and writing an item back.
//!
//! Rules (research §1.2): `Integer 0x0E07` (PidTagMessageFlags) makes a non-draft iff
//! bit 0x8 (MSGFLAG_UNSENT) is clear and gives the read state (bit 0x1) unless `isRead`
//! is given; `SystemTime 0x0E06` is `receivedDateTime`, `SystemTime 0x0039` is
//! `sentDateTime`; those three can only be set at creation. Only `x-` headers may be
//! set. On non-drafts PATCH may change `isRead`, `flag`, `categories`, `importance`,
//! `inferenceClassification` only. A PATCH is checked whole before anything changes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::graph_attachments::file_attachment;
use super::graph_error::GraphError;
use super::state::{Attachment, FlagStatus, Item};

const MSGFLAG_READ: i64 = 0x1;
const MSGFLAG_UNSENT: i64 = 0x8;

/// Properties a migration may send that the emulator accepts but does not keep.
const IGNORED: &[&str] = &[
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
];

/// What a JSON create asks for.
#[derive(Clone, Debug)]
pub(crate) struct NewItem {
    pub(crate) is_draft: bool,
    pub(crate) is_read: bool,
    pub(crate) flag: FlagStatus,
    pub(crate) categories: Vec<String>,
    pub(crate) importance: String,
    pub(crate) received: Option<DateTime<Utc>>,
    pub(crate) sent: Option<DateTime<Utc>>,
    pub(crate) internet_message_id: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) body: Option<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    /// Inline `fileAttachment`s, ids not yet assigned.
    pub(crate) attachments: Vec<Attachment>,
}

fn invalid(key: &str, want: &str) -> GraphError {
    GraphError::bad_request(
        "BadRequest",
        format!("Invalid value for property '{key}': expected {want}."),
    )
}

fn string(key: &str, v: &Value) -> Result<String, GraphError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(key, "a string"))
}

fn flag(v: &Value) -> Result<FlagStatus, GraphError> {
    v.get("flagStatus")
        .and_then(Value::as_str)
        .and_then(FlagStatus::from_graph)
        .ok_or_else(|| {
            invalid(
                "flag",
                "{\"flagStatus\": \"notFlagged\"|\"flagged\"|\"complete\"}",
            )
        })
}

fn categories(v: &Value) -> Result<Vec<String>, GraphError> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|c| c.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| invalid("categories", "an array of strings"))
}

fn importance(v: &Value) -> Result<String, GraphError> {
    match v.as_str() {
        Some(s @ ("low" | "normal" | "high")) => Ok(s.to_owned()),
        _ => Err(invalid("importance", "low, normal or high")),
    }
}

fn body(v: &Value) -> Result<(String, String), GraphError> {
    let kind = v
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("text");
    let content = v.get("content").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "text" | "html" => Ok((kind.to_owned(), content.to_owned())),
        _ => Err(invalid(
            "body",
            "{\"contentType\": \"text\"|\"html\", \"content\": …}",
        )),
    }
}

/// A parsed extended property we honour.
enum Extended {
    MessageFlags(i64),
    DeliveryTime(DateTime<Utc>),
    SubmitTime(DateTime<Utc>),
    Other,
}

/// Parses one `{"id": "<Type> 0x<tag>", "value": "<string>"}`.
fn extended(v: &Value) -> Result<Extended, GraphError> {
    let bad = |why: &str| {
        GraphError::bad_request(
            "ErrorInvalidExtendedProperty",
            format!("Invalid extended property {v}: {why}."),
        )
    };
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("'id' must be a string"))?;
    let value = v
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("'value' must be a string"))?;
    let (ty, tag) = id
        .split_once(' ')
        .ok_or_else(|| bad("'id' must be '<Type> 0x<tag>'"))?;
    let Some(hex) = tag.strip_prefix("0x").or_else(|| tag.strip_prefix("0X")) else {
        return Ok(Extended::Other); // named properties ({guid} Name x), kept out of scope
    };
    let tag = u32::from_str_radix(hex, 16).map_err(|_| bad("the tag is not hexadecimal"))?;
    let time = || {
        DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                GraphError::bad_request(
                    "ErrorInvalidExtendedPropertyValue",
                    format!("'{value}' is not an ISO 8601 time for {id}."),
                )
            })
    };
    match (ty.to_ascii_lowercase().as_str(), tag) {
        ("integer", 0x0E07) => value.parse().map(Extended::MessageFlags).map_err(|_| {
            GraphError::bad_request(
                "ErrorInvalidExtendedPropertyValue",
                format!("'{value}' is not an integer for {id}."),
            )
        }),
        ("systemtime", 0x0E06) => time().map(Extended::DeliveryTime),
        ("systemtime", 0x0039) => time().map(Extended::SubmitTime),
        _ => Ok(Extended::Other),
    }
}

/// Reads a JSON create body.
pub(crate) fn parse_create(map: &Map<String, Value>) -> Result<NewItem, GraphError> {
    let mut new = NewItem {
        is_draft: true,
        is_read: true,
        flag: FlagStatus::NotFlagged,
        categories: Vec::new(),
        importance: "normal".to_owned(),
        received: None,
        sent: None,
        internet_message_id: None,
        subject: None,
        body: None,
        headers: Vec::new(),
        attachments: Vec::new(),
    };
    let mut explicit_read = None;
    let mut flags = None;
    for (key, v) in map {
        match key.as_str() {
            "subject" => new.subject = Some(string(key, v)?),
            "body" => new.body = Some(body(v)?),
            "internetMessageId" => new.internet_message_id = Some(string(key, v)?),
            "isRead" => {
                explicit_read = Some(v.as_bool().ok_or_else(|| invalid(key, "true or false"))?)
            }
            "flag" => new.flag = flag(v)?,
            "categories" => new.categories = categories(v)?,
            "importance" => new.importance = importance(v)?,
            "internetMessageHeaders" => {
                for h in v
                    .as_array()
                    .ok_or_else(|| invalid(key, "an array of {name, value}"))?
                {
                    let name = h
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(key, "{name, value}"))?;
                    let value = h
                        .get("value")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(key, "{name, value}"))?;
                    if !name.to_ascii_lowercase().starts_with("x-") {
                        return Err(GraphError::bad_request(
                            "InvalidInternetMessageHeader",
                            format!(
                                "The internet message header name '{name}' should start with 'x-' or 'X-'."
                            ),
                        ));
                    }
                    new.headers.push((name.to_owned(), value.to_owned()));
                }
            }
            "singleValueExtendedProperties" => {
                for p in v
                    .as_array()
                    .ok_or_else(|| invalid(key, "an array of {id, value}"))?
                {
                    match extended(p)? {
                        Extended::MessageFlags(f) => flags = Some(f),
                        Extended::DeliveryTime(t) => new.received = Some(t),
                        Extended::SubmitTime(t) => new.sent = Some(t),
                        Extended::Other => {}
                    }
                }
            }
            "receivedDateTime" | "sentDateTime" => {
                return Err(GraphError::bad_request(
                    "ErrorInvalidPropertySet",
                    format!(
                        "'{key}' is read-only; set SystemTime 0x0E06 (received) or 0x0039 (sent) in singleValueExtendedProperties."
                    ),
                ));
            }
            "attachments" => {
                for a in v
                    .as_array()
                    .ok_or_else(|| invalid(key, "an array of fileAttachment"))?
                {
                    let map = a
                        .as_object()
                        .ok_or_else(|| invalid(key, "an array of fileAttachment"))?;
                    new.attachments.push(file_attachment(map)?);
                }
            }
            k if IGNORED.contains(&k) || k.starts_with("@odata.") => {}
            k => return Err(GraphError::unknown_property(k, "message")),
        }
    }
    if let Some(f) = flags {
        new.is_draft = f & MSGFLAG_UNSENT != 0;
        new.is_read = f & MSGFLAG_READ != 0;
    }
    if let Some(read) = explicit_read {
        new.is_read = read;
    }
    Ok(new)
}

/// Checks a PATCH body against `item` and applies it only if all of it is allowed.
pub(crate) fn apply_patch(item: &mut Item, map: &Map<String, Value>) -> Result<(), GraphError> {
    let mut next = item.clone();
    for (key, v) in map {
        let draft_only = matches!(key.as_str(), "subject" | "body" | "internetMessageId")
            || IGNORED.contains(&key.as_str());
        if draft_only && !item.is_draft {
            return Err(GraphError::bad_request(
                "ErrorInvalidPropertyUpdateSentMessage",
                format!(
                    "Update operation on property '{key}' is only supported for draft messages."
                ),
            ));
        }
        match key.as_str() {
            "isRead" => next.is_read = v.as_bool().ok_or_else(|| invalid(key, "true or false"))?,
            "flag" => next.flag = flag(v)?,
            "categories" => next.categories = categories(v)?,
            "importance" => next.importance = importance(v)?,
            "inferenceClassification" => {}
            "subject" => next.subject = Some(string(key, v)?),
            "body" => next.body = Some(body(v)?),
            "internetMessageId" => next.internet_message_id = Some(string(key, v)?),
            "singleValueExtendedProperties" => {
                for p in v
                    .as_array()
                    .ok_or_else(|| invalid(key, "an array of {id, value}"))?
                {
                    if !matches!(extended(p)?, Extended::Other) {
                        return Err(GraphError::bad_request(
                            "ErrorInvalidPropertyRequest",
                            format!("{p} can only be set when the item is created."),
                        ));
                    }
                }
            }
            k if IGNORED.contains(&k) || k.starts_with("@odata.") => {}
            k => return Err(GraphError::unknown_property(k, "message")),
        }
    }
    next.modified = Utc::now();
    next.change_key += 1;
    *item = next;
    Ok(())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The `message` JSON of an item.
pub(crate) fn message_json(item: &Item, context: &str) -> Value {
    let (content_type, content) = item
        .body
        .clone()
        .unwrap_or_else(|| ("text".to_owned(), String::new()));
    json!({
        "@odata.context": context,
        "@odata.etag": format!("W/\"CQAAABYAAA{:08x}\"", item.change_key),
        "id": item.id,
        "changeKey": format!("CQAAABYAAA{:08x}", item.change_key),
        "createdDateTime": time(item.created),
        "lastModifiedDateTime": time(item.modified),
        "receivedDateTime": time(item.received),
        "sentDateTime": item.sent.map(time),
        "internetMessageId": item.internet_message_id,
        "subject": item.subject,
        "importance": item.importance,
        "isRead": item.is_read,
        "isDraft": item.is_draft,
        "parentFolderId": item.folder,
        "categories": item.categories,
        "flag": {"flagStatus": item.flag.as_graph()},
        "body": {"contentType": content_type, "content": content},
        "internetMessageHeaders": item.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> Result<NewItem, GraphError> {
        parse_create(v.as_object().expect("valid test input"))
    }

    #[test]
    fn message_flags_decide_draft_and_read_state() {
        let props = |flags: &str| json!({"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": flags}]});
        // (body, draft, read)
        let table = [
            (json!({}), true, true),
            (props("1"), false, true),
            (props("0"), false, false),
            (props("4"), false, false),
            (props("9"), true, true),
        ];
        for (body, draft, read) in table {
            let new = create(body.clone()).expect("valid test input");
            assert_eq!((new.is_draft, new.is_read), (draft, read), "{body}");
        }
        let mut explicit = props("1");
        explicit["isRead"] = json!(false);
        assert!(!create(explicit).expect("valid test input").is_read);
    }

    #[test]
    fn times_headers_and_unknown_properties() {
        let new = create(json!({"singleValueExtendedProperties": [
            {"id": "SystemTime 0x0E06", "value": "2019-03-04T10:05:00Z"},
            {"id": "SystemTime 0x0039", "value": "2019-03-04T10:00:00+01:00"}]}))
        .expect("valid test input");
        assert_eq!(
            new.received.map(time).as_deref(),
            Some("2019-03-04T10:05:00Z")
        );
        assert_eq!(new.sent.map(time).as_deref(), Some("2019-03-04T09:00:00Z"));
        let codes = [
            (
                json!({"internetMessageHeaders": [{"name": "Received", "value": "x"}]}),
                "InvalidInternetMessageHeader",
            ),
            (json!({"bogus": 1}), "RequestBodyRead"),
            (
                json!({"singleValueExtendedProperties": [{"id": "SystemTime 0x0E06", "value": "yesterday"}]}),
                "ErrorInvalidExtendedPropertyValue",
            ),
            (
                json!({"receivedDateTime": "2019-03-04T10:05:00Z"}),
                "ErrorInvalidPropertySet",
            ),
        ];
        for (body, code) in codes {
            assert_eq!(
                create(body.clone()).expect_err("must be refused").code,
                code,
                "{body}"
            );
        }
    }
}
