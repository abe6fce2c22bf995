//! Where a slice's messages come from: an IMAP folder, or a POP3 mailbox.
//!
//! Both answer the same two questions for the slice copier: which messages (id, size)
//! does this slice cover, and what are their bytes, flags and received dates. For POP3
//! the ids are the numbers the ledger assigned to UIDLs at planning; POP3 has no flags,
//! and the received date comes from the newest `Received:` header, else `Date:`.

use crate::connect::{Endpoints, Side};
use crate::metrics::Metrics;
use crate::slice::{SliceError, on};
use mailhaul_connectors::imap::{ImapSession, RawMessage};
use mailhaul_connectors::pop3::Pop3Session;
use mailhaul_ledger::{Ledger, Permit};
use mailhaul_proto::Uid;
use mailhaul_proto::inspect::received_date;
use mailhaul_proto::manifest::{Filters, ServerKind};
use mailhaul_proto::task::FolderTask;
use std::collections::HashMap;

/// The largest message a POP3 source hands over (bigger ones are refused by every
/// target anyway; reading them whole would only cost memory).
const POP3_MAX_MESSAGE: u64 = 512 << 20;

/// An open source session.
pub(crate) enum Source {
    Imap(ImapSession),
    Pop3 {
        session: Pop3Session,
        /// Ledger id -> message number in this session.
        msgno: HashMap<Uid, u32>,
    },
}

impl Source {
    /// Opens the mailbox's source under its connection permit.
    pub(crate) async fn open(
        e: &Endpoints<'_>,
        ledger: &Ledger,
        metrics: &Metrics,
    ) -> Result<(Source, Permit), SliceError> {
        match e.manifest.source.kind {
            ServerKind::Pop3 => {
                let (session, permit) = e.open_pop3(ledger, metrics).await?;
                Ok((
                    Source::Pop3 {
                        session,
                        msgno: HashMap::new(),
                    },
                    permit,
                ))
            }
            _ => {
                let (session, permit) = e.open(Side::Source, ledger, metrics).await?;
                Ok((Source::Imap(session), permit))
            }
        }
    }

    /// The messages (id, size) of the task's range that the filters keep, ascending.
    /// POP3 only knows sizes up front, so only `max_message_size` applies to it.
    pub(crate) async fn list(
        &mut self,
        ledger: &Ledger,
        t: &FolderTask,
        filters: &Filters,
    ) -> Result<Vec<(Uid, u32)>, SliceError> {
        match self {
            Source::Imap(s) => {
                let status = s
                    .examine(&t.folder.source_name)
                    .await
                    .map_err(on(Side::Source))?;
                if status.uid_validity != t.uid_validity {
                    return Err(SliceError::FolderChanged {
                        planned: t.uid_validity,
                        found: status.uid_validity,
                    });
                }
                s.uid_meta(t.range)
                    .await
                    .map_err(on(Side::Source))
                    .map(|metas| {
                        metas
                            .into_iter()
                            .filter(|m| {
                                filters
                                    .check(u64::from(m.size), &m.flags, m.internal_date)
                                    .is_ok()
                            })
                            .map(|m| (m.uid, m.size))
                            .collect()
                    })
            }
            Source::Pop3 { session, msgno } => {
                let listing = session
                    .listing(POP3_MAX_MESSAGE)
                    .await
                    .map_err(on(Side::Source))?;
                let uidls: Vec<String> = listing.entries.iter().map(|e| e.id.clone()).collect();
                let ids = ledger
                    .assign_ids(&t.migration, &t.mailbox, &t.folder.id, &uidls)
                    .await?;
                let mut out = Vec::new();
                for (e, id) in listing.entries.iter().zip(ids) {
                    if t.range.contains(id)
                        && filters.max_message_size.is_none_or(|max| e.size <= max)
                    {
                        msgno.insert(id, e.msgno);
                        out.push((id, u32::try_from(e.size).unwrap_or(u32::MAX)));
                    }
                }
                out.sort_unstable();
                Ok(out)
            }
        }
    }

    /// The messages with these ids (and listed sizes), whole; large ones spooled.
    pub(crate) async fn fetch(
        &mut self,
        wanted: &[(Uid, u32)],
    ) -> Result<Vec<RawMessage>, SliceError> {
        match self {
            Source::Imap(s) => s.fetch_messages(wanted).await.map_err(on(Side::Source)),
            Source::Pop3 { session, msgno } => {
                let mut out = Vec::with_capacity(wanted.len());
                for (uid, _) in wanted {
                    let n = *msgno.get(uid).ok_or_else(|| {
                        on(Side::Source)(mailhaul_connectors::error::ConnectorError::Protocol(
                            format!("POP3 message id {uid} was not listed in this session"),
                        ))
                    })?;
                    let body = session
                        .retr(n, POP3_MAX_MESSAGE)
                        .await
                        .map_err(on(Side::Source))?;
                    let head = body.head().await.map_err(|e| on(Side::Source)(e.into()))?;
                    let internal_date =
                        received_date(&head).unwrap_or_else(|| chrono::Utc::now().fixed_offset());
                    drop(head);
                    out.push(RawMessage {
                        uid: *uid,
                        flags: Vec::new(),
                        internal_date,
                        body,
                    });
                }
                Ok(out)
            }
        }
    }

    /// Ends the session politely.
    pub(crate) async fn close(self) {
        match self {
            Source::Imap(s) => {
                let _ = s.logout().await;
            }
            Source::Pop3 { session, .. } => {
                let _ = session.quit().await;
            }
        }
    }
}
