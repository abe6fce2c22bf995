//! The JSON path ([`super::UploadPath::JsonCreate`]) for messages of any size Graph
//! takes (outlook-large-attachments, research §1.2 b, §4): one create when the whole
//! message fits in Graph's 4 MB request; otherwise a create with the body and the
//! attachments that fit, then each other attachment on its own: under 3 MB with
//! `POST …/messages/{id}/attachments`, 3–150 MB through an upload session in `PUT`s of
//! under 4 MB to its `uploadUrl` (which carries its own token: no `Authorization`).
//!
//! Invariants:
//! - Everything is planned before anything is sent ([`plan`]): a body over 4 MB on
//!   its own, an attachment over 150 MB, or one no request shape can carry is refused
//!   as permanent with the limit named, and nothing is created.
//! - An item that takes more than one request is created with the category
//!   [`INCOMPLETE`], which a last `PATCH` replaces with its real categories, so a
//!   create that was committed but answered with an error (a `503` after the write) is
//!   seen as unfinished by [`GraphClient::find_by_message_id`].
//! - When a step after the create fails, the half-made item is deleted before the
//!   error is returned, and the error says so (or that the delete failed too).

use super::client::Body;
use super::error::{SERVICE, refused};
use super::message::{ImportItem, item_id};
use super::message_json::{Converted, FileAttachment};
use super::{Api, GraphClient, REQUEST_LIMIT};
use crate::error::ConnectorError;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};

/// Attachments under this size may go with `POST …/attachments` (or in the create);
/// from it on they need an upload session.
pub const SMALL_ATTACHMENT_LIMIT: usize = 3 * 1024 * 1024;

/// Graph's limit on one attachment (an upload session's largest file).
pub const ATTACHMENT_LIMIT: usize = 150 * 1024 * 1024;

/// Bytes per upload-session `PUT`: under the documented 4 MB, and a multiple of
/// 320 KiB as Microsoft's upload sessions elsewhere require.
pub const UPLOAD_CHUNK: usize = 12 * 320 * 1024;

/// The category an item carries until its last attachment is in.
pub(super) const INCOMPLETE: &str = "mailhaul: import incomplete";

/// What `,"attachments":[]` adds to a create body.
const ATTACHMENTS_OVERHEAD: usize = r#","attachments":[]"#.len();

/// How one attachment gets into the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// In the create body.
    InCreate,
    /// `POST …/messages/{id}/attachments` after the create.
    Post,
    /// `createUploadSession` and `PUT`s after the create.
    Session,
}

/// The sizes [`plan`] decides by.
#[derive(Debug, Clone, Copy)]
struct Sizes<'a> {
    name: &'a str,
    /// Decoded bytes.
    raw: usize,
    /// As a `fileAttachment` JSON object.
    json: usize,
}

/// The route of each attachment (in their order) for a create body of `body_len`
/// bytes without attachments. Smaller attachments are packed into the create first,
/// which leaves the fewest requests.
///
/// # Errors
/// Why no Graph path can take the message.
fn plan(body_len: usize, attachments: &[Sizes<'_>]) -> Result<Vec<Route>, String> {
    const ELSEWHERE: &str = "no Graph path can take this message (migrate it over EWS or IMAP)";
    if body_len > REQUEST_LIMIT {
        return Err(format!(
            "the message without its attachments is {body_len} bytes as JSON, over Graph's 4 MB \
             request limit ({REQUEST_LIMIT} bytes), and a body cannot be uploaded in parts; \
             {ELSEWHERE}"
        ));
    }
    let mut routes = vec![Route::Post; attachments.len()];
    for (route, a) in routes.iter_mut().zip(attachments) {
        if a.raw > ATTACHMENT_LIMIT {
            return Err(format!(
                "attachment {:?} is {} bytes, over Graph's 150 MB attachment limit \
                 ({ATTACHMENT_LIMIT} bytes); {ELSEWHERE}",
                a.name, a.raw
            ));
        }
        if a.raw >= SMALL_ATTACHMENT_LIMIT {
            *route = Route::Session;
        } else if a.json > REQUEST_LIMIT {
            return Err(format!(
                "attachment {:?} is {} bytes: under the 3 MB an upload session needs, yet \
                 {} bytes as JSON, over Graph's 4 MB request limit; {ELSEWHERE}",
                a.name, a.raw, a.json
            ));
        }
    }
    let mut by_size: Vec<usize> = (0..attachments.len())
        .filter(|&i| routes[i] == Route::Post)
        .collect();
    by_size.sort_by_key(|&i| attachments[i].json);
    let mut used = body_len + ATTACHMENTS_OVERHEAD;
    for i in by_size {
        // One comma per entry: a byte more than needed for the first.
        let cost = attachments[i].json + 1;
        if used + cost > REQUEST_LIMIT {
            break;
        }
        used += cost;
        routes[i] = Route::InCreate;
    }
    Ok(routes)
}

/// Adds the item's state to a create body; its extended properties (replied or
/// forwarded) join the body's own.
fn merge_state(body: &mut Map<String, Value>, state: Map<String, Value>) {
    for (key, value) in state {
        match (body.get_mut(&key), value) {
            (Some(Value::Array(mine)), Value::Array(more)) => mine.extend(more),
            (_, value) => {
                body.insert(key, value);
            }
        }
    }
}

/// Sets `categories` in a create body, with [`INCOMPLETE`] added when `incomplete`.
fn set_categories(body: &mut Map<String, Value>, categories: &[Value], incomplete: bool) {
    let mut all = categories.to_vec();
    if incomplete {
        all.push(json!(INCOMPLETE));
    }
    body.insert("categories".into(), Value::Array(all));
}

impl GraphClient {
    /// Creates `msg` (`converted`: its MIME as Graph JSON) in `folder_id` on the JSON path
    /// and returns the new item's id.
    pub(super) async fn create_json(
        &self,
        upn: &str,
        folder_id: &str,
        msg: &ImportItem<'_>,
        converted: Converted,
    ) -> Result<String, ConnectorError> {
        const OP: &str = "create message";
        let Converted {
            mut body,
            attachments,
            ..
        } = converted;
        let state = msg.state(&self.options.categories);
        let categories = match state.get("categories") {
            Some(Value::Array(c)) => c.clone(),
            _ => Vec::new(),
        };
        merge_state(&mut body, state);
        // Planned with the marker in place (a few bytes), so the body fits either way.
        set_categories(&mut body, &categories, true);
        let body_len = Value::Object(body.clone()).to_string().len();
        let sizes: Vec<Sizes<'_>> = attachments
            .iter()
            .map(|a| Sizes {
                name: &a.name,
                raw: a.bytes.len(),
                json: a.json_len(),
            })
            .collect();
        let routes = plan(body_len, &sizes).map_err(|why| refused(OP, why))?;
        let later: Vec<(&FileAttachment, Route)> = attachments
            .iter()
            .zip(routes.iter().copied())
            .filter(|(_, r)| *r != Route::InCreate)
            .collect();
        if later.is_empty() {
            set_categories(&mut body, &categories, false);
        }
        let in_create: Vec<Value> = attachments
            .iter()
            .zip(&routes)
            .filter(|(_, r)| **r == Route::InCreate)
            .map(|(a, _)| a.json())
            .collect();
        if !in_create.is_empty() {
            body.insert("attachments".into(), Value::Array(in_create));
        }
        let body = Body::json(&Value::Object(body));
        if body.len() > REQUEST_LIMIT {
            // `plan` keeps to the limit; this guards its arithmetic.
            return Err(refused(
                OP,
                format!(
                    "the create body came to {} bytes, over Graph's 4 MB request limit \
                     (a mailhaul bug: please report it)",
                    body.len()
                ),
            ));
        }
        let url = self.url(Api::V1, upn, &["mailFolders", folder_id, "messages"]);
        let created = self.call(OP, upn, Method::POST, url, body).await?;
        let id = item_id(OP, &created)?;
        if later.is_empty() {
            return Ok(id);
        }
        match self.finish(upn, &id, &later, categories).await {
            Ok(()) => Ok(id),
            Err(cause) => Err(self.abandon(upn, &id, cause).await),
        }
    }

    /// Adds the attachments that did not fit in the create, then replaces the
    /// [`INCOMPLETE`] marker with the item's categories.
    async fn finish(
        &self,
        upn: &str,
        id: &str,
        later: &[(&FileAttachment, Route)],
        categories: Vec<Value>,
    ) -> Result<(), ConnectorError> {
        for (attachment, route) in later {
            match route {
                Route::Session => self.upload_attachment(upn, id, attachment).await?,
                Route::Post | Route::InCreate => {
                    let url = self.url(Api::V1, upn, &["messages", id, "attachments"]);
                    let body = Body::json(&attachment.json());
                    self.call("add attachment", upn, Method::POST, url, body)
                        .await?;
                }
            }
        }
        let url = self.url(Api::V1, upn, &["messages", id]);
        let body = Body::json(&json!({ "categories": categories }));
        self.call("set message state", upn, Method::PATCH, url, body)
            .await?;
        Ok(())
    }

    /// One attachment of 3–150 MB through an upload session (attachment-createuploadsession).
    async fn upload_attachment(
        &self,
        upn: &str,
        id: &str,
        attachment: &FileAttachment,
    ) -> Result<(), ConnectorError> {
        const OP: &str = "upload attachment";
        let url = self.url(
            Api::V1,
            upn,
            &["messages", id, "attachments", "createUploadSession"],
        );
        let body = Body::json(&json!({ "AttachmentItem": attachment.upload_item() }));
        let session = self
            .call("create upload session", upn, Method::POST, url, body)
            .await?;
        let upload_url = session
            .get("uploadUrl")
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| {
                ConnectorError::Protocol(format!(
                    "graph createUploadSession answered without a usable uploadUrl: {session}"
                ))
            })?;
        let total = attachment.bytes.len();
        let mut start = 0;
        for chunk in attachment.bytes.chunks(UPLOAD_CHUNK) {
            let end = start + chunk.len() - 1;
            // No Authorization header: the URL carries its own token, and Graph refuses
            // one that also has a bearer token.
            let request = self
                .http
                .put(upload_url.clone())
                .header(
                    reqwest::header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{total}"),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(chunk.to_vec());
            let answer = self.exchange(OP, request, chunk.len()).await?;
            if !answer.status.is_success() {
                return Err(self.failure(OP, upn, &answer, false));
            }
            start = end + 1;
            let last = start == total;
            // The last PUT answers 201 Created (with the attachment's Location); the
            // others 200 with the next expected range.
            if last != (answer.status == StatusCode::CREATED) {
                return Err(ConnectorError::Protocol(format!(
                    "graph upload session answered {} after bytes {start} of {total} of \
                     attachment {:?}",
                    answer.status, attachment.name
                )));
            }
        }
        Ok(())
    }

    /// Deletes the half-made item `id` after `cause`, and says so in the error returned.
    async fn abandon(&self, upn: &str, id: &str, cause: ConnectorError) -> ConnectorError {
        let class = cause.class();
        let (op, said) = match &cause {
            ConnectorError::Service { op, text, .. } => (op.clone(), text.clone()),
            other => ("add attachments".to_owned(), chain(other)),
        };
        let after = match self.delete_message(upn, id).await {
            Ok(()) => format!(
                "the message had been created without all its attachments and was deleted \
                 again (item {id}), so a retry starts clean"
            ),
            Err(e) => format!(
                "the message had been created without all its attachments, and deleting it \
                 failed too ({}); item {id} stays in the folder with the category {INCOMPLETE:?} \
                 and a lookup by Message-ID reports it incomplete",
                chain(&e)
            ),
        };
        ConnectorError::Service {
            service: SERVICE,
            op,
            text: format!("{said}; {after}"),
            class,
        }
    }
}

/// An error and its sources, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1024 * 1024;

    fn sizes(raws: &[usize]) -> Vec<Sizes<'static>> {
        raws.iter()
            .map(|&raw| Sizes {
                name: "a.bin",
                raw,
                json: raw.div_ceil(3) * 4 + 150,
            })
            .collect()
    }

    #[test]
    fn attachments_are_routed_by_size() {
        use Route::*;
        let kb = 1024;
        for (body, raws, want) in [
            (1000, vec![], vec![]),
            (1000, vec![10 * kb, 20 * kb], vec![InCreate, InCreate]),
            // 2.5 MB each: one fits with the body, the other is posted.
            (1000, vec![5 * MB / 2, 5 * MB / 2], vec![InCreate, Post]),
            // The small ones are packed first, whatever their order.
            (
                700 * kb,
                vec![2 * MB + MB / 2, kb, kb],
                vec![Post, InCreate, InCreate],
            ),
            (1000, vec![2 * MB + MB / 2, kb, kb], vec![InCreate; 3]),
            (1000, vec![5 * MB], vec![Session]),
            (1000, vec![3 * MB], vec![Session]),
            (1000, vec![3 * MB - 1024, kb], vec![Post, InCreate]),
            (1000, vec![ATTACHMENT_LIMIT, kb], vec![Session, InCreate]),
            // A body that leaves no room: everything goes after the create.
            (REQUEST_LIMIT - 10, vec![kb], vec![Post]),
        ] {
            assert_eq!(plan(body, &sizes(&raws)), Ok(want), "{body} {raws:?}");
        }
    }

    #[test]
    fn what_no_path_takes_is_refused_with_the_limit() {
        for (body, raws, says) in [
            (REQUEST_LIMIT + 1, vec![], "4 MB request limit"),
            (
                1000,
                vec![MB, ATTACHMENT_LIMIT + 1],
                "150 MB attachment limit",
            ),
            // Just under 3 MB: too big for one POST once encoded, too small for a session.
            (
                1000,
                vec![SMALL_ATTACHMENT_LIMIT - 1],
                "upload session needs",
            ),
        ] {
            let err = plan(body, &sizes(&raws)).expect_err("refused");
            assert!(err.contains(says) && err.contains("EWS or IMAP"), "{err}");
        }
    }

    #[test]
    fn state_joins_the_create_body() {
        let mut body = Map::new();
        body.insert(
            "singleValueExtendedProperties".into(),
            json!([{"id": "Integer 0x0E07", "value": "1"}]),
        );
        let mut state = Map::new();
        state.insert("isRead".into(), json!(true));
        state.insert(
            "singleValueExtendedProperties".into(),
            json!([{"id": "Integer 0x1080", "value": "261"}]),
        );
        merge_state(&mut body, state);
        assert_eq!(
            Value::Object(body),
            json!({"isRead": true, "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "1"}, {"id": "Integer 0x1080", "value": "261"}]})
        );
    }

    #[test]
    fn the_marker_is_added_and_removed() {
        let mut body = Map::new();
        let categories = vec![json!("Red")];
        set_categories(&mut body, &categories, true);
        assert_eq!(body["categories"], json!(["Red", INCOMPLETE]));
        set_categories(&mut body, &categories, false);
        assert_eq!(body["categories"], json!(["Red"]));
    }

    #[test]
    fn chunks_stay_under_the_limit() {
        const { assert!(UPLOAD_CHUNK < 4 * 1000 * 1000 && UPLOAD_CHUNK.is_multiple_of(320 * 1024)) };
    }
}
