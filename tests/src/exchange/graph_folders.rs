//! Graph mail folders (`mailFolder` resource, user-list-mailfolders,
//! mailfolder-list-childfolders, mailfolder-post-childfolders): list root children and
//! child folders with paging and `includeHiddenFolders`, get one by id or well-known
//! name, create with `409 ErrorFolderExists` on a case-insensitive duplicate.
//!
//! Invariants: `/mailFolders` means the children of msgfolderroot; only `displayName`
//! and `isHidden` are writable; a parent that does not resolve is `404 ErrorItemNotFound`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::graph_error::{GraphError, GraphResult};
use super::odata;
use super::pipeline::in_mailbox;
use super::state::{Folder, Mailbox, State};

type Pairs = Query<Vec<(String, String)>>;

/// The `mailFolder` JSON of `folder`.
fn folder_json(mailbox: &Mailbox, folder: &Folder) -> Value {
    let items = mailbox.items.iter().filter(|i| i.folder == folder.id);
    let (total, unread, size) = items.fold((0_u64, 0_u64, 0_u64), |(t, u, s), i| {
        (t + 1, u + u64::from(!i.is_read), s + i.total_size() as u64)
    });
    json!({
        "id": folder.id,
        "displayName": folder.name,
        "parentFolderId": folder.parent,
        "childFolderCount": mailbox.folders.iter().filter(|f| f.parent.as_deref() == Some(folder.id.as_str())).count(),
        "unreadItemCount": unread,
        "totalItemCount": total,
        "sizeInBytes": size,
        "isHidden": folder.hidden,
    })
}

fn context(state: &State, uri: &Uri) -> String {
    let version = if uri.path().starts_with("/beta/") {
        "beta"
    } else {
        "v1.0"
    };
    format!("{}/{version}/$metadata#mailFolders", state.base_url)
}

/// The folder `id_or_name` resolves to, as Graph resolves path segments.
pub(crate) fn resolve<'m>(
    mailbox: &'m Mailbox,
    id_or_name: &str,
) -> Result<&'m Folder, GraphError> {
    mailbox
        .resolve_folder(id_or_name, true)
        .ok_or_else(GraphError::item_not_found)
}

fn list(
    state: &State,
    upn: &str,
    parent: Option<&str>,
    uri: &Uri,
    pairs: Vec<(String, String)>,
) -> GraphResult {
    if pairs.iter().any(|(k, _)| k == "$expand") {
        return Err(GraphError::bad_request(
            "BadRequest",
            "The emulator does not expand mail folders.",
        ));
    }
    let q = odata::parse(pairs, &["displayName"])?;
    let values = in_mailbox(state, upn, |mailbox, _| {
        let parent = match parent {
            Some(p) => resolve(mailbox, p)?.id.clone(),
            None => mailbox.well_known("msgfolderroot").id.clone(),
        };
        let wanted = q.filter.as_ref().map(|f| f.value.to_lowercase());
        Ok(mailbox
            .children(&parent, q.include_hidden, false)
            .into_iter()
            .filter(|f| wanted.as_ref().is_none_or(|w| f.name.to_lowercase() == *w))
            .map(|f| folder_json(mailbox, f))
            .collect::<Vec<_>>())
    })?;
    let body = odata::page(
        &state.base_url,
        uri,
        &q,
        state.config.page_size,
        values,
        &context(state, uri),
    );
    Ok(Json(body).into_response())
}

/// `GET /users/{upn}/mailFolders`.
pub(crate) async fn list_root(
    AxState(state): AxState<Arc<State>>,
    Path(upn): Path<String>,
    uri: Uri,
    Query(pairs): Pairs,
) -> GraphResult {
    list(&state, &upn, None, &uri, pairs)
}

/// `GET /users/{upn}/mailFolders/{folder}/childFolders`.
pub(crate) async fn list_children(
    AxState(state): AxState<Arc<State>>,
    Path((upn, folder)): Path<(String, String)>,
    uri: Uri,
    Query(pairs): Pairs,
) -> GraphResult {
    list(&state, &upn, Some(&folder), &uri, pairs)
}

/// `GET /users/{upn}/mailFolders/{folder}`.
pub(crate) async fn get_folder(
    AxState(state): AxState<Arc<State>>,
    Path((upn, folder)): Path<(String, String)>,
) -> GraphResult {
    let body = in_mailbox(&state, &upn, |mailbox, _| {
        Ok(folder_json(mailbox, resolve(mailbox, &folder)?))
    })?;
    Ok(Json(body).into_response())
}

/// Requires `Content-Type: application/json` and a JSON object.
pub(crate) fn json_object(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, GraphError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(GraphError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("Content-Type '{content_type}' is not supported here; send application/json."),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GraphError::bad_request(
            "BadRequest",
            "The request body must be a JSON object.",
        )),
        Err(err) => Err(GraphError::bad_request(
            "BadRequest",
            format!("Unable to read JSON request payload: {err}."),
        )),
    }
}

fn create(
    state: &State,
    upn: &str,
    parent: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> GraphResult {
    let map = json_object(headers, body)?;
    let mut name = None;
    let mut hidden = false;
    for (key, value) in &map {
        match (key.as_str(), value) {
            ("displayName", Value::String(s)) => name = Some(s.clone()),
            ("isHidden", Value::Bool(b)) => hidden = *b,
            ("displayName" | "isHidden", _) => {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    format!("Invalid type for property '{key}'."),
                ));
            }
            (k, _) if k.starts_with("@odata.") => {}
            (k, _) => return Err(GraphError::unknown_property(k, "mailFolder")),
        }
    }
    let name = name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        GraphError::bad_request(
            "ErrorInvalidRequest",
            "A folder needs a non-empty displayName.",
        )
    })?;
    let body = in_mailbox(state, upn, |mailbox, ids| {
        let parent = match parent {
            Some(p) => resolve(mailbox, p)?.id.clone(),
            None => mailbox.well_known("msgfolderroot").id.clone(),
        };
        let folder = mailbox
            .create_folder(ids, &parent, &name, hidden)
            .map_err(|()| {
                GraphError::new(
                    StatusCode::CONFLICT,
                    "ErrorFolderExists",
                    "A folder with the specified name already exists.",
                )
            })?;
        Ok(folder_json(mailbox, &folder))
    })?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /users/{upn}/mailFolders`.
pub(crate) async fn create_root(
    AxState(state): AxState<Arc<State>>,
    Path(upn): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    create(&state, &upn, None, &headers, &body)
}

/// `POST /users/{upn}/mailFolders/{folder}/childFolders`.
pub(crate) async fn create_child(
    AxState(state): AxState<Arc<State>>,
    Path((upn, folder)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    create(&state, &upn, Some(&folder), &headers, &body)
}
