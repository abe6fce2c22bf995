//! A hook around every request an HTTP target client (Graph, EWS) sends, so the caller
//! can hold per-mailbox budgets that span all workers.
//!
//! The clients know when they send and what a request carries; the worker knows the
//! budgets (requests per 10 minutes, bytes per 5 minutes, adaptive concurrency) and
//! keeps them in Redis. The gate joins the two without the connectors touching Redis.
//!
//! Invariant: a client calls [`RequestGate::admit`] before each request it sends
//! (retries of a `401` included) and [`RequestGate::done`] once after each answer or
//! transport failure.

use crate::error::ConnectorError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The future [`RequestGate::admit`] returns.
pub type Admit<'a> = Pin<Box<dyn Future<Output = Result<(), ConnectorError>> + Send + 'a>>;

/// How a request ended, as far as budgets care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The service answered with success.
    Ok,
    /// The service said to slow down (429, `ErrorServerBusy`, 503 with `Retry-After`),
    /// for this long.
    Throttled(Duration),
    /// Any other failure.
    Failed,
}

/// Budgets a request must pass before it is sent.
pub trait RequestGate: Send + Sync + fmt::Debug {
    /// Waits until a request whose body is `upload_bytes` long may be sent.
    fn admit(&self, upload_bytes: u64) -> Admit<'_>;
    /// Reports how the request ended.
    fn done(&self, outcome: Outcome);
}

/// Tells the gate how a request ended, once: when dropped, so a request abandoned
/// half-way (its future dropped) still gives its budget back (as `Failed` unless the
/// client set another outcome). Shared by the Graph and EWS clients.
pub(crate) struct Pass<'a> {
    pub(crate) gate: &'a dyn RequestGate,
    pub(crate) outcome: Outcome,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.done(self.outcome);
    }
}

/// A gate that admits everything at once (tests, and the coordinator's few folder calls).
#[derive(Debug, Default, Clone, Copy)]
pub struct Open;

impl RequestGate for Open {
    fn admit(&self, _upload_bytes: u64) -> Admit<'_> {
        Box::pin(async { Ok(()) })
    }

    fn done(&self, _outcome: Outcome) {}
}
