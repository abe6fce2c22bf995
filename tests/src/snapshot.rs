//! What an IMAP account holds, independent of the code under test, and comparisons.
//!
//! [`snapshot`] lists every selectable folder and fetches every message (read-only:
//! EXAMINE and `BODY.PEEK[]`, so taking a snapshot changes no flag), one message in
//! memory at a time. It talks to the server with async-imap directly, not through
//! `mailhaul-connectors`, so a bug there cannot hide itself. [`assert_same`] compares
//! two snapshots the way a user would judge a migration: per folder, the same multiset
//! of (content hash, flags, INTERNALDATE).

mod compare;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use async_imap::imap_proto::NameAttribute;
use async_imap::types::Flag;
use chrono::{DateTime, FixedOffset};
use futures_util::TryStreamExt as _;
use sha2::{Digest as _, Sha256};

use crate::corpus::Corpus;
use crate::kit::imap::login;
use crate::kit::mutf7;

pub use compare::{assert_same, diff};

/// Every selectable folder of an account with its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxSnapshot {
    /// Display path (`/`-separated UTF-8) → messages in UID order.
    pub folders: BTreeMap<String, Vec<MessageSnapshot>>,
}

/// One message as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSnapshot {
    /// SHA-256 of the exact bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// Flags as IMAP spells them (`\Seen`, `$Forwarded`); never `\Recent`, which is
    /// session state, not message state (RFC 3501 §2.3.2).
    pub flags: BTreeSet<String>,
    /// The INTERNALDATE. Compare instants (`==` on `DateTime` does); servers need not
    /// keep the offset (Dovecot's maildir does not).
    pub internal_date: DateTime<FixedOffset>,
    /// The Message-ID header without angle brackets, if any.
    pub message_id: Option<String>,
    /// The decoded Subject, for readable diffs.
    pub subject: Option<String>,
}

impl MessageSnapshot {
    /// The snapshot a server should produce for these bytes, flags and date.
    pub fn of(
        body: &[u8],
        flags: impl IntoIterator<Item = String>,
        internal_date: DateTime<FixedOffset>,
    ) -> MessageSnapshot {
        let headers = mail_parser::MessageParser::new().parse_headers(body);
        MessageSnapshot {
            sha256: hex::encode(Sha256::digest(body)),
            size: body.len(),
            flags: flags
                .into_iter()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .collect(),
            internal_date,
            message_id: headers
                .as_ref()
                .and_then(|h| h.message_id())
                .map(str::to_owned),
            subject: headers
                .as_ref()
                .and_then(|h| h.subject())
                .map(str::to_owned),
        }
    }
}

impl MailboxSnapshot {
    /// What a server holding exactly `corpus` should show.
    pub fn from_corpus(corpus: &Corpus) -> MailboxSnapshot {
        let folders = corpus
            .folders
            .iter()
            .map(|(path, messages)| {
                let snaps = messages
                    .iter()
                    .map(|m| MessageSnapshot::of(&m.body, m.flags.iter().cloned(), m.internal_date))
                    .collect();
                (path.clone(), snaps)
            })
            .collect();
        MailboxSnapshot { folders }
    }

    /// Per folder, the sorted SHA-256s of its messages: the folder's content as a
    /// multiset, ignoring flags and dates.
    pub fn contents(&self) -> BTreeMap<String, Vec<String>> {
        self.folders
            .iter()
            .map(|(k, v)| {
                let mut h: Vec<String> = v.iter().map(|m| m.sha256.clone()).collect();
                h.sort();
                (k.clone(), h)
            })
            .collect()
    }

    /// How many messages in all folders.
    pub fn message_count(&self) -> usize {
        self.folders.values().map(Vec::len).sum()
    }

    /// The size of all messages in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.folders.values().flatten().map(|m| m.size as u64).sum()
    }
}

/// Takes a snapshot of the account `user` on the IMAP server at 127.0.0.1:`imap_port`.
///
/// Folders that cannot be selected (`\Noselect`, `\NonExistent`) are left out; names are
/// decoded from modified UTF-7 and their hierarchy separator shown as `/`.
///
/// # Errors
/// On login failure, or a failed LIST, EXAMINE or FETCH (the message names the folder).
pub async fn snapshot(
    imap_port: u16,
    user: &str,
    password: &str,
) -> anyhow::Result<MailboxSnapshot> {
    let mut session = login(imap_port, user, password).await?;
    let names: Vec<_> = session
        .list(Some(""), Some("*"))
        .await
        .context("LIST")?
        .try_collect()
        .await
        .context("LIST")?;
    let mut folders = Vec::new();
    for name in &names {
        let unselectable = name.attributes().iter().any(|a| match a {
            NameAttribute::NoSelect => true,
            NameAttribute::Extension(e) => e.eq_ignore_ascii_case("\\NonExistent"),
            _ => false,
        });
        if unselectable {
            continue;
        }
        let mut display = mutf7::decode(name.name())?;
        if let Some(sep) = name.delimiter().filter(|&d| d != "/") {
            display = display.replace(sep, "/");
        }
        folders.push((name.name().to_owned(), display));
    }

    let mut snapshot = MailboxSnapshot::default();
    for (wire, display) in folders {
        let mailbox = session
            .examine(&wire)
            .await
            .with_context(|| format!("EXAMINE {display:?}"))?;
        let mut messages = Vec::with_capacity(mailbox.exists as usize);
        if mailbox.exists > 0 {
            let mut fetches = session
                .uid_fetch("1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
                .await
                .with_context(|| format!("UID FETCH in {display:?}"))?;
            // One message in memory at a time: hash it and drop the bytes.
            while let Some(fetch) = fetches
                .try_next()
                .await
                .with_context(|| format!("UID FETCH in {display:?}"))?
            {
                let (Some(uid), Some(body), Some(date)) =
                    (fetch.uid, fetch.body(), fetch.internal_date())
                else {
                    continue; // an unsolicited FETCH (flag update), not our data
                };
                let flags = fetch.flags().filter_map(flag_name);
                messages.push((uid, MessageSnapshot::of(body, flags, date)));
            }
        }
        messages.sort_by_key(|(uid, _)| *uid);
        snapshot
            .folders
            .insert(display, messages.into_iter().map(|(_, m)| m).collect());
    }
    session.logout().await.context("LOGOUT")?;
    Ok(snapshot)
}

/// IMAP's spelling of a flag; `None` for `\Recent` (session state).
fn flag_name(flag: Flag<'_>) -> Option<String> {
    Some(match flag {
        Flag::Seen => "\\Seen".to_owned(),
        Flag::Answered => "\\Answered".to_owned(),
        Flag::Flagged => "\\Flagged".to_owned(),
        Flag::Deleted => "\\Deleted".to_owned(),
        Flag::Draft => "\\Draft".to_owned(),
        Flag::Recent => return None,
        Flag::MayCreate => "\\*".to_owned(),
        Flag::Custom(name) => name.into_owned(),
    })
}
