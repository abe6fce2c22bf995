//! The Graph side of the read-back kit (v1.0: user-list-mailfolders,
//! mailfolder-list-childfolders, mailfolder-list-messages, message-get with `$select`
//! and `$expand=singleValueExtendedProperties($filter=…)`, attachment-list,
//! attachment-get, `$value`), following `@odata.nextLink` to the end.

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ReadAddress, ReadAttachment, ReadFolder, ReadMessage};

/// Every property the reader asks for, default and `$select`-only ones.
const SELECT: &str = "id,parentFolderId,subject,body,from,sender,toRecipients,ccRecipients,\
bccRecipients,replyTo,importance,isRead,isDraft,flag,categories,receivedDateTime,sentDateTime,\
internetMessageId,internetMessageHeaders,hasAttachments";

/// PidTagMessageClass, read with every message.
const MESSAGE_CLASS: &str = "String 0x001A";

/// Reads one mailbox through Graph.
#[derive(Clone, Debug)]
pub struct GraphReader {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn address(v: &Value) -> Option<ReadAddress> {
    let e = v.get("emailAddress")?;
    Some(ReadAddress {
        name: e["name"].as_str().map(str::to_owned),
        address: e["address"].as_str().unwrap_or_default().to_owned(),
    })
}

fn addresses(v: &Value) -> Vec<ReadAddress> {
    v.as_array()
        .map(|a| a.iter().filter_map(address).collect())
        .unwrap_or_default()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The value of extended property `id` in a message JSON, compared as Graph does
/// (case-insensitively, tags as numbers).
fn extended(v: &Value, id: &str) -> Option<String> {
    let norm = |s: &str| {
        let mut words: Vec<String> = s.split_whitespace().map(str::to_ascii_lowercase).collect();
        if let Some(n) = words
            .get(1)
            .and_then(|t| t.strip_prefix("0x"))
            .and_then(|t| u32::from_str_radix(t, 16).ok())
        {
            words[1] = format!("0x{n:x}");
        }
        words.join(" ")
    };
    let want = norm(id);
    v["singleValueExtendedProperties"]
        .as_array()?
        .iter()
        .find(|p| p["id"].as_str().is_some_and(|i| norm(i) == want))
        .and_then(|p| text(&p["value"]))
}

fn message(v: &Value) -> anyhow::Result<ReadMessage> {
    Ok(ReadMessage {
        id: text(&v["id"]).context("a message without id")?,
        folder_id: text(&v["parentFolderId"]).unwrap_or_default(),
        subject: text(&v["subject"]),
        body_type: text(&v["body"]["contentType"]).unwrap_or_else(|| "text".to_owned()),
        body: text(&v["body"]["content"]).unwrap_or_default(),
        from: address(&v["from"]),
        sender: address(&v["sender"]),
        to: addresses(&v["toRecipients"]),
        cc: addresses(&v["ccRecipients"]),
        bcc: addresses(&v["bccRecipients"]),
        reply_to: addresses(&v["replyTo"]),
        importance: text(&v["importance"]).unwrap_or_default(),
        is_read: v["isRead"].as_bool().unwrap_or_default(),
        is_draft: v["isDraft"].as_bool().unwrap_or_default(),
        flag: text(&v["flag"]["flagStatus"]).unwrap_or_default(),
        categories: v["categories"]
            .as_array()
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default(),
        received: time(&v["receivedDateTime"]).context("a message without receivedDateTime")?,
        sent: time(&v["sentDateTime"]),
        internet_message_id: text(&v["internetMessageId"]),
        headers: v["internetMessageHeaders"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| {
                        (
                            text(&h["name"]).unwrap_or_default(),
                            text(&h["value"]).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        has_attachments: v["hasAttachments"].as_bool().unwrap_or_default(),
        item_class: extended(v, MESSAGE_CLASS),
    })
}

impl GraphReader {
    /// A reader of `mailbox` at `base_url` (`/v1.0` is added).
    pub fn new(base_url: &str, token: &str, mailbox: &str) -> Self {
        Self {
            // The tests' servers are on loopback; no proxy from the environment.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            base: format!("{}/v1.0/users/{mailbox}", base_url.trim_end_matches('/')),
            token: token.to_owned(),
        }
    }

    async fn send(&self, url: &str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {body}");
        }
        Ok(response)
    }

    async fn json(&self, url: &str) -> anyhow::Result<Value> {
        let response = self.send(url).await?;
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: the answer is not JSON"))
    }

    /// Every `value` of a collection, following `@odata.nextLink`.
    async fn collection(&self, first: String) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next {
            let page = self.json(&url).await?;
            out.extend(page["value"].as_array().cloned().unwrap_or_default());
            next = text(&page["@odata.nextLink"]);
        }
        Ok(out)
    }

    pub(super) async fn folders(&self) -> anyhow::Result<Vec<ReadFolder>> {
        let mut out = Vec::new();
        let mut queue = vec![(format!("{}/mailFolders?$top=100", self.base), String::new())];
        while let Some((url, prefix)) = queue.pop() {
            for f in self.collection(url).await? {
                let id = text(&f["id"]).context("a folder without id")?;
                let name = text(&f["displayName"]).unwrap_or_default();
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                if f["childFolderCount"].as_u64().unwrap_or(0) > 0 {
                    queue.push((
                        format!("{}/mailFolders/{id}/childFolders?$top=100", self.base),
                        path.clone(),
                    ));
                }
                out.push(ReadFolder {
                    id,
                    display_name: name,
                    path,
                    class: None,
                    total_items: f["totalItemCount"].as_u64().unwrap_or(0),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn shape(&self) -> String {
        format!(
            "$select={SELECT}&$expand=singleValueExtendedProperties($filter=id eq '{MESSAGE_CLASS}')"
        )
    }

    pub(super) async fn messages(&self, folder_id: &str) -> anyhow::Result<Vec<ReadMessage>> {
        let url = format!(
            "{}/mailFolders/{folder_id}/messages?$top=50&{}",
            self.base,
            self.shape()
        );
        self.collection(url).await?.iter().map(message).collect()
    }

    pub(super) async fn message(&self, id: &str) -> anyhow::Result<ReadMessage> {
        message(
            &self
                .json(&format!("{}/messages/{id}?{}", self.base, self.shape()))
                .await?,
        )
    }

    pub(super) async fn attachments(&self, id: &str) -> anyhow::Result<Vec<ReadAttachment>> {
        let list = self
            .collection(format!("{}/messages/{id}/attachments", self.base))
            .await?;
        Ok(list
            .iter()
            .map(|a| ReadAttachment {
                id: text(&a["id"]).unwrap_or_default(),
                name: text(&a["name"]).unwrap_or_default(),
                content_type: text(&a["contentType"]).unwrap_or_default(),
                size: a["size"].as_u64().unwrap_or(0),
                is_inline: a["isInline"].as_bool().unwrap_or_default(),
                content_id: text(&a["contentId"]),
                is_item: a["@odata.type"].as_str() == Some("#microsoft.graph.itemAttachment"),
            })
            .collect())
    }

    pub(super) async fn attachment_bytes(
        &self,
        id: &str,
        attachment: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let url = format!(
            "{}/messages/{id}/attachments/{attachment}/$value",
            self.base
        );
        Ok(self.send(&url).await?.bytes().await?.to_vec())
    }

    pub(super) async fn mime(&self, id: &str) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/messages/{id}/$value", self.base);
        Ok(self.send(&url).await?.bytes().await?.to_vec())
    }

    pub(super) async fn extended_property(
        &self,
        id: &str,
        prop: &str,
    ) -> anyhow::Result<Option<String>> {
        let filter = prop.replace('\'', "''");
        let url = format!(
            "{}/messages/{id}?$select=id&$expand=singleValueExtendedProperties($filter=id eq '{filter}')",
            self.base
        );
        Ok(extended(&self.json(&url).await?, prop))
    }
}
