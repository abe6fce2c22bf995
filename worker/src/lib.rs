//! `mailhaul-worker`: consumes folder tasks and copies their slices.
//!
//! Workers are stateless and horizontally scaled: everything they know comes from the
//! task, their copy of the manifest (for credentials, which never travel on the bus),
//! and the ledger. A task is acked only after its slice is copied and recorded; a crash
//! at any point means redelivery, and the ledger makes the redo exactly-once in effect.
//!
//! The same loop runs in `mailhaul migrate`'s own process in the embedded mode
//! ([`run_in_process`]), on the embedded queue and ledger: the slice code does not know
//! which bus and ledger it runs on.

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
pub use runner::{WorkerConfig, run, run_in_process};
pub use slice::{BatchLimits, SliceError, SliceReport};
