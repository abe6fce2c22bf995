//! `mailhaul`: the user's command line — validate a manifest, run a migration pass and
//! follow it, show status.
//!
//! The coordinator plans and publishes; workers copy — separate `mailhaul-worker`
//! processes in the distributed mode, or slots in this process in the embedded mode
//! (see [`engine`]). It holds no state of its own: everything it knows lives in the
//! ledger, so it can be stopped and run again at any time (`migrate` again is a delta
//! pass; `status` reads what is there). The one thing it keeps beside the manifest is
//! the ledger's identity ([`identity`]), so a ledger that lost its data is noticed.

pub mod cli;
pub mod discover;
pub mod engine;
pub mod follow;
pub mod identity;
pub mod metrics;
pub mod migrate;
pub mod plan;
pub mod plan_paths;
pub mod preflight;
pub mod report;
pub mod retry;
pub mod secrets;
pub mod status;
pub mod survey;
pub mod survey_pst;
pub mod verify;
