//! Graph message creation: from MIME (v1.0, always a draft in Drafts), beta
//! `importMime` (non-draft in the named folder) and JSON; every path meets the same
//! limits ([`super::limits`]) before anything is stored. Reading, PATCH and move are
//! in [`super::graph_items`].
//!
//! MIME is promoted to properties by [`super::mime_read`], Exchange's way, not the
//! client's.
//!
//! Strictness: MIME bodies must be `text/plain` standard base64 with padding and no
//! whitespace (`400 ErrorMimeContentInvalidBase64String`); MIME to
//! `/mailFolders/{id}/messages` is `400 UnableToDeserializePostBody` unless the config
//! says otherwise; `importMime` needs the `Mail-Advanced.ReadWrite.All` role.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::graph_error::{GraphError, GraphResult};
use super::graph_folders::{json_object, resolve};
use super::graph_read::{Shape, message};
use super::item::Item;
use super::limits::{self, LimitError};
use super::message_json::parse_create;
use super::mime_read::{self, Promoted};
use super::pipeline::{Roles, in_mailbox};
use super::state::{Origin, State};

/// The Graph error for a limit.
pub(crate) fn limit_error(e: &LimitError) -> GraphError {
    let status = match e {
        LimitError::NamedProperties => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    GraphError::new(status, e.code(), e.message())
}

/// The role `importMime` requires of an app-only token (mailfolder-importmime).
const IMPORT_ROLE: &str = "Mail-Advanced.ReadWrite.All";

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

/// A decoded MIME upload, promoted as Exchange would.
pub(crate) fn decode_mime(body: &[u8]) -> Result<(Vec<u8>, Promoted), GraphError> {
    let raw = STANDARD.decode(body).map_err(|_| {
        GraphError::bad_request(
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        )
    })?;
    let promoted = mime_read::promote(&raw).map_err(|why| {
        GraphError::bad_request(
            "ErrorMimeContentInvalid",
            format!("The MIME content is not a valid message: {why}."),
        )
    })?;
    Ok((raw, promoted))
}

/// Fills `item` from a promoted MIME message.
pub(crate) fn fill_from_mime(item: &mut Item, raw: Vec<u8>, p: Promoted) {
    item.sent = p.sent;
    item.internet_message_id = p.message_id;
    item.subject = p.subject;
    item.people = p.people;
    item.importance = p.importance;
    item.body = p.body;
    item.headers = p.headers;
    item.transport_headers = Some(p.transport_headers);
    item.item_class = p.item_class;
    item.attachments = p.attachments;
    item.size = raw.len();
    item.mime = Some(raw);
}

/// What an item needs of the limits before it is stored.
pub(crate) struct Needs {
    pub(crate) size: usize,
    pub(crate) header_bytes: usize,
    pub(crate) definitions: Vec<(String, bool)>,
}

pub(crate) fn context(state: &State, uri: &Uri, upn: &str, entity: bool) -> String {
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

/// Stores an item built by `fill` in `folder` (`None` = Drafts) after the limits,
/// and answers 201.
fn store(
    state: &State,
    upn: &str,
    uri: &Uri,
    folder: Option<&str>,
    origin: Origin,
    needs: Needs,
    fill: impl FnOnce(&mut Item),
) -> GraphResult {
    let ctx = context(state, uri, upn, true);
    let config = &state.config;
    let body = in_mailbox(state, upn, |mailbox, ids| {
        let folder = match folder {
            Some(f) => resolve(mailbox, f)?.id.clone(),
            None => mailbox.well_known("drafts").id.clone(),
        };
        limits::check_headers(needs.header_bytes, config).map_err(|e| limit_error(&e))?;
        limits::check_size(mailbox, needs.size, config).map_err(|e| limit_error(&e))?;
        if !mailbox.has_room(needs.size, config.mailbox_quota_bytes) {
            return Err(GraphError::quota_exceeded());
        }
        limits::take_named(mailbox, needs.definitions, config).map_err(|e| limit_error(&e))?;
        let mut item = Item::new(ids.item(), folder, origin, needs.size);
        fill(&mut item);
        for attachment in &mut item.attachments {
            attachment.id = ids.item();
        }
        let json = message(&item, &Shape::default(), &ctx);
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
    let (raw, promoted) = decode_mime(body)?;
    let draft = origin != Origin::GraphImportMime;
    let needs = Needs {
        size: raw.len(),
        header_bytes: promoted.header_bytes,
        definitions: limits::mime_header_definitions(&promoted.headers, &state.config),
    };
    store(state, upn, uri, folder, origin, needs, |item| {
        // v1.0 MIME creates drafts that read as read (user-post-messages sample);
        // importMime items appear "as if delivered": unread [U], received now [U].
        item.is_draft = draft;
        item.is_read = draft;
        fill_from_mime(item, raw, promoted);
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
    let attached: usize = new.attachments.iter().map(|a| a.bytes.len()).sum();
    let needs = Needs {
        // The item is its JSON less the base64 of its attachments, plus their bytes.
        size: body.len().saturating_sub(attached * 4 / 3) + attached,
        header_bytes: new.header_bytes(),
        definitions: new.definitions(),
    };
    store(state, upn, uri, folder, Origin::GraphJson, needs, |item| {
        item.size = body.len().saturating_sub(attached * 4 / 3);
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
        item.people = new.people;
        item.headers = new.headers;
        item.extended = new.extended;
        item.attachments = new.attachments;
    })
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
