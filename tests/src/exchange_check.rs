//! Comparing what a source mailbox held with what landed in an Exchange mailbox, read
//! back through Graph or EWS as a user's client would ([`ExchangeReader`]), never
//! through the emulator's internals: every message exactly once, in the right folder,
//! not a draft, with its read state, flag, keywords as categories and (where the upload
//! path keeps it) its received date; and on MIME paths the bytes as Exchange gives
//! them back.
//!
//! Exchange keeps no IMAP identity, so a message is known by what it carries: its
//! Message-ID (messages without one are given a deterministic one from their content on
//! the way, `mailhaul_connectors::target::exchange_message_id`), received date and
//! state. Two copies of one message in a folder show up as a count of 2, never hidden.

use crate::corpus::Corpus;
use crate::exchange::Emulator;
use crate::exchange_read::ExchangeReader;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A Graph reader of mailbox `upn` on the emulator, with a fresh app token.
pub fn graph_reader(emu: &Emulator, upn: &str) -> ExchangeReader {
    ExchangeReader::graph(&emu.base_url(), &emu.issue_token(), upn)
}

/// An EWS reader of mailbox `upn` on the emulator, with a fresh app token.
pub fn ews_reader(emu: &Emulator, upn: &str) -> ExchangeReader {
    let url = format!("{}/EWS/Exchange.asmx", emu.base_url());
    ExchangeReader::ews(&url, &emu.issue_ews_token(), upn)
}

/// How many messages the mailbox holds, in all folders.
///
/// # Errors
/// The mailbox cannot be read.
pub async fn message_count(reader: &ExchangeReader) -> anyhow::Result<usize> {
    Ok(reader.all_messages().await?.len())
}

/// What one message should look like on Exchange.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    /// Internet Message-ID with angle brackets.
    pub message_id: String,
    /// Received date (only compared when the path keeps it).
    pub received: Option<DateTime<Utc>>,
    /// `\Seen`.
    pub read: bool,
    /// `\Flagged`.
    pub flagged: bool,
    /// `\Draft`: drafts stay editable drafts (issue 11).
    pub draft: bool,
    /// Keywords that are user labels, sorted (client bookkeeping keywords such as
    /// `$Forwarded`, and Thunderbird's unnamed `$Label1..5`, become no category).
    pub categories: Vec<String>,
    /// SHA-256 of the MIME as sent (only compared on MIME paths).
    pub mime_sha256: Option<String>,
}

/// What to compare.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    /// The upload path keeps INTERNALDATE as the received date.
    pub received: bool,
    /// The upload path stores the MIME (importMime, EWS).
    pub mime: bool,
    /// Drafts go by Graph's JSON path (on `upload = "import-mime"`, which cannot make
    /// drafts): for them the received date is kept and no MIME is stored.
    pub drafts_by_json: bool,
}

impl Compare {
    /// `(received, mime)` to compare for a message that is a draft or not.
    fn for_message(self, draft: bool) -> (bool, bool) {
        if draft && self.drafts_by_json {
            (true, false)
        } else {
            (self.received, self.mime)
        }
    }
}

fn sha256(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Per target folder path, the sorted messages `corpus` should produce, given where each
/// source folder goes (`folder_map`: source display path -> target path below
/// msgfolderroot).
pub fn expected(
    corpus: &Corpus,
    folder_map: &dyn Fn(&str) -> String,
    cmp: Compare,
) -> BTreeMap<String, Vec<Expected>> {
    let mut out: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for (path, msgs) in &corpus.folders {
        let target = folder_map(path);
        let list = out.entry(target).or_default();
        for m in msgs {
            // Written out, not computed by the client's own rules.
            const NOT_CATEGORIES: [&str; 6] = [
                "$Forwarded",
                "$Label1",
                "$MDNSent",
                "NonJunk",
                "Junk",
                "$Junk",
            ];
            let mut categories: Vec<String> = m
                .flags
                .iter()
                .filter(|f| !f.starts_with('\\') && !NOT_CATEGORIES.contains(&f.as_str()))
                .cloned()
                .collect();
            categories.sort();
            let has = |flag: &str| m.flags.iter().any(|f| f.eq_ignore_ascii_case(flag));
            let (received, mime) = cmp.for_message(has("\\Draft"));
            list.push(Expected {
                message_id: mailhaul_connectors::target::exchange_message_id(&m.body),
                received: received.then(|| m.internal_date.with_timezone(&Utc)),
                read: has("\\Seen"),
                flagged: has("\\Flagged"),
                draft: has("\\Draft"),
                categories,
                mime_sha256: mime
                    .then(|| sha256(&mailhaul_connectors::target::with_message_id(&m.body))),
            });
        }
        list.sort();
    }
    out.retain(|_, v| !v.is_empty());
    out
}

/// The same view of what the mailbox holds, read through `reader`; also returns how
/// many messages are drafts.
///
/// # Errors
/// The mailbox cannot be read.
pub async fn actual(
    reader: &ExchangeReader,
    cmp: Compare,
) -> anyhow::Result<(BTreeMap<String, Vec<Expected>>, usize)> {
    let mut out: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    let mut drafts = 0;
    for (path, m) in reader.all_messages().await? {
        if m.is_draft {
            drafts += 1;
        }
        let mut categories = m.categories.clone();
        categories.sort();
        let (received, mime) = cmp.for_message(m.is_draft);
        let mime_sha256 = if mime {
            Some(sha256(&reader.mime(&m.id).await?))
        } else {
            None
        };
        out.entry(path).or_default().push(Expected {
            message_id: m.internet_message_id.clone().unwrap_or_default(),
            received: received.then_some(m.received),
            read: m.is_read,
            flagged: m.flag == "flagged",
            draft: m.is_draft,
            categories,
            mime_sha256,
        });
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok((out, drafts))
}

/// Fails with a readable difference unless the mailbox `reader` reads holds exactly
/// `want` (drafts only where the source had `\Draft`).
///
/// # Errors
/// The mailbox differs (the error says how) or cannot be read.
pub async fn assert_exchange_same(
    want: &BTreeMap<String, Vec<Expected>>,
    reader: &ExchangeReader,
    cmp: Compare,
) -> anyhow::Result<()> {
    let (got, _drafts) = actual(reader, cmp).await?;
    let mut problems = Vec::new();
    for (folder, w) in want {
        let g = got.get(folder).cloned().unwrap_or_default();
        if &g != w {
            let missing: Vec<&Expected> = w.iter().filter(|e| !g.contains(e)).collect();
            let extra: Vec<&Expected> = g.iter().filter(|e| !w.contains(e)).collect();
            problems.push(format!(
                "folder {folder:?}: want {} got {}; missing/differing {:#?}; unexpected {:#?}",
                w.len(),
                g.len(),
                missing.iter().take(3).collect::<Vec<_>>(),
                extra.iter().take(3).collect::<Vec<_>>()
            ));
        }
    }
    for (folder, g) in &got {
        if !want.contains_key(folder) {
            problems.push(format!(
                "unexpected folder {folder:?} with {} item(s)",
                g.len()
            ));
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "Exchange mailbox differs:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// Where the test corpora's folders land on Exchange: the special folders (by name, in
/// the languages the corpora use) on Exchange's well-known ones, subfolders following;
/// every other path as it is.
pub fn exchange_path(source: &str) -> String {
    let specials = [
        ("INBOX", "Inbox"),
        ("Sent", "Sent Items"),
        ("Отправленные", "Sent Items"),
        ("Drafts", "Drafts"),
        ("Entwürfe", "Drafts"),
        ("Trash", "Deleted Items"),
        ("Junk", "Junk Email"),
        ("Archive", "Archive"),
    ];
    let (head, rest) = source
        .split_once('/')
        .map_or((source, None), |(h, r)| (h, Some(r)));
    let head = specials
        .iter()
        .find(|(s, _)| *s == head)
        .map_or(head, |(_, t)| t);
    rest.map_or_else(|| head.to_owned(), |r| format!("{head}/{r}"))
}
