//! Faults a test injects to see how a client copes: throttling, service errors before
//! and after a write is committed, expired tokens, EWS back-off.
//!
//! Invariants: faults queue in injection order and apply to the next requests they
//! match (Graph ones to authenticated Graph mailbox requests, EWS ones to EWS
//! requests); each fires `count` times and is then gone. `ExpireTokens` acts at
//! injection and never queues.

use std::collections::VecDeque;
use std::time::Duration;

/// A fault to inject with [`super::Emulator::inject`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next `count` Graph requests get `429 ApplicationThrottled` with this
    /// `Retry-After` (whole seconds), without being executed.
    Throttle429 {
        /// How many requests.
        count: u32,
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// The next `count` Graph requests get `503` without being executed, with a
    /// `Retry-After` header if given.
    Fail503 {
        /// How many requests.
        count: u32,
        /// Sent as `Retry-After` when present.
        retry_after: Option<Duration>,
    },
    /// The next `count` Graph requests get `504 Gateway Timeout` without being executed.
    Fail504 {
        /// How many requests.
        count: u32,
    },
    /// The next `count` Graph writes (POST/PATCH/PUT/DELETE) that succeed are committed
    /// (the item is stored) but answered with `503`, as when the front end times out
    /// after the mailbox server did the work: clients must de-duplicate before re-posting.
    Fail503AfterCommit {
        /// How many writes.
        count: u32,
    },
    /// Every token issued so far is expired from now on (`401 InvalidAuthenticationToken`).
    ExpireTokens,
    /// The next `count` EWS requests get HTTP 500 with the `ErrorServerBusy` SOAP fault
    /// carrying `BackOffMilliseconds`.
    EwsServerBusy {
        /// How many requests.
        count: u32,
        /// Sent as `BackOffMilliseconds`.
        back_off_ms: u64,
    },
    /// The next `count` EWS requests get HTTP 503 (requests queued in IIS), with a
    /// `Retry-After` header if given.
    Ews503 {
        /// How many requests.
        count: u32,
        /// Sent as `Retry-After` when present.
        retry_after: Option<Duration>,
    },
    /// Like [`Fault::Throttle429`], with `Retry-After` given as an HTTP date
    /// (RFC 9110 §10.2.3 allows either form) that far in the future.
    Throttle429HttpDate {
        /// How many requests.
        count: u32,
        /// How far ahead the date is (whole seconds).
        retry_after: Duration,
    },
    /// The next `count` Graph PATCH requests get `429` (as the state PATCH after an
    /// `importMime` can), without being executed.
    ThrottlePatch429 {
        /// How many PATCH requests.
        count: u32,
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// Every upload session open now is expired from now on: its URL answers `404
    /// ErrorItemNotFound`, or `401` if `unauthorized`. Acts at injection.
    ExpireUploadSessions {
        /// Answer `401` instead of `404`.
        unauthorized: bool,
    },
    /// The next EWS `CreateItem` with more than `after_items` items stores the first
    /// `after_items`, answers `ErrorServerBusy` (with `BackOffMilliseconds` in its
    /// `MessageXml`) for the next and `ErrorBatchProcessingStopped` for the rest, inside
    /// an HTTP 200, as Exchange does when the budget runs out mid-batch.
    EwsItemServerBusy {
        /// Items that succeed before it.
        after_items: u32,
        /// Sent as `BackOffMilliseconds`.
        back_off_ms: u64,
    },
    /// The next EWS `CreateItem` with more than `after_items` items stores the first
    /// `after_items` and then fails whole with an HTTP 500 SOAP fault
    /// (`ErrorInternalServerTransientError`): a partial commit the client never hears
    /// about.
    EwsFaultAfterItems {
        /// Items stored before the fault.
        after_items: u32,
    },
    /// The next `count` EWS items get `ErrorItemSave` and are not stored.
    EwsItemSave {
        /// How many items.
        count: u32,
    },
    /// The next `count` EWS requests get a bare HTTP `413` from IIS before Exchange
    /// sees them.
    Ews413 {
        /// How many requests.
        count: u32,
    },
}

/// What a request is, for matching faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKind {
    GraphRead,
    GraphWrite,
    GraphPatch,
    Ews,
}

/// What the pipeline must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Throttle(Duration),
    ThrottleHttpDate(Duration),
    Fail503(Option<Duration>),
    Fail504,
    Fail503AfterCommit,
    EwsServerBusy(u64),
    Ews503(Option<Duration>),
    Ews413,
    /// Per-item busy after this many items, with this back-off.
    EwsItemServerBusy(u32, u64),
    /// Fault after this many items were stored.
    EwsFaultAfterItems(u32),
    EwsItemSave,
}

/// Pending faults.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    pending: VecDeque<(Fault, u32)>,
}

impl FaultQueue {
    /// Queues a fault (`ExpireTokens` is handled by the caller and ignored here).
    pub(crate) fn push(&mut self, fault: Fault) {
        let count = match &fault {
            Fault::Throttle429 { count, .. }
            | Fault::Fail503 { count, .. }
            | Fault::Fail504 { count }
            | Fault::Fail503AfterCommit { count }
            | Fault::EwsServerBusy { count, .. }
            | Fault::Ews503 { count, .. }
            | Fault::Throttle429HttpDate { count, .. }
            | Fault::ThrottlePatch429 { count, .. }
            | Fault::EwsItemSave { count }
            | Fault::Ews413 { count } => *count,
            Fault::EwsItemServerBusy { .. } | Fault::EwsFaultAfterItems { .. } => 1,
            Fault::ExpireTokens | Fault::ExpireUploadSessions { .. } => 0,
        };
        if count > 0 {
            self.pending.push_back((fault, count));
        }
    }

    /// Takes one firing of the first fault that applies to a request of `kind` before
    /// it runs. After-commit faults are taken separately with [`Self::take_after_commit`].
    pub(crate) fn take_before(&mut self, kind: RequestKind) -> Option<Action> {
        let graph = kind != RequestKind::Ews;
        self.take(|fault| match (fault, kind) {
            (Fault::Throttle429 { retry_after, .. }, _) if graph => {
                Some(Action::Throttle(*retry_after))
            }
            (Fault::Throttle429HttpDate { retry_after, .. }, _) if graph => {
                Some(Action::ThrottleHttpDate(*retry_after))
            }
            (Fault::ThrottlePatch429 { retry_after, .. }, RequestKind::GraphPatch) => {
                Some(Action::Throttle(*retry_after))
            }
            (Fault::Fail503 { retry_after, .. }, _) if graph => Some(Action::Fail503(*retry_after)),
            (Fault::Fail504 { .. }, _) if graph => Some(Action::Fail504),
            (Fault::Ews413 { .. }, RequestKind::Ews) => Some(Action::Ews413),
            (Fault::EwsServerBusy { back_off_ms, .. }, RequestKind::Ews) => {
                Some(Action::EwsServerBusy(*back_off_ms))
            }
            (Fault::Ews503 { retry_after, .. }, RequestKind::Ews) => {
                Some(Action::Ews503(*retry_after))
            }
            _ => None,
        })
    }

    /// Takes the batch fault for an EWS `CreateItem` of `items` items, if one applies.
    pub(crate) fn take_batch(&mut self, items: usize) -> Option<Action> {
        self.take(|fault| match fault {
            Fault::EwsItemServerBusy {
                after_items,
                back_off_ms,
            } if (*after_items as usize) < items => {
                Some(Action::EwsItemServerBusy(*after_items, *back_off_ms))
            }
            Fault::EwsFaultAfterItems { after_items } if (*after_items as usize) < items => {
                Some(Action::EwsFaultAfterItems(*after_items))
            }
            _ => None,
        })
    }

    /// Takes one firing of a pending `EwsItemSave`, for one EWS item.
    pub(crate) fn take_item_save(&mut self) -> bool {
        self.take(|fault| matches!(fault, Fault::EwsItemSave { .. }).then_some(Action::EwsItemSave))
            .is_some()
    }

    /// Takes one firing of a pending after-commit fault, for a write that succeeded.
    pub(crate) fn take_after_commit(&mut self) -> Option<Action> {
        self.take(|fault| {
            matches!(fault, Fault::Fail503AfterCommit { .. }).then_some(Action::Fail503AfterCommit)
        })
    }

    fn take(&mut self, matches: impl Fn(&Fault) -> Option<Action>) -> Option<Action> {
        let index = self
            .pending
            .iter()
            .position(|(f, _)| matches(f).is_some())?;
        let (fault, left) = self.pending.get_mut(index)?;
        let action = matches(fault);
        *left -= 1;
        if *left == 0 {
            self.pending.remove(index);
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_count_times_for_matching_requests_only() {
        let mut q = FaultQueue::default();
        q.push(Fault::Fail503AfterCommit { count: 1 });
        q.push(Fault::Throttle429 {
            count: 2,
            retry_after: Duration::from_secs(3),
        });
        q.push(Fault::EwsServerBusy {
            count: 1,
            back_off_ms: 500,
        });
        assert_eq!(
            q.take_before(RequestKind::Ews),
            Some(Action::EwsServerBusy(500))
        );
        assert_eq!(q.take_before(RequestKind::Ews), None);
        let throttle = Some(Action::Throttle(Duration::from_secs(3)));
        assert_eq!(q.take_before(RequestKind::GraphRead), throttle);
        assert_eq!(q.take_before(RequestKind::GraphWrite), throttle);
        assert_eq!(q.take_before(RequestKind::GraphWrite), None);
        assert_eq!(q.take_after_commit(), Some(Action::Fail503AfterCommit));
        assert_eq!(q.take_after_commit(), None);
    }
}
