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
use super::upload::INCOMPLETE;
use super::{Api, GraphClient, REQUEST_LIMIT, UploadPath, with_query};
use crate::body::Mime;
use crate::error::ConnectorError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
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
    /// IMAP keywords, carried as Outlook categories.
    pub keywords: &'a [String],
}

/// What [`GraphClient::import`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The new item's (immutable) id.
    pub id: String,
    /// The path the message went through: [`UploadPath::JsonCreate`] also when the
    /// client is set to `ImportMime` but the message's base64 MIME passes Graph's 4 MB
    /// request limit (its raw MIME is then not kept).
    pub path: UploadPath,
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
    /// `{"isRead", "flag", "categories"}` as Graph takes them.
    pub(super) fn state(&self) -> serde_json::Map<String, Value> {
        let flag = if self.flagged {
            "flagged"
        } else {
            "notFlagged"
        };
        let categories: Vec<&str> = self
            .keywords
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty() && !k.starts_with('\\'))
            .collect();
        let mut map = serde_json::Map::new();
        map.insert("isRead".into(), json!(self.seen));
        map.insert("flag".into(), json!({ "flagStatus": flag }));
        map.insert("categories".into(), json!(categories));
        map
    }
}

/// A message made ready for one of the two paths.
enum Prepared {
    Mime(Vec<u8>),
    Json(message_json::Converted),
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
            let encoded_len = mime.len().div_ceil(3) * 4;
            if self.upload == UploadPath::ImportMime && encoded_len <= REQUEST_LIMIT {
                Prepared::Mime(mime.into_vec())
            } else {
                if self.upload == UploadPath::ImportMime {
                    tracing::info!(
                        %upn,
                        folder = %folder_id,
                        message_id = mailhaul_proto::inspect::message_id(&mime).as_deref().unwrap_or(""),
                        base64_bytes = encoded_len,
                        "Message is over Graph's 4 MB request limit as MIME: it goes through the \
                         JSON path, which keeps no raw MIME (headers other than X-, the MIME \
                         structure)."
                    );
                }
                Prepared::Json(message_json::from_mime(&mime, msg.received, msg.seen)?)
            }
        };
        let converted = match prepared {
            Prepared::Mime(mime) => {
                let id = self.import_mime(upn, folder_id, msg, &mime).await?;
                return Ok(Imported {
                    id,
                    path: UploadPath::ImportMime,
                });
            }
            Prepared::Json(converted) => converted,
        };
        let id = self.create_json(upn, folder_id, msg, converted).await?;
        Ok(Imported {
            id,
            path: UploadPath::JsonCreate,
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
        let patch = Body::json(&Value::Object(msg.state()));
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
        ];
        let item = ImportItem {
            mime: Mime::Bytes(b""),
            received: Utc::now(),
            seen: true,
            flagged: true,
            keywords: &keywords,
        };
        assert_eq!(
            Value::Object(item.state()),
            json!({"isRead": true, "flag": {"flagStatus": "flagged"}, "categories": ["Work", "$Label1"]})
        );
    }

    #[test]
    fn items_need_an_id() {
        assert_eq!(item_id("x", &json!({"id": "A"})).ok().as_deref(), Some("A"));
        assert!(item_id("x", &json!({})).is_err());
    }
}
