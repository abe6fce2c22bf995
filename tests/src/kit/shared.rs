//! RabbitMQ and Redis shared by all tests of one test process.
//!
//! `cargo test` runs one process per test binary with its tests as threads; RabbitMQ
//! takes seconds to start, so each process starts one RabbitMQ and one Redis on first
//! use (both at once, on free ports, with a private epmd and node name) and every test
//! isolates itself with [`super::unique_namespace`]. The servers are stopped by the
//! reaper when the process exits (statics are never dropped). When
//! `MAILHAUL_TEST_AMQP_URL` / `MAILHAUL_TEST_REDIS_URL` are set, those servers are used
//! and nothing is started (set `MAILHAUL_TEST_RABBITMQ_PROMETHEUS_URL` too for the tests
//! that scrape RabbitMQ's Prometheus plugin).

use std::sync::OnceLock;

use super::{rabbitmq, redis};

/// Env var naming an AMQP URL to use instead of starting RabbitMQ.
pub const AMQP_URL_ENV: &str = "MAILHAUL_TEST_AMQP_URL";
/// Env var naming the base URL of the Prometheus plugin of the RabbitMQ at
/// [`AMQP_URL_ENV`] (e.g. `http://127.0.0.1:15692`).
pub const RABBITMQ_PROMETHEUS_URL_ENV: &str = "MAILHAUL_TEST_RABBITMQ_PROMETHEUS_URL";
/// Env var naming a Redis URL to use instead of starting Redis.
pub const REDIS_URL_ENV: &str = "MAILHAUL_TEST_REDIS_URL";

/// Where this process's shared servers are.
#[derive(Debug, Clone)]
pub struct Shared {
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` (or `MAILHAUL_TEST_AMQP_URL`).
    pub amqp_url: String,
    /// `redis://127.0.0.1:<port>/` (or `MAILHAUL_TEST_REDIS_URL`).
    pub redis_url: String,
    /// `http://127.0.0.1:<port>`: RabbitMQ's Prometheus plugin (or
    /// `MAILHAUL_TEST_RABBITMQ_PROMETHEUS_URL`; `None` when a reused RabbitMQ has none).
    pub rabbitmq_prometheus_url: Option<String>,
}

/// RabbitMQ and Redis for this test process, started on first use.
///
/// Blocks until both are ready (RabbitMQ: usually 5-10 s, at most 60 s). Safe to call
/// from any thread, also from inside a tokio runtime (it uses no async I/O), and cheap
/// after the first call.
///
/// # Panics
/// When a server is not installed (the message names `scripts/install-deps`) or does
/// not come up (the message holds its log tail). Every later call panics with the same
/// message instead of trying again.
pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    match SHARED.get_or_init(|| start().map_err(|e| format!("{e:#}"))) {
        Ok(shared) => shared,
        Err(e) => panic!("the shared test servers (RabbitMQ, Redis) are not available: {e}"),
    }
}

fn start() -> anyhow::Result<Shared> {
    let amqp_env = std::env::var(AMQP_URL_ENV).ok().filter(|u| !u.is_empty());
    let redis_env = std::env::var(REDIS_URL_ENV).ok().filter(|u| !u.is_empty());
    // Start both at once: RabbitMQ's seconds hide Redis's milliseconds.
    let (amqp, redis) = std::thread::scope(|s| {
        let amqp = s.spawn(|| match amqp_env {
            Some(url) => Ok((
                url,
                std::env::var(RABBITMQ_PROMETHEUS_URL_ENV)
                    .ok()
                    .filter(|u| !u.is_empty()),
            )),
            None => rabbitmq::start().map(|(amqp, prom)| (amqp, Some(prom))),
        });
        let redis = match redis_env {
            Some(url) => Ok(url),
            None => redis::start(),
        };
        (
            amqp.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            redis,
        )
    });
    let (amqp_url, rabbitmq_prometheus_url) = amqp?;
    Ok(Shared {
        amqp_url,
        redis_url: redis?,
        rabbitmq_prometheus_url,
    })
}
