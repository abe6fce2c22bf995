//! What Redis does to keep the ledger across a restart, read at start so an admin hears
//! about a ledger that a restart would empty before it happens.
//!
//! The ledger needs the append-only file (`appendonly yes`): with `appendfsync everysec`
//! a crash of Redis itself loses nothing acknowledged (the AOF is written before the
//! reply), a crash of the machine up to about a second; `always` loses nothing either
//! way. RDB snapshots alone lose everything since the last snapshot. A ledger that lost
//! records is detected by its epoch only when it lost all of them, so a partial loss
//! after a machine crash can mean copies on the target that no record knows of.

use crate::{RedisLedger, Result};
use std::collections::HashMap;

/// Redis's persistence settings, as `CONFIG GET` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// `appendonly`: `yes` or `no`.
    pub appendonly: String,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: String,
    /// `save`: the RDB snapshot schedule (empty: none).
    pub save: String,
}

impl Persistence {
    /// What to tell the admin about these settings; `None` when they keep the ledger.
    pub fn warning(&self) -> Option<String> {
        if !self.appendonly.eq_ignore_ascii_case("yes") {
            let snapshots = if self.save.trim().is_empty() {
                "and no RDB snapshots: a restart empties the ledger".to_owned()
            } else {
                format!(
                    "only RDB snapshots (save {:?}): a restart loses what was recorded since the last one",
                    self.save
                )
            };
            return Some(format!(
                "Redis runs without its append-only file (appendonly no) {snapshots}. \
                 mailhaul would notice an emptied ledger and stop, but a half-lost one can \
                 mean messages copied twice. Set `appendonly yes` and `appendfsync everysec` \
                 (or `always`) in redis.conf, or `CONFIG SET appendonly yes` now."
            ));
        }
        if self.appendfsync.eq_ignore_ascii_case("no") {
            return Some(
                "Redis writes its append-only file without fsync (appendfsync no): a crash of \
                 the machine can lose many seconds of the ledger. Use `appendfsync everysec` \
                 (or `always`)."
                    .to_owned(),
            );
        }
        None
    }
}

impl RedisLedger {
    /// Redis's persistence settings; `None` when `CONFIG GET` is not allowed (managed
    /// Redis services often rename or forbid it).
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn persistence(&self) -> Result<Option<Persistence>> {
        let r: redis::RedisResult<HashMap<String, String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut self.con())
            .await;
        let Ok(aof) = r else { return Ok(None) };
        let save: HashMap<String, String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query_async(&mut self.con())
            .await
            .unwrap_or_default();
        Ok(Some(Persistence {
            appendonly: aof.get("appendonly").cloned().unwrap_or_default(),
            appendfsync: aof.get("appendfsync").cloned().unwrap_or_default(),
            save: save.get("save").cloned().unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(aof: &str, fsync: &str, save: &str) -> Persistence {
        Persistence {
            appendonly: aof.into(),
            appendfsync: fsync.into(),
            save: save.into(),
        }
    }

    #[test]
    fn warns_unless_the_aof_is_on_and_synced() {
        assert_eq!(p("yes", "everysec", "").warning(), None);
        assert_eq!(p("yes", "always", "3600 1").warning(), None);
        let w = p("no", "everysec", "").warning().expect("warns");
        assert!(w.contains("appendonly yes") && w.contains("empties"), "{w}");
        let w = p("no", "everysec", "3600 1").warning().expect("warns");
        assert!(w.contains("since the last one"), "{w}");
        assert!(p("yes", "no", "").warning().is_some());
    }
}
