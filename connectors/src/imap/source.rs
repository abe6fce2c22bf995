//! The source side: list folders, read their state, read sizes and messages by UID.
//!
//! Invariants: every folder the server lists is returned, even one whose name is not
//! valid modified UTF-7 (then with its raw name as the only segment and a warning);
//! UID results are restricted to the UIDs asked for and sorted ascending.

use super::fetch::Fetched;
use super::session::ImapSession;
use crate::body::{self, Body, BodySink};
use crate::error::ConnectorError;
use crate::mapping;
use async_imap::imap_proto::{
    MailboxDatum, NameAttribute, Response, ResponseCode, Status, StatusAttribute,
};
use chrono::{DateTime, FixedOffset};
use mailhaul_proto::ids::{Uid, UidRange, UidValidity};
use tracing::warn;

/// One folder from `LIST "" "*"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFolder {
    /// The name exactly as the server sent it (modified UTF-7); use it in commands.
    pub raw_name: String,
    /// The hierarchy delimiter the server gave for this name (`None`: flat).
    pub delimiter: Option<char>,
    /// The decoded name split on the delimiter (see [`crate::mapping::segments`]).
    pub segments: Vec<String>,
    /// `\Noselect` or `\NonExistent`: a hierarchy node without messages.
    pub noselect: bool,
    /// The RFC 6154 special use (`\Sent`, `\Trash`, `\Drafts`, `\Junk`, `\Archive`,
    /// `\All`, `\Flagged`) when the server marks one.
    pub special_use: Option<String>,
}

/// A folder's counters, from STATUS, EXAMINE or SELECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderStatus {
    /// Number of messages.
    pub messages: u32,
    /// The UID the next message will get; every existing UID is lower.
    pub uid_next: Uid,
    /// The folder's UIDVALIDITY; a change voids every UID recorded before.
    pub uid_validity: UidValidity,
}

/// What a filter looks at, without the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Its UID.
    pub uid: Uid,
    /// RFC822.SIZE.
    pub size: u32,
    /// Flags as raw atoms, without `\\Recent`.
    pub flags: Vec<String>,
    /// INTERNALDATE.
    pub internal_date: DateTime<FixedOffset>,
}

/// One source message, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Its UID in the examined folder.
    pub uid: Uid,
    /// Flags as raw atoms (`\Seen`, `$Forwarded`, ...), without `\Recent`.
    pub flags: Vec<String>,
    /// INTERNALDATE: when the server received it.
    pub internal_date: DateTime<FixedOffset>,
    /// The exact bytes of `BODY[]` (in memory or spooled, [`crate::body`]).
    pub body: Body,
}

impl ImapSession {
    /// Every folder of the account, in the server's order (`LIST "" "*"`).
    ///
    /// # Errors
    /// Transport failures and server refusals.
    pub async fn list_folders(&mut self) -> Result<Vec<ListedFolder>, ConnectorError> {
        let mut out = Vec::new();
        self.exec("LIST \"\" \"*\"", "LIST", |resp| {
            if let Response::MailboxData(MailboxDatum::List(list)) = resp {
                out.push(listed_folder(
                    &list.name,
                    list.delimiter.as_deref(),
                    &list.name_attributes,
                ));
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// `STATUS name (MESSAGES UIDNEXT UIDVALIDITY)`, without selecting the folder.
    ///
    /// # Errors
    /// Transport failures, refusals (no such folder), and `Protocol` when an item is
    /// missing from the answer.
    pub async fn status(&mut self, raw_name: &str) -> Result<FolderStatus, ConnectorError> {
        let arg = self.mailbox_arg(raw_name)?;
        let (mut messages, mut uid_next, mut uid_validity) = (None, None, None);
        self.exec(
            &format!("STATUS {arg} (MESSAGES UIDNEXT UIDVALIDITY)"),
            "STATUS",
            |resp| {
                if let Response::MailboxData(MailboxDatum::Status { status, .. }) = resp {
                    for item in status {
                        match item {
                            StatusAttribute::Messages(n) => messages = Some(*n),
                            StatusAttribute::UidNext(n) => uid_next = Some(*n),
                            StatusAttribute::UidValidity(n) => uid_validity = Some(*n),
                            _ => {}
                        }
                    }
                }
                Ok(())
            },
        )
        .await?;
        folder_status(raw_name, "STATUS", messages, uid_next, uid_validity)
    }

    /// Selects a folder read-only (EXAMINE, RFC 3501 §6.3.2): nothing changes, not even
    /// `\Seen`.
    ///
    /// # Errors
    /// As [`ImapSession::status`].
    pub async fn examine(&mut self, raw_name: &str) -> Result<FolderStatus, ConnectorError> {
        self.open(raw_name, "EXAMINE").await
    }

    /// Selects a folder read-write (SELECT, RFC 3501 §6.3.1).
    ///
    /// # Errors
    /// As [`ImapSession::status`].
    pub async fn select(&mut self, raw_name: &str) -> Result<FolderStatus, ConnectorError> {
        self.open(raw_name, "SELECT").await
    }

    async fn open(&mut self, raw_name: &str, verb: &str) -> Result<FolderStatus, ConnectorError> {
        let arg = self.mailbox_arg(raw_name)?;
        let (mut messages, mut uid_next, mut uid_validity) = (None, None, None);
        self.exec(&format!("{verb} {arg}"), verb, |resp| {
            match resp {
                Response::MailboxData(MailboxDatum::Exists(n)) => messages = Some(*n),
                Response::Data {
                    status: Status::Ok,
                    outcome,
                } => match outcome.code {
                    Some(ResponseCode::UidNext(n)) => uid_next = Some(n),
                    Some(ResponseCode::UidValidity(n)) => uid_validity = Some(n),
                    _ => {}
                },
                _ => {}
            }
            Ok(())
        })
        .await?;
        if uid_next.is_none() {
            // UIDNEXT in the SELECT reply is only a SHOULD before IMAP4rev2; ask STATUS,
            // which servers answer for the selected folder too.
            uid_next = Some(self.status(raw_name).await?.uid_next.0);
        }
        folder_status(raw_name, verb, messages, uid_next, uid_validity)
    }

    /// `(UID, RFC822.SIZE)` of every message with a UID in `range` in the examined
    /// folder, ascending.
    ///
    /// # Errors
    /// Transport failures and refusals.
    pub async fn uid_sizes(&mut self, range: UidRange) -> Result<Vec<(Uid, u32)>, ConnectorError> {
        self.range_fetch(range, "(UID RFC822.SIZE)")
            .await?
            .into_iter()
            .map(|f| Ok((f.uid, Fetched::need(f.size, "RFC822.SIZE", f.uid)?)))
            .collect()
    }

    /// Size, flags and INTERNALDATE of every message with a UID in `range` in the
    /// examined folder, ascending: what message filters need, without the bodies.
    ///
    /// # Errors
    /// Transport failures and refusals.
    pub async fn uid_meta(&mut self, range: UidRange) -> Result<Vec<MessageMeta>, ConnectorError> {
        self.range_fetch(range, "(UID RFC822.SIZE FLAGS INTERNALDATE)")
            .await?
            .into_iter()
            .map(|f| {
                Ok(MessageMeta {
                    uid: f.uid,
                    size: Fetched::need(f.size, "RFC822.SIZE", f.uid)?,
                    flags: Fetched::need(f.flags, "FLAGS", f.uid)?,
                    internal_date: Fetched::need(f.internal_date, "INTERNALDATE", f.uid)?,
                })
            })
            .collect()
    }

    async fn range_fetch(
        &mut self,
        range: UidRange,
        items: &str,
    ) -> Result<Vec<Fetched>, ConnectorError> {
        let first = range.first.0.min(range.last.0).max(1);
        let last = range.first.0.max(range.last.0);
        if last == 0 {
            return Ok(Vec::new());
        }
        let wanted = UidRange {
            first: Uid(first),
            last: Uid(last),
        };
        // `n:m` with no message in it answers with the highest UID on some servers
        // (RFC 3501 `*` semantics): keep only what is really in the range.
        self.uid_fetch(&format!("{first}:{last}"), items, |u| wanted.contains(u))
            .await
    }

    /// The messages with these UIDs (and the sizes the listing gave) in the examined
    /// folder, whole, sorted by UID. UIDs that no longer exist are left out.
    ///
    /// Messages up to the spool threshold ([`crate::body`]) come in one FETCH and stay
    /// in memory (the caller bounds that through the batch); larger ones are read one by
    /// one in partial FETCHes into a temporary file, so memory never holds one whole.
    ///
    /// # Errors
    /// Transport failures, refusals, and `Protocol` when the server leaves out an item.
    pub async fn fetch_messages(
        &mut self,
        wanted: &[(Uid, u32)],
    ) -> Result<Vec<RawMessage>, ConnectorError> {
        let threshold = body::spool_threshold();
        let (small, large): (Vec<_>, Vec<_>) = wanted
            .iter()
            .partition(|(_, size)| u64::from(*size) <= threshold);
        let small: Vec<Uid> = small.into_iter().map(|(u, _)| u).collect();
        let items = self
            .fetch_uids(&small, "(UID FLAGS INTERNALDATE BODY.PEEK[])")
            .await?;
        let mut out = items
            .into_iter()
            .map(|f| {
                Ok(RawMessage {
                    uid: f.uid,
                    flags: Fetched::need(f.flags, "FLAGS", f.uid)?,
                    internal_date: Fetched::need(f.internal_date, "INTERNALDATE", f.uid)?,
                    body: Body::from(Fetched::need(f.body, "BODY[]", f.uid)?),
                })
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        for (uid, _) in large {
            let mut sink = BodySink::new();
            if let Some((flags, internal_date)) = self.read_body(uid, &mut sink).await? {
                out.push(RawMessage {
                    uid,
                    flags,
                    internal_date,
                    body: sink.finish().await.map_err(ConnectorError::Local)?,
                });
            }
        }
        out.sort_by_key(|m| m.uid);
        Ok(out)
    }
}

fn folder_status(
    raw_name: &str,
    verb: &str,
    messages: Option<u32>,
    uid_next: Option<u32>,
    uid_validity: Option<u32>,
) -> Result<FolderStatus, ConnectorError> {
    let missing = |what: &str| {
        ConnectorError::Protocol(format!("{verb} {raw_name:?}: the server sent no {what}"))
    };
    Ok(FolderStatus {
        messages: messages.ok_or_else(|| missing("message count"))?,
        uid_next: Uid(uid_next.ok_or_else(|| missing("UIDNEXT"))?),
        uid_validity: UidValidity(uid_validity.ok_or_else(|| missing("UIDVALIDITY"))?),
    })
}

/// Builds a [`ListedFolder`] from one LIST response.
pub(super) fn listed_folder(
    raw: &str,
    delimiter: Option<&str>,
    attributes: &[NameAttribute<'_>],
) -> ListedFolder {
    let delimiter = delimiter.and_then(|d| d.chars().next());
    let segments = mapping::segments(raw, delimiter).unwrap_or_else(|e| {
        warn!(folder = raw, error = %e, "Folder name is not valid modified UTF-7; using it as it is.");
        vec![raw.to_owned()]
    });
    let mut noselect = false;
    let mut special_use = None;
    for attr in attributes {
        let special = match attr {
            NameAttribute::NoSelect => {
                noselect = true;
                None
            }
            // RFC 5258 §3: \NonExistent implies \Noselect.
            NameAttribute::Extension(e) if e.eq_ignore_ascii_case("\\NonExistent") => {
                noselect = true;
                None
            }
            NameAttribute::All => Some("\\All"),
            NameAttribute::Archive => Some("\\Archive"),
            NameAttribute::Drafts => Some("\\Drafts"),
            NameAttribute::Flagged => Some("\\Flagged"),
            NameAttribute::Junk => Some("\\Junk"),
            NameAttribute::Sent => Some("\\Sent"),
            NameAttribute::Trash => Some("\\Trash"),
            _ => None,
        };
        if special.is_some() {
            special_use = special.map(str::to_owned);
        }
    }
    ListedFolder {
        raw_name: raw.to_owned(),
        delimiter,
        segments,
        noselect,
        special_use,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_list(line: &[u8]) -> ListedFolder {
        let (_, resp) = Response::parse(line).expect("parses");
        let Response::MailboxData(MailboxDatum::List(l)) = resp else {
            panic!("not a LIST: {resp:?}")
        };
        listed_folder(&l.name, l.delimiter.as_deref(), &l.name_attributes)
    }

    #[test]
    fn list_responses() {
        let f = parse_list(b"* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n");
        assert_eq!(f.segments, vec!["Sent"]);
        assert_eq!(f.special_use.as_deref(), Some("\\Sent"));
        assert!(!f.noselect);

        let f = parse_list(
            b"* LIST (\\HasChildren) \".\" \"INBOX.&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-\"\r\n",
        );
        assert_eq!(f.delimiter, Some('.'));
        assert_eq!(f.segments, vec!["INBOX", "Отправленные"]);

        let f = parse_list(b"* LIST (\\Noselect) \"/\" Archive\r\n");
        assert!(f.noselect);

        let f = parse_list(b"* LIST () NIL flat\r\n");
        assert_eq!((f.delimiter, f.segments), (None, vec!["flat".to_owned()]));

        // Not valid mUTF-7: still listed, raw name as the single segment.
        let f = parse_list(b"* LIST () \"/\" \"a/&Jjo!-\"\r\n");
        assert_eq!(f.segments, vec!["a/&Jjo!-"]);
        assert_eq!(f.raw_name, "a/&Jjo!-");
    }
}
