//! Looking at a message before it is sent: the things that make target servers refuse
//! or mangle mail (imapsync's FAQ lists them for Exchange: lines over ~10,000
//! characters, bare LF line ends, NUL bytes) and the things that change how mailhaul
//! identifies it (no Message-ID). Pure; used by `mailhaul plan`.

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
            Finding::BareLf => "sent as is, byte for byte",
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

/// Whether the header section has a non-empty Message-ID field.
pub fn has_message_id(message: &[u8]) -> bool {
    let end = find(message, b"\r\n\r\n")
        .or_else(|| find(message, b"\n\n"))
        .unwrap_or(message.len());
    let head = &message[..end];
    let mut rest = head;
    while !rest.is_empty() {
        let line_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..line_end];
        if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            let value = &line[11..];
            let mut v = value.trim_ascii().to_vec();
            // A folded value continues on the following indented lines.
            let mut next = &rest[line_end..];
            while next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                let e = next
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(next.len(), |i| i + 1);
                v.extend_from_slice(next[..e].trim_ascii());
                next = &next[e..];
            }
            return !v.is_empty();
        }
        rest = &rest[line_end..];
    }
    false
}

/// Everything noteworthy about one whole message, each finding once, in [`Finding::ALL`] order.
pub fn inspect(message: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    if !has_message_id(message) {
        out.push(Finding::NoMessageId);
    }
    let (mut long, mut bare, mut nul) = (false, false, false);
    let mut line_len = 0usize;
    let mut prev = 0u8;
    for &b in message {
        match b {
            b'\n' => {
                bare |= prev != b'\r';
                line_len = 0;
            }
            0 => nul = true,
            _ => {}
        }
        if b != b'\n' && b != b'\r' {
            line_len += 1;
            long |= line_len > MAX_LINE;
        }
        prev = b;
    }
    for (hit, f) in [
        (long, Finding::LongLine),
        (bare, Finding::BareLf),
        (nul, Finding::Nul),
    ] {
        if hit {
            out.push(f);
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

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
