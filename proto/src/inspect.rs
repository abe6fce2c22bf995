//! Looking at a message before it is sent: the things that make target servers refuse
//! or mangle mail (imapsync's FAQ lists them for Exchange: lines over ~10,000
//! characters, bare LF line ends, NUL bytes) and the things that change how mailhaul
//! identifies it (no Message-ID). Pure; used by `mailhaul plan`.

use chrono::{DateTime, FixedOffset};
use std::fmt;

/// The longest line (in bytes, without CRLF) that every target takes. Exchange's IMAP
/// refuses lines over about 10,500 characters; 10,000 leaves room.
pub const MAX_LINE: usize = 10_000;

/// Something about a message a migration should know before sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Finding {
    /// No `Message-ID` header: identified by content hash instead.
    NoMessageId,
    /// A line longer than [`MAX_LINE`] bytes.
    LongLine,
    /// A line ending in LF without CR (RFC 5322 requires CRLF).
    BareLf,
    /// A NUL byte (not allowed in RFC 5322 text; some servers refuse it).
    Nul,
}

impl Finding {
    /// Every finding, in report order.
    pub const ALL: [Finding; 4] = [
        Finding::NoMessageId,
        Finding::LongLine,
        Finding::BareLf,
        Finding::Nul,
    ];

    /// A short stable key for JSON and CSV.
    pub fn key(self) -> &'static str {
        match self {
            Finding::NoMessageId => "no_message_id",
            Finding::LongLine => "long_line",
            Finding::BareLf => "bare_lf",
            Finding::Nul => "nul_byte",
        }
    }

    /// What mailhaul does about it.
    pub fn action(self) -> &'static str {
        match self {
            Finding::NoMessageId => "migrated; identified by content hash",
            Finding::LongLine => {
                "sent as is; Exchange's IMAP refuses lines over ~10,500 characters"
            }
            Finding::BareLf => {
                "sent as is, byte for byte; onto Cyrus (which refuses bare LF) as CRLF, unless the target says bare_lf = \"refuse\""
            }
            Finding::Nul => "sent as is; a target that refuses it is reported per message",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Finding::NoMessageId => "no Message-ID",
            Finding::LongLine => "line over 10,000 characters",
            Finding::BareLf => "bare LF line ending",
            Finding::Nul => "NUL byte",
        })
    }
}

/// The Message-ID field's value (unfolded, trimmed), if the header section has a
/// non-empty one.
pub fn message_id(message: &[u8]) -> Option<String> {
    header_fields(message)
        .into_iter()
        .find(|(n, _)| n == "message-id")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the header section has a non-empty Message-ID field.
pub fn has_message_id(message: &[u8]) -> bool {
    message_id(message).is_some()
}

/// Everything noteworthy about one whole message, each finding once, in [`Finding::ALL`] order.
pub fn inspect(message: &[u8]) -> Vec<Finding> {
    let mut scan = Scan::default();
    scan.feed(message);
    scan.findings(message)
}

/// [`inspect`] over a message that arrives in pieces.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scan {
    long: bool,
    bare: bool,
    nul: bool,
    line_len: usize,
    prev: u8,
}

impl Scan {
    /// Looks at the next piece.
    pub fn feed(&mut self, piece: &[u8]) {
        for &b in piece {
            match b {
                b'\n' => {
                    self.bare |= self.prev != b'\r';
                    self.line_len = 0;
                }
                0 => self.nul = true,
                _ => {}
            }
            if b != b'\n' && b != b'\r' {
                self.line_len += 1;
                self.long |= self.line_len > MAX_LINE;
            }
            self.prev = b;
        }
    }

    /// The findings, given the message's leading bytes that hold its header section.
    pub fn findings(self, head: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        if !has_message_id(head) {
            out.push(Finding::NoMessageId);
        }
        for (hit, f) in [
            (self.long, Finding::LongLine),
            (self.bare, Finding::BareLf),
            (self.nul, Finding::Nul),
        ] {
            if hit {
                out.push(f);
            }
        }
        out
    }
}

/// The unfolded header fields of a message, in order: `(lowercase name, value)`.
fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let end = find(message, b"\r\n\r\n")
        .or_else(|| find(message, b"\n\n"))
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    out
}

/// Parses an RFC 5322 date, tolerating a trailing comment like `(UTC)` and runs of spaces.
fn parse_date(s: &str) -> Option<DateTime<FixedOffset>> {
    let mut s = s.trim().to_owned();
    while s.ends_with(')') {
        match s.rfind('(') {
            Some(i) => s = s[..i].trim_end().to_owned(),
            None => break,
        }
    }
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    DateTime::parse_from_rfc2822(&s).ok()
}

/// When a message was received, for sources that do not say (POP3 has no INTERNALDATE):
/// the date of the newest `Received:` field (the topmost: each hop prepends its own,
/// RFC 5321 §4.4), else the `Date:` field.
pub fn received_date(message: &[u8]) -> Option<DateTime<FixedOffset>> {
    let fields = header_fields(message);
    let received = fields
        .iter()
        .find(|(n, _)| n == "received")
        .and_then(|(_, v)| v.rsplit_once(';'))
        .and_then(|(_, d)| parse_date(d));
    received.or_else(|| {
        fields
            .iter()
            .find(|(n, _)| n == "date")
            .and_then(|(_, v)| parse_date(v))
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        for (msg, want) in [
            (
                &b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody"[..],
                Some("<a@b>"),
            ),
            (
                b"message-id:\r\n  <folded@b>\r\nX: y\r\n\r\n",
                Some("<folded@b>"),
            ),
            (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
            (b"Subject: none\n\nbody", None),
            (b"Message-ID:   \r\n\r\n", None),
        ] {
            assert_eq!(
                message_id(msg).as_deref(),
                want,
                "{}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn received_dates() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                b"Received: from a by b; Tue, 5 Mar 2019 10:00:00 +0100 (CET)\r\nReceived: from c by a;\r\n Mon, 4 Mar 2019 09:00:00 +0000\r\nDate: Sun, 3 Mar 2019 08:00:00 +0000\r\n\r\nx",
                Some("2019-03-05T10:00:00+01:00"),
            ),
            (b"Received: from a by b\r\n\tfor <x@y>; Wed, 06 Mar 2019  11:30:00 -0500\r\n\r\nx", Some("2019-03-06T11:30:00-05:00")),
            (b"Received: garbage without a date\r\nDate: Thu, 7 Mar 2019 12:00:00 +0000\r\n\r\nx", Some("2019-03-07T12:00:00+00:00")),
            (b"Subject: none\r\n\r\nReceived: in the body; Thu, 7 Mar 2019 12:00:00 +0000\r\n", None),
        ];
        for (msg, want) in cases {
            let got = received_date(msg).map(|d| d.to_rfc3339());
            assert_eq!(got.as_deref(), *want, "{}", String::from_utf8_lossy(msg));
        }
    }

    #[test]
    fn findings_table() {
        let long = format!("Message-ID: <a@b>\r\n\r\n{}\r\n", "x".repeat(MAX_LINE + 1));
        let just_fits = format!("Message-ID: <a@b>\r\n\r\n{}\r\n", "x".repeat(MAX_LINE));
        let cases: Vec<(&[u8], Vec<Finding>)> = vec![
            (b"Message-ID: <a@b>\r\nSubject: ok\r\n\r\nbody\r\n", vec![]),
            (b"Subject: none\r\n\r\nbody\r\n", vec![Finding::NoMessageId]),
            (b"Message-Id:\r\n <folded@b>\r\n\r\nx\r\n", vec![]),
            (b"Message-ID:   \r\n\r\nx\r\n", vec![Finding::NoMessageId]),
            (
                b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n",
                vec![Finding::NoMessageId],
            ),
            (long.as_bytes(), vec![Finding::LongLine]),
            (just_fits.as_bytes(), vec![]),
            (b"Message-ID: <a@b>\n\nbare\n", vec![Finding::BareLf]),
            (
                b"Message-ID: <a@b>\r\n\r\nnul\0here\r\n",
                vec![Finding::Nul],
            ),
            (
                b"Subject: all\n\nx\0\n",
                vec![Finding::NoMessageId, Finding::BareLf, Finding::Nul],
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(
                inspect(msg),
                want,
                "{:?}",
                String::from_utf8_lossy(&msg[..msg.len().min(60)])
            );
        }
    }
}
