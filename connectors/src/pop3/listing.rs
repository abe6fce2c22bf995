//! A POP3 mailbox's messages with a stable identity each: the UIDL (RFC 1939 §7), or,
//! on a server without UIDL, the content hash (plus an occurrence number, so identical
//! copies stay distinct). Message numbers change between sessions; identities do not.

use super::Pop3Session;
use super::session::{Keep, Reply};
use super::wire::Status;
use crate::error::ConnectorError;
use std::collections::HashMap;

/// One message in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Entry {
    /// Its message number in this session.
    pub msgno: u32,
    /// Its stable identity: the UIDL, or `sha256:<hex>#<n>` without UIDL.
    pub id: String,
    /// Its size as LIST gives it.
    pub size: u64,
}

/// Every message of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Listing {
    /// In message-number order.
    pub entries: Vec<Pop3Entry>,
    /// True when the server has no UIDL and identities are content hashes (which costs
    /// one download of every message to list them).
    pub by_content: bool,
}

impl Pop3Session {
    /// Lists the mailbox with identities. Without UIDL every message is downloaded (up
    /// to `max_bytes` each) to hash it.
    ///
    /// # Errors
    /// Transport failures and refusals; without UIDL, a message over `max_bytes`.
    pub async fn listing(&mut self, max_bytes: u64) -> Result<Pop3Listing, ConnectorError> {
        let sizes: HashMap<u32, u64> = self.list().await?.into_iter().collect();
        if let Some(uidls) = self.uidl().await? {
            let entries = uidls
                .into_iter()
                .map(|(msgno, id)| Pop3Entry {
                    msgno,
                    size: sizes.get(&msgno).copied().unwrap_or(0),
                    id,
                })
                .collect();
            return Ok(Pop3Listing {
                entries,
                by_content: false,
            });
        }
        let mut numbers: Vec<u32> = sizes.keys().copied().collect();
        numbers.sort_unstable();
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut entries = Vec::with_capacity(numbers.len());
        for msgno in numbers {
            let (size, digest) = self.retr_digest(msgno, max_bytes).await?;
            let hash = hex::encode(&digest[..16]);
            let n = seen.entry(hash.clone()).or_insert(0);
            *n += 1;
            entries.push(Pop3Entry {
                msgno,
                id: format!("sha256:{hash}#{n}"),
                size,
            });
        }
        Ok(Pop3Listing {
            entries,
            by_content: true,
        })
    }
}

/// Who a POP3 message is, for checking that it arrived: what `verify` compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Identity {
    /// Its message number in this session.
    pub msgno: u32,
    /// Its size (`LIST`).
    pub size: u64,
    /// The Message-ID field, if it has a non-empty one.
    pub message_id: Option<String>,
    /// The Subject, decoded, for people reading a report.
    pub subject: Option<String>,
    /// The content hash, for a message without a Message-ID only (it is downloaded,
    /// and kept nowhere, to compute it).
    pub content_hash: Option<u64>,
}

/// A header section longer than this is not one.
const HEADER_MAX: u64 = 4 << 20;

impl Pop3Session {
    /// The header section of message `msg` (`TOP msg 0`, RFC 1939 §7); `None` when the
    /// server has no TOP.
    ///
    /// # Errors
    /// Transport failures and refusals of a server that lists TOP.
    pub async fn top_headers(&mut self, msg: u32) -> Result<Option<Vec<u8>>, ConnectorError> {
        if self.capabilities().capa && !self.capabilities().top {
            return Ok(None);
        }
        let line = format!("TOP {msg} 0");
        let answer = self
            .command("TOP", &line, Reply::Multi(HEADER_MAX, Keep::Memory))
            .await?;
        match answer.status {
            Status::Ok(_) if answer.over_limit => Err(ConnectorError::Pop3Protocol(format!(
                "the header section of POP3 message {msg} is over {HEADER_MAX} bytes"
            ))),
            Status::Ok(_) => Ok(Some(answer.bytes().to_vec())),
            // Without CAPA we could not know; a refusal then means "no TOP here".
            Status::Err(_) if !self.capabilities().capa => Ok(None),
            status => Err(self.refused("TOP", status)),
        }
    }

    /// The identities of these messages (`(msgno, size)` from `LIST`): Message-ID and
    /// Subject from TOP (from RETR on a server without TOP), and for a message without
    /// Message-ID its content hash.
    ///
    /// # Errors
    /// As [`Pop3Session::retr`].
    pub async fn identities(
        &mut self,
        wanted: &[(u32, u64)],
    ) -> Result<Vec<Pop3Identity>, ConnectorError> {
        let mut out = Vec::with_capacity(wanted.len());
        for &(msgno, size) in wanted {
            let header = match self.top_headers(msgno).await? {
                Some(h) => h,
                None => self.retr(msgno, u64::MAX).await?.head().await?.into_owned(),
            };
            let message_id = mailhaul_proto::inspect::message_id(&header);
            let content_hash = match message_id {
                Some(_) => None,
                None => {
                    let (_, digest) = self.retr_digest(msgno, u64::MAX).await?;
                    Some(u64::from_be_bytes(
                        digest[..8].try_into().expect("a digest has 32 bytes"),
                    ))
                }
            };
            out.push(Pop3Identity {
                msgno,
                size,
                message_id,
                subject: crate::imap::list::subject(&header),
                content_hash,
            });
        }
        Ok(out)
    }
}
