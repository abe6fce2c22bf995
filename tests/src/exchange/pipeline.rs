//! What every Graph request goes through before and after its handler, in this order:
//! request ids, bearer token (401), mailbox lookup (404 `ErrorInvalidUser`, created on
//! first use when the config says so; 404 `MailboxNotEnabledForRESTAPI` when not
//! provisioned; 403), injected faults (429, 503, 504), body size (413), throttling (429
//! with `Retry-After`; the concurrency gate per mailbox or per app), latency, handler,
//! then "503 after commit" faults and rendering of error envelopes.
//!
//! Invariants: a request that was admitted holds its mailbox's concurrency slot until
//! its handler has finished or was dropped (the slot is a drop guard); handlers get the
//! body already read and capped, the [`RequestCtx`] and the token's [`Roles`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt as _;
use tokio::time::Instant;

use super::auth::{self, Audience};
use super::config::ConcurrencyScope;
use super::faults::{Action, RequestKind};
use super::graph_error::{GraphError, RequestCtx};
use super::state::{Ids, Mailbox, State};
use super::throttle::{Limit, Limits, Throttled};

/// The `roles` claim of the request's token.
#[derive(Clone, Debug)]
pub(crate) struct Roles(pub(crate) Vec<String>);

/// Which API's concurrency slot a [`Slot`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotKind {
    Graph,
    Ews,
}

/// Gives the mailbox's concurrency slot back when the request is done (or dropped).
pub(crate) struct Slot {
    state: Arc<State>,
    upn: String,
    kind: SlotKind,
}

impl Slot {
    pub(crate) fn new(state: Arc<State>, upn: &str, kind: SlotKind) -> Self {
        Self {
            state,
            upn: upn.to_owned(),
            kind,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.with(|inner| {
            if self.kind == SlotKind::Graph {
                inner.app_in_flight = inner.app_in_flight.saturating_sub(1);
            }
            if let Some(mailbox) = inner.mailbox(&self.upn) {
                match self.kind {
                    SlotKind::Graph => mailbox.throttle.release(),
                    SlotKind::Ews => mailbox.ews_throttle.release(),
                }
            }
        });
    }
}

/// Runs `f` on the request's mailbox (the pipeline has already checked it exists).
pub(crate) fn in_mailbox<R>(
    state: &State,
    upn: &str,
    f: impl FnOnce(&mut Mailbox, &mut Ids) -> Result<R, GraphError>,
) -> Result<R, GraphError> {
    state.with(|inner| {
        let mailbox = inner
            .mailboxes
            .get_mut(&upn.to_lowercase())
            .ok_or_else(|| invalid_user(upn))?;
        f(mailbox, &mut inner.ids)
    })
}

fn invalid_user(upn: &str) -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ErrorInvalidUser",
        format!("The requested user '{upn}' is invalid."),
    )
}

fn throttled(limit: Limit, retry_after: std::time::Duration) -> GraphError {
    GraphError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "ApplicationThrottled",
        limit.message(),
    )
    .with_retry_after(Some(retry_after))
}

/// The Graph middleware (see the module docs).
pub(crate) async fn graph(
    AxState(state): AxState<Arc<State>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok());
    let ctx = RequestCtx::new(client_request_id);
    let upn = params.get("upn").cloned().unwrap_or_default();
    let mut response = match run(&state, &upn, &ctx, request, next).await {
        Ok(response) => response,
        Err(err) => err.render(&ctx),
    };
    if let Some(err) = response.extensions().get::<GraphError>().cloned() {
        response = err.render(&ctx);
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.client_request_id) {
        headers.insert("client-request-id", v);
    }
    response
}

async fn run(
    state: &Arc<State>,
    upn: &str,
    ctx: &RequestCtx,
    request: Request,
    next: Next,
) -> Result<Response, GraphError> {
    let config = &state.config;
    let roles = auth::check(state, request.headers(), Audience::Graph).map_err(|f| {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            f.message(),
        )
    })?;
    let write = !matches!(*request.method(), Method::GET | Method::HEAD);
    let kind = match *request.method() {
        Method::GET | Method::HEAD => RequestKind::GraphRead,
        Method::PATCH => RequestKind::GraphPatch,
        _ => RequestKind::GraphWrite,
    };
    let fault = state.with(|inner| {
        let mailbox = inner
            .mailbox_or_auto(upn, config)
            .ok_or_else(|| invalid_user(upn))?;
        if !mailbox.settings.provisioned {
            // Seen for unlicensed and still-provisioning mailboxes (exchange-fidelity.md
            // §4.3 [S]): a mailbox-level "not ready", for every request.
            mailbox.throttle.total += 1;
            return Err(GraphError::new(
                StatusCode::NOT_FOUND,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            ));
        }
        if mailbox.denied {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "ErrorAccessDenied",
                "Access to OData is disabled.",
            ));
        }
        let fault = inner.faults.take_before(kind);
        if fault.is_some() {
            // The request reached the mailbox and counts, though it does not run.
            if let Some(mailbox) = inner.mailbox(upn) {
                mailbox.throttle.total += 1;
            }
        }
        Ok(fault)
    })?;
    match fault {
        Some(Action::Throttle(after)) => return Err(throttled(Limit::Concurrency, after)),
        Some(Action::ThrottleHttpDate(after)) => {
            let mut err = throttled(Limit::Concurrency, after);
            err.retry_after_date = true;
            return Err(err);
        }
        Some(Action::Fail503(after)) => return Err(unavailable().with_retry_after(after)),
        Some(Action::Fail504) => {
            return Err(GraphError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "The gateway did not receive a timely response from the upstream service.",
            ));
        }
        _ => {}
    }

    let (mut parts, body) = request.into_parts();
    let bytes = read_capped(body, config.max_request_bytes)
        .await
        .ok_or_else(|| {
            GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "The request body exceeds the maximum of {} bytes.",
                    config.max_request_bytes
                ),
            )
        })?;

    let per_app = config.concurrency_scope == ConcurrencyScope::PerApp;
    let limits = Limits {
        concurrency: if per_app {
            u32::MAX
        } else {
            config.per_mailbox_concurrency
        },
        requests: config.requests_per_10min,
        request_window: std::time::Duration::from_secs(600),
        upload_bytes: config.upload_bytes_per_5min,
        upload_window: std::time::Duration::from_secs(300),
    };
    let upload = if write { bytes.len() as u64 } else { 0 };
    let now = Instant::now();
    state
        .with(|inner| {
            let app_full = per_app && inner.app_in_flight >= config.per_mailbox_concurrency;
            let mailbox = inner.mailbox(upn)?;
            let admitted = if app_full {
                // Counted like any refused request; no slot, no bytes spent.
                mailbox.throttle.total += 1;
                Err(Throttled {
                    limit: Limit::Concurrency,
                    retry_after: std::time::Duration::from_secs(1),
                })
            } else {
                mailbox.throttle.admit(&limits, now, upload)
            };
            if admitted.is_ok() {
                inner.app_in_flight += 1;
                inner.app_peak = inner.app_peak.max(inner.app_in_flight);
            }
            Some(admitted)
        })
        .ok_or_else(|| invalid_user(upn))?
        .map_err(|t| throttled(t.limit, t.retry_after))?;
    let slot = Slot::new(Arc::clone(state), upn, SlotKind::Graph);
    state.admitted_wait().await;

    parts.extensions.insert(ctx.clone());
    parts.extensions.insert(Roles(roles));
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(slot);

    let committed = write && response.status().is_success();
    if committed
        && state
            .with(|inner| inner.faults.take_after_commit())
            .is_some()
    {
        return Err(unavailable());
    }
    Ok(response)
}

/// Bodies this much over the cap are not drained before answering 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// The body if it is at most `max` bytes; `None` (after reading and discarding up to
/// [`DRAIN_LIMIT`], so the client reliably sees the 413 rather than a reset
/// connection) when it is bigger or cannot be read.
async fn read_capped(body: Body, max: usize) -> Option<Bytes> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0_usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        seen = seen.saturating_add(chunk.len());
        if seen <= max {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            return None;
        }
    }
    (seen <= max).then(|| Bytes::from(kept))
}

fn unavailable() -> GraphError {
    GraphError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceNotAvailable",
        "The service is temporarily unavailable. Please retry later.",
    )
}
