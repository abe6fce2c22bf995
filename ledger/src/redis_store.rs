//! The Redis connection behind [`crate::Ledger::Redis`]: one multiplexed connection,
//! reconnected by the connection manager. The operations live beside the concepts they
//! serve (`records`, `lease`, `permits`, `registry`); their atomic parts are the Lua
//! scripts of `scripts`.

use crate::Result;
use mailhaul_proto::ledger::Keys;
use redis::aio::ConnectionManager;

/// The ledger in Redis; cheap to clone (one multiplexed connection underneath).
#[derive(Clone)]
pub struct RedisLedger {
    con: ConnectionManager,
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
    ///
    /// # Errors
    /// The URL is malformed or Redis cannot be reached.
    pub async fn connect(url: &str, ns: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let con = client.get_connection_manager().await?;
        Ok(RedisLedger {
            con,
            keys: Keys::new(ns),
        })
    }

    pub(crate) fn con(&self) -> ConnectionManager {
        self.con.clone()
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
