//! Raw 8-bit header bytes that are not UTF-8.
//!
//! RFC 5322 headers are ASCII, with RFC 2047 encoded words for anything else; RFC 6532
//! allows raw UTF-8. Old clients wrote raw Latin-1 or Windows-1252 (`Subject: café`,
//! `filename="résumé.pdf"`), which mail-parser turns into U+FFFD. Before parsing, each
//! header line of every part that is not valid UTF-8 is decoded with the part's declared
//! charset (else the first charset any part declares, else Windows-1252, the superset
//! of Latin-1 that mail clients assume, as the WHATWG Encoding Standard does for
//! `iso-8859-1`) and written back as UTF-8. Lines that are UTF-8 already stay as they
//! are; bodies are never touched (their charset is decoded when they are read).

use encoding_rs::{Encoding, WINDOWS_1252};
use mail_parser::{MessageParser, MimeHeaders as _};

/// `mime` with its non-UTF-8 header lines decoded, or `None` when every header line is
/// UTF-8 already (the common case: nothing is copied).
pub(crate) fn repair_headers(mime: &[u8]) -> Option<Vec<u8>> {
    if std::str::from_utf8(mime).is_ok() {
        return None;
    }
    let message = MessageParser::default().parse(mime)?;
    let declared = message
        .parts
        .iter()
        .find_map(|p| p.content_type().and_then(|ct| ct.attribute("charset")))
        .and_then(|c| Encoding::for_label(c.as_bytes()));
    let mut ranges: Vec<(usize, usize, &'static Encoding)> = message
        .parts
        .iter()
        .filter_map(|p| {
            let (start, end) = (p.offset_header as usize, p.offset_body as usize);
            let bytes = mime.get(start..end)?;
            if std::str::from_utf8(bytes).is_ok() {
                return None;
            }
            let own = p
                .content_type()
                .and_then(|ct| ct.attribute("charset"))
                .and_then(|c| Encoding::for_label(c.as_bytes()));
            Some((start, end, own.or(declared).unwrap_or(WINDOWS_1252)))
        })
        .collect();
    if ranges.is_empty() {
        return None;
    }
    ranges.sort_by_key(|r| r.0);
    let mut out = Vec::with_capacity(mime.len() + mime.len() / 8);
    let mut at = 0;
    for (start, end, encoding) in ranges {
        if start < at {
            continue; // overlapping ranges: keep the first
        }
        out.extend_from_slice(&mime[at..start]);
        for line in mime[start..end].split_inclusive(|&b| b == b'\n') {
            if std::str::from_utf8(line).is_ok() {
                out.extend_from_slice(line);
            } else {
                let (text, _) = encoding.decode_without_bom_handling(line);
                out.extend_from_slice(text.as_bytes());
            }
        }
        at = end;
    }
    out.extend_from_slice(&mime[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed_subject(mime: &[u8]) -> Option<String> {
        let fixed = repair_headers(mime);
        let bytes = fixed.as_deref().unwrap_or(mime);
        MessageParser::default()
            .parse(bytes)
            .and_then(|m| m.subject().map(str::to_owned))
    }

    #[test]
    fn raw_8bit_headers_are_decoded() {
        for (mime, subject) in [
            // Latin-1 / Windows-1252 bytes, no charset anywhere.
            (&b"Subject: caf\xe9 \x80 \x93ok\x94\r\n\r\nbody"[..], "café € “ok”"),
            // Already UTF-8: left alone.
            ("Subject: café\r\n\r\nbody".as_bytes(), "café"),
            // A declared charset is the better guess for raw bytes (KOI8-R "привет").
            (
                &b"Subject: \xd0\xd2\xc9\xd7\xc5\xd4\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\nx"[..],
                "привет",
            ),
            // A UTF-8 line stays UTF-8 next to a Latin-1 one.
            (
                &b"X-A: na\xc3\xafve\r\nSubject: d\xe9j\xe0\r\n\r\nbody \xff"[..],
                "déjà",
            ),
        ] {
            assert_eq!(parsed_subject(mime).as_deref(), Some(subject), "{mime:?}");
        }
        assert!(repair_headers(b"Subject: x\r\n\r\nLatin-1 body \xe9").is_none());
    }

    #[test]
    fn part_headers_are_decoded_and_bodies_kept() {
        let mime = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/plain; charset=iso-8859-1\r\n\r\nd\xe9j\xe0\r\n--b\r\n\
            Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r\xe9sum\xe9.pdf\"\r\n\r\n%PDF\xe9\r\n--b--\r\n";
        let fixed = repair_headers(mime).expect("repaired");
        let m = MessageParser::default().parse(&fixed).expect("parsed");
        assert_eq!(
            m.attachment(0).and_then(|a| a.attachment_name()),
            Some("résumé.pdf")
        );
        assert_eq!(m.body_text(0).as_deref(), Some("déjà"));
        // The attachment's bytes are as they were.
        assert_eq!(
            m.attachment(0).map(|a| a.contents()),
            Some(&b"%PDF\xe9"[..])
        );
    }
}
