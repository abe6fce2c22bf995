//! Where a slice's messages come from: an IMAP folder, or a POP3 mailbox.
//!
//! Both answer the same two questions for the slice copier: which messages (id, size)
//! does this slice cover, and what are their bytes, flags and received dates. For POP3
//! the ids are the numbers the ledger assigned to UIDLs at planning; POP3 has no flags,
//! and the received date comes from the newest `Received:` header, else `Date:`.
//!
//! What an IMAP source hands over is checked against what was asked for (UIDs and
//! listed sizes): a message missing from the answer, of another size, or that the
//! server or the spool cannot deliver fails alone, with the reason; the rest of the
//! slice goes on.

use crate::connect::{Endpoints, Side};
use crate::metrics::Metrics;
use crate::slice::{SliceError, on};
use mailhaul_connectors::error::ConnectorError;
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

    /// The messages with these ids (and listed sizes), whole; large ones spooled. A
    /// message the source cannot hand over as listed fails alone (see [`Fetched`]).
    ///
    /// # Errors
    /// The session failed (connection, timeout, `BYE`): the slice stops and is retried.
    pub(crate) async fn fetch(&mut self, wanted: &[(Uid, u32)]) -> Result<Fetched, SliceError> {
        match self {
            Source::Imap(s) => fetch_checked(s, wanted).await,
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
                Ok(Fetched {
                    msgs: out,
                    failed: Vec::new(),
                })
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

/// What a batch's FETCH brought: the messages as listed, and those that failed alone
/// with the reason the admin will read.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// The messages, ascending by UID.
    pub msgs: Vec<RawMessage>,
    /// Messages the source could not hand over as listed, with why.
    pub failed: Vec<(Uid, String)>,
}

/// Whether `e` concerns the message(s) asked for rather than the session: the server
/// answered (malformed, without an item, `NO`/`BAD`), or this machine could not keep
/// the message (spool). The session is still usable after these.
fn concerns_the_message(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::Protocol(_)
            | ConnectorError::No { .. }
            | ConnectorError::Bad { .. }
            | ConnectorError::Local(_)
            | ConnectorError::MessageTooLarge { .. }
    )
}

/// Fetches `wanted` and checks the answer against it: a message left out of the
/// answer, or handed over with another size than the listing's, is asked for again
/// alone; if that answer is no better, it fails alone with the reason (a message no
/// longer in the folder was deleted since the listing and is left out, as the listing
/// would now). A batch whose FETCH fails for a reason of its messages' (see
/// [`concerns_the_message`]) is fetched message by message, so one bad message never
/// fails its neighbours.
async fn fetch_checked(s: &mut ImapSession, wanted: &[(Uid, u32)]) -> Result<Fetched, SliceError> {
    let mut got: HashMap<Uid, RawMessage> = match s.fetch_messages(wanted).await {
        Ok(msgs) => msgs.into_iter().map(|m| (m.uid, m)).collect(),
        Err(e) if concerns_the_message(&e) && wanted.len() > 1 => {
            tracing::warn!(err = %e, messages = wanted.len(), "A batch's FETCH failed; fetching its messages one by one.");
            HashMap::new()
        }
        Err(e) if concerns_the_message(&e) => {
            return Ok(Fetched {
                msgs: Vec::new(),
                failed: vec![(
                    wanted[0].0,
                    format!("the source could not hand it over: {e}"),
                )],
            });
        }
        Err(e) => return Err(on(Side::Source)(e)),
    };
    let mut out = Fetched::default();
    for &(uid, size) in wanted {
        match got.remove(&uid) {
            Some(m) if m.body.len() == u64::from(size) => out.msgs.push(m),
            first => {
                let first = first.map(|m| m.body.len());
                match fetch_alone(s, uid, size, first).await? {
                    Alone::Got(m) => out.msgs.push(m),
                    Alone::Gone => {
                        tracing::info!(
                            uid = uid.0,
                            "Message deleted on the source since the listing; not copied."
                        );
                    }
                    Alone::Failed(why) => out.failed.push((uid, why)),
                }
            }
        }
    }
    Ok(out)
}

/// What asking for one message again brought.
enum Alone {
    Got(RawMessage),
    /// It is no longer in the folder.
    Gone,
    Failed(String),
}

/// Asks for message `uid` (listed with `listed` bytes) alone, after its batch's answer
/// had it with `first` bytes (`None`: left out, or the batch failed).
async fn fetch_alone(
    s: &mut ImapSession,
    uid: Uid,
    listed: u32,
    first: Option<u64>,
) -> Result<Alone, SliceError> {
    let size = u64::from(listed);
    match s.fetch_messages(&[(uid, listed)]).await {
        Ok(mut msgs) => match msgs.pop() {
            Some(m) if m.body.len() == size => Ok(Alone::Got(m)),
            Some(m) => Ok(Alone::Failed(format!(
                "the source server handed over {} bytes where its listing (RFC822.SIZE) said {size}{}; not copied, \
                 as it may be cut short",
                m.body.len(),
                first
                    .filter(|f| *f != m.body.len())
                    .map(|f| format!(" (and {f} bytes the time before)"))
                    .unwrap_or_default()
            ))),
            None => {
                let still = s
                    .uid_sizes(mailhaul_proto::UidRange {
                        first: uid,
                        last: uid,
                    })
                    .await
                    .map_err(on(Side::Source))?;
                if still.is_empty() {
                    Ok(Alone::Gone)
                } else {
                    Ok(Alone::Failed(
                        "the source server's FETCH answer left this message out, twice, though it is listed in the folder"
                            .to_owned(),
                    ))
                }
            }
        },
        Err(e) if concerns_the_message(&e) => Ok(Alone::Failed(format!(
            "the source could not hand it over: {e}"
        ))),
        Err(e) => Err(on(Side::Source)(e)),
    }
}
