//! What an item's extended properties read as, through Graph's
//! `$expand=singleValueExtendedProperties` and EWS `ExtendedFieldURI`: what the client
//! set, plus what Exchange itself keeps for every message (MS-OXPROPS):
//! PidTagMessageFlags 0x0E07 (read 0x1, unsent 0x8, has-attachment 0x10, from the
//! item's state), PidTagMessageDeliveryTime 0x0E06, PidTagClientSubmitTime 0x0039,
//! PidTagMessageClass 0x001A, PidTagSubject 0x0037, PidTagInternetMessageId 0x1035,
//! PidTagFlagStatus 0x1090, and on MIME items what MIME promotion sets:
//! PidTagTransportMessageHeaders 0x007D, PidTagInReplyToId 0x1042,
//! PidTagInternetReferences 0x1039, PidTagListUnsubscribe 0x1045, PidTagSensitivity
//! 0x0036, PidTagImportance 0x0017, PidTagConversationIndex 0x0071 (from Thread-Index).
//!
//! Values are strings as Graph renders them (integers in decimal, times in ISO 8601
//! UTC).

use chrono::SecondsFormat;

use super::item::{Item, PropId};
use super::state::{FlagStatus, Origin};

const MSGFLAG_READ: i64 = 0x1;
const MSGFLAG_UNSENT: i64 = 0x8;
const MSGFLAG_HASATTACH: i64 = 0x10;

fn header(item: &Item, name: &str) -> Option<String> {
    if item.origin == Origin::GraphJson {
        return None;
    }
    item.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

fn set(item: &Item, id: &PropId) -> Option<String> {
    item.extended
        .iter()
        .find(|(k, _)| k == id)
        .map(|(_, v)| v.clone())
}

/// The value of `id` on `item`, if it has one.
pub(crate) fn read(item: &Item, id: &PropId) -> Option<String> {
    let PropId::Tag { ty, tag } = id else {
        return set(item, id);
    };
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let computed = match (ty.as_str(), *tag) {
        ("integer", 0x0E07) => {
            let given: i64 = set(item, id).and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut flags = given & !(MSGFLAG_READ | MSGFLAG_UNSENT | MSGFLAG_HASATTACH);
            if item.is_read {
                flags |= MSGFLAG_READ;
            }
            if item.is_draft {
                flags |= MSGFLAG_UNSENT;
            }
            if item.attachments.iter().any(|a| !a.is_inline) {
                flags |= MSGFLAG_HASATTACH;
            }
            return Some(flags.to_string());
        }
        ("systemtime", 0x0E06) => Some(time(item.received)),
        ("systemtime", 0x0039) => item.sent.map(time),
        ("string", 0x001A) => Some(item.item_class.clone()),
        ("string", 0x0037) => item.subject.clone(),
        ("string", 0x1035) => item.internet_message_id.clone(),
        ("integer", 0x1090) => match item.flag {
            FlagStatus::NotFlagged => None,
            FlagStatus::Complete => Some("1".to_owned()),
            FlagStatus::Flagged => Some("2".to_owned()),
        },
        ("integer", 0x0017) => Some(
            match item.importance.as_str() {
                "low" => "0",
                "high" => "2",
                _ => "1",
            }
            .to_owned(),
        ),
        ("string", 0x007D) => item.transport_headers.clone(),
        ("string", 0x1042) => header(item, "In-Reply-To"),
        ("string", 0x1039) => header(item, "References"),
        ("string", 0x1045) => header(item, "List-Unsubscribe"),
        // Thread-Index is base64 on the wire, as Graph gives a Binary property
        // ([MS-OXCMAIL] 2.2.3.2.8: Thread-Index → PidTagConversationIndex).
        ("binary", 0x0071) => header(item, "Thread-Index"),
        ("integer", 0x0036) => header(item, "Sensitivity").map(|s| {
            match s.to_ascii_lowercase().as_str() {
                "personal" => "1",
                "private" => "2",
                "company-confidential" => "3",
                _ => "0",
            }
            .to_owned()
        }),
        _ => None,
    };
    set(item, id).or(computed)
}
