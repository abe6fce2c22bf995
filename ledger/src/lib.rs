//! The ledger: mailhaul's shared, durable memory in Redis.
//!
//! It answers "has this source message (mailbox, folder, UIDVALIDITY, UID) landed, and
//! where?" for every worker at once, so any task can be redone after any crash without
//! duplicating or losing mail. Writes that record progress are *fenced*: they only take
//! effect while the writer still holds the slice's lease, so a worker that lost its
//! lease (stalled, then overtaken by a redelivery) cannot interleave with the new owner.
//!
//! The key layout and record encoding live in `mailhaul_proto::ledger`. `Ledger` is the
//! one interface the engine sees; an embedded backend for single-binary mode plugs in
//! behind it later.

mod lease;
mod permits;
mod records;
mod registry;
mod scripts;

pub use lease::Lease;
pub use permits::{Budget, Permit, PermitSpec, Rate};
pub use records::RecordEntry;
pub use registry::{FolderCounts, FolderMeta, FolderReport, MailboxProgress, PassProgress};

use mailhaul_proto::ErrorClass;
use mailhaul_proto::ledger::Keys;
use redis::aio::ConnectionManager;

/// A handle on the ledger; cheap to clone (one multiplexed connection underneath).
#[derive(Clone)]
pub struct Ledger {
    con: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("namespace", &self.keys.namespace())
            .finish()
    }
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
}

impl LedgerError {
    /// Retry intent: Redis trouble is transient; a lost lease is final for this attempt.
    pub fn class(&self) -> ErrorClass {
        match self {
            LedgerError::Redis(e)
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() =>
            {
                ErrorClass::Transient
            }
            LedgerError::Redis(_) => ErrorClass::Transient,
            LedgerError::Fenced | LedgerError::Corrupt { .. } => ErrorClass::Permanent,
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
        let client = redis::Client::open(url)?;
        let con = client.get_connection_manager().await?;
        Ok(Ledger {
            con,
            keys: Keys::new(ns),
        })
    }

    /// The key builder for this ledger's namespace.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn con(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// Bytes Redis uses for one key (`MEMORY USAGE`); for the ledger-size benchmark.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn memory_usage(&self, key: &str) -> Result<u64> {
        let v: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut self.con())
            .await?;
        Ok(v.unwrap_or(0))
    }
}
