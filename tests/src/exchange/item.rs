//! What the emulator keeps of one item: every property a client may set or Exchange
//! promotes from MIME (subject, body, addresses, state, dates, headers, extended
//! properties, attachments), so the read API can show all of it back.
//!
//! Invariants: `extended` holds only what a client set (canonical ids, see
//! [`PropId`]); properties Exchange computes (message flags, dates, transport headers)
//! are derived when read, in `graph_read`/`ews_get`, never stored twice.

use chrono::{DateTime, Utc};

use super::state::{FlagStatus, Origin};

/// One address: what Graph calls an `emailAddress` (`name`, `address`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    /// Display name, if any.
    pub name: Option<String>,
    /// SMTP address as given.
    pub address: String,
}

/// Who a message is from and to: what Graph calls `from`, `sender`, `toRecipients`,
/// `ccRecipients`, `bccRecipients`, `replyTo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct People {
    pub(crate) from: Option<Address>,
    pub(crate) sender: Option<Address>,
    pub(crate) to: Vec<Address>,
    pub(crate) cc: Vec<Address>,
    pub(crate) bcc: Vec<Address>,
    pub(crate) reply_to: Vec<Address>,
}

/// What kind of attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentKind {
    /// `#microsoft.graph.fileAttachment` (EWS `FileAttachment`).
    File,
    /// `#microsoft.graph.itemAttachment`: an attached message (`message/rfc822`), whose
    /// MIME is the attachment's bytes (`/$value` answers it).
    Item,
}

/// An attachment of an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Opaque id.
    pub id: String,
    /// File name (for item attachments, the attached message's subject).
    pub name: String,
    /// MIME type as given.
    pub content_type: String,
    /// Whether it is inline (`isInline`).
    pub is_inline: bool,
    /// `contentId` (without angle brackets), if any.
    pub content_id: Option<String>,
    /// File or item.
    pub kind: AttachmentKind,
    /// The bytes (for item attachments, the attached message's MIME).
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// A file attachment with no id yet.
    pub(crate) fn file(name: &str, content_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            id: String::new(),
            name: name.to_owned(),
            content_type: content_type.to_owned(),
            is_inline: false,
            content_id: None,
            kind: AttachmentKind::File,
            bytes,
        }
    }
}

/// The identity of an extended property, as Graph spells it in
/// `singleValueExtendedProperties` (resources/singlevaluelegacyextendedproperty):
/// `"{type} 0x{tag}"`, `"{type} {guid} Name {name}"` or `"{type} {guid} Id 0x{id}"`.
/// Canonical: type lowercased, tags as numbers, GUIDs lowercased; named-property
/// names compare as given (MAPI names are case-sensitive) except in the
/// InternetHeaders namespace, where header names compare case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PropId {
    /// A tagged property.
    Tag { ty: String, tag: u32 },
    /// A named property by name.
    Name {
        ty: String,
        guid: String,
        name: String,
    },
    /// A named property by numeric id.
    Lid { ty: String, guid: String, lid: u32 },
}

/// The InternetHeaders property set (PS_INTERNET_HEADERS), where Exchange keeps one
/// named-property definition per distinct internet header name.
pub(crate) const PS_INTERNET_HEADERS: &str = "00020386-0000-0000-c000-000000000046";

fn number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl PropId {
    /// Parses Graph's spelling; `None` when it is not one of the three forms.
    pub(crate) fn parse(id: &str) -> Option<Self> {
        let mut words = id.split_whitespace();
        let ty = words.next()?.to_ascii_lowercase();
        let second = words.next()?;
        if let Some(guid) = second.strip_prefix('{').and_then(|g| g.strip_suffix('}')) {
            let guid = guid.to_ascii_lowercase();
            let is_guid = guid.len() == 36
                && guid.chars().enumerate().all(|(i, c)| {
                    matches!(i, 8 | 13 | 18 | 23) == (c == '-')
                        && (c == '-' || c.is_ascii_hexdigit())
                });
            if !is_guid {
                return None;
            }
            let kind = words.next()?;
            let rest: Vec<&str> = words.collect();
            let rest = rest.join(" ");
            if rest.is_empty() {
                return None;
            }
            return match kind.to_ascii_lowercase().as_str() {
                "name" => {
                    let name = if guid == PS_INTERNET_HEADERS {
                        rest.to_ascii_lowercase()
                    } else {
                        rest
                    };
                    Some(Self::Name { ty, guid, name })
                }
                "id" => Some(Self::Lid {
                    ty,
                    guid,
                    lid: number(&rest)?,
                }),
                _ => None,
            };
        }
        if words.next().is_some() || !second.to_ascii_lowercase().starts_with("0x") {
            return None;
        }
        Some(Self::Tag {
            ty,
            tag: number(second)?,
        })
    }

    /// The tagged property `tag` of type `ty` (lowercase).
    #[cfg(test)]
    pub(crate) fn tag(ty: &str, tag: u32) -> Self {
        Self::Tag {
            ty: ty.to_owned(),
            tag,
        }
    }

    /// The named-property definition this takes (type does not matter to MAPI's
    /// name-to-id mapping), and whether it is in the InternetHeaders namespace.
    pub(crate) fn definition(&self) -> Option<(String, bool)> {
        match self {
            Self::Tag { .. } => None,
            Self::Name { guid, name, .. } => {
                Some((format!("{guid}|n|{name}"), guid == PS_INTERNET_HEADERS))
            }
            Self::Lid { guid, lid, .. } => {
                Some((format!("{guid}|i|{lid}"), guid == PS_INTERNET_HEADERS))
            }
        }
    }
}

/// The named-property definition an internet header name takes.
pub(crate) fn header_definition(name: &str) -> String {
    format!("{PS_INTERNET_HEADERS}|n|{}", name.to_ascii_lowercase())
}

/// One item as stored.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) id: String,
    pub(crate) change_key: u32,
    pub(crate) folder: String,
    pub(crate) origin: Origin,
    pub(crate) mime: Option<Vec<u8>>,
    pub(crate) item_class: String,
    pub(crate) is_draft: bool,
    pub(crate) is_read: bool,
    pub(crate) flag: FlagStatus,
    pub(crate) categories: Vec<String>,
    pub(crate) importance: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) modified: DateTime<Utc>,
    pub(crate) received: DateTime<Utc>,
    pub(crate) sent: Option<DateTime<Utc>>,
    pub(crate) internet_message_id: Option<String>,
    pub(crate) subject: Option<String>,
    /// (`text`|`html`, content).
    pub(crate) body: Option<(String, String)>,
    pub(crate) people: People,
    /// `internetMessageHeaders` (JSON creates: the `x-` headers sent; MIME items: every
    /// header of the top-level block, decoded, as Graph shows them).
    pub(crate) headers: Vec<(String, String)>,
    /// The raw top-level header block of a MIME item (PR_TRANSPORT_MESSAGE_HEADERS).
    pub(crate) transport_headers: Option<String>,
    /// Extended properties a client set, in the order set.
    pub(crate) extended: Vec<(PropId, String)>,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) size: usize,
}

impl Item {
    /// An empty item: a read draft received now, as a bare v1.0 create makes.
    pub(crate) fn new(id: String, folder: String, origin: Origin, size: usize) -> Self {
        let now = Utc::now();
        Self {
            id,
            change_key: 1,
            folder,
            origin,
            mime: None,
            item_class: "IPM.Note".to_owned(),
            is_draft: true,
            is_read: true,
            flag: FlagStatus::NotFlagged,
            categories: Vec::new(),
            importance: "normal".to_owned(),
            created: now,
            modified: now,
            received: now,
            sent: None,
            internet_message_id: None,
            subject: None,
            body: None,
            people: People::default(),
            headers: Vec::new(),
            transport_headers: None,
            extended: Vec::new(),
            attachments: Vec::new(),
            size,
        }
    }

    /// Sets (or replaces) a client-set extended property.
    pub(crate) fn set_extended(&mut self, id: PropId, value: String) {
        match self.extended.iter_mut().find(|(k, _)| *k == id) {
            Some(slot) => slot.1 = value,
            None => self.extended.push((id, value)),
        }
    }

    /// Size as Exchange reports it: the item and its attachments.
    pub(crate) fn total_size(&self) -> usize {
        self.size
            + self
                .attachments
                .iter()
                .map(|a| a.bytes.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_ids_parse_to_canonical_forms() {
        let table: &[(&str, Option<PropId>)] = &[
            ("Integer 0x0E07", Some(PropId::tag("integer", 0x0e07))),
            ("integer 0xe07", Some(PropId::tag("integer", 0x0e07))),
            ("String 0x007D", Some(PropId::tag("string", 0x7d))),
            (
                "String {00020386-0000-0000-C000-000000000046} Name X-Foo",
                Some(PropId::Name {
                    ty: "string".into(),
                    guid: PS_INTERNET_HEADERS.into(),
                    name: "x-foo".into(),
                }),
            ),
            (
                "Integer {66f5a359-4659-4830-9070-00047ec6ac6e} Id 0x8205",
                Some(PropId::Lid {
                    ty: "integer".into(),
                    guid: "66f5a359-4659-4830-9070-00047ec6ac6e".into(),
                    lid: 0x8205,
                }),
            ),
            ("String 125", None),
            ("String", None),
            ("String {not-a-guid} Name x", None),
            ("String {66f5a359-4659-4830-9070-00047ec6ac6e} Name", None),
        ];
        for (text, want) in table {
            assert_eq!(&PropId::parse(text), want, "{text}");
        }
    }
}
