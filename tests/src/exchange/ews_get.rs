//! EWS reads of items as a user's client sees them (getitem-operation-email-message,
//! getattachment-operation): `GetItem` with an `ItemShape` (`BaseShape`,
//! `IncludeMimeContent`, `AdditionalProperties` with `ExtendedFieldURI`s) and
//! `GetAttachment`. Meeting messages come back as `t:MeetingRequest` /
//! `t:MeetingCancellation` / `t:MeetingResponse`, as EWS types them by item class.
//!
//! Strictness: `AdditionalProperties` may name `FieldURI`s (ignored: every field of
//! the base shape is returned) and `ExtendedFieldURI`s only; a property id that does
//! not parse is a schema fault.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::SecondsFormat;

use super::ews::{SoapFault, soap_fault};
use super::ews_xml::{self, Element, MESSAGES, TYPES, esc};
use super::item::{Address, AttachmentKind, Item, PS_INTERNET_HEADERS, PropId};
use super::props;
use super::state::{FlagStatus, Mailbox};

fn schema(message: impl Into<String>) -> SoapFault {
    soap_fault(
        "ErrorSchemaValidation",
        format!("The request failed schema validation: {}", message.into()),
    )
}

/// The property an `ExtendedFieldURI` names (tag, or named by `PropertySetId` /
/// `DistinguishedPropertySetId` with `PropertyName` or `PropertyId`).
pub(crate) fn field_id(uri: &Element) -> Result<PropId, String> {
    let ty = uri.attr("PropertyType").unwrap_or_default();
    let id = if let Some(tag) = uri.attr("PropertyTag") {
        let tag = if tag.starts_with("0x") || tag.starts_with("0X") {
            tag.to_owned()
        } else {
            tag.parse::<u32>()
                .map(|t| format!("0x{t:x}"))
                .map_err(|_| format!("PropertyTag '{tag}' is not a number"))?
        };
        format!("{ty} {tag}")
    } else {
        let set = uri
            .attr("PropertySetId")
            .map(str::to_owned)
            .or_else(|| {
                uri.attr("DistinguishedPropertySetId").map(|d| match d {
                    "InternetHeaders" => PS_INTERNET_HEADERS.to_owned(),
                    "PublicStrings" => "00020329-0000-0000-c000-000000000046".to_owned(),
                    "Common" => "00062008-0000-0000-c000-000000000046".to_owned(),
                    other => other.to_owned(),
                })
            })
            .ok_or("an ExtendedFieldURI needs PropertyTag or a property set")?;
        match (uri.attr("PropertyName"), uri.attr("PropertyId")) {
            (Some(name), _) => format!("{ty} {{{set}}} Name {name}"),
            (None, Some(lid)) => format!("{ty} {{{set}}} Id {lid}"),
            (None, None) => {
                return Err("a named ExtendedFieldURI needs PropertyName or PropertyId".to_owned());
            }
        }
    };
    PropId::parse(&id).ok_or_else(|| format!("'{id}' is not a property"))
}

/// An `ExtendedFieldURI` as asked (its attributes, echoed back) and what it names.
struct Asked {
    attrs: String,
    id: PropId,
}

fn asked(uri: &Element) -> Result<Asked, SoapFault> {
    let id = field_id(uri).map_err(schema)?;
    let attrs = uri
        .attrs
        .iter()
        .map(|(k, v)| format!(r#" {k}="{}""#, esc(v)))
        .collect();
    Ok(Asked { attrs, id })
}

fn mailbox_xml(a: &Address) -> String {
    let name = a.name.as_deref().unwrap_or(&a.address);
    format!(
        "<t:Mailbox><t:Name>{}</t:Name><t:EmailAddress>{}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType></t:Mailbox>",
        esc(name),
        esc(&a.address)
    )
}

fn one(tag: &str, a: Option<&Address>) -> String {
    a.map_or_else(String::new, |a| {
        format!("<t:{tag}>{}</t:{tag}>", mailbox_xml(a))
    })
}

fn many(tag: &str, list: &[Address]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let inner: String = list.iter().map(mailbox_xml).collect();
    format!("<t:{tag}>{inner}</t:{tag}>")
}

fn element_of(item_class: &str) -> &'static str {
    if item_class.starts_with("IPM.Schedule.Meeting.Request") {
        "MeetingRequest"
    } else if item_class.starts_with("IPM.Schedule.Meeting.Canceled") {
        "MeetingCancellation"
    } else if item_class.starts_with("IPM.Schedule.Meeting.Resp") {
        "MeetingResponse"
    } else {
        "Message"
    }
}

fn attachments_xml(item: &Item) -> String {
    if item.attachments.is_empty() {
        return String::new();
    }
    let inner: String = item
        .attachments
        .iter()
        .map(|a| {
            let kind = match a.kind {
                AttachmentKind::File => "FileAttachment",
                AttachmentKind::Item => "ItemAttachment",
            };
            let cid = a
                .content_id
                .as_deref()
                .map_or_else(String::new, |c| format!("<t:ContentId>{}</t:ContentId>", esc(c)));
            format!(
                r#"<t:{kind}><t:AttachmentId Id="{}"/><t:Name>{}</t:Name><t:ContentType>{}</t:ContentType>{cid}<t:Size>{}</t:Size><t:IsInline>{}</t:IsInline></t:{kind}>"#,
                esc(&a.id),
                esc(&a.name),
                esc(&a.content_type),
                a.bytes.len(),
                a.is_inline
            )
        })
        .collect();
    format!("<t:Attachments>{inner}</t:Attachments>")
}

fn item_xml(item: &Item, mime: bool, extended: &[Asked]) -> String {
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let text = |tag: &str, v: Option<&str>| {
        v.map_or_else(String::new, |v| format!("<t:{tag}>{}</t:{tag}>", esc(v)))
    };
    let mut x = String::new();
    if mime && let Some(raw) = &item.mime {
        x.push_str(&format!(
            r#"<t:MimeContent CharacterSet="UTF-8">{}</t:MimeContent>"#,
            STANDARD.encode(raw)
        ));
    }
    x.push_str(&format!(
        r#"<t:ItemId Id="{}" ChangeKey="CQAAABYAAA{:08x}"/><t:ParentFolderId Id="{}" ChangeKey="AQAAAA=="/>"#,
        esc(&item.id),
        item.change_key,
        esc(&item.folder)
    ));
    x.push_str(&text("ItemClass", Some(&item.item_class)));
    x.push_str(&text("Subject", item.subject.as_deref()));
    if let Some((kind, content)) = &item.body {
        let ty = if kind == "html" { "HTML" } else { "Text" };
        x.push_str(&format!(
            r#"<t:Body BodyType="{ty}">{}</t:Body>"#,
            esc(content)
        ));
    }
    x.push_str(&attachments_xml(item));
    x.push_str(&text("DateTimeReceived", Some(&time(item.received))));
    x.push_str(&format!("<t:Size>{}</t:Size>", item.total_size()));
    if !item.categories.is_empty() {
        let cats: String = item
            .categories
            .iter()
            .map(|c| format!("<t:String>{}</t:String>", esc(c)))
            .collect();
        x.push_str(&format!("<t:Categories>{cats}</t:Categories>"));
    }
    let importance = match item.importance.as_str() {
        "low" => "Low",
        "high" => "High",
        _ => "Normal",
    };
    x.push_str(&text("Importance", Some(importance)));
    x.push_str(&format!("<t:IsDraft>{}</t:IsDraft>", item.is_draft));
    if !item.headers.is_empty() {
        let headers: String = item
            .headers
            .iter()
            .map(|(n, v)| {
                format!(
                    r#"<t:InternetMessageHeader HeaderName="{}">{}</t:InternetMessageHeader>"#,
                    esc(n),
                    esc(v)
                )
            })
            .collect();
        x.push_str(&format!(
            "<t:InternetMessageHeaders>{headers}</t:InternetMessageHeaders>"
        ));
    }
    x.push_str(&text("DateTimeSent", item.sent.map(time).as_deref()));
    x.push_str(&text("DateTimeCreated", Some(&time(item.created))));
    x.push_str(&format!(
        "<t:HasAttachments>{}</t:HasAttachments>",
        item.attachments.iter().any(|a| !a.is_inline)
    ));
    for a in extended {
        if let Some(v) = props::read(item, &a.id) {
            x.push_str(&format!(
                "<t:ExtendedProperty><t:ExtendedFieldURI{}/><t:Value>{}</t:Value></t:ExtendedProperty>",
                a.attrs,
                esc(&v)
            ));
        }
    }
    let flag = match item.flag {
        FlagStatus::NotFlagged => "NotFlagged",
        FlagStatus::Flagged => "Flagged",
        FlagStatus::Complete => "Complete",
    };
    x.push_str(&format!(
        "<t:Flag><t:FlagStatus>{flag}</t:FlagStatus></t:Flag>"
    ));
    let p = &item.people;
    x.push_str(&one("Sender", p.sender.as_ref()));
    x.push_str(&many("ToRecipients", &p.to));
    x.push_str(&many("CcRecipients", &p.cc));
    x.push_str(&many("BccRecipients", &p.bcc));
    x.push_str(&one("From", p.from.as_ref()));
    x.push_str(&text(
        "InternetMessageId",
        item.internet_message_id.as_deref(),
    ));
    x.push_str(&format!("<t:IsRead>{}</t:IsRead>", item.is_read));
    x.push_str(&many("ReplyTo", &p.reply_to));
    let element = element_of(&item.item_class);
    format!("<t:{element}>{x}</t:{element}>")
}

/// `m:GetItem`.
pub(crate) fn get_item(mailbox: &Mailbox, op: &Element) -> Result<String, SoapFault> {
    let shape = op
        .child(MESSAGES, "ItemShape")
        .ok_or_else(|| schema("GetItem needs an ItemShape"))?;
    match shape.child(TYPES, "BaseShape").map(|b| b.text.trim()) {
        Some("IdOnly" | "Default" | "AllProperties") => {}
        other => {
            return Err(schema(format!(
                "BaseShape {other:?} is not IdOnly, Default or AllProperties"
            )));
        }
    }
    let mime = shape
        .child(TYPES, "IncludeMimeContent")
        .is_some_and(|m| m.text.trim() == "true");
    let mut extended = Vec::new();
    if let Some(more) = shape.child(TYPES, "AdditionalProperties") {
        for p in &more.children {
            if p.is(TYPES, "ExtendedFieldURI") {
                extended.push(asked(p)?);
            } else if !p.is(TYPES, "FieldURI") {
                return Err(schema(format!(
                    "AdditionalProperties may not hold {}",
                    p.name
                )));
            }
        }
    }
    let refs = op
        .child(MESSAGES, "ItemIds")
        .ok_or_else(|| schema("GetItem needs ItemIds"))?;
    let mut out = String::new();
    for r in &refs.children {
        let id = r.attr("Id").unwrap_or_default();
        let result = mailbox
            .item(id)
            .map(|i| format!("<m:Items>{}</m:Items>", item_xml(i, mime, &extended)))
            .ok_or_else(|| {
                (
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.".to_owned(),
                )
            });
        out.push_str(&ews_xml::response_message("GetItem", result, "Items"));
    }
    Ok(ews_xml::envelope("GetItemResponse", &out))
}

/// `m:GetAttachment`: file attachments with `Content`, item attachments with the
/// attached message's `MimeContent`.
pub(crate) fn get_attachment(mailbox: &Mailbox, op: &Element) -> Result<String, SoapFault> {
    let refs = op
        .child(MESSAGES, "AttachmentIds")
        .ok_or_else(|| schema("GetAttachment needs AttachmentIds"))?;
    let mut out = String::new();
    for r in &refs.children {
        let id = r.attr("Id").unwrap_or_default();
        let found = mailbox
            .items
            .iter()
            .flat_map(|i| i.attachments.iter())
            .find(|a| a.id == id);
        let result = found
            .map(|a| {
                let head = format!(
                    r#"<t:AttachmentId Id="{}"/><t:Name>{}</t:Name><t:ContentType>{}</t:ContentType><t:Size>{}</t:Size><t:IsInline>{}</t:IsInline>"#,
                    esc(&a.id),
                    esc(&a.name),
                    esc(&a.content_type),
                    a.bytes.len(),
                    a.is_inline
                );
                let body = STANDARD.encode(&a.bytes);
                match a.kind {
                    AttachmentKind::File => format!(
                        "<m:Attachments><t:FileAttachment>{head}<t:Content>{body}</t:Content></t:FileAttachment></m:Attachments>"
                    ),
                    AttachmentKind::Item => format!(
                        r#"<m:Attachments><t:ItemAttachment>{head}<t:Message><t:MimeContent CharacterSet="UTF-8">{body}</t:MimeContent></t:Message></t:ItemAttachment></m:Attachments>"#
                    ),
                }
            })
            .ok_or_else(|| {
                (
                    "ErrorInvalidIdNotAnItemAttachmentId",
                    "The id is not a valid attachment id.".to_owned(),
                )
            });
        out.push_str(&ews_xml::response_message(
            "GetAttachment",
            result,
            "Attachments",
        ));
    }
    Ok(ews_xml::envelope("GetAttachmentResponse", &out))
}
