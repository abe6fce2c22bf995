//! mailhaul's shared vocabulary: the manifest schema and its validation, the task
//! messages that travel on the bus, ids, the ledger's key layout and record encoding,
//! and error classes.
//!
//! This crate is pure: no I/O, no async. Everything here can be unit-tested with
//! plain values, and every other crate agrees on the wire and storage formats through it.

pub mod error;
pub mod ids;
pub mod inspect;
pub mod ledger;
pub mod manifest;
pub mod task;

pub use error::ErrorClass;
pub use ids::{FolderId, MailboxId, MigrationId, TaskId, Uid, UidRange, UidValidity};
