//! `mailhaul-worker`: consumes folder tasks and copies their slices.
//!
//! Workers are stateless and horizontally scaled: everything they know comes from the
//! task, their copy of the manifest (for credentials, which never travel on the bus),
//! and the ledger. A task is acked only after its slice is copied and recorded; a crash
//! at any point means redelivery, and the ledger makes the redo exactly-once in effect.

pub mod metrics;
pub mod retry;

mod connect;
mod failpoint;
mod gate;
mod recover;
mod runner;
mod slice;
mod source;

pub use connect::Side;
pub use runner::{WorkerConfig, run};
pub use slice::{BatchLimits, SliceError, SliceReport};
