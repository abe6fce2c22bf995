//! Graph and EWS targets: `[target]` with `kind = "graph"` (Exchange Online through
//! Microsoft Graph) or `kind = "ews"` (Exchange Server 2013+ and hosted Exchange).
//!
//! Both are named by a `url` instead of `host`/`port`/`tls`; the config still gets a host,
//! port and TLS mode derived from it, so permit keys and messages work as for IMAP.
//! Logins: Graph always uses the OAuth 2.0 client credentials grant (RFC 6749 §4.4; the
//! app-only flow of Microsoft identity platform); EWS uses Basic as each mailbox, Basic
//! as a service account with `ExchangeImpersonation`, or the client credentials token
//! with `ExchangeImpersonation`.
//!
//! Invariants: a url is `https://`, or plain `http://` to a loopback host only (the test
//! emulator), since it carries credentials and mail; keys of another kind or login are
//! reported; Microsoft's documented per-mailbox limits are the defaults, and the one
//! that cannot be raised (4 concurrent Graph requests per mailbox) is enforced.

use super::document::size;
use super::exchange_options::{self, ExchangeFidelity};
use super::fields::Fields;
use super::login::{self, Login, TokenSource};
use super::problem::Sink;
use super::secret::SecretRef;
use super::server::Reached;
use super::{ServerKind, TlsMode};
use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;

/// The keys this module reads, for the server table's deny-unknown-fields list (`login`
/// and `oauth_*` are `login.rs`'s).
pub(super) const HTTP_KEYS: &[&str] = &[
    "url",
    "tenant",
    "upload",
    "max_requests_per_10min",
    "max_upload_per_5min",
    "service_user",
    "server_version",
    "batch_items",
    "x_headers",
    "keyword_categories",
    "mime_route",
    "concurrency_scope",
];
const GRAPH_ONLY: &[&str] = &[
    "upload",
    "max_requests_per_10min",
    "max_upload_per_5min",
    "x_headers",
    "mime_route",
    "concurrency_scope",
];
const EWS_ONLY: &[&str] = &["service_user", "server_version", "batch_items"];
/// The client credentials keys of Graph and EWS `oauth` logins.
const OAUTH_KEYS: [&str; 5] = [
    "tenant",
    "oauth_token_url",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];
/// Keys of IMAP and POP3 servers that Graph and EWS do not take.
const SOCKET_ONLY: &[&str] = &["master_user", "master_separator", "oauth_token_file"];

const GRAPH_URL: &str = "https://graph.microsoft.com";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const EWS_SCOPE: &str = "https://outlook.office365.com/.default";
/// Outlook's limits per app and mailbox (Microsoft Graph throttling limits).
const GRAPH_MAX_CONNECTIONS: u32 = 4;
const GRAPH_REQUESTS_PER_10MIN: NonZeroU32 = NonZeroU32::new(10_000).expect("> 0");
const GRAPH_UPLOAD_PER_5MIN: u64 = 150 << 20;
/// `RequestServerVersion` values EWS accepts (Exchange 2007 to 2016 schemas).
const SERVER_VERSIONS: [&str; 8] = [
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2016",
];
const DEFAULT_SERVER_VERSION: &str = "Exchange2013_SP1";
const DEFAULT_BATCH_ITEMS: u32 = 10;
/// Exchange checks its budget after each item of a request; big batches stall.
const MAX_BATCH_ITEMS: u32 = 100;

/// How to reach a Graph or EWS target: what `[target]` says beyond host, port and TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The service URL as written, trailing '/' trimmed: Graph's root without the version
    /// segment (`https://graph.microsoft.com`), or the EWS endpoint
    /// (`https://mail.contoso.com/EWS/Exchange.asmx`).
    pub url: String,
    /// Graph: how messages are created. [`GraphUpload::Json`] for EWS.
    pub upload: GraphUpload,
    /// EWS: the `RequestServerVersion` sent with every request. Empty for Graph.
    pub server_version: String,
    /// EWS: messages per `CreateItem` request, 1 to 100. 1 for Graph.
    pub batch_items: u32,
    /// Graph: requests per mailbox in any 10 minutes (Outlook allows 10,000 per app and
    /// mailbox). `u32::MAX` for EWS, which has no such budget: Exchange throttles by
    /// policy and says when (`ErrorServerBusy` with `BackOffMilliseconds`).
    pub max_requests_per_10min: u32,
    /// Graph: bytes uploaded per mailbox in any 5 minutes (Outlook allows 150 MB).
    /// `u64::MAX` for EWS, as above.
    pub max_upload_bytes_per_5min: u64,
    /// What the target keeps beyond the basics (`x_headers`, `keyword_categories`,
    /// `mime_route`).
    pub fidelity: ExchangeFidelity,
}

/// How a Graph target creates messages; both make a non-draft item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum GraphUpload {
    /// `upload = "json"` (the default): v1.0 JSON create with the MAPI properties that
    /// keep dates and clear the draft bit. Supported in production; raw headers and the
    /// MIME structure are not kept.
    #[default]
    Json,
    /// `upload = "import-mime"`: beta `importMime`, which keeps the full MIME but not the
    /// received date. Needs `Mail-Advanced.ReadWrite.All`.
    ImportMime,
}

impl fmt::Display for GraphUpload {
    /// The manifest spelling: `json`, `import-mime`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GraphUpload::Json => "json",
            GraphUpload::ImportMime => "import-mime",
        })
    }
}

/// Where a url points, checked.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    url: String,
    host: String,
    port: u16,
    tls: TlsMode,
}

/// Reports the Graph and EWS keys in an IMAP or POP3 server table.
pub(super) fn report_http_keys(f: &Fields<'_, '_>, sink: &mut Sink) {
    for key in HTTP_KEYS {
        let with = if GRAPH_ONLY.contains(key) {
            "kind = \"graph\""
        } else if EWS_ONLY.contains(key) {
            "kind = \"ews\""
        } else {
            "kind = \"graph\" or \"ews\""
        };
        unused(f, sink, key, &format!("only used with {with}"));
    }
}

/// Reports `key` if present: `"{name}: {why}; remove it"`.
fn unused(f: &Fields<'_, '_>, sink: &mut Sink, key: &str, why: &str) {
    if let Some((_, at)) = f.get(key) {
        sink.at(Some(at), format!("{}: {why}; remove it", f.name(key)));
    }
}

/// Reads a Graph or EWS `[target]` (`kind` is one of them); `connections` is
/// `max_connections_per_mailbox` as read.
pub(super) fn read(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    kind: ServerKind,
    base_dir: &Path,
    connections: NonZeroU32,
) -> Reached {
    for key in ["host", "port", "tls"] {
        unused(f, sink, key, "graph and ews targets take url instead");
    }
    for key in SOCKET_ONLY {
        let why = if *key == "master_user" && kind == ServerKind::Ews {
            "only used with kind = \"imap\" (ews impersonation takes service_user)"
        } else {
            "only used with kind = \"imap\""
        };
        unused(f, sink, key, why);
    }
    let (theirs, other) = match kind {
        ServerKind::Graph => (EWS_ONLY, "kind = \"ews\""),
        _ => (GRAPH_ONLY, "kind = \"graph\""),
    };
    for key in theirs {
        unused(f, sink, key, &format!("only used with {other}"));
    }
    let endpoint = read_url(f, sink, kind);
    let (http, login, password) = match kind {
        ServerKind::Graph => read_graph(f, sink, base_dir, connections),
        _ => read_ews(f, sink, base_dir),
    };
    let url = endpoint.as_ref().map(|e| e.url.clone());
    let fidelity = exchange_options::read(f, sink, kind);
    if kind == ServerKind::Graph
        && fidelity.mime_route == exchange_options::MimeRoute::ImportMime
        && http.upload == GraphUpload::ImportMime
        && let Some((_, at)) = f.get("mime_route")
    {
        sink.at(
            Some(at),
            format!(
                "{}: upload = \"import-mime\" sends every message by importMime already; \
                 remove mime_route (it is for upload = \"json\")",
                f.name("mime_route")
            ),
        );
    }
    Reached {
        host: endpoint.as_ref().map(|e| e.host.clone()),
        port: endpoint.as_ref().map(|e| e.port),
        tls: endpoint.as_ref().map_or(TlsMode::Implicit, |e| e.tls),
        login,
        password,
        http: url.map(|url| HttpTarget {
            url,
            fidelity,
            ..http
        }),
    }
}

/// `url`: required for EWS, Graph's public endpoint by default.
fn read_url(f: &Fields<'_, '_>, sink: &mut Sink, kind: ServerKind) -> Option<Endpoint> {
    let example = match kind {
        ServerKind::Graph => GRAPH_URL,
        _ => "https://mail.contoso.com/EWS/Exchange.asmx",
    };
    let (written, at) = match f.nonblank(sink, "url", "the service's https:// URL") {
        Some((url, at)) => (url, Some(at)),
        None if f.get("url").is_some() => return None,
        None if kind == ServerKind::Graph => (GRAPH_URL.to_owned(), None),
        None => {
            f.missing(sink, "url", &format!("\"{example}\""));
            return None;
        }
    };
    match check_url(&written, kind, example) {
        Ok(e) => Some(e),
        Err(why) => {
            sink.at(at, format!("{}: {why}", f.name("url")));
            None
        }
    }
}

/// Parses a service URL: `https://`, or `http://` to a loopback host.
fn check_url(written: &str, kind: ServerKind, example: &str) -> Result<Endpoint, String> {
    let url = url::Url::parse(written)
        .map_err(|e| format!("\"{written}\" is not a URL ({e}); write it like \"{example}\""))?;
    // Never echo a URL with credentials in it: the password would land in a log.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds a user name or password; remove them (logins go in login, \
                    service_user and password)"
                .to_owned(),
        );
    }
    let tls = match url.scheme() {
        "https" => TlsMode::Implicit,
        "http" => TlsMode::None,
        _ => {
            return Err(format!(
                "\"{written}\" is not an http(s) URL; write it like \"{example}\""
            ));
        }
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => {
            return Err(format!(
                "\"{written}\" has no host; write it like \"{example}\""
            ));
        }
    };
    if tls == TlsMode::None && !matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") {
        return Err(format!(
            "\"{written}\" is plain http, which would send credentials and mail in the clear; \
             use https:// (plain http is only for 127.0.0.1, ::1 or localhost)"
        ));
    }
    let trimmed = written.trim_end_matches('/');
    if kind == ServerKind::Graph
        && let Some(version) = ["/v1.0", "/beta"].iter().find(|v| trimmed.ends_with(**v))
    {
        return Err(format!(
            "\"{written}\" names the API version; leave out {version}, like \"{GRAPH_URL}\" \
             (mailhaul picks the version per request)"
        ));
    }
    Ok(Endpoint {
        url: trimmed.to_owned(),
        host,
        port: url.port_or_known_default().unwrap_or(match tls {
            TlsMode::None => 80,
            _ => 443,
        }),
        tls,
    })
}

/// Graph's own keys and login. Returns the target's settings (url filled in later), the
/// login, and the mailboxes' default password (a placeholder: Graph uses none).
fn read_graph(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    base_dir: &Path,
    connections: NonZeroU32,
) -> (HttpTarget, Option<Login>, Option<SecretRef>) {
    if connections.get() > GRAPH_MAX_CONNECTIONS
        && let Some((_, at)) = f.get("max_connections_per_mailbox")
    {
        sink.at(
            Some(at),
            format!(
                "{}: {connections} is over Graph's limit of {GRAPH_MAX_CONNECTIONS} concurrent \
                 requests per mailbox; write 1 to {GRAPH_MAX_CONNECTIONS}",
                f.name("max_connections_per_mailbox")
            ),
        );
    }
    let upload_choices = [
        ("json", GraphUpload::Json),
        ("import-mime", GraphUpload::ImportMime),
    ];
    let target = HttpTarget {
        url: String::new(),
        upload: f
            .choice(sink, "upload", &upload_choices)
            .unwrap_or_default(),
        server_version: String::new(),
        batch_items: 1,
        max_requests_per_10min: f
            .count(sink, "max_requests_per_10min", GRAPH_REQUESTS_PER_10MIN)
            .get(),
        max_upload_bytes_per_5min: size(f, sink, "max_upload_per_5min")
            .unwrap_or(GRAPH_UPLOAD_PER_5MIN),
        fidelity: ExchangeFidelity::default(),
    };
    unused(
        f,
        sink,
        "password",
        "only used with kind = \"imap\" or \"ews\" (graph logs in with oauth_client_secret)",
    );
    let login_ok = match f.get("login") {
        None => true,
        Some(_) => f.choice(sink, "login", &[("oauth", ())]).is_some(),
    };
    let login = if login_ok {
        read_client_credentials(f, sink, base_dir, GRAPH_SCOPE).map(Login::XOAuth2)
    } else {
        None
    };
    (target, login, Some(login::unused_password()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EwsLogin {
    Password,
    Impersonation,
    OAuth,
}

/// EWS's own keys and login; returns as [`read_graph`] does.
fn read_ews(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    base_dir: &Path,
) -> (HttpTarget, Option<Login>, Option<SecretRef>) {
    let versions = SERVER_VERSIONS.map(|v| (v, v));
    let server_version = f
        .choice(sink, "server_version", &versions)
        .unwrap_or(DEFAULT_SERVER_VERSION);
    let batch_items = match f.integer(sink, "batch_items") {
        None => DEFAULT_BATCH_ITEMS,
        Some((n, at)) => match u32::try_from(n) {
            Ok(n @ 1..=MAX_BATCH_ITEMS) => n,
            _ => {
                sink.at(
                    Some(at),
                    format!(
                        "{}: {n} is not allowed; write 1 to {MAX_BATCH_ITEMS} (messages per \
                         CreateItem request), or leave it out for the default {DEFAULT_BATCH_ITEMS}",
                        f.name("batch_items")
                    ),
                );
                DEFAULT_BATCH_ITEMS
            }
        },
    };
    let target = HttpTarget {
        url: String::new(),
        upload: GraphUpload::Json,
        server_version: server_version.to_owned(),
        batch_items,
        max_requests_per_10min: u32::MAX,
        max_upload_bytes_per_5min: u64::MAX,
        fidelity: ExchangeFidelity::default(),
    };
    let choices = [
        ("password", EwsLogin::Password),
        ("impersonation", EwsLogin::Impersonation),
        ("oauth", EwsLogin::OAuth),
    ];
    let kind = match f.get("login") {
        None => Some(EwsLogin::Password),
        Some(_) => f.choice(sink, "login", &choices),
    };
    if kind.is_some() && kind != Some(EwsLogin::Impersonation) {
        unused(
            f,
            sink,
            "service_user",
            "only used with login = \"impersonation\"",
        );
    }
    if kind.is_some() && kind != Some(EwsLogin::OAuth) {
        for key in OAUTH_KEYS {
            unused(f, sink, key, "only used with login = \"oauth\"");
        }
    }
    let password = match kind {
        Some(EwsLogin::OAuth) => {
            let why = "only used with login = \"password\" or \"impersonation\"";
            unused(f, sink, "password", why);
            None
        }
        _ => f.secret(sink, "password", base_dir),
    };
    let login = match kind {
        None => None,
        Some(EwsLogin::Password) => Some(Login::Password),
        Some(EwsLogin::Impersonation) => read_impersonation(f, sink),
        Some(EwsLogin::OAuth) => {
            read_client_credentials(f, sink, base_dir, EWS_SCOPE).map(Login::XOAuth2)
        }
    };
    // Only Basic as each mailbox needs mailbox passwords; otherwise (or when `login`
    // is unreadable, reported once) the placeholder stands in for them.
    let password = match kind {
        Some(EwsLogin::Password) => password,
        _ => password.or_else(|| Some(login::unused_password())),
    };
    (target, login, password)
}

/// `login = "impersonation"`: Basic as `service_user` with `password`.
fn read_impersonation(f: &Fields<'_, '_>, sink: &mut Sink) -> Option<Login> {
    let user = f.nonblank(sink, "service_user", "the service account's login");
    if f.get("service_user").is_none() {
        f.missing(sink, "service_user", "\"svc-migrate@contoso.com\"");
    }
    if f.get("password").is_none() {
        f.missing(
            sink,
            "password",
            "\"env:NAME\" (the service account's password)",
        );
        return None;
    }
    user.map(|(user, _)| Login::Master { user })
}

/// The client credentials grant: `tenant` (or `oauth_token_url`), `oauth_client_id`,
/// `oauth_client_secret`, and `oauth_scope` (`default_scope` when absent).
fn read_client_credentials(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    base_dir: &Path,
    default_scope: &str,
) -> Option<TokenSource> {
    let tenant = f
        .nonblank(sink, "tenant", "the tenant's domain or id")
        .and_then(|(t, at)| {
            let ok = t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                sink.at(
                    Some(at),
                    format!(
                        "{}: \"{t}\" is not a tenant; write its domain (like \
                         contoso.onmicrosoft.com) or its id (a GUID)",
                        f.name("tenant")
                    ),
                );
            }
            ok.then_some(t)
        });
    let token_url = f
        .nonblank(sink, "oauth_token_url", "the token endpoint's URL")
        .and_then(|(u, at)| match login::check_url(&u) {
            Ok(()) => Some(u),
            Err(why) => {
                sink.at(Some(at), format!("{}: {why}", f.name("oauth_token_url")));
                None
            }
        });
    let url = match (f.get("tenant"), f.get("oauth_token_url")) {
        (None, None) => {
            f.missing(
                sink,
                "tenant",
                "\"contoso.onmicrosoft.com\" (or set oauth_token_url)",
            );
            None
        }
        (Some(_), Some((_, at))) => {
            let why = "set together with tenant, which names the token endpoint already; \
                       keep one";
            sink.at(Some(at), format!("{}: {why}", f.name("oauth_token_url")));
            None
        }
        (Some(_), None) => {
            tenant.map(|t| format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token"))
        }
        (None, Some(_)) => token_url,
    };
    let client_id = f.nonblank(sink, "oauth_client_id", "the application (client) id");
    if f.get("oauth_client_id").is_none() {
        let example = "\"00000000-0000-0000-0000-000000000000\"";
        f.missing(sink, "oauth_client_id", example);
    }
    let client_secret = f.secret(sink, "oauth_client_secret", base_dir);
    if f.get("oauth_client_secret").is_none() {
        f.missing(sink, "oauth_client_secret", "\"env:OAUTH_SECRET\"");
    }
    let scope = f
        .nonblank(sink, "oauth_scope", "the scope to ask for")
        .map_or_else(|| default_scope.to_owned(), |(s, _)| s);
    Some(TokenSource::ClientCredentials {
        url: url?,
        client_id: client_id?.0,
        client_secret: client_secret?,
        scope,
    })
}
