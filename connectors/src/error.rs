//! The connectors' error type and its retry class.
//!
//! Connectors classify their own failures ([`ConnectorError::class`]); they never retry.
//! Invariant: no variant carries a password or a message body, so every error can be
//! logged and shown to the admin as it is.

use mailhaul_proto::ErrorClass;
use mailhaul_proto::ids::Uid;
use std::time::Duration;
use thiserror::Error;

/// How long to wait when a server says "throttled" without saying for how long.
const DEFAULT_THROTTLE: Duration = Duration::from_secs(1);

/// A failure talking to a mail server.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The TCP connection could not be opened (DNS, refused, unreachable, timed out).
    #[error("cannot connect to {server}")]
    Connect {
        /// `host:port`.
        server: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up: bad CA file, handshake failure, certificate rejected.
    #[error("tls with {server}: {detail}")]
    Tls {
        /// `host:port`.
        server: String,
        /// What went wrong and what to check.
        detail: String,
        /// The handshake's I/O failure, when there was one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The server refused the login.
    #[error(
        "login as {user:?} on {server} was refused ({server_said}); check the login settings \
         for this mailbox in the manifest or the CSV (password, master user or OAuth settings)"
    )]
    Auth {
        /// The login name (never the password).
        user: String,
        /// `host:port`.
        server: String,
        /// The server's reply text.
        server_said: String,
    },
    /// The server answered something this client cannot work with.
    #[error("imap protocol: {0}")]
    Protocol(String),
    /// The connection failed mid-session.
    #[error("connection i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the session (`* BYE`), e.g. shutting down or too many connections.
    #[error("server closed the session: {text}")]
    Bye {
        /// The server's reply text.
        text: String,
    },
    /// The server refused a command (`NO`).
    #[error("server refused {command}: {text}")]
    No {
        /// The command's name (`APPEND`, `SELECT`, ...), without arguments.
        command: String,
        /// The server's reply text, response code included (`[OVERQUOTA] ...`).
        text: String,
    },
    /// The server rejected a command as malformed or not allowed now (`BAD`).
    #[error("server rejected {command} as bad: {text}")]
    Bad {
        /// The command's name, without arguments.
        command: String,
        /// The server's reply text.
        text: String,
    },
    /// One-by-one APPEND (no MULTIAPPEND) failed part way: `appended` are in the folder.
    #[error("appended {} message(s), then the next one failed", appended.len())]
    PartialAppend {
        /// UIDs of the messages appended before the failure, in item order.
        appended: Vec<Uid>,
        /// Why the next message failed.
        #[source]
        source: Box<ConnectorError>,
    },
    /// The POP3 server answered something this client cannot work with (RFC 1939).
    #[error("pop3 protocol: {0}")]
    Pop3Protocol(String),
    /// A message is bigger than the caller's size limit; it was not delivered.
    #[error(
        "message {message} is larger than the {limit}-byte limit; it is skipped (raise the \
         message size limit to carry it)"
    )]
    MessageTooLarge {
        /// Which message (`POP3 message 7`, ...).
        message: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// An HTTP service (Graph, EWS) refused or failed a request. The connector that got
    /// the answer classified it (status, error code, `Retry-After`, `BackOffMilliseconds`),
    /// so the class travels with the error instead of being read back from text.
    #[error("{service} {op}: {text}")]
    Service {
        /// `graph`, `ews`.
        service: &'static str,
        /// What was being done (`importMime`, `CreateItem`, `create folder`, ...).
        op: String,
        /// Status, error code and message as the service gave them, and what to do.
        text: String,
        /// Retry intent; `Throttled` carries the service's back-off.
        class: ErrorClass,
    },
    /// A failure on this machine, not the server's: a large message could not be
    /// spooled to disk (full, missing, not writable). It concerns the message at hand;
    /// the session is fine, and retrying at once will not help.
    #[error("{0}")]
    Local(std::io::Error),
    /// A command got no complete answer in time; the session is no longer usable.
    #[error("{command} got no answer within {after:?}")]
    Timeout {
        /// The command's name (or `connect`, `greeting`).
        command: String,
        /// The limit that ran out.
        after: Duration,
    },
}

impl ConnectorError {
    /// What a retrying caller should do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectorError::Connect { .. }
            | ConnectorError::Io(_)
            | ConnectorError::Bye { .. }
            | ConnectorError::Timeout { .. } => ErrorClass::Transient,
            ConnectorError::Tls { source, .. } => match source {
                // rustls reports certificate and protocol failures as InvalidData: those
                // are configuration problems that a retry will not fix.
                Some(e) if e.kind() != std::io::ErrorKind::InvalidData => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            ConnectorError::Auth { .. }
            | ConnectorError::Protocol(_)
            | ConnectorError::Pop3Protocol(_)
            | ConnectorError::MessageTooLarge { .. }
            | ConnectorError::Local(_) => ErrorClass::Permanent,
            ConnectorError::No { text, .. } | ConnectorError::Bad { text, .. } => {
                classify_refusal(text)
            }
            ConnectorError::PartialAppend { source, .. } => source.class(),
            ConnectorError::Service { class, .. } => *class,
        }
    }

    /// Whether the server said the folder already exists (`[ALREADYEXISTS]`, RFC 5530).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ConnectorError::No { text, .. } if text.to_ascii_uppercase().contains("[ALREADYEXISTS]"))
    }
}

/// Classifies a server's `NO`/`BAD` text (IMAP) or `-ERR` text (POP3).
///
/// RFC 5530 (IMAP) and RFC 2449 / RFC 3206 (POP3) response codes first; then the free-text signals real servers send:
/// Exchange's "Request is throttled. Suggested Backoff Time: 190 milliseconds",
/// size limits ("TOOBIG", "Maximum size"). Anything else is permanent: the same command
/// will be refused the same way.
fn classify_refusal(text: &str) -> ErrorClass {
    let upper = text.to_ascii_uppercase();
    if upper.contains("THROTTLED") {
        return ErrorClass::Throttled(backoff_hint(&upper).unwrap_or(DEFAULT_THROTTLE));
    }
    // POP3: [IN-USE] (mailbox locked by another session) and [LOGIN-DELAY] (RFC 2449),
    // [SYS/TEMP] (RFC 3206) all pass with time; [SYS/PERM] and [AUTH] do not.
    if [
        "[UNAVAILABLE]",
        "[INUSE]",
        "[SERVERBUG]",
        "[IN-USE]",
        "[LOGIN-DELAY]",
        "[SYS/TEMP]",
    ]
    .iter()
    .any(|code| upper.contains(code))
    {
        return ErrorClass::Transient;
    }
    // [OVERQUOTA], TOOBIG and "Maximum size" are permanent like any other refusal; they
    // are spelled out here because they are the common ones and must stay permanent.
    ErrorClass::Permanent
}

/// The `N` of "Backoff Time: N milliseconds" in an upper-cased reply text.
fn backoff_hint(upper: &str) -> Option<Duration> {
    const KEY: &str = "BACKOFF TIME:";
    let rest = upper[upper.find(KEY)? + KEY.len()..].trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no(text: &str) -> ConnectorError {
        ConnectorError::No {
            command: "APPEND".into(),
            text: text.into(),
        }
    }

    #[test]
    fn refusals_are_classified() {
        use ErrorClass::*;
        for (text, want) in [
            (
                "[OVERQUOTA] Quota exceeded (mailbox for user is full)",
                Permanent,
            ),
            ("[TOOBIG] Message too large", Permanent),
            ("Maximum size exceeded", Permanent),
            (
                "Request is throttled. Suggested Backoff Time: 190 milliseconds",
                Throttled(Duration::from_millis(190)),
            ),
            ("request is THROTTLED", Throttled(DEFAULT_THROTTLE)),
            ("[UNAVAILABLE] Temporary failure", Transient),
            ("[INUSE] Mailbox is locked", Transient),
            ("[SERVERBUG] Internal error occurred", Transient),
            ("[TRYCREATE] Mailbox doesn't exist: Foo", Permanent),
            (
                "[IN-USE] Mailbox is locked by another POP3 session",
                Transient,
            ),
            ("[SYS/TEMP] Temporary failure", Transient),
            ("[LOGIN-DELAY] Wait a minute", Transient),
            ("[SYS/PERM] Mailbox is corrupt", Permanent),
            ("[AUTH] Authentication failed.", Permanent),
            ("There is no message 99", Permanent),
            ("Something else", Permanent),
        ] {
            assert_eq!(no(text).class(), want, "{text}");
        }
        let bad = ConnectorError::Bad {
            command: "APPEND".into(),
            text: "[SERVERBUG] oops".into(),
        };
        assert_eq!(bad.class(), Transient);
    }

    #[test]
    fn other_variants_are_classified() {
        use std::io::{Error, ErrorKind};
        let tls = |kind| ConnectorError::Tls {
            server: "h:993".into(),
            detail: "handshake".into(),
            source: Some(Error::new(kind, "x")),
        };
        assert_eq!(tls(ErrorKind::InvalidData).class(), ErrorClass::Permanent);
        assert_eq!(
            tls(ErrorKind::ConnectionReset).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            ConnectorError::Io(Error::other("x")).class(),
            ErrorClass::Transient
        );
        let auth = ConnectorError::Auth {
            user: "alice".into(),
            server: "h:143".into(),
            server_said: "[AUTHENTICATIONFAILED] Authentication failed.".into(),
        };
        assert_eq!(auth.class(), ErrorClass::Permanent);
        assert_eq!(
            ConnectorError::Pop3Protocol("x".into()).class(),
            ErrorClass::Permanent
        );
        let big = ConnectorError::MessageTooLarge {
            message: "POP3 message 3".into(),
            limit: 1024,
        };
        assert_eq!(big.class(), ErrorClass::Permanent);
        assert!(big.to_string().contains("1024-byte limit"), "{big}");
        let msg = auth.to_string();
        assert!(
            msg.contains("\"alice\"") && msg.contains("password"),
            "{msg}"
        );
    }

    #[test]
    fn already_exists_is_recognised() {
        assert!(no("[ALREADYEXISTS] Mailbox already exists").is_already_exists());
        assert!(!no("[TRYCREATE] no").is_already_exists());
    }
}
