//! Realistic RFC 5322 / MIME messages (CRLF line endings) built from a seeded [`Rng`].
//!
//! Big parts are filled by blocks: base64 bodies are runs of 64 lines copied from a
//! 1 MiB pool of random base64 lines (made once per process from a fixed seed), text
//! bodies are lines picked from a pool of pre-wrapped sentences. So a 20 MB message
//! costs a few hundred memcpys, not millions of PRNG calls, even in a debug build.
//! Every line is at most 78 characters plus CRLF (RFC 5322 §2.1.1).

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset};

use super::prng::Rng;

const WORDS: &[&str] = &[
    "the",
    "project",
    "meeting",
    "invoice",
    "budget",
    "review",
    "draft",
    "schedule",
    "please",
    "attached",
    "report",
    "quarter",
    "results",
    "server",
    "migration",
    "mailbox",
    "deadline",
    "customer",
    "contract",
    "update",
    "thanks",
    "regards",
    "tomorrow",
    "afternoon",
    "agenda",
    "proposal",
    "team",
    "office",
    "travel",
    "holiday",
    "release",
    "version",
    "ticket",
    "issue",
    "question",
    "answer",
    "follow",
    "up",
    "on",
    "our",
    "call",
    "with",
    "for",
    "and",
    "to",
    "of",
    "in",
    "is",
    "we",
    "you",
    "will",
    "need",
    "can",
    "should",
    "would",
    "could",
    "before",
    "after",
    "about",
    "next",
    "week",
    "monday",
    "friday",
    "numbers",
    "figures",
    "summary",
    "minutes",
    "action",
    "items",
    "owner",
    "status",
    "green",
    "amber",
    "red",
    "risk",
    "plan",
    "backup",
    "restore",
    "archive",
    "folder",
    "password",
    "reset",
    "account",
    "access",
    "list",
];

/// Lines that start with `.` or `From `: SMTP/POP3 dot-stuffing (RFC 5321 §4.5.2,
/// RFC 1939 §3) and mbox `From ` quoting must round-trip byte for byte. A lone `.`
/// line is the POP3 end-of-message marker if a transport forgets to stuff it.
pub(crate) const TRICKY_LINES: &[&str] = &[
    ".",
    "..",
    ".profile and .bashrc are attached below",
    "...and so on",
    "From the desk of the managing director",
    "From here on, replies go to the new address.",
    ">From a quoted mbox line",
    " leading space, trailing space ",
    "\ttab-indented line",
];

/// 8-bit UTF-8 lines (sent with `Content-Transfer-Encoding: 8bit`).
pub(crate) const UTF8_LINES: &[&str] = &[
    "Привет! Отчёт за квартал во вложении.",
    "Grüße aus München, die Übersicht folgt später.",
    "会議の議事録を添付します。よろしくお願いします。",
    "Ça coûte 15 € — déjà payé, merci.",
    "Ελληνικά: καλημέρα σας.",
    "emoji: ✉️ 📎 ✅",
];

/// Pre-wrapped ASCII text lines, at most 72 characters each.
fn text_pool() -> &'static [String] {
    static POOL: OnceLock<Vec<String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut rng = Rng::new(0x7E57, 1);
        (0..1024)
            .map(|_| {
                let target = rng.between(40, 72);
                let mut line = String::new();
                while line.len() < target {
                    let w = rng.pick(WORDS);
                    if line.len() + w.len() + 1 > 72 {
                        break;
                    }
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(w);
                }
                if rng.percent(30) {
                    line.push('.');
                }
                line
            })
            .collect()
    })
}

/// Bytes per base64 line including CRLF (76 characters, RFC 2045 §6.8).
const B64_LINE: usize = 78;
const B64_POOL_LINES: usize = 1 << 14;
const B64_CHUNK_LINES: usize = 64;

/// 16384 lines of random base64 (1.25 MB).
fn b64_pool() -> &'static [u8] {
    static POOL: OnceLock<Vec<u8>> = OnceLock::new();
    POOL.get_or_init(|| {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rng = Rng::new(0xB64, 2);
        let mut pool = Vec::with_capacity(B64_POOL_LINES * B64_LINE);
        for _ in 0..B64_POOL_LINES {
            let mut bits = 0u64;
            for i in 0..76 {
                if i % 10 == 0 {
                    bits = rng.next_u64();
                }
                pool.push(alphabet[(bits & 63) as usize]);
                bits >>= 6;
            }
            pool.extend_from_slice(b"\r\n");
        }
        pool
    })
}

/// Appends about `bytes` of base64 lines (whole lines, at least one) to `out`.
pub(crate) fn push_base64_fill(out: &mut Vec<u8>, rng: &mut Rng, bytes: usize) {
    let pool = b64_pool();
    let mut lines = bytes.div_ceil(B64_LINE).max(1);
    out.reserve(lines * B64_LINE);
    while lines > 0 {
        let n = lines.min(B64_CHUNK_LINES);
        let start = rng.below(B64_POOL_LINES - n) * B64_LINE;
        out.extend_from_slice(&pool[start..start + n * B64_LINE]);
        lines -= n;
    }
}

/// Appends about `bytes` of ASCII text in paragraphs to `out`.
pub(crate) fn push_text(out: &mut Vec<u8>, rng: &mut Rng, bytes: usize) {
    let pool = text_pool();
    let end = out.len() + bytes;
    while out.len() < end {
        for _ in 0..rng.between(2, 6) {
            out.extend_from_slice(rng.pick(pool).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Real base64 of `data` in 76-character lines (for small parts whose content matters).
pub(crate) fn base64_lines(data: &[u8]) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + data.len() / 38 + 4);
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.extend_from_slice(b"\r\n");
        }
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (j, b)| acc | u32::from(*b) << (16 - 8 * j));
        for j in 0..4 {
            out.push(if j <= chunk.len() {
                alphabet[(n >> (18 - 6 * j) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// An RFC 2047 encoded-word (UTF-8, base64) for a non-ASCII header value.
pub(crate) fn encoded_word(s: &str) -> String {
    let b64 = base64_lines(s.as_bytes());
    let b64 = String::from_utf8_lossy(&b64).replace("\r\n", "");
    format!("=?UTF-8?B?{b64}?=")
}

/// People in From/To; some display names are non-ASCII (sent as encoded-words).
const PEOPLE: &[(&str, &str)] = &[
    ("Alice Example", "alice@example.com"),
    ("Bob Builder", "bob@example.org"),
    ("Carol Müller", "carol@example.de"),
    ("Дмитрий Иванов", "dmitry@example.ru"),
    ("山田太郎", "yamada@example.jp"),
    ("Eve O'Neil", "eve@example.net"),
    ("support", "support@vendor.example"),
    ("Frank \"The Tank\"", "frank@example.com"),
];

/// A `From`/`To` header value for one person.
pub(crate) fn address(rng: &mut Rng) -> String {
    let (name, addr) = *rng.pick(PEOPLE);
    if name.is_ascii() {
        let quoted = name.replace('"', "\\\"");
        format!("\"{quoted}\" <{addr}>")
    } else {
        format!("{} <{addr}>", encoded_word(name))
    }
}

/// A fresh Message-ID.
pub(crate) fn message_id(rng: &mut Rng) -> String {
    format!(
        "<{:016x}.{:08x}@mail.example.com>",
        rng.next_u64(),
        rng.next_u64() as u32
    )
}

/// The header block of a message: everything up to and including the blank line.
#[derive(Debug, Clone)]
pub(crate) struct Headers {
    /// The `Date:` (sending time); the INTERNALDATE is usually a bit later.
    pub(crate) date: DateTime<FixedOffset>,
    /// Raw `Subject:` value (already encoded if it needs to be).
    pub(crate) subject: String,
    /// With angle brackets; `None` leaves the header out.
    pub(crate) message_id: Option<String>,
    /// `From:` value.
    pub(crate) from: String,
    /// `To:` value.
    pub(crate) to: String,
}

impl Headers {
    /// Ordinary headers for a message sent at `date`.
    pub(crate) fn new(rng: &mut Rng, date: DateTime<FixedOffset>, subject: &str) -> Headers {
        let subject = if subject.is_ascii() {
            subject.to_owned()
        } else {
            encoded_word(subject)
        };
        Headers {
            date,
            subject,
            message_id: Some(message_id(rng)),
            from: address(rng),
            to: address(rng),
        }
    }

    fn render(&self, rng: &mut Rng, out: &mut Vec<u8>, content_headers: &str) {
        let hops = rng.between(1, 2);
        for hop in 0..hops {
            let received = format!(
                "Received: from mx{}.example.net (mx{}.example.net [192.0.2.{}])\r\n\tby mail.example.com with ESMTPS id {:012x};\r\n\t{}\r\n",
                hop + 1,
                hop + 1,
                rng.between(1, 254),
                rng.next_u64() & 0xffff_ffff_ffff,
                self.date.to_rfc2822()
            );
            out.extend_from_slice(received.as_bytes());
        }
        let mut h = format!(
            "Date: {}\r\nFrom: {}\r\nTo: {}\r\nSubject: {}\r\n",
            self.date.to_rfc2822(),
            self.from,
            self.to,
            self.subject
        );
        if let Some(id) = &self.message_id {
            h.push_str(&format!("Message-ID: {id}\r\n"));
        }
        if rng.percent(30) {
            h.push_str("X-Mailer: Mailhaul Corpus 1.0\r\n");
        }
        h.push_str("MIME-Version: 1.0\r\n");
        h.push_str(content_headers);
        h.push_str("\r\n");
        out.extend_from_slice(h.as_bytes());
    }
}

/// A body shape.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// `text/plain` 7bit ASCII of about this many bytes, with the given extra lines.
    Plain { bytes: usize, lines: Vec<String> },
    /// `text/plain; charset=utf-8` sent as 8bit.
    EightBit { lines: Vec<String> },
    /// `text/plain; charset=utf-8` sent as base64.
    Base64Text { text: String },
    /// `multipart/alternative`: text and HTML of about this many bytes each.
    Alternative { bytes: usize },
    /// `multipart/mixed`: a short text part and a base64 attachment of about this size.
    Attachment {
        bytes: usize,
        name: String,
        mime: String,
    },
}

/// Renders a whole message.
pub(crate) fn render(rng: &mut Rng, headers: &Headers, body: &Body) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    let boundary = format!("=_mh_{:016x}", rng.next_u64());
    let text = |charset: &str, cte: &str| {
        format!(
            "Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n"
        )
    };
    let multipart =
        |kind: &str| format!("Content-Type: multipart/{kind}; boundary=\"{boundary}\"\r\n");
    let content_headers = match body {
        Body::Plain { .. } => text("us-ascii", "7bit"),
        Body::EightBit { .. } => text("utf-8", "8bit"),
        Body::Base64Text { .. } => text("utf-8", "base64"),
        Body::Alternative { .. } => multipart("alternative"),
        Body::Attachment { .. } => multipart("mixed"),
    };
    headers.render(rng, &mut out, &content_headers);
    match body {
        Body::Plain { bytes, lines } => {
            push_text(&mut out, rng, *bytes);
            push_lines(&mut out, lines);
        }
        Body::EightBit { lines } => push_lines(&mut out, lines),
        Body::Base64Text { text } => out.extend_from_slice(&base64_lines(text.as_bytes())),
        Body::Alternative { bytes } => {
            out.extend_from_slice(b"This is a multi-part message in MIME format.\r\n\r\n");
            part_header(
                &mut out,
                &boundary,
                "text/plain; charset=us-ascii",
                "7bit",
                None,
            );
            push_text(&mut out, rng, *bytes);
            part_header(
                &mut out,
                &boundary,
                "text/html; charset=us-ascii",
                "7bit",
                None,
            );
            out.extend_from_slice(b"<html><body>\r\n");
            let start = out.len();
            push_text(&mut out, rng, *bytes);
            let html = String::from_utf8_lossy(&out[start..]).replace("\r\n\r\n", "\r\n<p>\r\n");
            out.truncate(start);
            out.extend_from_slice(html.as_bytes());
            out.extend_from_slice(b"</body></html>\r\n");
            out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        }
        Body::Attachment { bytes, name, mime } => {
            part_header(
                &mut out,
                &boundary,
                "text/plain; charset=us-ascii",
                "7bit",
                None,
            );
            let text = rng.between(300, 3000);
            push_text(&mut out, rng, text);
            part_header(&mut out, &boundary, mime, "base64", Some(name));
            push_base64_fill(&mut out, rng, *bytes);
            out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        }
    }
    out
}

fn push_lines(out: &mut Vec<u8>, lines: &[String]) {
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn part_header(out: &mut Vec<u8>, boundary: &str, ct: &str, cte: &str, file: Option<&str>) {
    let mut h =
        format!("--{boundary}\r\nContent-Type: {ct}\r\nContent-Transfer-Encoding: {cte}\r\n");
    if let Some(name) = file {
        h.push_str(&format!(
            "Content-Disposition: attachment; filename=\"{name}\"\r\n"
        ));
    }
    h.push_str("\r\n");
    out.extend_from_slice(h.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", "\r\n"),
            ("f", "Zg==\r\n"),
            ("fo", "Zm8=\r\n"),
            ("foo", "Zm9v\r\n"),
            ("foobar", "Zm9vYmFy\r\n"),
        ] {
            assert_eq!(
                String::from_utf8(base64_lines(raw.as_bytes())).expect("ascii"),
                enc
            );
        }
        let long = base64_lines(&[0u8; 100]);
        assert!(long.split(|&b| b == b'\n').all(|l| l.len() <= 77));
    }

    #[test]
    fn fills_are_close_to_the_requested_size() {
        let mut rng = Rng::new(1, 1);
        for want in [1usize, 1000, 100_000, 3_000_000] {
            let mut out = Vec::new();
            push_base64_fill(&mut out, &mut rng, want);
            assert!(
                out.len() >= want && out.len() < want + B64_LINE,
                "{want} -> {}",
                out.len()
            );
            assert_eq!(out.len() % B64_LINE, 0);
        }
    }
}
