//! Hand-written MIME assembly and the encoders the shapes need: base64 and
//! quoted-printable bodies, RFC 2047 encoded-words, RFC 2231 parameters, legacy charsets
//! (through `encoding_rs`, never through the client's code), deterministic bytes and
//! their SHA-256.
//!
//! Nothing here parses MIME: a shape is written forwards from its inputs, and its
//! expectation is written from the same inputs, so a parser bug on either side of the
//! migration cannot make the two agree by accident.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::corpus::prng::Rng;

/// How a leaf's content is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cte {
    /// ASCII lines as they are (no header).
    SevenBit,
    /// 8-bit lines as they are (`Content-Transfer-Encoding: 8bit`).
    EightBit,
    /// `quoted-printable`.
    QuotedPrintable,
    /// `base64`, 76-character lines.
    Base64,
}

/// One MIME entity: its header lines (without CRLF) and its encoded body.
#[derive(Debug, Clone)]
pub(crate) struct Entity {
    pub(crate) headers: Vec<Vec<u8>>,
    pub(crate) body: Vec<u8>,
}

impl Entity {
    /// A leaf: `content_type` (with its parameters), `extra` header lines
    /// (Content-Disposition, Content-ID, …) and `content` encoded as `cte`.
    pub(crate) fn leaf(content_type: &str, cte: Cte, extra: &[String], content: &[u8]) -> Self {
        let mut headers = vec![format!("Content-Type: {content_type}").into_bytes()];
        match cte {
            Cte::SevenBit => {}
            Cte::EightBit => headers.push(b"Content-Transfer-Encoding: 8bit".to_vec()),
            Cte::QuotedPrintable => {
                headers.push(b"Content-Transfer-Encoding: quoted-printable".to_vec());
            }
            Cte::Base64 => headers.push(b"Content-Transfer-Encoding: base64".to_vec()),
        }
        headers.extend(extra.iter().map(|h| h.as_bytes().to_vec()));
        let body = match cte {
            Cte::SevenBit | Cte::EightBit => crlf_terminated(content),
            Cte::QuotedPrintable => quoted_printable(content),
            Cte::Base64 => base64_lines(content),
        };
        Entity { headers, body }
    }

    /// A `multipart/<subtype>` of `parts`; `params` follow the boundary
    /// (`; type="text/html"`), `extra` header lines follow the Content-Type.
    pub(crate) fn multi(subtype: &str, params: &str, extra: &[String], parts: Vec<Entity>) -> Self {
        // Boundaries differ per nesting level and never occur in base64 or our text.
        let boundary = format!("----=_mh_{subtype}_{:x}", boundary_salt(&parts));
        let mut headers = vec![
            format!("Content-Type: multipart/{subtype}; boundary=\"{boundary}\"{params}")
                .into_bytes(),
        ];
        headers.extend(extra.iter().map(|h| h.as_bytes().to_vec()));
        let mut body = b"This is a multi-part message in MIME format.\r\n".to_vec();
        for part in parts {
            body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
            body.extend_from_slice(&part.render());
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Entity { headers, body }
    }

    /// A base64 file attachment: `content_type` with `name`, disposition `attachment`
    /// with the same `filename`.
    pub(crate) fn file(content_type: &str, name: &str, bytes: &[u8]) -> Self {
        Entity::leaf(
            &format!("{content_type}; name=\"{name}\""),
            Cte::Base64,
            &[format!(
                "Content-Disposition: attachment; filename=\"{name}\""
            )],
            bytes,
        )
    }

    /// Header lines, a blank line, the body.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        for h in &self.headers {
            out.extend_from_slice(h);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// A salt for boundaries: the parts' sizes, so nested multiparts get different ones.
fn boundary_salt(parts: &[Entity]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325, |h, p| {
        (h ^ (p.body.len() as u64 + p.headers.len() as u64)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A whole message: the top-level header lines (raw bytes, may be 8-bit), then
/// `MIME-Version` and the entity's own header lines, then its body.
pub(crate) fn message(top: &[Vec<u8>], entity: &Entity) -> Vec<u8> {
    let mut headers: Vec<Vec<u8>> = top.to_vec();
    headers.push(b"MIME-Version: 1.0".to_vec());
    headers.extend(entity.headers.iter().cloned());
    Entity {
        headers,
        body: entity.body.clone(),
    }
    .render()
}

/// Top-level header lines from `(name, value)` pairs (values already encoded).
pub(crate) fn top(pairs: &[(&str, &str)]) -> Vec<Vec<u8>> {
    pairs
        .iter()
        .map(|(n, v)| format!("{n}: {v}").into_bytes())
        .collect()
}

/// `content` with a CRLF at the end unless it has one.
fn crlf_terminated(content: &[u8]) -> Vec<u8> {
    let mut out = content.to_vec();
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Base64 in 76-character CRLF lines (RFC 2045 §6.8).
pub(crate) fn base64_lines(data: &[u8]) -> Vec<u8> {
    let encoded = STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7) of text whose lines end in CRLF: line breaks stay
/// hard breaks, lines are cut with soft breaks before 76 characters.
pub(crate) fn quoted_printable(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 2);
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                vec![b]
            } else {
                format!("={b:02X}").into_bytes()
            };
            if width + piece.len() > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            width += piece.len();
            out.extend_from_slice(&piece);
        }
        out.extend_from_slice(b"\r\n");
    }
    // `split` yields an empty last line after the final CRLF: drop its extra CRLF.
    if text.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// `text` in the charset `label`, panicking if a character has no mapping there (the
/// shape's own text is wrong, not the code under test).
pub(crate) fn encode(label: &str, text: &str) -> Vec<u8> {
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes())
        .unwrap_or_else(|| panic!("encoding_rs knows no charset {label:?}"));
    let (bytes, used, unmappable) = encoding.encode(text);
    assert!(
        !unmappable && used == encoding,
        "{text:?} is not representable in {label} (encoded as {})",
        used.name()
    );
    bytes.into_owned()
}

/// RFC 2047 "B" encoded-words for `text` in `charset`, each at most 75 characters,
/// joined by folding whitespace. Each word holds whole characters, encoded on their
/// own (a stateful charset like ISO-2022-JP returns to ASCII at the end of each word,
/// as RFC 1468 requires).
pub(crate) fn encoded_words_b(charset: &str, text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        // Grow the chunk while its encoded word still fits in 75 characters.
        let mut end = start + 1;
        while end < chars.len() && word_b(charset, &chars[start..=end]).len() <= 75 {
            end += 1;
        }
        words.push(word_b(charset, &chars[start..end]));
        start = end;
    }
    words.join("\r\n ")
}

fn word_b(charset: &str, chars: &[char]) -> String {
    let s: String = chars.iter().collect();
    format!("=?{charset}?B?{}?=", STANDARD.encode(encode(charset, &s)))
}

/// One RFC 2047 "Q" encoded-word for short `text` in `charset`.
pub(crate) fn encoded_word_q(charset: &str, text: &str) -> String {
    let mut out = format!("=?{charset}?Q?");
    for b in encode(charset, text) {
        match b {
            b' ' => out.push('_'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    assert!(out.len() <= 75, "encoded-word too long: {out}");
    out
}

/// RFC 2231 / RFC 5987 percent-encoding of UTF-8 `text` (`UTF-8''` not included).
pub(crate) fn percent_utf8(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `len` deterministic bytes for `seed`, starting with `magic` (a file signature).
pub(crate) fn blob(seed: u64, magic: &[u8], len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed, 0xB10B);
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(&magic[..magic.len().min(len)]);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `name: value` with `value` folded onto continuation lines at commas so that no line
/// passes 78 characters (RFC 5322 §2.2.3).
pub(crate) fn folded_list(name: &str, items: &[String]) -> String {
    let mut out = format!("{name}:");
    let mut width = out.len();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!(" {item},")
        } else {
            format!(" {item}")
        };
        if width + piece.len() > 78 && width > name.len() + 1 {
            out.push_str("\r\n");
            width = 0;
        }
        width += piece.len();
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_by_hand() {
        assert_eq!(
            quoted_printable("Grüße = 1 \r\nend\r\n".as_bytes()),
            b"Gr=C3=BC=C3=9Fe =3D 1=20\r\nend\r\n".to_vec()
        );
        let long = "a".repeat(100);
        let qp = quoted_printable(long.as_bytes());
        assert!(qp.split(|&b| b == b'\n').all(|l| l.len() <= 77));
        assert_eq!(qp.iter().filter(|&&b| b == b'a').count(), 100);
    }

    #[test]
    fn encoded_words_split_on_characters() {
        // 日本 in ISO-2022-JP: ESC $ B, 0x46 0x7C 0x4B 0x5C, ESC ( B.
        assert_eq!(encode("iso-2022-jp", "日本"), b"\x1b$BF|K\\\x1b(B".to_vec());
        let words = encoded_words_b("ISO-2022-JP", &"日本語の件名".repeat(8));
        for w in words.split("\r\n ") {
            assert!(w.len() <= 75 && w.starts_with("=?ISO-2022-JP?B?"), "{w}");
            let b64 = &w["=?ISO-2022-JP?B?".len()..w.len() - 2];
            let raw = STANDARD.decode(b64).expect("base64");
            assert!(raw.ends_with(b"\x1b(B"), "each word ends in ASCII state");
        }
        assert_eq!(
            encoded_word_q("ISO-8859-1", "Jürgen M"),
            "=?ISO-8859-1?Q?J=FCrgen_M?="
        );
    }

    #[test]
    #[should_panic(expected = "not representable")]
    fn unmappable_text_is_the_shapes_bug() {
        encode("euc-kr", "한국어 😀");
    }

    #[test]
    fn folded_lists_stay_short() {
        let items: Vec<String> = (0..50).map(|i| format!("user{i}@example.org")).collect();
        let h = folded_list("To", &items);
        assert!(h.split("\r\n").all(|l| l.len() <= 78), "{h}");
        assert_eq!(h.matches('@').count(), 50);
    }
}
