//! The coordinator's Prometheus metrics, declared in one place, and the `/metrics` and
//! `/healthz` endpoints `mailhaul migrate --metrics-addr` serves while it follows a pass.
//!
//! One process follows one migration, so no metric carries a migration label (Prometheus
//! tells processes apart by `instance`). Labels come from closed sets only: the mailbox
//! states and the queue kinds; every combination exists from the start (at 0), so
//! dashboards and alerts see a series even before anything happened.
//!
//! [`serving`] runs a future with the metrics in scope (a tokio task-local: `follow`
//! reads them through [`current`]), and after it keeps serving for `--metrics-linger-secs`
//! so a scrape can catch the final values.
//!
//! In the embedded mode the copying slots run in this process, and their metrics (the
//! ones `mailhaul-worker --metrics-addr` serves: messages and bytes migrated, errors,
//! throttling, upload times) are served on the same endpoint, so one scrape job and the
//! same dashboards serve both modes.

use mailhaul_ledger::PassProgress;
use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `migrate` flags for metrics.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus `/metrics` and `/healthz` here while following the pass
    /// (e.g. 0.0.0.0:9465); off when unset.
    #[arg(long, env = "MAILHAUL_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// After the pass, keep serving this many seconds so a scrape catches the final values.
    #[arg(long, env = "MAILHAUL_METRICS_LINGER_SECS", default_value_t = 0)]
    pub metrics_linger_secs: u64,
}

/// A queue of the namespace, as the `queue` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// `<ns>.tasks`: ready to be handed out.
    Tasks,
    /// `<ns>.retry.<tier>`: waiting out a delay before going back to `tasks`.
    Retry,
    /// `<ns>.dead`: given up, waiting for a human.
    Dead,
}

impl Queue {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Queue::Tasks => "tasks",
            Queue::Retry => "retry",
            Queue::Dead => "dead",
        }
    }
}

/// Every metric the coordinator exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    messages_planned: IntGauge,
    messages_done: IntGauge,
    messages_failed: IntGauge,
    bytes_planned: IntGauge,
    bytes_done: IntGauge,
    mailboxes: IntGaugeVec,
    queue: IntGaugeVec,
    /// The in-process copying slots' metrics (embedded mode), once they run.
    copying: std::sync::Arc<std::sync::OnceLock<mailhaul_worker::metrics::Metrics>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Creates and registers the metrics; the start time is now.
    pub fn new() -> Self {
        let registry = Registry::new();
        let register = |c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .expect("each metric is registered once");
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("metric names are valid");
            register(Box::new(g.clone()));
            g
        };
        let gauge_vec = |name: &str, help: &str, label: &str, values: &[&str]| {
            let g =
                IntGaugeVec::new(Opts::new(name, help), &[label]).expect("metric names are valid");
            register(Box::new(g.clone()));
            for v in values {
                g.with_label_values(&[*v]).set(0);
            }
            g
        };
        let messages_planned = gauge(
            "mailhaul_migration_messages_planned",
            "Messages this pass planned to copy.",
        );
        let messages_done = gauge(
            "mailhaul_migration_messages_done",
            "Messages this pass copied.",
        );
        let messages_failed = gauge(
            "mailhaul_migration_messages_failed",
            "Messages this pass could not copy.",
        );
        let bytes_planned = gauge(
            "mailhaul_migration_bytes_planned",
            "Message bytes this pass planned to copy.",
        );
        let bytes_done = gauge(
            "mailhaul_migration_bytes_done",
            "Message bytes this pass copied.",
        );
        let mailboxes = gauge_vec(
            "mailhaul_migration_mailboxes",
            "Mailboxes of this pass (planned), and those finished without (done) or with problems (failed).",
            "state",
            &["planned", "done", "failed"],
        );
        let started = Gauge::new(
            "mailhaul_migration_started_timestamp_seconds",
            "When this process started the pass (Unix time).",
        )
        .expect("metric names are valid");
        register(Box::new(started.clone()));
        started.set(unix_now());
        let queue = gauge_vec(
            "mailhaul_queue_messages",
            "Messages waiting in the namespace's queues.",
            "queue",
            &[Queue::Tasks, Queue::Retry, Queue::Dead].map(Queue::label),
        );
        Metrics {
            registry,
            messages_planned,
            messages_done,
            messages_failed,
            bytes_planned,
            bytes_done,
            mailboxes,
            queue,
            copying: std::sync::Arc::default(),
        }
    }

    /// Sets the progress gauges from the ledger's view of the pass.
    ///
    /// A mailbox counts as done once all its tasks finished with no message failed, as
    /// failed once finished with failed messages or when it could not be planned at all;
    /// so done + failed reaches planned when the pass ends.
    pub fn observe(&self, p: &PassProgress) {
        let sum = |f: fn(&mailhaul_ledger::MailboxProgress) -> u64| -> i64 {
            gauge_value(p.mailboxes.iter().map(f).sum())
        };
        self.messages_planned.set(sum(|m| m.planned_msgs));
        self.messages_done.set(sum(|m| m.copied_msgs));
        self.messages_failed.set(sum(|m| m.failed_msgs));
        self.bytes_planned.set(sum(|m| m.planned_bytes));
        self.bytes_done.set(sum(|m| m.copied_bytes));
        let (mut done, mut failed) = (0u64, 0u64);
        for m in &p.mailboxes {
            let finished = m.tasks_done >= m.tasks;
            if m.error.is_some() || (finished && m.failed_msgs > 0) {
                failed += 1;
            } else if finished {
                done += 1;
            }
        }
        let state = |s: &str, n: u64| self.mailboxes.with_label_values(&[s]).set(gauge_value(n));
        state("planned", p.mailboxes.len() as u64);
        state("done", done);
        state("failed", failed);
    }

    /// Sets how many messages wait in `queue`.
    pub fn set_queue(&self, queue: Queue, messages: u64) {
        self.queue
            .with_label_values(&[queue.label()])
            .set(gauge_value(messages));
    }

    /// Serves the metrics of copying slots running in this process (embedded mode) beside
    /// the coordinator's own; the first call wins.
    pub fn include_copying(&self, worker: mailhaul_worker::metrics::Metrics) {
        let _ = self.copying.set(worker);
    }

    /// The Prometheus text exposition of every metric (the in-process slots' too).
    pub fn render(&self) -> String {
        let mut text = mailhaul_bus::metrics_http::render(&self.registry);
        if let Some(worker) = self.copying.get() {
            text.push_str(&worker.render());
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

tokio::task_local! {
    /// The metrics of the pass being followed, set by [`serving`].
    static FOLLOWED: Metrics;
}

/// The metrics `follow` updates, when the pass runs inside [`serving`] with an address.
pub fn current() -> Option<Metrics> {
    FOLLOWED.try_with(Metrics::clone).ok()
}

/// Runs `work` (a `migrate` pass) while serving the metrics on `args.metrics_addr`, then
/// keeps serving for `args.metrics_linger_secs`. Without an address, just runs `work`.
///
/// # Errors
/// The address cannot be bound (before `work` starts, so nothing is half done), or
/// `work`'s own error.
pub async fn serving<T>(
    args: &MetricsArgs,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let Some(addr) = args.metrics_addr else {
        return work.await;
    };
    let metrics = Metrics::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let bound = serve(metrics.clone(), addr, stop.clone()).await.map_err(|err| {
        anyhow::anyhow!(
            "cannot serve metrics on --metrics-addr {addr}: {err}; choose a free address or unset MAILHAUL_METRICS_ADDR"
        )
    })?;
    tracing::info!(addr = %bound, "Serving /metrics and /healthz.");
    let out = FOLLOWED.scope(metrics, work).await;
    // A pass ended by SIGTERM or Ctrl-C (embedded mode handles them) does not linger.
    if args.metrics_linger_secs > 0 && !crate::engine::interrupted() {
        tracing::info!(
            secs = args.metrics_linger_secs,
            "Pass over; serving the final metrics a while longer."
        );
        // Ctrl-C or SIGTERM ends the wait: the pass is over, nothing is left to drain.
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.metrics_linger_secs)) => {}
            () = crate::engine::wait_for_signal() => {}
        }
    }
    stop.cancel();
    out
}

/// Serves `/metrics` and `/healthz` on `addr` until `shutdown` fires; returns the bound
/// address (useful with port 0).
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    metrics: Metrics,
    addr: SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<SocketAddr> {
    mailhaul_bus::metrics_http::serve(move || metrics.render(), addr, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhaul_ledger::MailboxProgress;
    use mailhaul_proto::MailboxId;

    fn mailbox(name: &str, tasks: (u64, u64), msgs: (u64, u64, u64)) -> MailboxProgress {
        MailboxProgress {
            mailbox: MailboxId(name.to_owned()),
            planned_msgs: msgs.0,
            planned_bytes: msgs.0 * 100,
            copied_msgs: msgs.1,
            copied_bytes: msgs.1 * 100,
            failed_msgs: msgs.2,
            tasks: tasks.0,
            tasks_done: tasks.1,
            ..Default::default()
        }
    }

    fn line<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    }

    #[test]
    fn every_closed_label_combination_exists_from_the_start() {
        let text = Metrics::new().render();
        for state in ["planned", "done", "failed"] {
            assert_eq!(
                line(
                    &text,
                    &format!("mailhaul_migration_mailboxes{{state=\"{state}\"}}")
                ),
                "0"
            );
        }
        for q in ["tasks", "dead"] {
            assert_eq!(
                line(&text, &format!("mailhaul_queue_messages{{queue=\"{q}\"}}")),
                "0"
            );
        }
        for g in [
            "mailhaul_migration_messages_planned",
            "mailhaul_migration_messages_done",
            "mailhaul_migration_messages_failed",
            "mailhaul_migration_bytes_planned",
            "mailhaul_migration_bytes_done",
        ] {
            assert_eq!(line(&text, g), "0");
        }
        let started: f64 = line(&text, "mailhaul_migration_started_timestamp_seconds")
            .parse()
            .expect("a number");
        assert!((started - unix_now()).abs() < 60.0, "{started}");
    }

    #[test]
    fn progress_sums_mailboxes_and_classifies_them() {
        let m = Metrics::new();
        let mut broken = mailbox("d@x", (0, 0), (0, 0, 0));
        broken.error = Some("login failed".to_owned());
        m.observe(&PassProgress {
            pass: 1,
            tasks_total: 9,
            tasks_done: 6,
            tasks_failed: vec![],
            mailboxes: vec![
                mailbox("a@x", (3, 3), (10, 10, 0)), // done
                mailbox("b@x", (3, 3), (10, 8, 2)),  // finished with failures
                mailbox("c@x", (3, 0), (10, 0, 0)),  // in progress
                broken,                              // could not be planned
            ],
        });
        m.set_queue(Queue::Tasks, 3);
        let text = m.render();
        for (series, want) in [
            ("mailhaul_migration_messages_planned", "30"),
            ("mailhaul_migration_messages_done", "18"),
            ("mailhaul_migration_messages_failed", "2"),
            ("mailhaul_migration_bytes_planned", "3000"),
            ("mailhaul_migration_bytes_done", "1800"),
            ("mailhaul_migration_mailboxes{state=\"planned\"}", "4"),
            ("mailhaul_migration_mailboxes{state=\"done\"}", "1"),
            ("mailhaul_migration_mailboxes{state=\"failed\"}", "2"),
            ("mailhaul_queue_messages{queue=\"tasks\"}", "3"),
            ("mailhaul_queue_messages{queue=\"dead\"}", "0"),
        ] {
            assert_eq!(line(&text, series), want, "{series}");
        }
    }

    #[tokio::test]
    async fn serving_scopes_the_metrics_and_serves_them() {
        assert!(current().is_none());
        let args = MetricsArgs {
            metrics_addr: Some("127.0.0.1:0".parse().expect("an address")),
            metrics_linger_secs: 0,
        };
        let seen = serving(&args, async { Ok(current().is_some()) })
            .await
            .expect("binds a free port");
        assert!(seen);
        assert!(current().is_none());
        let plain = serving(&MetricsArgs::default(), async { Ok(current().is_some()) })
            .await
            .expect("nothing to bind");
        assert!(!plain);
    }

    #[tokio::test]
    async fn an_address_in_use_names_the_flag() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let args = MetricsArgs {
            metrics_addr: Some(taken.local_addr().expect("bound")),
            metrics_linger_secs: 0,
        };
        let err = serving(&args, async { Ok(()) })
            .await
            .expect_err("the port is taken");
        assert!(err.to_string().contains("--metrics-addr"), "{err}");
    }
}
