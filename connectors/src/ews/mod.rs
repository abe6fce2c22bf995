//! An Exchange Web Services client for one target mailbox: the folder tree, non-draft
//! MIME import in batches, and de-duplication lookups by Message-ID. EWS is the import
//! path for Exchange Server and hosted Exchange (Graph does not exist there) and, until
//! Microsoft turns it off, for Exchange Online.
//!
//! Facts and sources: `/work/shared/research/exchange-apis.md` §2.
//!
//! Invariants:
//! - Every request carries `RequestServerVersion`; with impersonation or OAuth it also
//!   carries `ExchangeImpersonation` (`PrimarySmtpAddress`) and `X-AnchorMailbox`, which
//!   Exchange needs to route the request to the mailbox's server (research §2.1).
//! - Every request passes the [`RequestGate`] (`admit` before, `done` once after, also
//!   when the request is abandoned half-way).
//! - Like every connector it never retries, with one exception: with OAuth, a `401`
//!   drops the token, fetches a new one and sends the request once more. Every failure
//!   is classified where it is read (module `error`).
//! - TLS is verified (platform roots plus `ca_file`) unless `tls_verify = false`.
//! - Passwords and tokens never appear in errors, logs or `Debug` output.

mod client;
mod error;
mod folders;
mod items;
mod list;
mod xml;

pub use folders::{EwsFolder, EwsRole};

use crate::error::ConnectorError;
use crate::exchange_state::KeywordCategories;
use crate::gate::{self, RequestGate};
use crate::oauth::TokenProvider;
use reqwest::Url;
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;
use xml::esc;

/// Limit for one EWS request, body upload included (as Graph's client).
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Limit for opening the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// EWSFindCountLimit: the most entries one FindFolder or FindItem page returns.
const PAGE_SIZE: usize = 1000;

/// `DistinguishedFolderId` values (DistinguishedFolderIdNameType, MS-OXWSCDATA 2.2.5.10)
/// this client may be handed instead of a folder id. There is no `archive` (research §2.2).
const DISTINGUISHED: &[&str] = &[
    "msgfolderroot",
    "root",
    "inbox",
    "sentitems",
    "deleteditems",
    "drafts",
    "junkemail",
    "outbox",
    "archivemsgfolderroot",
    "archiveroot",
    "archiveinbox",
    "archivedeleteditems",
    "conversationhistory",
    "syncissues",
];

/// Where the EWS endpoint is and how to talk to it.
#[derive(Debug, Clone)]
pub struct EwsConfig {
    /// `https://<host>/EWS/Exchange.asmx` (Exchange Online:
    /// `https://outlook.office365.com/EWS/Exchange.asmx`).
    pub url: String,
    /// `RequestServerVersion` (`Exchange2013_SP1`, `Exchange2016`, …).
    pub server_version: String,
    /// A PEM file of extra CA certificates to trust (a private CA).
    pub ca_file: Option<PathBuf>,
    /// `false` turns certificate verification off (logged as a warning).
    pub tls_verify: bool,
    /// Keywords renamed into categories (manifest `keyword_categories`).
    pub categories: KeywordCategories,
}

/// How the client logs in and whose mailbox it acts on.
#[derive(Clone)]
pub enum EwsAuth {
    /// Basic as the mailbox's own user (hosted Exchange); no impersonation header.
    Basic {
        /// The login name.
        user: String,
        /// Its password.
        password: SecretString,
    },
    /// Basic as a service account + `ExchangeImpersonation` (`PrimarySmtpAddress`) of
    /// the mailbox.
    Impersonation {
        /// The service account's login name.
        user: String,
        /// Its password.
        password: SecretString,
    },
    /// Bearer token (client credentials, scope `https://outlook.office365.com/.default`,
    /// permission `full_access_as_app`) + `ExchangeImpersonation`. Share one provider
    /// across sessions ([`crate::oauth::provider_for`]) so they share the token.
    OAuth(Arc<TokenProvider>),
}

impl std::fmt::Debug for EwsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EwsAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            EwsAuth::Impersonation { user, .. } => f
                .debug_struct("Impersonation")
                .field("user", user)
                .finish_non_exhaustive(),
            EwsAuth::OAuth(_) => f.write_str("OAuth"),
        }
    }
}

impl EwsAuth {
    /// Whether requests act on the mailbox through `ExchangeImpersonation`.
    fn impersonates(&self) -> bool {
        !matches!(self, EwsAuth::Basic { .. })
    }
}

/// A folder reference in a request: an id, or a distinguished name.
#[derive(Debug, Clone, Copy)]
enum FolderRef<'a> {
    Id(&'a str),
    Distinguished(&'a str),
}

impl<'a> FolderRef<'a> {
    /// A distinguished name if `s` is one, else an id.
    fn parse(s: &'a str) -> FolderRef<'a> {
        if DISTINGUISHED.contains(&s) {
            FolderRef::Distinguished(s)
        } else {
            FolderRef::Id(s)
        }
    }

    /// `<t:FolderId Id=…/>` or `<t:DistinguishedFolderId Id=…/>`.
    fn xml(self) -> String {
        match self {
            FolderRef::Id(id) => format!(r#"<t:FolderId Id="{}"/>"#, esc(id)),
            FolderRef::Distinguished(name) => {
                format!(r#"<t:DistinguishedFolderId Id="{}"/>"#, esc(name))
            }
        }
    }
}

/// An EWS client for one target mailbox session. Cheap to clone: clones share the
/// HTTP connection pool (and, with OAuth, the token).
#[derive(Clone)]
pub struct EwsClient {
    http: reqwest::Client,
    url: Url,
    server_version: String,
    auth: EwsAuth,
    mailbox: String,
    categories: Arc<KeywordCategories>,
    gate: Arc<dyn RequestGate>,
}

impl std::fmt::Debug for EwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsClient")
            .field("url", &self.url.as_str())
            .field("server_version", &self.server_version)
            .field("auth", &self.auth)
            .field("mailbox", &self.mailbox)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl EwsClient {
    /// A client acting on `mailbox` (its primary SMTP address); nothing is sent yet.
    ///
    /// # Errors
    /// [`ConnectorError::Protocol`] for a url that is not `http(s)`, a bad
    /// `server_version` or an empty mailbox; [`ConnectorError::Tls`] for an unreadable
    /// `ca_file`.
    pub fn new(cfg: &EwsConfig, auth: EwsAuth, mailbox: &str) -> Result<Self, ConnectorError> {
        let bad = |what: String| ConnectorError::Protocol(format!("ews: {what}"));
        let url = Url::parse(cfg.url.trim()).map_err(|e| {
            bad(format!(
                "url {:?} is not a url ({e}); use https://<host>/EWS/Exchange.asmx",
                cfg.url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(bad(format!(
                "url {:?} is not an http(s) url; use https://<host>/EWS/Exchange.asmx",
                cfg.url
            )));
        }
        let version = cfg.server_version.trim();
        if version.is_empty()
            || !version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad(format!(
                "server_version {:?} is not an EWS version name; use Exchange2013_SP1, \
                 Exchange2016 or the version your server reports",
                cfg.server_version
            )));
        }
        let mailbox = mailbox.trim();
        if mailbox.is_empty() {
            return Err(bad(
                "the target mailbox address is empty; set it in the manifest or the CSV".into(),
            ));
        }
        if url.scheme() == "http" && !matches!(auth, EwsAuth::OAuth(_)) {
            warn!(url = %url, "EWS over plain http with a password: the password can be read on the wire.");
        }
        let http = http_client(cfg, &url)?;
        Ok(EwsClient {
            http,
            url,
            server_version: version.to_owned(),
            auth,
            mailbox: mailbox.to_owned(),
            categories: Arc::new(cfg.categories.clone()),
            gate: Arc::new(gate::Open),
        })
    }

    /// A clone that sends every request through `gate` (`admit` before, `done` after);
    /// it shares this client's connections. [`EwsClient::new`] starts with [`gate::Open`].
    pub fn with_gate(&self, gate: Arc<dyn RequestGate>) -> EwsClient {
        EwsClient {
            gate,
            ..self.clone()
        }
    }

    /// The mailbox this client acts on.
    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }

    /// The SOAP header: server version, and impersonation unless logging in as the
    /// mailbox's own user.
    fn header(&self) -> String {
        let mut header = format!(
            r#"<t:RequestServerVersion Version="{}"/>"#,
            esc(&self.server_version)
        );
        if self.auth.impersonates() {
            header.push_str(&format!(
                "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{}\
                 </t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>",
                esc(&self.mailbox)
            ));
        }
        header
    }
}

/// The HTTP client: time limits and the TLS trust of `cfg`.
fn http_client(cfg: &EwsConfig, url: &Url) -> Result<reqwest::Client, ConnectorError> {
    let server = url.host_str().unwrap_or("ews");
    crate::http::client(
        server,
        cfg.ca_file.as_deref(),
        cfg.tls_verify,
        HTTP_TIMEOUT,
        CONNECT_TIMEOUT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> EwsConfig {
        EwsConfig {
            url: url.to_owned(),
            server_version: "Exchange2013_SP1".to_owned(),
            ca_file: None,
            tls_verify: true,
            categories: KeywordCategories::default(),
        }
    }

    fn basic(impersonate: bool) -> EwsAuth {
        let (user, password) = ("svc@contoso.com".to_owned(), SecretString::from("hunter2"));
        if impersonate {
            EwsAuth::Impersonation { user, password }
        } else {
            EwsAuth::Basic { user, password }
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let url = "https://mail.contoso.com/EWS/Exchange.asmx";
        for (cfg, mailbox, says) in [
            (
                config("mail.contoso.com"),
                "bob@contoso.com",
                "is not a url",
            ),
            (config("ftp://h/x"), "bob@contoso.com", "not an http(s) url"),
            (
                EwsConfig {
                    server_version: "Exchange 2016\"".into(),
                    ..config(url)
                },
                "bob@contoso.com",
                "server_version",
            ),
            (config(url), " ", "mailbox address is empty"),
            (
                EwsConfig {
                    ca_file: Some("/nonexistent/ca.pem".into()),
                    ..config(url)
                },
                "bob@contoso.com",
                "cannot read ca_file /nonexistent/ca.pem",
            ),
        ] {
            let err = EwsClient::new(&cfg, basic(false), mailbox).expect_err(says);
            assert!(err.to_string().contains(says), "{err}");
            assert_eq!(err.class(), mailhaul_proto::ErrorClass::Permanent, "{err}");
        }
    }

    #[test]
    fn headers_impersonate_only_when_asked() {
        let cfg = config("https://mail.contoso.com/EWS/Exchange.asmx");
        let own = EwsClient::new(&cfg, basic(false), "bob@contoso.com").expect("valid");
        assert_eq!(
            own.header(),
            r#"<t:RequestServerVersion Version="Exchange2013_SP1"/>"#
        );
        let other = EwsClient::new(&cfg, basic(true), "b&b@contoso.com").expect("valid");
        assert!(
            other
                .header()
                .contains("<t:PrimarySmtpAddress>b&amp;b@contoso.com</t:PrimarySmtpAddress>"),
            "{}",
            other.header()
        );
        assert_eq!(other.server(), "mail.contoso.com");
    }

    #[test]
    fn debug_shows_no_password() {
        let cfg = config("https://mail.contoso.com/EWS/Exchange.asmx");
        for auth in [basic(false), basic(true)] {
            let c = EwsClient::new(&cfg, auth, "bob@contoso.com").expect("valid");
            let debug = format!("{c:?}");
            assert!(
                debug.contains("svc@contoso.com") && !debug.contains("hunter2"),
                "{debug}"
            );
        }
    }

    #[test]
    fn refused_logins_say_what_the_server_offers() {
        let cfg = config("https://mail.contoso.com/EWS/Exchange.asmx");
        let c = EwsClient::new(&cfg, basic(true), "bob@contoso.com").expect("valid");
        let err = c.refused_login(Some("2000001"), Some("Negotiate, NTLM"), false);
        assert!(matches!(&err, ConnectorError::Auth { user, .. } if user == "svc@contoso.com"));
        let text = err.to_string();
        assert!(
            text.contains("x-ms-diagnostics: 2000001")
                && text.contains("offers only Negotiate, NTLM"),
            "{text}"
        );
        let text = c
            .refused_login(None, Some("Basic realm=\"x\""), false)
            .to_string();
        assert!(!text.contains("offers only"), "{text}");
    }

    #[test]
    fn folder_refs_tell_names_from_ids() {
        assert_eq!(
            FolderRef::parse("inbox").xml(),
            r#"<t:DistinguishedFolderId Id="inbox"/>"#
        );
        // No `archive` distinguished id in EWS: it is taken for an id (and not found).
        assert_eq!(
            FolderRef::parse("archive").xml(),
            r#"<t:FolderId Id="archive"/>"#
        );
        assert_eq!(
            FolderRef::parse("AAMk\"=").xml(),
            r#"<t:FolderId Id="AAMk&quot;="/>"#
        );
    }
}
