//! The EWS side of the read-back kit (findfolder-operation, finditem-operation,
//! getitem-operation-email-message, getattachment-operation), impersonating the
//! mailbox with `X-AnchorMailbox`, as an app-only client against Exchange Online does;
//! `IndexedPage…View` paging followed to the end.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::{ReadAddress, ReadAttachment, ReadFolder, ReadMessage};
use crate::exchange::ews_xml::{self as xml, Element, MESSAGES, SOAP, TYPES, esc};

/// Items asked of `GetItem` at once.
const GET_BATCH: usize = 50;

/// Reads one mailbox through EWS.
#[derive(Clone, Debug)]
pub struct EwsReader {
    http: reqwest::Client,
    url: String,
    token: String,
    mailbox: String,
}

fn kids<'e>(e: &'e Element, name: &str) -> impl Iterator<Item = &'e Element> {
    let name = name.to_owned();
    e.children
        .iter()
        .filter(move |c| c.ns == TYPES && c.name == name)
}

fn child_text(e: &Element, name: &str) -> Option<String> {
    e.child(TYPES, name).map(|c| c.text.clone())
}

fn time(e: &Element, name: &str) -> Option<DateTime<Utc>> {
    child_text(e, name)
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn mailbox(e: &Element) -> ReadAddress {
    ReadAddress {
        name: child_text(e, "Name"),
        address: child_text(e, "EmailAddress").unwrap_or_default(),
    }
}

fn one(e: &Element, name: &str) -> Option<ReadAddress> {
    e.child(TYPES, name)
        .and_then(|c| c.child(TYPES, "Mailbox"))
        .map(mailbox)
}

fn many(e: &Element, name: &str) -> Vec<ReadAddress> {
    e.child(TYPES, name)
        .map(|c| kids(c, "Mailbox").map(mailbox).collect())
        .unwrap_or_default()
}

fn flag(e: &Element) -> String {
    match e
        .child(TYPES, "Flag")
        .and_then(|f| child_text(f, "FlagStatus"))
        .as_deref()
    {
        Some("Flagged") => "flagged",
        Some("Complete") => "complete",
        _ => "notFlagged",
    }
    .to_owned()
}

fn message(e: &Element) -> anyhow::Result<ReadMessage> {
    let body = e.child(TYPES, "Body");
    Ok(ReadMessage {
        id: e
            .child(TYPES, "ItemId")
            .and_then(|i| i.attr("Id"))
            .context("an item without ItemId")?
            .to_owned(),
        folder_id: e
            .child(TYPES, "ParentFolderId")
            .and_then(|i| i.attr("Id"))
            .unwrap_or_default()
            .to_owned(),
        subject: child_text(e, "Subject"),
        body_type: match body.and_then(|b| b.attr("BodyType")) {
            Some("HTML") => "html",
            _ => "text",
        }
        .to_owned(),
        body: body.map(|b| b.text.clone()).unwrap_or_default(),
        from: one(e, "From"),
        sender: one(e, "Sender"),
        to: many(e, "ToRecipients"),
        cc: many(e, "CcRecipients"),
        bcc: many(e, "BccRecipients"),
        reply_to: many(e, "ReplyTo"),
        importance: child_text(e, "Importance")
            .unwrap_or_default()
            .to_ascii_lowercase(),
        is_read: child_text(e, "IsRead").as_deref() == Some("true"),
        is_draft: child_text(e, "IsDraft").as_deref() == Some("true"),
        flag: flag(e),
        categories: e
            .child(TYPES, "Categories")
            .map(|c| kids(c, "String").map(|s| s.text.clone()).collect())
            .unwrap_or_default(),
        received: time(e, "DateTimeReceived").context("an item without DateTimeReceived")?,
        sent: time(e, "DateTimeSent"),
        internet_message_id: child_text(e, "InternetMessageId"),
        headers: e
            .child(TYPES, "InternetMessageHeaders")
            .map(|h| {
                kids(h, "InternetMessageHeader")
                    .map(|h| {
                        (
                            h.attr("HeaderName").unwrap_or_default().to_owned(),
                            h.text.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        has_attachments: child_text(e, "HasAttachments").as_deref() == Some("true"),
        item_class: child_text(e, "ItemClass"),
    })
}

/// An `ExtendedFieldURI` for Graph's spelling of a property id.
fn field_uri(id: &str) -> anyhow::Result<String> {
    let words: Vec<&str> = id.split_whitespace().collect();
    let ty = words.first().context("an empty property id")?;
    let ty = match ty.to_ascii_lowercase().as_str() {
        "string" => "String",
        "integer" => "Integer",
        "systemtime" => "SystemTime",
        "boolean" => "Boolean",
        "binary" => "Binary",
        "long" => "Long",
        other => bail!("property type {other} is not one the reader knows"),
    };
    match words.as_slice() {
        [_, tag] => Ok(format!(
            r#"<t:ExtendedFieldURI PropertyTag="{}" PropertyType="{ty}"/>"#,
            esc(tag)
        )),
        [_, guid, kind, rest @ ..] => {
            let set = guid.trim_start_matches('{').trim_end_matches('}');
            let attr = if kind.eq_ignore_ascii_case("name") {
                "PropertyName"
            } else {
                "PropertyId"
            };
            Ok(format!(
                r#"<t:ExtendedFieldURI PropertySetId="{}" {attr}="{}" PropertyType="{ty}"/>"#,
                esc(set),
                esc(&rest.join(" "))
            ))
        }
        _ => bail!("'{id}' is not a property id"),
    }
}

impl EwsReader {
    /// A reader of `mailbox` at `url` (`…/EWS/Exchange.asmx`).
    pub fn new(url: &str, token: &str, mailbox: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            url: url.to_owned(),
            token: token.to_owned(),
            mailbox: mailbox.to_owned(),
        }
    }

    /// Sends one operation and returns its response messages, failing on a fault or
    /// any response message that is not a success.
    async fn call(&self, body: &str) -> anyhow::Result<Vec<Element>> {
        let envelope = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}" xmlns:t="{TYPES}" xmlns:m="{MESSAGES}"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/><t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"#,
            esc(&self.mailbox)
        );
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "text/xml; charset=utf-8")
            .header("X-AnchorMailbox", &self.mailbox)
            .body(envelope)
            .send()
            .await
            .with_context(|| format!("EWS {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("EWS: {status}: {text}");
        }
        let root = xml::parse(&text).map_err(|e| anyhow::anyhow!("EWS answer is not XML: {e}"))?;
        let messages = root
            .child(SOAP, "Body")
            .and_then(|b| b.children.first())
            .and_then(|r| r.child(MESSAGES, "ResponseMessages"))
            .context("EWS answer without ResponseMessages")?;
        for m in &messages.children {
            if m.attr("ResponseClass") != Some("Success") {
                let code = m.child(MESSAGES, "ResponseCode").map(|c| c.text.clone());
                let text = m.child(MESSAGES, "MessageText").map(|c| c.text.clone());
                bail!("EWS: {code:?}: {text:?}");
            }
        }
        Ok(messages.children.clone())
    }

    pub(super) async fn folders(&self) -> anyhow::Result<Vec<ReadFolder>> {
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let body = format!(
                r#"<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:IndexedPageFolderView MaxEntriesReturned="500" Offset="{offset}" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#
            );
            let answer = self.call(&body).await?;
            let root = answer
                .first()
                .and_then(|m| m.child(MESSAGES, "RootFolder"))
                .context("FindFolder without RootFolder")?;
            let folders = root
                .child(TYPES, "Folders")
                .map(|f| f.children.clone())
                .unwrap_or_default();
            offset += folders.len();
            all.extend(folders);
            if root.attr("IncludesLastItemInRange") != Some("false") || offset == 0 {
                break;
            }
        }
        let parent = |f: &Element| {
            f.child(TYPES, "ParentFolderId")
                .and_then(|p| p.attr("Id"))
                .unwrap_or_default()
                .to_owned()
        };
        let id = |f: &Element| {
            f.child(TYPES, "FolderId")
                .and_then(|p| p.attr("Id"))
                .unwrap_or_default()
                .to_owned()
        };
        let mut out = Vec::new();
        for f in &all {
            let mut path = vec![child_text(f, "DisplayName").unwrap_or_default()];
            let mut up = parent(f);
            while let Some(p) = all.iter().find(|g| id(g) == up) {
                path.push(child_text(p, "DisplayName").unwrap_or_default());
                up = parent(p);
            }
            path.reverse();
            out.push(ReadFolder {
                id: id(f),
                display_name: child_text(f, "DisplayName").unwrap_or_default(),
                path: path.join("/"),
                class: child_text(f, "FolderClass"),
                total_items: child_text(f, "TotalCount")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn get_items(
        &self,
        ids: &[String],
        extra: &str,
        mime: bool,
    ) -> anyhow::Result<Vec<Element>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(GET_BATCH) {
            let refs: String = chunk
                .iter()
                .map(|id| format!(r#"<t:ItemId Id="{}"/>"#, esc(id)))
                .collect();
            let body = format!(
                r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:IncludeMimeContent>{mime}</t:IncludeMimeContent><t:AdditionalProperties><t:FieldURI FieldURI="item:InternetMessageHeaders"/>{extra}</t:AdditionalProperties></m:ItemShape><m:ItemIds>{refs}</m:ItemIds></m:GetItem>"#
            );
            for m in self.call(&body).await? {
                let item = m
                    .child(MESSAGES, "Items")
                    .and_then(|i| i.children.first())
                    .context("GetItem without the item")?;
                out.push(item.clone());
            }
        }
        Ok(out)
    }

    pub(super) async fn messages(&self, folder_id: &str) -> anyhow::Result<Vec<ReadMessage>> {
        let mut ids = Vec::new();
        loop {
            let body = format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="200" Offset="{}" BasePoint="Beginning"/><m:ParentFolderIds><t:FolderId Id="{}"/></m:ParentFolderIds></m:FindItem>"#,
                ids.len(),
                esc(folder_id)
            );
            let answer = self.call(&body).await?;
            let root = answer
                .first()
                .and_then(|m| m.child(MESSAGES, "RootFolder"))
                .context("FindItem without RootFolder")?;
            let before = ids.len();
            if let Some(items) = root.child(TYPES, "Items") {
                ids.extend(items.children.iter().filter_map(|i| {
                    i.child(TYPES, "ItemId")
                        .and_then(|x| x.attr("Id"))
                        .map(str::to_owned)
                }));
            }
            if root.attr("IncludesLastItemInRange") != Some("false") || ids.len() == before {
                break;
            }
        }
        self.get_items(&ids, "", false)
            .await?
            .iter()
            .map(message)
            .collect()
    }

    pub(super) async fn message(&self, id: &str) -> anyhow::Result<ReadMessage> {
        let items = self.get_items(&[id.to_owned()], "", false).await?;
        message(items.first().context("GetItem returned nothing")?)
    }

    pub(super) async fn attachments(&self, id: &str) -> anyhow::Result<Vec<ReadAttachment>> {
        let items = self.get_items(&[id.to_owned()], "", false).await?;
        let item = items.first().context("GetItem returned nothing")?;
        let Some(list) = item.child(TYPES, "Attachments") else {
            return Ok(Vec::new());
        };
        Ok(list
            .children
            .iter()
            .map(|a| ReadAttachment {
                id: a
                    .child(TYPES, "AttachmentId")
                    .and_then(|i| i.attr("Id"))
                    .unwrap_or_default()
                    .to_owned(),
                name: child_text(a, "Name").unwrap_or_default(),
                content_type: child_text(a, "ContentType").unwrap_or_default(),
                size: child_text(a, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                is_inline: child_text(a, "IsInline").as_deref() == Some("true"),
                content_id: child_text(a, "ContentId"),
                is_item: a.name == "ItemAttachment",
            })
            .collect())
    }

    pub(super) async fn attachment_bytes(
        &self,
        _id: &str,
        attachment: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let body = format!(
            r#"<m:GetAttachment><m:AttachmentShape><t:IncludeMimeContent>true</t:IncludeMimeContent></m:AttachmentShape><m:AttachmentIds><t:AttachmentId Id="{}"/></m:AttachmentIds></m:GetAttachment>"#,
            esc(attachment)
        );
        let answer = self.call(&body).await?;
        let a = answer
            .first()
            .and_then(|m| m.child(MESSAGES, "Attachments"))
            .and_then(|l| l.children.first())
            .context("GetAttachment without the attachment")?;
        let b64 = a
            .child(TYPES, "Content")
            .or_else(|| {
                a.child(TYPES, "Message")
                    .and_then(|m| m.child(TYPES, "MimeContent"))
            })
            .map(|c| c.text.clone())
            .unwrap_or_default();
        Ok(STANDARD.decode(b64.trim())?)
    }

    pub(super) async fn mime(&self, id: &str) -> anyhow::Result<Vec<u8>> {
        let items = self.get_items(&[id.to_owned()], "", true).await?;
        let b64 = items
            .first()
            .and_then(|i| i.child(TYPES, "MimeContent"))
            .map(|c| c.text.clone())
            .context("GetItem returned no MimeContent")?;
        Ok(STANDARD.decode(b64.trim())?)
    }

    pub(super) async fn extended_property(
        &self,
        id: &str,
        prop: &str,
    ) -> anyhow::Result<Option<String>> {
        let uri = field_uri(prop)?;
        let items = self.get_items(&[id.to_owned()], &uri, false).await?;
        Ok(items
            .first()
            .and_then(|i| i.child(TYPES, "ExtendedProperty"))
            .and_then(|p| p.child(TYPES, "Value"))
            .map(|v| v.text.clone()))
    }
}
