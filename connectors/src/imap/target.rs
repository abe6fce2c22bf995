//! The target side besides APPEND: the delimiter, CREATE, finding messages a crashed
//! worker may already have appended, and fetches to verify what landed.
//!
//! Invariant: [`ImapSession::create_folder`] is idempotent: a folder that exists is
//! success, however the server words it.

use super::fetch::Fetched;
use super::session::{ImapSession, quoted};
use crate::error::ConnectorError;
use async_imap::imap_proto::{MailboxDatum, NameAttribute, Response};
use chrono::{DateTime, FixedOffset};
use mailhaul_proto::ids::Uid;
use tracing::debug;

impl ImapSession {
    /// The server's hierarchy delimiter (`LIST "" ""`, RFC 3501 §6.3.8); `None` for a
    /// flat namespace. Asked once per session.
    ///
    /// # Errors
    /// Transport failures and refusals.
    pub async fn delimiter(&mut self) -> Result<Option<char>, ConnectorError> {
        if let Some(known) = self.delimiter {
            return Ok(known);
        }
        let mut found = None;
        self.exec("LIST \"\" \"\"", "LIST", |resp| {
            if let Response::MailboxData(MailboxDatum::List(list)) = resp {
                found = Some(list.delimiter.as_deref().and_then(|d| d.chars().next()));
            }
            Ok(())
        })
        .await?;
        let delimiter = found.ok_or_else(|| {
            ConnectorError::Protocol("LIST \"\" \"\" returned no delimiter line".into())
        })?;
        self.delimiter = Some(delimiter);
        Ok(delimiter)
    }

    /// Creates the folder `raw_name`; success if it exists already. If the server
    /// refuses because a parent is missing (Dovecot does not, some servers do), creates
    /// the parents first and tries again.
    ///
    /// # Errors
    /// The server's refusal when the folder cannot be created and does not exist.
    pub async fn create_folder(&mut self, raw_name: &str) -> Result<(), ConnectorError> {
        let first = match self.create_once(raw_name).await {
            Ok(()) => return Ok(()),
            Err(e @ ConnectorError::No { .. }) => e,
            Err(e) => return Err(e),
        };
        if self.folder_exists(raw_name).await? {
            return Ok(());
        }
        let Some(delimiter) = self.delimiter().await? else {
            return Err(first);
        };
        let parents: Vec<usize> = raw_name
            .match_indices(delimiter)
            .map(|(at, _)| at)
            .filter(|&at| at > 0)
            .collect();
        if parents.is_empty() {
            return Err(first);
        }
        for at in parents {
            let parent = &raw_name[..at];
            if !self.folder_exists(parent).await? {
                self.create_once(parent).await?;
            }
        }
        self.create_once(raw_name).await
    }

    /// CREATE, with `[ALREADYEXISTS]` (RFC 5530) counted as success.
    async fn create_once(&mut self, raw_name: &str) -> Result<(), ConnectorError> {
        let arg = self.mailbox_arg(raw_name)?;
        match self
            .exec(&format!("CREATE {arg}"), "CREATE", |_| Ok(()))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether LIST shows `raw_name` as an existing folder.
    async fn folder_exists(&mut self, raw_name: &str) -> Result<bool, ConnectorError> {
        let arg = self.mailbox_arg(raw_name)?;
        let mut exists = false;
        self.exec(&format!("LIST \"\" {arg}"), "LIST", |resp| {
            if let Response::MailboxData(MailboxDatum::List(list)) = resp
                && list.name == raw_name
                && !list.name_attributes.iter().any(|a| {
                    matches!(a, NameAttribute::Extension(e) if e.eq_ignore_ascii_case("\\NonExistent"))
                })
            {
                exists = true;
            }
            Ok(())
        })
        .await?;
        Ok(exists)
    }

    /// UIDs in the selected folder that could be a copy of a message of `size` bytes
    /// with this Message-ID: `UID SEARCH LARGER size-1 SMALLER size+1` plus
    /// `HEADER Message-ID "<id>"` when the id can be sent as a quoted string (otherwise
    /// by size only, and the caller compares bodies). `message_id` may come with or
    /// without its angle brackets. Ascending.
    ///
    /// # Errors
    /// Transport failures and refusals.
    pub async fn find_candidates(
        &mut self,
        message_id: Option<&str>,
        size: u32,
    ) -> Result<Vec<Uid>, ConnectorError> {
        let query = candidate_query(message_id, size);
        let mut uids = Vec::new();
        self.exec(&format!("UID SEARCH {query}"), "UID SEARCH", |resp| {
            if let Response::MailboxData(MailboxDatum::Search(found)) = resp {
                uids.extend(found.iter().map(|&u| Uid(u)));
            }
            Ok(())
        })
        .await?;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// The exact bytes of these messages in the selected folder, by UID; UIDs that do
    /// not exist are left out.
    ///
    /// # Errors
    /// Transport failures, refusals, and `Protocol` when the server leaves out a body.
    pub async fn fetch_bodies(
        &mut self,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Vec<u8>)>, ConnectorError> {
        let items = self.fetch_uids(uids, "(UID BODY.PEEK[])").await?;
        items
            .into_iter()
            .map(|f| Ok((f.uid, Fetched::need(f.body, "BODY[]", f.uid)?)))
            .collect()
    }

    /// `(uid, flags, INTERNALDATE, RFC822.SIZE)` of these messages in the selected
    /// folder, by UID; flags without `\Recent`.
    ///
    /// # Errors
    /// Transport failures, refusals, and `Protocol` when the server leaves out an item.
    pub async fn fetch_meta(
        &mut self,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Vec<String>, DateTime<FixedOffset>, u32)>, ConnectorError> {
        let items = self
            .fetch_uids(uids, "(UID FLAGS INTERNALDATE RFC822.SIZE)")
            .await?;
        items
            .into_iter()
            .map(|f| {
                Ok((
                    f.uid,
                    Fetched::need(f.flags, "FLAGS", f.uid)?,
                    Fetched::need(f.internal_date, "INTERNALDATE", f.uid)?,
                    Fetched::need(f.size, "RFC822.SIZE", f.uid)?,
                ))
            })
            .collect()
    }
}

/// The SEARCH keys of [`ImapSession::find_candidates`] (RFC 3501 §6.4.4).
fn candidate_query(message_id: Option<&str>, size: u32) -> String {
    // LARGER/SMALLER are strict, so size-1 < n < size+1 means exactly `size`.
    let mut query = match size {
        0 => "SMALLER 1".to_owned(),
        u32::MAX => format!("LARGER {}", size - 1),
        n => format!("LARGER {} SMALLER {}", n - 1, n + 1),
    };
    if let Some(raw) = message_id {
        let bare = raw.trim().trim_start_matches('<').trim_end_matches('>');
        match quoted(&format!("<{bare}>")) {
            Some(q) if !bare.is_empty() => {
                query.push_str(" HEADER Message-ID ");
                query.push_str(&q);
            }
            _ => debug!("Message-ID cannot be sent in a quoted string; searching by size only."),
        }
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_queries() {
        for (id, size, want) in [
            (None, 1234, "LARGER 1233 SMALLER 1235"),
            (
                Some("<abc@example.com>"),
                10,
                "LARGER 9 SMALLER 11 HEADER Message-ID \"<abc@example.com>\"",
            ),
            (
                Some("abc@example.com"),
                10,
                "LARGER 9 SMALLER 11 HEADER Message-ID \"<abc@example.com>\"",
            ),
            (
                Some("<we\"ird\\id@x>"),
                10,
                "LARGER 9 SMALLER 11 HEADER Message-ID \"<we\\\"ird\\\\id@x>\"",
            ),
            (Some("<caf\u{e9}@x>"), 10, "LARGER 9 SMALLER 11"),
            (Some("<a\r\nb>"), 10, "LARGER 9 SMALLER 11"),
            (Some("<>"), 10, "LARGER 9 SMALLER 11"),
            (None, 0, "SMALLER 1"),
            (None, u32::MAX, "LARGER 4294967294"),
        ] {
            assert_eq!(candidate_query(id, size), want, "{id:?} {size}");
        }
    }
}
