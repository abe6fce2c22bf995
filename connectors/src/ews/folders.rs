//! The mailbox's folder tree over EWS: listing it (one `FindFolder` Deep under
//! msgfolderroot, paged) with the roles of the special folders, and creating a path.
//!
//! Exchange compares folder names case-insensitively: an existing "projects" is the
//! folder asked for as "Projects", and creating it again is `ErrorFolderExists`. That
//! answer (another session created it meanwhile, or a case variant exists) is met by
//! listing the level again and taking the folder found.
//!
//! Roles: inbox, sentitems, deleteditems, drafts and junkemail are `DistinguishedFolderId`s,
//! resolved with one `GetFolder`. EWS has no distinguished id for the Archive folder
//! (Graph's `archive`; research §2.2), so a folder directly under msgfolderroot named
//! "Archive" (Outlook's default, which Exchange creates) takes that role.

use super::client::messages;
use super::error::Refusal;
use super::xml::{Element, esc};
use super::{EwsClient, FolderRef, PAGE_SIZE};
use crate::error::ConnectorError;
use crate::special::SpecialUse;
use std::collections::HashMap;

/// The top of the user-visible tree.
const ROOT: FolderRef<'static> = FolderRef::Distinguished("msgfolderroot");

/// The distinguished folders whose role [`EwsClient::folders`] reports.
const ROLES: [(&str, EwsRole); 5] = [
    ("inbox", EwsRole::Inbox),
    ("sentitems", EwsRole::Special(SpecialUse::Sent)),
    ("deleteditems", EwsRole::Special(SpecialUse::Trash)),
    ("drafts", EwsRole::Special(SpecialUse::Drafts)),
    ("junkemail", EwsRole::Special(SpecialUse::Junk)),
];

/// The display name that marks the Archive folder (see the module docs).
const ARCHIVE_NAME: &str = "Archive";

/// The role of a well-known folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EwsRole {
    /// The Inbox.
    Inbox,
    /// Sent Items, Deleted Items, Drafts, Junk Email or Archive.
    Special(SpecialUse),
}

impl EwsRole {
    /// The `DistinguishedFolderId` of the role; `None` for Archive, which has none.
    pub fn distinguished(self) -> Option<&'static str> {
        ROLES
            .iter()
            .find(|(_, r)| *r == self)
            .map(|(name, _)| *name)
    }
}

/// A folder of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwsFolder {
    /// EWS folder id.
    pub id: String,
    /// Display names from the top (below msgfolderroot) down to this folder.
    pub path: Vec<String>,
    /// Its role, if it is one of the well-known folders.
    pub role: Option<EwsRole>,
    /// `FolderClass` (`IPF.Note` for mail; calendars, contacts and tasks differ).
    pub class: Option<String>,
}

/// One folder from a listing.
struct Entry {
    id: String,
    parent: Option<String>,
    name: String,
    class: Option<String>,
}

fn entry(e: &Element) -> Result<Entry, ConnectorError> {
    let id = e.child("FolderId").and_then(|f| f.attr("Id"));
    let name = e.child("DisplayName").map(|n| n.text.clone());
    let (Some(id), Some(name)) = (id, name) else {
        return Err(ConnectorError::Protocol(format!(
            "ews listed a {} without FolderId or DisplayName",
            e.name
        )));
    };
    Ok(Entry {
        id: id.to_owned(),
        parent: e
            .child("ParentFolderId")
            .and_then(|p| p.attr("Id"))
            .map(str::to_owned),
        name,
        class: e.child_text("FolderClass").map(str::to_owned),
    })
}

/// Exchange's folder-name equality (case-insensitive, any script).
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// `m:FolderShape` asking for what [`entry`] reads.
const FOLDER_SHAPE: &str = concat!(
    "<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>",
    r#"<t:FieldURI FieldURI="folder:ParentFolderId"/>"#,
    r#"<t:FieldURI FieldURI="folder:DisplayName"/>"#,
    r#"<t:FieldURI FieldURI="folder:FolderClass"/>"#,
    "</t:AdditionalProperties></m:FolderShape>"
);

/// A `FindFolder` page below `parent`.
fn find_folder(parent: FolderRef<'_>, deep: bool, offset: usize) -> String {
    let traversal = if deep { "Deep" } else { "Shallow" };
    format!(
        r#"<m:FindFolder Traversal="{traversal}">{FOLDER_SHAPE}<m:IndexedPageFolderView MaxEntriesReturned="{PAGE_SIZE}" Offset="{offset}" BasePoint="Beginning"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindFolder>"#,
        parent.xml()
    )
}

/// Paths below `root` for every entry whose parent chain reaches it.
fn paths(root: &str, entries: &[Entry]) -> Vec<Option<Vec<String>>> {
    let by_id: HashMap<&str, &Entry> = entries.iter().map(|e| (e.id.as_str(), e)).collect();
    entries
        .iter()
        .map(|e| {
            let mut path = vec![e.name.clone()];
            let mut at = e;
            // Bounded: a parent loop in a broken answer cannot spin forever.
            for _ in 0..=entries.len() {
                match at.parent.as_deref() {
                    Some(p) if p == root => {
                        path.reverse();
                        return Some(path);
                    }
                    Some(p) => {
                        at = by_id.get(p)?;
                        path.push(at.name.clone());
                    }
                    None => return None,
                }
            }
            None
        })
        .collect()
}

impl EwsClient {
    /// Every folder below msgfolderroot (hidden ones and non-mail ones included, see
    /// [`EwsFolder::class`]), sorted by path, with the roles of the well-known folders.
    ///
    /// # Errors
    /// Any failed request (classified as the module `ews::error` says).
    pub async fn folders(&self) -> Result<Vec<EwsFolder>, ConnectorError> {
        let (root, roles) = self.well_known().await?;
        let entries: Vec<Entry> = self
            .pages("FindFolder", "Folders", |offset| {
                find_folder(ROOT, true, offset)
            })
            .await?
            .iter()
            .map(entry)
            .collect::<Result<_, _>>()?;
        let paths = paths(&root, &entries);
        let mut out: Vec<EwsFolder> = entries
            .into_iter()
            .zip(paths)
            .filter_map(|(e, path)| {
                let path = path?;
                let role = roles.get(&e.id).copied().or_else(|| {
                    (path.len() == 1 && same_name(&path[0], ARCHIVE_NAME))
                        .then_some(EwsRole::Special(SpecialUse::Archive))
                });
                Some(EwsFolder {
                    id: e.id,
                    path,
                    role,
                    class: e.class,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// msgfolderroot's id and the ids of the role folders that exist.
    async fn well_known(&self) -> Result<(String, HashMap<String, EwsRole>), ConnectorError> {
        const OP: &str = "GetFolder";
        let ids: String = std::iter::once(ROOT)
            .chain(ROLES.iter().map(|(name, _)| FolderRef::Distinguished(name)))
            .map(FolderRef::xml)
            .collect();
        let body = format!(
            "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>\
             <m:FolderIds>{ids}</m:FolderIds></m:GetFolder>"
        );
        let response = self.call(OP, &body).await?;
        let answers = messages(&response);
        if answers.len() != ROLES.len() + 1 {
            return Err(ConnectorError::Protocol(format!(
                "ews {OP} answered {} response messages for {} folders",
                answers.len(),
                ROLES.len() + 1
            )));
        }
        let id_of = |m: &Element| -> Result<Option<String>, ConnectorError> {
            if m.attr("ResponseClass") == Some("Error") {
                let refusal = Refusal::from_response(m);
                // Some mailboxes lack a default folder (a Junk Email never made).
                if matches!(
                    refusal.code.as_str(),
                    "ErrorFolderNotFound" | "ErrorItemNotFound"
                ) {
                    return Ok(None);
                }
                return Err(refusal.into_error(OP, &self.mailbox));
            }
            Ok(created_id(m))
        };
        let root = id_of(&answers[0])?
            .ok_or_else(|| ConnectorError::Protocol(format!("ews {OP} found no msgfolderroot")))?;
        let mut roles = HashMap::new();
        for (answer, (_, role)) in answers[1..].iter().zip(ROLES) {
            if let Some(id) = id_of(answer)? {
                roles.insert(id, role);
            }
        }
        Ok((root, roles))
    }

    /// The id of the folder at `path` below msgfolderroot, creating the levels that are
    /// missing. An empty path is msgfolderroot itself.
    ///
    /// # Errors
    /// An empty name in `path` ([`ConnectorError::Protocol`]); any failed request.
    pub async fn ensure_folder(&self, path: &[String]) -> Result<String, ConnectorError> {
        if let Some(i) = path.iter().position(|s| s.trim().is_empty()) {
            return Err(ConnectorError::Protocol(format!(
                "folder path {path:?} has an empty name at level {}; Exchange needs a \
                 non-empty DisplayName (fix the folder mapping)",
                i + 1
            )));
        }
        if path.is_empty() {
            return Ok(self.well_known().await?.0);
        }
        let mut parent: Option<String> = None;
        let mut created_parent = false;
        for name in path {
            let at = parent.as_deref().map_or(ROOT, FolderRef::Id);
            // Below a folder this call just created there is nothing to look up.
            let found = if created_parent {
                None
            } else {
                self.child_named(at, name).await?
            };
            let id = match found {
                Some(id) => id,
                None => match self.create_folder(at, name).await? {
                    Ok(id) => {
                        created_parent = true;
                        id
                    }
                    Err(exists) => {
                        created_parent = false;
                        self.child_named(at, name).await?.ok_or_else(|| {
                            ConnectorError::Protocol(format!(
                                "ews said folder {name:?} exists ({}), but it is not listed \
                                 under its parent",
                                exists.code
                            ))
                        })?
                    }
                },
            };
            parent = Some(id);
        }
        parent.ok_or_else(|| ConnectorError::Protocol("ews: empty folder path".into()))
    }

    /// The child of `parent` called `name` (case-insensitively).
    async fn child_named(
        &self,
        parent: FolderRef<'_>,
        name: &str,
    ) -> Result<Option<String>, ConnectorError> {
        let children = self
            .pages("FindFolder", "Folders", |offset| {
                find_folder(parent, false, offset)
            })
            .await?;
        for child in &children {
            let child = entry(child)?;
            if same_name(&child.name, name) {
                return Ok(Some(child.id));
            }
        }
        Ok(None)
    }

    /// Creates `name` under `parent`: the new id, or the `ErrorFolderExists` refusal.
    async fn create_folder(
        &self,
        parent: FolderRef<'_>,
        name: &str,
    ) -> Result<Result<String, Refusal>, ConnectorError> {
        const OP: &str = "CreateFolder";
        let body = format!(
            "<m:CreateFolder><m:ParentFolderId>{}</m:ParentFolderId><m:Folders><t:Folder>\
             <t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>{}</t:DisplayName>\
             </t:Folder></m:Folders></m:CreateFolder>",
            parent.xml(),
            esc(name)
        );
        let response = self.call(OP, &body).await?;
        let message = super::client::single_message(OP, &response)?;
        if message.attr("ResponseClass") == Some("Error") {
            let refusal = Refusal::from_response(message);
            if refusal.code == "ErrorFolderExists" {
                return Ok(Err(refusal));
            }
            return Err(refusal.into_error(OP, &self.mailbox));
        }
        created_id(message).map(Ok).ok_or_else(|| {
            ConnectorError::Protocol(format!("ews {OP} answered without a FolderId"))
        })
    }
}

/// The `FolderId` of the folder in a `GetFolder`/`CreateFolder` response message.
fn created_id(message: &Element) -> Option<String> {
    message
        .child("Folders")?
        .children
        .first()?
        .child("FolderId")?
        .attr("Id")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::super::xml::parse;
    use super::*;

    fn e(id: &str, parent: &str, name: &str) -> Entry {
        Entry {
            id: id.into(),
            parent: Some(parent.into()),
            name: name.into(),
            class: None,
        }
    }

    #[test]
    fn paths_follow_parents_in_any_order() {
        let entries = [
            e("c", "b", "2024"),
            e("b", "R", "Projects"),
            e("x", "gone", "Orphan"),
            e("l1", "l2", "Loop"),
            e("l2", "l1", "Loop"),
        ];
        let got = paths("R", &entries);
        assert_eq!(
            got[0].as_deref(),
            Some(&["Projects".to_owned(), "2024".to_owned()][..])
        );
        assert_eq!(got[1].as_deref(), Some(&["Projects".to_owned()][..]));
        assert_eq!(
            (got[2].as_ref(), got[3].as_ref(), got[4].as_ref()),
            (None, None, None)
        );
    }

    #[test]
    fn entries_need_id_and_name() {
        let xml = r#"<Folder><FolderId Id="F1" ChangeKey="k"/><ParentFolderId Id="R"/><FolderClass>IPF.Note</FolderClass><DisplayName>A &amp; B</DisplayName></Folder>"#;
        let ok = entry(&parse(xml).expect("xml")).expect("entry");
        assert_eq!(
            (
                ok.id.as_str(),
                ok.parent.as_deref(),
                ok.name.as_str(),
                ok.class.as_deref()
            ),
            ("F1", Some("R"), "A & B", Some("IPF.Note"))
        );
        assert!(
            entry(&parse("<Folder><DisplayName>x</DisplayName></Folder>").expect("xml")).is_err()
        );
    }

    #[test]
    fn roles_map_to_distinguished_ids() {
        assert_eq!(EwsRole::Inbox.distinguished(), Some("inbox"));
        assert_eq!(
            EwsRole::Special(SpecialUse::Trash).distinguished(),
            Some("deleteditems")
        );
        assert_eq!(EwsRole::Special(SpecialUse::Archive).distinguished(), None);
    }

    #[test]
    fn names_compare_like_exchange() {
        assert!(same_name("Projects", "pROJECTS"));
        assert!(same_name("Éléments", "éLÉMENTS"));
        assert!(!same_name("Inbox", "Inbox2"));
    }

    #[test]
    fn find_folder_requests_are_paged() {
        let xml = find_folder(FolderRef::Id("a\"b"), true, 2000);
        assert!(xml.contains(r#"Traversal="Deep""#), "{xml}");
        assert!(
            xml.contains(r#"MaxEntriesReturned="1000" Offset="2000""#),
            "{xml}"
        );
        assert!(xml.contains(r#"<t:FolderId Id="a&quot;b"/>"#), "{xml}");
    }
}
