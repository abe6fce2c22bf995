//! The worker's Prometheus metrics, declared in one place, and the `/metrics` endpoint.
//!
//! Names follow `mailhaul_<noun>_<unit>[_total]`; labels come from closed sets only
//! (protocol kinds, stages, error classes, outcomes), never mailbox or folder names.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use std::net::SocketAddr;

/// Source kinds (`source` label).
const SOURCES: [&str; 2] = ["imap", "pop3"];
/// Target kinds (`target` label).
const TARGETS: [&str; 3] = ["imap", "graph", "ews"];
/// Where an error happened (`stage` label).
const STAGES: [&str; 8] = [
    "source", "target", "ledger", "config", "permit", "plan", "shutdown", "task",
];
/// Retry classes (`class` label).
const CLASSES: [&str; 3] = ["transient", "throttled", "permanent"];
/// What became of a task (`outcome` label of the task duration).
const OUTCOMES: [&str; 6] = ["done", "retried", "busy", "interrupted", "fenced", "failed"];

/// Every metric the worker exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Messages copied, by source and target kind.
    pub messages: IntCounterVec,
    /// Bytes copied, by source and target kind.
    pub bytes: IntCounterVec,
    /// Messages found already on the target and recorded without copying.
    pub recovered: IntCounterVec,
    /// Errors by stage and class.
    pub errors: IntCounterVec,
    /// Task durations by outcome.
    pub task_seconds: HistogramVec,
    /// Time spent waiting for connection permits, by side.
    pub permit_wait_seconds: HistogramVec,
    /// Tasks being worked on now.
    pub in_flight: IntGauge,
    /// Throttle signals from the target (429, ErrorServerBusy, IMAP "throttled"), by kind.
    pub throttle_events: IntCounterVec,
    /// Time spent waiting because of throttling and request/byte budgets, by target kind.
    pub throttle_wait_seconds: prometheus::CounterVec,
    /// Time of one upload (one MULTIAPPEND, CreateItem or Graph import), by target kind.
    pub upload_seconds: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c =
                IntCounterVec::new(Opts::new(name, help), labels).expect("metric names are valid");
            registry
                .register(Box::new(c.clone()))
                .expect("each metric is registered once");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("metric names are valid");
            registry
                .register(Box::new(h.clone()))
                .expect("each metric is registered once");
            h
        };
        let messages = counter(
            "mailhaul_messages_migrated_total",
            "Messages copied to the target.",
            &["source", "target"],
        );
        let bytes = counter(
            "mailhaul_migrated_bytes_total",
            "Message bytes copied to the target.",
            &["source", "target"],
        );
        let recovered = counter(
            "mailhaul_messages_recovered_total",
            "Messages found already on the target after a crash or UIDVALIDITY change, recorded without copying.",
            &["target"],
        );
        let errors = counter(
            "mailhaul_errors_total",
            "Errors by stage and class.",
            &["stage", "class"],
        );
        let task_seconds = histogram(
            "mailhaul_task_duration_seconds",
            "Time to run one task, by outcome.",
            &["outcome"],
            prometheus::exponential_buckets(0.05, 2.0, 16).expect("valid buckets"),
        );
        let permit_wait_seconds = histogram(
            "mailhaul_permit_wait_seconds",
            "Time spent waiting for a per-mailbox connection permit.",
            &["side"],
            prometheus::exponential_buckets(0.001, 4.0, 10).expect("valid buckets"),
        );
        let throttle_events = counter(
            "mailhaul_throttle_events_total",
            "Throttle signals from the target (429, ErrorServerBusy, IMAP throttled).",
            &["target"],
        );
        let throttle_wait_seconds = prometheus::CounterVec::new(
            Opts::new(
                "mailhaul_throttle_wait_seconds_total",
                "Time spent waiting on throttling and per-mailbox request/byte budgets.",
            ),
            &["target"],
        )
        .expect("metric names are valid");
        registry
            .register(Box::new(throttle_wait_seconds.clone()))
            .expect("each metric is registered once");
        let upload_seconds = histogram(
            "mailhaul_upload_duration_seconds",
            "Time of one upload (a MULTIAPPEND batch, an EWS CreateItem, a Graph import).",
            &["target"],
            prometheus::exponential_buckets(0.005, 2.0, 16).expect("valid buckets"),
        );
        let in_flight =
            IntGauge::new("mailhaul_tasks_in_flight", "Tasks being worked on now.").expect("valid");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("registered once");
        // Every series of the closed label sets exists from the start at 0, so rates and
        // dashboard panels have data before the first event (and alerts can tell "none"
        // from "no data").
        for target in TARGETS {
            for source in SOURCES {
                messages.with_label_values(&[source, target]);
                bytes.with_label_values(&[source, target]);
            }
            recovered.with_label_values(&[target]);
            throttle_events.with_label_values(&[target]);
            throttle_wait_seconds.with_label_values(&[target]);
            upload_seconds.with_label_values(&[target]);
        }
        for stage in STAGES {
            for class in CLASSES {
                errors.with_label_values(&[stage, class]);
            }
        }
        for outcome in OUTCOMES {
            task_seconds.with_label_values(&[outcome]);
        }
        for side in ["source", "target"] {
            permit_wait_seconds.with_label_values(&[side]);
        }
        Metrics {
            registry,
            messages,
            bytes,
            recovered,
            errors,
            task_seconds,
            permit_wait_seconds,
            in_flight,
            throttle_events,
            throttle_wait_seconds,
            upload_seconds,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        mailhaul_bus::metrics_http::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
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
