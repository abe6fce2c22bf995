//! Putting one message into a folder so it is not a draft, finding it again by its
//! `internetMessageId`, reading it back and deleting it.
//!
//! Invariants: no request body passes Graph's 4 MB limit ([`super::REQUEST_LIMIT`]).
//! On the `importMime` path a message whose base64 MIME would pass it takes the JSON
//! path instead ([`super::upload`]), which splits it over several requests. An import
//! on the `importMime` path is one create and one PATCH (read state, flag,
//! categories); when a request fails after the create may have been committed
//! (timeout, 503), the caller looks the message up with
//! [`GraphClient::find_by_message_id`] before sending it again.

use super::client::Body;
use super::message_json;
use super::route::Facts;
use super::upload::INCOMPLETE;
use super::{Api, GraphClient, UploadPath, with_query};
use crate::body::Mime;
use crate::error::ConnectorError;
use crate::exchange_state::{ItemState, KeywordCategories, PROP_ICON_INDEX, PROP_LAST_VERB};
use crate::mime::shape::Shape;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use mailhaul_proto::ledger::{Delivery, Lost, UploadPath as LedgerPath};
use reqwest::Method;
use serde_json::{Value, json};

/// One message to import and the state it had on the source.
#[derive(Debug, Clone, Copy)]
pub struct ImportItem<'a> {
    /// The raw RFC 5322 message.
    pub mime: Mime<'a>,
    /// The source's INTERNALDATE (received date).
    pub received: DateTime<Utc>,
    /// `\Seen`.
    pub seen: bool,
    /// `\Flagged`.
    pub flagged: bool,
    /// The message's other IMAP flags and keywords: `\Answered`, `$Forwarded` and
    /// `\Draft` are read from here, keywords become categories
    /// ([`crate::exchange_state`]).
    pub keywords: &'a [String],
}

/// What [`GraphClient::import`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The new item's (immutable) id.
    pub id: String,
    /// The path the message went through: [`UploadPath::JsonCreate`] also when the
    /// client is set to `ImportMime` but the message's base64 MIME passes Graph's 4 MB
    /// request limit (its raw MIME is then not kept), or when a draft goes by JSON to
    /// stay editable; [`UploadPath::ImportMime`] also on a JSON client for a message
    /// the router sends by MIME ([`crate::mime::shape`]).
    pub path: UploadPath,
    /// What the message lost on that path beyond what the path loses for every message.
    pub lost: Lost,
}

impl Imported {
    /// The ledger's form of the path taken.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            path: match self.path {
                UploadPath::ImportMime => LedgerPath::GraphImportMime,
                UploadPath::JsonCreate => LedgerPath::GraphJson,
            },
            lost: self.lost,
        }
    }
}

/// A message found by [`GraphClient::find_by_message_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundItem {
    /// Graph (immutable) id.
    pub id: String,
    /// `receivedDateTime`.
    pub received: Option<DateTime<Utc>>,
    /// `isDraft`.
    pub is_draft: bool,
    /// False for an item the JSON path created but did not finish (it still carries
    /// the category `mailhaul: import incomplete`, e.g. after a create that was
    /// committed but answered `503`): it lacks attachments, so delete it
    /// ([`GraphClient::delete_message`]) and import the message again.
    pub complete: bool,
}

impl ImportItem<'_> {
    /// The state Exchange shows: read, flagged, draft, replied/forwarded, categories.
    pub fn item_state(&self, categories: &KeywordCategories) -> ItemState {
        let mut state = ItemState::of(self.keywords, categories);
        state.read = self.seen;
        state.flagged = self.flagged;
        state
    }

    /// `{"isRead", "flag", "categories"}` as Graph takes them, and for a replied or
    /// forwarded message PidTagIconIndex and PidTagLastVerbExecuted
    /// ([`crate::exchange_state`]) in `singleValueExtendedProperties`.
    pub(super) fn state(&self, categories: &KeywordCategories) -> serde_json::Map<String, Value> {
        let state = self.item_state(categories);
        let flag = if state.flagged {
            "flagged"
        } else {
            "notFlagged"
        };
        let mut map = serde_json::Map::new();
        map.insert("isRead".into(), json!(state.read));
        map.insert("flag".into(), json!({ "flagStatus": flag }));
        map.insert("categories".into(), json!(state.categories));
        if let Some((icon, verb)) = state.verb() {
            map.insert(
                "singleValueExtendedProperties".into(),
                json!([
                    {"id": format!("Integer 0x{PROP_ICON_INDEX:04X}"), "value": icon.to_string()},
                    {"id": format!("Integer 0x{PROP_LAST_VERB:04X}"), "value": verb.to_string()},
                ]),
            );
        }
        map
    }
}

/// A message made ready for one of the two paths, with what it loses there.
enum Prepared {
    Mime(Vec<u8>, Lost),
    Json(message_json::Converted, Lost),
}

impl GraphClient {
    /// Imports one message into `folder_id` (an id or a well-known name) as a non-draft,
    /// with its read state, flag and keywords as categories; on the JSON path also with
    /// its received date. Returns the new item's id and the path taken.
    ///
    /// # Errors
    /// Permanent, before anything is sent, when no Graph path can take the message (a
    /// body over 4 MB without its attachments, an attachment over 150 MB); a MIME
    /// Exchange cannot read; any failed request ([`super::error`] classes). When a step
    /// after the create fails on the JSON path, the half-made item has been deleted
    /// (the error says so).
    pub async fn import(
        &self,
        upn: &str,
        folder_id: &str,
        msg: &ImportItem<'_>,
    ) -> Result<Imported, ConnectorError> {
        // Both paths need the whole message: importMime sends at most 4 MB, the JSON path
        // parses the MIME into its parts. A spooled body is read whole only while it is
        // prepared (one at a time per process), never while a request or a budget waits.
        let prepared = {
            let mime = msg.mime.whole().await?;
            self.prepare(upn, folder_id, msg, mime.into_vec())?
        };
        match prepared {
            Prepared::Mime(mime, lost) => {
                let id = self.import_mime(upn, folder_id, msg, &mime).await?;
                Ok(Imported {
                    id,
                    path: UploadPath::ImportMime,
                    lost,
                })
            }
            Prepared::Json(converted, lost) => {
                let id = self.create_json(upn, folder_id, msg, converted).await?;
                Ok(Imported {
                    id,
                    path: UploadPath::JsonCreate,
                    lost,
                })
            }
        }
    }

    /// The router ([`super::route`]): which path `mime` takes, and what it loses there.
    fn prepare(
        &self,
        upn: &str,
        folder_id: &str,
        msg: &ImportItem<'_>,
        mime: Vec<u8>,
    ) -> Result<Prepared, ConnectorError> {
        let state = msg.item_state(&self.options.categories);
        let facts = self.facts(mime.len(), state.draft);
        let convert = |mime: &[u8]| {
            message_json::from_mime(
                mime,
                msg.received,
                state.message_flags(),
                &self.options.json,
            )
        };
        // On the JSON setting the conversion parses the message anyway: its shape comes
        // from there, and the converted body is dropped if the message goes by MIME.
        let (shape, converted) = match (facts.upload, facts.needs_shape()) {
            (UploadPath::JsonCreate, _) => {
                let c = convert(&mime)?;
                (Some(c.shape), Some(c))
            }
            (UploadPath::ImportMime, true) => (Some(Shape::of_mime(&mime)), None),
            (UploadPath::ImportMime, false) => (None, None),
        };
        let path = facts.path(shape.filter(|_| facts.needs_shape()));
        if path == UploadPath::ImportMime {
            let lost = facts.lost(path, shape.unwrap_or_default());
            return Ok(Prepared::Mime(mime, lost));
        }
        let converted = match converted {
            Some(c) => c,
            None => convert(&mime)?,
        };
        let lost = facts.lost(path, converted.shape) | converted.lost;
        if lost.contains(Lost::RAW_MIME) {
            tracing::debug!(
                %upn,
                folder = %folder_id,
                message_id = mailhaul_proto::inspect::message_id(&mime).as_deref().unwrap_or(""),
                base64_bytes = mime.len().div_ceil(3) * 4,
                "Message is over Graph's 4 MB request limit as MIME: it goes through the \
                 JSON path, which keeps no raw MIME."
            );
        }
        if !converted.dropped.is_empty() {
            tracing::debug!(%upn, folder = %folder_id, dropped = ?converted.dropped, "Addresses Exchange would refuse were left out.");
        }
        Ok(Prepared::Json(converted, lost))
    }

    /// The path `mime` (a draft or not) will take and what it will lose there, as
    /// [`GraphClient::import`] decides it, without sending anything (for `plan`).
    pub fn planned_delivery(&self, mime: &[u8], draft: bool) -> Delivery {
        let facts = self.facts(mime.len(), draft);
        let shape = Shape::of_mime(mime);
        let path = facts.path(facts.needs_shape().then_some(shape));
        Imported {
            id: String::new(),
            path,
            lost: facts.lost(path, shape),
        }
        .delivery()
    }

    /// What the router knows of a message of `size` bytes, a draft or not.
    pub(crate) fn facts(&self, size: usize, draft: bool) -> Facts {
        Facts {
            upload: self.upload,
            mime_route: self.options.mime_route,
            size,
            draft,
        }
    }

    /// Re-applies `msg`'s state (read, flag, categories, replied/forwarded) to item `id`,
    /// a copy found after a failed or interrupted import: on the importMime path the state
    /// comes in a second request, which the first attempt may not have sent. Harmless on
    /// a copy that has it already. Returns the path the copy took (the router decides the
    /// same way every time).
    ///
    /// # Errors
    /// A spooled body that cannot be read; the failed PATCH ([`super::error`] classes).
    pub async fn restore_state(
        &self,
        upn: &str,
        folder_id: &str,
        id: &str,
        msg: &ImportItem<'_>,
    ) -> Result<Imported, ConnectorError> {
        let (path, lost) = {
            let mime = msg.mime.whole().await?;
            match self.prepare(upn, folder_id, msg, mime.into_vec())? {
                Prepared::Mime(_, lost) => (UploadPath::ImportMime, lost),
                Prepared::Json(_, lost) => (UploadPath::JsonCreate, lost),
            }
        };
        let url = self.url(Api::V1, upn, &["messages", id]);
        let patch = Body::json(&Value::Object(msg.state(&self.options.categories)));
        self.call("set message state", upn, Method::PATCH, url, patch)
            .await?;
        Ok(Imported {
            id: id.to_owned(),
            path,
            lost,
        })
    }

    async fn import_mime(
        &self,
        upn: &str,
        folder_id: &str,
        msg: &ImportItem<'_>,
        mime: &[u8],
    ) -> Result<String, ConnectorError> {
        const OP: &str = "importMime";
        let url = self.url(Api::Beta, upn, &["mailFolders", folder_id, "importMime"]);
        let body = Body::Mime(STANDARD.encode(mime));
        let created = self.call(OP, upn, Method::POST, url, body).await?;
        let id = item_id(OP, &created)?;
        let url = self.url(Api::V1, upn, &["messages", &id]);
        let patch = Body::json(&Value::Object(msg.state(&self.options.categories)));
        self.call("set message state", upn, Method::PATCH, url, patch)
            .await?;
        Ok(id)
    }

    /// Deletes item `id` (Graph moves it to Deleted Items).
    ///
    /// # Errors
    /// Any failed request ([`super::error`] classes); `404 ErrorItemNotFound` when
    /// there is no such item.
    pub async fn delete_message(&self, upn: &str, id: &str) -> Result<(), ConnectorError> {
        let url = self.url(Api::V1, upn, &["messages", id]);
        self.call_raw("delete message", upn, Method::DELETE, url, Body::None)
            .await?;
        Ok(())
    }

    /// The MIME of item `id` as Exchange gives it (`GET …/messages/{id}/$value`), to
    /// verify an import.
    ///
    /// # Errors
    /// Any failed request ([`super::error`] classes).
    pub async fn message_mime(&self, upn: &str, id: &str) -> Result<Vec<u8>, ConnectorError> {
        let url = self.url(Api::V1, upn, &["messages", id, "$value"]);
        self.call_raw("get message mime", upn, Method::GET, url, Body::None)
            .await
    }

    /// The items in `folder_id` whose `internetMessageId` is `id` (angle brackets
    /// optional), to learn whether a create that failed was committed after all.
    ///
    /// # Errors
    /// Any failed listing ([`super::error`] classes).
    pub async fn find_by_message_id(
        &self,
        upn: &str,
        folder_id: &str,
        id: &str,
    ) -> Result<Vec<FoundItem>, ConnectorError> {
        let id = id.trim();
        let id = if id.starts_with('<') {
            id.to_owned()
        } else {
            format!("<{id}>")
        };
        // OData string literal: a quote is doubled.
        let filter = format!("internetMessageId eq '{}'", id.replace('\'', "''"));
        let url = self.url(Api::V1, upn, &["mailFolders", folder_id, "messages"]);
        let url = with_query(
            url,
            &[
                ("$filter", &filter),
                (
                    "$select",
                    "id,internetMessageId,receivedDateTime,isDraft,categories",
                ),
            ],
        );
        self.collect("find message", upn, url)
            .await?
            .iter()
            .map(|v| {
                Ok(FoundItem {
                    id: item_id("find message", v)?,
                    received: v
                        .get("receivedDateTime")
                        .and_then(Value::as_str)
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc)),
                    is_draft: v.get("isDraft").and_then(Value::as_bool).unwrap_or(false),
                    complete: !v
                        .get("categories")
                        .and_then(Value::as_array)
                        .is_some_and(|c| c.iter().any(|c| c.as_str() == Some(INCOMPLETE))),
                })
            })
            .collect()
    }
}

/// The `id` of a returned item.
pub(super) fn item_id(op: &str, item: &Value) -> Result<String, ConnectorError> {
    item.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ConnectorError::Protocol(format!("graph {op} answered an item without id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_maps_flags_and_keywords() {
        let keywords = vec![
            "Work".to_owned(),
            " ".to_owned(),
            "\\Seen".to_owned(),
            "$Label1".to_owned(),
            "$MDNSent".to_owned(),
            "\\Answered".to_owned(),
        ];
        let item = ImportItem {
            mime: Mime::Bytes(b""),
            received: Utc::now(),
            seen: true,
            flagged: true,
            keywords: &keywords,
        };
        assert_eq!(
            Value::Object(item.state(&KeywordCategories::default())),
            json!({"isRead": true, "flag": {"flagStatus": "flagged"}, "categories": ["Work"],
                "singleValueExtendedProperties": [
                    {"id": "Integer 0x1080", "value": "261"},
                    {"id": "Integer 0x1081", "value": "102"}]})
        );
        let labels = KeywordCategories::new([("$label1".to_owned(), "Important".to_owned())]);
        assert_eq!(
            item.state(&labels)["categories"],
            json!(["Work", "Important"])
        );
    }

    #[test]
    fn items_need_an_id() {
        assert_eq!(item_id("x", &json!({"id": "A"})).ok().as_deref(), Some("A"));
        assert!(item_id("x", &json!({})).is_err());
    }
}
