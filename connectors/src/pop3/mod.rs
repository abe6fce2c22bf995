//! POP3 as a source (RFC 1939), with our own client: the tokio POP3 crates hand back
//! bodies still byte-stuffed (see `research/crates.md` §4.7).
//!
//! [`connect`] opens a logged-in [`Pop3Session`] over plain TCP, STLS (RFC 2595) or
//! implicit TLS (POP3S), after CAPA (RFC 2449) and AUTH PLAIN (RFC 5034) or USER/PASS.
//! The session reads only: STAT, LIST, UIDL, RETR and QUIT. It never sends DELE, so the
//! source mailbox is left as it was.
//!
//! - [`wire`](self) (private): status lines, multi-line replies and their un-stuffing;
//! - `parse`: CAPA, STAT, LIST, UIDL data;
//! - `auth`: login and what a refused login means (RFC 3206 response codes);
//! - `session`: the command runner (time limits, broken-session guard) and commands.
//!
//! Errors are [`crate::error::ConnectorError`]s classified like IMAP's: `-ERR` becomes
//! `No` (transient for `[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`), a refused login `Auth`.

mod auth;
mod conn;
mod listing;
mod parse;
mod session;
#[cfg(test)]
mod tests;
mod wire;

pub use crate::net::ConnectOptions;
pub use conn::{connect, connect_with};
pub use listing::{Pop3Entry, Pop3Identity, Pop3Listing};
pub use parse::Pop3Capabilities;
pub use session::Pop3Session;
