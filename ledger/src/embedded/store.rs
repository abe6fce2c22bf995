//! The SQLite database behind the embedded ledger: opening it (WAL, `synchronous =
//! FULL`, schema, a quick integrity check), and running work on it off the async
//! threads, each write in one `BEGIN IMMEDIATE` transaction.
//!
//! A write that fails because the state directory cannot be written (disk full,
//! read-only file system, I/O error) is remembered as the store's *storage failure*:
//! the process cannot make progress, and [`crate::Ledger::storage_failure`] lets the
//! embedded run stop with that reason instead of retrying for minutes.

use crate::{LedgerError, Result};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The schema version this build writes (`meta.schema`); a newer one is refused.
const SCHEMA: i64 = 1;

/// The tables. Records are keyed by a folder's row id, so a message costs its UID,
/// UIDVALIDITY and encoded record (target and content hash), not repeated names. The
/// last three (the ledger epoch and rebuild mark, leases' last takers, claims' owners)
/// came after schema 1 and only add tables, so older builds still read the file.
const SCHEMA_SQL: &str = r#"
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS migrations(mig TEXT PRIMARY KEY, tenant TEXT NOT NULL,
    passes INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS passes(mig TEXT, pass INTEGER, tasks INTEGER,
    PRIMARY KEY(mig, pass)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailboxes(mig TEXT, pos INTEGER, mbx TEXT NOT NULL,
    PRIMARY KEY(mig, pos)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS done_tasks(mig TEXT, pass INTEGER, task TEXT,
    PRIMARY KEY(mig, pass, task)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failed_tasks(mig TEXT, pass INTEGER, task TEXT, reason TEXT,
    PRIMARY KEY(mig, pass, task)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats(mig TEXT, mbx TEXT, field TEXT, n INTEGER, text TEXT,
    PRIMARY KEY(mig, mbx, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS folders(id INTEGER PRIMARY KEY, mig TEXT NOT NULL,
    mbx TEXT NOT NULL, fid TEXT NOT NULL, uv INTEGER, old TEXT NOT NULL DEFAULT '',
    name TEXT, dst TEXT, listed INTEGER NOT NULL DEFAULT 0, src INTEGER, src_bytes INTEGER,
    filtered INTEGER, next_id INTEGER NOT NULL DEFAULT 0, UNIQUE(mig, mbx, fid));
CREATE TABLE IF NOT EXISTS records(folder INTEGER, uv INTEGER, uid INTEGER,
    rec TEXT NOT NULL, PRIMARY KEY(folder, uv, uid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending(folder INTEGER, uv INTEGER, uid INTEGER,
    PRIMARY KEY(folder, uv, uid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures(folder INTEGER, uv INTEGER, uid INTEGER,
    pass INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY(folder, uv, uid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claimed(folder INTEGER, target TEXT,
    PRIMARY KEY(folder, target)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uidls(folder INTEGER, uidl TEXT, id INTEGER NOT NULL,
    PRIMARY KEY(folder, uidl)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases(key TEXT PRIMARY KEY, token INTEGER NOT NULL,
    expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budgets(key TEXT PRIMARY KEY, r REAL NOT NULL, b REAL NOT NULL,
    ts INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identity(mig TEXT PRIMARY KEY, epoch TEXT NOT NULL,
    rebuild INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease_takers(key TEXT PRIMARY KEY, token INTEGER NOT NULL,
    expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claimers(folder INTEGER, target TEXT, token INTEGER NOT NULL,
    PRIMARY KEY(folder, target)) WITHOUT ROWID;
"#;

/// One SQLite database, used by one connection at a time.
pub(crate) struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Milliseconds since the epoch: leases and budgets outlive the process, so they are
/// kept in wall-clock time.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if `writable`) the database at `path`.
    pub(crate) fn open(path: &Path, writable: bool) -> Result<Store> {
        let err = |source| LedgerError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let flags = if writable {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        if writable {
            // WAL: a commit appends to the log and a crash at any point leaves the last
            // committed state; FULL: the log is fsynced at every commit, so a record (or
            // an in-flight mark) the worker relied on survives a power cut too.
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(err)?;
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(err)?;
            conn.execute_batch(SCHEMA_SQL).map_err(err)?;
            let found: Option<i64> = conn
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })
                .ok();
            match found {
                None => {
                    conn.execute(
                        "INSERT INTO meta(key, value) VALUES('schema', ?1)",
                        [SCHEMA],
                    )
                    .map_err(err)?;
                }
                Some(v) if v > SCHEMA => {
                    return Err(LedgerError::StateDir(format!(
                        "{} was written by a newer mailhaul (schema {v}, this one knows {SCHEMA}); use that version",
                        path.display()
                    )));
                }
                Some(_) => {}
            }
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(err)?;
        if check != "ok" {
            return Err(LedgerError::StateDir(format!(
                "{} is damaged ({check}); restore it from a backup, or move the state directory away to start over (the target keeps what was copied, but a new ledger copies it again)",
                path.display()
            )));
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            failure: Mutex::new(None),
        })
    }

    /// Runs one statement at once, on the caller's thread (for opening).
    pub(crate) fn execute_now(&self, sql: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch(sql)
            .map_err(|e| self.located(LedgerError::from(e)))
    }

    /// Why the store cannot be written any more, if it cannot.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn note(&self, e: &rusqlite::Error) {
        if is_storage_failure(e) {
            let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                *f = Some(format!(
                    "cannot write {}: {e}{}",
                    self.path.display(),
                    storage_hint(e)
                ));
            }
        }
    }

    /// Runs `f` on the connection on a blocking thread.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = store.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn).map_err(|e| store.located(e))
        })
        .await
        .map_err(|e| LedgerError::StateDir(format!("a ledger task panicked: {e}")))?
    }

    /// Runs `f` in one immediate transaction on a blocking thread; commits if it returns
    /// `Ok`, rolls back otherwise (a fenced write changes nothing).
    pub(crate) async fn write<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.conn.lock().unwrap_or_else(|p| p.into_inner());
            let run = |conn: &mut Connection| -> Result<T> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx)?;
                failpoint_in_write();
                tx.commit()?;
                Ok(out)
            };
            run(&mut conn).map_err(|e| store.located(e))
        })
        .await
        .map_err(|e| LedgerError::StateDir(format!("a ledger task panicked: {e}")))?
    }

    /// Adds the database's path to a bare SQLite error, and notes storage failures.
    fn located(&self, e: LedgerError) -> LedgerError {
        match e {
            LedgerError::Sqlite { source, .. } => {
                self.note(&source);
                LedgerError::Sqlite {
                    path: self.path.clone(),
                    source,
                }
            }
            other => other,
        }
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(source: rusqlite::Error) -> Self {
        LedgerError::Sqlite {
            path: PathBuf::new(),
            source,
        }
    }
}

/// Whether `e` means the state directory cannot be written (as opposed to a busy
/// database or a bug): retrying soon will not help.
pub(crate) fn is_storage_failure(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
        )
    )
}

/// What to do about a failed write, in the admin's words.
pub(crate) fn storage_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            " (the disk of the state directory is full: free space there, then run the same command again; nothing already copied is lost or copied twice)"
        }
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
            " (the state directory is not writable: mount it read-write or point --state-dir elsewhere, then run the same command again)"
        }
        Some(ErrorCode::SystemIoFailure) => {
            " (the disk of the state directory failed a write: check it, then run the same command again)"
        }
        _ => "",
    }
}

/// `MAILHAUL_FAILPOINT=crash-in-ledger-write:N` aborts the process inside its N-th
/// ledger transaction, after its statements ran and before it commits: a kill during
/// a ledger write, for the crash tests.
fn failpoint_in_write() {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("MAILHAUL_FAILPOINT")
            .ok()?
            .strip_prefix("crash-in-ledger-write:")?
            .parse()
            .ok()
    });
    if let Some(n) = *at
        && WRITES.fetch_add(1, Ordering::Relaxed) + 1 >= n
    {
        eprintln!("failpoint crash-in-ledger-write:{n} reached; aborting");
        std::process::abort();
    }
}
