//! The manifest: one TOML file per tenant naming the source and target servers, the
//! options, and the mailboxes (inline `[[mailbox]]` tables and/or a CSV in Exchange
//! Online's IMAP-migration format).
//!
//! Invariants:
//! - Pure: this module parses text handed to it; reading files and the environment is
//!   `mailhaul_connectors::config`'s job.
//! - Validation reports every problem at once, each with `file:line` and the mailbox or
//!   CSV row it concerns ([`Problems`]); a [`Manifest`] only exists when there are none.
//! - A returned [`Manifest`] has every default applied: ports, passwords, users.
//! - The manifest never holds a plaintext secret; only CSV cells may ([`SecretRef`]).
//!
//! Loading is two steps so the caller does the I/O: [`Manifest::parse`] the TOML, then
//! [`Manifest::add_csv`] the CSV it names. [`Manifest::parse_with`] does both with a
//! reader callback and reports the TOML's and the CSV's problems together.

mod document;
mod exchange_options;
#[cfg(test)]
mod exchange_options_tests;
mod fields;
mod http_target;
#[cfg(test)]
mod http_target_tests;
mod login;
mod mailbox;
mod mailbox_csv;
mod options;
mod problem;
mod pst_csv;
mod secret;
mod server;
#[cfg(test)]
mod tests;

pub use exchange_options::{ConcurrencyScope, ExchangeFidelity, MAX_X_HEADERS, MimeRoute};
pub use http_target::{GraphUpload, HttpTarget};
pub use login::{Login, TokenSource};
pub use mailbox::MailboxSpec;
pub use options::{Filters, Options, Skip, parse_size};
pub use problem::{Origin, Problem, Problems};
pub use pst_csv::{PstFile, PstSource, TargetRoot};
pub use secret::SecretRef;

use crate::ids::{MailboxId, MigrationId};
use mailbox::{Defaults, RawMailbox, check_duplicates, resolve};
use problem::Sink;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

/// A validated manifest with every default applied.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The organisation's name, as written.
    pub tenant: String,
    /// The migration id: explicit `migration`, else derived from the tenant.
    pub migration: MigrationId,
    /// Where mail comes from.
    pub source: ServerConfig,
    /// Where mail goes.
    pub target: ServerConfig,
    /// Slicing, folder selection, discovery pacing.
    pub options: Options,
    /// Inline mailboxes first, then CSV rows, in file order; addresses unique ignoring case.
    /// With a PST source, one per distinct `Mailbox` of the mapping CSV.
    pub mailboxes: Vec<MailboxSpec>,
    /// A PST source's location and mapping CSV (`source.kind` is [`ServerKind::Pst`]).
    pub pst: Option<PstSource>,
}

/// The protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerKind {
    /// IMAP4rev1 (RFC 3501).
    Imap,
    /// POP3 (RFC 1939); a source only: its one mailbox goes to the target's INBOX.
    Pop3,
    /// Exchange Online through Microsoft Graph; a target only, with
    /// [`ServerConfig::http`] set.
    Graph,
    /// Exchange Web Services (Exchange Server 2013+, hosted Exchange); a target only,
    /// with [`ServerConfig::http`] set.
    Ews,
    /// Outlook PST files named by a Purview mapping CSV ([`Manifest::pst`]); a source
    /// only. Its [`ServerConfig`] names the location as `host` and has no login.
    Pst,
}

impl ServerKind {
    /// The port used when the manifest gives none: IMAP is 993 with implicit TLS
    /// (RFC 8314), 143 otherwise (RFC 3501); POP3 995 or 110. Graph and EWS take the
    /// port from their URL, whose scheme sets `tls`: https (implicit) is 443, plain http
    /// 80 (HTTP has no STARTTLS; the manifest never pairs it with these kinds).
    pub fn default_port(self, tls: TlsMode) -> u16 {
        match (self, tls) {
            (ServerKind::Imap, TlsMode::Implicit) => 993,
            (ServerKind::Imap, TlsMode::StartTls | TlsMode::None) => 143,
            (ServerKind::Pop3, TlsMode::Implicit) => 995,
            (ServerKind::Pop3, TlsMode::StartTls | TlsMode::None) => 110,
            (ServerKind::Graph | ServerKind::Ews, TlsMode::Implicit) => 443,
            (ServerKind::Graph | ServerKind::Ews, TlsMode::StartTls | TlsMode::None) => 80,
            (ServerKind::Pst, _) => 0,
        }
    }

    /// Whether the server is an HTTP service named by a URL (Graph, EWS) rather than a
    /// mail protocol on a socket (IMAP, POP3).
    pub fn is_http(self) -> bool {
        matches!(self, ServerKind::Graph | ServerKind::Ews)
    }
}

impl fmt::Display for ServerKind {
    /// The manifest spelling: `imap`, `pop3`, `graph`, `ews`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::Imap => "imap",
            ServerKind::Pop3 => "pop3",
            ServerKind::Graph => "graph",
            ServerKind::Ews => "ews",
            ServerKind::Pst => "pst",
        })
    }
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, RFC 8314); the default.
    Implicit,
    /// Plain connection upgraded with STARTTLS (RFC 3501 §6.2.1).
    StartTls,
    /// No TLS at all: an explicit opt-in, for test servers.
    None,
}

impl fmt::Display for TlsMode {
    /// The manifest spelling: `implicit`, `starttls`, `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Implicit => "implicit",
            TlsMode::StartTls => "starttls",
            TlsMode::None => "none",
        })
    }
}

/// One server, `[source]` or `[target]`, with defaults applied.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The protocol.
    pub kind: ServerKind,
    /// Host name or address; never empty. For Graph and EWS, the URL's host (an IPv6
    /// address without brackets).
    pub host: String,
    /// TCP port; the default for `kind` and `tls` when the manifest gives none. For
    /// Graph and EWS, the URL's port (443 for https, 80 for http by default).
    pub port: u16,
    /// Connection protection; `implicit` when the manifest gives none. For Graph and
    /// EWS, `implicit` for an https URL and `none` for http (loopback hosts only).
    pub tls: TlsMode,
    /// Whether to verify the server's certificate; `false` only when written explicitly.
    pub tls_verify: bool,
    /// An extra trust anchor (PEM), resolved against the manifest's directory.
    pub ca_file: Option<PathBuf>,
    /// Connections one mailbox may use at once, across all workers; for Graph and EWS,
    /// concurrent requests per mailbox (at most 4 for Graph, Microsoft's limit).
    pub max_connections_per_mailbox: NonZeroU32,
    /// Password for mailboxes that give none. With a master login (EWS impersonation)
    /// it is the master user's (service account's) password; with `xoauth2`, Graph, or
    /// EWS `oauth` (and no `password` written) an empty inline placeholder, since
    /// mailboxes then need none.
    pub password: Option<SecretRef>,
    /// How to log in; [`Login::Password`] when the manifest gives no `login`, except
    /// for Graph, which always uses [`Login::XOAuth2`] with client credentials.
    pub login: Login,
    /// Graph and EWS settings; `None` for IMAP and POP3.
    pub http: Option<HttpTarget>,
    /// IMAP settings of this server: its personal namespace as the manifest states it
    /// (over what NAMESPACE says), and what to do with bare LF a target refuses.
    pub imap: ImapOptions,
}

/// `folder_prefix`, `separator` and `bare_lf` of an IMAP `[source]`/`[target]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImapOptions {
    /// The personal namespace's prefix (`"INBOX."`, or `""` for none), over what the
    /// server's NAMESPACE (RFC 2342) answer says.
    pub folder_prefix: Option<String>,
    /// The hierarchy separator, over what the server says.
    pub separator: Option<char>,
    /// A target that refuses a message for its bare LF line ends (Cyrus: "Message
    /// contains bare newlines").
    pub bare_lf: BareLf,
}

/// What to do with a message a target refuses for its bare LF line ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BareLf {
    /// Send it again with every bare LF made CRLF, and say so (the default: the
    /// message arrives, changed only in its line ends, RFC 5322's own form).
    #[default]
    Crlf,
    /// Report the refusal with the server's words; the message is not copied.
    Refuse,
}

impl Manifest {
    /// Step 1: parse and check the TOML. `path` is used for messages and to resolve
    /// relative paths. Returns the manifest with inline mailboxes and the CSV path (if
    /// any, resolved against the manifest's directory) that still has to be read.
    ///
    /// # Errors
    /// Every problem found in the TOML, in line order.
    pub fn parse(text: &str, path: &Path) -> Result<(Manifest, Option<PathBuf>), Problems> {
        let mut sink = Sink::new(path, text);
        let draft = document::read_document(text, &mut sink);
        // With a PST source, the CSV to read next is the mapping CSV.
        let csv = match &draft.pst {
            Some((pst, _)) => Some(pst.mapping_csv.clone()),
            None => draft.csv.as_ref().map(|(p, _)| p.clone()),
        };
        let mut problems = sink.into_sorted();
        let csv_named = csv.is_some();
        let manifest = assemble(path, draft, Vec::new(), csv_named, &mut problems);
        order(&mut problems, path);
        match manifest {
            Some(m) if problems.is_empty() => Ok((m, csv)),
            _ => Err(Problems(problems)),
        }
    }

    /// Step 2: add the CSV's rows (`text` is the content of the file at `csv_path`),
    /// then re-run the cross-checks (duplicates across inline and CSV, passwords).
    /// All or nothing: on error the manifest is unchanged.
    ///
    /// # Errors
    /// Every problem found in the CSV or across inline and CSV mailboxes.
    pub fn add_csv(&mut self, csv_path: &Path, text: &str) -> Result<(), Problems> {
        let (rows, mut problems) = match &self.pst {
            Some(pst) => pst_csv::parse_rows(csv_path, text, &pst.location),
            None => mailbox_csv::parse_rows(csv_path, text),
        };
        let csv_empty = rows.is_empty() && problems.is_empty();
        let defaults = Defaults {
            source_password: self.source.password.as_ref(),
            target_password: self.target.password.as_ref(),
        };
        let new: Vec<MailboxSpec> = rows
            .into_iter()
            .filter_map(|raw| resolve(raw, defaults, &mut problems))
            .collect();
        check_duplicates(&self.mailboxes, &new, &mut problems);
        if self.mailboxes.is_empty() && csv_empty {
            problems.push(no_mailboxes(Origin::new(csv_path, 0)));
        }
        order(&mut problems, csv_path);
        Problems(problems).into_result()?;
        self.mailboxes.extend(new);
        Ok(())
    }

    /// Steps 1 and 2 together, reporting the TOML's and the CSV's problems at once.
    /// `read_csv` is called with the CSV's resolved path if the manifest names one; this
    /// module does no I/O itself.
    ///
    /// # Errors
    /// Every problem found; a CSV that cannot be read is one of them.
    pub fn parse_with(
        text: &str,
        path: &Path,
        mut read_csv: impl FnMut(&Path) -> std::io::Result<String>,
    ) -> Result<Manifest, Problems> {
        let mut sink = Sink::new(path, text);
        let mut draft = document::read_document(text, &mut sink);
        let mut rows = Vec::new();
        // Whether the CSV may hold mailboxes; an unreadable one is reported on its own.
        let mut csv_has_entries = false;
        if let Some((csv_path, named_at)) = draft.csv.take() {
            match read_csv(&csv_path) {
                Ok(csv_text) => {
                    let (parsed, csv_problems) = mailbox_csv::parse_rows(&csv_path, &csv_text);
                    csv_has_entries = !parsed.is_empty() || !csv_problems.is_empty();
                    sink.problems.extend(csv_problems);
                    rows = parsed;
                }
                Err(e) => {
                    csv_has_entries = true;
                    sink.problems.push(Problem {
                        origin: named_at,
                        message: format!(
                            "mailboxes_csv: cannot read {}: {e}; check the path (relative to the \
                         manifest's directory)",
                            csv_path.display()
                        ),
                    });
                }
            }
        }
        if let Some((pst, named_at)) = &draft.pst {
            match read_csv(&pst.mapping_csv) {
                Ok(csv_text) => {
                    let (parsed, csv_problems) =
                        pst_csv::parse_rows(&pst.mapping_csv, &csv_text, &pst.location);
                    csv_has_entries = !parsed.is_empty() || !csv_problems.is_empty();
                    sink.problems.extend(csv_problems);
                    rows = parsed;
                }
                Err(e) => {
                    csv_has_entries = true;
                    sink.problems.push(Problem {
                        origin: named_at.clone(),
                        message: format!(
                            "mapping_csv: cannot read {}: {e}; check the path (relative to the \
                             manifest's directory)",
                            pst.mapping_csv.display()
                        ),
                    });
                }
            }
        }
        let mut problems = sink.into_sorted();
        let manifest = assemble(path, draft, rows, csv_has_entries, &mut problems);
        order(&mut problems, path);
        match manifest {
            Some(m) if problems.is_empty() => Ok(m),
            _ => Err(Problems(problems)),
        }
    }

    /// The options in force for a mailbox: its own `options` table over the tenant's.
    pub fn options_for<'a>(&'a self, mailbox: &'a MailboxSpec) -> &'a Options {
        mailbox.options.as_ref().unwrap_or(&self.options)
    }

    /// The mailbox with this id (exact match, as written in the manifest or CSV).
    pub fn mailbox(&self, id: &MailboxId) -> Option<&MailboxSpec> {
        self.mailboxes.iter().find(|m| &m.id == id)
    }
}

/// Applies defaults to the inline mailboxes and `csv_rows`, runs the cross-checks, and
/// builds the manifest if the draft is complete. `csv_has_entries`: the CSV (read or
/// still to be read) may hold mailboxes, so their absence here is not a problem yet.
fn assemble(
    path: &Path,
    draft: document::Draft,
    csv_rows: Vec<RawMailbox>,
    csv_has_entries: bool,
    problems: &mut Vec<Problem>,
) -> Option<Manifest> {
    let defaults = Defaults {
        source_password: draft.source_password.as_ref(),
        target_password: draft.target_password.as_ref(),
    };
    if draft.mailbox_entries == 0 && !csv_has_entries {
        problems.push(no_mailboxes(Origin::new(path, 0)));
    }
    let mailboxes: Vec<MailboxSpec> = draft
        .mailboxes
        .into_iter()
        .chain(csv_rows)
        .filter_map(|raw| resolve(raw, defaults, problems))
        .collect();
    check_duplicates(&[], &mailboxes, problems);
    Some(Manifest {
        tenant: draft.tenant?,
        migration: draft.migration?,
        source: draft.source?,
        target: draft.target?,
        options: draft.options,
        mailboxes,
        pst: draft.pst.map(|(p, _)| p),
    })
}

fn no_mailboxes(origin: Origin) -> Problem {
    Problem {
        origin,
        message: "no mailboxes; add [[mailbox]] tables or set mailboxes_csv".to_owned(),
    }
}

/// Orders problems: `first_file`'s first, then the other file's; within a file by line,
/// whole-file problems last. Stable, so problems on one line keep their order.
fn order(problems: &mut [Problem], first_file: &Path) {
    problems.sort_by_key(|p| {
        (
            p.origin.file != first_file,
            p.origin.line == 0,
            p.origin.line,
        )
    });
}
