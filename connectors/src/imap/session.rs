//! [`ImapSession`]: a logged-in IMAP connection and the one loop that runs commands.
//!
//! Every command goes through [`ImapSession::exec`] (or the APPEND writer, which uses the
//! same reader): send, hand each untagged response to a handler, stop at the tagged
//! completion and turn `NO`/`BAD` into [`ConnectorError::No`]/[`ConnectorError::Bad`] with
//! the server's text intact (async-imap's own errors flatten it to a debug string).
//!
//! Invariant: after a timeout, an I/O error or a `BYE`, the stream position is unknown,
//! so the session marks itself broken and refuses further commands (a transient error:
//! the caller reconnects). Nothing is ever sent into a desynchronised stream.

use super::conn::Stream;
use crate::error::ConnectorError;
use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Capability, RequestId, Response, ResponseCode, Status};
use std::io;
use std::time::Duration;
use tokio::time::timeout;

/// The server capabilities mailhaul cares about, read after LOGIN (RFC 3501 §6.1.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 4315: APPENDUID, needed for exactly-once appends.
    pub uidplus: bool,
    /// RFC 3502: several messages in one APPEND.
    pub multiappend: bool,
    /// RFC 7888: non-synchronising literals of any size.
    pub literal_plus: bool,
    /// RFC 6154: `\Sent`, `\Trash`, ... on LIST.
    pub special_use: bool,
    /// RFC 2342: NAMESPACE.
    pub namespace: bool,
    /// RFC 3516: BINARY, so APPEND takes a literal8 (`~{n}`), which may hold NUL.
    pub binary: bool,
}

impl Capabilities {
    fn add(&mut self, atom: &str) {
        match atom.to_ascii_uppercase().as_str() {
            "UIDPLUS" => self.uidplus = true,
            "MULTIAPPEND" => self.multiappend = true,
            "LITERAL+" => self.literal_plus = true,
            "SPECIAL-USE" => self.special_use = true,
            "NAMESPACE" => self.namespace = true,
            "BINARY" => self.binary = true,
            _ => {}
        }
    }
}

/// A logged-in IMAP session. Source and target operations are in `source.rs`,
/// `target.rs` and `append.rs`; all of them take `&mut self`, one command at a time.
#[derive(Debug)]
pub struct ImapSession {
    pub(super) inner: async_imap::Session<Stream>,
    pub(super) server: String,
    pub(super) caps: Capabilities,
    pub(super) command_timeout: Duration,
    /// Why the session can no longer be used, once it cannot.
    broken: Option<String>,
    /// The hierarchy delimiter, once asked (`LIST "" ""`).
    pub(super) delimiter: Option<Option<char>>,
    /// `APPENDLIMIT=<n>` from CAPABILITY (RFC 7889 §3): the largest message, in octets,
    /// that APPEND takes into any mailbox.
    append_limit: Option<u64>,
    /// The text of the server's greeting (which software it is).
    pub(super) greeting: String,
    /// The manifest's `folder_prefix`/`separator`, over what NAMESPACE says.
    pub(super) imap_options: mailhaul_proto::manifest::ImapOptions,
    /// The personal namespace and the others, once asked.
    pub(super) naming: Option<crate::mapping::Naming>,
}

/// What a successful tagged completion carried that callers need.
#[derive(Debug, Default)]
pub(super) struct Done {
    /// `[APPENDUID uidvalidity uid-set]` (RFC 4315).
    pub(super) append_uid: Option<(u32, Vec<UidSetMember>)>,
}

impl ImapSession {
    /// Wraps a logged-in session and reads its capabilities.
    pub(super) async fn start(
        inner: async_imap::Session<Stream>,
        server: String,
        command_timeout: Duration,
        greeting: String,
    ) -> Result<Self, ConnectorError> {
        let mut session = ImapSession {
            inner,
            server,
            caps: Capabilities::default(),
            command_timeout,
            broken: None,
            delimiter: None,
            append_limit: None,
            greeting,
            imap_options: Default::default(),
            naming: None,
        };
        let mut caps = Capabilities::default();
        let mut append_limit = None;
        session
            .exec("CAPABILITY", "CAPABILITY", |resp| {
                if let Response::Capabilities(list) = resp {
                    for cap in list {
                        if let Capability::Atom(atom) = cap {
                            caps.add(atom);
                            append_limit = append_limit.or(parse_append_limit(atom));
                        }
                    }
                }
                Ok(())
            })
            .await?;
        session.caps = caps;
        session.append_limit = append_limit;
        Ok(session)
    }

    /// The capabilities read after login.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// The largest message the server takes by APPEND, in octets, when it advertises one
    /// for all mailboxes (`APPENDLIMIT=<n>`, RFC 7889 §3). `None` when it advertises none,
    /// or only per mailbox (a bare `APPENDLIMIT`).
    pub fn append_limit(&self) -> Option<u64> {
        self.append_limit
    }

    /// Stops using the capabilities that `allowed` leaves out (each field is ANDed): for
    /// servers whose MULTIAPPEND or LITERAL+ misbehaves, and for tests of the fallback
    /// paths. Capabilities are never added.
    pub fn restrict_capabilities(&mut self, allowed: Capabilities) {
        self.caps.uidplus &= allowed.uidplus;
        self.caps.multiappend &= allowed.multiappend;
        self.caps.literal_plus &= allowed.literal_plus;
        self.caps.special_use &= allowed.special_use;
        self.caps.namespace &= allowed.namespace;
        self.caps.binary &= allowed.binary;
    }

    /// The server's greeting text (`Cyrus IMAP 3.6.1 server ready`), which names the
    /// software where a behaviour depends on it.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// The manifest's `bare_lf` for this server.
    pub fn bare_lf_policy(&self) -> mailhaul_proto::manifest::BareLf {
        self.imap_options.bare_lf
    }

    /// Whether the server is Cyrus IMAP (by its greeting).
    pub fn is_cyrus(&self) -> bool {
        self.greeting.contains("Cyrus IMAP")
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The limit for each command (APPEND adds one second per MiB sent).
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Changes the limit for each command.
    pub fn set_command_timeout(&mut self, limit: Duration) {
        self.command_timeout = limit;
    }

    /// Logs out (RFC 3501 §6.1.3). A broken session is just dropped.
    ///
    /// # Errors
    /// The server's refusal or a transport failure; the connection is closed either way.
    pub async fn logout(mut self) -> Result<(), ConnectorError> {
        if self.broken.is_some() {
            return Ok(());
        }
        let limit = self.command_timeout;
        match timeout(limit, self.inner.logout()).await {
            Err(_) => Err(ConnectorError::Timeout {
                command: "LOGOUT".into(),
                after: limit,
            }),
            Ok(Ok(())) | Ok(Err(async_imap::error::Error::ConnectionLost)) => Ok(()),
            Ok(Err(e)) => Err(ConnectorError::Protocol(format!("logout: {e}"))),
        }
    }

    /// Runs one tagged command; `on_untagged` sees every other response on the way.
    /// A handler error is returned after the command completes, so the stream stays in
    /// step; the first one wins.
    pub(super) async fn exec<F>(
        &mut self,
        command: &str,
        name: &str,
        mut on_untagged: F,
    ) -> Result<Done, ConnectorError>
    where
        F: FnMut(&Response<'_>) -> Result<(), ConnectorError> + Send,
    {
        self.ensure_usable()?;
        let limit = self.command_timeout;
        let inner = &mut self.inner;
        let run = async {
            let id = inner.run_command(command).await.map_err(transport)?;
            read_done(inner, &id, name, &mut on_untagged).await
        };
        let result = timeout(limit, run).await;
        self.settle(name, limit, result)
    }

    pub(super) fn ensure_usable(&self) -> Result<(), ConnectorError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(ConnectorError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "session to {} is unusable after {why}; reconnect",
                    self.server
                ),
            ))),
        }
    }

    /// Turns a timed command's outcome into the caller's result, and marks the session
    /// broken when the stream can no longer be trusted.
    pub(super) fn settle<T>(
        &mut self,
        name: &str,
        limit: Duration,
        result: Result<Result<T, ConnectorError>, tokio::time::error::Elapsed>,
    ) -> Result<T, ConnectorError> {
        let result = result.unwrap_or_else(|_| {
            Err(ConnectorError::Timeout {
                command: name.to_owned(),
                after: limit,
            })
        });
        if let Err(
            e @ (ConnectorError::Timeout { .. }
            | ConnectorError::Io(_)
            | ConnectorError::Bye { .. }),
        ) = &result
        {
            self.broken = Some(format!("{name} failed: {e}"));
        }
        result
    }

    /// A mailbox name as a command argument: a quoted string (RFC 3501 §4.3), or, for
    /// names a quoted string cannot carry, a non-synchronising literal when the server
    /// offers LITERAL+.
    pub(super) fn mailbox_arg(&self, raw: &str) -> Result<String, ConnectorError> {
        if let Some(q) = quoted(raw) {
            return Ok(q);
        }
        if self.caps.literal_plus && !raw.contains('\0') {
            return Ok(format!("{{{}+}}\r\n{raw}", raw.len()));
        }
        Err(ConnectorError::Protocol(format!(
            "mailbox name {raw:?} needs a literal and the server does not offer LITERAL+"
        )))
    }
}

/// `s` as an IMAP quoted string, or `None` when a quoted string cannot carry it (8-bit,
/// CR, LF, NUL: RFC 3501 §9 `QUOTED-CHAR`).
pub(super) fn quoted(s: &str) -> Option<String> {
    if !s
        .bytes()
        .all(|b| (0x01..=0x7f).contains(&b) && b != b'\r' && b != b'\n')
    {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Some(out)
}

/// Any async-imap error met while sending, as ours (they are all transport-level there).
pub(super) fn transport(e: async_imap::error::Error) -> ConnectorError {
    match e {
        async_imap::error::Error::Io(io) => ConnectorError::Io(io),
        other => ConnectorError::Io(io::Error::other(other.to_string())),
    }
}

/// Reads responses until the tagged completion of `id`.
pub(super) async fn read_done<F>(
    inner: &mut async_imap::Session<Stream>,
    id: &RequestId,
    name: &str,
    on_untagged: &mut F,
) -> Result<Done, ConnectorError>
where
    F: FnMut(&Response<'_>) -> Result<(), ConnectorError> + Send,
{
    match read_reply(inner, id, name, on_untagged, false).await? {
        Reply::Done(done) => Ok(done),
        Reply::Continue => Err(ConnectorError::Protocol(format!(
            "unexpected continuation request during {name}"
        ))),
    }
}

/// Waits for the `+` continuation request of a synchronising literal (RFC 3501 §7.5);
/// a tagged refusal instead (e.g. the message is too big) is returned as the error.
pub(super) async fn wait_continue(
    inner: &mut async_imap::Session<Stream>,
    id: &RequestId,
    name: &str,
) -> Result<(), ConnectorError> {
    match read_reply(inner, id, name, &mut |_| Ok(()), true).await? {
        Reply::Continue => Ok(()),
        Reply::Done(_) => Err(ConnectorError::Protocol(format!(
            "{name} completed before all its literals were sent"
        ))),
    }
}

/// How [`read_reply`] stopped.
enum Reply {
    Continue,
    Done(Done),
}

async fn read_reply<F>(
    inner: &mut async_imap::Session<Stream>,
    id: &RequestId,
    name: &str,
    on_untagged: &mut F,
    until_continue: bool,
) -> Result<Reply, ConnectorError>
where
    F: FnMut(&Response<'_>) -> Result<(), ConnectorError> + Send,
{
    let mut first_error = None;
    let mut bye = None;
    loop {
        let Some(resp) = inner.read_response().await.map_err(ConnectorError::Io)? else {
            return Err(match bye {
                Some(text) => ConnectorError::Bye { text },
                None => ConnectorError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the server closed the connection during {name}"),
                )),
            });
        };
        match resp.parsed() {
            Response::Done {
                tag,
                status,
                outcome,
            } if tag == id => {
                let text = outcome_text(outcome.code.as_ref(), outcome.information.as_deref());
                return match status {
                    Status::Ok => match first_error {
                        Some(e) => Err(e),
                        None => Ok(Reply::Done(Done {
                            append_uid: match &outcome.code {
                                Some(ResponseCode::AppendUid(v, set)) => Some((*v, set.clone())),
                                _ => None,
                            },
                        })),
                    },
                    Status::No => Err(ConnectorError::No {
                        command: name.to_owned(),
                        text,
                    }),
                    Status::Bad => Err(ConnectorError::Bad {
                        command: name.to_owned(),
                        text,
                    }),
                    other => Err(ConnectorError::Protocol(format!(
                        "{name} completed with {other:?}: {text}"
                    ))),
                };
            }
            Response::Continue(_) if until_continue => return Ok(Reply::Continue),
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                // RFC 3501 §7.1.5: the server is closing; the EOF that follows is the error.
                bye = Some(outcome_text(
                    outcome.code.as_ref(),
                    outcome.information.as_deref(),
                ));
            }
            other => {
                if let Err(e) = on_untagged(other) {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
}

/// A reply's text with its response code put back in front (`[TRYCREATE] ...`):
/// imap-proto parses the codes it knows out of the text, and classification needs them.
pub(super) fn outcome_text(code: Option<&ResponseCode<'_>>, info: Option<&str>) -> String {
    let info = info.unwrap_or("");
    let code = match code {
        None => return info.to_owned(),
        Some(ResponseCode::Alert) => "ALERT".to_owned(),
        Some(ResponseCode::Parse) => "PARSE".to_owned(),
        Some(ResponseCode::TryCreate) => "TRYCREATE".to_owned(),
        Some(ResponseCode::ReadOnly) => "READ-ONLY".to_owned(),
        Some(ResponseCode::ReadWrite) => "READ-WRITE".to_owned(),
        Some(ResponseCode::UidNotSticky) => "UIDNOTSTICKY".to_owned(),
        Some(other) => format!("{other:?}"),
    };
    format!("[{code}] {info}")
}

/// `APPENDLIMIT=<number>` (RFC 7889 §3, case-insensitive) as octets; anything else,
/// including the bare per-mailbox form, is `None`.
fn parse_append_limit(atom: &str) -> Option<u64> {
    let (name, value) = atom.split_once('=')?;
    if !name.eq_ignore_ascii_case("APPENDLIMIT") || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_limit_from_capability() {
        for (atom, want) in [
            ("APPENDLIMIT=35882577", Some(35_882_577)),
            ("appendlimit=0", Some(0)),
            ("APPENDLIMIT", None),
            ("APPENDLIMIT=", None),
            ("APPENDLIMIT=-1", None),
            ("APPENDLIMIT=12MB", None),
            ("APPENDLIMIT=99999999999999999999999", None),
            ("X-APPENDLIMIT=5", None),
            ("UIDPLUS", None),
        ] {
            assert_eq!(parse_append_limit(atom), want, "{atom}");
        }
    }

    #[test]
    fn quoting() {
        for (raw, want) in [
            ("INBOX", Some("\"INBOX\"")),
            ("a\"b\\c", Some("\"a\\\"b\\\\c\"")),
            ("&BB4-", Some("\"&BB4-\"")),
            ("", Some("\"\"")),
            ("caf\u{e9}", None),
            ("a\r\nb", None),
        ] {
            assert_eq!(quoted(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn capabilities_are_case_insensitive() {
        let mut caps = Capabilities::default();
        for atom in ["uidplus", "MULTIAPPEND", "LITERAL+", "Special-Use", "IDLE"] {
            caps.add(atom);
        }
        assert_eq!(
            caps,
            Capabilities {
                uidplus: true,
                multiappend: true,
                literal_plus: true,
                special_use: true,
                ..Capabilities::default()
            }
        );
        let mut minus = Capabilities::default();
        minus.add("LITERAL-");
        assert!(!minus.literal_plus, "LITERAL- only allows 4 KiB literals");
    }

    #[test]
    fn outcome_text_keeps_codes() {
        assert_eq!(
            outcome_text(Some(&ResponseCode::TryCreate), Some("no such mailbox")),
            "[TRYCREATE] no such mailbox"
        );
        assert_eq!(
            outcome_text(None, Some("[OVERQUOTA] full")),
            "[OVERQUOTA] full"
        );
    }
}
