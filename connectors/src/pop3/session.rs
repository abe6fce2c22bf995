//! A logged-in POP3 session (RFC 1939 TRANSACTION state) and its one command runner.
//!
//! Invariants:
//! - every command goes through [`Pop3Session::command`], which applies the time limit,
//!   turns `-ERR` into `ConnectorError::No` (classified by its RFC 2449/3206 response code)
//!   and marks the session broken after a timeout, an I/O error or a reply it cannot
//!   parse, so that nothing is sent into a stream that is out of step;
//! - the session only reads: it has no DELE, and [`Pop3Session::quit`] ends it with RSET
//!   and QUIT, which leaves the mailbox as it was, flags included (mailhaul never changes
//!   the source);
//! - command lines that carry secrets are never logged nor put into errors.

use super::parse::{self, Pop3Capabilities};
use super::wire::{self, Deadline, Status, WireError};
use crate::body::{Body, BodySink};
use crate::error::ConnectorError;
use crate::net::Stream;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};

/// A multi-line listing (LIST, UIDL, CAPA) bigger than this is refused: UIDL lines are
/// at most ~85 bytes, so this allows for more than a million messages.
const LISTING_MAX: u64 = 128 * 1024 * 1024;

/// A POP3 session in the TRANSACTION state (logged in), made by [`super::connect`].
#[derive(Debug)]
pub struct Pop3Session {
    io: BufReader<Stream>,
    caps: Pop3Capabilities,
    /// `host:port`, for messages.
    addr: String,
    command_timeout: Duration,
    /// Why the session can no longer be used, once it cannot.
    broken: Option<String>,
}

/// How a command's reply is read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reply {
    /// A status line only.
    Line,
    /// A status line, then (after `+OK`) data up to the `.` line, at most this many bytes,
    /// kept as the second field says.
    Multi(u64, Keep),
}

/// Where a multi-line reply's data goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Keep {
    /// Memory (listings, CAPA).
    Memory,
    /// Memory, or a temporary file past the spool threshold (messages, [`crate::body`]).
    Spool,
    /// Nowhere: only its length and SHA-256 are kept.
    Digest,
}

/// What a command got back: the `+OK` (or `+ `) text, and the data of a multi-line reply.
#[derive(Debug)]
pub(super) struct Answer {
    /// The status line.
    pub(super) status: Status,
    /// The unstuffed data (empty for single-line replies and `-ERR`).
    pub(super) data: BodySink,
    /// The data was over the reply's limit: it was read to its end and dropped.
    pub(super) over_limit: bool,
}

impl Answer {
    /// The data kept in memory (`Keep::Memory`).
    pub(super) fn bytes(&self) -> &[u8] {
        self.data.in_memory().unwrap_or_default()
    }
}

impl Pop3Session {
    /// Wraps a fresh connection (before its greeting).
    pub(super) fn new(stream: Stream, addr: String, command_timeout: Duration) -> Self {
        Pop3Session {
            io: BufReader::new(stream),
            caps: Pop3Capabilities::default(),
            addr,
            command_timeout,
            broken: None,
        }
    }

    /// What the server said it can do (CAPA after login, with the SASL and STLS facts
    /// from before login).
    pub fn capabilities(&self) -> &Pop3Capabilities {
        &self.caps
    }

    pub(super) fn set_capabilities(&mut self, caps: Pop3Capabilities) {
        self.caps = caps;
    }

    /// `host:port` of the server.
    pub(super) fn addr(&self) -> &str {
        &self.addr
    }

    /// The time limit of each command.
    pub(super) fn command_timeout(&self) -> std::time::Duration {
        self.command_timeout
    }

    /// Takes the stream back (for STLS); `None` when the reader still holds bytes the
    /// server sent after its reply, which must not be carried into TLS (RFC 2595 §4).
    pub(super) fn into_stream(self) -> Option<Stream> {
        if self.io.buffer().is_empty() {
            Some(self.io.into_inner())
        } else {
            None
        }
    }

    /// The message count and the mailbox size in octets (`STAT`).
    ///
    /// # Errors
    /// `No` when the server refuses, `Pop3Protocol` for an unreadable reply, `Timeout`,
    /// `Io`.
    pub async fn stat(&mut self) -> Result<(u32, u64), ConnectorError> {
        let text = self.ok_text("STAT", "STAT").await?;
        parse::parse_stat(&text).map_err(|e| self.malformed("STAT", e))
    }

    /// Message numbers and sizes in octets (`LIST`), ascending.
    ///
    /// # Errors
    /// As [`Pop3Session::stat`].
    pub async fn list(&mut self) -> Result<Vec<(u32, u64)>, ConnectorError> {
        let data = self.ok_data("LIST", "LIST", LISTING_MAX).await?;
        parse::parse_list(&data).map_err(|e| self.malformed("LIST", e))
    }

    /// Message numbers and their unique ids (`UIDL`), ascending; `None` when the server
    /// has no UIDL (its CAPA does not list it, or it refuses the command).
    ///
    /// Unique ids stay the same across sessions (RFC 1939 §7); they are the stable key
    /// of a POP3 message, message numbers are not.
    ///
    /// # Errors
    /// As [`Pop3Session::stat`].
    pub async fn uidl(&mut self) -> Result<Option<Vec<(u32, String)>>, ConnectorError> {
        if self.caps.capa && !self.caps.uidl {
            return Ok(None);
        }
        let answer = self
            .command("UIDL", "UIDL", Reply::Multi(LISTING_MAX, Keep::Memory))
            .await?;
        match answer.status {
            Status::Ok(_) => parse::parse_uidl(answer.bytes())
                .map(Some)
                .map_err(|e| self.malformed("UIDL", e)),
            // Without CAPA we could not know; a refusal then means "no UIDL here".
            Status::Err(_) if !self.caps.capa => Ok(None),
            status => Err(self.refused("UIDL", status)),
        }
    }

    /// The whole message `msg` (`RETR`), byte for byte as the server sends it with the
    /// byte-stuffing undone (RFC 1939 §3): line ends are kept exactly.
    ///
    /// A message past the spool threshold goes to a temporary file as it arrives
    /// ([`crate::body`]), so memory holds one 64 KiB piece of it at a time. A message over
    /// `max_bytes` is read to its end and dropped, and the call fails with
    /// `MessageTooLarge` (the session stays usable). Check `list()` sizes first to skip
    /// such messages without downloading them. The time limit grows by one second per
    /// MiB received.
    ///
    /// # Errors
    /// `MessageTooLarge`; `No` when the server refuses (no such message, `[SYS/TEMP]`);
    /// as [`Pop3Session::stat`].
    pub async fn retr(&mut self, msg: u32, max_bytes: u64) -> Result<Body, ConnectorError> {
        let sink = self.retr_into(msg, max_bytes, Keep::Spool).await?;
        Ok(sink.finish().await?)
    }

    /// The length and SHA-256 of message `msg`, read as [`Pop3Session::retr`] reads it
    /// but kept nowhere.
    ///
    /// # Errors
    /// As [`Pop3Session::retr`].
    pub async fn retr_digest(
        &mut self,
        msg: u32,
        max_bytes: u64,
    ) -> Result<(u64, [u8; 32]), ConnectorError> {
        let sink = self.retr_into(msg, max_bytes, Keep::Digest).await?;
        Ok((sink.len(), sink.digest()))
    }

    async fn retr_into(
        &mut self,
        msg: u32,
        max_bytes: u64,
        keep: Keep,
    ) -> Result<BodySink, ConnectorError> {
        let line = format!("RETR {msg}");
        let answer = self
            .command("RETR", &line, Reply::Multi(max_bytes, keep))
            .await?;
        match answer.status {
            Status::Ok(_) if answer.over_limit => Err(ConnectorError::MessageTooLarge {
                message: format!("POP3 message {msg} on {}", self.addr),
                limit: max_bytes,
            }),
            Status::Ok(_) => Ok(answer.data),
            status => Err(self.refused("RETR", status)),
        }
    }

    /// Ends the session with `RSET` and `QUIT`, leaving the mailbox as it was.
    ///
    /// This client never sends DELE, so QUIT deletes nothing. RSET first because QUIT
    /// also commits other marks: Dovecot sets `\Seen` on every message RETR returned
    /// (unless `pop3_no_flag_updates`), and RSET (RFC 1939 §5) drops those marks too.
    ///
    /// A session that broke earlier (timeout, I/O error) is just dropped.
    ///
    /// # Errors
    /// As [`Pop3Session::stat`].
    pub async fn quit(mut self) -> Result<(), ConnectorError> {
        if self.broken.is_some() {
            // Dropping the connection without QUIT commits nothing (RFC 1939 §6).
            return Ok(());
        }
        self.ok_text("RSET", "RSET").await?;
        self.ok_text("QUIT", "QUIT").await?;
        // Best effort: the server closes the connection after QUIT anyway.
        let _ = self.io.get_mut().shutdown().await;
        Ok(())
    }

    /// Runs `CAPA`; a server without it (RFC 1939 only) gives empty capabilities.
    pub(super) async fn capa(&mut self) -> Result<Pop3Capabilities, ConnectorError> {
        let answer = self
            .command("CAPA", "CAPA", Reply::Multi(LISTING_MAX, Keep::Memory))
            .await?;
        Ok(match answer.status {
            Status::Ok(_) => Pop3Capabilities::parse(answer.bytes()),
            _ => Pop3Capabilities::default(),
        })
    }

    /// Runs a single-line command that must succeed; returns the `+OK` text.
    pub(super) async fn ok_text(
        &mut self,
        name: &str,
        line: &str,
    ) -> Result<String, ConnectorError> {
        match self.command(name, line, Reply::Line).await?.status {
            Status::Ok(text) => Ok(text),
            status => Err(self.refused(name, status)),
        }
    }

    /// Runs a multi-line command that must succeed; returns its data.
    async fn ok_data(
        &mut self,
        name: &str,
        line: &str,
        max: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        let answer = self
            .command(name, line, Reply::Multi(max, Keep::Memory))
            .await?;
        match answer.status {
            Status::Ok(_) if answer.over_limit => Err(ConnectorError::Pop3Protocol(format!(
                "the {name} reply of {} is over {max} bytes",
                self.addr
            ))),
            Status::Ok(_) => Ok(answer.bytes().to_vec()),
            status => Err(self.refused(name, status)),
        }
    }

    /// Reads the server greeting: `+OK` goes on, `-ERR` means the server will not serve.
    pub(super) async fn greeting(&mut self) -> Result<(), ConnectorError> {
        match self.exchange("greeting", None, Reply::Line).await?.status {
            Status::Ok(_) => Ok(()),
            Status::Err(text) => Err(ConnectorError::Bye { text }),
            Status::Continue(_) => Err(self.malformed("greeting", "a SASL continuation".into())),
        }
    }

    /// Sends `line` (without CRLF) and reads the reply. `name` is what errors show: the
    /// command word, never its arguments (PASS and AUTH lines carry secrets).
    pub(super) async fn command(
        &mut self,
        name: &str,
        line: &str,
        reply: Reply,
    ) -> Result<Answer, ConnectorError> {
        self.exchange(name, Some(line), reply).await
    }

    async fn exchange(
        &mut self,
        name: &str,
        line: Option<&str>,
        reply: Reply,
    ) -> Result<Answer, ConnectorError> {
        if let Some(why) = &self.broken {
            // Transient, as in the IMAP session: a new connection will do.
            return Err(ConnectorError::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!(
                    "{name} not sent: the session with {} is unusable after {why}; reconnect",
                    self.addr
                ),
            )));
        }
        let deadline = Deadline::after(self.command_timeout);
        let result = async {
            if let Some(line) = line {
                wire::write_line(self.io.get_mut(), line, deadline).await?;
            }
            let status = wire::read_status(&mut self.io, deadline).await?;
            let empty = || BodySink::with_threshold(u64::MAX);
            let (data, over_limit) = match (reply, &status) {
                (Reply::Multi(max, keep), Status::Ok(_)) => {
                    let mut sink = match keep {
                        Keep::Memory => empty(),
                        Keep::Spool => BodySink::new(),
                        Keep::Digest => BodySink::hash_only(),
                    };
                    let read =
                        wire::read_multiline(&mut self.io, &mut sink, max, wire::PIECE, deadline);
                    match read.await {
                        Ok(()) => (sink, false),
                        // The whole reply was read: the stream is in step.
                        Err(WireError::TooLarge) => (empty(), true),
                        Err(e) => return Err(e),
                    }
                }
                _ => (empty(), false),
            };
            Ok(Answer {
                status,
                data,
                over_limit,
            })
        }
        .await;
        result.map_err(|e| self.wire_error(name, e))
    }

    /// Turns a wire failure into the connector error, marking the session broken when
    /// the stream may be out of step.
    fn wire_error(&mut self, name: &str, e: WireError) -> ConnectorError {
        let error = match e {
            WireError::TooLarge => {
                ConnectorError::Pop3Protocol(format!("{name} on {}: reply too large", self.addr))
            }
            WireError::Io(io) => ConnectorError::Io(io),
            WireError::Eof => ConnectorError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} closed the connection during {name}", self.addr),
            )),
            WireError::Timeout => ConnectorError::Timeout {
                command: name.to_owned(),
                after: self.command_timeout,
            },
            WireError::Malformed(why) => {
                ConnectorError::Pop3Protocol(format!("{name} on {}: {why}", self.addr))
            }
        };
        self.broken = Some(match &error {
            // The Io variant's own text is generic; keep what happened.
            ConnectorError::Io(io) => format!("an i/o error during {name} ({io})"),
            other => other.to_string(),
        });
        error
    }

    /// The error for a reply that came back but cannot be used; the session is broken.
    pub(super) fn malformed(&mut self, name: &str, why: String) -> ConnectorError {
        self.wire_error(name, WireError::Malformed(why))
    }

    /// The error for a refused command (`-ERR`, or a SASL `+ ` where none was due).
    pub(super) fn refused(&mut self, name: &str, status: Status) -> ConnectorError {
        match status {
            Status::Err(text) => ConnectorError::No {
                command: name.to_owned(),
                text,
            },
            other => self.malformed(name, format!("unexpected reply {other:?}")),
        }
    }
}
