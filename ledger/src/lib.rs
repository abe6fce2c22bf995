//! The ledger: mailhaul's shared, durable memory — in Redis for the distributed mode, in
//! a SQLite database in the state directory for the embedded (single-process) mode.
//!
//! It answers "has this source message (mailbox, folder, UIDVALIDITY, UID) landed, and
//! where?" for every worker at once, so any task can be redone after any crash without
//! duplicating or losing mail. Writes that record progress are *fenced*: they only take
//! effect while the writer still holds the slice's lease, so a worker that lost its
//! lease (stalled, then overtaken by a redelivery) cannot interleave with the new owner.
//!
//! The ledger has an identity, its *epoch*: a random id written when a migration is
//! first recorded, stamped on every mailbox and carried by every task. A ledger that was
//! emptied (FLUSHALL, a restart without persistence) or replaced (another Redis, another
//! state directory) does not have the task's epoch, and every fenced write refuses
//! ([`LedgerError::Vanished`]): nothing is copied against records that are not the
//! plan's. Redis outages are waited out, not failed (see `patient`).
//!
//! The key layout and record encoding live in `mailhaul_proto::ledger`. [`Ledger`] is
//! the one interface the engine sees, an enum over the two backends with the same
//! semantics ([`embedded`] lists them).

pub mod embedded;
mod lease;
mod ops;
mod patient;
mod permits;
mod persistence;
mod records;
mod redis_store;
mod registry;
mod scripts;

pub use embedded::{EmbeddedLedger, StateDir};
pub use lease::Lease;
pub use permits::{Budget, Permit, PermitSpec, Rate};
pub use persistence::Persistence;
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
    /// A newer worker took the slice's lease; this writer must stop. `live`: that worker
    /// holds the lease now (it will finish the slice); otherwise it let the lease go
    /// (finished or died) and the task must go back to the queue, not be dropped.
    #[error("lease lost: {}", lost(.live))]
    Fenced {
        /// Whether the newer owner holds the lease right now.
        live: bool,
    },
    /// The ledger does not carry the epoch the task was planned against: it lost its
    /// data (FLUSHALL, a restart without persistence) or is another one.
    #[error(
        "the ledger this task was planned against is gone (emptied or replaced); nothing \
         more is copied for it: run `mailhaul migrate --rebuild-ledger <manifest>`"
    )]
    Vanished,
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
            LedgerError::Fenced { .. }
            | LedgerError::Vanished
            | LedgerError::Corrupt { .. }
            | LedgerError::Sqlite { .. }
            | LedgerError::StateDir(_) => ErrorClass::Permanent,
        }
    }
}

fn lost(live: &bool) -> &'static str {
    if *live {
        "another worker is copying this slice now"
    } else {
        "another worker took this slice and no longer holds it"
    }
}

/// The answer of a fenced write (see `scripts`): its count, or why it refused.
pub(crate) fn fence_answer(code: i64) -> Result<i64> {
    match code {
        -1 => Err(LedgerError::Fenced { live: true }),
        -3 => Err(LedgerError::Fenced { live: false }),
        -2 => Err(LedgerError::Vanished),
        n => Ok(n),
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

    /// How long Redis has not been answering, while an outage goes on (always `None`
    /// for the embedded ledger).
    pub fn outage(&self) -> Option<std::time::Duration> {
        match self {
            Ledger::Redis(l) => l.outage(),
            Ledger::Embedded(_) => None,
        }
    }

    /// Redis's persistence settings (see [`Persistence`]); `None` when `CONFIG GET` is
    /// not allowed, and for the embedded ledger (SQLite commits durably).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn persistence(&self) -> Result<Option<Persistence>> {
        match self {
            Ledger::Redis(l) => l.persistence().await,
            Ledger::Embedded(_) => Ok(None),
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
