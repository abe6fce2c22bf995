//! Listing a folder's messages by identity (`FindItem`, shallow, paged, with
//! `message:InternetMessageId` and `item:Subject`), for `mailhaul verify` to compare
//! with the source. Reads only.

use super::{EwsClient, FolderRef, PAGE_SIZE};
use crate::error::ConnectorError;
use crate::graph::ListedItem;

impl EwsClient {
    /// Every item in `folder` (an id or a distinguished name), with its Message-ID and
    /// subject.
    ///
    /// # Errors
    /// Any failed request (classified as the module `ews::error` says).
    pub async fn list_messages(&self, folder: &str) -> Result<Vec<ListedItem>, ConnectorError> {
        let parent = FolderRef::parse(folder).xml();
        let shape = concat!(
            "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>",
            r#"<t:FieldURI FieldURI="message:InternetMessageId"/>"#,
            r#"<t:FieldURI FieldURI="item:Subject"/>"#,
            "</t:AdditionalProperties></m:ItemShape>"
        );
        let found = self
            .pages("FindItem", "Items", |offset| {
                format!(
                    r#"<m:FindItem Traversal="Shallow">{shape}<m:IndexedPageItemView MaxEntriesReturned="{PAGE_SIZE}" Offset="{offset}" BasePoint="Beginning"/><m:ParentFolderIds>{parent}</m:ParentFolderIds></m:FindItem>"#
                )
            })
            .await?;
        found
            .iter()
            .map(|item| {
                let id = item
                    .child("ItemId")
                    .and_then(|i| i.attr("Id"))
                    .ok_or_else(|| {
                        ConnectorError::Protocol(
                            "ews FindItem listed an item without ItemId".into(),
                        )
                    })?;
                Ok(ListedItem {
                    id: id.to_owned(),
                    message_id: item
                        .child_text("InternetMessageId")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    subject: item.child_text("Subject").map(str::to_owned),
                })
            })
            .collect()
    }
}
