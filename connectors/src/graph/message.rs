//! Putting one message into a folder so it is not a draft, and finding it again by its
//! `internetMessageId`.
//!
//! Invariants: a message whose request body would pass Graph's 4 MB limit is refused
//! before anything is sent ([`super::REQUEST_LIMIT`]). An import is one create (and,
//! on the `importMime` path, one PATCH for read state, flag and categories); when either
//! fails after the create may have been committed (timeout, 503), the caller looks the
//! message up with [`GraphClient::find_by_message_id`] before sending it again.

use super::error::too_large;
use super::{Api, Body, GraphClient, REQUEST_LIMIT, UploadPath, message_json, with_query};
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
    pub mime: &'a [u8],
    /// The source's INTERNALDATE (received date).
    pub received: DateTime<Utc>,
    /// `\Seen`.
    pub seen: bool,
    /// `\Flagged`.
    pub flagged: bool,
    /// IMAP keywords, carried as Outlook categories.
    pub keywords: &'a [String],
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
}

impl ImportItem<'_> {
    /// `{"isRead", "flag", "categories"}` as Graph takes them.
    fn state(&self) -> serde_json::Map<String, Value> {
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

impl GraphClient {
    /// Imports one message into `folder_id` (an id or a well-known name) as a non-draft,
    /// with its read state, flag and keywords as categories; on the JSON path also with
    /// its received date. Returns the new item's id.
    ///
    /// # Errors
    /// Permanent "too large for Graph's 4 MB request limit" before sending anything; a
    /// MIME Exchange cannot read; any failed request ([`super::error`] classes).
    pub async fn import(
        &self,
        upn: &str,
        folder_id: &str,
        msg: &ImportItem<'_>,
    ) -> Result<String, ConnectorError> {
        match self.upload {
            UploadPath::ImportMime => self.import_mime(upn, folder_id, msg).await,
            UploadPath::JsonCreate => self.create_json(upn, folder_id, msg).await,
        }
    }

    async fn import_mime(
        &self,
        upn: &str,
        folder_id: &str,
        msg: &ImportItem<'_>,
    ) -> Result<String, ConnectorError> {
        const OP: &str = "importMime";
        let encoded = STANDARD.encode(msg.mime);
        if encoded.len() > REQUEST_LIMIT {
            return Err(too_large(OP, encoded.len()));
        }
        let url = self.url(Api::Beta, upn, &["mailFolders", folder_id, "importMime"]);
        let created = self
            .call(OP, upn, Method::POST, url, Body::Mime(encoded))
            .await?;
        let id = item_id(OP, &created)?;
        let url = self.url(Api::V1, upn, &["messages", &id]);
        let patch = Body::Json(Value::Object(msg.state()));
        self.call("set message state", upn, Method::PATCH, url, patch)
            .await?;
        Ok(id)
    }

    async fn create_json(
        &self,
        upn: &str,
        folder_id: &str,
        msg: &ImportItem<'_>,
    ) -> Result<String, ConnectorError> {
        const OP: &str = "create message";
        let mut body = message_json::from_mime(msg.mime, msg.received, msg.seen)?;
        body.extend(msg.state());
        let body = Value::Object(body);
        let size = body.to_string().len();
        if size > REQUEST_LIMIT {
            return Err(too_large(OP, size));
        }
        let url = self.url(Api::V1, upn, &["mailFolders", folder_id, "messages"]);
        let created = self
            .call(OP, upn, Method::POST, url, Body::Json(body))
            .await?;
        item_id(OP, &created)
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
                ("$select", "id,internetMessageId,receivedDateTime,isDraft"),
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
                })
            })
            .collect()
    }
}

/// The `id` of a returned item.
fn item_id(op: &str, item: &Value) -> Result<String, ConnectorError> {
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
            mime: b"",
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
