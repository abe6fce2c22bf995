//! Queue names and arguments. Declaring the same queue with different arguments makes
//! RabbitMQ close the channel (PRECONDITION_FAILED), so every argument lives here, once.
//!
//! - `<ns>.tasks`: durable quorum queue; `x-delivery-limit` dead-letters a task that
//!   keeps killing its workers; `x-dead-letter-exchange` routes it to `<ns>.dead`.
//! - `<ns>.retry.<tier>`: classic durable queues with a fixed message TTL that
//!   dead-letter back into `<ns>.tasks`: a delayed requeue without a broker plugin. Fixed
//!   tiers avoid head-of-line blocking that per-message TTLs would cause.
//! - `<ns>.dead`: durable quorum queue, no delivery limit: failures wait for a human.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::time::Duration;

/// How many times the broker hands out a task whose worker died before it gives up.
pub const DELIVERY_LIMIT: i64 = 6;

/// Retry delay tiers. A delay is rounded up to the next tier (a server's Retry-After is a
/// floor), so the tiers are close enough that rounding costs at most a factor of 2.5:
/// 43 s waits 60 s, not 300 s.
pub const RETRY_TIERS: [Duration; 9] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
];

/// Names of one namespace's queues.
#[derive(Debug, Clone)]
pub struct Topology {
    ns: String,
}

impl Topology {
    /// The topology of namespace `ns`.
    pub fn new(ns: impl Into<String>) -> Self {
        Topology { ns: ns.into() }
    }

    /// The work queue.
    pub fn tasks(&self) -> String {
        format!("{}.tasks", self.ns)
    }

    /// The dead-letter queue.
    pub fn dead(&self) -> String {
        format!("{}.dead", self.ns)
    }

    /// The dead-letter exchange.
    pub fn dlx(&self) -> String {
        format!("{}.dlx", self.ns)
    }

    /// The retry queue for a tier.
    pub fn retry(&self, tier: Duration) -> String {
        format!("{}.retry.{}s", self.ns, tier.as_secs())
    }

    /// The smallest tier that waits at least `delay` (the largest if none does).
    pub fn tier_for(delay: Duration) -> Duration {
        RETRY_TIERS
            .iter()
            .copied()
            .find(|t| *t >= delay)
            .unwrap_or(RETRY_TIERS[RETRY_TIERS.len() - 1])
    }

    pub(crate) fn tasks_args(&self) -> FieldTable {
        let mut a = FieldTable::default();
        a.insert(sh("x-queue-type"), long("quorum"));
        a.insert(
            sh("x-delivery-limit"),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        a.insert(sh("x-dead-letter-exchange"), long(&self.dlx()));
        a.insert(sh("x-dead-letter-routing-key"), long(&self.dead()));
        a
    }

    pub(crate) fn dead_args(&self) -> FieldTable {
        let mut a = FieldTable::default();
        a.insert(sh("x-queue-type"), long("quorum"));
        a
    }

    pub(crate) fn retry_args(&self, tier: Duration) -> FieldTable {
        let mut a = FieldTable::default();
        a.insert(
            sh("x-message-ttl"),
            AMQPValue::LongLongInt(tier.as_millis() as i64),
        );
        a.insert(sh("x-dead-letter-exchange"), long(""));
        a.insert(sh("x-dead-letter-routing-key"), long(&self.tasks()));
        a
    }
}

pub(crate) fn sh(s: &str) -> ShortString {
    s.into()
}

pub(crate) fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_smallest_tier_that_waits_long_enough() {
        for (delay, tier) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 5),
            (29, 30),
            (31, 60),
            (43, 60),
            (61, 120),
            (121, 300),
            (10_000, 300),
        ] {
            assert_eq!(
                Topology::tier_for(Duration::from_secs(delay)),
                Duration::from_secs(tier),
                "{delay}"
            );
        }
    }
}
