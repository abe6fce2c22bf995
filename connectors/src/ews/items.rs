//! Putting messages into a folder as non-drafts (`CreateItem` `SaveOnly` with
//! `MimeContent`), many per request, and finding them again by Message-ID.
//!
//! Each `t:Message` carries, in the schema order Exchange enforces (research §2.1,
//! `ErrorSchemaValidation` otherwise): `MimeContent` (the raw message, base64),
//! `Categories` (the IMAP keywords that are user labels, [`crate::exchange_state`]),
//! the MAPI properties `PR_MESSAGE_FLAGS` (0x0E07: read bit per `\Seen`,
//! `MSGFLAG_UNSENT` only per `\Draft`, so only drafts are drafts),
//! `PR_MESSAGE_DELIVERY_TIME` (0x0E06: the received date), when flagged
//! `PidTagFlagStatus` (0x1090 = 2), when replied or forwarded PidTagIconIndex (0x1080)
//! and PidTagLastVerbExecuted (0x1081), then `IsRead`.
//!
//! Invariant: a batch answers one result per item, in order. A request-level failure
//! (HTTP, SOAP fault) may still have been committed in part; the caller finds out with
//! [`EwsClient::find_by_message_id`] before sending again.

use super::client::{Payload, messages};
use super::error::Refusal;
use super::xml::{Element, esc};
use super::{EwsClient, FolderRef, PAGE_SIZE};
use crate::error::ConnectorError;
use crate::exchange_state::{KeywordCategories, PROP_ICON_INDEX, PROP_LAST_VERB};
use crate::graph::{FoundItem, ImportItem};
use chrono::{DateTime, SecondsFormat, Utc};

/// `PidTagFlagStatus` of a flagged message (`followupFlagged`).
const FLAG_STATUS_FLAGGED: u32 = 2;

/// One `t:Message` for `CreateItem`, added to `out`; a spooled MIME is streamed.
fn message_xml(item: &ImportItem<'_>, categories: &KeywordCategories, out: &mut Payload) {
    let state = item.item_state(categories);
    out.text(r#"<t:Message><t:MimeContent CharacterSet="UTF-8">"#);
    out.base64(item.mime);
    let mut xml = String::from("</t:MimeContent>");
    if !state.categories.is_empty() {
        xml.push_str("<t:Categories>");
        for c in &state.categories {
            xml.push_str(&format!("<t:String>{}</t:String>", esc(c)));
        }
        xml.push_str("</t:Categories>");
    }
    // PR_MESSAGE_FLAGS: read per \Seen; MSGFLAG_UNSENT only for drafts, which then stay
    // editable (research §2.1: without it the item is a received message).
    xml.push_str(&property(
        "0x0E07",
        "Integer",
        &state.message_flags().to_string(),
    ));
    let received = item.received.to_rfc3339_opts(SecondsFormat::Secs, true);
    xml.push_str(&property("0x0E06", "SystemTime", &received));
    if state.flagged {
        xml.push_str(&property(
            "0x1090",
            "Integer",
            &FLAG_STATUS_FLAGGED.to_string(),
        ));
    }
    if let Some((icon, verb)) = state.verb() {
        xml.push_str(&property(
            &format!("0x{PROP_ICON_INDEX:04X}"),
            "Integer",
            &icon.to_string(),
        ));
        xml.push_str(&property(
            &format!("0x{PROP_LAST_VERB:04X}"),
            "Integer",
            &verb.to_string(),
        ));
    }
    xml.push_str(&format!("<t:IsRead>{}</t:IsRead></t:Message>", state.read));
    out.text(&xml);
}

/// A `t:ExtendedProperty` by MAPI tag.
fn property(tag: &str, kind: &str, value: &str) -> String {
    format!(
        r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="{tag}" PropertyType="{kind}"/><t:Value>{}</t:Value></t:ExtendedProperty>"#,
        esc(value)
    )
}

/// `<id>`, angle brackets added when missing.
fn bracketed(message_id: &str) -> String {
    let id = message_id.trim();
    if id.starts_with('<') {
        id.to_owned()
    } else {
        format!("<{id}>")
    }
}

impl EwsClient {
    /// Creates every item of `items` in `folder` (a folder id or a distinguished name
    /// such as `inbox`) with one `CreateItem` request, as non-drafts with their received
    /// date, read state, flag and keywords as categories.
    ///
    /// Returns one result per item, in order: the new item's id, or that item's own
    /// failure (`ErrorMessageSizeExceeded`, `ErrorQuotaExceeded` and unreadable MIME
    /// are permanent; `ErrorBatchProcessingStopped` is transient).
    ///
    /// # Errors
    /// A failure of the whole request (HTTP error, SOAP fault such as `ErrorServerBusy`),
    /// or an answer with a different number of results than items.
    pub async fn create_items(
        &self,
        folder: &str,
        items: &[ImportItem<'_>],
    ) -> Result<Vec<Result<String, ConnectorError>>, ConnectorError> {
        const OP: &str = "CreateItem";
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut body = Payload::default();
        body.text(&format!(
            r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items>"#,
            FolderRef::parse(folder).xml()
        ));
        for item in items {
            message_xml(item, &self.categories, &mut body);
        }
        body.text("</m:Items></m:CreateItem>");
        let response = self.call_payload(OP, body).await?;
        let answers = messages(&response);
        if answers.len() != items.len() {
            return Err(ConnectorError::Protocol(format!(
                "ews {OP} answered {} response messages for {} items",
                answers.len(),
                items.len()
            )));
        }
        Ok(answers.iter().map(|m| self.created(m)).collect())
    }

    /// The id in one `CreateItemResponseMessage`, or its error.
    fn created(&self, message: &Element) -> Result<String, ConnectorError> {
        const OP: &str = "CreateItem";
        if message.attr("ResponseClass") == Some("Error") {
            return Err(Refusal::from_response(message).into_error(OP, &self.mailbox));
        }
        message
            .child("Items")
            .and_then(|items| items.children.first())
            .and_then(|item| item.child("ItemId"))
            .and_then(|id| id.attr("Id"))
            .map(str::to_owned)
            .ok_or_else(|| {
                ConnectorError::Protocol(format!(
                    "ews {OP} reported success without an ItemId (is MessageDisposition \
                     SaveOnly?)"
                ))
            })
    }

    /// The items in `folder` (an id or a distinguished name) whose Internet Message-ID
    /// is `message_id` (angle brackets optional), to learn whether a create that failed
    /// was committed after all.
    ///
    /// # Errors
    /// Any failed request (classified as the module `ews::error` says).
    pub async fn find_by_message_id(
        &self,
        folder: &str,
        message_id: &str,
    ) -> Result<Vec<FoundItem>, ConnectorError> {
        let wanted = bracketed(message_id);
        let parent = FolderRef::parse(folder).xml();
        let shape = concat!(
            "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>",
            r#"<t:FieldURI FieldURI="message:InternetMessageId"/>"#,
            r#"<t:FieldURI FieldURI="item:DateTimeReceived"/>"#,
            r#"<t:FieldURI FieldURI="item:IsDraft"/>"#,
            "</t:AdditionalProperties></m:ItemShape>"
        );
        let restriction = format!(
            r#"<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="message:InternetMessageId"/><t:FieldURIOrConstant><t:Constant Value="{}"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>"#,
            esc(&wanted)
        );
        let found = self
            .pages("FindItem", "Items", |offset| {
                format!(
                    r#"<m:FindItem Traversal="Shallow">{shape}<m:IndexedPageItemView MaxEntriesReturned="{PAGE_SIZE}" Offset="{offset}" BasePoint="Beginning"/>{restriction}<m:ParentFolderIds>{parent}</m:ParentFolderIds></m:FindItem>"#
                )
            })
            .await?;
        found
            .iter()
            // Exchange may compare strings case-insensitively; Message-IDs are not.
            .filter(|item| {
                item.child_text("InternetMessageId")
                    .is_none_or(|id| id == wanted)
            })
            .map(found_item)
            .collect()
    }
}

/// A `FindItem` result as a [`FoundItem`].
fn found_item(item: &Element) -> Result<FoundItem, ConnectorError> {
    let id = item
        .child("ItemId")
        .and_then(|i| i.attr("Id"))
        .ok_or_else(|| {
            ConnectorError::Protocol("ews FindItem listed an item without ItemId".into())
        })?;
    Ok(FoundItem {
        id: id.to_owned(),
        received: item
            .child_text("DateTimeReceived")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        is_draft: item.child_text("IsDraft") == Some("true"),
        // One CreateItem makes the whole item: there is no half-made EWS import.
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    use super::super::xml::parse;
    use super::*;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn xml_of(item: &ImportItem<'_>) -> String {
        let mut p = Payload::default();
        message_xml(item, &KeywordCategories::default(), &mut p);
        p.into_text()
    }

    fn item<'a>(
        mime: &'a [u8],
        keywords: &'a [String],
        seen: bool,
        flagged: bool,
    ) -> ImportItem<'a> {
        ImportItem {
            mime: mime.into(),
            received: DateTime::parse_from_rfc3339("2019-03-04T10:05:00+01:00")
                .expect("date")
                .with_timezone(&Utc),
            seen,
            flagged,
            keywords,
        }
    }

    /// Local names of a message's children, in order.
    fn order(xml: &str) -> Vec<String> {
        let root = parse(xml).map_err(|e| format!("{e}: {xml}")).expect("xml");
        root.children.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn messages_follow_schema_order() {
        let keywords = vec![
            "Work".to_owned(),
            " ".to_owned(),
            "\\Seen".to_owned(),
            "<b>&".to_owned(),
        ];
        let xml = xml_of(&item(b"Subject: x\r\n\r\nhi", &keywords, true, true));
        // Declare the t: prefix so the fragment parses on its own.
        let xml = xml.replacen("<t:Message>", r#"<t:Message xmlns:t="t">"#, 1);
        assert_eq!(
            order(&xml),
            [
                "MimeContent",
                "Categories",
                "ExtendedProperty",
                "ExtendedProperty",
                "ExtendedProperty",
                "IsRead"
            ]
        );
        let root = parse(&xml).expect("xml");
        let mime = root.child_text("MimeContent").expect("mime");
        assert_eq!(
            STANDARD.decode(mime).expect("base64"),
            b"Subject: x\r\n\r\nhi"
        );
        let cats: Vec<&str> = root
            .child("Categories")
            .expect("cats")
            .children
            .iter()
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(cats, ["Work", "<b>&"]);
        let props: Vec<(Option<&str>, &str)> = root
            .children
            .iter()
            .filter(|c| c.name == "ExtendedProperty")
            .map(|p| {
                (
                    p.child("ExtendedFieldURI")
                        .and_then(|u| u.attr("PropertyTag")),
                    p.child_text("Value").unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            props,
            [
                (Some("0x0E07"), "1"),
                (Some("0x0E06"), "2019-03-04T09:05:00Z"),
                (Some("0x1090"), "2")
            ]
        );
        assert_eq!(root.child_text("IsRead"), Some("true"));
    }

    #[test]
    fn unread_unflagged_messages_have_no_flag_and_no_read_bit() {
        let xml = xml_of(&item(b"x", &[], false, false));
        let xml = xml.replacen("<t:Message>", r#"<t:Message xmlns:t="t">"#, 1);
        assert_eq!(
            order(&xml),
            [
                "MimeContent",
                "ExtendedProperty",
                "ExtendedProperty",
                "IsRead"
            ]
        );
        let root = parse(&xml).expect("xml");
        assert_eq!(
            root.child("ExtendedProperty")
                .and_then(|p| p.child_text("Value")),
            Some("0")
        );
        assert_eq!(root.child_text("IsRead"), Some("false"));
    }

    #[test]
    fn message_ids_get_brackets() {
        assert_eq!(bracketed(" a@b "), "<a@b>");
        assert_eq!(bracketed("<a@b>"), "<a@b>");
    }

    #[test]
    fn found_items_are_read() {
        let xml = r#"<Message><ItemId Id="I1"/><DateTimeReceived>2019-03-04T10:05:00Z</DateTimeReceived><IsDraft>false</IsDraft></Message>"#;
        let found = found_item(&parse(xml).expect("xml")).expect("item");
        assert_eq!(found.id, "I1");
        assert!(!found.is_draft && found.received.is_some());
        assert!(found_item(&parse("<Message/>").expect("xml")).is_err());
    }
}
