//! The embedded task queue: the bus of `mailhaul migrate` running in one process, in a
//! SQLite database (`queue.sqlite`) in the state directory, so that a run killed at any
//! moment leaves its unfinished tasks for the next run. SQLite for the same reasons as
//! the embedded ledger (`mailhaul_ledger::embedded`): atomic commits in WAL mode that
//! survive `kill -9` (see `open` for why the queue need not fsync every commit).
//!
//! Semantics kept from the RabbitMQ topology (`topology.rs`):
//! - *Publishing* is committed when the call returns (the publisher confirm), in order.
//! - *Prefetch*: a consumer holds at most `prefetch` unanswered deliveries.
//! - *Ack after record*: a delivery is removed only when acked; `requeue` hands it back
//!   at once (a clean hand-back: not counted against the delivery limit).
//! - *Redelivery of unacked work*: a delivery dropped unanswered (its slot died) goes
//!   back with its delivery count raised, as when a consumer's channel closes; opening
//!   the queue after a crash does the same for everything the dead run held.
//! - *Delivery limit*: a task handed out more than [`crate::DELIVERY_LIMIT`] times without
//!   an answer is dead-lettered, with the reason RabbitMQ's quorum queue would give.
//! - *Retry tiers*: `retry_later` waits the smallest tier of [`crate::RETRY_TIERS`] that
//!   covers the delay, then the task is ready again at the back of the queue. Opening the
//!   queue makes waiting tasks ready at once (a re-run is the admin's "retry now").
//! - *Dead letters* stay, with their reasons, until a human looks (`peek_dead`).

use crate::embedded_consumer::EmbeddedStream;
use crate::topology::Topology;
use crate::trace::TraceHeaders;
use crate::{BusError, DELIVERY_LIMIT, QueueStats, Result};
use mailhaul_proto::task::FolderTask;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The queue file in a state directory.
pub const QUEUE_FILE: &str = "queue.sqlite";

/// Why the broker dead-letters a task that kept killing its workers (the same words for
/// both buses).
pub(crate) const DELIVERY_LIMIT_REASON: &str = "the task was handed out too many times without finishing (workers crashed or were killed on it)";

const SCHEMA_SQL: &str = r#"
CREATE TABLE IF NOT EXISTS tasks(seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL,
    traceparent TEXT, tracestate TEXT, ready_at INTEGER NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0, redelivered INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(held, ready_at, seq);
CREATE TABLE IF NOT EXISTS dead(seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL,
    reason TEXT NOT NULL);
"#;

/// The in-process task queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct EmbeddedBus {
    pub(crate) queue: Arc<Queue>,
}

/// The shared state of the queue: the database and the wake-ups.
pub(crate) struct Queue {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Woken when a task becomes ready or a delivery is answered.
    pub(crate) changed: Notify,
    /// Consumers attached.
    pub(crate) consumers: AtomicU32,
    failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("path", &self.path).finish()
    }
}

/// One task handed to a consumer.
pub(crate) struct Taken {
    pub(crate) seq: i64,
    pub(crate) body: Vec<u8>,
    pub(crate) trace: TraceHeaders,
    pub(crate) deliveries: u32,
    pub(crate) redelivered: bool,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl EmbeddedBus {
    /// Opens (creating) the queue in state directory `dir`, which the caller holds
    /// locked; hands back what a dead run held and makes waiting retries ready now.
    ///
    /// # Errors
    /// The database cannot be created or opened.
    pub fn open(dir: &Path) -> Result<EmbeddedBus> {
        let path = dir.join(QUEUE_FILE);
        let err = |source| BusError::Embedded {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // NORMAL, not FULL as the ledger: in WAL mode a commit survives `kill -9` either
        // way; only a power cut may roll back the last commits, and every one of them is
        // harmless here (an ack lost: redelivered, the ledger skips it; a publish lost: the
        // next run's pass plans it again). That saves an fsync per delivery and answer.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA_SQL).map_err(err)?;
        let queue = Arc::new(Queue {
            conn: Mutex::new(conn),
            path: path.clone(),
            changed: Notify::new(),
            consumers: AtomicU32::new(0),
            failure: Mutex::new(None),
        });
        queue.write(|c| {
            // Whatever the last run held unanswered died with it: a failed delivery each.
            c.execute(
                "UPDATE tasks SET held = 0, deliveries = deliveries + 1, redelivered = 1 WHERE held = 1",
                [],
            )?;
            dead_letter_over_limit(c)?;
            c.execute(
                "UPDATE tasks SET ready_at = ?1 WHERE ready_at > ?1",
                [now_ms()],
            )?;
            Ok(())
        })?;
        Ok(EmbeddedBus { queue })
    }

    pub(crate) async fn publish(&self, tasks: &[FolderTask]) -> Result<()> {
        let trace = TraceHeaders::current();
        let rows: Vec<Vec<u8>> = tasks.iter().map(FolderTask::to_json).collect();
        self.queue
            .run(move |c| {
                let now = now_ms();
                let mut st = c.prepare_cached(
                    "INSERT INTO tasks(body, traceparent, tracestate, ready_at) VALUES(?1, ?2, ?3, ?4)",
                )?;
                for body in rows {
                    st.execute(params![body, trace.traceparent, trace.tracestate, now])?;
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn retry_later(&self, task: &FolderTask, delay: Duration) -> Result<()> {
        let tier = Topology::tier_for(delay);
        let trace = TraceHeaders::current();
        let body = task.to_json();
        self.queue
            .run(move |c| {
                c.execute(
                    "INSERT INTO tasks(body, traceparent, tracestate, ready_at) VALUES(?1, ?2, ?3, ?4)",
                    params![body, trace.traceparent, trace.tracestate, now_ms() + tier.as_millis() as i64],
                )?;
                Ok(())
            })
            .await
    }

    pub(crate) async fn dead_letter(&self, raw: &[u8], reason: &str) -> Result<()> {
        let (raw, reason) = (raw.to_vec(), reason.to_owned());
        self.queue
            .run(move |c| {
                c.execute(
                    "INSERT INTO dead(body, reason) VALUES(?1, ?2)",
                    params![raw, reason],
                )?;
                Ok(())
            })
            .await
    }

    pub(crate) fn consume(&self, prefetch: u16) -> EmbeddedStream {
        EmbeddedStream::new(self.queue.clone(), prefetch)
    }

    pub(crate) async fn peek_dead(&self, max: usize) -> Result<Vec<(Vec<u8>, String)>> {
        self.queue
            .quietly(move |c| {
                let mut st =
                    c.prepare_cached("SELECT body, reason FROM dead ORDER BY seq LIMIT ?1")?;
                let rows = st.query_map([max as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await
    }

    pub(crate) async fn queue_stats(&self) -> Result<QueueStats> {
        let consumers = self.queue.consumers.load(Ordering::Relaxed);
        self.queue
            .quietly(move |c| {
                let now = now_ms();
                let count =
                    |sql: &str| -> rusqlite::Result<u32> { c.query_row(sql, [now], |r| r.get(0)) };
                Ok(QueueStats {
                    ready: count("SELECT count(*) FROM tasks WHERE held = 0 AND ready_at <= ?1")?,
                    consumers,
                    retrying: count("SELECT count(*) FROM tasks WHERE held = 0 AND ready_at > ?1")?,
                })
            })
            .await
    }

    /// Tasks not finished: ready, waiting out a retry delay, or held by a consumer.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn outstanding(&self) -> Result<u64> {
        let n: i64 = self
            .queue
            .quietly(|c| c.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0)))
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Why the queue cannot be written any more (disk full, read-only, I/O error).
    pub fn storage_failure(&self) -> Option<String> {
        self.queue
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Moves tasks over the delivery limit to the dead letters.
fn dead_letter_over_limit(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO dead(body, reason) SELECT body, ?1 FROM tasks WHERE deliveries > ?2 ORDER BY seq",
        params![DELIVERY_LIMIT_REASON, DELIVERY_LIMIT],
    )?;
    c.execute("DELETE FROM tasks WHERE deliveries > ?1", [DELIVERY_LIMIT])?;
    Ok(())
}

impl Queue {
    /// Runs `f` in one immediate transaction, here and now (for opening, and for the
    /// answers of deliveries, which are small).
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let run = |conn: &mut Connection| -> rusqlite::Result<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run(&mut conn).map_err(|source| {
            if is_storage_failure(&source) {
                let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert_with(|| format!("cannot write {}: {source}", self.path.display()));
            }
            BusError::Embedded {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// [`Queue::write`] on a blocking thread; wakes consumers afterwards (a task may
    /// have become ready).
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let out = self.quietly(f).await;
        self.changed.notify_waiters();
        out
    }

    /// [`Queue::write`] on a blocking thread, waking nobody: for a consumer's own
    /// look at the queue (waking itself would make it spin while the queue is empty).
    pub(crate) async fn quietly<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let q = self.clone();
        tokio::task::spawn_blocking(move || q.write(f))
            .await
            .map_err(|e| BusError::NotConfirmed(format!("the queue task panicked: {e}")))?
    }

    /// Hands the oldest ready task to a consumer, if there is one.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<Option<Taken>> {
        self.quietly(|c| {
            let row = c
                .query_row(
                    "SELECT seq, body, traceparent, tracestate, deliveries, redelivered FROM tasks \
                     WHERE held = 0 AND ready_at <= ?1 ORDER BY seq LIMIT 1",
                    [now_ms()],
                    |r| {
                        Ok(Taken {
                            seq: r.get(0)?,
                            body: r.get(1)?,
                            trace: TraceHeaders {
                                traceparent: r.get(2)?,
                                tracestate: r.get(3)?,
                            },
                            deliveries: r.get(4)?,
                            redelivered: r.get(5)?,
                        })
                    },
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            if let Some(t) = &row {
                c.execute("UPDATE tasks SET held = 1 WHERE seq = ?1", [t.seq])?;
            }
            Ok(row)
        })
        .await
    }

    /// When the next waiting task becomes ready, if any is waiting.
    pub(crate) async fn next_due(self: &Arc<Self>) -> Result<Option<i64>> {
        self.quietly(|c| {
            c.query_row("SELECT min(ready_at) FROM tasks WHERE held = 0", [], |r| {
                r.get(0)
            })
        })
        .await
    }

    /// Acks (`Some(true)`: forget), requeues (`Some(false)`: ready again, not counted)
    /// or returns unanswered (`None`: counted against the delivery limit) task `seq`.
    pub(crate) fn answer(&self, seq: i64, ack: Option<bool>) -> Result<()> {
        let out = self.write(|c| {
            match ack {
                Some(true) => c.execute("DELETE FROM tasks WHERE seq = ?1", [seq])?,
                Some(false) => c.execute(
                    "UPDATE tasks SET held = 0, redelivered = 1 WHERE seq = ?1",
                    [seq],
                )?,
                None => {
                    c.execute(
                        "UPDATE tasks SET held = 0, redelivered = 1, deliveries = deliveries + 1 WHERE seq = ?1",
                        [seq],
                    )?;
                    dead_letter_over_limit(c)?;
                    0
                }
            };
            Ok(())
        });
        self.changed.notify_waiters();
        out
    }
}

fn is_storage_failure(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(DiskFull | ReadOnly | SystemIoFailure | CannotOpen | DatabaseCorrupt | NotADatabase)
    )
}
