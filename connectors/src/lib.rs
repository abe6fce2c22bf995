//! mailhaul's protocol adapters: they speak IMAP and POP3 (and later Graph, EWS) to mail
//! servers, map folder names between them, and classify their own failures.
//!
//! Connectors never touch RabbitMQ or Redis and never retry: every error carries its
//! retry intent ([`error::ConnectorError::class`]) and the worker decides.
//!
//! - [`imap`] holds IMAP source and target sessions over async-imap;
//! - [`pop3`] is a POP3 source session (our own client, RFC 1939);
//! - [`mutf7`] is modified UTF-7, the wire encoding of IMAP folder names;
//! - [`mapping`] turns folder names into segments and back, between servers;
//! - [`special`] recognises Sent, Drafts, Trash, Junk and Archive folders, and
//!   [`folder_map`] maps a whole folder tree onto the target;
//! - [`config`] loads the manifest and resolves its secrets;
//! - [`graph`] is the Microsoft Graph target client (folders, non-draft import);
//! - [`ews`] is the Exchange Web Services target client (folders, non-draft batch import);
//! - [`gate`] lets the worker hold per-mailbox request and byte budgets around every
//!   Graph and EWS request;
//! - [`oauth`] gets the bearer tokens of XOAUTH2 logins (token file or client credentials);
//! - [`error`] defines [`error::ConnectorError`].

pub mod body;
pub mod config;
pub mod error;
pub mod ews;
pub mod exchange_state;
pub mod folder_map;
pub mod gate;
pub mod graph;
mod http;
pub mod imap;
pub mod mapping;
pub mod mime;
pub mod mutf7;
mod net;
pub mod oauth;
pub mod pop3;
pub mod pst;
pub mod special;
pub mod target;
