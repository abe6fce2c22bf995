//! Outlook PST files as a migration source.
//!
//! - [`ndb`], [`ltp`], [`raw`]: our own reading of MS-PST over `Read + Seek` (so an
//!   object store with range reads can stand in for a file later), for the node
//!   B-tree walk and for the structures the `outlook-pst` crate cannot read;
//! - [`krate`]: items read through the `outlook-pst` crate (Microsoft's reader) first,
//!   with a panic inside it caught per item, and our reader as the fallback;
//! - [`value`], [`codepage`]: property values and `String8` code pages;
//! - [`rtf`]: compressed RTF (MS-OXRTFCP, crate `compressed-rtf`) and HTML
//!   de-encapsulation (MS-OXRTFEX);
//! - [`item`]: a message as migration sees it (subject, addresses, dates, bodies,
//!   attachments), [`mime`]: its MIME;
//! - [`handle`]: one blocking thread per open PST behind a channel (the crate's types
//!   are `Rc`-based, not `Send`), with an async API for the worker and coordinator.
//!
//! Identity: a message is (store record key, folder, NID). Message NIDs never repeat
//! inside one PST but restart in every PST; the record key tells files apart.

pub mod codepage;
mod crypt;
pub mod handle;
pub mod item;
mod krate;
mod ltp;
pub mod mime;
mod ndb;
pub mod raw;
pub mod rtf;
pub mod value;

pub use handle::{Fetched, FileInfo, FolderInfo, ItemSummary, PstHandle};
pub use item::Item;

use mailhaul_proto::ErrorClass;

/// A PST that cannot be read (as a whole, or one item of it).
#[derive(Debug, thiserror::Error)]
pub enum PstError {
    /// The file could not be opened or read.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The file is empty.
    #[error("the file is empty (0 bytes); export the PST again")]
    Empty,
    /// Not a PST file at all.
    #[error("not a PST file (no PST header); check the FilePath and Name in the mapping CSV")]
    NotPst,
    /// An OST (Outlook's offline cache) given instead of a PST.
    #[error(
        "this is an OST file (Outlook's offline cache of a server mailbox), not a PST; migrate \
         that mailbox from its server, or export a PST from Outlook (File > Open & Export > \
         Import/Export)"
    )]
    Ost,
    /// The file ends before a structure it points to.
    #[error(
        "the file is truncated ({len} bytes) or damaged; copy it again or repair it with scanpst.exe"
    )]
    Truncated {
        /// The file's length.
        len: u64,
    },
    /// A structure is malformed.
    #[error("damaged PST: {0}; repair it with scanpst.exe (Inbox Repair Tool)")]
    Corrupt(String),
    /// The reader thread is gone (it panicked outside any item, or was stopped).
    #[error("the PST reader stopped: {0}")]
    Stopped(String),
}

impl PstError {
    pub(crate) fn corrupt(what: String) -> PstError {
        PstError::Corrupt(what)
    }

    /// Retry intent: a file's content does not change by trying again, but the share
    /// it lives on may come back.
    pub fn class(&self) -> ErrorClass {
        match self {
            PstError::Io(e) if e.kind() != std::io::ErrorKind::NotFound => ErrorClass::Transient,
            PstError::Stopped(_) => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The sample PSTs of `tests/fixtures/pst/`.
    use std::path::PathBuf;

    /// The path of fixture `name`.
    pub(crate) fn path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/pst")
            .join(name)
    }

    /// Every fixture's file name.
    pub(crate) fn all() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(path(""))
            .expect("fixtures directory")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".pst"))
            .collect();
        v.sort();
        v
    }
}
