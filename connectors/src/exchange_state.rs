//! The state users see on a message, as every Exchange path (Graph JSON, Graph
//! importMime + PATCH, EWS CreateItem) sets it: read, flagged, draft, replied or
//! forwarded, and categories.
//!
//! - `\Answered` and `$Forwarded` (RFC 5788's registry) become Outlook's replied and
//!   forwarded state: PidTagIconIndex (0x1080, PT_LONG; 0x105 "Replied mail", 0x106
//!   "Forwarded mail", MS-OXPROPS 2.738 / the MAPI "PidTagIconIndex Canonical Property")
//!   and PidTagLastVerbExecuted (0x1081, PT_LONG; NOTEIVERB_REPLYTOSENDER 0x66,
//!   NOTEIVERB_FORWARD 0x68, MS-OXOMSG 2.2.1.26). A message both answered and forwarded
//!   shows as replied: Outlook keeps one verb, and IMAP does not say which came last.
//! - IMAP system keywords (`$MDNSent`, `$Forwarded`, `Junk`/`NonJunk`, `$Submitted`,
//!   Apple's `$MailFlagBit*` and `$Has*Attachment`, …) are client bookkeeping, not
//!   user labels: they never become categories. Thunderbird's `$label1..5` are tags
//!   whose visible names live in each client's settings: they become categories only
//!   through a configured mapping (`keyword_categories`), which may rename any keyword.
//! - `\Draft` keeps the item an editable draft (MSGFLAG_UNSENT in PidTagMessageFlags)
//!   on the paths that can set message flags at creation (Graph JSON, EWS).

use std::collections::BTreeMap;

/// PidTagIconIndex (MS-OXPROPS 2.738).
pub const PROP_ICON_INDEX: u32 = 0x1080;
/// PidTagLastVerbExecuted (MS-OXPROPS 2.759).
pub const PROP_LAST_VERB: u32 = 0x1081;
/// PidTagMessageFlags bit MSGFLAG_READ (MAPIDefS.h).
pub const MSGFLAG_READ: u32 = 0x1;
/// PidTagMessageFlags bit MSGFLAG_UNSENT: the item is a draft.
pub const MSGFLAG_UNSENT: u32 = 0x8;

const ICON_REPLIED: u32 = 0x105;
const ICON_FORWARDED: u32 = 0x106;
const VERB_REPLY_TO_SENDER: u32 = 0x66;
const VERB_FORWARD: u32 = 0x68;

/// Keywords clients set for themselves, compared case-insensitively; none becomes a
/// category unless mapped.
const SYSTEM_KEYWORDS: &[&str] = &[
    "$mdnsent",
    "$forwarded",
    "forwarded",
    "$redirected",
    "redirected",
    "$junk",
    "junk",
    "$notjunk",
    "notjunk",
    "nonjunk",
    "$autojunk",
    "$junkrecorded",
    "$phishing",
    "$notphishing",
    "old",
    "$ismailinglist",
    "$istrusted",
    "$canunsubscribe",
    "$unsubscribed",
    "$muted",
    "$followed",
    "$label1",
    "$label2",
    "$label3",
    "$label4",
    "$label5",
];

/// Prefixes of families of system keywords (`$SubmitPending`, `$Submitted`,
/// `$MailFlagBit0..2`, `$HasAttachment`, `$HasNoAttachment`, Fastmail's
/// `$X-ME-Annot-*` colours).
const SYSTEM_PREFIXES: &[&str] = &["$submit", "$mailflagbit", "$has", "$x-me-annot-"];

/// Which keywords become which categories beyond the plain ones (manifest
/// `keyword_categories`): keyword (any case) -> category name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeywordCategories {
    map: BTreeMap<String, String>,
}

impl KeywordCategories {
    /// A mapping from `(keyword, category)` pairs.
    pub fn new<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        KeywordCategories {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }

    /// The category a keyword becomes, if any.
    pub fn category(&self, keyword: &str) -> Option<String> {
        let k = keyword.trim();
        if k.is_empty() || k.starts_with('\\') {
            return None;
        }
        let lower = k.to_ascii_lowercase();
        if let Some(mapped) = self.map.get(&lower) {
            return Some(mapped.clone());
        }
        let system = SYSTEM_KEYWORDS.contains(&lower.as_str())
            || SYSTEM_PREFIXES.iter().any(|p| lower.starts_with(p));
        (!system).then(|| k.to_owned())
    }
}

/// Whether an `ErrorQuotaExceeded` is the mailbox's named-property quota, not its
/// storage quota: Exchange answers "Cannot get ID from name." when no new named
/// property (custom internet header name) can be made (support article "Mailbox named
/// properties quota exceeded").
pub fn is_named_property_quota(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("cannot get id from name")
}

/// What to do about a full named-property quota of `mailbox`.
pub fn named_property_quota_advice(mailbox: &str) -> String {
    format!(
        "mailbox {mailbox} has used up its named-property quota (custom internet headers:          about 9,830 names; 16,384 named properties in all). This is not a full mailbox:          it stops opening items and bounces new mail with 554 5.2.2 until Microsoft Support          cleans it (the PublicStrings cleanup cmdlet does not cover internet headers).          Stop migrating into it, open a support case for a named-properties cleanup, and          shorten x_headers before migrating again"
    )
}

/// What an Exchange target keeps beyond the basics: the manifest's `[target]` options
/// `x_headers`, `keyword_categories` and `mime_route`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeOptions {
    /// Graph JSON path: the `X-` headers carried (none by default).
    pub json: crate::graph::JsonOptions,
    /// Keywords renamed into categories.
    pub categories: KeywordCategories,
    /// Graph `upload = "json"`: send the messages JSON cannot represent (S/MIME,
    /// meetings, TNEF, reports) through `importMime` (needs
    /// `Mail-Advanced.ReadWrite.All`).
    pub mime_route: bool,
}

/// A message's state as Exchange shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    /// `\Seen`.
    pub read: bool,
    /// `\Flagged`.
    pub flagged: bool,
    /// `\Draft`.
    pub draft: bool,
    /// `\Answered`.
    pub answered: bool,
    /// `$Forwarded`.
    pub forwarded: bool,
    /// Outlook categories, in the order of the keywords, without repeats.
    pub categories: Vec<String>,
}

impl ItemState {
    /// The state of a message with IMAP `flags` (system flags and keywords).
    pub fn of(flags: &[String], categories: &KeywordCategories) -> ItemState {
        let has = |f: &str| flags.iter().any(|x| x.trim().eq_ignore_ascii_case(f));
        let mut cats: Vec<String> = Vec::new();
        for f in flags {
            if let Some(c) = categories.category(f)
                && !cats.iter().any(|x| x.eq_ignore_ascii_case(&c))
            {
                cats.push(c);
            }
        }
        ItemState {
            read: has("\\Seen"),
            flagged: has("\\Flagged"),
            draft: has("\\Draft"),
            answered: has("\\Answered"),
            forwarded: has("$Forwarded") || has("Forwarded"),
            categories: cats,
        }
    }

    /// PidTagMessageFlags at creation: read per `\Seen`, unsent (draft) per `\Draft`.
    pub fn message_flags(&self) -> u32 {
        let mut flags = 0;
        if self.read {
            flags |= MSGFLAG_READ;
        }
        if self.draft {
            flags |= MSGFLAG_UNSENT;
        }
        flags
    }

    /// `(PidTagIconIndex, PidTagLastVerbExecuted)` for a replied or forwarded message.
    pub fn verb(&self) -> Option<(u32, u32)> {
        if self.answered {
            Some((ICON_REPLIED, VERB_REPLY_TO_SENDER))
        } else if self.forwarded {
            Some((ICON_FORWARDED, VERB_FORWARD))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn system_keywords_are_not_categories() {
        let none = KeywordCategories::default();
        let mapped = KeywordCategories::new([
            ("$Label1".to_owned(), "Important".to_owned()),
            ("$label4".to_owned(), "To Do".to_owned()),
            ("Work".to_owned(), "Büro".to_owned()),
        ]);
        for (map, input, want) in [
            (
                &none,
                &[
                    "\\Seen",
                    "$MDNSent",
                    "$Forwarded",
                    "NonJunk",
                    "Junk",
                    "$Junk",
                    "$NotJunk",
                    "$SubmitPending",
                    "$Submitted",
                    "Old",
                    "$HasAttachment",
                    "$HasNoAttachment",
                    "$MailFlagBit0",
                    "$MAILFLAGBIT2",
                    "$label1",
                    "$X-ME-Annot-2",
                    "Work",
                    "project x",
                    " ",
                    "work",
                ][..],
                &["Work", "project x"][..],
            ),
            (
                &mapped,
                &["$label1", "$Label4", "$label2", "Work", "Home"][..],
                &["Important", "To Do", "Büro", "Home"][..],
            ),
        ] {
            let state = ItemState::of(&flags(input), map);
            assert_eq!(state.categories, want, "{input:?}");
        }
    }

    #[test]
    fn state_bits() {
        let c = KeywordCategories::default();
        for (input, read, draft, verb, msg_flags) in [
            (&[][..], false, false, None, 0),
            (&["\\Seen"][..], true, false, None, 1),
            (&["\\Draft"][..], false, true, None, 8),
            (&["\\seen", "\\DRAFT"][..], true, true, None, 9),
            (&["\\Answered"][..], false, false, Some((0x105, 0x66)), 0),
            (&["$Forwarded"][..], false, false, Some((0x106, 0x68)), 0),
            (
                &["$forwarded", "\\Answered"][..],
                false,
                false,
                Some((0x105, 0x66)),
                0,
            ),
        ] {
            let s = ItemState::of(&flags(input), &c);
            assert_eq!(
                (s.read, s.draft, s.verb(), s.message_flags()),
                (read, draft, verb, msg_flags),
                "{input:?}"
            );
        }
        assert!(ItemState::of(&flags(&["\\Flagged"]), &c).flagged);
    }
}
