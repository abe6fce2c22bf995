//! What consumers see of either bus: a stream of deliveries, each answered exactly once
//! (acked after its slice is recorded, or handed back).

use crate::embedded_consumer::{EmbeddedStream, Ticket};
use crate::trace::TraceHeaders;
use crate::{Result, amqp, rabbit};
use futures_util::StreamExt as _;
use lapin::{Channel, Consumer};
use mailhaul_proto::task::{FolderTask, TaskFormatError};

/// Tasks as they arrive, each to be acked, requeued or rejected exactly once.
pub struct TaskStream {
    inner: Inner,
}

// One per process or consumer: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Rabbit {
        channel: Channel,
        consumer: Consumer,
        tag: String,
    },
    Embedded(EmbeddedStream),
}

impl std::fmt::Debug for TaskStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Rabbit { tag, .. } => f.debug_struct("TaskStream").field("tag", tag).finish(),
            Inner::Embedded(_) => f.write_str("TaskStream(embedded)"),
        }
    }
}

impl TaskStream {
    pub(crate) fn rabbit(channel: Channel, consumer: Consumer, tag: &str) -> TaskStream {
        TaskStream {
            inner: Inner::Rabbit {
                channel,
                consumer,
                tag: tag.to_owned(),
            },
        }
    }

    pub(crate) fn embedded(stream: EmbeddedStream) -> TaskStream {
        TaskStream {
            inner: Inner::Embedded(stream),
        }
    }

    /// The next delivery; `None` when the consumer was cancelled or the channel closed.
    ///
    /// # Errors
    /// Broker errors (the caller reconnects).
    pub async fn next(&mut self) -> Option<Result<TaskDelivery>> {
        match &mut self.inner {
            Inner::Rabbit { consumer, .. } => {
                let d = consumer.next().await?;
                Some(d.map_err(amqp("receiving a task")).map(rabbit::delivery))
            }
            Inner::Embedded(s) => {
                let got = s.next().await?;
                Some(got.map(|(t, ticket)| TaskDelivery {
                    task: FolderTask::from_json(&t.body),
                    delivery_count: t.deliveries,
                    redelivered: t.redelivered,
                    trace: t.trace,
                    raw: t.body,
                    acker: Acker::Embedded(ticket),
                }))
            }
        }
    }

    /// Stops new deliveries (those already received still need an answer).
    pub async fn cancel(&self) {
        match &self.inner {
            Inner::Rabbit { channel, tag, .. } => rabbit::cancel(channel, tag).await,
            Inner::Embedded(s) => s.cancel(),
        }
    }
}

/// How a delivery is answered.
pub(crate) enum Acker {
    Rabbit(lapin::Acker),
    Embedded(Ticket),
}

/// One received task.
pub struct TaskDelivery {
    /// The parsed task, or why it could not be read.
    pub task: Result<FolderTask, TaskFormatError>,
    /// The bytes as received (for dead-lettering unreadable tasks unchanged).
    pub raw: Vec<u8>,
    /// Whether the broker delivered it before (to a worker that did not ack).
    pub redelivered: bool,
    /// Earlier failed deliveries (quorum queues' `x-delivery-count`).
    pub delivery_count: u32,
    /// The publisher's trace context (parent of the task's span).
    pub trace: TraceHeaders,
    pub(crate) acker: Acker,
}

impl std::fmt::Debug for TaskDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskDelivery")
            .field("task", &self.task.as_ref().map(|t| &t.task_id))
            .field("redelivered", &self.redelivered)
            .field("delivery_count", &self.delivery_count)
            .finish_non_exhaustive()
    }
}

impl TaskDelivery {
    /// Done: the broker forgets the task.
    ///
    /// # Errors
    /// Broker errors (the task will then be redelivered; the ledger makes that harmless).
    pub async fn ack(self) -> Result<()> {
        self.answer(true).await
    }

    /// Not done: hand it back to the queue now (e.g. on shutdown).
    ///
    /// # Errors
    /// Broker errors.
    pub async fn requeue(self) -> Result<()> {
        self.answer(false).await
    }

    async fn answer(self, ack: bool) -> Result<()> {
        match self.acker {
            Acker::Rabbit(a) => rabbit::answer(a, ack).await,
            Acker::Embedded(t) => t.answer(ack).await,
        }
    }
}
