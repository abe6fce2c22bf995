//! MIME to item properties, the way Exchange promotes a MIME upload (importMime, EWS
//! `MimeContent`, v1.0 MIME drafts), with its own parser — `mailparse` and
//! `encoding_rs`, not the client's `mail-parser` — so a client bug in reading MIME
//! cannot hide behind the same bug here.
//!
//! What is modelled:
//! * subject, `From`, `Sender`, `To`/`Cc`/`Bcc`/`Reply-To` (groups flattened, empty
//!   groups such as `undisclosed-recipients:;` give nothing), `Date` → sent,
//!   `Message-ID`, `Importance`/`X-Priority` → importance; RFC 2047 words in every
//!   charset encoding_rs knows (ISO-2022-JP, Shift_JIS, EUC-JP, GB2312/GBK/GB18030,
//!   Big5, EUC-KR, Windows-1252, …), raw 8-bit header bytes as UTF-8 when valid, else
//!   Windows-1252 (what Exchange shows for undeclared 8-bit).
//! * the body: the first text part in document order (in `multipart/alternative` the
//!   richest, HTML over text; in `multipart/related` its root); its charset decoded.
//!   Text parts after it that are not attachments become attachments named
//!   `ATT00001.htm`/`.txt`, as Exchange does with Apple Mail's HTML/image/HTML split
//!   [S: the well-known "ATT00001.htm" attachments Outlook users see on such mail; the
//!   exact numbering is not documented].
//! * attachments: every other leaf part, named by `Content-Disposition` `filename`
//!   (RFC 2231 included) or `Content-Type` `name`, else `ATT0000n.<ext>`; inline when
//!   its `Content-ID` is referenced as `cid:` by the HTML body or it is marked inline
//!   inside `multipart/related`; `message/rfc822` becomes an item attachment named by
//!   the attached message's subject.
//! * item class: `text/calendar` with `method=REQUEST` → `IPM.Schedule.Meeting.Request`
//!   (the calendar part is consumed, not listed), `CANCEL` → `…Meeting.Canceled`,
//!   `REPLY` → `…Meeting.Resp.Pos`; `multipart/signed` → `IPM.Note.SMIME.MultipartSigned`;
//!   `application/pkcs7-mime` → `IPM.Note.SMIME` (no body, `smime.p7m`); a
//!   `multipart/report; report-type=delivery-status` → `REPORT.IPM.Note.NDR` (failed)
//!   or `REPORT.IPM.Note.DR`.
//!
//! * TNEF: a `winmail.dat` (`application/ms-tnef`) is unpacked into the files it
//!   carries ([`super::tnef_read`]); one that is not well-formed stays a file.
//! * addresses with a quoted local part (`"john doe"@example.com`) are addresses.
//!
//! Not modelled: TNEF's MAPI properties (body, message class), decryption of S/MIME, meeting details (start, attendees), Exchange's own
//! Message-ID for messages without one.

use chrono::{DateTime, Utc};
use mailparse::{MailAddr, MailHeader, MailHeaderMap, ParsedMail};

use super::item::{Address, Attachment, AttachmentKind, People};

/// What Exchange reads from a MIME message.
#[derive(Clone, Debug, Default)]
pub(crate) struct Promoted {
    pub(crate) subject: Option<String>,
    pub(crate) people: People,
    pub(crate) sent: Option<DateTime<Utc>>,
    pub(crate) message_id: Option<String>,
    pub(crate) importance: String,
    pub(crate) body: Option<(String, String)>,
    pub(crate) attachments: Vec<Attachment>,
    /// Every top-level header, decoded, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// The top-level header block as text.
    pub(crate) transport_headers: String,
    /// Its size in bytes.
    pub(crate) header_bytes: usize,
    pub(crate) item_class: String,
}

/// Text in `charset` (a MIME label); unknown or absent labels read as UTF-8 when the
/// bytes are valid UTF-8, else as Windows-1252.
pub(crate) fn decode_text(bytes: &[u8], charset: Option<&str>) -> String {
    if let Some(encoding) =
        charset.and_then(|c| encoding_rs::Encoding::for_label(c.trim().as_bytes()))
    {
        let (text, _) = encoding.decode_without_bom_handling(bytes);
        return text.into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    }
}

/// A header line rebuilt as UTF-8 (raw 8-bit values decoded as [`decode_text`] does),
/// so mailparse's decoders see valid text.
fn utf8_line(h: &MailHeader<'_>) -> Vec<u8> {
    let mut line = h.get_key_raw().to_vec();
    line.extend_from_slice(b": ");
    line.extend_from_slice(decode_text(h.get_value_raw(), None).as_bytes());
    line.extend_from_slice(b"\r\n");
    line
}

/// The decoded value of a header.
fn value(h: &MailHeader<'_>) -> String {
    let line = utf8_line(h);
    mailparse::parse_header(&line)
        .map(|(h, _)| h.get_value())
        .unwrap_or_default()
}

fn first<'m>(mail: &'m ParsedMail<'m>, name: &str) -> Option<&'m MailHeader<'m>> {
    mail.headers.get_first_header(name)
}

/// Addresses of every header called `name` (groups flattened).
fn addresses(mail: &ParsedMail<'_>, name: &str) -> Vec<Address> {
    let mut out = Vec::new();
    for h in mail.headers.get_all_headers(name) {
        let line = utf8_line(h);
        let Ok((h, _)) = mailparse::parse_header(&line) else {
            continue;
        };
        // mailparse misreads a bare quoted local part (`"john doe"@example.com`, a valid
        // RFC 5322 addr-spec) as a group name, swallowing the rest of the header; in
        // angle brackets it reads it.
        let parsed = if h.get_value().contains("\"@") {
            mailparse::addrparse(&bracket_quoted_local_parts(&h.get_value()))
        } else {
            mailparse::addrparse_header(&h)
        };
        let Ok(list) = parsed else {
            continue;
        };
        for addr in list.iter() {
            let singles = match addr {
                MailAddr::Single(s) => vec![s.clone()],
                MailAddr::Group(g) => g.addrs.clone(),
            };
            out.extend(singles.into_iter().map(|s| Address {
                name: s.display_name.filter(|n| !n.trim().is_empty()),
                address: s.addr,
            }));
        }
    }
    out
}

/// `"john doe"@example.com` outside angle brackets becomes `<"john doe"@example.com>`.
fn bracket_quoted_local_parts(list: &str) -> String {
    let chars: Vec<char> = list.chars().collect();
    let mut out = String::with_capacity(list.len() + 8);
    let (mut i, mut angle) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' && !angle {
            let mut end = i + 1;
            while end < chars.len() && chars[end] != '"' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            let quoted: String = chars[i..=end.min(chars.len() - 1)].iter().collect();
            if chars.get(end + 1) == Some(&'@') {
                let mut stop = end + 2;
                while stop < chars.len() && !matches!(chars[stop], ',' | ';' | '>' | ' ' | '\t') {
                    stop += 1;
                }
                let domain: String = chars[end + 1..stop].iter().collect();
                out.push('<');
                out.push_str(&quoted);
                out.push_str(&domain);
                out.push('>');
                i = stop;
            } else {
                out.push_str(&quoted);
                i = end + 1;
            }
            continue;
        }
        angle = match c {
            '<' => true,
            '>' => false,
            _ => angle,
        };
        out.push(c);
        i += 1;
    }
    out
}

fn importance(mail: &ParsedMail<'_>) -> String {
    if let Some(h) = first(mail, "Importance") {
        match value(h).trim().to_ascii_lowercase().as_str() {
            "high" => return "high".to_owned(),
            "low" => return "low".to_owned(),
            _ => {}
        }
    }
    if let Some(h) = first(mail, "X-Priority") {
        match value(h).trim().chars().next() {
            Some('1' | '2') => return "high".to_owned(),
            Some('4' | '5') => return "low".to_owned(),
            _ => {}
        }
    }
    "normal".to_owned()
}

/// What one leaf part is, once the body has been chosen.
struct Walk<'m> {
    body: Option<&'m ParsedMail<'m>>,
    /// Leaves after (or other than) the body, with whether they sit in multipart/related.
    others: Vec<(&'m ParsedMail<'m>, bool)>,
    calendar_method: Option<String>,
}

fn disposition_is_attachment(part: &ParsedMail<'_>) -> bool {
    matches!(
        part.get_content_disposition().disposition,
        mailparse::DispositionType::Attachment
    )
}

fn is_text_body(part: &ParsedMail<'_>) -> bool {
    let t = part.ctype.mimetype.to_ascii_lowercase();
    (t == "text/plain" || t == "text/html") && !disposition_is_attachment(part)
}

fn walk<'m>(part: &'m ParsedMail<'m>, related: bool, w: &mut Walk<'m>) {
    let t = part.ctype.mimetype.to_ascii_lowercase();
    if t == "multipart/alternative" {
        // The richest alternative Exchange can show: HTML, else text; a calendar
        // alternative makes the item a meeting message.
        let mut chosen = None;
        for sub in &part.subparts {
            let st = sub.ctype.mimetype.to_ascii_lowercase();
            if st == "text/calendar" {
                w.calendar_method = sub
                    .ctype
                    .params
                    .get("method")
                    .cloned()
                    .or_else(|| calendar_method_in_body(sub));
                continue;
            }
            if st == "text/html" || st.starts_with("multipart/") || chosen.is_none() {
                chosen = Some(sub);
            }
        }
        if let Some(sub) = chosen {
            walk(sub, related, w);
        }
        return;
    }
    if t.starts_with("multipart/") {
        let related = related || t == "multipart/related";
        for sub in &part.subparts {
            walk(sub, related, w);
        }
        return;
    }
    if w.body.is_none() && is_text_body(part) {
        w.body = Some(part);
    } else {
        w.others.push((part, related));
    }
}

fn calendar_method_in_body(part: &ParsedMail<'_>) -> Option<String> {
    let body = part.get_body().ok()?;
    body.lines().find_map(|l| {
        l.trim()
            .strip_prefix("METHOD:")
            .map(|m| m.trim().to_owned())
    })
}

fn extension(mimetype: &str) -> &'static str {
    match mimetype {
        "text/plain" => "txt",
        "text/html" => "htm",
        "text/calendar" | "application/ics" => "ics",
        "message/rfc822" => "eml",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "application/pdf" => "pdf",
        _ => "dat",
    }
}

/// The file name a part declares, decoded.
fn declared_name(part: &ParsedMail<'_>) -> Option<String> {
    let disposition = part.get_content_disposition();
    disposition
        .params
        .get("filename")
        .or_else(|| part.ctype.params.get("name"))
        .map(|n| {
            let line = format!("X: {n}\r\n");
            mailparse::parse_header(line.as_bytes())
                .map(|(h, _)| h.get_value())
                .unwrap_or_else(|_| n.clone())
        })
        .filter(|n| !n.trim().is_empty())
}

fn body_of(part: &ParsedMail<'_>) -> (String, String) {
    let raw = part.get_body_raw().unwrap_or_default();
    let charset = part.ctype.params.get("charset").map(String::as_str);
    let kind = if part.ctype.mimetype.eq_ignore_ascii_case("text/html") {
        "html"
    } else {
        "text"
    };
    (kind.to_owned(), decode_text(&raw, charset))
}

/// Promotes `raw`; `Err` when it is not a message Exchange would take (no header block).
pub(crate) fn promote(raw: &[u8]) -> Result<Promoted, String> {
    let mail = mailparse::parse_mail(raw).map_err(|e| e.to_string())?;
    if mail.headers.is_empty() {
        return Err("the MIME content has no header block".to_owned());
    }
    let header_block = mail.get_headers().get_raw_bytes();
    let mut p = Promoted {
        subject: first(&mail, "Subject").map(value),
        people: People {
            from: addresses(&mail, "From").into_iter().next(),
            sender: addresses(&mail, "Sender").into_iter().next(),
            to: addresses(&mail, "To"),
            cc: addresses(&mail, "Cc"),
            bcc: addresses(&mail, "Bcc"),
            reply_to: addresses(&mail, "Reply-To"),
        },
        sent: first(&mail, "Date")
            .and_then(|h| mailparse::dateparse(&value(h)).ok())
            .and_then(|t| DateTime::from_timestamp(t, 0)),
        message_id: first(&mail, "Message-ID")
            .map(|h| value(h).trim().to_owned())
            .filter(|m| !m.is_empty()),
        importance: importance(&mail),
        headers: mail
            .headers
            .iter()
            .map(|h| (h.get_key(), value(h)))
            .collect(),
        transport_headers: decode_text(header_block, None),
        header_bytes: header_block.len(),
        item_class: "IPM.Note".to_owned(),
        ..Promoted::default()
    };
    // Exchange shows the sender as From when only Sender is missing, and vice versa.
    if p.people.sender.is_none() {
        p.people.sender.clone_from(&p.people.from);
    }
    let top = mail.ctype.mimetype.to_ascii_lowercase();
    let mut w = Walk {
        body: None,
        others: Vec::new(),
        calendar_method: None,
    };
    if top == "application/pkcs7-mime" || top == "application/x-pkcs7-mime" {
        p.item_class = "IPM.Note.SMIME".to_owned();
        w.others.push((&mail, false));
    } else {
        walk(&mail, false, &mut w);
        if top == "multipart/signed" {
            p.item_class = "IPM.Note.SMIME.MultipartSigned".to_owned();
        }
        if top == "multipart/report" {
            let failed = mail.subparts.iter().any(|s| {
                s.ctype
                    .mimetype
                    .eq_ignore_ascii_case("message/delivery-status")
                    && s.get_body()
                        .is_ok_and(|b| b.to_ascii_lowercase().contains("action: failed"))
            });
            p.item_class = if failed {
                "REPORT.IPM.Note.NDR"
            } else {
                "REPORT.IPM.Note.DR"
            }
            .to_owned();
        }
    }
    // A calendar part outside an alternative decides the class too (and stays listed).
    // Only a calendar part listed among the leaves is consumed there; one inside an
    // alternative never was listed.
    let mut consumed_calendar = false;
    if w.calendar_method.is_none()
        && let Some((cal, _)) = w
            .others
            .iter()
            .find(|(o, _)| o.ctype.mimetype.eq_ignore_ascii_case("text/calendar"))
    {
        w.calendar_method = cal
            .ctype
            .params
            .get("method")
            .cloned()
            .or_else(|| calendar_method_in_body(cal));
        consumed_calendar = w.calendar_method.is_some();
    }
    if let Some(method) = &w.calendar_method {
        p.item_class = match method.to_ascii_uppercase().as_str() {
            "REQUEST" => "IPM.Schedule.Meeting.Request",
            "CANCEL" => "IPM.Schedule.Meeting.Canceled",
            "REPLY" => "IPM.Schedule.Meeting.Resp.Pos",
            _ => p.item_class.as_str(),
        }
        .to_owned();
    }
    p.body = w.body.map(body_of);
    let html = p
        .body
        .as_ref()
        .filter(|(k, _)| k == "html")
        .map(|(_, c)| c.to_ascii_lowercase())
        .unwrap_or_default();
    let mut unnamed = 0;
    for (part, related) in w.others {
        let mimetype = part.ctype.mimetype.to_ascii_lowercase();
        if consumed_calendar && mimetype == "text/calendar" {
            consumed_calendar = false; // the first calendar part became the meeting
            continue;
        }
        let content_id = first(part, "Content-ID")
            .map(|h| {
                value(h)
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
            .filter(|c| !c.is_empty());
        let referenced = content_id
            .as_ref()
            .is_some_and(|c| html.contains(&format!("cid:{}", c.to_ascii_lowercase())));
        let marked_inline = matches!(
            part.get_content_disposition().disposition,
            mailparse::DispositionType::Inline
        );
        let bytes = part.get_body_raw().unwrap_or_default();
        let item = mimetype == "message/rfc822";
        let name = declared_name(part).unwrap_or_else(|| {
            if item {
                return promote(&bytes)
                    .ok()
                    .and_then(|m| m.subject)
                    .unwrap_or_else(|| "Untitled".to_owned());
            }
            if p.item_class == "IPM.Note.SMIME" {
                return "smime.p7m".to_owned();
            }
            unnamed += 1;
            format!("ATT{unnamed:05}.{}", extension(&mimetype))
        });
        let tnef = matches!(
            mimetype.as_str(),
            "application/ms-tnef" | "application/vnd.ms-tnef"
        ) || name.eq_ignore_ascii_case("winmail.dat");
        if let Some(files) = tnef.then(|| super::tnef_read::files(&bytes)).flatten() {
            // Exchange unpacks winmail.dat into the files it carries.
            p.attachments.extend(files.into_iter().map(|f| Attachment {
                id: String::new(),
                name: f.name,
                content_type: "application/octet-stream".to_owned(),
                is_inline: false,
                content_id: None,
                kind: AttachmentKind::File,
                bytes: f.bytes,
            }));
            continue;
        }
        p.attachments.push(Attachment {
            id: String::new(),
            name,
            content_type: mimetype,
            is_inline: referenced || (related && marked_inline && content_id.is_some()),
            content_id,
            kind: if item {
                AttachmentKind::Item
            } else {
                AttachmentKind::File
            },
            bytes,
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decode_in_every_charset_and_raw_8bit_falls_back_to_1252() {
        let table: &[(&[u8], &str)] = &[
            (
                b"Subject: =?ISO-2022-JP?B?GyRCJEskWyRzJDQbKEI=?=\r\n\r\n",
                "にほんご",
            ),
            (b"Subject: =?Shift_JIS?B?k/qWe4zq?=\r\n\r\n", "日本語"),
            (b"Subject: =?GB2312?B?1tDOxA==?=\r\n\r\n", "中文"),
            (b"Subject: =?Big5?B?pKSk5Q==?=\r\n\r\n", "中文"),
            (b"Subject: =?EUC-KR?B?x9GxuQ==?=\r\n\r\n", "한국"),
            (b"Subject: =?iso-8859-1?Q?caf=E9?=\r\n\r\n", "café"),
            (b"Subject: caf\xe9 \x80\r\n\r\n", "café €"),
            ("Subject: café\r\n\r\n".as_bytes(), "café"),
        ];
        for (raw, want) in table {
            let p = promote(raw).expect("a message");
            assert_eq!(
                p.subject.as_deref(),
                Some(*want),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn a_quoted_local_part_is_an_address() {
        let raw = b"To: \"john doe\"@example.com, undisclosed-recipients:;\r\n\
Cc: Team: anna@example.org, \"Ben B.\" <ben@example.org>;\r\n\r\nhi\r\n";
        let p = promote(raw).expect("a message");
        let to: Vec<(Option<&str>, &str)> = p
            .people
            .to
            .iter()
            .map(|a| (a.name.as_deref(), a.address.as_str()))
            .collect();
        assert_eq!(to, [(None, "\"john doe\"@example.com")]);
        assert_eq!(p.people.cc.len(), 2);
    }

    #[test]
    fn apple_mail_split_html_keeps_the_rest_as_att_attachments() {
        let raw = b"From: \"Doe, John\" <j@x.example>\r\nTo: undisclosed-recipients:;\r\n\
Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>one <img src=\"cid:i1\"></p>\r\n--b\r\n\
Content-Type: image/png\r\nContent-ID: <i1>\r\nContent-Disposition: inline\r\n\r\nPNG\r\n--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>two</p>\r\n--b--\r\n";
        let p = promote(raw).expect("a message");
        assert_eq!(
            p.people.from.as_ref().and_then(|a| a.name.as_deref()),
            Some("Doe, John")
        );
        assert!(p.people.to.is_empty());
        assert!(
            p.body
                .as_ref()
                .is_some_and(|(k, c)| k == "html" && c.contains("one"))
        );
        let names: Vec<(&str, bool)> = p
            .attachments
            .iter()
            .map(|a| (a.name.as_str(), a.is_inline))
            .collect();
        assert_eq!(names, [("ATT00001.png", true), ("ATT00002.htm", false)]);
    }

    #[test]
    fn meeting_requests_and_smime_get_their_item_class() {
        let request = b"Subject: m\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\ninvite\r\n--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n\
BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n--b--\r\n";
        let p = promote(request).expect("a message");
        assert_eq!(p.item_class, "IPM.Schedule.Meeting.Request");
        assert!(p.attachments.is_empty());
        // Google: the invitation in the alternative and again as invite.ics, plus a
        // text/calendar file the user attached: both files stay.
        let google = b"Subject: g\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n\
--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--b--\r\n\
--m\r\nContent-Type: application/ics; name=invite.ics\r\nContent-Disposition: attachment; filename=invite.ics\r\n\r\n\
BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--m\r\nContent-Type: text/calendar\r\n\
Content-Disposition: attachment; filename=holidays.ics\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--m--\r\n";
        let p = promote(google).expect("a message");
        assert_eq!(p.item_class, "IPM.Schedule.Meeting.Request");
        let names: Vec<&str> = p.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["invite.ics", "holidays.ics"]);
        let smime =
            b"Subject: e\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n";
        let p = promote(smime).expect("a message");
        assert_eq!(p.item_class, "IPM.Note.SMIME");
        assert!(p.body.is_none());
        assert_eq!(p.attachments[0].name, "smime.p7m");
        assert_eq!(p.attachments[0].bytes, [0, 1, 2]);
    }
}
