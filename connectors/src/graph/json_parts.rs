//! Walking a message's whole MIME tree for the JSON path: which parts are the body, in
//! order, and which are attachments, with names users can open.
//!
//! Rules (RFC 2046 §5.1, RFC 2387, RFC 8551 §3.5, RFC 6522):
//! - `multipart/alternative`: the last alternative that can be shown as HTML (a
//!   `text/html`, or a multipart holding one), else the last `text/plain`; calendar
//!   alternatives (Outlook's meeting requests) are kept as attachments, the other
//!   alternatives are the same content and are left out.
//! - `multipart/related`: the root (the `start` part, else the first) is the body; the
//!   other parts are its resources.
//! - `multipart/signed`, `multipart/report`: the first part is the body, the others
//!   (signature, delivery status, the returned message) are attachments.
//! - Any other multipart (`mixed`, `digest`, unknown): every part in order. A
//!   `text/plain` or `text/html` part that is not an attachment (no `attachment`
//!   disposition, no file name) is body text wherever it stands (list footers, Apple
//!   Mail's HTML split around an image); an image with `Content-Disposition: inline`
//!   between them is shown where it stands.
//! - An attachment is inline (`isInline`) exactly when the final HTML references its
//!   Content-ID (`cid:`, RFC 2392), whatever its disposition says: Outlook hides inline
//!   attachments that the body does not show.
//! - Attachment bytes are the part's bytes after transfer decoding, never re-encoded
//!   (a Latin-1 `.txt` stays Latin-1). Identical calendar parts (Google sends the
//!   invitation as `text/calendar` and again as `invite.ics`) become one.

use super::message_json::FileAttachment;
use crate::mime::shape::{content_type, is_calendar};
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessagePart, MimeHeaders as _, PartType};

/// One piece of the body, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// A `text/html` part, decoded.
    Html(String),
    /// A `text/plain` part, decoded.
    Text(String),
    /// An image shown where it stands, by Content-ID.
    Image(String),
}

/// The body pieces and attachments of a message.
#[derive(Debug, Default)]
pub(super) struct Parts {
    pub(super) segments: Vec<Segment>,
    pub(super) attachments: Vec<FileAttachment>,
}

/// Splits `message` into body segments and attachments (see the module docs).
pub(super) fn collect(message: &Message<'_>) -> Parts {
    let mut walk = Walk {
        message,
        out: Parts::default(),
        generated_cids: 0,
    };
    if !message.parts.is_empty() {
        walk.part(0, Flow::Body);
    }
    let mut parts = walk.out;
    mark_inline(&mut parts);
    parts
}

/// Where a part stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// In the body flow: text parts are body, inline images are shown in place.
    Body,
    /// A resource of a `multipart/related` root, or a part kept beside the body.
    Attached,
}

struct Walk<'a, 'm> {
    message: &'a Message<'m>,
    out: Parts,
    generated_cids: usize,
}

impl Walk<'_, '_> {
    fn get(&self, id: u32) -> Option<&MessagePart<'_>> {
        self.message.parts.get(id as usize)
    }

    fn part(&mut self, id: u32, flow: Flow) {
        let Some(part) = self.get(id) else { return };
        let ct = content_type(part);
        if let PartType::Multipart(children) = &part.body {
            let children = children.clone();
            let sub = ct.strip_prefix("multipart/").unwrap_or("mixed");
            if flow == Flow::Attached {
                // A multipart resource (rare): its leaves ride along as attachments.
                for c in children {
                    self.part(c, Flow::Attached);
                }
                return;
            }
            match sub {
                "alternative" => self.alternative(&children),
                "related" => {
                    let start = part
                        .content_type()
                        .and_then(|c| c.attribute("start"))
                        .map(|s| s.trim().trim_matches(['<', '>']).to_owned());
                    let root = start
                        .and_then(|s| {
                            children.iter().copied().find(|&c| {
                                self.get(c)
                                    .and_then(|p| p.content_id())
                                    .is_some_and(|cid| cid == s)
                            })
                        })
                        .or_else(|| children.first().copied());
                    for c in children {
                        let f = if Some(c) == root {
                            Flow::Body
                        } else {
                            Flow::Attached
                        };
                        self.part(c, f);
                    }
                }
                "signed" | "report" => {
                    for (i, c) in children.into_iter().enumerate() {
                        self.part(c, if i == 0 { Flow::Body } else { Flow::Attached });
                    }
                }
                _ => {
                    for c in children {
                        self.part(c, Flow::Body);
                    }
                }
            }
            return;
        }
        let body_text = flow == Flow::Body && is_body_text(part, &ct);
        match &part.body {
            PartType::Html(t) if body_text => self.out.segments.push(Segment::Html(t.to_string())),
            PartType::Text(t) if body_text && ct == "text/html" => {
                self.out.segments.push(Segment::Html(t.to_string()))
            }
            PartType::Text(t) if body_text => self.out.segments.push(Segment::Text(t.to_string())),
            _ => {
                let shown_here = flow == Flow::Body
                    && ct.starts_with("image/")
                    && part.content_disposition().is_some_and(|d| d.is_inline());
                let mut a = self.attachment(part, &ct);
                if shown_here {
                    let cid = match &a.content_id {
                        Some(c) => c.clone(),
                        None => {
                            self.generated_cids += 1;
                            let c =
                                format!("part{}.mailhaul@migrated.invalid", self.generated_cids);
                            a.content_id = Some(c.clone());
                            c
                        }
                    };
                    self.out.segments.push(Segment::Image(cid));
                }
                self.push_attachment(a);
            }
        }
    }

    /// The best alternative as the body; calendar alternatives as attachments.
    fn alternative(&mut self, children: &[u32]) {
        let rank = |w: &Self, id: u32| -> u8 {
            let Some(p) = w.get(id) else { return 0 };
            let ct = content_type(p);
            if ct == "text/html" || (ct.starts_with("multipart/") && w.holds_html(id, 0)) {
                2
            } else if ct == "text/plain" || ct.starts_with("multipart/") {
                1
            } else {
                0
            }
        };
        let best = children
            .iter()
            .copied()
            .filter(|&c| rank(self, c) > 0)
            .max_by_key(|&c| (rank(self, c), c));
        for &c in children {
            if Some(c) == best {
                self.part(c, Flow::Body);
            } else if self.get(c).is_some_and(|p| is_calendar(&content_type(p))) {
                self.part(c, Flow::Attached);
            }
        }
        if best.is_none() {
            for &c in children {
                if !self.get(c).is_some_and(|p| is_calendar(&content_type(p))) {
                    self.part(c, Flow::Attached);
                }
            }
        }
    }

    fn holds_html(&self, id: u32, depth: u8) -> bool {
        let Some(p) = self.get(id) else { return false };
        match &p.body {
            PartType::Multipart(children) if depth < 8 => {
                children.iter().any(|&c| self.holds_html(c, depth + 1))
            }
            PartType::Html(_) => true,
            _ => content_type(p) == "text/html",
        }
    }

    fn attachment(&self, part: &MessagePart<'_>, ct: &str) -> FileAttachment {
        let n = self.out.attachments.len() + 1;
        let name = part
            .attachment_name()
            .map(base_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_name(part, ct, n));
        FileAttachment {
            name,
            content_type: ct.to_owned(),
            inline: false,
            content_id: part
                .content_id()
                .map(|c| c.trim().trim_matches(['<', '>']).to_owned())
                .filter(|c| !c.is_empty()),
            bytes: original_bytes(self.message, part),
        }
    }

    fn push_attachment(&mut self, a: FileAttachment) {
        if is_calendar(&a.content_type)
            && let Some(same) = self
                .out
                .attachments
                .iter_mut()
                .find(|b| is_calendar(&b.content_type) && same_calendar(&a.bytes, &b.bytes))
        {
            // Keep the one entry, with a name the sender gave if either had one.
            if same.name == "invite.ics" && a.name != "invite.ics" {
                same.name = a.name;
            }
            return;
        }
        self.out.attachments.push(a);
    }
}

/// Whether a `text/plain` or `text/html` part is body text rather than a file.
fn is_body_text(part: &MessagePart<'_>, ct: &str) -> bool {
    if ct != "text/plain" && ct != "text/html" {
        return false;
    }
    let attached = part
        .content_disposition()
        .is_some_and(|d| d.is_attachment() || d.attribute("filename").is_some());
    let named = part
        .content_type()
        .is_some_and(|c| c.attribute("name").is_some());
    !attached && !named
}

/// Two calendar parts with the same content, line endings aside.
fn same_calendar(a: &[u8], b: &[u8]) -> bool {
    let norm = |x: &[u8]| -> Vec<u8> {
        x.iter()
            .copied()
            .filter(|&c| c != b'\r')
            .collect::<Vec<u8>>()
    };
    a == b || norm(a).trim_ascii() == norm(b).trim_ascii()
}

/// The last path component of a sender-given file name (`C:\x\a.pdf` -> `a.pdf`).
fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .trim()
        .to_owned()
}

/// A name for a part that has none: by its type (issue 11: no `attachment-N` without an
/// extension).
fn default_name(part: &MessagePart<'_>, ct: &str, n: usize) -> String {
    let fixed = match ct {
        "text/calendar" | "application/ics" => Some("invite.ics"),
        "application/pkcs7-signature" | "application/x-pkcs7-signature" => Some("smime.p7s"),
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => Some("smime.p7m"),
        "application/ms-tnef" | "application/vnd.ms-tnef" => Some("winmail.dat"),
        "message/delivery-status" | "message/global-delivery-status" => Some("delivery-status.txt"),
        "message/disposition-notification" => Some("disposition-notification.txt"),
        "text/rfc822-headers" => Some("headers.txt"),
        "application/pgp-signature" => Some("signature.asc"),
        _ => None,
    };
    if let Some(f) = fixed {
        return f.to_owned();
    }
    if let Some(m) = part.message() {
        let subject = m.subject().map(file_safe).unwrap_or_default();
        let stem = if subject.is_empty() {
            "message".to_owned()
        } else {
            subject
        };
        return format!("{stem}.eml");
    }
    format!("attachment-{n}.{}", extension(ct))
}

/// A file name extension for a MIME type (`bin` when unknown).
pub(super) fn extension(ct: &str) -> &'static str {
    match ct {
        "text/plain" => "txt",
        "text/html" => "html",
        "text/csv" => "csv",
        "text/xml" | "application/xml" => "xml",
        "text/vcard" | "text/x-vcard" | "text/directory" => "vcf",
        "text/calendar" | "application/ics" => "ics",
        "message/rfc822" | "message/global" => "eml",
        "image/png" => "png",
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/gif" => "gif",
        "image/bmp" => "bmp",
        "image/webp" => "webp",
        "image/tiff" => "tif",
        "image/svg+xml" => "svg",
        "image/heic" => "heic",
        "application/pdf" => "pdf",
        "application/zip" | "application/x-zip-compressed" => "zip",
        "application/json" => "json",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/rtf" | "text/rtf" => "rtf",
        "audio/mpeg" => "mp3",
        "audio/wav" | "audio/x-wav" => "wav",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}

/// A subject made fit for a file name: no characters Windows refuses, at most 100
/// characters.
fn file_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_control() || "\\/:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .take(100)
        .collect();
    cleaned.trim().trim_end_matches('.').trim().to_owned()
}

/// The part's bytes after transfer decoding, before any charset decoding (mail-parser
/// hands text parts over as UTF-8, which would change a `.txt` file's bytes).
fn original_bytes(message: &Message<'_>, part: &MessagePart<'_>) -> Vec<u8> {
    match &part.body {
        PartType::Text(_) | PartType::Html(_) => {
            let raw = message
                .raw_message
                .get(part.offset_body as usize..part.offset_end as usize)
                .unwrap_or_default();
            let decoded = match part.encoding {
                Encoding::Base64 => base64_decode(raw),
                Encoding::QuotedPrintable => quoted_printable_decode(raw),
                Encoding::None => None,
            };
            decoded.unwrap_or_else(|| raw.to_vec())
        }
        _ => part.contents().to_vec(),
    }
}

/// Sets `inline` on exactly the attachments whose Content-ID the HTML references.
fn mark_inline(parts: &mut Parts) {
    let html: Vec<&str> = parts
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Html(h) => Some(h.as_str()),
            _ => None,
        })
        .collect();
    let mut referenced: Vec<String> = html.iter().flat_map(|h| cid_refs(h)).collect();
    referenced.extend(parts.segments.iter().filter_map(|s| match s {
        Segment::Image(c) => Some(c.to_ascii_lowercase()),
        _ => None,
    }));
    for a in &mut parts.attachments {
        a.inline = a
            .content_id
            .as_ref()
            .is_some_and(|c| referenced.contains(&c.to_ascii_lowercase()));
    }
}

/// The Content-IDs an HTML text references as `cid:` URLs (RFC 2392: percent-encoded),
/// lowercase.
pub(super) fn cid_refs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("cid:") {
        rest = &rest[i + 4..];
        let end = rest
            .find(|c: char| c.is_whitespace() || "\"'()<>".contains(c))
            .unwrap_or(rest.len());
        let url = &rest[..end];
        if !url.is_empty() {
            out.push(percent_decode(url));
        }
        rest = &rest[end..];
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
