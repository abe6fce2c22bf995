//! An Exchange Online emulator for tests and for trying mailhaul by hand (the
//! `mailhaul-exchange-emulator` binary), served by axum on 127.0.0.1: the
//! client-credentials token endpoint; Microsoft Graph mail (folders, MIME and JSON
//! message creation, beta `importMime`, PATCH, move, `$filter` on `internetMessageId`,
//! `$batch`, and the read side: messages with `$select`/`$expand`, attachments,
//! `$value`) behind Outlook throttling and injectable faults; and EWS (`CreateItem`
//! with `MimeContent`, `GetItem`, `GetAttachment`, `FindItem`, `CreateFolder`,
//! `FindFolder`, `GetFolder`) with impersonation and `ErrorServerBusy`.
//!
//! It is a checker, not a mirror of the client: it keeps everything it is sent and
//! shows it back through the APIs a user's client reads ([`crate::exchange_read`]
//! reads them); it promotes MIME with its own parser ([`mime_read`]: mailparse and
//! encoding_rs, not the client's mail-parser); it enforces the limits Microsoft
//! documents ([`limits`]: max message size, 256 KB of headers, named-property quotas;
//! upload-session minimum and expiry; mailboxes not provisioned; non-mail default
//! folders; the concurrency gate per mailbox or per app), each set in
//! [`EmulatorConfig`] / [`MailboxSettings`]. It reproduces what
//! `/work/shared/research/exchange-apis.md` §5 and `exchange-fidelity.md` §1.3 and §4
//! list, and where Microsoft's docs are unclear it is strict (strict base64, unknown
//! JSON properties and query options refused, MIME to a folder refused, `importMime`
//! needs its role, X- headers of MIME uploads counted against the quota), so a client
//! that passes here does not lean on leniency Exchange may not have.
//!
//! Invariants: every Graph request under `/v1.0` and `/beta` goes through
//! [`pipeline::graph`] (bearer check, mailbox lookup, faults, 4 MB body cap, throttle),
//! in that order; every way an item is made or grows meets the same [`limits`]; state
//! lives behind one lock that is never held across an `.await`.
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
mod config;
mod config_file;
mod ews;
mod ews_find;
mod ews_get;
mod ews_items;
pub(crate) mod ews_xml;
mod faults;
mod graph_attachments;
mod graph_batch;
mod graph_error;
mod graph_folders;
mod graph_items;
mod graph_messages;
mod graph_read;
mod item;
mod limits;
mod message_json;
mod mime_read;
mod odata;
mod pipeline;
mod props;
mod state;
mod throttle;
mod tnef_read;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use tokio::task::JoinHandle;

pub use config::{ConcurrencyScope, EmulatorConfig, MailboxSettings};
pub use faults::Fault;
pub use item::{Address, Attachment, AttachmentKind};
pub use state::{FlagStatus, Origin};
pub use view::{FolderView, ItemView, MailboxView};

use graph_error::{GraphError, RequestCtx};
use state::State;

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
        Self::start_on("127.0.0.1:0".parse()?, config).await
    }

    /// Binds `addr` (port 0: a free one) and serves until dropped.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the Exchange emulator to {addr}"))?;
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
        let config = &self.state.config;
        self.state.with(|inner| inner.add_mailbox(upn, config));
    }

    /// Creates the mailbox if needed and gives it `settings` (not provisioned, quota
    /// nearly full, small limits). Named-property definitions already taken by items
    /// stay taken.
    pub fn configure_mailbox(&self, upn: &str, settings: MailboxSettings) {
        let config = &self.state.config;
        self.state.with(|inner| {
            inner.add_mailbox(upn, config);
            if let Some(mailbox) = inner.mailbox(upn) {
                let by_items = mailbox.named_internet - mailbox.settings.internet_headers_used;
                mailbox.named_internet = settings.internet_headers_used + by_items;
                mailbox.settings = settings;
            }
        });
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
        } else if let Fault::ExpireUploadSessions { unauthorized } = fault {
            let status = if unauthorized {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::NOT_FOUND
            };
            self.state
                .with(|inner| inner.uploads.values_mut().for_each(|u| u.expire(status)));
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

    /// A snapshot of a mailbox, straight from the emulator's store. For debugging the
    /// emulator and for connector tests; end-to-end tests read back what a user's client
    /// would see through [`crate::exchange_read::ExchangeReader`] instead.
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

    /// Highest number of admitted Graph requests in flight at once across all mailboxes.
    pub fn app_peak_concurrency(&self) -> u32 {
        self.state.with(|inner| inner.app_peak)
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
    use graph_items as r;
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
                get(r::list_in_folder).post(m::create_in_folder),
            )
            .route(
                &format!("{u}/messages"),
                get(r::list_all).post(m::create_in_drafts),
            )
            .route(
                &format!("{u}/messages/{{id}}"),
                get(r::get_message)
                    .patch(r::patch_message)
                    .delete(r::delete_message),
            )
            .route(
                &format!("{u}/mailFolders/{{folder}}/messages/{{id}}"),
                get(r::get_message)
                    .patch(r::patch_message)
                    .delete(r::delete_message),
            )
            .route(&format!("{u}/messages/{{id}}/$value"), get(r::get_mime))
            .route(&format!("{u}/messages/{{id}}/move"), post(r::move_message))
            .route(
                &format!("{u}/messages/{{id}}/attachments"),
                get(r::list_attachments).post(a::add),
            )
            .route(
                &format!("{u}/messages/{{id}}/attachments/{{attachment}}"),
                get(r::get_attachment),
            )
            .route(
                &format!("{u}/messages/{{id}}/attachments/{{attachment}}/$value"),
                get(r::get_attachment_value),
            )
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
