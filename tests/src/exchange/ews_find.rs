//! EWS `FindItem` (finditem-operation), enough for a client that must find what it
//! already uploaded after a crash: `Shallow` traversal of one or more folders, an
//! optional `IsEqualTo` restriction on the Internet Message-ID (`message:InternetMessageId`
//! or `PidTagInternetMessageId`, tag 0x1035), `IndexedPageItemView` paging capped at
//! 1,000, and items with `ItemId`, `Subject`, `InternetMessageId`, `Size`,
//! `DateTimeReceived`, `IsRead`.
//!
//! Strictness: any other restriction or traversal is a schema fault, so a client cannot
//! believe a filter was applied when the emulator would have ignored it.

use chrono::SecondsFormat;

use super::ews::{SoapFault, folder_ref, soap_fault};
use super::ews_xml::{self, Element, MESSAGES, TYPES, esc};
use super::item::Item;
use super::state::Mailbox;

/// EWSFindCountLimit.
const FIND_COUNT_LIMIT: usize = 1000;

fn schema(message: impl Into<String>) -> SoapFault {
    soap_fault(
        "ErrorSchemaValidation",
        format!("The request failed schema validation: {}", message.into()),
    )
}

/// The Message-ID an `IsEqualTo` restriction asks for.
fn restriction(op: &Element) -> Result<Option<String>, SoapFault> {
    let Some(restriction) = op.child(MESSAGES, "Restriction") else {
        return Ok(None);
    };
    let unsupported = || {
        schema(
            "the emulator supports only IsEqualTo on message:InternetMessageId (or tag 0x1035) with a Constant",
        )
    };
    let equal = restriction
        .child(TYPES, "IsEqualTo")
        .ok_or_else(unsupported)?;
    let field = equal.children.first().ok_or_else(unsupported)?;
    let message_id = (field.is(TYPES, "FieldURI")
        && field.attr("FieldURI") == Some("message:InternetMessageId"))
        || (field.is(TYPES, "ExtendedFieldURI")
            && field
                .attr("PropertyTag")
                .is_some_and(|t| t.eq_ignore_ascii_case("0x1035"))
            && field.attr("PropertyType") == Some("String"));
    if !message_id {
        return Err(unsupported());
    }
    equal
        .child(TYPES, "FieldURIOrConstant")
        .and_then(|c| c.child(TYPES, "Constant"))
        .and_then(|c| c.attr("Value"))
        .map(|v| Some(v.to_owned()))
        .ok_or_else(unsupported)
}

fn item_xml(item: &Item) -> String {
    let optional = |name: &str, value: Option<&str>| {
        value.map_or_else(String::new, |v| format!("<t:{name}>{}</t:{name}>", esc(v)))
    };
    let size = item.total_size();
    format!(
        r#"<t:Message><t:ItemId Id="{}" ChangeKey="CQAAABYAAAA="/>{}<t:DateTimeReceived>{}</t:DateTimeReceived><t:Size>{size}</t:Size>{}<t:IsRead>{}</t:IsRead></t:Message>"#,
        esc(&item.id),
        optional("Subject", item.subject.as_deref()),
        item.received.to_rfc3339_opts(SecondsFormat::Secs, true),
        optional("InternetMessageId", item.internet_message_id.as_deref()),
        item.is_read,
    )
}

/// `m:FindItem`.
pub(crate) fn find_item(mailbox: &Mailbox, op: &Element) -> Result<String, SoapFault> {
    if op.attr("Traversal") != Some("Shallow") {
        return Err(schema(
            "the emulator supports FindItem Traversal=\"Shallow\" only",
        ));
    }
    if op.child(MESSAGES, "ItemShape").is_none() {
        return Err(schema("FindItem needs an ItemShape"));
    }
    let wanted = restriction(op)?;
    let view = op.child(MESSAGES, "IndexedPageItemView");
    let number = |name: &str, default: usize| -> Result<usize, SoapFault> {
        view.and_then(|v| v.attr(name)).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| schema(format!("{name} must be a number")))
        })
    };
    let max = number("MaxEntriesReturned", FIND_COUNT_LIMIT)?.min(FIND_COUNT_LIMIT);
    let offset = number("Offset", 0)?;
    let parents = op
        .child(MESSAGES, "ParentFolderIds")
        .ok_or_else(|| schema("FindItem needs ParentFolderIds"))?;
    let mut out = String::new();
    for parent in &parents.children {
        let result = folder_ref(mailbox, parent).map(|folder| {
            let all: Vec<&Item> = mailbox
                .items
                .iter()
                .filter(|i| i.folder == folder.id)
                .filter(|i| wanted.as_ref().is_none_or(|w| i.internet_message_id.as_deref() == Some(w.as_str())))
                .collect();
            let page: String = all.iter().skip(offset).take(max).map(|i| item_xml(i)).collect();
            let end = offset.saturating_add(max).min(all.len());
            format!(
                r#"<m:RootFolder IndexedPagingOffset="{end}" TotalItemsInView="{}" IncludesLastItemInRange="{}"><t:Items>{page}</t:Items></m:RootFolder>"#,
                all.len(),
                end >= all.len()
            )
        });
        out.push_str(&ews_xml::response_message("FindItem", result, "RootFolder"));
    }
    Ok(ews_xml::envelope("FindItemResponse", &out))
}
