//! A Redis connection that waits out outages instead of failing.
//!
//! Redis restarts (a deploy, a failover, a crash and AOF replay) must not fail a pass,
//! a slice or a follow loop: every command that meets an outage — the connection
//! refused, dropped or timed out, or Redis still loading its data set — is tried again
//! with backoff until Redis answers. The first failure of an outage is logged once, with
//! what we wait for; the first success after it says how long it lasted. Errors that
//! are not outages (a script error, a wrong type) are returned at once.
//!
//! Invariant: a command retried after an outage may have run once already (its reply
//! was lost), so every ledger write is written to be idempotent: scripts check before
//! they add (`HSETNX`, `SADD` guards, the claim's owner), counters move only with a
//! guard's first success.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest pause between two tries during an outage.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Whether `e` means "Redis is not there right now" rather than "Redis said no".
pub(crate) fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
            )
        )
}

/// Shared by every clone of one ledger handle: whether an outage is going on.
#[derive(Debug)]
pub(crate) struct Watch {
    /// `host:port` (never the URL: it may hold a password).
    server: String,
    since: Mutex<Option<Instant>>,
}

impl Watch {
    pub(crate) fn new(server: String) -> Arc<Watch> {
        Arc::new(Watch {
            server,
            since: Mutex::new(None),
        })
    }

    fn down(&self, err: &RedisError) {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
            tracing::warn!(
                server = %self.server,
                %err,
                "Redis (the ledger) is not answering; waiting for it to come back. Work in hand waits too; nothing is lost."
            );
        }
    }

    fn up(&self) {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = since.take() {
            tracing::warn!(server = %self.server, after = ?t.elapsed(), "Redis (the ledger) is back; going on.");
        }
    }

    /// How long the current outage has lasted, if one is going on.
    pub(crate) fn outage(&self) -> Option<Duration> {
        self.since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }
}

/// A [`ConnectionManager`] whose commands wait out outages (see the module docs).
#[derive(Clone)]
pub(crate) struct Patient {
    pub(crate) con: ConnectionManager,
    pub(crate) watch: Arc<Watch>,
}

impl Patient {
    async fn pause(delay: &mut Duration) {
        let jittered = rand::random_range(*delay / 2..=*delay);
        tokio::time::sleep(jittered).await;
        *delay = (*delay * 2).min(MAX_DELAY);
    }
}

/// Runs `$call` (a future of a `RedisResult`) until it is answered: outages are waited
/// out with backoff, anything else (success or a refusal) is returned.
macro_rules! patiently {
    ($self:ident, $call:expr) => {{
        let mut delay = Duration::from_millis(100);
        loop {
            match $call.await {
                Err(e) if is_outage(&e) => {
                    $self.watch.down(&e);
                    Patient::pause(&mut delay).await;
                }
                other => {
                    $self.watch.up();
                    return other;
                }
            }
        }
    }};
}

impl ConnectionLike for Patient {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { patiently!(self, self.con.req_packed_command(cmd)) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(
            async move { patiently!(self, self.con.req_packed_commands(pipeline, offset, count)) },
        )
    }

    fn get_db(&self) -> i64 {
        self.con.get_db()
    }
}

/// `host:port` of a Redis URL, for logs (the URL itself may carry a password).
pub(crate) fn server_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_named_without_credentials() {
        for (url, want) in [
            ("redis://127.0.0.1:6379/", "127.0.0.1:6379"),
            (
                "rediss://user:p%40ss@redis.example:6380/2",
                "redis.example:6380",
            ),
            ("redis://:secret@h:1?protocol=resp3", "h:1"),
        ] {
            assert_eq!(server_of(url), want, "{url}");
        }
    }

    #[test]
    fn outages_are_told_from_refusals() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_outage(&io));
        let loading =
            RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        assert!(is_outage(&loading));
        let wrong = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!is_outage(&wrong));
    }
}
