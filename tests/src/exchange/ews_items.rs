//! EWS `CreateItem` for messages (createitem-operation-email-message,
//! how-to-import-items-by-using-ews-in-exchange): `SaveOnly` stores each `t:Message`
//! and returns its `ItemId`; `MimeContent` is strict base64; `PR_MESSAGE_FLAGS`
//! (0x0E07) without 0x8 makes a non-draft, 0x0E06 sets the received time, 0x0039 the
//! sent time, 0x1090 (PidTagFlagStatus) the flag; `IsRead` wins over the read bit.
//!
//! Items go through the same limits as Graph's ([`super::limits`]: max message size,
//! 256 KB of headers, named-property quota) and are promoted from MIME by
//! [`super::mime_read`]; extended properties are kept and read back through `GetItem`.
//! Injected batch faults: per-item `ErrorServerBusy` then `ErrorBatchProcessingStopped`
//! for the rest (ews-throttling-in-exchange: Exchange checks the budget after each
//! item), a SOAP fault after a partial commit, per-item `ErrorItemSave`.
//!
//! Invariants: children of `t:Message` must follow the schema order (a violation fails
//! the whole request with `ErrorSchemaValidation`, as Exchange does); every other
//! problem is that item's own error response, in request order.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::EmulatorConfig;
use super::ews::{SoapFault, folder_ref, soap_fault};
use super::ews_get::field_id;
use super::ews_xml::{self, Element, MESSAGES, TYPES, esc};
use super::faults::{Action, FaultQueue};
use super::graph_messages::fill_from_mime;
use super::item::{Item, PropId};
use super::limits;
use super::mime_read;
use super::state::{FlagStatus, Ids, Mailbox, Origin};

/// Schema order of `ItemType` then `MessageType` children (types.xsd), the part a
/// migration may send. Elements outside this list are refused.
const ORDER: &[&str] = &[
    "MimeContent",
    "ItemClass",
    "Subject",
    "Sensitivity",
    "Body",
    "Categories",
    "Importance",
    "InReplyTo",
    "InternetMessageHeaders",
    "ReminderIsSet",
    "ExtendedProperty",
    "Culture",
    "Sender",
    "ToRecipients",
    "CcRecipients",
    "BccRecipients",
    "IsReadReceiptRequested",
    "IsDeliveryReceiptRequested",
    "From",
    "InternetMessageId",
    "IsRead",
    "IsResponseRequested",
    "References",
    "ReplyTo",
];

type ItemError = (&'static str, String);

/// `m:CreateItem`.
pub(crate) fn create_item(
    mailbox: &mut Mailbox,
    ids: &mut Ids,
    faults: &mut FaultQueue,
    op: &Element,
    config: &EmulatorConfig,
) -> Result<String, SoapFault> {
    let items = op
        .child(MESSAGES, "Items")
        .ok_or_else(|| schema("CreateItem needs Items"))?;
    for message in &items.children {
        check_order(message)?;
    }
    let disposition = op.attr("MessageDisposition");
    let folder = match op
        .child(MESSAGES, "SavedItemFolderId")
        .and_then(|s| s.children.first())
    {
        Some(r) => folder_ref(mailbox, r).map(|f| f.id.clone()),
        None => Ok(mailbox.well_known("drafts").id.clone()),
    };
    let batch_fault = faults.take_batch(items.children.len());
    let mut out = String::new();
    for (index, message) in items.children.iter().enumerate() {
        match batch_fault {
            Some(Action::EwsItemServerBusy(after, ms)) if index == after as usize => {
                out.push_str(&format!(
                    r#"<m:CreateItemResponseMessage ResponseClass="Error"><m:MessageText>The server cannot service this request right now. Try again later.</m:MessageText><m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml><t:Value Name="BackOffMilliseconds">{ms}</t:Value></m:MessageXml><m:Items/></m:CreateItemResponseMessage>"#
                ));
                continue;
            }
            Some(Action::EwsItemServerBusy(after, _)) if index > after as usize => {
                let stopped = Err((
                    "ErrorBatchProcessingStopped",
                    "Batch processing stopped before this item was processed.".to_owned(),
                ));
                out.push_str(&ews_xml::response_message("CreateItem", stopped, "Items"));
                continue;
            }
            Some(Action::EwsFaultAfterItems(after)) if index == after as usize => {
                return Err(soap_fault(
                    "ErrorInternalServerTransientError",
                    "An internal server error occurred. Try again later.",
                ));
            }
            _ => {}
        }
        if disposition == Some("SaveOnly") && folder.is_ok() && faults.take_item_save() {
            let failed = Err(("ErrorItemSave", "The item could not be saved.".to_owned()));
            out.push_str(&ews_xml::response_message("CreateItem", failed, "Items"));
            continue;
        }
        let result = match (disposition, &folder) {
            (None, _) => Err(("ErrorMessageDispositionRequired", "MessageDisposition is required for messages.".to_owned())),
            (Some("SendOnly" | "SendAndSaveCopy"), _) => Ok(String::from("<m:Items/>")),
            (Some("SaveOnly"), Err(e)) => Err(e.clone()),
            (Some("SaveOnly"), Ok(folder)) => store(mailbox, ids, folder, message, config).map(|(id, key)| {
                format!(r#"<m:Items><t:Message><t:ItemId Id="{}" ChangeKey="{key}"/></t:Message></m:Items>"#, esc(&id))
            }),
            (Some(other), _) => return Err(schema(format!("MessageDisposition '{other}' is not SaveOnly, SendOnly or SendAndSaveCopy"))),
        };
        out.push_str(&ews_xml::response_message("CreateItem", result, "Items"));
    }
    Ok(ews_xml::envelope("CreateItemResponse", &out))
}

fn schema(message: impl Into<String>) -> SoapFault {
    soap_fault(
        "ErrorSchemaValidation",
        format!("The request failed schema validation: {}", message.into()),
    )
}

fn check_order(message: &Element) -> Result<(), SoapFault> {
    if !message.is(TYPES, "Message") {
        return Err(schema(format!(
            "the emulator creates only t:Message items, not {}",
            message.name
        )));
    }
    let mut last = 0;
    for child in &message.children {
        let position = ORDER
            .iter()
            .position(|n| child.ns == TYPES && *n == child.name)
            .ok_or_else(|| {
                schema(format!(
                    "the element 'Message' has invalid child element '{}'",
                    child.name
                ))
            })?;
        if position < last {
            return Err(schema(format!(
                "the element 'Message' has invalid child element '{}'; it must come before '{}'",
                child.name, ORDER[last]
            )));
        }
        last = position;
    }
    Ok(())
}

/// The MAPI properties of one message that change how it is stored.
#[derive(Default)]
struct Props {
    flags: Option<i64>,
    received: Option<DateTime<Utc>>,
    sent: Option<DateTime<Utc>>,
    flag_status: Option<FlagStatus>,
    /// Every property as sent, for reading back.
    all: Vec<(PropId, String)>,
}

fn extended(props: &mut Props, p: &Element) -> Result<(), ItemError> {
    let bad = |why: String| ("ErrorInvalidExtendedPropertyValue", why);
    let uri = p
        .child(TYPES, "ExtendedFieldURI")
        .ok_or_else(|| bad("ExtendedProperty needs an ExtendedFieldURI.".to_owned()))?;
    let value = p
        .child(TYPES, "Value")
        .map(|v| v.text.trim())
        .unwrap_or_default();
    let id = field_id(uri).map_err(bad)?;
    props.all.push((id.clone(), value.to_owned()));
    let PropId::Tag { ty, tag } = id else {
        return Ok(());
    };
    let int = || {
        value
            .parse::<i64>()
            .map_err(|_| bad(format!("'{value}' is not an Integer.")))
    };
    let time = || {
        DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad(format!("'{value}' is not a SystemTime.")))
    };
    match (tag, ty.as_str()) {
        (0x0E07, "integer") => props.flags = Some(int()?),
        (0x0E06, "systemtime") => props.received = Some(time()?),
        (0x0039, "systemtime") => props.sent = Some(time()?),
        (0x1090, "integer") => {
            props.flag_status = Some(match int()? {
                0 => FlagStatus::NotFlagged,
                1 => FlagStatus::Complete,
                2 => FlagStatus::Flagged,
                n => return Err(bad(format!("PidTagFlagStatus {n} is not 0, 1 or 2."))),
            });
        }
        (0x0E07 | 0x0E06 | 0x0039 | 0x1090, _) => {
            return Err(bad(format!(
                "property 0x{tag:04X} does not have PropertyType '{ty}'."
            )));
        }
        _ => {}
    }
    Ok(())
}

fn store(
    mailbox: &mut Mailbox,
    ids: &mut Ids,
    folder: &str,
    message: &Element,
    config: &EmulatorConfig,
) -> Result<(String, String), ItemError> {
    let mut props = Props::default();
    for p in message
        .children
        .iter()
        .filter(|c| c.name == "ExtendedProperty")
    {
        extended(&mut props, p)?;
    }
    let text = |name: &str| message.child(TYPES, name).map(|e| e.text.trim().to_owned());
    let is_read = match text("IsRead").as_deref() {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err((
                "ErrorInvalidPropertyValue",
                format!("IsRead '{other}' is not a boolean."),
            ));
        }
    };
    let mime = match text("MimeContent") {
        None => None,
        Some(b64) => {
            // xs:base64Binary allows XML whitespace (line breaks) between characters.
            let packed: Vec<u8> = b64.bytes().filter(|b| !b" \t\r\n".contains(b)).collect();
            let raw = STANDARD.decode(&packed).map_err(|_| {
                (
                    "ErrorMimeContentInvalidBase64String",
                    "The MIME content is not a valid base64 string.".to_owned(),
                )
            })?;
            if raw.len() > config.ews_max_item_bytes {
                return Err((
                    "ErrorMessageSizeExceeded",
                    "The message exceeds the maximum supported size.".to_owned(),
                ));
            }
            Some(raw)
        }
    };
    let promoted = match &mime {
        Some(raw) if raw.is_empty() => None,
        Some(raw) => mime_read::promote(raw).ok(),
        None => None,
    };
    if mime.is_some() && promoted.is_none() {
        return Err((
            "ErrorMimeContentInvalid",
            "The MIME content is invalid.".to_owned(),
        ));
    }
    let size = mime.as_ref().map_or(0, Vec::len);
    let limit = |e: limits::LimitError| (e.code(), e.message());
    if let Some(p) = &promoted {
        limits::check_headers(p.header_bytes, config).map_err(limit)?;
    }
    limits::check_size(mailbox, size, config).map_err(limit)?;
    if !mailbox.has_room(size, config.mailbox_quota_bytes) {
        return Err((
            "ErrorQuotaExceeded",
            "The mailbox quota has been exceeded.".to_owned(),
        ));
    }
    let mut definitions: Vec<(String, bool)> = props
        .all
        .iter()
        .filter_map(|(id, _)| id.definition())
        .collect();
    if let Some(p) = &promoted {
        definitions.extend(limits::mime_header_definitions(&p.headers, config));
    }
    limits::take_named(mailbox, definitions, config).map_err(limit)?;
    let now = Utc::now();
    let flags = props.flags;
    let mut item = Item::new(ids.item(), folder.to_owned(), Origin::EwsMime, size);
    if let (Some(raw), Some(p)) = (mime, promoted) {
        fill_from_mime(&mut item, raw, p);
    } else {
        item.subject = text("Subject");
        item.internet_message_id = text("InternetMessageId");
    }
    for a in &mut item.attachments {
        a.id = ids.item();
    }
    item.is_draft = flags.is_none_or(|f| f & 0x8 != 0);
    item.is_read = is_read.or(flags.map(|f| f & 0x1 != 0)).unwrap_or(true);
    item.flag = props.flag_status.unwrap_or(FlagStatus::NotFlagged);
    item.categories = message
        .child(TYPES, "Categories")
        .map(|c| {
            c.children
                .iter()
                .map(|s| s.text.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    item.received = props.received.unwrap_or(now);
    if props.sent.is_some() {
        item.sent = props.sent;
    }
    item.extended = props.all;
    let id = item.id.clone();
    mailbox.items.push(item);
    Ok((id, "CQAAABYAAAA=".to_owned()))
}
