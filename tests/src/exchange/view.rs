//! Snapshots of a mailbox for test assertions: folders with their paths below
//! msgfolderroot and items with everything the emulator stored about them.
//!
//! Invariant: a view is a copy; changing the emulator afterwards does not change it.

use chrono::{DateTime, Utc};

use super::item::Attachment;
use super::state::{FlagStatus, Mailbox, Origin};

/// A snapshot of one mailbox, for assertions.
#[derive(Clone, Debug)]
pub struct MailboxView {
    /// The UPN as given to `add_mailbox`.
    pub upn: String,
    /// Every folder, well-known ones first, then in creation order.
    pub folders: Vec<FolderView>,
    /// Every item in creation order.
    pub items: Vec<ItemView>,
}

impl MailboxView {
    /// The folder at `path` below msgfolderroot (`"Inbox/Projects"`), matched exactly.
    pub fn folder(&self, path: &str) -> Option<&FolderView> {
        self.folders.iter().find(|f| f.path == path)
    }

    /// Items whose folder is at `path`.
    pub fn items_in(&self, path: &str) -> Vec<&ItemView> {
        self.items
            .iter()
            .filter(|i| i.folder_path == path)
            .collect()
    }

    /// The item with this id.
    pub fn item(&self, id: &str) -> Option<&ItemView> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// One folder in a [`MailboxView`].
#[derive(Clone, Debug)]
pub struct FolderView {
    /// Opaque id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Parent's id (`None` for the root).
    pub parent_id: Option<String>,
    /// Path below msgfolderroot, `/`-joined (`""` for msgfolderroot, a leading `/` for
    /// folders outside it such as `/Recoverable Items`).
    pub path: String,
    /// Well-known name (`inbox`, …) if any.
    pub well_known_name: Option<String>,
    /// Whether the folder is hidden.
    pub is_hidden: bool,
    /// Whether it is a mail folder (`IPF.Note`); Calendar, Contacts, Tasks, Notes and
    /// Journal are not, and Graph's `mailFolders` does not list them.
    pub is_mail_folder: bool,
}

/// One item in a [`MailboxView`].
#[derive(Clone, Debug)]
pub struct ItemView {
    /// Opaque id.
    pub id: String,
    /// Id of the folder holding it.
    pub folder_id: String,
    /// Path of that folder (see [`FolderView::path`]).
    pub folder_path: String,
    /// How it was created.
    pub origin: Origin,
    /// The MIME bytes as uploaded (`None` for JSON-created items).
    pub mime: Option<Vec<u8>>,
    /// Draft bit (PidTagMessageFlags `MSGFLAG_UNSENT`).
    pub is_draft: bool,
    /// Read state.
    pub is_read: bool,
    /// Follow-up flag.
    pub flag: FlagStatus,
    /// Categories.
    pub categories: Vec<String>,
    /// Received time (PidTagMessageDeliveryTime).
    pub received: DateTime<Utc>,
    /// Sent time (PidTagClientSubmitTime), if known.
    pub sent: Option<DateTime<Utc>>,
    /// Internet Message-ID with angle brackets, if any.
    pub internet_message_id: Option<String>,
    /// Subject, if any.
    pub subject: Option<String>,
    /// `x-` headers set on a JSON create.
    pub headers: Vec<(String, String)>,
    /// File attachments added after creation.
    pub attachments: Vec<Attachment>,
}

impl Mailbox {
    pub(crate) fn view(&self) -> MailboxView {
        let folders = self
            .folders
            .iter()
            .map(|f| FolderView {
                id: f.id.clone(),
                display_name: f.name.clone(),
                parent_id: f.parent.clone(),
                path: self.path_of(&f.id),
                well_known_name: f.well_known.map(str::to_owned),
                is_hidden: f.hidden,
                is_mail_folder: f.class == "IPF.Note",
            })
            .collect();
        let items = self
            .items
            .iter()
            .map(|i| ItemView {
                id: i.id.clone(),
                folder_id: i.folder.clone(),
                folder_path: self.path_of(&i.folder),
                origin: i.origin,
                mime: i.mime.clone(),
                is_draft: i.is_draft,
                is_read: i.is_read,
                flag: i.flag,
                categories: i.categories.clone(),
                received: i.received,
                sent: i.sent,
                internet_message_id: i.internet_message_id.clone(),
                subject: i.subject.clone(),
                headers: i.headers.clone(),
                attachments: i.attachments.clone(),
            })
            .collect();
        MailboxView {
            upn: self.upn.clone(),
            folders,
            items,
        }
    }
}
