//! Retry intent, carried by every boundary's error type.
//!
//! Connectors classify their own failures; the worker's `retry` module is the one
//! place that decides what to do with a class.

use std::time::Duration;

/// What a failed operation asks of whoever retries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed if tried again after a backoff (network drop, server restart).
    Transient,
    /// The peer asked us to slow down; wait at least this long before trying again.
    Throttled(Duration),
    /// Will fail the same way every time (bad password, message rejected as too large).
    Permanent,
}

impl ErrorClass {
    /// A short, closed-set label for metrics (`mailhaul_errors_total{class}`).
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Throttled(_) => "throttled",
            ErrorClass::Permanent => "permanent",
        }
    }
}
