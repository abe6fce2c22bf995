//! A PST message as migration sees it, from its MAPI properties: subject (without the
//! prefix marker), addresses with SMTP addresses (EX addresses resolved from the SMTP
//! properties the PST carries), dates, bodies (HTML from PidTagHtml or de-encapsulated
//! from RTF), attachments (inline ones with content ids, embedded messages), state
//! (read, flag, last verb, categories) and the properties Graph keeps.
//!
//! Property tags: MS-OXPROPS. Everything here is pure: the item is converted from a
//! [`RawItem`], which either reader produced.

use super::codepage;
use super::raw::{Props, RawAttachment, RawItem};
use super::rtf;
use super::value::Value;
use chrono::{DateTime, Utc};
use encoding_rs::Encoding;

/// A name and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name (may be empty).
    pub name: String,
    /// SMTP address; for an Exchange (EX) address the PST gives no SMTP address for,
    /// `<alias>@unresolved.invalid` (see [`Mailbox::resolved`]).
    pub address: String,
    /// Whether `address` is a real SMTP address.
    pub resolved: bool,
}

/// One attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// File name (long name, else short name, else display name, else `attachment-N`).
    pub name: String,
    /// MIME type (PidTagAttachMimeTag), else guessed from the name.
    pub mime_type: String,
    /// PidTagAttachContentId, without angle brackets.
    pub content_id: Option<String>,
    /// Shown in the body (referenced by `cid:`, or hidden with a content id).
    pub inline: bool,
    /// The bytes (empty for an embedded message).
    pub data: Vec<u8>,
    /// An attached message (attach method 5).
    pub embedded: Option<Box<Item>>,
}

/// A message.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// PidTagMessageClass (`IPM.Note`, `IPM.Schedule.Meeting.Request`, ...).
    pub class: String,
    /// PidTagSubject without the prefix marker.
    pub subject: String,
    /// Who it is from (PidTagSentRepresenting*), when known.
    pub from: Option<Mailbox>,
    /// Who sent it, when different from `from` (on behalf of).
    pub sender: Option<Mailbox>,
    /// To, Cc and Bcc recipients.
    pub to: Vec<Mailbox>,
    /// Cc.
    pub cc: Vec<Mailbox>,
    /// Bcc.
    pub bcc: Vec<Mailbox>,
    /// PidTagClientSubmitTime.
    pub sent: Option<DateTime<Utc>>,
    /// PidTagMessageDeliveryTime, else the sent or creation time.
    pub received: Option<DateTime<Utc>>,
    /// PidTagInternetMessageId.
    pub message_id: Option<String>,
    /// PidTagInReplyToId.
    pub in_reply_to: Option<String>,
    /// PidTagInternetReferences.
    pub references: Option<String>,
    /// PidTagTransportMessageHeaders: the headers it arrived with.
    pub headers: Option<String>,
    /// PidTagBody.
    pub text: Option<String>,
    /// PidTagHtml, or the HTML de-encapsulated from PidTagRtfCompressed.
    pub html: Option<String>,
    /// PidTagMessageFlags.
    pub flags: i32,
    /// PidTagImportance: 0 low, 1 normal, 2 high.
    pub importance: Option<i32>,
    /// PidTagSensitivity: 0 normal, 1 personal, 2 private, 3 confidential.
    pub sensitivity: Option<i32>,
    /// PidTagFlagStatus: 1 complete, 2 flagged.
    pub flag_status: Option<i32>,
    /// PidTagLastVerbExecuted: 102 reply, 103 reply all, 104 forward.
    pub last_verb: Option<i32>,
    /// PidTagIconIndex.
    pub icon_index: Option<i32>,
    /// Categories (the named property Keywords).
    pub categories: Vec<String>,
    /// PidTagConversationIndex.
    pub conversation_index: Option<Vec<u8>>,
    /// PidTagConversationTopic.
    pub conversation_topic: Option<String>,
    /// The attachments in table order.
    pub attachments: Vec<Attachment>,
    /// For an S/MIME item, the MIME entity it carries (multipart/signed) or the
    /// attachment of an opaque one (application/pkcs7-mime).
    pub smime: Option<Smime>,
}

/// An S/MIME item's content, passed through as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Smime {
    /// `IPM.Note.SMIME.MultipartSigned`: a whole multipart/signed entity (headers and
    /// body) as the attachment holds it.
    Signed(Vec<u8>),
    /// `IPM.Note.SMIME`: the `smime.p7m` bytes.
    Opaque(Vec<u8>),
}

/// MSGFLAG_READ, MSGFLAG_UNSENT.
pub const MSGFLAG_READ: i32 = 0x1;
/// A draft.
pub const MSGFLAG_UNSENT: i32 = 0x8;

/// What an item is, for planning: mail goes, the rest is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Mail, posts, meeting requests and responses, receipts, reports.
    Mail,
    /// `IPM.Contact`, `IPM.DistList`.
    Contact,
    /// `IPM.Appointment`.
    Calendar,
    /// `IPM.Task`, `IPM.TaskRequest`.
    Task,
    /// `IPM.StickyNote`.
    Note,
    /// `IPM.Activity` (journal) and anything else that is not mail.
    Other,
}

impl Kind {
    /// The kind of a message class (case-insensitive, MS-OXCMSG §2.2.1.3 prefixes).
    pub fn of_class(class: &str) -> Kind {
        let c = class.to_ascii_lowercase();
        let is = |p: &str| c == p || c.starts_with(&format!("{p}."));
        if is("ipm.contact") || is("ipm.distlist") {
            Kind::Contact
        } else if is("ipm.appointment") {
            Kind::Calendar
        } else if is("ipm.task") || is("ipm.taskrequest") {
            Kind::Task
        } else if is("ipm.stickynote") {
            Kind::Note
        } else if is("ipm.activity") || is("ipm.configuration") || is("ipm.microsoft") {
            Kind::Other
        } else if c.is_empty() || is("ipm") || c.starts_with("report.") || c.starts_with("ipm.") {
            // IPM.Note, IPM.Post, IPM.Schedule.Meeting.*, IPM.Document, REPORT.*.
            Kind::Mail
        } else {
            Kind::Other
        }
    }

    /// How reports name it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Mail => "mail",
            Kind::Contact => "contacts",
            Kind::Calendar => "calendar",
            Kind::Task => "tasks",
            Kind::Note => "notes",
            Kind::Other => "other",
        }
    }
}

/// Property ids.
mod tag {
    pub(super) const CLASS: u16 = 0x001A;
    pub(super) const SUBJECT: u16 = 0x0037;
    pub(super) const IMPORTANCE: u16 = 0x0017;
    pub(super) const SENSITIVITY: u16 = 0x0036;
    pub(super) const SUBMIT_TIME: u16 = 0x0039;
    pub(super) const REP_NAME: u16 = 0x0042;
    pub(super) const REP_ADDRTYPE: u16 = 0x0064;
    pub(super) const REP_ADDRESS: u16 = 0x0065;
    pub(super) const CONV_TOPIC: u16 = 0x0070;
    pub(super) const CONV_INDEX: u16 = 0x0071;
    pub(super) const HEADERS: u16 = 0x007D;
    pub(super) const SENDER_NAME: u16 = 0x0C1A;
    pub(super) const SENDER_ADDRTYPE: u16 = 0x0C1E;
    pub(super) const SENDER_ADDRESS: u16 = 0x0C1F;
    pub(super) const RECIPIENT_TYPE: u16 = 0x0C15;
    pub(super) const DELIVERY_TIME: u16 = 0x0E06;
    pub(super) const FLAGS: u16 = 0x0E07;
    pub(super) const BODY: u16 = 0x1000;
    pub(super) const RTF: u16 = 0x1009;
    pub(super) const HTML: u16 = 0x1013;
    pub(super) const MESSAGE_ID: u16 = 0x1035;
    pub(super) const REFERENCES: u16 = 0x1039;
    pub(super) const IN_REPLY_TO: u16 = 0x1042;
    pub(super) const ICON_INDEX: u16 = 0x1080;
    pub(super) const LAST_VERB: u16 = 0x1081;
    pub(super) const FLAG_STATUS: u16 = 0x1090;
    pub(super) const DISPLAY_NAME: u16 = 0x3001;
    pub(super) const ADDRTYPE: u16 = 0x3002;
    pub(super) const EMAIL: u16 = 0x3003;
    pub(super) const CREATION_TIME: u16 = 0x3007;
    pub(super) const SMTP_ADDRESS: u16 = 0x39FE;
    pub(super) const SENDER_SMTP: u16 = 0x5D01;
    pub(super) const REP_SMTP: u16 = 0x5D02;
    pub(super) const ATTACH_DATA: u16 = 0x3701;
    pub(super) const ATTACH_FILENAME: u16 = 0x3704;
    pub(super) const ATTACH_LONG_FILENAME: u16 = 0x3707;
    pub(super) const ATTACH_MIME: u16 = 0x370E;
    pub(super) const ATTACH_CONTENT_ID: u16 = 0x3712;
    pub(super) const ATTACH_HIDDEN: u16 = 0x7FFE;
}

/// Reads string properties with the item's code page.
struct Reader<'a> {
    props: &'a Props,
    cp: &'static Encoding,
}

impl Reader<'_> {
    fn text(&self, id: u16) -> Option<String> {
        self.props
            .get(&id)
            .and_then(|v| v.text(self.cp))
            .filter(|s| !s.is_empty())
    }
    fn int(&self, id: u16) -> Option<i32> {
        self.props
            .get(&id)?
            .int()
            .and_then(|v| i32::try_from(v).ok())
    }
    fn time(&self, id: u16) -> Option<DateTime<Utc>> {
        self.props.get(&id)?.time()
    }
    fn bytes(&self, id: u16) -> Option<Vec<u8>> {
        self.props.get(&id)?.bytes().map(<[u8]>::to_vec)
    }
}

/// The address of an entry given its SMTP property, address type and address.
fn mailbox(
    name: Option<String>,
    smtp: Option<String>,
    kind: Option<String>,
    addr: Option<String>,
) -> Option<Mailbox> {
    let name = name.unwrap_or_default();
    if let Some(a) = smtp.filter(|a| a.contains('@')) {
        return Some(Mailbox {
            name,
            address: a,
            resolved: true,
        });
    }
    match (kind.as_deref(), addr) {
        (Some(k), Some(a)) if k.eq_ignore_ascii_case("SMTP") && a.contains('@') => Some(Mailbox {
            name,
            address: a,
            resolved: true,
        }),
        (_, Some(a)) if a.contains('@') && !a.starts_with('/') => Some(Mailbox {
            name,
            address: a,
            resolved: true,
        }),
        (_, Some(a)) => {
            // An Exchange legacy DN (/o=.../cn=Recipients/cn=alias) without an SMTP
            // address in the PST: keep the alias, in a domain that cannot be mistaken
            // for a real one (RFC 2606).
            let alias: String = a
                .rsplit("cn=")
                .next()
                .unwrap_or(&a)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .collect();
            let alias = if alias.is_empty() {
                "unknown".to_owned()
            } else {
                alias
            };
            Some(Mailbox {
                name,
                address: format!("{alias}@unresolved.invalid"),
                resolved: false,
            })
        }
        (_, None) if !name.is_empty() => Some(Mailbox {
            name,
            address: "unknown@unresolved.invalid".to_owned(),
            resolved: false,
        }),
        _ => None,
    }
}

/// PidTagSubject may start with U+0001 and a character giving the prefix length
/// (MS-OXCMSG §2.2.1.46); neither is part of the subject.
pub fn strip_subject_marker(s: &str) -> String {
    let mut chars = s.chars();
    if chars.next() == Some('\u{1}') {
        chars.next();
        return chars.collect();
    }
    s.to_owned()
}

/// A MIME type for a file name without PidTagAttachMimeTag.
fn guess_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "htm" | "html" => "text/html",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "zip" => "application/zip",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

impl Item {
    /// Converts a stored message. `default_cp` decodes `String8` values the item has
    /// no code page for; `keywords` is the file's property id of the named property
    /// Keywords (categories), if it has one.
    pub fn from_raw(raw: &RawItem, default_cp: &'static Encoding, keywords: Option<u16>) -> Item {
        let cp = codepage::of_item(&raw.props, default_cp);
        let r = Reader {
            props: &raw.props,
            cp,
        };
        let rep = mailbox(
            r.text(tag::REP_NAME),
            r.text(tag::REP_SMTP),
            r.text(tag::REP_ADDRTYPE),
            r.text(tag::REP_ADDRESS),
        );
        let sender = mailbox(
            r.text(tag::SENDER_NAME),
            r.text(tag::SENDER_SMTP),
            r.text(tag::SENDER_ADDRTYPE),
            r.text(tag::SENDER_ADDRESS),
        );
        let (from, sender) = match (rep, sender) {
            (Some(f), Some(s)) if !f.address.eq_ignore_ascii_case(&s.address) => (Some(f), Some(s)),
            (Some(f), _) => (Some(f), None),
            (None, s) => (s, None),
        };
        let (mut to, mut cc, mut bcc) = (Vec::new(), Vec::new(), Vec::new());
        for row in &raw.recipients {
            let rr = Reader { props: row, cp };
            let Some(m) = mailbox(
                rr.text(tag::DISPLAY_NAME),
                rr.text(tag::SMTP_ADDRESS),
                rr.text(tag::ADDRTYPE),
                rr.text(tag::EMAIL),
            ) else {
                continue;
            };
            match rr.int(tag::RECIPIENT_TYPE).unwrap_or(1) & 0xF {
                2 => cc.push(m),
                3 => bcc.push(m),
                _ => to.push(m),
            }
        }
        let html = r
            .props
            .get(&tag::HTML)
            .and_then(|v| match v {
                Value::Binary(b) | Value::String8(b) => {
                    Some(cp.decode_without_bom_handling(b).0.into_owned())
                }
                Value::Unicode(s) => Some(s.clone()),
                _ => None,
            })
            .filter(|h| !h.trim().is_empty());
        let rtf = r.bytes(tag::RTF).and_then(|c| rtf::decompress(&c).ok());
        let mut text = r.text(tag::BODY);
        let html = html.or_else(|| {
            let rtf = rtf.as_deref()?;
            (rtf::origin(rtf) == rtf::Origin::Html).then(|| rtf::html(rtf))
        });
        if text.is_none()
            && html.is_none()
            && let Some(rtf) = rtf.as_deref()
        {
            text = Some(rtf::text(rtf)).filter(|t| !t.trim().is_empty());
        }
        let sent = r.time(tag::SUBMIT_TIME);
        let created = r.time(tag::CREATION_TIME);
        let class = r.text(tag::CLASS).unwrap_or_else(|| "IPM.Note".to_owned());
        let attachments: Vec<Attachment> = raw
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| attachment(a, i, cp, keywords, html.as_deref()))
            .collect();
        let smime = smime_of(&class, &attachments);
        Item {
            subject: strip_subject_marker(&r.text(tag::SUBJECT).unwrap_or_default()),
            from,
            sender,
            to,
            cc,
            bcc,
            sent,
            received: r.time(tag::DELIVERY_TIME).or(sent).or(created),
            message_id: r.text(tag::MESSAGE_ID),
            in_reply_to: r.text(tag::IN_REPLY_TO),
            references: r.text(tag::REFERENCES),
            headers: r.text(tag::HEADERS),
            text,
            html,
            flags: r.int(tag::FLAGS).unwrap_or(MSGFLAG_READ),
            importance: r.int(tag::IMPORTANCE),
            sensitivity: r.int(tag::SENSITIVITY),
            flag_status: r.int(tag::FLAG_STATUS),
            last_verb: r.int(tag::LAST_VERB),
            icon_index: r.int(tag::ICON_INDEX),
            categories: keywords
                .and_then(|k| raw.props.get(&k))
                .map(|v| v.texts(cp))
                .unwrap_or_default(),
            conversation_index: r.bytes(tag::CONV_INDEX),
            conversation_topic: r.text(tag::CONV_TOPIC),
            attachments,
            smime,
            class,
        }
    }

    /// Whether it was read.
    pub fn is_read(&self) -> bool {
        self.flags & MSGFLAG_READ != 0
    }

    /// Whether it is an unsent draft.
    pub fn is_draft(&self) -> bool {
        self.flags & MSGFLAG_UNSENT != 0
    }
}

fn attachment(
    a: &RawAttachment,
    i: usize,
    cp: &'static Encoding,
    keywords: Option<u16>,
    html: Option<&str>,
) -> Attachment {
    let r = Reader {
        props: &a.props,
        cp,
    };
    let embedded = a
        .embedded
        .as_ref()
        .map(|m| Box::new(Item::from_raw(m, cp, keywords)));
    let name = r
        .text(tag::ATTACH_LONG_FILENAME)
        .or_else(|| r.text(tag::ATTACH_FILENAME))
        .or_else(|| r.text(tag::DISPLAY_NAME))
        .or_else(|| {
            embedded
                .as_ref()
                .map(|m| format!("{}.eml", m.subject))
                .filter(|n| n.len() > 4)
        })
        .unwrap_or_else(|| format!("attachment-{}", i + 1));
    let content_id = r
        .text(tag::ATTACH_CONTENT_ID)
        .map(|c| {
            c.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .filter(|c| !c.is_empty());
    let hidden = a
        .props
        .get(&tag::ATTACH_HIDDEN)
        .and_then(Value::int)
        .unwrap_or(0)
        != 0;
    let referenced = content_id
        .as_ref()
        .is_some_and(|c| html.is_some_and(|h| h.contains(&format!("cid:{c}"))));
    let mime_type = if embedded.is_some() {
        "message/rfc822".to_owned()
    } else {
        r.text(tag::ATTACH_MIME)
            .unwrap_or_else(|| guess_type(&name).to_owned())
    };
    Attachment {
        inline: content_id.is_some() && (referenced || hidden),
        data: r.bytes(tag::ATTACH_DATA).unwrap_or_default(),
        mime_type,
        content_id,
        embedded,
        name,
    }
}

fn smime_of(class: &str, attachments: &[Attachment]) -> Option<Smime> {
    let c = class.to_ascii_lowercase();
    if !c.starts_with("ipm.note.smime") {
        return None;
    }
    let a = attachments
        .iter()
        .find(|a| a.embedded.is_none() && !a.data.is_empty())?;
    if c.contains("multipartsigned") {
        Some(Smime::Signed(a.data.clone()))
    } else {
        Some(Smime::Opaque(a.data.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_sort_into_kinds() {
        for (class, kind) in [
            ("IPM.Note", Kind::Mail),
            ("ipm.note.smime.multipartsigned", Kind::Mail),
            ("IPM.Post", Kind::Mail),
            ("IPM.Schedule.Meeting.Request", Kind::Mail),
            ("REPORT.IPM.Note.NDR", Kind::Mail),
            ("IPM.Note.Rules.OofTemplate.Microsoft", Kind::Mail),
            ("IPM.Contact", Kind::Contact),
            ("IPM.DistList", Kind::Contact),
            ("IPM.Appointment", Kind::Calendar),
            ("IPM.Task", Kind::Task),
            ("IPM.TaskRequest.Accept", Kind::Task),
            ("IPM.StickyNote", Kind::Note),
            ("IPM.Activity", Kind::Other),
            ("IPM.Contacts", Kind::Mail),
        ] {
            assert_eq!(Kind::of_class(class), kind, "{class}");
        }
    }

    #[test]
    fn the_subject_marker_is_stripped() {
        assert_eq!(strip_subject_marker("\u{1}\u{5}RE: hi"), "RE: hi");
        assert_eq!(strip_subject_marker("plain"), "plain");
        assert_eq!(strip_subject_marker(""), "");
    }

    #[test]
    fn ex_addresses_resolve_to_smtp_or_an_invalid_domain() {
        let smtp = mailbox(
            Some("A".into()),
            Some("a@x.example".into()),
            Some("EX".into()),
            Some("/o=X/cn=a".into()),
        );
        assert_eq!(
            smtp.map(|m| (m.address, m.resolved)),
            Some(("a@x.example".into(), true))
        );
        let ex = mailbox(
            Some("B".into()),
            None,
            Some("EX".into()),
            Some("/o=Org/ou=Site/cn=Recipients/cn=bsmith".into()),
        );
        assert_eq!(
            ex.map(|m| (m.address, m.resolved)),
            Some(("bsmith@unresolved.invalid".into(), false))
        );
        assert_eq!(mailbox(None, None, None, None), None);
    }
}
