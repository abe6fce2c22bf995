//! Graph JSON batching (`POST /v1.0/$batch`, json-batching): at most 20 requests with
//! unique ids, `dependsOn` ordering with `424` for a failed dependency, responses in no
//! particular order (the emulator shuffles them), and at most 4 items running at once,
//! as Outlook does.
//!
//! Each item is replayed over HTTP against the emulator itself with the batch's
//! `Authorization` header, so it meets the same pipeline (token, faults, throttling:
//! an item can get its own `429` with `Retry-After` in its headers) as a direct call.
//! A string `body` is base64 of the raw body, as the docs say for non-JSON bodies.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

use super::auth::{self, Audience};
use super::graph_error::{GraphError, GraphResult, RequestCtx};
use super::graph_folders::json_object;
use super::state::State;

/// Most requests in one batch.
const MAX_REQUESTS: usize = 20;
/// Items of one batch Outlook runs at once.
const PARALLEL: usize = 4;

/// One parsed batch item.
struct Item {
    id: String,
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    depends_on: Vec<String>,
}

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", message)
}

fn parse_item(v: &Value) -> Result<Item, GraphError> {
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("Every request needs a string '{name}'.")))
    };
    let id = field("id")?.to_owned();
    let method = reqwest::Method::from_bytes(field("method")?.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad(format!("Request {id} has an invalid method.")))?;
    let url = field("url")?.to_owned();
    if !url.starts_with('/') || url.starts_with("/$batch") {
        return Err(bad(format!(
            "Request {id}: url must be relative to the version, like /users/{{id}}/messages."
        )));
    }
    let headers: Vec<(String, String)> = match v.get("headers") {
        None => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        Some(_) => return Err(bad(format!("Request {id}: headers must be an object."))),
    };
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let body = match v.get("body") {
        None | Some(Value::Null) => None,
        Some(_) if content_type.is_none() => {
            return Err(bad(format!(
                "Request {id} has a body but no Content-Type header."
            )));
        }
        Some(Value::String(s)) => Some(
            STANDARD
                .decode(s)
                .map_err(|_| bad(format!("Request {id}: a string body must be base64.")))?,
        ),
        Some(other) => Some(other.to_string().into_bytes()),
    };
    let depends_on = match v.get("dependsOn") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return Err(bad(format!(
                "Request {id}: dependsOn must be an array of ids."
            )));
        }
    };
    Ok(Item {
        id,
        method,
        url,
        headers,
        body,
        depends_on,
    })
}

/// `POST /{version}/$batch`.
pub(crate) async fn batch(
    AxState(state): AxState<Arc<State>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let ctx = RequestCtx::new(
        headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    match run(&state, &uri, &headers, &body).await {
        Ok(response) => response,
        Err(err) => err.render(&ctx),
    }
}

async fn run(state: &State, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> GraphResult {
    auth::check(state, headers, Audience::Graph).map_err(|f| {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            f.message(),
        )
    })?;
    if body.len() > state.config.max_request_bytes {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The batch exceeds the request size limit.",
        ));
    }
    let map = json_object(headers, body)?;
    let requests = map
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("The batch needs a 'requests' array."))?;
    if requests.is_empty() || requests.len() > MAX_REQUESTS {
        return Err(bad(format!(
            "A batch holds 1 to {MAX_REQUESTS} requests, not {}.",
            requests.len()
        )));
    }
    let items = requests
        .iter()
        .map(parse_item)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    if ids.len() != items.len() {
        return Err(bad("Request ids in a batch must be unique."));
    }
    if let Some(i) = items.iter().find(|i| {
        i.depends_on
            .iter()
            .any(|d| !ids.contains(d.as_str()) || *d == i.id)
    }) {
        return Err(bad(format!(
            "Request {} depends on an id that is not in the batch.",
            i.id
        )));
    }
    let version = if uri.path().starts_with("/beta/") {
        "beta"
    } else {
        "v1.0"
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut done: HashMap<String, (u16, Value)> = HashMap::new();
    let mut pending: Vec<Item> = items;
    while !pending.is_empty() {
        let (ready, waiting): (Vec<Item>, Vec<Item>) = pending
            .into_iter()
            .partition(|i| i.depends_on.iter().all(|d| done.contains_key(d)));
        if ready.is_empty() {
            return Err(bad("The dependsOn chain of the batch has a cycle."));
        }
        pending = waiting;
        let (failed, runnable): (Vec<Item>, Vec<Item>) = ready.into_iter().partition(|i| {
            i.depends_on
                .iter()
                .any(|d| done.get(d).is_some_and(|(s, _)| !(200..300).contains(s)))
        });
        for item in failed {
            let body = json!({"error": {"code": "FailedDependency", "message": "A request this one depends on failed."}});
            done.insert(
                item.id.clone(),
                (
                    424,
                    json!({"id": item.id, "status": 424, "headers": {}, "body": body}),
                ),
            );
        }
        for chunk in runnable.chunks(PARALLEL) {
            let runs = chunk.iter().map(|item| send(state, version, &auth, item));
            for (item, result) in chunk.iter().zip(futures_util::future::join_all(runs).await) {
                done.insert(item.id.clone(), result);
            }
        }
    }
    let mut responses: Vec<Value> = done.into_values().map(|(_, v)| v).collect();
    responses.shuffle(&mut rand::rng());
    Ok(Json(json!({ "responses": responses })).into_response())
}

/// Replays one item against the emulator; returns its status and response object.
async fn send(state: &State, version: &str, auth: &str, item: &Item) -> (u16, Value) {
    let url = format!("{}/{version}{}", state.base_url, item.url);
    let mut request = state
        .http
        .request(item.method.clone(), url)
        .header(header::AUTHORIZATION, auth);
    for (k, v) in &item.headers {
        request = request.header(k.as_str(), v.as_str());
    }
    if let Some(body) = &item.body {
        request = request.body(body.clone());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(err) => {
            let body =
                json!({"error": {"code": "InternalServerError", "message": err.to_string()}});
            return (
                500,
                json!({"id": item.id, "status": 500, "headers": {}, "body": body}),
            );
        }
    };
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for name in ["retry-after", "content-type", "location"] {
        if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            let key = if name == "retry-after" {
                "Retry-After"
            } else {
                name
            };
            headers.insert(key.to_owned(), Value::String(v.to_owned()));
        }
    }
    let bytes = response.bytes().await.unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(STANDARD.encode(&bytes)))
    };
    (
        status,
        json!({"id": item.id, "status": status, "headers": headers, "body": body}),
    )
}
