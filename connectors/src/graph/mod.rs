//! A Microsoft Graph client for Exchange Online as a migration target: the folder tree,
//! non-draft message import (large messages included) and de-duplication lookups,
//! app-only (client credentials).
//!
//! Facts and sources: `/work/shared/research/exchange-apis.md` §1.
//!
//! Invariants:
//! - One [`GraphClient`] per tenant; it shares one [`TokenProvider`] (one token request
//!   in flight, the token reused until shortly before it expires). A `401` drops the
//!   token, fetches a new one and sends the request once more; a second `401` is an
//!   [`ConnectorError::Auth`].
//! - Like every connector it never retries anything else: each failure carries its retry
//!   class ([`ConnectorError::class`]) and the worker decides ([`error`] maps statuses).
//! - Every request it sends (all but the token endpoint's) passes its
//!   [`RequestGate`]: `admit` before, `done` once after ([`client`]).
//! - No request body over Graph's 4 MB limit is sent. A message too big for one
//!   request goes in several ([`upload`]); one that no Graph path can take is refused
//!   before anything is sent, with a permanent error naming the limit.
//! - Tokens never appear in errors, logs or `Debug` output.

mod client;
mod error;
mod folders;
mod json_addresses;
mod json_body;
mod json_headers;
mod json_parts;
mod list;
mod message;
mod message_json;
mod route;
mod upload;

pub use folders::GraphFolder;
pub use list::ListedItem;
pub use message::{FoundItem, ImportItem, Imported};
pub use message_json::JsonOptions;
pub use upload::{ATTACHMENT_LIMIT, SMALL_ATTACHMENT_LIMIT, UPLOAD_CHUNK};

use crate::error::ConnectorError;
use crate::exchange_state::ExchangeOptions;
use crate::gate::{self, RequestGate};
use crate::oauth::TokenProvider;
use crate::special::SpecialUse;
use mailhaul_proto::manifest::TokenSource;
use reqwest::Url;
use std::sync::Arc;
use std::time::Duration;

/// Limit for one Graph request, body upload included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Limit for opening the TCP and TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Graph's limit on a whole request body ("4 MB on the total size of each REST request").
pub const REQUEST_LIMIT: usize = 4 * 1024 * 1024;

/// Where the Graph client connects and how it uploads.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com` (or a national cloud, or the test emulator), without
    /// the `/v1.0` version segment.
    pub base_url: String,
    /// The app's client credentials; the scope is `https://graph.microsoft.com/.default`.
    pub token: TokenSource,
    /// How messages are uploaded.
    pub upload: UploadPath,
    /// An extra trust anchor (PEM) besides the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Whether to verify the server's certificate (`false` only when written so).
    pub tls_verify: bool,
    /// What to keep beyond the basics (manifest target options).
    pub options: ExchangeOptions,
}

/// How a message is created in the mailbox. Both make a non-draft item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UploadPath {
    /// Beta `POST …/mailFolders/{id}/importMime`: the full MIME is kept (every header,
    /// the part tree, attachments), then read state, flag and categories are set with a
    /// PATCH. Needs `Mail-Advanced.ReadWrite.All`. The received date becomes the import
    /// time: Graph has no way to set it on an imported item. A message whose base64
    /// MIME passes Graph's 4 MB request limit goes through `JsonCreate` instead.
    #[default]
    ImportMime,
    /// v1.0 JSON create with the MAPI properties 0x0E07 (message flags, not a draft),
    /// 0x0E06 (received = INTERNALDATE) and 0x0039 (sent): dates, read state, flag and
    /// categories kept; the raw headers (other than `X-` ones), the MIME structure and
    /// signatures are lost, attachments are carried as file attachments.
    JsonCreate,
}

/// The Graph API version a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    Beta,
}

impl Api {
    fn segment(self) -> &'static str {
        match self {
            Api::V1 => "v1.0",
            Api::Beta => "beta",
        }
    }
}

/// A Graph client for one tenant. Cheap to clone: clones share the HTTP connection
/// pool and the token.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    base: Url,
    upload: UploadPath,
    options: Arc<ExchangeOptions>,
    gate: Arc<dyn RequestGate>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base.as_str())
            .field("upload", &self.upload)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// A client for `cfg`; nothing is sent yet.
    ///
    /// # Errors
    /// [`ConnectorError::Protocol`] when `base_url` is not an `http(s)` URL.
    pub fn new(cfg: GraphConfig) -> Result<Self, ConnectorError> {
        let bad = |why: &str| {
            ConnectorError::Protocol(format!(
                "graph base_url {:?} {why}; use https://graph.microsoft.com",
                cfg.base_url
            ))
        };
        let base = Url::parse(cfg.base_url.trim_end_matches('/'))
            .map_err(|e| bad(&format!("is not a url ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("is not an http(s) url"));
        }
        let http = crate::http::client(
            base.host_str().unwrap_or("graph"),
            cfg.ca_file.as_deref(),
            cfg.tls_verify,
            HTTP_TIMEOUT,
            CONNECT_TIMEOUT,
        )?;
        Ok(GraphClient {
            http,
            tokens: crate::oauth::provider_for(&cfg.token),
            base,
            upload: cfg.upload,
            options: Arc::new(cfg.options),
            gate: Arc::new(gate::Open),
        })
    }

    /// A clone that sends every request through `gate` (`admit` before, `done` after);
    /// it shares this client's connections and token. [`GraphClient::new`] starts with
    /// [`gate::Open`].
    pub fn with_gate(&self, gate: Arc<dyn RequestGate>) -> GraphClient {
        GraphClient {
            gate,
            ..self.clone()
        }
    }

    /// Graph's well-known folder name for a special folder (`sentitems`, `drafts`,
    /// `deleteditems`, `junkemail`, `archive`); usable wherever a folder id is.
    pub fn well_known(special: SpecialUse) -> &'static str {
        special.graph_well_known()
    }

    /// `{base}/{api}/users/{upn}/{segments…}`, each segment percent-encoded.
    fn url(&self, api: Api, upn: &str, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let Ok(mut path) = url.path_segments_mut() else {
                // `new` refused cannot-be-a-base URLs.
                return url;
            };
            path.pop_if_empty()
                .extend([api.segment(), "users", upn])
                .extend(segments);
        }
        url
    }

    /// `host[:port]` of the Graph endpoint, for errors.
    fn server(&self) -> String {
        let host = self.base.host_str().unwrap_or("graph");
        match self.base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

/// Appends `key=value` pairs to `url`, percent-encoding spaces as `%20` (OData filters),
/// not `+`.
fn with_query(mut url: Url, pairs: &[(&str, &str)]) -> Url {
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    url.set_query(Some(&query));
    url
}

/// RFC 3986 percent-encoding of everything but unreserved characters and `$`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhaul_proto::manifest::SecretRef;

    fn client(base: &str) -> Result<GraphClient, ConnectorError> {
        GraphClient::new(GraphConfig {
            base_url: base.to_owned(),
            token: TokenSource::ClientCredentials {
                url: "http://127.0.0.1:9/token".into(),
                client_id: "c".into(),
                client_secret: SecretRef::Env("NOPE".into()),
                scope: "https://graph.microsoft.com/.default".into(),
            },
            upload: UploadPath::default(),
            ca_file: None,
            tls_verify: true,
            options: ExchangeOptions::default(),
        })
    }

    #[test]
    fn urls_are_built_and_encoded() {
        let c = client("https://graph.microsoft.com/").expect("valid");
        let url = c.url(
            Api::Beta,
            "bob@contoso.com",
            &["mailFolders", "a/b=", "importMime"],
        );
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/beta/users/bob@contoso.com/mailFolders/a%2Fb=/importMime"
        );
        let url = with_query(
            c.url(Api::V1, "u", &["messages"]),
            &[("$filter", "internetMessageId eq '<a b>'")],
        );
        assert_eq!(
            url.query(),
            Some("$filter=internetMessageId%20eq%20%27%3Ca%20b%3E%27")
        );
        assert_eq!(c.server(), "graph.microsoft.com");
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for base in ["graph.microsoft.com", "ftp://x", "mailto:a@b"] {
            let err = client(base).expect_err(base);
            assert!(err.to_string().contains("graph base_url"), "{err}");
        }
    }

    #[test]
    fn debug_shows_no_token() {
        let c = client("https://graph.microsoft.com").expect("valid");
        let debug = format!("{c:?}");
        assert!(
            debug.contains("graph.microsoft.com") && !debug.contains("NOPE"),
            "{debug}"
        );
    }
}
