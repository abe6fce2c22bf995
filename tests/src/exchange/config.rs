//! What the emulated tenant looks like and which limits it enforces: one
//! [`EmulatorConfig`] for the whole emulator and [`MailboxSettings`] for mailboxes that
//! differ (not provisioned, nearly full named-property quota, small limits).
//!
//! Every default is Microsoft's documented value, with the research note it rests on
//! (`/work/shared/research/exchange-apis.md`, `exchange-fidelity.md`); where the docs
//! are silent the emulator is strict and says so.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

/// Whose requests share the 4-concurrent-requests gate (throttling-limits, "Outlook
/// service limits"). The docs have said "per app and mailbox" and, since 2024-09 (GDC
/// PR 9428, exchange-apis.md §1.4), "per app" across mailboxes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConcurrencyScope {
    /// One gate per mailbox (the older wording).
    #[default]
    PerMailbox,
    /// One gate for the app across every mailbox (the current wording).
    PerApp,
}

/// How one mailbox differs from a plain, empty, licensed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxSettings {
    /// False: the mailbox exists in the directory but is not provisioned yet (no
    /// licence, still being created): every Graph call answers `404
    /// MailboxNotEnabledForRESTAPI`, EWS `ErrorMailboxStoreUnavailable`.
    pub provisioned: bool,
    /// Named-property definitions already used (quota nearly full).
    pub named_properties_used: u32,
    /// Of those, definitions in the InternetHeaders namespace.
    pub internet_headers_used: u32,
    /// Mailbox size limit instead of the config's.
    pub quota_bytes: Option<u64>,
    /// Largest item instead of the config's `max_message_bytes`.
    pub max_message_bytes: Option<usize>,
}

impl Default for MailboxSettings {
    fn default() -> Self {
        Self {
            provisioned: true,
            named_properties_used: 0,
            internet_headers_used: 0,
            quota_bytes: None,
            max_message_bytes: None,
        }
    }
}

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
    /// The tenant's largest message on Graph items (MaxReceiveSize, 36 MB by default,
    /// exchange-apis.md §1.2 (b), §4): an item whose body, headers and attachments pass
    /// it gets `ErrorMessageSizeExceeded`, whether it grows by create, attachment or
    /// upload session.
    pub max_message_bytes: usize,
    /// Named-property definitions per mailbox, in all (16,384: "Mailbox named
    /// properties quota exceeded", exchange-fidelity.md §1.3).
    pub named_property_quota: u32,
    /// Of those, definitions in the InternetHeaders namespace (9,830, same source):
    /// one per distinct `internetMessageHeaders` name. Over either quota a create gets
    /// `ErrorQuotaExceeded` "Cannot get ID from name.".
    pub internet_header_quota: u32,
    /// Whether MIME uploads (importMime, EWS, v1.0 MIME) take an InternetHeaders
    /// definition for each distinct `X-` header name, as transport does for delivered
    /// mail; exchange-fidelity.md §1.3 says this is unverified [U], so the emulator is
    /// strict and counts them.
    pub mime_promotes_x_headers: bool,
    /// Largest header block of one message (256 KB in Exchange Online,
    /// exchange-fidelity.md §1.3): MIME header blocks and JSON `internetMessageHeaders`.
    pub max_header_bytes: usize,
    /// Smallest attachment an upload session takes (3 MB documented, outlook-large-
    /// attachments; POST `/attachments` takes less than this).
    pub upload_session_min_bytes: usize,
    /// How long an upload session lives; after it, its URL answers `404`.
    pub upload_session_lifetime: Duration,
    /// Whose requests share the concurrency gate.
    pub concurrency_scope: ConcurrencyScope,
    /// Display names of the default folders under msgfolderroot that are not mail
    /// folders, in the order Calendar, Contacts, Tasks, Notes, Journal (localised
    /// mailboxes have e.g. Kalender, Kontakte, Aufgaben, Notizen, Journal). Graph's
    /// `/mailFolders` does not list them, but creating a mail folder of that name
    /// collides with `409 ErrorFolderExists` (exchange-fidelity.md §4.2).
    pub non_mail_folders: Vec<String>,
    /// EWS with impersonation needs `X-AnchorMailbox` naming the impersonated mailbox
    /// (how-to-authenticate-an-ews-application-by-using-oauth, exchange-apis.md §2.1:
    /// "else 500/503"); the emulator refuses such requests with HTTP 500
    /// `ErrorInternalServerError`.
    pub ews_require_anchor_mailbox: bool,
    /// Largest EWS request body IIS takes (maxAllowedContentLength; 64 MiB assumed
    /// [U]); bigger gets a bare HTTP `413`.
    pub ews_max_request_bytes: usize,
    /// Mailboxes that do not exist are created on first use (the standalone binary);
    /// false: `404 ErrorInvalidUser` / `ErrorNonExistentMailbox`.
    pub auto_create_mailboxes: bool,
    /// Mailboxes that differ, by UPN (case-insensitive); applied when the mailbox is
    /// created.
    pub mailboxes: HashMap<String, MailboxSettings>,
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
            max_message_bytes: 36 * 1024 * 1024,
            named_property_quota: 16_384,
            internet_header_quota: 9_830,
            mime_promotes_x_headers: true,
            max_header_bytes: 256 * 1024,
            upload_session_min_bytes: 3 * 1024 * 1024,
            upload_session_lifetime: Duration::from_secs(6 * 3600),
            concurrency_scope: ConcurrencyScope::PerMailbox,
            non_mail_folders: ["Calendar", "Contacts", "Tasks", "Notes", "Journal"]
                .map(str::to_owned)
                .to_vec(),
            ews_require_anchor_mailbox: true,
            ews_max_request_bytes: 64 * 1024 * 1024,
            auto_create_mailboxes: false,
            mailboxes: HashMap::new(),
        }
    }
}

impl EmulatorConfig {
    /// The settings of mailbox `upn`.
    pub(crate) fn settings_of(&self, upn: &str) -> MailboxSettings {
        self.mailboxes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(upn))
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}
