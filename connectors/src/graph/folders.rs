//! The mailbox's folder tree: listing it (level by level, every page, hidden folders
//! included) and creating a path in it.
//!
//! Exchange compares folder names case-insensitively (research §1.3): an existing
//! "projects" is the folder asked for as "Projects", and creating it again is `409
//! ErrorFolderExists`. A 409 (another worker created it meanwhile, or a case variant
//! exists) is answered by listing the level again and taking the folder found.

use super::client::Body;
use super::error::is_answer;
use super::{Api, GraphClient, with_query};
use crate::error::ConnectorError;
use reqwest::Method;
use serde_json::{Value, json};

/// The well-known name of the top of the user-visible tree.
const ROOT: &str = "msgfolderroot";

/// A folder of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphFolder {
    /// Graph id.
    pub id: String,
    /// Display names from the top (below msgfolderroot) down to this folder.
    pub path: Vec<String>,
    /// Whether it is hidden (`isHidden`).
    pub hidden: bool,
}

/// One `mailFolder` from a listing.
struct Entry {
    id: String,
    name: String,
    hidden: bool,
    children: u64,
}

fn entry(v: &Value) -> Result<Entry, ConnectorError> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(id), Some(name)) = (text("id"), text("displayName")) else {
        return Err(ConnectorError::Protocol(format!(
            "graph listed a mailFolder without id or displayName: {v}"
        )));
    };
    Ok(Entry {
        id,
        name,
        hidden: v.get("isHidden").and_then(Value::as_bool).unwrap_or(false),
        // Unknown counts are walked rather than skipped.
        children: v
            .get("childFolderCount")
            .and_then(Value::as_u64)
            .unwrap_or(1),
    })
}

/// Exchange's folder-name equality (case-insensitive, any script).
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

impl GraphClient {
    /// Every folder of the mailbox below msgfolderroot, hidden ones included, parents
    /// before children.
    ///
    /// # Errors
    /// Any failed listing ([`super::error`] classes).
    pub async fn folders(&self, upn: &str) -> Result<Vec<GraphFolder>, ConnectorError> {
        let mut out: Vec<GraphFolder> = Vec::new();
        let mut queue: Vec<(String, Vec<String>)> = vec![(ROOT.to_owned(), Vec::new())];
        while let Some((parent, path)) = queue.pop() {
            for child in self.children(upn, &parent).await? {
                let mut child_path = path.clone();
                child_path.push(child.name);
                if child.children > 0 {
                    queue.push((child.id.clone(), child_path.clone()));
                }
                out.push(GraphFolder {
                    id: child.id,
                    path: child_path,
                    hidden: child.hidden,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The id of the folder at `path` below msgfolderroot, creating what is missing.
    /// An empty path is msgfolderroot itself.
    ///
    /// # Errors
    /// An empty name in `path` ([`ConnectorError::Protocol`]); any failed request.
    pub async fn ensure_folder(
        &self,
        upn: &str,
        path: &[String],
    ) -> Result<String, ConnectorError> {
        self.ensure_folder_under(upn, ROOT, path).await
    }

    /// Like [`GraphClient::ensure_folder`], below `parent`: a folder id or a well-known
    /// name ([`GraphClient::well_known`], `inbox`, …).
    ///
    /// # Errors
    /// As [`GraphClient::ensure_folder`].
    pub async fn ensure_folder_under(
        &self,
        upn: &str,
        parent: &str,
        path: &[String],
    ) -> Result<String, ConnectorError> {
        if let Some(i) = path.iter().position(|s| s.trim().is_empty()) {
            return Err(ConnectorError::Protocol(format!(
                "folder path {path:?} has an empty name at level {}; Exchange needs a \
                 non-empty displayName (fix the folder mapping)",
                i + 1
            )));
        }
        let mut id = if path.is_empty() {
            let url = self.url(Api::V1, upn, &["mailFolders", parent]);
            let folder = self
                .call("get folder", upn, Method::GET, url, Body::None)
                .await?;
            return entry(&folder).map(|e| e.id);
        } else {
            parent.to_owned()
        };
        for name in path {
            id = self.child_named(upn, &id, name).await?;
        }
        Ok(id)
    }

    /// The child of `parent` called `name` (case-insensitively), created if missing.
    async fn child_named(
        &self,
        upn: &str,
        parent: &str,
        name: &str,
    ) -> Result<String, ConnectorError> {
        let find = |children: Vec<Entry>| {
            children
                .into_iter()
                .find(|c| same_name(&c.name, name))
                .map(|c| c.id)
        };
        if let Some(id) = find(self.children(upn, parent).await?) {
            return Ok(id);
        }
        let url = self.url(Api::V1, upn, &["mailFolders", parent, "childFolders"]);
        let body = Body::json(&json!({ "displayName": name }));
        match self.call("create folder", upn, Method::POST, url, body).await {
            Ok(created) => entry(&created).map(|e| e.id),
            Err(e) if is_folder_exists(&e) => find(self.children(upn, parent).await?).ok_or_else(|| {
                ConnectorError::Protocol(format!(
                    "graph said folder {name:?} exists under {parent}, but it is not listed there"
                ))
            }),
            Err(e) => Err(e),
        }
    }

    /// Every child of `parent`, all pages, hidden ones included.
    async fn children(&self, upn: &str, parent: &str) -> Result<Vec<Entry>, ConnectorError> {
        let url = self.url(Api::V1, upn, &["mailFolders", parent, "childFolders"]);
        let url = with_query(url, &[("includeHiddenFolders", "true")]);
        self.collect("list folders", upn, url)
            .await?
            .iter()
            .map(entry)
            .collect()
    }
}

fn is_folder_exists(e: &ConnectorError) -> bool {
    is_answer(e, 409, "ErrorFolderExists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_like_exchange() {
        for (a, b, same) in [
            ("Projects", "projects", true),
            ("Éléments", "éLÉMENTS", true),
            ("Straße", "STRASSE", false),
            ("Inbox", "Inbox2", false),
        ] {
            assert_eq!(same_name(a, b), same, "{a} {b}");
        }
    }

    #[test]
    fn entries_need_id_and_name() {
        let ok = entry(&json!({"id":"1","displayName":"A","childFolderCount":0})).expect("entry");
        assert_eq!(
            (ok.id.as_str(), ok.name.as_str(), ok.children, ok.hidden),
            ("1", "A", 0, false)
        );
        assert!(entry(&json!({"id":"1"})).is_err());
    }

    #[test]
    fn folder_exists_is_recognised() {
        let e = ConnectorError::Service {
            service: "graph",
            op: "create folder".into(),
            text: "http 409 ErrorFolderExists: A folder with the specified name already exists."
                .into(),
            class: mailhaul_proto::ErrorClass::Permanent,
        };
        assert!(is_folder_exists(&e));
        let imap = ConnectorError::No {
            command: "CREATE".into(),
            text: "http 409 ErrorFolderExists: no".into(),
        };
        assert!(!is_folder_exists(&imap));
    }
}
