//! File attachments of an existing message (outlook-large-attachments,
//! attachment-createuploadsession): `POST …/attachments` with `contentBytes` for files
//! under 3 MB, and for 3–150 MB an upload session whose `uploadUrl` takes `PUT`s with
//! `Content-Range`, each under 4 MB, in order; the last one answers `201` with a
//! `Location`.
//!
//! Invariants: an upload session belongs to one item and stores nothing until its last
//! byte arrives; its URL carries its own token and refuses an `Authorization` header
//! (the docs say not to send one); ranges must start where the previous one ended and
//! name the size the session was created with; a session past its
//! `expirationDateTime` (or expired by a fault) answers `404 ErrorItemNotFound`, or
//! `401` when the fault says so, and is gone: the client must start a new one. An
//! attachment that would make the item larger than the max message size is refused
//! with `ErrorMessageSizeExceeded`, at `POST /attachments`, at `createUploadSession`
//! and again at the last chunk.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::graph_error::{GraphError, GraphResult, RequestCtx};
use super::graph_folders::json_object;
use super::graph_messages::limit_error;
use super::item::{Attachment, AttachmentKind};
use super::limits;
use super::pipeline::in_mailbox;
use super::state::{Mailbox, State};

/// Below this, attachments go inline; from it on, through an upload session.
const SMALL_LIMIT: usize = 3 * 1024 * 1024;
/// Largest attachment an upload session takes.
const SESSION_LIMIT: usize = 150 * 1024 * 1024;
/// Largest chunk one PUT may carry.
const CHUNK_LIMIT: usize = 4 * 1024 * 1024;

/// A pending upload.
#[derive(Clone, Debug)]
pub(crate) struct UploadSession {
    upn: String,
    item: String,
    /// Name, type and the bytes received so far.
    file: Attachment,
    size: usize,
    expires: tokio::time::Instant,
    /// An expired session answers `401` instead of `404` (a fault's choice).
    expired_status: Option<StatusCode>,
}

impl UploadSession {
    /// Makes the session expired now; its URL then answers `status`.
    pub(crate) fn expire(&mut self, status: StatusCode) {
        self.expires = tokio::time::Instant::now();
        self.expired_status = Some(status);
    }
}

fn attachment_json(a: &Attachment) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": a.id, "name": a.name, "contentType": a.content_type,
        "size": a.bytes.len(), "isInline": a.is_inline, "contentId": a.content_id,
    })
}

/// The item may grow by `bytes` (max message size, mailbox quota).
fn check_growth(
    mailbox: &Mailbox,
    item: &str,
    bytes: usize,
    state: &State,
) -> Result<(), GraphError> {
    let item = mailbox.item(item).ok_or_else(GraphError::item_not_found)?;
    limits::check_size(mailbox, item.total_size() + bytes, &state.config)
        .map_err(|e| limit_error(&e))?;
    if !mailbox.has_room(bytes, state.config.mailbox_quota_bytes) {
        return Err(GraphError::quota_exceeded());
    }
    Ok(())
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Reads a `fileAttachment` object (its id is left empty for the caller to assign);
/// files of 3 MB or more must go through an upload session.
pub(crate) fn file_attachment(map: &Map<String, Value>) -> Result<Attachment, GraphError> {
    if map.get("@odata.type").and_then(Value::as_str) != Some("#microsoft.graph.fileAttachment") {
        return Err(GraphError::bad_request(
            "BadRequest",
            "The emulator takes only \"@odata.type\": \"#microsoft.graph.fileAttachment\".",
        ));
    }
    let bytes = text(map, "contentBytes")
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or_else(|| GraphError::bad_request("BadRequest", "contentBytes must be base64."))?;
    if bytes.len() >= SMALL_LIMIT {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Attachments of 3 MB or more need an upload session (createUploadSession).",
        ));
    }
    Ok(Attachment {
        bytes,
        ..described(map)
    })
}

/// An attachment with the name, type, inline flag and content id `map` gives, no id
/// and no bytes.
fn described(map: &Map<String, Value>) -> Attachment {
    Attachment {
        is_inline: map
            .get("isInline")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        content_id: text(map, "contentId"),
        kind: AttachmentKind::File,
        ..Attachment::file(
            &text(map, "name").unwrap_or_default(),
            &text(map, "contentType").unwrap_or_else(|| "application/octet-stream".to_owned()),
            Vec::new(),
        )
    }
}

/// `POST /users/{upn}/messages/{id}/attachments`.
pub(crate) async fn add(
    AxState(state): AxState<Arc<State>>,
    Path((upn, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    let map = json_object(&headers, &body)?;
    let mut attachment = file_attachment(&map)?;
    let body = in_mailbox(&state, &upn, |mailbox, ids| {
        check_growth(mailbox, &id, attachment.bytes.len(), &state)?;
        let item = mailbox
            .item_mut(&id)
            .ok_or_else(GraphError::item_not_found)?;
        attachment.id = ids.item();
        let json = attachment_json(&attachment);
        item.attachments.push(attachment);
        Ok(json)
    })?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /users/{upn}/messages/{id}/attachments/createUploadSession`.
pub(crate) async fn create_session(
    AxState(state): AxState<Arc<State>>,
    Path((upn, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    let map = json_object(&headers, &body)?;
    let item = map
        .get("AttachmentItem")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            GraphError::bad_request("BadRequest", "createUploadSession needs an AttachmentItem.")
        })?;
    if item.get("attachmentType").and_then(Value::as_str) != Some("file") {
        return Err(GraphError::bad_request(
            "BadRequest",
            "AttachmentItem.attachmentType must be \"file\".",
        ));
    }
    let size = item
        .get("size")
        .and_then(Value::as_u64)
        .and_then(|s| usize::try_from(s).ok())
        .unwrap_or(0);
    if size < state.config.upload_session_min_bytes {
        return Err(GraphError::bad_request(
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            format!(
                "Attachment size should not be less than {} bytes; post it to /attachments instead.",
                state.config.upload_session_min_bytes
            ),
        ));
    }
    if size > SESSION_LIMIT {
        return Err(GraphError::bad_request(
            "ErrorAttachmentSizeLimitExceeded",
            "Attachments are limited to 150 MB.",
        ));
    }
    let session = UploadSession {
        upn: upn.clone(),
        item: id.clone(),
        file: described(item),
        size,
        expires: tokio::time::Instant::now() + state.config.upload_session_lifetime,
        expired_status: None,
    };
    let token = format!("{:032x}", rand::random::<u128>());
    in_mailbox(&state, &upn, |mailbox, _| {
        check_growth(mailbox, &id, size, &state)
    })?;
    state.with(|inner| inner.uploads.insert(token.clone(), session));
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "uploadUrl": format!("{}/upload/{token}?authtoken={token}", state.base_url),
            "expirationDateTime": expiry(&state),
            "nextExpectedRanges": ["0-"],
        })),
    )
        .into_response())
}

fn expiry(state: &State) -> String {
    let lifetime = chrono::Duration::from_std(state.config.upload_session_lifetime)
        .unwrap_or(chrono::Duration::hours(6));
    (Utc::now() + lifetime).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses `bytes start-end/total`.
fn content_range(headers: &HeaderMap) -> Option<(usize, usize, usize)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?, total.parse().ok()?))
}

/// `PUT /upload/{session}`: one chunk.
pub(crate) async fn put_chunk(
    AxState(state): AxState<Arc<State>>,
    Path(token): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = RequestCtx::new(None);
    let mut response = match chunk(&state, &token, &uri, &headers, &body) {
        Ok(response) => response,
        Err(err) => err.render(&ctx),
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("request-id", v);
    }
    response
}

fn chunk(state: &State, token: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> GraphResult {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Do not send an Authorization header to an uploadUrl; it carries its own token.",
        ));
    }
    if uri.query() != Some(&format!("authtoken={token}")) {
        return Err(GraphError::item_not_found());
    }
    let invalid =
        |why: String| GraphError::new(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange", why);
    let (start, end, total) = content_range(headers)
        .ok_or_else(|| invalid("Content-Range must be 'bytes start-end/total'.".to_owned()))?;
    if body.len() > CHUNK_LIMIT {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Chunks must be under 4 MB.",
        ));
    }
    let mut session = state
        .with(|inner| inner.uploads.get(token).cloned())
        .ok_or_else(GraphError::item_not_found)?;
    if tokio::time::Instant::now() >= session.expires {
        state.with(|inner| inner.uploads.remove(token));
        return Err(match session.expired_status {
            Some(StatusCode::UNAUTHORIZED) => GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The upload session's token has expired; create a new upload session.",
            ),
            _ => GraphError::item_not_found(),
        });
    }
    let next = session.file.bytes.len();
    if start != next
        || end < start
        || end - start + 1 != body.len()
        || total != session.size
        || end >= total
    {
        return Err(invalid(format!(
            "Expected bytes {next}-…/{} with as many bytes as the range names, got {start}-{end}/{total} with {} bytes.",
            session.size,
            body.len()
        )));
    }
    session.file.bytes.extend_from_slice(body);
    if session.file.bytes.len() < session.size {
        let next = session.file.bytes.len();
        state.with(|inner| inner.uploads.insert(token.to_owned(), session));
        let body = json!({"expirationDateTime": expiry(state), "nextExpectedRanges": [format!("{next}-")]});
        return Ok(Json(body).into_response());
    }
    let location = in_mailbox(state, &session.upn, |mailbox, ids| {
        check_growth(mailbox, &session.item, session.file.bytes.len(), state)?;
        let item = mailbox
            .item_mut(&session.item)
            .ok_or_else(GraphError::item_not_found)?;
        let id = ids.item();
        let file = std::mem::replace(&mut session.file, described(&Map::new()));
        item.attachments.push(Attachment {
            id: id.clone(),
            ..file
        });
        Ok(format!(
            "{}/v1.0/users('{}')/messages('{}')/attachments('{id}')",
            state.base_url, session.upn, session.item
        ))
    })?;
    state.with(|inner| inner.uploads.remove(token));
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}
