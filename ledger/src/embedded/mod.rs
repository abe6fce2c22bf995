//! The embedded ledger: the same ledger as the Redis one, in one SQLite database in the
//! state directory, for `mailhaul migrate` running the whole engine in one process.
//!
//! **Why SQLite (through rusqlite, bundled, in WAL mode).** The ledger is the one thing
//! that must survive `kill -9` at any instant and a power cut without losing a record
//! the engine relied on or leaving a corrupt file. SQLite's WAL commit is atomic and,
//! with `synchronous = FULL`, durable when the call returns; its crash safety is tested
//! more thoroughly than any alternative's (and the file format is stable across
//! versions, so a state directory outlives an upgrade). Multi-key updates that the
//! Redis ledger does in Lua are one `BEGIN IMMEDIATE` transaction here. An admin can
//! open the file with the `sqlite3` shell. redb and fjall are pure Rust and crash safe
//! too, but younger, with file formats that have changed between major versions.
//!
//! **Semantics it keeps from the Redis ledger** (`scripts.rs`, `proto::ledger`):
//! - *Records*: keyed (mailbox, folder, UIDVALIDITY, UID); recording is insert-if-absent,
//!   so a redone batch counts nothing twice; per mailbox the counters `msgs`, `bytes`,
//!   `failed` and per pass `p<n>:msgs`, `p<n>:bytes`, `p<n>:failed` move exactly as the
//!   RECORD and FAIL scripts move them (a record clears the UID's in-flight mark and a
//!   failure of it; a failure counts once in total and once per pass that saw it).
//! - *In flight*: marked before sending, cleared by the record or the failure.
//! - *Fencing*: every progress write first checks, in the same transaction, that the
//!   slice's lease still holds the writer's token and has not expired; otherwise it
//!   fails with [`crate::LedgerError::Fenced`] and changes nothing. Tokens come from one
//!   counter that only grows (kept in the database, so across restarts too).
//! - *Leases*: take-if-absent-or-expired with a TTL, renew only by the holder while
//!   live, release only by the holder. Opening the ledger for writing (under the state
//!   directory's lock, see [`StateDir`]) drops every lease: no other process can hold
//!   one, so a re-run after `kill -9` does not wait for the dead run's leases to lapse.
//! - *Claims*, *POP3 ids* (a UIDL keeps its id forever; ids only grow from 1), *folder
//!   epochs* (a changed UIDVALIDITY voids the old records, kept for re-matching; the
//!   first target name stays), *passes*, *task completion* (idempotent), *progress*.
//! - *Connection permits and AIMD limits*: in process memory (one process is the only
//!   user); the same limits, the same adaptive halving at most once a second and slow
//!   growth, idle limits forgotten after 30 minutes. A dropped permit is given back at
//!   once (Redis lets it lapse, as it cannot know the holder died).
//! - *Request and upload budgets*: the same token buckets, kept in the database so a
//!   restart does not hand out a fresh burst.

mod gates;
mod lease;
mod records;
mod registry;
mod statedir;
mod store;

pub(crate) use gates::Gates;
pub use statedir::StateDir;
pub(crate) use store::{is_storage_failure, storage_hint};

use crate::Result;
use mailhaul_proto::ledger::Keys;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::Store;

/// The ledger file in a state directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// The embedded ledger; cheap to clone.
#[derive(Clone, Debug)]
pub struct EmbeddedLedger {
    store: Arc<Store>,
    gates: Arc<Gates>,
    keys: Keys,
    dir: PathBuf,
}

impl EmbeddedLedger {
    /// Opens the ledger of a locked state directory for reading and writing.
    ///
    /// # Errors
    /// The database cannot be created or opened, or is damaged or too new.
    pub fn open(state: &StateDir) -> Result<EmbeddedLedger> {
        let l = Self::open_at(state.path(), true)?;
        l.store.execute_now("DELETE FROM leases")?;
        Ok(l)
    }

    /// Opens the ledger of a state directory for reading only, without its lock: for
    /// `status`, `report` and `verify` while a run may be writing it.
    ///
    /// # Errors
    /// There is no ledger in `dir`, or it cannot be read.
    pub fn open_read_only(dir: &Path) -> Result<EmbeddedLedger> {
        let file = dir.join(LEDGER_FILE);
        if !file.is_file() {
            return Err(crate::LedgerError::StateDir(format!(
                "no embedded ledger in {} (no {LEDGER_FILE}); run `mailhaul migrate` with this --state-dir first, or give --redis-url for a distributed migration",
                dir.display()
            )));
        }
        Self::open_at(dir, false)
    }

    fn open_at(dir: &Path, writable: bool) -> Result<EmbeddedLedger> {
        let store = Store::open(&dir.join(LEDGER_FILE), writable)?;
        Ok(EmbeddedLedger {
            store: Arc::new(store),
            gates: Arc::new(Gates::default()),
            keys: Keys::new("mailhaul"),
            dir: dir.to_owned(),
        })
    }

    /// The key builder (lease ids are the same strings as the Redis keys).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the ledger cannot be written any more (disk full, read-only, I/O error).
    pub fn storage_failure(&self) -> Option<String> {
        self.store.failure()
    }
}
