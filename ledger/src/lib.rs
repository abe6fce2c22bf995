//! The ledger: mailhaul's shared, durable memory — in Redis for the distributed mode, in
//! a SQLite database in the state directory for the embedded (single-process) mode.
//!
//! It answers "has this source message (mailbox, folder, UIDVALIDITY, UID) landed, and
//! where?" for every worker at once, so any task can be redone after any crash without
//! duplicating or losing mail. Writes that record progress are *fenced*: they only take
//! effect while the writer still holds the slice's lease, so a worker that lost its
//! lease (stalled, then overtaken by a redelivery) cannot interleave with the new owner.
//!
//! The key layout and record encoding live in `mailhaul_proto::ledger`. [`Ledger`] is
//! the one interface the engine sees, an enum over the two backends with the same
//! semantics ([`embedded`] lists them).

pub mod embedded;
mod lease;
mod ops;
mod permits;
mod records;
mod redis_store;
mod registry;
mod scripts;

pub use embedded::{EmbeddedLedger, StateDir};
pub use lease::Lease;
pub use permits::{Budget, Permit, PermitSpec, Rate};
pub use records::RecordEntry;
pub use redis_store::RedisLedger;
pub use registry::{FolderCounts, FolderMeta, FolderReport, MailboxProgress, PassProgress};

use mailhaul_proto::ErrorClass;
use mailhaul_proto::ledger::Keys;
use std::path::PathBuf;

/// A handle on the ledger, whichever it is; cheap to clone.
#[derive(Clone, Debug)]
pub enum Ledger {
    /// Redis (distributed mode: shared by every worker).
    Redis(RedisLedger),
    /// SQLite in a state directory (embedded mode: one process).
    Embedded(EmbeddedLedger),
}

/// Failures talking to the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Redis could not be reached or refused a command.
    #[error("ledger (redis): {0}")]
    Redis(#[from] redis::RedisError),
    /// The slice's lease is held by someone else now; this writer must stop.
    #[error("lease lost: another worker owns this slice now")]
    Fenced,
    /// A stored value does not have the shape this build writes.
    #[error("corrupt ledger value at {key}: {value:?}")]
    Corrupt {
        /// The key holding it.
        key: String,
        /// What was found.
        value: String,
    },
    /// The embedded ledger's database failed.
    #[error("embedded ledger {}: {source}{}", path.display(), embedded::storage_hint(source))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The state directory cannot be used (locked by another process, not writable,
    /// damaged, of another migration); the text says what to do.
    #[error("{0}")]
    StateDir(String),
}

impl LedgerError {
    /// Retry intent: Redis trouble and a busy database are transient; a lost lease is
    /// final for this attempt, and so is a state directory that cannot be written.
    pub fn class(&self) -> ErrorClass {
        match self {
            LedgerError::Redis(e)
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() =>
            {
                ErrorClass::Transient
            }
            LedgerError::Redis(_) => ErrorClass::Transient,
            LedgerError::Sqlite { source, .. } if !embedded::is_storage_failure(source) => {
                ErrorClass::Transient
            }
            LedgerError::Fenced
            | LedgerError::Corrupt { .. }
            | LedgerError::Sqlite { .. }
            | LedgerError::StateDir(_) => ErrorClass::Permanent,
        }
    }
}

/// Shorthand for ledger results.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

impl Ledger {
    /// Connects to Redis at `url` (`redis://` or `rediss://`) under namespace `ns`.
    ///
    /// # Errors
    /// The URL is malformed or Redis cannot be reached.
    pub async fn connect(url: &str, ns: &str) -> Result<Self> {
        Ok(Ledger::Redis(RedisLedger::connect(url, ns).await?))
    }

    /// Opens the embedded ledger of a state directory this process holds.
    ///
    /// # Errors
    /// The database cannot be created or opened, or is damaged.
    pub fn open_embedded(state: &StateDir) -> Result<Self> {
        Ok(Ledger::Embedded(EmbeddedLedger::open(state)?))
    }

    /// The key builder for this ledger's namespace.
    pub fn keys(&self) -> &Keys {
        match self {
            Ledger::Redis(l) => &l.keys,
            Ledger::Embedded(l) => l.keys(),
        }
    }

    /// Why the ledger cannot be written any more, if that is so: the embedded ledger's
    /// state directory is full, read-only or failing. Always `None` for Redis (whose
    /// failures are transient: it comes back).
    pub fn storage_failure(&self) -> Option<String> {
        match self {
            Ledger::Redis(_) => None,
            Ledger::Embedded(l) => l.storage_failure(),
        }
    }

    /// Bytes Redis uses for one key (`MEMORY USAGE`), for the ledger-size benchmark;
    /// 0 for the embedded ledger (measure its state directory instead).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn memory_usage(&self, key: &str) -> Result<u64> {
        match self {
            Ledger::Redis(l) => l.memory_usage(key).await,
            Ledger::Embedded(_) => Ok(0),
        }
    }
}
