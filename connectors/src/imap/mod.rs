//! IMAP as a source and as a target, over async-imap (runtime-tokio).
//!
//! [`connect`] opens a logged-in [`ImapSession`] (plain, STARTTLS or implicit TLS).
//! The session runs every command through one reader ([`session`]) that applies a
//! timeout, keeps the server's reply text for classification, and marks itself broken
//! after a timeout or an I/O error so nobody sends commands into a desynchronised stream.
//!
//! - source side ([`source`]): LIST, STATUS, EXAMINE, UID sizes, message fetch;
//! - target side ([`target`], [`append`]): delimiter, CREATE, SELECT, MULTIAPPEND with
//!   APPENDUID (RFC 3502, RFC 4315), duplicate candidates by SEARCH, fetches to verify.
//!
//! Mailbox names passed in and out are raw (wire, modified UTF-7) names; the
//! [`crate::mapping`] module turns them into segments and back, relative to the
//! personal namespace that [`ImapSession::naming`] reads (RFC 2342).

mod append;
mod auth;
mod conn;
mod fetch;
pub(crate) mod list;
mod namespace;
mod session;
mod source;
mod subscribe;
mod target;

pub use append::AppendItem;
pub use conn::{ConnectOptions, Stream, connect, connect_with};
pub use list::MessageIdentity;
pub use session::{Capabilities, ImapSession};
pub use source::{FolderStatus, ListedFolder, MessageMeta, RawMessage};
