//! Any of the kit's IMAP servers behind one type, for tests that run the same scenario
//! between Dovecot, Cyrus and Courier.

use super::{Courier, Cyrus, Dovecot};

/// Which server software.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Dovecot 2.3: no namespace prefix, `/` separator (the kit's configuration).
    Dovecot,
    /// Cyrus IMAP 3.6: `INBOX.` prefix, `.` separator.
    Cyrus,
    /// Courier-IMAP 5.0: `INBOX.` prefix, `.` separator.
    Courier,
}

impl ServerKind {
    /// Lowercase name, for test names and messages.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Dovecot => "dovecot",
            ServerKind::Cyrus => "cyrus",
            ServerKind::Courier => "courier",
        }
    }
}

/// A running server of one of the kinds.
#[derive(Debug)]
pub enum ImapServer {
    /// Dovecot.
    Dovecot(Dovecot),
    /// Cyrus.
    Cyrus(Cyrus),
    /// Courier.
    Courier(Courier),
}

impl ImapServer {
    /// Starts a server of `kind` with no users.
    ///
    /// # Errors
    /// The server is not installed or does not start.
    pub fn start(kind: ServerKind) -> anyhow::Result<ImapServer> {
        Ok(match kind {
            ServerKind::Dovecot => ImapServer::Dovecot(Dovecot::start()?),
            ServerKind::Cyrus => ImapServer::Cyrus(Cyrus::start()?),
            ServerKind::Courier => ImapServer::Courier(Courier::start()?),
        })
    }

    /// Which kind it is.
    pub fn kind(&self) -> ServerKind {
        match self {
            ImapServer::Dovecot(_) => ServerKind::Dovecot,
            ImapServer::Cyrus(_) => ServerKind::Cyrus,
            ImapServer::Courier(_) => ServerKind::Courier,
        }
    }

    /// Adds a user.
    ///
    /// # Errors
    /// As the server's own `add_user`.
    pub fn add_user(&self, user: &str, password: &str) -> anyhow::Result<()> {
        match self {
            ImapServer::Dovecot(s) => s.add_user(user, password),
            ImapServer::Cyrus(s) => s.add_user(user, password),
            ImapServer::Courier(s) => s.add_user(user, password),
        }
    }

    /// The plain-text IMAP port on 127.0.0.1.
    pub fn imap_port(&self) -> u16 {
        match self {
            ImapServer::Dovecot(s) => s.imap_port(),
            ImapServer::Cyrus(s) => s.imap_port(),
            ImapServer::Courier(s) => s.imap_port(),
        }
    }
}
