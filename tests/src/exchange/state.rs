//! The emulator's mailbox store: folders, items, tokens and fault queue behind one lock.
//!
//! Invariants: every mailbox has the well-known folder tree made by [`Mailbox::new`];
//! ids are unique across the whole emulator (one sequence); the lock is a std `Mutex`
//! that is never held across an `.await` (all access goes through [`State::with`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use super::auth::Token;
use super::config::{EmulatorConfig, MailboxSettings};
use super::faults::FaultQueue;
use super::graph_attachments::UploadSession;
use super::item::Item;
use super::throttle::Throttle;

/// The well-known folders of a new mailbox: (Graph/EWS name, display name, parent name,
/// hidden, resolvable through Graph). Graph's list of names is in the `mailFolder`
/// resource docs; `root` and `recoverableitemsroot` exist only as EWS
/// DistinguishedFolderIds.
const WELL_KNOWN: &[(&str, &str, Option<&str>, bool, bool)] = &[
    ("root", "Root", None, true, false),
    (
        "msgfolderroot",
        "Top of Information Store",
        Some("root"),
        false,
        true,
    ),
    ("archive", "Archive", Some("msgfolderroot"), false, true),
    (
        "conversationhistory",
        "Conversation History",
        Some("msgfolderroot"),
        false,
        true,
    ),
    (
        "deleteditems",
        "Deleted Items",
        Some("msgfolderroot"),
        false,
        true,
    ),
    ("drafts", "Drafts", Some("msgfolderroot"), false, true),
    ("inbox", "Inbox", Some("msgfolderroot"), false, true),
    (
        "junkemail",
        "Junk Email",
        Some("msgfolderroot"),
        false,
        true,
    ),
    ("outbox", "Outbox", Some("msgfolderroot"), false, true),
    (
        "sentitems",
        "Sent Items",
        Some("msgfolderroot"),
        false,
        true,
    ),
    (
        "syncissues",
        "Sync Issues",
        Some("msgfolderroot"),
        false,
        true,
    ),
    ("conflicts", "Conflicts", Some("syncissues"), false, true),
    (
        "localfailures",
        "Local Failures",
        Some("syncissues"),
        false,
        true,
    ),
    (
        "serverfailures",
        "Server Failures",
        Some("syncissues"),
        false,
        true,
    ),
    (
        "recoverableitemsroot",
        "Recoverable Items",
        Some("root"),
        true,
        false,
    ),
    (
        "recoverableitemsdeletions",
        "Deletions",
        Some("recoverableitemsroot"),
        true,
        true,
    ),
    ("searchfolders", "Finder", Some("root"), true, true),
    ("scheduled", "Schedule", Some("root"), true, true),
];

/// The default folders that are not mail folders, with their EWS distinguished id and
/// folder class, in the order of [`EmulatorConfig::non_mail_folders`].
const NON_MAIL: &[(&str, &str)] = &[
    ("calendar", "IPF.Appointment"),
    ("contacts", "IPF.Contact"),
    ("tasks", "IPF.Task"),
    ("notes", "IPF.StickyNote"),
    ("journal", "IPF.Journal"),
];

/// A hidden folder without a well-known name, so `includeHiddenFolders` has something
/// to show under msgfolderroot, as in a real Exchange Online mailbox.
const HIDDEN_UNDER_ROOT: &str = "Conversation Action Settings";

/// Follow-up flag of an item (Graph `followupFlag.flagStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagStatus {
    /// `notFlagged`.
    NotFlagged,
    /// `flagged`.
    Flagged,
    /// `complete`.
    Complete,
}

impl FlagStatus {
    /// The Graph spelling.
    pub fn as_graph(self) -> &'static str {
        match self {
            Self::NotFlagged => "notFlagged",
            Self::Flagged => "flagged",
            Self::Complete => "complete",
        }
    }

    /// Parses the Graph spelling (case-sensitive, as the OData enum is).
    pub fn from_graph(s: &str) -> Option<Self> {
        match s {
            "notFlagged" => Some(Self::NotFlagged),
            "flagged" => Some(Self::Flagged),
            "complete" => Some(Self::Complete),
            _ => None,
        }
    }
}

/// How an item was created, so tests can tell the upload paths apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// v1.0 `POST …/messages` with a base64 MIME body (always a draft).
    GraphMime,
    /// beta `POST …/mailFolders/{id}/importMime`.
    GraphImportMime,
    /// `POST …/messages` with a JSON body.
    GraphJson,
    /// EWS `CreateItem` with `MimeContent`.
    EwsMime,
}

/// One folder as stored.
#[derive(Clone, Debug)]
pub(crate) struct Folder {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) parent: Option<String>,
    pub(crate) well_known: Option<&'static str>,
    pub(crate) graph_name: bool,
    pub(crate) hidden: bool,
    /// `IPF.Note` for mail folders; Graph's `/mailFolders` lists only those.
    pub(crate) class: &'static str,
}

/// One mailbox: its folders and items in creation order, and its throttle counters.
#[derive(Debug)]
pub(crate) struct Mailbox {
    pub(crate) upn: String,
    pub(crate) folders: Vec<Folder>,
    pub(crate) items: Vec<Item>,
    pub(crate) throttle: Throttle,
    pub(crate) ews_throttle: Throttle,
    pub(crate) denied: bool,
    pub(crate) settings: MailboxSettings,
    /// Named-property definitions taken (see `item::PropId::definition`).
    pub(crate) named: HashSet<String>,
    /// Of those, how many are in the InternetHeaders namespace.
    pub(crate) named_internet: u32,
}

impl Mailbox {
    fn new(upn: &str, ids: &mut Ids, config: &EmulatorConfig) -> Self {
        let mut folders: Vec<Folder> = Vec::new();
        for &(wk, name, parent, hidden, graph_name) in WELL_KNOWN {
            let parent = parent.and_then(|p| folders.iter().find(|f| f.well_known == Some(p)));
            folders.push(Folder {
                id: ids.folder(),
                name: name.to_owned(),
                parent: parent.map(|p| p.id.clone()),
                well_known: Some(wk),
                graph_name,
                hidden,
                class: "IPF.Note",
            });
        }
        let root = folders
            .iter()
            .find(|f| f.well_known == Some("msgfolderroot"))
            .map(|f| f.id.clone());
        for (&(wk, class), name) in NON_MAIL.iter().zip(&config.non_mail_folders) {
            folders.push(Folder {
                id: ids.folder(),
                name: name.clone(),
                parent: root.clone(),
                well_known: Some(wk),
                graph_name: false,
                hidden: false,
                class,
            });
        }
        folders.push(Folder {
            id: ids.folder(),
            name: HIDDEN_UNDER_ROOT.to_owned(),
            parent: root,
            well_known: None,
            graph_name: false,
            hidden: true,
            class: "IPF.Note",
        });
        let settings = config.settings_of(upn);
        Self {
            upn: upn.to_owned(),
            folders,
            items: Vec::new(),
            throttle: Throttle::default(),
            ews_throttle: Throttle::default(),
            denied: false,
            named: HashSet::new(),
            named_internet: settings.internet_headers_used,
            settings,
        }
    }

    /// The folder with this id, or with this well-known name (case-insensitive, as
    /// Graph accepts `Inbox` and `inbox`); `graph` limits names to Graph's list.
    pub(crate) fn resolve_folder(&self, id_or_name: &str, graph: bool) -> Option<&Folder> {
        self.folders
            .iter()
            .find(|f| f.id == id_or_name)
            .or_else(|| {
                self.folders.iter().find(|f| {
                    f.well_known.is_some_and(|wk| {
                        wk.eq_ignore_ascii_case(id_or_name) && (f.graph_name || !graph)
                    })
                })
            })
    }

    /// The folder with this well-known name; every mailbox has all of them.
    pub(crate) fn well_known(&self, name: &str) -> &Folder {
        self.folders
            .iter()
            .find(|f| f.well_known == Some(name))
            .expect("Mailbox::new creates every well-known folder")
    }

    /// Children of `parent`, hidden ones only if asked, non-mail ones only if
    /// `all_classes` (EWS lists them, Graph's `mailFolders` does not), ordered by name
    /// (case-insensitive) as Exchange lists them.
    pub(crate) fn children(
        &self,
        parent: &str,
        include_hidden: bool,
        all_classes: bool,
    ) -> Vec<&Folder> {
        let mut out: Vec<&Folder> = self
            .folders
            .iter()
            .filter(|f| f.parent.as_deref() == Some(parent) && (include_hidden || !f.hidden))
            .filter(|f| all_classes || f.class == "IPF.Note")
            .collect();
        out.sort_by_key(|f| f.name.to_lowercase());
        out
    }

    /// Slash-separated path of a folder below msgfolderroot ("" for msgfolderroot
    /// itself; folders outside it start with "/").
    pub(crate) fn path_of(&self, id: &str) -> String {
        let mut parts = Vec::new();
        let mut cur = self.folders.iter().find(|f| f.id == id);
        while let Some(f) = cur {
            if f.well_known == Some("msgfolderroot") {
                parts.reverse();
                return parts.join("/");
            }
            parts.push(f.name.clone());
            cur = f
                .parent
                .as_deref()
                .and_then(|p| self.folders.iter().find(|g| g.id == p));
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// Creates a folder under `parent`; `Err(())` when a sibling has the same name,
    /// compared case-insensitively because Exchange folder names are.
    pub(crate) fn create_folder(
        &mut self,
        ids: &mut Ids,
        parent: &str,
        name: &str,
        hidden: bool,
    ) -> Result<Folder, ()> {
        let lower = name.to_lowercase();
        if self
            .folders
            .iter()
            .any(|f| f.parent.as_deref() == Some(parent) && f.name.to_lowercase() == lower)
        {
            return Err(());
        }
        let folder = Folder {
            id: ids.folder(),
            name: name.to_owned(),
            parent: Some(parent.to_owned()),
            well_known: None,
            graph_name: false,
            hidden,
            class: "IPF.Note",
        };
        self.folders.push(folder.clone());
        Ok(folder)
    }

    /// Whether `bytes` more fit under the mailbox's size quota (the config's `quota`
    /// unless its settings say otherwise; items and their attachments count).
    pub(crate) fn has_room(&self, bytes: usize, quota: u64) -> bool {
        let quota = self.settings.quota_bytes.unwrap_or(quota);
        let used: usize = self.items.iter().map(Item::total_size).sum();
        (used as u64).saturating_add(bytes as u64) <= quota
    }

    pub(crate) fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    pub(crate) fn item_mut(&mut self, id: &str) -> Option<&mut Item> {
        self.items.iter_mut().find(|i| i.id == id)
    }
}

/// Id generator: one sequence for all mailboxes, shaped like Exchange ids (opaque,
/// base64-looking, ending in `=` so clients must treat them as opaque path segments).
#[derive(Debug, Default)]
pub(crate) struct Ids {
    seq: u64,
}

impl Ids {
    pub(crate) fn folder(&mut self) -> String {
        self.seq += 1;
        format!("AQMkADAwATM0MDAAL{:016x}AAA=", self.seq)
    }

    pub(crate) fn item(&mut self) -> String {
        self.seq += 1;
        format!("AAMkADAwATM0MDAAL{:016x}AAA=", self.seq)
    }
}

/// Everything mutable.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) mailboxes: HashMap<String, Mailbox>,
    pub(crate) faults: FaultQueue,
    pub(crate) ids: Ids,
    pub(crate) uploads: HashMap<String, UploadSession>,
    /// Graph requests in flight across every mailbox (the per-app concurrency gate).
    pub(crate) app_in_flight: u32,
    /// Highest number of them at once.
    pub(crate) app_peak: u32,
}

impl Inner {
    /// Mailbox by UPN, case-insensitive (UPNs are).
    pub(crate) fn mailbox(&mut self, upn: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&upn.to_lowercase())
    }

    pub(crate) fn add_mailbox(&mut self, upn: &str, config: &EmulatorConfig) {
        let key = upn.to_lowercase();
        if !self.mailboxes.contains_key(&key) {
            let mailbox = Mailbox::new(upn, &mut self.ids, config);
            self.mailboxes.insert(key, mailbox);
        }
    }

    /// The mailbox, created first when the config creates mailboxes on first use.
    pub(crate) fn mailbox_or_auto(
        &mut self,
        upn: &str,
        config: &EmulatorConfig,
    ) -> Option<&mut Mailbox> {
        if config.auto_create_mailboxes && is_upn(upn) {
            self.add_mailbox(upn, config);
        }
        self.mailbox(upn)
    }
}

/// Whether `upn` looks like a user principal name (`local@domain`), so the standalone
/// emulator does not invent mailboxes for path typos.
fn is_upn(upn: &str) -> bool {
    upn.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !upn.contains(['/', ' ']))
}

/// Shared by every handler.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: EmulatorConfig,
    pub(crate) base_url: String,
    /// For replaying `$batch` items against the emulator itself.
    pub(crate) http: reqwest::Client,
    /// While true, admitted requests wait (holding their concurrency slot).
    pub(crate) hold: tokio::sync::watch::Sender<bool>,
    inner: Mutex<Inner>,
}

impl State {
    pub(crate) fn new(config: EmulatorConfig, base_url: String) -> Self {
        Self {
            config,
            base_url,
            // Loopback calls to itself must not go through a proxy from the environment.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            hold: tokio::sync::watch::Sender::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// What an admitted request does before its handler runs: the configured latency,
    /// then waiting while the emulator is held. Both keep the concurrency slot taken.
    pub(crate) async fn admitted_wait(&self) {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        let mut hold = self.hold.subscribe();
        // An error means the sender is gone, i.e. the emulator is being dropped.
        let _ = hold.wait_for(|held| !*held).await;
    }

    /// Runs `f` under the lock. A panic in another handler must not wedge the
    /// emulator, so a poisoned lock is taken over.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}
