//! The Redis connection behind [`crate::Ledger::Redis`]: one multiplexed connection,
//! reconnected by the connection manager, whose commands wait out outages (`patient`). The operations live beside the concepts they
//! serve (`records`, `lease`, `permits`, `registry`); their atomic parts are the Lua
//! scripts of `scripts`.

use crate::Result;
use crate::patient::{self, Patient};
use mailhaul_proto::ledger::Keys;
use std::time::Duration;

/// The ledger in Redis; cheap to clone (one multiplexed connection underneath).
#[derive(Clone)]
pub struct RedisLedger {
    con: Patient,
    pub(crate) keys: Keys,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedger")
            .field("namespace", &self.keys.namespace())
            .finish()
    }
}

impl RedisLedger {
    /// Connects to Redis at `url` (`redis://` or `rediss://`) under namespace `ns`.
    /// Once connected, outages are waited out (see `patient`).
    ///
    /// # Errors
    /// The URL is malformed or Redis cannot be reached now.
    pub async fn connect(url: &str, ns: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        // Lua scripts over many keys and a busy 2-core host can take longer than the
        // crate's 500 ms default; a command cut off by a timeout is retried.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let con = client.get_connection_manager_with_config(config).await?;
        Ok(RedisLedger {
            con: Patient {
                con,
                watch: patient::Watch::new(patient::server_of(url)),
            },
            keys: Keys::new(ns),
        })
    }

    pub(crate) fn con(&self) -> Patient {
        self.con.clone()
    }

    /// How long Redis has not been answering, while an outage goes on.
    pub fn outage(&self) -> Option<Duration> {
        self.con.watch.outage()
    }

    /// Bytes Redis uses for one key (`MEMORY USAGE`); for the ledger-size benchmark.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn memory_usage(&self, key: &str) -> Result<u64> {
        let v: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut self.con())
            .await?;
        Ok(v.unwrap_or(0))
    }
}
