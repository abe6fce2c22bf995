//! The read-back kit: what a user's client sees in an Exchange mailbox, read over HTTP
//! through Microsoft Graph or EWS, as Microsoft documents them — never through the
//! emulator's internals. End-to-end tests assert on this, so a test that passes says
//! what Outlook would show, and the same reader works against real Exchange Online.
//!
//! ```no_run
//! # async fn demo(emu: &mailhaul_tests::exchange::Emulator) -> anyhow::Result<()> {
//! use mailhaul_tests::exchange_read::ExchangeReader;
//! let reader = ExchangeReader::graph(&emu.base_url(), &emu.issue_token(), "bob@contoso.com");
//! for folder in reader.folders().await? {
//!     for m in reader.messages(&folder.id).await? {
//!         let icon = reader.extended_property(&m.id, "Integer 0x1080").await?;
//!         println!("{} {:?} {:?}", folder.path, m.subject, icon);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Invariants: every listing follows the API's paging to the end; folder paths are
//! `/`-joined display names below msgfolderroot (`Inbox/Projects`), the same on both
//! APIs; times are UTC.

mod ews;
mod graph;

use chrono::{DateTime, Utc};

pub use ews::EwsReader;
pub use graph::GraphReader;

/// One folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFolder {
    /// Opaque id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Path below msgfolderroot (`Inbox/Projects`).
    pub path: String,
    /// Folder class where the API says (EWS: `IPF.Note`, `IPF.Appointment`, …;
    /// Graph lists mail folders only and says nothing).
    pub class: Option<String>,
    /// Items in it, as the API counts them.
    pub total_items: u64,
}

/// An address as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadAddress {
    /// Display name (the APIs show the address when there is none).
    pub name: Option<String>,
    /// SMTP address.
    pub address: String,
}

/// One message with everything a user sees of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMessage {
    /// Opaque id.
    pub id: String,
    /// Id of its folder.
    pub folder_id: String,
    /// Subject.
    pub subject: Option<String>,
    /// `text` or `html`.
    pub body_type: String,
    /// The body as the API gives it.
    pub body: String,
    /// From.
    pub from: Option<ReadAddress>,
    /// Sender.
    pub sender: Option<ReadAddress>,
    /// To.
    pub to: Vec<ReadAddress>,
    /// Cc.
    pub cc: Vec<ReadAddress>,
    /// Bcc.
    pub bcc: Vec<ReadAddress>,
    /// Reply-To.
    pub reply_to: Vec<ReadAddress>,
    /// `low`, `normal` or `high`.
    pub importance: String,
    /// Read.
    pub is_read: bool,
    /// Draft (an editable, unsent message).
    pub is_draft: bool,
    /// `notFlagged`, `flagged` or `complete`.
    pub flag: String,
    /// Categories.
    pub categories: Vec<String>,
    /// Received time.
    pub received: DateTime<Utc>,
    /// Sent time.
    pub sent: Option<DateTime<Utc>>,
    /// Internet Message-ID, with angle brackets.
    pub internet_message_id: Option<String>,
    /// Internet headers as the API lists them.
    pub headers: Vec<(String, String)>,
    /// Whether it has attachments that are not inline.
    pub has_attachments: bool,
    /// Message class (`IPM.Note`, `IPM.Schedule.Meeting.Request`, …).
    pub item_class: Option<String>,
}

/// One attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadAttachment {
    /// Opaque id.
    pub id: String,
    /// File name (an item attachment's: the attached message's subject).
    pub name: String,
    /// Content type.
    pub content_type: String,
    /// Size in bytes as the API reports it.
    pub size: u64,
    /// Shown in the body rather than as a file.
    pub is_inline: bool,
    /// Content-ID, without angle brackets.
    pub content_id: Option<String>,
    /// An attached message (`itemAttachment`) rather than a file.
    pub is_item: bool,
}

/// A reader over one mailbox, through Graph or EWS.
#[derive(Clone, Debug)]
pub enum ExchangeReader {
    /// Through Microsoft Graph v1.0.
    Graph(GraphReader),
    /// Through EWS.
    Ews(EwsReader),
}

macro_rules! both {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            ExchangeReader::Graph($r) => $e,
            ExchangeReader::Ews($r) => $e,
        }
    };
}

impl ExchangeReader {
    /// Reads `mailbox` through Graph at `base_url` (the host; `/v1.0` is added) with
    /// an app token.
    pub fn graph(base_url: &str, token: &str, mailbox: &str) -> Self {
        Self::Graph(GraphReader::new(base_url, token, mailbox))
    }

    /// Reads `mailbox` through EWS at `ews_url` (`…/EWS/Exchange.asmx`) with an app
    /// token, impersonating it.
    pub fn ews(ews_url: &str, token: &str, mailbox: &str) -> Self {
        Self::Ews(EwsReader::new(ews_url, token, mailbox))
    }

    /// Every folder below msgfolderroot, parents before children.
    ///
    /// # Errors
    /// An HTTP or API error, with what was asked.
    pub async fn folders(&self) -> anyhow::Result<Vec<ReadFolder>> {
        both!(self, r => r.folders().await)
    }

    /// The folder at `path` below msgfolderroot.
    ///
    /// # Errors
    /// As [`Self::folders`].
    pub async fn folder(&self, path: &str) -> anyhow::Result<Option<ReadFolder>> {
        Ok(self.folders().await?.into_iter().find(|f| f.path == path))
    }

    /// Every message in a folder.
    ///
    /// # Errors
    /// As [`Self::folders`].
    pub async fn messages(&self, folder_id: &str) -> anyhow::Result<Vec<ReadMessage>> {
        both!(self, r => r.messages(folder_id).await)
    }

    /// Every message of the mailbox, with its folder's path.
    ///
    /// # Errors
    /// As [`Self::folders`].
    pub async fn all_messages(&self) -> anyhow::Result<Vec<(String, ReadMessage)>> {
        let mut out = Vec::new();
        for folder in self.folders().await? {
            for m in self.messages(&folder.id).await? {
                out.push((folder.path.clone(), m));
            }
        }
        Ok(out)
    }

    /// One message.
    ///
    /// # Errors
    /// As [`Self::folders`]; a message that does not exist is an error.
    pub async fn message(&self, id: &str) -> anyhow::Result<ReadMessage> {
        both!(self, r => r.message(id).await)
    }

    /// A message's attachments.
    ///
    /// # Errors
    /// As [`Self::folders`].
    pub async fn attachments(&self, message_id: &str) -> anyhow::Result<Vec<ReadAttachment>> {
        both!(self, r => r.attachments(message_id).await)
    }

    /// An attachment's bytes (an item attachment's: the attached message's MIME).
    ///
    /// # Errors
    /// As [`Self::folders`].
    pub async fn attachment_bytes(
        &self,
        message_id: &str,
        attachment_id: &str,
    ) -> anyhow::Result<Vec<u8>> {
        both!(self, r => r.attachment_bytes(message_id, attachment_id).await)
    }

    /// The message's MIME as Exchange gives it.
    ///
    /// # Errors
    /// As [`Self::folders`].
    pub async fn mime(&self, message_id: &str) -> anyhow::Result<Vec<u8>> {
        both!(self, r => r.mime(message_id).await)
    }

    /// One extended property in Graph's spelling (`Integer 0x1080`, `String 0x007D`,
    /// `String {guid} Name X-Foo`); `None` when the message does not have it.
    ///
    /// # Errors
    /// As [`Self::folders`].
    pub async fn extended_property(
        &self,
        message_id: &str,
        id: &str,
    ) -> anyhow::Result<Option<String>> {
        both!(self, r => r.extended_property(message_id, id).await)
    }
}
