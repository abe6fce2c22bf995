//! The `message` resource as JSON: reading a JSON create (with the MAPI extended
//! properties migration tools use) and reading a PATCH; the read side is
//! [`super::graph_read`].
//!
//! Rules (research §1.2): `Integer 0x0E07` (PidTagMessageFlags) makes a non-draft iff
//! bit 0x8 (MSGFLAG_UNSENT) is clear and gives the read state (bit 0x1) unless `isRead`
//! is given; `SystemTime 0x0E06` is `receivedDateTime`, `SystemTime 0x0039` is
//! `sentDateTime`; those three can only be set at creation (for 0x0E06/0x0039 on a PATCH
//! the docs are silent [U], exchange-fidelity.md §3: the emulator is strict and refuses).
//! Every other extended property is kept as sent and reads back. Only `x-` headers may
//! be set. Addresses must be SMTP addresses (`local@domain`, no spaces or brackets
//! outside a quoted local part): Graph refuses others [U which exactly], the emulator
//! with `400 ErrorInvalidRecipients`. On non-drafts PATCH may change `isRead`, `flag`,
//! `categories`, `importance`, `inferenceClassification` and extended properties other
//! than those three. A PATCH is checked whole before anything changes.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::graph_attachments::file_attachment;
use super::graph_error::GraphError;
use super::item::{Address, Attachment, Item, People, PropId, header_definition};
use super::state::FlagStatus;

const MSGFLAG_READ: i64 = 0x1;
const MSGFLAG_UNSENT: i64 = 0x8;

/// Writable properties the emulator accepts but does not keep.
const IGNORED: &[&str] = &[
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "inferenceClassification",
];

/// Properties that change only while the item is a draft; from the fourth on, the
/// address properties.
const DRAFT_ONLY: &[&str] = &[
    "subject",
    "body",
    "internetMessageId",
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
    pub(crate) people: People,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) extended: Vec<(PropId, String)>,
    /// Inline `fileAttachment`s, ids not yet assigned.
    pub(crate) attachments: Vec<Attachment>,
}

impl NewItem {
    /// The named-property definitions this create takes.
    pub(crate) fn definitions(&self) -> Vec<(String, bool)> {
        self.headers
            .iter()
            .map(|(n, _)| (header_definition(n), true))
            .chain(self.extended.iter().filter_map(|(id, _)| id.definition()))
            .collect()
    }

    /// Bytes of the `internetMessageHeaders` as a header block would hold them.
    pub(crate) fn header_bytes(&self) -> usize {
        self.headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum()
    }
}

/// A plausible SMTP address: one `@` outside a quoted local part, both sides
/// non-empty, no whitespace, brackets, commas or semicolons outside quotes.
fn plausible_address(a: &str) -> bool {
    let (local, domain) = match a.rfind('@') {
        Some(i) => (&a[..i], &a[i + 1..]),
        None => return false,
    };
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    let bad = |c: char| c.is_whitespace() || "<>(),;:@[]\\\"".contains(c);
    !local.is_empty()
        && !domain.is_empty()
        && !domain.chars().any(|c| bad(c) || c == '"')
        && (quoted || !local.chars().any(bad))
}

fn recipient(key: &str, v: &Value) -> Result<Address, GraphError> {
    let email = v
        .get("emailAddress")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(key, "{\"emailAddress\": {\"name\", \"address\"}}"))?;
    let address = email
        .get("address")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !plausible_address(&address) {
        return Err(GraphError::bad_request(
            "ErrorInvalidRecipients",
            format!(
                "At least one recipient isn't valid: '{address}' in '{key}' is not an SMTP address."
            ),
        ));
    }
    Ok(Address {
        name: email
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|n| !n.is_empty()),
        address,
    })
}

fn recipients(key: &str, v: &Value) -> Result<Vec<Address>, GraphError> {
    v.as_array()
        .ok_or_else(|| invalid(key, "an array of recipients"))?
        .iter()
        .map(|r| recipient(key, r))
        .collect()
}

/// Sets the address property `key` (one of `DRAFT_ONLY[3..]`).
fn set_people(p: &mut People, key: &str, v: &Value) -> Result<(), GraphError> {
    match key {
        "from" => p.from = Some(recipient(key, v)?),
        "sender" => p.sender = Some(recipient(key, v)?),
        "toRecipients" => p.to = recipients(key, v)?,
        "ccRecipients" => p.cc = recipients(key, v)?,
        "bccRecipients" => p.bcc = recipients(key, v)?,
        _ => p.reply_to = recipients(key, v)?,
    }
    Ok(())
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

/// A parsed extended property: the three that shape the item, or any other.
enum Extended {
    MessageFlags(i64),
    DeliveryTime(DateTime<Utc>),
    SubmitTime(DateTime<Utc>),
    Other,
}

/// Parses one `{"id": "<Type> 0x<tag>" | "<Type> {guid} Name <n>" | …, "value": "…"}`.
fn extended(v: &Value) -> Result<(PropId, String, Extended), GraphError> {
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
    let prop = PropId::parse(id).ok_or_else(|| {
        bad("'id' must be '<Type> 0x<tag>', '<Type> {guid} Name <name>' or '<Type> {guid} Id 0x<id>'")
    })?;
    let PropId::Tag { ty, tag } = &prop else {
        return Ok((prop, value.to_owned(), Extended::Other));
    };
    let (ty, tag) = (ty.clone(), *tag);
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
    let kind = match (ty.as_str(), tag) {
        ("integer", 0x0E07) => value.parse().map(Extended::MessageFlags).map_err(|_| {
            GraphError::bad_request(
                "ErrorInvalidExtendedPropertyValue",
                format!("'{value}' is not an integer for {id}."),
            )
        })?,
        ("systemtime", 0x0E06) => time().map(Extended::DeliveryTime)?,
        ("systemtime", 0x0039) => time().map(Extended::SubmitTime)?,
        _ => Extended::Other,
    };
    Ok((prop, value.to_owned(), kind))
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
        people: People::default(),
        headers: Vec::new(),
        extended: Vec::new(),
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
            k if DRAFT_ONLY[3..].contains(&k) => set_people(&mut new.people, key, v)?,
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
                    let (id, value, kind) = extended(p)?;
                    match kind {
                        Extended::MessageFlags(f) => flags = Some(f),
                        Extended::DeliveryTime(t) => new.received = Some(t),
                        Extended::SubmitTime(t) => new.sent = Some(t),
                        Extended::Other => {}
                    }
                    new.extended.retain(|(k, _)| *k != id);
                    new.extended.push((id, value));
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

/// Checks a PATCH body against `item`; returns the item as it would be after it, and
/// the named-property definitions it would take. Nothing changes here.
pub(crate) fn patched(
    item: &Item,
    map: &Map<String, Value>,
) -> Result<(Item, Vec<(String, bool)>), GraphError> {
    let mut next = item.clone();
    let mut definitions = Vec::new();
    for (key, v) in map {
        let draft_only = DRAFT_ONLY.contains(&key.as_str());
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
            k if DRAFT_ONLY[3..].contains(&k) => set_people(&mut next.people, key, v)?,
            "singleValueExtendedProperties" => {
                for p in v
                    .as_array()
                    .ok_or_else(|| invalid(key, "an array of {id, value}"))?
                {
                    let (id, value, kind) = extended(p)?;
                    if !matches!(kind, Extended::Other) {
                        return Err(GraphError::bad_request(
                            "ErrorInvalidPropertyRequest",
                            format!("{p} can only be set when the item is created."),
                        ));
                    }
                    definitions.extend(id.definition());
                    next.set_extended(id, value);
                }
            }
            k if IGNORED.contains(&k) || k.starts_with("@odata.") => {}
            k => return Err(GraphError::unknown_property(k, "message")),
        }
    }
    next.modified = Utc::now();
    next.change_key += 1;
    Ok((next, definitions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_graph_takes() {
        let table = [
            ("a@example.com", true),
            ("\"john doe\"@example.com", true),
            ("john doe@example.com", false),
            ("<a@example.com>", false),
            ("a@", false),
            ("undisclosed-recipients:;", false),
            ("", false),
        ];
        for (a, ok) in table {
            assert_eq!(plausible_address(a), ok, "{a}");
        }
    }

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
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
        assert_eq!(
            time(new.received).as_deref(),
            Some("2019-03-04T10:05:00+00:00")
        );
        assert_eq!(time(new.sent).as_deref(), Some("2019-03-04T09:00:00+00:00"));
        let codes = [
            (
                json!({"internetMessageHeaders": [{"name": "Received", "value": "x"}]}),
                "InvalidInternetMessageHeader",
            ),
            (json!({"bogus": 1}), "RequestBodyRead"),
            (
                json!({"toRecipients": [{"emailAddress": {"address": "john doe@example.com"}}]}),
                "ErrorInvalidRecipients",
            ),
            (
                json!({"singleValueExtendedProperties": [{"id": "String x-foo", "value": "1"}]}),
                "ErrorInvalidExtendedProperty",
            ),
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
