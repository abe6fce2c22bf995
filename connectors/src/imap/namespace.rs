//! The user's personal namespace (RFC 2342 NAMESPACE): the prefix and delimiter under
//! which the user's folders live (`INBOX.` and `.` on Cyrus and Courier, none and `/` on
//! Dovecot as the kit runs it), and the prefixes of the other users' and shared
//! namespaces, whose folders are not the user's.
//!
//! Where the manifest says `folder_prefix` or `separator`, that wins over the server.
//! A server without NAMESPACE has one namespace without prefix, with the delimiter of
//! `LIST "" ""` (RFC 3501 §6.3.8).

use super::session::ImapSession;
use crate::error::ConnectorError;
use crate::mapping::Naming;
use async_imap::imap_proto::{MailboxDatum, Response};

impl ImapSession {
    /// How this server names the user's folders (asked once per session).
    ///
    /// # Errors
    /// Transport failures and refusals.
    pub async fn naming(&mut self) -> Result<Naming, ConnectorError> {
        if let Some(n) = &self.naming {
            return Ok(n.clone());
        }
        let mut found: Option<Naming> = None;
        if self.caps.namespace {
            self.exec("NAMESPACE", "NAMESPACE", |resp| {
                if let Response::MailboxData(MailboxDatum::Namespace {
                    personal,
                    other,
                    shared,
                }) = resp
                {
                    // RFC 2342 §5: the first personal namespace is the user's default.
                    let first = personal.first();
                    found = Some(Naming {
                        prefix: first.map(|d| d.prefix.to_string()).unwrap_or_default(),
                        delimiter: first
                            .and_then(|d| d.delimiter.as_deref())
                            .and_then(|d| d.chars().next()),
                        others: other
                            .iter()
                            .chain(shared.iter())
                            .chain(personal.iter().skip(1))
                            .map(|d| d.prefix.to_string())
                            .collect(),
                    });
                }
                Ok(())
            })
            .await?;
        }
        let mut naming = match found {
            Some(n) => n,
            None => Naming {
                prefix: String::new(),
                delimiter: self.delimiter().await?,
                others: Vec::new(),
            },
        };
        if let Some(p) = &self.imap_options.folder_prefix {
            naming.prefix = p.clone();
        }
        if let Some(d) = self.imap_options.separator {
            naming.delimiter = Some(d);
        }
        self.naming = Some(naming.clone());
        Ok(naming)
    }
}
