//! Subscriptions (RFC 3501 §6.3.6-§6.3.9): which folders the user subscribed to, and
//! subscribing on the target. Clients that show subscribed folders only (Outlook over
//! IMAP, many phones) show an empty tree on a target where nothing is subscribed, and
//! neither Cyrus nor Courier subscribes a folder on CREATE (Dovecot does not either).

use super::session::ImapSession;
use crate::error::ConnectorError;
use async_imap::imap_proto::{MailboxDatum, Response};
use std::collections::BTreeSet;

impl ImapSession {
    /// The raw names of the subscribed folders (`LSUB "" "*"`; imap-proto reads an LSUB
    /// line as a LIST one).
    ///
    /// # Errors
    /// Transport failures and refusals.
    pub async fn subscribed(&mut self) -> Result<BTreeSet<String>, ConnectorError> {
        let mut out = BTreeSet::new();
        self.exec("LSUB \"\" \"*\"", "LSUB", |resp| {
            if let Response::MailboxData(MailboxDatum::List(l)) = resp {
                out.insert(l.name.to_string());
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Subscribes to `raw_name` (idempotent on every server tried).
    ///
    /// # Errors
    /// Transport failures and refusals.
    pub async fn subscribe(&mut self, raw_name: &str) -> Result<(), ConnectorError> {
        let arg = self.mailbox_arg(raw_name)?;
        self.exec(&format!("SUBSCRIBE {arg}"), "SUBSCRIBE", |_| Ok(()))
            .await
            .map(|_| ())
    }
}
