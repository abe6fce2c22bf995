//! `[source]` and `[target]`: which server, where it is, how it is protected, how to log
//! in. IMAP and POP3 servers are named by `host`, `port` and `tls`; Graph and EWS targets
//! by a `url` (read in `http_target`).
//!
//! Invariant: a key the chosen kind or login does not use is reported, never ignored, so
//! a manifest that validates means what it says.

use super::document::sub_table;
use super::fields::Fields;
use super::http_target::{self, HTTP_KEYS};
use super::login::{self, LOGIN_KEYS, Login};
use super::problem::{Origin, Sink};
use super::pst_csv::{self, PST_KEYS, PstSource};
use super::secret::SecretRef;
use super::{BareLf, HttpTarget, ImapOptions, ServerConfig, ServerKind, TlsMode};
use std::num::NonZeroU32;
use std::path::Path;
use toml::de::DeValue;

/// `[source]` / `[target]` keys read here; `LOGIN_KEYS` and `HTTP_KEYS` are the others.
const SERVER: &[&str] = &[
    "kind",
    "host",
    "port",
    "tls",
    "tls_verify",
    "ca_file",
    "max_connections_per_mailbox",
    "password",
    "folder_prefix",
    "separator",
    "bare_lf",
];

/// Default `max_connections_per_mailbox`: below Dovecot's 10 per user and IP, and
/// Graph's 4 concurrent requests per mailbox.
const DEFAULT_CONNECTIONS: NonZeroU32 = NonZeroU32::new(4).expect("4 > 0");

/// What a kind-specific reader found: the address, the login, and the mailboxes'
/// default password.
pub(super) struct Reached {
    /// Host name or address; `None` when missing or bad (already reported).
    pub(super) host: Option<String>,
    /// The port written (or taken from a URL); `None` for the kind's default.
    pub(super) port: Option<u16>,
    pub(super) tls: TlsMode,
    /// `None` when the login could not be read (already reported).
    pub(super) login: Option<Login>,
    /// The mailboxes' default password: `password`, or a placeholder when the login
    /// uses none (or could not be read, so mailboxes are not blamed for it).
    pub(super) password: Option<SecretRef>,
    /// Graph and EWS only.
    pub(super) http: Option<HttpTarget>,
}

/// What [`read_server`] read: the config if complete, its password either way, and for
/// a PST source where its files are (and where `mapping_csv` was written).
pub(super) type ReadServer = (
    Option<ServerConfig>,
    Option<SecretRef>,
    Option<(PstSource, Origin)>,
);

/// `[source]` or `[target]`: the config if complete, and its password either way.
pub(super) fn read_server(
    top: &Fields<'_, '_>,
    sink: &mut Sink,
    side: &str,
    base_dir: &Path,
) -> ReadServer {
    let Some((table, header)) = sub_table(top, sink, side) else {
        if top.get(side).is_none() {
            sink.at(
                None,
                format!("[{side}]: missing; add a [{side}] table with kind, host and tls"),
            );
        }
        return (None, None, None);
    };
    let before = sink.problems.len();
    let place = format!("[{side}]");
    let known: Vec<&str> = SERVER
        .iter()
        .chain(LOGIN_KEYS)
        .chain(HTTP_KEYS)
        .chain(if side == "source" { PST_KEYS } else { &[] })
        .copied()
        .collect();
    let f = Fields::new(sink, table, format!("{side}."), place, Some(header), &known);
    let kinds: &[(&str, ServerKind)] = if side == "source" {
        &[
            ("imap", ServerKind::Imap),
            ("pop3", ServerKind::Pop3),
            ("pst", ServerKind::Pst),
        ]
    } else {
        // POP3 only reads mail; nothing can be appended over it.
        &[
            ("imap", ServerKind::Imap),
            ("graph", ServerKind::Graph),
            ("ews", ServerKind::Ews),
        ]
    };
    let kind = match f.get("kind") {
        Some((DeValue::String(k), at))
            if side == "source" && matches!(k.as_ref(), "graph" | "ews") =>
        {
            let why =
                "is a target only: mail is read over \"imap\", \"pop3\" or from \"pst\" files";
            sink.at(Some(at), format!("{}: \"{k}\" {why}", f.name("kind")));
            None
        }
        _ => f.choice(sink, "kind", kinds),
    };
    if f.get("kind").is_none() {
        f.missing(sink, "kind", "\"imap\"");
    }
    // Only the TOML boolean turns verification off: a string like "no" is an error.
    let tls_verify = f.boolean(sink, "tls_verify").unwrap_or(true);
    let ca_file = f.nonblank(sink, "ca_file", "the path of a PEM file");
    let max_connections_per_mailbox =
        f.count(sink, "max_connections_per_mailbox", DEFAULT_CONNECTIONS);
    let mut pst = None;
    let imap = read_imap_options(&f, sink, kind);
    let reached = match kind {
        Some(k @ (ServerKind::Graph | ServerKind::Ews)) => {
            http_target::read(&f, sink, k, base_dir, max_connections_per_mailbox)
        }
        Some(ServerKind::Pst) => {
            let (reached, files) = pst_csv::read_source(&f, sink, base_dir);
            pst = files;
            reached
        }
        _ => {
            if side == "source" {
                for key in PST_KEYS {
                    if let Some((_, at)) = f.get(key) {
                        let why = "only used with kind = \"pst\"; remove it";
                        sink.at(Some(at), format!("{}: {why}", f.name(key)));
                    }
                }
            }
            read_socket_server(&f, sink, kind, base_dir)
        }
    };
    if let Some((_, at)) = &ca_file
        && reached.tls == TlsMode::None
    {
        let why = if reached.http.is_some() {
            "has no effect with an http:// url; remove it or use https://"
        } else {
            "has no effect with tls = \"none\"; remove it or turn TLS on"
        };
        sink.at(Some(*at), format!("{}: {why}", f.name("ca_file")));
    }
    let Reached {
        host,
        port,
        tls,
        login,
        password,
        http,
    } = reached;
    // The config is usable only if reading the table recorded no problem.
    let config = match (kind, host, login) {
        (Some(kind), Some(host), Some(login)) if sink.problems.len() == before => {
            Some(ServerConfig {
                port: port.unwrap_or_else(|| kind.default_port(tls)),
                kind,
                host,
                tls,
                tls_verify,
                ca_file: ca_file.map(|(p, _)| base_dir.join(p)),
                max_connections_per_mailbox,
                password: password.clone(),
                login,
                http,
                imap,
            })
        }
        _ => None,
    };
    (config, password, pst)
}

/// `folder_prefix` and `separator` (IMAP only: the personal namespace when the server's
/// NAMESPACE answer is wrong or missing) and `bare_lf`.
fn read_imap_options(f: &Fields<'_, '_>, sink: &mut Sink, kind: Option<ServerKind>) -> ImapOptions {
    let mut out = ImapOptions::default();
    if kind.is_some() && kind != Some(ServerKind::Imap) {
        for key in ["folder_prefix", "separator", "bare_lf"] {
            if let Some((_, at)) = f.get(key) {
                let why =
                    "only used with kind = \"imap\" (folder names of an IMAP server); remove it";
                sink.at(Some(at), format!("{}: {why}", f.name(key)));
            }
        }
        return out;
    }
    if let Some(v) = f.choice(
        sink,
        "bare_lf",
        &[("crlf", BareLf::Crlf), ("refuse", BareLf::Refuse)],
    ) {
        out.bare_lf = v;
    }
    if let Some((prefix, at)) = f.string(sink, "folder_prefix") {
        if prefix.contains(['\r', '\n', '\0', '*', '%']) {
            let why = "holds a line break, NUL, `*` or `%`; write the prefix the server shows, e.g. \"INBOX.\" or \"\"";
            sink.at(Some(at), format!("{}: {why}", f.name("folder_prefix")));
        } else {
            out.folder_prefix = Some(prefix);
        }
    }
    if let Some((sep, at)) = f.string(sink, "separator") {
        let mut chars = sep.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_punctuation() && !matches!(c, '*' | '%' | '"' | '\\') => {
                out.separator = Some(c);
            }
            _ => {
                let why = format!(
                    "{sep:?} is not a hierarchy separator; write one punctuation character such as \".\" or \"/\""
                );
                sink.at(Some(at), format!("{}: {why}", f.name("separator")));
            }
        }
    }
    out
}

/// An IMAP or POP3 server (or one whose kind could not be read): `host`, `port`, `tls`
/// and the SASL-style logins of `login.rs`.
fn read_socket_server(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    kind: Option<ServerKind>,
    base_dir: &Path,
) -> Reached {
    if kind.is_some() {
        http_target::report_http_keys(f, sink);
    }
    let host = f
        .nonblank(sink, "host", "the server's host name")
        .map(|(h, _)| h);
    // With an unreadable kind, a `url` says a Graph or EWS target was meant.
    if f.get("host").is_none() && (kind.is_some() || f.get("url").is_none()) {
        f.missing(sink, "host", "\"imap.example.com\"");
    }
    let tls_choices = [
        ("implicit", TlsMode::Implicit),
        ("starttls", TlsMode::StartTls),
        ("none", TlsMode::None),
    ];
    let tls = f
        .choice(sink, "tls", &tls_choices)
        .unwrap_or(TlsMode::Implicit);
    let port = f
        .integer(sink, "port")
        .and_then(|(n, at)| match u16::try_from(n) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                let why = "is not a port; write 1-65535, or leave it out for the default";
                sink.at(Some(at), format!("{}: {n} {why}", f.name("port")));
                None
            }
        });
    let mut password = f.secret(sink, "password", base_dir);
    let login = login::read_login(f, sink, base_dir, f.get("password").is_some());
    if password.is_none() && !login.mailbox_password_needed {
        // Master and XOAUTH2 logins use no mailbox password (and an unreadable `login`
        // is reported once, not once per mailbox): the placeholder stands in for it.
        password = Some(login::unused_password());
    }
    if kind == Some(ServerKind::Pop3)
        && let Some(l) = &login.login
        && !matches!(l, Login::Password)
        && let Some((_, at)) = f.get("login")
    {
        let why = format!(
            "\"{}\" is not available for POP3 sources; use \"password\" (or migrate over IMAP)",
            l.name()
        );
        sink.at(Some(at), format!("{}: {why}", f.name("login")));
    }
    Reached {
        host,
        port,
        tls,
        login: login.login,
        password,
        http: None,
    }
}
