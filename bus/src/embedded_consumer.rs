//! Consuming from the embedded queue: a stream that hands out at most `prefetch`
//! unanswered tasks, and the ticket each delivery carries to answer for it exactly once
//! (dropped unanswered, it returns its task as a failed delivery).

use crate::Result;
use crate::embedded::{Queue, Taken, now_ms};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The longest a waiting consumer sleeps before looking again (wake-ups come sooner).
const MAX_NAP: Duration = Duration::from_secs(1);

/// A consumer of the embedded queue.
pub(crate) struct EmbeddedStream {
    queue: Arc<Queue>,
    prefetch: usize,
    held: Arc<AtomicUsize>,
    cancelled: AtomicBool,
}

impl EmbeddedStream {
    pub(crate) fn new(queue: Arc<Queue>, prefetch: u16) -> EmbeddedStream {
        queue.consumers.fetch_add(1, Ordering::Relaxed);
        EmbeddedStream {
            queue,
            prefetch: usize::from(prefetch.max(1)),
            held: Arc::new(AtomicUsize::new(0)),
            cancelled: AtomicBool::new(false),
        }
    }

    /// The next task, once one is ready and fewer than `prefetch` are unanswered;
    /// `None` once cancelled.
    pub(crate) async fn next(&self) -> Option<Result<(Taken, Ticket)>> {
        loop {
            let changed = self.queue.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.cancelled.load(Ordering::Relaxed) {
                return None;
            }
            let mut nap = MAX_NAP;
            if self.held.load(Ordering::Relaxed) < self.prefetch {
                match self.queue.take().await {
                    Ok(Some(t)) => {
                        self.held.fetch_add(1, Ordering::Relaxed);
                        let ticket = Ticket {
                            queue: self.queue.clone(),
                            seq: t.seq,
                            held: self.held.clone(),
                            answered: false,
                        };
                        return Some(Ok((t, ticket)));
                    }
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                if let Ok(Some(due)) = self.queue.next_due().await {
                    let ms = (due - now_ms()).max(1) as u64;
                    nap = nap.min(Duration::from_millis(ms));
                }
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// Stops new deliveries (those already handed out still need an answer).
    pub(crate) fn cancel(&self) {
        if !self.cancelled.swap(true, Ordering::Relaxed) {
            self.queue.consumers.fetch_sub(1, Ordering::Relaxed);
        }
        self.queue.changed.notify_waiters();
    }
}

impl Drop for EmbeddedStream {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The right and duty to answer for one delivery.
pub(crate) struct Ticket {
    queue: Arc<Queue>,
    seq: i64,
    held: Arc<AtomicUsize>,
    answered: bool,
}

impl Ticket {
    /// Acks (`true`) or requeues (`false`) the task.
    pub(crate) async fn answer(mut self, ack: bool) -> Result<()> {
        self.answered = true;
        let (queue, seq) = (self.queue.clone(), self.seq);
        let r = tokio::task::spawn_blocking(move || queue.answer(seq, Some(ack)))
            .await
            .unwrap_or_else(|e| {
                Err(crate::BusError::NotConfirmed(format!(
                    "the queue task panicked: {e}"
                )))
            });
        // Answered or not, this slot is free again; a failed write leaves the task held
        // in the database, and the next run hands it out again.
        self.held.fetch_sub(1, Ordering::Relaxed);
        self.queue.changed.notify_waiters();
        r
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.held.fetch_sub(1, Ordering::Relaxed);
        // The slot died without answering: a failed delivery, as a closed channel is.
        if let Err(err) = self.queue.answer(self.seq, None) {
            tracing::warn!(%err, "Could not hand an unanswered task back; the next run will.");
        }
    }
}
