//! The MIME of a PST item, for IMAP targets and Exchange's MIME paths, and the IMAP
//! flags of its state.
//!
//! - Headers: the transport headers it arrived with (PidTagTransportMessageHeaders)
//!   where the PST has them, without their MIME structure headers (the body is built
//!   anew); otherwise synthesised from the properties: Date, From, Sender, To, Cc, Bcc,
//!   Subject (RFC 2047), Message-ID, In-Reply-To, References, Importance, Sensitivity,
//!   Thread-Index/Thread-Topic, Keywords.
//! - Body: text and HTML as multipart/alternative, inline images with the HTML as
//!   multipart/related, attachments in multipart/mixed, embedded messages as
//!   message/rfc822 parts; S/MIME items pass through as the entity they carry.
//! - Deterministic: the same item gives the same bytes (boundaries come from the part's
//!   place, not from chance or the clock), so a re-exported PST's copy of an item has
//!   the same content hash and is re-matched rather than copied again. Text is
//!   quoted-printable and binary base64, so no encoded line can look like a boundary
//!   (`=_` never occurs in either).

use super::item::{Attachment, Item, Mailbox, Smime};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt::Write as _;

/// Transport headers that describe the original MIME structure, which is not kept.
const STRUCTURE: &[&str] = &[
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
    "content-length",
    "content-id",
];

/// The whole message.
pub fn build(item: &Item) -> Vec<u8> {
    let mut out = String::new();
    headers(item, &mut out);
    out.push_str("MIME-Version: 1.0\r\n");
    match &item.smime {
        Some(Smime::Signed(entity)) => {
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&crlf(entity));
            return bytes;
        }
        Some(Smime::Opaque(p7m)) => {
            out.push_str(
                "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\r\n\
                 Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n",
            );
            base64_lines(p7m, &mut out);
            return out.into_bytes();
        }
        None => {}
    }
    body(item, "0", &mut out);
    out.into_bytes()
}

/// IMAP flags for the item's state: `\Seen` (MSGFLAG_READ), `\Flagged` (flag status
/// flagged), `\Answered` / `$Forwarded` (last verb), `\Draft` (unsent), and its
/// categories as keywords (characters IMAP atoms cannot hold become `_`).
pub fn flags(item: &Item) -> Vec<String> {
    let mut f = Vec::new();
    if item.is_read() {
        f.push("\\Seen".to_owned());
    }
    if item.flag_status == Some(2) {
        f.push("\\Flagged".to_owned());
    }
    match item.last_verb {
        Some(102 | 103) => f.push("\\Answered".to_owned()),
        Some(104) => f.push("$Forwarded".to_owned()),
        _ => {}
    }
    if item.is_draft() {
        f.push("\\Draft".to_owned());
    }
    for c in &item.categories {
        let k: String = c
            .chars()
            .map(|ch| {
                if ch.is_ascii_graphic() && !"(){%*\"\\]".contains(ch) {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        if !k.is_empty() && !f.contains(&k) {
            f.push(k);
        }
    }
    f
}

fn headers(item: &Item, out: &mut String) {
    let mut have = Vec::new();
    if let Some(h) = &item.headers {
        for field in fields(h) {
            let name = field
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if name.is_empty() || STRUCTURE.contains(&name.as_str()) {
                continue;
            }
            have.push(name);
            out.push_str(&field);
        }
    }
    let missing = |n: &str| !have.iter().any(|h| h == n);
    if missing("date")
        && let Some(d) = item.sent.or(item.received)
    {
        let _ = write!(out, "Date: {}\r\n", d.to_rfc2822());
    }
    if missing("from")
        && let Some(f) = &item.from
    {
        address_header("From", std::slice::from_ref(f), out);
    }
    if missing("sender")
        && let Some(s) = &item.sender
    {
        address_header("Sender", std::slice::from_ref(s), out);
    }
    for (name, list) in [("To", &item.to), ("Cc", &item.cc), ("Bcc", &item.bcc)] {
        if missing(&name.to_ascii_lowercase()) && !list.is_empty() {
            address_header(name, list, out);
        }
    }
    if missing("subject") {
        let _ = write!(out, "Subject: {}\r\n", encode_word(&item.subject));
    }
    for (name, value) in [
        ("Message-ID", &item.message_id),
        ("In-Reply-To", &item.in_reply_to),
        ("References", &item.references),
    ] {
        if missing(&name.to_ascii_lowercase())
            && let Some(v) = value
        {
            let _ = write!(out, "{name}: {}\r\n", v.trim());
        }
    }
    if missing("importance") {
        match item.importance {
            Some(0) => out.push_str("Importance: low\r\n"),
            Some(2) => out.push_str("Importance: high\r\n"),
            _ => {}
        }
    }
    if missing("sensitivity") {
        match item.sensitivity {
            Some(1) => out.push_str("Sensitivity: Personal\r\n"),
            Some(2) => out.push_str("Sensitivity: Private\r\n"),
            Some(3) => out.push_str("Sensitivity: Company-Confidential\r\n"),
            _ => {}
        }
    }
    if missing("thread-index")
        && let Some(ci) = &item.conversation_index
    {
        let _ = write!(out, "Thread-Index: {}\r\n", STANDARD.encode(ci));
    }
    if missing("thread-topic")
        && let Some(t) = &item.conversation_topic
    {
        let _ = write!(out, "Thread-Topic: {}\r\n", encode_word(t));
    }
    if missing("keywords") && !item.categories.is_empty() {
        let words: Vec<String> = item.categories.iter().map(|c| encode_word(c)).collect();
        let _ = write!(out, "Keywords: {}\r\n", words.join(", "));
    }
}

/// The header fields of a header section, each with its folded lines, CRLF-ended.
fn fields(h: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in h.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            // The end of the section (transport headers may carry the blank line).
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push_str(line);
                last.push_str("\r\n");
            }
            continue;
        }
        if !line.contains(':') {
            continue;
        }
        out.push(format!("{line}\r\n"));
    }
    out
}

fn address_header(name: &str, list: &[Mailbox], out: &mut String) {
    let parts: Vec<String> = list.iter().map(address).collect();
    let _ = write!(out, "{name}: {}\r\n", parts.join(",\r\n "));
}

fn address(m: &Mailbox) -> String {
    if m.name.is_empty() || m.name == m.address {
        return format!("<{}>", m.address);
    }
    let name = if m.name.is_ascii() {
        let escaped = m.name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        encode_word(&m.name)
    };
    format!("{name} <{}>", m.address)
}

/// RFC 2047 B-encoding of non-ASCII text, in encoded words of at most 75 characters.
pub(crate) fn encode_word(s: &str) -> String {
    if s.is_ascii() && !s.contains("=?") && !s.contains(['\r', '\n']) {
        return s.to_owned();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for ch in s.chars().filter(|c| *c != '\r' && *c != '\n') {
        if chunk.len() + ch.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(ch);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// A parameter value: quoted ASCII, or RFC 2231 for anything else.
fn param(name: &str, value: &str) -> String {
    if value.is_ascii() && !value.contains(['"', '\\', '\r', '\n']) {
        return format!("{name}=\"{value}\"");
    }
    let mut enc = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            enc.push(char::from(b));
        } else {
            let _ = write!(enc, "%{b:02X}");
        }
    }
    format!("{name}*=UTF-8''{enc}")
}

/// The body of `item` as one MIME entity (headers from Content-Type on, then content).
/// `path` names the entity's place, for its boundaries.
fn body(item: &Item, path: &str, out: &mut String) {
    let (inline, files): (Vec<&Attachment>, Vec<&Attachment>) = item
        .attachments
        .iter()
        .partition(|a| a.inline && item.html.is_some() && a.embedded.is_none());
    if files.is_empty() {
        return alternative(item, &inline, path, out);
    }
    let b = boundary(path);
    let _ = write!(
        out,
        "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n"
    );
    alternative(item, &inline, &format!("{path}.0"), out);
    for (i, a) in files.iter().enumerate() {
        let _ = write!(out, "\r\n--{b}\r\n");
        part(a, &format!("{path}.{}", i + 1), out);
    }
    let _ = write!(out, "\r\n--{b}--\r\n");
}

fn boundary(path: &str) -> String {
    format!("=_mailhaul.{path}_")
}

/// Text and HTML (with its inline parts).
fn alternative(item: &Item, inline: &[&Attachment], path: &str, out: &mut String) {
    match (&item.text, &item.html) {
        (Some(t), Some(h)) => {
            let b = boundary(path);
            let _ = write!(
                out,
                "Content-Type: multipart/alternative; boundary=\"{b}\"\r\n\r\n--{b}\r\n"
            );
            text_part("plain", t, out);
            let _ = write!(out, "\r\n--{b}\r\n");
            related(h, inline, &format!("{path}.1"), out);
            let _ = write!(out, "\r\n--{b}--\r\n");
        }
        (None, Some(h)) => related(h, inline, path, out),
        (t, None) => text_part("plain", t.as_deref().unwrap_or(""), out),
    }
}

fn related(html: &str, inline: &[&Attachment], path: &str, out: &mut String) {
    if inline.is_empty() {
        return text_part("html", html, out);
    }
    let b = boundary(path);
    let _ = write!(
        out,
        "Content-Type: multipart/related; type=\"text/html\"; boundary=\"{b}\"\r\n\r\n--{b}\r\n"
    );
    text_part("html", html, out);
    for (i, a) in inline.iter().enumerate() {
        let _ = write!(out, "\r\n--{b}\r\n");
        part(a, &format!("{path}.{}", i + 1), out);
    }
    let _ = write!(out, "\r\n--{b}--\r\n");
}

fn text_part(subtype: &str, text: &str, out: &mut String) {
    let _ = write!(
        out,
        "Content-Type: text/{subtype}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
    quoted_printable(text, out);
}

fn part(a: &Attachment, path: &str, out: &mut String) {
    let disposition = if a.inline { "inline" } else { "attachment" };
    if let Some(m) = &a.embedded {
        let _ = write!(
            out,
            "Content-Type: message/rfc822; {}\r\nContent-Disposition: {disposition}; {}\r\n\r\n",
            param("name", &a.name),
            param("filename", &a.name)
        );
        let mut inner = String::new();
        headers(m, &mut inner);
        inner.push_str("MIME-Version: 1.0\r\n");
        body(m, &format!("{path}m"), &mut inner);
        out.push_str(&inner);
        return;
    }
    let _ = write!(
        out,
        "Content-Type: {}; {}\r\nContent-Disposition: {disposition}; {}\r\n",
        a.mime_type,
        param("name", &a.name),
        param("filename", &a.name)
    );
    if let Some(cid) = &a.content_id {
        let _ = write!(out, "Content-ID: <{cid}>\r\n");
    }
    out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    base64_lines(&a.data, out);
}

fn base64_lines(data: &[u8], out: &mut String) {
    for chunk in data.chunks(57) {
        out.push_str(&STANDARD.encode(chunk));
        out.push_str("\r\n");
    }
}

/// Quoted-printable (RFC 2045 §6.7) of UTF-8 text, lines CRLF-ended.
fn quoted_printable(text: &str, out: &mut String) {
    let normalized = text.replace("\r\n", "\n");
    for line in normalized.split('\n') {
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                char::from(b).to_string()
            } else {
                format!("={b:02X}")
            };
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            width += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
    }
}

/// `data` with bare LFs turned into CRLF.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders as _;

    fn item() -> Item {
        Item {
            class: "IPM.Note".into(),
            subject: "Grüße".into(),
            from: Some(Mailbox {
                name: "Ann \"A\" Lee".into(),
                address: "ann@example.com".into(),
                resolved: true,
            }),
            sender: None,
            to: vec![Mailbox {
                name: "Bob".into(),
                address: "bob@example.com".into(),
                resolved: true,
            }],
            cc: Vec::new(),
            bcc: Vec::new(),
            sent: chrono::DateTime::from_timestamp(1_234_567_890, 0),
            received: chrono::DateTime::from_timestamp(1_234_567_900, 0),
            message_id: Some("<m1@example.com>".into()),
            in_reply_to: None,
            references: None,
            headers: None,
            text: Some("a=b\r\nline two ".into()),
            html: Some("<p>x <img src=\"cid:img1\"></p>".into()),
            flags: 1,
            importance: Some(2),
            sensitivity: None,
            flag_status: Some(2),
            last_verb: Some(102),
            icon_index: None,
            categories: vec!["Red Category".into()],
            conversation_index: None,
            conversation_topic: None,
            attachments: vec![
                Attachment {
                    name: "img.png".into(),
                    mime_type: "image/png".into(),
                    content_id: Some("img1".into()),
                    inline: true,
                    data: vec![1, 2, 3],
                    embedded: None,
                },
                Attachment {
                    name: "résumé.pdf".into(),
                    mime_type: "application/pdf".into(),
                    content_id: None,
                    inline: false,
                    data: b"%PDF".to_vec(),
                    embedded: None,
                },
            ],
            smime: None,
        }
    }

    #[test]
    fn a_message_parses_back_with_its_parts() {
        let bytes = build(&item());
        assert_eq!(bytes, build(&item()), "deterministic");
        let m = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("parses");
        assert_eq!(m.subject(), Some("Grüße"));
        assert_eq!(m.message_id(), Some("m1@example.com"));
        let from = m.from().and_then(|a| a.first()).expect("from");
        assert_eq!(from.address(), Some("ann@example.com"));
        assert_eq!(from.name(), Some("Ann \"A\" Lee"));
        assert_eq!(m.body_text(0).as_deref(), Some("a=b\r\nline two \r\n"));
        assert!(m.body_html(0).is_some_and(|h| h.contains("cid:img1")));
        let names: Vec<&str> = m
            .attachments()
            .filter_map(|a| a.attachment_name())
            .collect();
        assert_eq!(names, ["img.png", "résumé.pdf"]);
        let pdf = m.attachments().nth(1).expect("pdf");
        assert_eq!(pdf.content_type().map(|c| c.ctype()), Some("application"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Importance: high\r\n"), "{text}");
        assert!(text.contains("multipart/related"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 998));
        assert_eq!(
            flags(&item()),
            ["\\Seen", "\\Flagged", "\\Answered", "Red_Category"]
        );
    }

    #[test]
    fn transport_headers_are_kept_without_their_structure() {
        let mut i = item();
        i.headers = Some(
            "Received: from a\r\n by b\r\nFrom: Orig <o@example.com>\r\nSubject: orig\r\n\
             Content-Type: multipart/mixed;\r\n boundary=\"zz\"\r\nMIME-Version: 1.0\r\n\r\n"
                .into(),
        );
        let text = String::from_utf8(build(&i)).expect("utf-8");
        assert!(
            text.starts_with(
                "Received: from a\r\n by b\r\nFrom: Orig <o@example.com>\r\nSubject: orig\r\n"
            ),
            "{text}"
        );
        assert!(!text.contains("zz"));
        assert_eq!(text.matches("MIME-Version").count(), 1);
        assert!(
            text.contains("Message-ID: <m1@example.com>"),
            "added where missing"
        );
    }

    #[test]
    fn embedded_messages_nest_and_signed_items_pass_through() {
        let mut outer = item();
        outer.attachments = vec![Attachment {
            name: "inner.eml".into(),
            mime_type: "message/rfc822".into(),
            content_id: None,
            inline: false,
            data: Vec::new(),
            embedded: Some(Box::new(item())),
        }];
        let bytes = build(&outer);
        let m = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("parses");
        let inner = m
            .attachment(0)
            .and_then(|a| a.message())
            .expect("embedded message");
        assert_eq!(inner.subject(), Some("Grüße"));
        assert_eq!(inner.attachment_count(), 2);

        let mut signed = item();
        signed.smime = Some(Smime::Signed(
            b"Content-Type: multipart/signed; boundary=s\n\n--s\nhi\n--s--\n".to_vec(),
        ));
        let text = String::from_utf8(build(&signed)).expect("utf-8");
        assert!(text.ends_with("MIME-Version: 1.0\r\nContent-Type: multipart/signed; boundary=s\r\n\r\n--s\r\nhi\r\n--s--\r\n"), "{text}");
    }
}
