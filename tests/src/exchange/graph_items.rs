//! Graph's read side of messages and what changes an existing one: list (with
//! `$filter` on `internetMessageId`, `$select`, `$expand`, paging), get, `$value` (the
//! MIME of MIME-created items), attachments (list, get, `$value`), PATCH, move and
//! DELETE.
//!
//! Not modelled: `$value` of JSON-created items (Exchange would write MIME from the
//! properties; the emulator answers `400` rather than invent it).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;

use super::graph_error::{GraphError, GraphResult};
use super::graph_folders::{json_object, resolve};
use super::graph_messages::{context, limit_error};
use super::graph_read::{self, Shape, message, shape};
use super::item::AttachmentKind;
use super::limits;
use super::message_json::patched;
use super::odata;
use super::pipeline::in_mailbox;
use super::state::{Mailbox, State};

type Pairs = Query<Vec<(String, String)>>;

fn list(
    state: &State,
    upn: &str,
    folder: Option<&str>,
    uri: &Uri,
    pairs: Vec<(String, String)>,
) -> GraphResult {
    let shape = shape(&pairs)?;
    let q = odata::parse(pairs, &["internetMessageId"])?;
    let ctx = context(state, uri, upn, false);
    let values = in_mailbox(state, upn, |mailbox, _| {
        let folder = folder
            .map(|f| resolve(mailbox, f).map(|f| f.id.clone()))
            .transpose()?;
        Ok(mailbox
            .items
            .iter()
            .filter(|i| folder.as_ref().is_none_or(|f| i.folder == *f))
            .filter(|i| {
                q.filter
                    .as_ref()
                    .is_none_or(|f| i.internet_message_id.as_deref() == Some(f.value.as_str()))
            })
            .map(|i| message(i, &shape, ""))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(odata::page(
        &state.base_url,
        uri,
        &q,
        state.config.page_size,
        values,
        &ctx,
    ))
    .into_response())
}

/// `GET /users/{upn}/mailFolders/{folder}/messages`.
pub(crate) async fn list_in_folder(
    AxState(state): AxState<Arc<State>>,
    Path((upn, folder)): Path<(String, String)>,
    uri: Uri,
    Query(pairs): Pairs,
) -> GraphResult {
    list(&state, &upn, Some(&folder), &uri, pairs)
}

/// `GET /users/{upn}/messages` (every folder).
pub(crate) async fn list_all(
    AxState(state): AxState<Arc<State>>,
    Path(upn): Path<String>,
    uri: Uri,
    Query(pairs): Pairs,
) -> GraphResult {
    list(&state, &upn, None, &uri, pairs)
}

/// `upn`, `id` and, under `/mailFolders/{folder}/messages/{id}`, `folder`.
fn item_path(params: &HashMap<String, String>) -> (String, String, Option<&str>) {
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    (
        get("upn"),
        get("id"),
        params.get("folder").map(String::as_str),
    )
}

/// Under a folder path, the item must be in that folder.
fn check_folder(mailbox: &Mailbox, id: &str, folder: Option<&str>) -> Result<(), GraphError> {
    if let Some(folder) = folder {
        let folder = resolve(mailbox, folder)?.id.clone();
        if mailbox.item(id).is_some_and(|i| i.folder != folder) {
            return Err(GraphError::item_not_found());
        }
    }
    Ok(())
}

/// `GET /users/{upn}/messages/{id}` (or under `/mailFolders/{folder}`).
pub(crate) async fn get_message(
    AxState(state): AxState<Arc<State>>,
    Path(params): Path<HashMap<String, String>>,
    uri: Uri,
    Query(pairs): Pairs,
) -> GraphResult {
    let (upn, id, folder) = item_path(&params);
    let shape = shape(&pairs)?;
    odata::parse(pairs, &[])?;
    let ctx = context(&state, &uri, &upn, true);
    let body = in_mailbox(&state, &upn, |mailbox, _| {
        check_folder(mailbox, &id, folder)?;
        mailbox
            .item(&id)
            .map(|i| message(i, &shape, &ctx))
            .ok_or_else(GraphError::item_not_found)
    })?;
    Ok(Json(body).into_response())
}

/// `DELETE /users/{upn}/messages/{id}`: moves the item to Deleted Items (a soft
/// delete; `permanentDelete` is the hard one), `204`.
pub(crate) async fn delete_message(
    AxState(state): AxState<Arc<State>>,
    Path(params): Path<HashMap<String, String>>,
) -> GraphResult {
    let (upn, id, folder) = item_path(&params);
    in_mailbox(&state, &upn, |mailbox, _| {
        check_folder(mailbox, &id, folder)?;
        let deleted = mailbox.well_known("deleteditems").id.clone();
        let item = mailbox
            .item_mut(&id)
            .ok_or_else(GraphError::item_not_found)?;
        item.folder = deleted;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /users/{upn}/messages/{id}/$value`: the MIME as uploaded.
pub(crate) async fn get_mime(
    AxState(state): AxState<Arc<State>>,
    Path((upn, id)): Path<(String, String)>,
) -> GraphResult {
    let mime = in_mailbox(&state, &upn, |mailbox, _| {
        let item = mailbox.item(&id).ok_or_else(GraphError::item_not_found)?;
        item.mime.clone().ok_or_else(|| {
            GraphError::bad_request(
                "BadRequest",
                "The emulator does not write MIME for items created from JSON (Exchange would).",
            )
        })
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("message/rfc822"),
        )],
        mime,
    )
        .into_response())
}

/// `PATCH /users/{upn}/messages/{id}`.
pub(crate) async fn patch_message(
    AxState(state): AxState<Arc<State>>,
    Path(params): Path<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    let (upn, id, folder) = item_path(&params);
    let map = json_object(&headers, &body)?;
    let ctx = context(&state, &uri, &upn, true);
    let config = &state.config;
    let body = in_mailbox(&state, &upn, |mailbox, _| {
        check_folder(mailbox, &id, folder)?;
        let item = mailbox.item(&id).ok_or_else(GraphError::item_not_found)?;
        let (next, definitions) = patched(item, &map)?;
        limits::take_named(mailbox, definitions, config).map_err(|e| limit_error(&e))?;
        let json = message(&next, &Shape::default(), &ctx);
        if let Some(slot) = mailbox.item_mut(&id) {
            *slot = next;
        }
        Ok(json)
    })?;
    Ok(Json(body).into_response())
}

/// `POST /users/{upn}/messages/{id}/move`: `201` and, unless the request prefers
/// immutable ids, a new id (outlook-immutable-id).
pub(crate) async fn move_message(
    AxState(state): AxState<Arc<State>>,
    Path((upn, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    let map = json_object(&headers, &body)?;
    let destination = map
        .get("destinationId")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            GraphError::bad_request("ErrorInvalidIdMalformed", "destinationId is required.")
        })?
        .to_owned();
    let immutable = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.replace(' ', "").contains("IdType=\"ImmutableId\""));
    let ctx = context(&state, &uri, &upn, true);
    let body = in_mailbox(&state, &upn, |mailbox, ids| {
        let folder = resolve(mailbox, &destination)?.id.clone();
        let new_id = if immutable { id.clone() } else { ids.item() };
        let item = mailbox
            .item_mut(&id)
            .ok_or_else(GraphError::item_not_found)?;
        item.folder = folder;
        item.id = new_id;
        item.change_key += 1;
        Ok(message(item, &Shape::default(), &ctx))
    })?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /users/{upn}/messages/{id}/attachments`.
pub(crate) async fn list_attachments(
    AxState(state): AxState<Arc<State>>,
    Path((upn, id)): Path<(String, String)>,
    uri: Uri,
    Query(pairs): Pairs,
) -> GraphResult {
    let q = odata::parse(pairs, &[])?;
    let ctx = format!("{}#attachments", context(&state, &uri, &upn, false));
    let values = in_mailbox(&state, &upn, |mailbox, _| {
        let item = mailbox.item(&id).ok_or_else(GraphError::item_not_found)?;
        Ok(item
            .attachments
            .iter()
            .map(|a| graph_read::attachment(item, a))
            .collect::<Vec<_>>())
    })?;
    let page = odata::page(&state.base_url, &uri, &q, usize::MAX, values, &ctx);
    Ok(Json(page).into_response())
}

/// `GET /users/{upn}/messages/{id}/attachments/{attachment}`.
pub(crate) async fn get_attachment(
    AxState(state): AxState<Arc<State>>,
    Path((upn, id, attachment)): Path<(String, String, String)>,
) -> GraphResult {
    let body = in_mailbox(&state, &upn, |mailbox, _| {
        let item = mailbox.item(&id).ok_or_else(GraphError::item_not_found)?;
        item.attachments
            .iter()
            .find(|a| a.id == attachment)
            .map(|a| graph_read::attachment(item, a))
            .ok_or_else(GraphError::item_not_found)
    })?;
    Ok(Json(body).into_response())
}

/// `GET /users/{upn}/messages/{id}/attachments/{attachment}/$value`: the file's bytes,
/// or an item attachment's MIME.
pub(crate) async fn get_attachment_value(
    AxState(state): AxState<Arc<State>>,
    Path((upn, id, attachment)): Path<(String, String, String)>,
) -> GraphResult {
    let (content_type, bytes) = in_mailbox(&state, &upn, |mailbox, _| {
        let item = mailbox.item(&id).ok_or_else(GraphError::item_not_found)?;
        let a = item
            .attachments
            .iter()
            .find(|a| a.id == attachment)
            .ok_or_else(GraphError::item_not_found)?;
        let content_type = match a.kind {
            AttachmentKind::Item => "message/rfc822".to_owned(),
            AttachmentKind::File => a.content_type.clone(),
        };
        Ok((content_type, a.bytes.clone()))
    })?;
    let content_type = HeaderValue::from_str(&content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}
