//! An Exchange Online emulator for tests, served by axum on a free 127.0.0.1 port:
//! the client-credentials token endpoint; Microsoft Graph mail (folders, MIME and JSON
//! message creation, beta `importMime`, PATCH, move, `$filter` on `internetMessageId`,
//! `$batch`) behind per-mailbox Outlook throttling and injectable faults; and EWS
//! (`CreateItem` with `MimeContent`, `FindItem` by Message-ID, `CreateFolder`,
//! `FindFolder`, `GetFolder`) with
//! impersonation and `ErrorServerBusy`.
//!
//! It reproduces what `/work/shared/research/exchange-apis.md` §5 lists, and where
//! Microsoft's docs are unclear it is strict (strict base64, unknown JSON properties
//! refused, MIME to a folder refused, `importMime` needs its role), so a client that
//! passes here does not lean on leniency Exchange may not have.
//!
//! Invariants: every Graph request under `/v1.0` and `/beta` goes through
//! [`pipeline::graph`] (bearer check, mailbox lookup, faults, 4 MB body cap, throttle),
//! in that order; state lives behind one lock that is never held across an `.await`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use mailhaul_tests::exchange::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! emu.add_mailbox("bob@contoso.com");
//! let token = emu.issue_token();
//! let url = format!("{}/v1.0/users/bob@contoso.com/mailFolders", emu.base_url());
//! # let _ = (token, url);
//! # Ok(()) }
//! ```

mod auth;
mod ews;
mod ews_find;
mod ews_items;
mod ews_xml;
mod faults;
mod graph_attachments;
mod graph_batch;
mod graph_error;
mod graph_folders;
mod graph_messages;
mod message_json;
mod odata;
mod pipeline;
mod state;
mod throttle;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use secrecy::SecretString;
use tokio::task::JoinHandle;

pub use faults::Fault;
pub use state::{Attachment, FlagStatus, Origin};
pub use view::{FolderView, ItemView, MailboxView};

use graph_error::{GraphError, RequestCtx};
use state::State;

/// What the emulated tenant looks like and which limits it enforces. `Default` holds
/// Microsoft's documented values (token lifetime 3599 s, Outlook limits per mailbox:
/// 4 concurrent requests, 10,000 requests per 10 min, 150 MB uploaded per 5 min; 4 MB
/// per request).
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Tenant in the token URL (`/{tenant}/oauth2/v2.0/token`), compared case-insensitively.
    pub tenant: String,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// `roles` of Graph tokens. `importMime` needs `Mail-Advanced.ReadWrite.All`.
    pub graph_roles: Vec<String>,
    /// `roles` of EWS tokens (`full_access_as_app`).
    pub ews_roles: Vec<String>,
    /// `expires_in` of issued tokens.
    pub token_lifetime: Duration,
    /// Concurrent requests admitted per mailbox; the next one gets 429.
    pub per_mailbox_concurrency: u32,
    /// Requests per mailbox in any 10-minute window.
    pub requests_per_10min: u32,
    /// Bytes of POST/PATCH/PUT bodies per mailbox in any 5-minute window.
    pub upload_bytes_per_5min: u64,
    /// Largest request body; bigger ones get 413.
    pub max_request_bytes: usize,
    /// Default page size of collections (`$top` overrides it).
    pub page_size: usize,
    /// Time each admitted Graph request takes, holding its concurrency slot; lets
    /// tests make requests overlap. Zero by default.
    pub latency: Duration,
    /// MIME posted to `/mailFolders/{id}/messages` fails with `400
    /// UnableToDeserializePostBody`, as reported against Exchange Online. When false it
    /// makes a draft in that folder.
    pub mime_to_folder_fails: bool,
    /// Largest decoded EWS `MimeContent`; bigger items get `ErrorMessageSizeExceeded`
    /// (Exchange Online's default MaxReceiveSize, 36 MB).
    pub ews_max_item_bytes: usize,
    /// EWS requests admitted at once per mailbox (EWSMaxConcurrency, 27 in Exchange
    /// Online); the next one gets `ErrorExceededConnectionCount`.
    pub ews_max_concurrency: u32,
    /// Mailbox size limit (items and attachments); a create that would pass it gets
    /// `ErrorQuotaExceeded`. Exchange Online's default for E3/E5 mailboxes is 100 GB.
    pub mailbox_quota_bytes: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tenant: "contoso.onmicrosoft.com".to_owned(),
            client_id: "11111111-2222-3333-4444-555555555555".to_owned(),
            client_secret: SecretString::from("emulator-secret"),
            graph_roles: vec![
                "Mail.ReadWrite".to_owned(),
                "Mail-Advanced.ReadWrite.All".to_owned(),
            ],
            ews_roles: vec!["full_access_as_app".to_owned()],
            token_lifetime: Duration::from_secs(3599),
            per_mailbox_concurrency: 4,
            requests_per_10min: 10_000,
            upload_bytes_per_5min: 150 * 1024 * 1024,
            max_request_bytes: 4 * 1024 * 1024,
            page_size: 10,
            latency: Duration::ZERO,
            mime_to_folder_fails: true,
            ews_max_item_bytes: 36 * 1024 * 1024,
            ews_max_concurrency: 27,
            mailbox_quota_bytes: 100 * 1024 * 1024 * 1024,
        }
    }
}

/// A running emulator; dropped, it stops serving.
#[derive(Debug)]
pub struct Emulator {
    state: Arc<State>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Emulator {
    /// Binds a free port on 127.0.0.1 and serves until dropped.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Exchange emulator to a free 127.0.0.1 port")?;
        let addr = listener
            .local_addr()
            .context("reading the emulator's bound address")?;
        let state = Arc::new(State::new(config, format!("http://{addr}")));
        let app = router(Arc::clone(&state));
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "Exchange emulator stopped serving.");
            }
        });
        Ok(Emulator { state, addr, task })
    }

    /// `http://127.0.0.1:PORT`; Graph is under `/v1.0` and `/beta`, the token endpoint
    /// at `/{tenant}/oauth2/v2.0/token`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The config it runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.state.config
    }

    /// Creates a mailbox with msgfolderroot and the well-known folders (no-op if it
    /// exists). UPNs are case-insensitive.
    pub fn add_mailbox(&self, upn: &str) {
        self.state.with(|inner| inner.add_mailbox(upn));
    }

    /// Makes a mailbox out of the app's scope (`403 ErrorAccessDenied`), as an
    /// application access policy or RBAC for Applications would.
    pub fn deny_mailbox(&self, upn: &str) {
        self.state.with(|inner| {
            if let Some(mailbox) = inner.mailbox(upn) {
                mailbox.denied = true;
            }
        });
    }

    /// Injects a fault for the next matching requests.
    pub fn inject(&self, fault: Fault) {
        if fault == Fault::ExpireTokens {
            auth::expire_all(&self.state);
        } else {
            self.state.with(|inner| inner.faults.push(fault));
        }
    }

    /// Issues a Graph token directly, as the token endpoint would.
    pub fn issue_token(&self) -> String {
        auth::issue(&self.state, auth::Audience::Graph)
    }

    /// Issues an EWS token (audience `https://outlook.office365.com`) directly.
    pub fn issue_ews_token(&self) -> String {
        auth::issue(&self.state, auth::Audience::Ews)
    }

    /// A snapshot of a mailbox.
    ///
    /// # Panics
    /// When the mailbox was never added (a bug in the test).
    pub fn mailbox(&self, upn: &str) -> MailboxView {
        self.state
            .with(|inner| inner.mailbox(upn).map(|m| m.view()))
            .unwrap_or_else(|| panic!("mailbox {upn} was never added to the emulator"))
    }

    /// Makes admitted requests (Graph and EWS) wait before they run, keeping their
    /// concurrency slots, until [`Emulator::release`]; lets a test line requests up
    /// against the concurrency gates without relying on timing.
    pub fn hold(&self) {
        self.state.hold.send_replace(true);
    }

    /// Lets held requests run, and new ones run at once.
    pub fn release(&self) {
        self.state.hold.send_replace(false);
    }

    /// Graph requests admitted and not finished for the mailbox right now.
    pub fn in_flight(&self, upn: &str) -> u32 {
        self.state
            .with(|inner| inner.mailbox(upn).map_or(0, |m| m.throttle.in_flight))
    }

    /// EWS requests admitted and not finished for the mailbox right now.
    pub fn ews_in_flight(&self, upn: &str) -> u32 {
        self.state
            .with(|inner| inner.mailbox(upn).map_or(0, |m| m.ews_throttle.in_flight))
    }

    /// Highest number of admitted Graph requests in flight at once for the mailbox.
    pub fn peak_concurrency(&self, upn: &str) -> u32 {
        self.state
            .with(|inner| inner.mailbox(upn).map_or(0, |m| m.throttle.peak))
    }

    /// Highest number of admitted EWS requests in flight at once for the mailbox.
    pub fn ews_peak_concurrency(&self, upn: &str) -> u32 {
        self.state
            .with(|inner| inner.mailbox(upn).map_or(0, |m| m.ews_throttle.peak))
    }

    /// Authenticated Graph and EWS requests that reached the mailbox, throttled and
    /// faulted ones included.
    pub fn request_count(&self, upn: &str) -> u64 {
        self.state.with(|inner| {
            inner
                .mailbox(upn)
                .map_or(0, |m| m.throttle.total + m.ews_throttle.total)
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every route. Graph ones share the pipeline; `importMime` exists only under `/beta`.
fn router(state: Arc<State>) -> Router {
    use graph_attachments as a;
    use graph_folders as f;
    use graph_messages as m;
    let mut graph = Router::new();
    for v in ["/v1.0", "/beta"] {
        let u = format!("{v}/users/{{upn}}");
        graph = graph
            .route(
                &format!("{u}/mailFolders"),
                get(f::list_root).post(f::create_root),
            )
            .route(&format!("{u}/mailFolders/{{folder}}"), get(f::get_folder))
            .route(
                &format!("{u}/mailFolders/{{folder}}/childFolders"),
                get(f::list_children).post(f::create_child),
            )
            .route(
                &format!("{u}/mailFolders/{{folder}}/messages"),
                get(m::list_in_folder).post(m::create_in_folder),
            )
            .route(
                &format!("{u}/messages"),
                get(m::list_all).post(m::create_in_drafts),
            )
            .route(
                &format!("{u}/messages/{{id}}"),
                get(m::get_message)
                    .patch(m::patch_message)
                    .delete(m::delete_message),
            )
            .route(
                &format!("{u}/mailFolders/{{folder}}/messages/{{id}}"),
                get(m::get_message)
                    .patch(m::patch_message)
                    .delete(m::delete_message),
            )
            .route(&format!("{u}/messages/{{id}}/$value"), get(m::get_mime))
            .route(&format!("{u}/messages/{{id}}/move"), post(m::move_message))
            .route(&format!("{u}/messages/{{id}}/attachments"), post(a::add))
            .route(
                &format!("{u}/messages/{{id}}/attachments/createUploadSession"),
                post(a::create_session),
            );
    }
    let graph = graph
        .route(
            "/beta/users/{upn}/mailFolders/{folder}/importMime",
            post(m::import_mime),
        )
        .route_layer(from_fn_with_state(Arc::clone(&state), pipeline::graph));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token_endpoint))
        .route("/EWS/Exchange.asmx", post(ews::ews))
        .merge(graph)
        // After the merge: inserted before it, both `$batch` routes went unmatched
        // (axum 0.8.9 / matchit 0.8.4 insertion order), which the batch test catches.
        .route("/v1.0/$batch", post(graph_batch::batch))
        .route("/beta/$batch", post(graph_batch::batch))
        .route("/upload/{session}", put(graph_attachments::put_chunk))
        .fallback(fallback)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Unknown paths, answered as Graph's OData router does.
async fn fallback(uri: axum::http::Uri) -> axum::response::Response {
    let segment = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
    .render(&RequestCtx::new(None))
}
