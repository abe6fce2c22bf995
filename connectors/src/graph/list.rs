//! Listing a folder's messages by identity (`GET /users/{upn}/mailFolders/{id}/messages`
//! with `$select=id,internetMessageId,subject`, paged through `@odata.nextLink`), for
//! `mailhaul verify` to compare with the source. Reads only.

use super::{Api, GraphClient, with_query};
use crate::error::ConnectorError;
use serde_json::Value;

/// One item of a folder, as `verify` knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedItem {
    /// Graph id.
    pub id: String,
    /// `internetMessageId`, if the item has one.
    pub message_id: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
}

impl GraphClient {
    /// Every item in folder `folder_id` of `upn`, with its Message-ID and subject.
    ///
    /// # Errors
    /// Any failed request (classified as the module `graph::error` says).
    pub async fn list_messages(
        &self,
        upn: &str,
        folder_id: &str,
    ) -> Result<Vec<ListedItem>, ConnectorError> {
        let url = self.url(Api::V1, upn, &["mailFolders", folder_id, "messages"]);
        let url = with_query(
            url,
            &[
                ("$select", "id,internetMessageId,subject"),
                // The largest page Graph serves for messages.
                ("$top", "1000"),
            ],
        );
        self.collect("list messages", upn, url)
            .await?
            .iter()
            .map(|v| {
                let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
                Ok(ListedItem {
                    id: super::message::item_id("list messages", v)?,
                    message_id: text("internetMessageId").filter(|s| !s.trim().is_empty()),
                    subject: text("subject"),
                })
            })
            .collect()
    }
}
