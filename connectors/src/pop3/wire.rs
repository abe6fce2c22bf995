//! POP3 on the wire: status lines and multi-line responses (RFC 1939 §3).
//!
//! A reply starts with a status line: `+OK text`, `-ERR text`, or (during SASL, RFC 5034)
//! `+ challenge`. A multi-line reply follows `+OK` with lines of data, each "byte-stuffed":
//! a line starting with `.` gets one more `.`, and the reply ends with a line holding a
//! lone `.`. [`read_multiline`] undoes that and nothing else:
//!
//! - every other byte is kept exactly, CRLF, bare LF and bare CR included, so a message
//!   comes out byte for byte as the server stored it;
//! - memory is bounded: lines are read in pieces of at most `piece` bytes, and the body
//!   stops growing at its limit (the rest is read and dropped, so the session stays in
//!   step, and the caller gets [`WireError::TooLarge`]);
//! - time is bounded: every read has a deadline, which moves one second later per MiB
//!   received, so big messages get time in proportion to their size;
//! - a reply that ends without its terminating line (the server closed the connection)
//!   is an error, never a silently truncated message.

use crate::body::BodySink;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

/// At most this many bytes per read of one (part of a) line.
pub(super) const PIECE: u64 = 64 * 1024;
/// A status line longer than this is not a POP3 reply (RFC 2449 §4 allows 512 octets;
/// real servers stay far below, this leaves room for long SASL challenges).
pub(super) const STATUS_LINE_MAX: u64 = 16 * 1024;
/// Extra time per MiB received, on top of the command time limit.
const PER_MIB: Duration = Duration::from_secs(1);

/// A failure below the command level; the session turns it into a `ConnectorError`.
#[derive(Debug)]
pub(super) enum WireError {
    /// The socket failed.
    Io(io::Error),
    /// The server closed the connection before the reply was complete.
    Eof,
    /// The deadline passed.
    Timeout,
    /// The reply did not follow the protocol (the text says how).
    Malformed(String),
    /// A multi-line body was bigger than its limit; it was read to its end and dropped.
    TooLarge,
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

/// A parsed status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    /// `+OK`, with the text after it (may be empty).
    Ok(String),
    /// `-ERR`, with the text after it (response code included, e.g. `[AUTH] ...`).
    Err(String),
    /// `+ challenge` (SASL continuation, RFC 5034 §4), with the base64 challenge.
    Continue(String),
}

/// When a command must be done by: a start limit that grows with the bytes received.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub(super) fn after(limit: Duration) -> Self {
        Deadline {
            at: Instant::now() + limit,
        }
    }

    /// Gives `bytes` more bytes' worth of time (one second per MiB).
    fn extend(&mut self, bytes: usize) {
        // f64 is exact enough for a time allowance; bytes never come near 2^53.
        let share = bytes as f64 / (1024.0 * 1024.0);
        self.at += PER_MIB.mul_f64(share);
    }
}

/// Writes one command line (CRLF added) and flushes it, by `deadline`.
pub(super) async fn write_line<W>(
    w: &mut W,
    line: &str,
    deadline: Deadline,
) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
{
    let mut bytes = Vec::with_capacity(line.len() + 2);
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    let write = async {
        w.write_all(&bytes).await?;
        w.flush().await
    };
    match timeout_at(deadline.at, write).await {
        Err(_) => Err(WireError::Timeout),
        Ok(done) => Ok(done?),
    }
}

/// Reads one piece: up to and including the next LF, or `limit` bytes, whichever is
/// first. Returns 0 at end of stream.
async fn read_piece<R>(
    r: &mut R,
    out: &mut Vec<u8>,
    limit: u64,
    deadline: Deadline,
) -> Result<usize, WireError>
where
    R: AsyncBufRead + Unpin,
{
    out.clear();
    match timeout_at(deadline.at, (&mut *r).take(limit).read_until(b'\n', out)).await {
        Err(_) => Err(WireError::Timeout),
        Ok(read) => Ok(read?),
    }
}

/// Reads and parses one status line.
pub(super) async fn read_status<R>(r: &mut R, deadline: Deadline) -> Result<Status, WireError>
where
    R: AsyncBufRead + Unpin,
{
    let mut line = Vec::new();
    let n = read_piece(r, &mut line, STATUS_LINE_MAX, deadline).await?;
    if n == 0 {
        return Err(WireError::Eof);
    }
    if !line.ends_with(b"\n") {
        return Err(if n as u64 >= STATUS_LINE_MAX {
            WireError::Malformed(format!("a status line longer than {STATUS_LINE_MAX} bytes"))
        } else {
            WireError::Eof
        });
    }
    parse_status(&line).map_err(WireError::Malformed)
}

/// Parses a status line (with or without its line end).
pub(super) fn parse_status(line: &[u8]) -> Result<Status, String> {
    let line = line
        .strip_suffix(b"\n")
        .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
    let text = String::from_utf8_lossy(line);
    // Status indicators are upper case in RFC 1939; accept any case, as servers do.
    let upper = text.to_ascii_uppercase();
    let rest = |n: usize| text[n..].strip_prefix(' ').unwrap_or(&text[n..]).to_owned();
    if upper.starts_with("+OK") && !upper[3..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Ok(Status::Ok(rest(3)))
    } else if upper.starts_with("-ERR")
        && !upper[4..].starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        Ok(Status::Err(rest(4)))
    } else if text == "+" || text.starts_with("+ ") {
        Ok(Status::Continue(rest(1)))
    } else {
        let shown: String = text.chars().take(80).collect();
        Err(format!("expected +OK or -ERR, got {shown:?}"))
    }
}

/// The response code at the start of an `-ERR` or `+OK` text (RFC 2449 §8), upper-cased:
/// `"[SYS/TEMP] try later"` gives `Some("SYS/TEMP")`.
pub(super) fn response_code(text: &str) -> Option<String> {
    let inner = text.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(inner[..end].to_ascii_uppercase())
}

/// Reads the data of a multi-line reply (after its `+OK` line) up to the terminating
/// `.` line into `out`, undoing the byte-stuffing, with at most `max` bytes kept. The
/// sink decides where the bytes live (a big message goes to a temporary file), so
/// memory holds one piece at a time.
///
/// # Errors
/// [`WireError::TooLarge`] when the data (unstuffed) is longer than `max`; `Eof` when the
/// stream ends before the terminating line; `Timeout`, `Io` (the socket, or the sink's
/// temporary file).
pub(super) async fn read_multiline<R>(
    r: &mut R,
    out: &mut BodySink,
    max: u64,
    piece: u64,
    mut deadline: Deadline,
) -> Result<(), WireError>
where
    R: AsyncBufRead + Unpin,
{
    // The terminator ".\r\n" must fit in one piece to be recognised.
    let piece = piece.max(3);
    let mut buf = Vec::new();
    let mut at_line_start = true;
    let mut over = false;
    loop {
        let n = read_piece(r, &mut buf, piece, deadline).await?;
        if n == 0 {
            return Err(WireError::Eof);
        }
        deadline.extend(n);
        let mut data = buf.as_slice();
        if at_line_start {
            // RFC 1939 §3: a line that is "." and CRLF ends the reply; any other line
            // starting with "." loses that first octet. A bare-LF "." line is taken as
            // the end too: servers that write bare LF do so for the terminator as well.
            if data == b".\r\n" || data == b".\n" {
                return if over {
                    Err(WireError::TooLarge)
                } else {
                    Ok(())
                };
            }
            if let Some(rest) = data.strip_prefix(b".") {
                data = rest;
            }
        }
        at_line_start = buf.ends_with(b"\n");
        if !over {
            if out.len() + data.len() as u64 > max {
                over = true;
            } else {
                out.write(data).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Deadline {
        Deadline::after(Duration::from_secs(3600))
    }

    async fn multiline(wire: &[u8], max: u64, piece: u64) -> Result<Vec<u8>, String> {
        let mut r = wire;
        let mut out = BodySink::with_threshold(u64::MAX);
        read_multiline(&mut r, &mut out, max, piece, far())
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(out.into_vec().expect("never spools"))
    }

    #[tokio::test]
    async fn a_big_message_spools_and_comes_back_byte_exact() {
        // 3 MB of lines, some starting with dots, some with bare LF, read in 64 KiB
        // pieces into a sink that spools past 256 KiB.
        let mut body = Vec::new();
        let mut wire = Vec::new();
        for i in 0..60_000u32 {
            let line = match i % 5 {
                0 => format!(".dot line {i}\r\n"),
                1 => format!("bare lf {i}\n"),
                _ => format!("ordinary line {i} with some text to make it longer\r\n"),
            };
            body.extend_from_slice(line.as_bytes());
            if line.starts_with('.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line.as_bytes());
        }
        wire.extend_from_slice(b".\r\n");
        let mut r = &wire[..];
        let mut out = BodySink::with_threshold(256 << 10);
        read_multiline(&mut r, &mut out, u64::MAX, PIECE, far())
            .await
            .expect("reads");
        let got = out.finish().await.expect("finishes");
        assert!(got.is_spooled());
        assert_eq!(got.len(), body.len() as u64);
        assert_eq!(&*got.whole().await.expect("reads back"), &body[..]);
        assert_eq!(got.hash(), mailhaul_proto::ledger::content_hash(&body));
    }

    #[tokio::test]
    async fn multiline_unstuffs_and_keeps_every_other_byte() {
        // (name, wire, expected body)
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("empty", b".\r\n", b""),
            ("plain", b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
            ("stuffed dot line", b"x\r\n..foo\r\n.\r\n", b"x\r\n.foo\r\n"),
            (
                "lone dot inside",
                b"a\r\n..\r\nb\r\n.\r\n",
                b"a\r\n.\r\nb\r\n",
            ),
            ("double dot kept once", b"...\r\n.\r\n", b"..\r\n"),
            ("unstuffed dot line", b".x\r\n.\r\n", b"x\r\n"),
            ("dot mid-line", b"a.b\r\n a\r\n.\r\n", b"a.b\r\n a\r\n"),
            ("bare lf kept", b"a\nb\r\n.\r\n", b"a\nb\r\n"),
            ("bare cr kept", b"a\rb\r\n.\r\n", b"a\rb\r\n"),
            ("bare lf terminator", b"a\n.\n", b"a\n"),
            ("dot then cr then text", b".\rx\r\n.\r\n", b"\rx\r\n"),
            ("stuffed dot, bare lf", b"..\n.\r\n", b".\n"),
            ("blank lines", b"\r\n\r\n.\r\n", b"\r\n\r\n"),
            ("8-bit bytes", b"\xff\xfe\x00\r\n.\r\n", b"\xff\xfe\x00\r\n"),
        ];
        for &(name, wire, want) in cases {
            for piece in [PIECE, 3, 4, 5] {
                let got = multiline(wire, 1 << 20, piece).await;
                assert_eq!(got.as_deref(), Ok(want), "{name} (piece {piece})");
            }
        }
    }

    #[tokio::test]
    async fn multiline_stops_at_the_terminator() {
        let mut r: &[u8] = b"a\r\n.\r\n+OK next\r\n";
        let mut body = BodySink::with_threshold(u64::MAX);
        read_multiline(&mut r, &mut body, 100, PIECE, far())
            .await
            .expect("reads");
        assert_eq!(body.in_memory(), Some(&b"a\r\n"[..]));
        assert_eq!(r, b"+OK next\r\n", "the next reply is left unread");
    }

    #[tokio::test]
    async fn multiline_without_its_end_is_an_error() {
        for (name, wire) in [
            ("nothing", &b""[..]),
            ("missing final crlf", b"a\r\nb"),
            ("no terminator", b"a\r\nb\r\n"),
            ("dot without line end", b"a\r\n."),
            ("dot and cr only", b"a\r\n.\r"),
        ] {
            let got = multiline(wire, 1 << 20, PIECE).await;
            assert_eq!(got, Err("Eof".to_owned()), "{name}");
        }
    }

    #[tokio::test]
    async fn multiline_over_the_limit_is_drained_then_refused() {
        // Unstuffed: "12345\r\n" (7 bytes) + ".678\r\n" (6 bytes) = 13 bytes.
        let wire = b"12345\r\n..678\r\n.\r\n+OK after\r\n";
        for (max, ok) in [(13, true), (12, false), (0, false)] {
            let mut r: &[u8] = wire;
            let mut sink = BodySink::with_threshold(u64::MAX);
            let got = read_multiline(&mut r, &mut sink, max, 4, far()).await;
            assert_eq!(got.is_ok(), ok, "max {max}: {got:?}");
            if !ok {
                assert!(matches!(got, Err(WireError::TooLarge)), "{got:?}");
            }
            assert_eq!(r, b"+OK after\r\n", "max {max}: reply fully read");
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (mut client, _server) = tokio::io::duplex(64);
        let mut r = tokio::io::BufReader::new(&mut client);
        let got = read_status(&mut r, Deadline::after(Duration::from_millis(20))).await;
        assert!(matches!(got, Err(WireError::Timeout)), "{got:?}");
    }

    #[tokio::test]
    async fn status_lines_are_read_whole() {
        let mut r: &[u8] = b"+OK 2 320\r\n-ERR [IN-USE] locked\r\n+OK";
        assert_eq!(
            read_status(&mut r, far()).await.ok(),
            Some(Status::Ok("2 320".into()))
        );
        assert_eq!(
            read_status(&mut r, far()).await.ok(),
            Some(Status::Err("[IN-USE] locked".into()))
        );
        assert!(matches!(
            read_status(&mut r, far()).await,
            Err(WireError::Eof)
        ));
        let long = vec![b'+'; STATUS_LINE_MAX as usize + 10];
        let mut r = long.as_slice();
        assert!(matches!(
            read_status(&mut r, far()).await,
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn status_lines_parse() {
        let cases: &[(&[u8], Result<Status, ()>)] = &[
            (b"+OK\r\n", Ok(Status::Ok(String::new()))),
            (
                b"+OK Dovecot ready.\r\n",
                Ok(Status::Ok("Dovecot ready.".into())),
            ),
            (b"+ok fine\n", Ok(Status::Ok("fine".into()))),
            (b"-ERR\r\n", Ok(Status::Err(String::new()))),
            (
                b"-ERR [AUTH] Authentication failed.\r\n",
                Ok(Status::Err("[AUTH] Authentication failed.".into())),
            ),
            (b"+ \r\n", Ok(Status::Continue(String::new()))),
            (b"+\r\n", Ok(Status::Continue(String::new()))),
            (b"+ dGVzdA==\r\n", Ok(Status::Continue("dGVzdA==".into()))),
            (b"+OKAY\r\n", Err(())),
            (b"-ERROR\r\n", Err(())),
            (b"* OK IMAP\r\n", Err(())),
            (b"\r\n", Err(())),
        ];
        for (line, want) in cases {
            let got = parse_status(line).map_err(|_| ());
            assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn response_codes_parse() {
        for (text, want) in [
            ("[AUTH] Authentication failed.", Some("AUTH")),
            ("[sys/temp] later", Some("SYS/TEMP")),
            ("[IN-USE] locked", Some("IN-USE")),
            ("no code [AUTH]", None),
            ("[unclosed", None),
            ("", None),
        ] {
            assert_eq!(response_code(text).as_deref(), want, "{text}");
        }
    }
}
