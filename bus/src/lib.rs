//! The task bus: how folder tasks travel from the coordinator to the workers.
//!
//! Delivery is at least once: a task is acked only after its slice is copied and
//! recorded; a worker that dies leaves its tasks unacked and the broker hands them out
//! again. Publishing waits for publisher confirms, so a task the coordinator counts as
//! published is on disk at the broker.
//!
//! `Bus` is the engine's whole view of the broker: RabbitMQ for the distributed mode,
//! or the embedded queue in the state directory for the single-process mode, with the
//! same semantics (see [`embedded`]).

mod delivery;
pub mod embedded;
mod embedded_consumer;
pub mod metrics_http;
mod rabbit;
mod topology;
pub mod trace;

pub use delivery::{TaskDelivery, TaskStream};
pub use embedded::EmbeddedBus;
pub use rabbit::RabbitBus;
pub use topology::{DELIVERY_LIMIT, RETRY_TIERS, Topology};
pub use trace::TraceHeaders;

use mailhaul_proto::ErrorClass;
use mailhaul_proto::task::FolderTask;
use std::time::Duration;

/// Failures talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker could not be reached, or a channel or connection failed.
    #[error("message broker error: {context}")]
    Amqp {
        /// What we were doing.
        context: &'static str,
        /// The AMQP error.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused a published message (publisher confirm was a nack).
    #[error("the broker did not confirm a published task ({0}); it was not stored")]
    NotConfirmed(String),
    /// The embedded queue's database failed.
    #[error("embedded task queue {}: {source}", path.display())]
    Embedded {
        /// The database file.
        path: std::path::PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

impl BusError {
    /// Broker trouble is transient: reconnect and try again. (An embedded queue that
    /// cannot be written stops the run: see [`Bus::storage_failure`].)
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Transient
    }
}

/// Shorthand for bus results.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

pub(crate) fn amqp(context: &'static str) -> impl FnOnce(lapin::Error) -> BusError {
    move |source| BusError::Amqp { context, source }
}

/// A snapshot of the task queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Tasks ready to be handed out.
    pub ready: u32,
    /// Consumers (worker slots) attached.
    pub consumers: u32,
    /// Tasks waiting out a retry delay, over all retry tiers.
    pub retrying: u32,
}

/// The broker, whichever it is.
// One per process or consumer: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Bus {
    /// RabbitMQ over AMQP 0-9-1.
    Rabbit(RabbitBus),
    /// The in-process queue of the embedded mode.
    Embedded(EmbeddedBus),
}

impl Bus {
    /// Connects to RabbitMQ at `url` and declares the topology of namespace `ns`.
    ///
    /// # Errors
    /// The broker is unreachable, refuses the login, or the topology clashes with
    /// queues declared differently before.
    pub async fn connect(url: &str, ns: &str, name: &str) -> Result<Bus> {
        Ok(Bus::Rabbit(
            RabbitBus::connect(url, Topology::new(ns), name).await?,
        ))
    }

    /// Publishes tasks in order and waits until the broker confirms every one. Each
    /// carries the current span's trace context (see [`trace`]).
    ///
    /// # Errors
    /// Broker errors, or a task the broker did not confirm.
    pub async fn publish(&self, tasks: &[FolderTask]) -> Result<()> {
        match self {
            Bus::Rabbit(b) => b.publish(tasks).await,
            Bus::Embedded(b) => b.publish(tasks).await,
        }
    }

    /// Publishes a task again after `delay` (for transient failures and throttling),
    /// with the current span's trace context.
    ///
    /// # Errors
    /// Broker errors.
    pub async fn retry_later(&self, task: &FolderTask, delay: Duration) -> Result<()> {
        match self {
            Bus::Rabbit(b) => b.retry_later(task, delay).await,
            Bus::Embedded(b) => b.retry_later(task, delay).await,
        }
    }

    /// Puts a task on the dead-letter queue with the reason it gave up.
    ///
    /// # Errors
    /// Broker errors.
    pub async fn dead_letter(&self, raw: &[u8], reason: &str) -> Result<()> {
        match self {
            Bus::Rabbit(b) => b.dead_letter(raw, reason).await,
            Bus::Embedded(b) => b.dead_letter(raw, reason).await,
        }
    }

    /// Starts consuming tasks with at most `prefetch` unacked at a time.
    ///
    /// # Errors
    /// Broker errors.
    pub async fn consume(&self, prefetch: u16, tag: &str) -> Result<TaskStream> {
        match self {
            Bus::Rabbit(b) => b.consume(prefetch, tag).await,
            Bus::Embedded(b) => Ok(TaskStream::embedded(b.consume(prefetch))),
        }
    }

    /// Reads the dead-letter queue without removing anything: every message is held
    /// unacked until `peek` returns, then handed back to the broker.
    ///
    /// # Errors
    /// Broker errors.
    pub async fn peek_dead(&self, max: usize) -> Result<Vec<(Vec<u8>, String)>> {
        match self {
            Bus::Rabbit(b) => b.peek_dead(max).await,
            Bus::Embedded(b) => b.peek_dead(max).await,
        }
    }

    /// Tasks waiting in the task queue and the retry queues, and workers consuming.
    ///
    /// # Errors
    /// Broker errors.
    pub async fn queue_stats(&self) -> Result<QueueStats> {
        match self {
            Bus::Rabbit(b) => b.queue_stats().await,
            Bus::Embedded(b) => b.queue_stats().await,
        }
    }

    /// Closes the connection cleanly (nothing to close for the embedded queue).
    pub async fn close(&self) {
        match self {
            Bus::Rabbit(b) => b.close().await,
            Bus::Embedded(_) => {}
        }
    }

    /// Why the bus cannot be written any more, if that is so: the embedded queue's state
    /// directory is full, read-only or failing. Always `None` for RabbitMQ.
    pub fn storage_failure(&self) -> Option<String> {
        match self {
            Bus::Rabbit(_) => None,
            Bus::Embedded(b) => b.storage_failure(),
        }
    }
}
