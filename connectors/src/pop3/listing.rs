//! A POP3 mailbox's messages with a stable identity each: the UIDL (RFC 1939 §7), or,
//! on a server without UIDL, the content hash (plus an occurrence number, so identical
//! copies stay distinct). Message numbers change between sessions; identities do not.

use super::Pop3Session;
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
