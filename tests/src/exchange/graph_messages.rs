//! Graph messages: create from MIME (v1.0, always a draft in Drafts), beta `importMime`
//! (non-draft in the named folder), JSON create, list with `$filter` on
//! `internetMessageId`, get, `$value`, PATCH and move.
//!
//! Strictness: MIME bodies must be `text/plain` standard base64 with padding and no
//! whitespace (`400 ErrorMimeContentInvalidBase64String`); MIME to
//! `/mailFolders/{id}/messages` is `400 UnableToDeserializePostBody` unless the config
//! says otherwise; `importMime` needs the `Mail-Advanced.ReadWrite.All` role.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::{Json, http::HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

use super::graph_error::{GraphError, GraphResult};
use super::graph_folders::{json_object, resolve};
use super::message_json::{apply_patch, message_json, parse_create};
use super::odata;
use super::pipeline::{Roles, in_mailbox};
use super::state::{FlagStatus, Item, Mailbox, Origin, State};

/// The role `importMime` requires of an app-only token (mailfolder-importmime).
const IMPORT_ROLE: &str = "Mail-Advanced.ReadWrite.All";

type Pairs = Query<Vec<(String, String)>>;

/// What the body of a create is, by `Content-Type`.
enum BodyKind {
    Mime,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, GraphError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/plain" => Ok(BodyKind::Mime),
        "application/json" => Ok(BodyKind::Json),
        _ => Err(GraphError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "Content-Type '{ct}' is not supported; send text/plain (base64 MIME) or application/json."
            ),
        )),
    }
}

/// A decoded MIME upload and what Exchange reads from its headers.
struct Mime {
    raw: Vec<u8>,
    sent: Option<DateTime<Utc>>,
    internet_message_id: Option<String>,
    subject: Option<String>,
}

fn decode_mime(body: &[u8]) -> Result<Mime, GraphError> {
    let raw = STANDARD.decode(body).map_err(|_| {
        GraphError::bad_request(
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        )
    })?;
    let invalid = || {
        GraphError::bad_request(
            "ErrorMimeContentInvalid",
            "The MIME content is not a valid message.",
        )
    };
    if raw.is_empty() {
        return Err(invalid());
    }
    let message = MessageParser::default().parse(&raw).ok_or_else(invalid)?;
    let sent = message
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
    let internet_message_id = message.message_id().map(|id| format!("<{id}>"));
    let subject = message.subject().map(str::to_owned);
    Ok(Mime {
        raw,
        sent,
        internet_message_id,
        subject,
    })
}

fn new_item(id: String, folder: String, origin: Origin, size: usize) -> Item {
    let now = Utc::now();
    Item {
        id,
        change_key: 1,
        folder,
        origin,
        mime: None,
        is_draft: true,
        is_read: true,
        flag: FlagStatus::NotFlagged,
        categories: Vec::new(),
        importance: "normal".to_owned(),
        created: now,
        modified: now,
        received: now,
        sent: None,
        internet_message_id: None,
        subject: None,
        body: None,
        headers: Vec::new(),
        attachments: Vec::new(),
        size,
    }
}

fn context(state: &State, uri: &Uri, upn: &str, entity: bool) -> String {
    let version = if uri.path().starts_with("/beta/") {
        "beta"
    } else {
        "v1.0"
    };
    let suffix = if entity { "/$entity" } else { "" };
    format!(
        "{}/{version}/$metadata#users('{upn}')/messages{suffix}",
        state.base_url
    )
}

/// Stores an item built by `fill` in `folder` (`None` = Drafts) and answers 201.
fn store(
    state: &State,
    upn: &str,
    uri: &Uri,
    folder: Option<&str>,
    origin: Origin,
    size: usize,
    fill: impl FnOnce(&mut Item),
) -> GraphResult {
    let ctx = context(state, uri, upn, true);
    let body = in_mailbox(state, upn, |mailbox, ids| {
        let folder = match folder {
            Some(f) => resolve(mailbox, f)?.id.clone(),
            None => mailbox.well_known("drafts").id.clone(),
        };
        if !mailbox.has_room(size, state.config.mailbox_quota_bytes) {
            return Err(GraphError::quota_exceeded());
        }
        let mut item = new_item(ids.item(), folder, origin, size);
        fill(&mut item);
        for attachment in &mut item.attachments {
            attachment.id = ids.item();
        }
        let json = message_json(&item, &ctx);
        mailbox.items.push(item);
        Ok(json)
    })?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn create_mime(
    state: &State,
    upn: &str,
    uri: &Uri,
    folder: Option<&str>,
    body: &[u8],
    origin: Origin,
) -> GraphResult {
    let mime = decode_mime(body)?;
    let draft = origin != Origin::GraphImportMime;
    store(state, upn, uri, folder, origin, mime.raw.len(), |item| {
        // v1.0 MIME creates drafts that read as read (user-post-messages sample);
        // importMime items appear "as if delivered": unread [U], received now [U].
        item.is_draft = draft;
        item.is_read = draft;
        item.sent = mime.sent;
        item.internet_message_id = mime.internet_message_id;
        item.subject = mime.subject;
        item.mime = Some(mime.raw);
    })
}

fn create_json(
    state: &State,
    upn: &str,
    uri: &Uri,
    folder: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> GraphResult {
    let new = parse_create(&json_object(headers, body)?)?;
    store(
        state,
        upn,
        uri,
        folder,
        Origin::GraphJson,
        body.len(),
        |item| {
            item.is_draft = new.is_draft;
            item.is_read = new.is_read;
            item.flag = new.flag;
            item.categories = new.categories;
            item.importance = new.importance;
            if let Some(t) = new.received {
                item.received = t;
            }
            item.sent = new.sent.or(Some(item.created));
            item.internet_message_id = new.internet_message_id;
            item.subject = new.subject;
            item.body = new.body;
            item.headers = new.headers;
            item.attachments = new.attachments;
        },
    )
}

/// `POST /users/{upn}/messages`: MIME or JSON, into Drafts.
pub(crate) async fn create_in_drafts(
    AxState(state): AxState<Arc<State>>,
    Path(upn): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    match body_kind(&headers)? {
        BodyKind::Mime => create_mime(&state, &upn, &uri, None, &body, Origin::GraphMime),
        BodyKind::Json => create_json(&state, &upn, &uri, None, &headers, &body),
    }
}

/// `POST /users/{upn}/mailFolders/{folder}/messages`: JSON into the folder; MIME fails.
pub(crate) async fn create_in_folder(
    AxState(state): AxState<Arc<State>>,
    Path((upn, folder)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    match body_kind(&headers)? {
        BodyKind::Mime if state.config.mime_to_folder_fails => Err(GraphError::bad_request(
            "UnableToDeserializePostBody",
            "were unable to deserialize ",
        )),
        BodyKind::Mime => create_mime(&state, &upn, &uri, Some(&folder), &body, Origin::GraphMime),
        BodyKind::Json => create_json(&state, &upn, &uri, Some(&folder), &headers, &body),
    }
}

/// `POST /beta/users/{upn}/mailFolders/{folder}/importMime`.
pub(crate) async fn import_mime(
    AxState(state): AxState<Arc<State>>,
    Path((upn, folder)): Path<(String, String)>,
    Extension(Roles(roles)): Extension<Roles>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    if !roles.iter().any(|r| r == IMPORT_ROLE) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    match body_kind(&headers)? {
        BodyKind::Mime => create_mime(
            &state,
            &upn,
            &uri,
            Some(&folder),
            &body,
            Origin::GraphImportMime,
        ),
        BodyKind::Json => Err(GraphError::bad_request(
            "BadRequest",
            "importMime takes base64 MIME as text/plain.",
        )),
    }
}

fn list(
    state: &State,
    upn: &str,
    folder: Option<&str>,
    uri: &Uri,
    pairs: Vec<(String, String)>,
) -> GraphResult {
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
            .map(|i| {
                let mut v = message_json(i, "");
                if let Some(o) = v.as_object_mut() {
                    o.remove("@odata.context");
                }
                v
            })
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
) -> GraphResult {
    let (upn, id, folder) = item_path(&params);
    let ctx = context(&state, &uri, &upn, true);
    let body = in_mailbox(&state, &upn, |mailbox, _| {
        check_folder(mailbox, &id, folder)?;
        mailbox
            .item(&id)
            .map(|i| message_json(i, &ctx))
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
                "The emulator keeps no MIME for items created from JSON.",
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
    let body = in_mailbox(&state, &upn, |mailbox, _| {
        check_folder(mailbox, &id, folder)?;
        let item = mailbox
            .item_mut(&id)
            .ok_or_else(GraphError::item_not_found)?;
        apply_patch(item, &map)?;
        Ok(message_json(item, &ctx))
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
        Ok(message_json(item, &ctx))
    })?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
