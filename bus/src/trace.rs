//! Telemetry set-up shared by both binaries, and trace context on the bus.
//!
//! * [`init`] installs the `tracing` subscriber: human logs on stderr (filtered by
//!   `RUST_LOG`) and, when an OTLP endpoint is configured, an OpenTelemetry layer that
//!   exports mailhaul's own spans over OTLP/HTTP (protobuf). Configuration is the
//!   standard `OTEL_*` environment (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//!   `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
//!   `OTEL_SDK_DISABLED`). With neither endpoint variable set, nothing is exported and no
//!   exporter or thread exists.
//! * Publishing injects the current span's context as W3C `traceparent`/`tracestate`
//!   AMQP headers (<https://www.w3.org/TR/trace-context/>); consuming hands them back as
//!   [`TraceHeaders`], which [`set_parent`] turns into the parent of the task's span. So a
//!   task's trace starts at the migration that published it.
//!
//! Invariants: only spans and events of mailhaul's own crates (targets `mailhaul*`, INFO
//! and above) are exported, so the exporter's HTTP client can never trace itself; no
//! span field carries a message body or a secret.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::fmt::Display;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The W3C trace context headers.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter rejected its configuration (usually the endpoint URL).
    #[error(
        "cannot set up OpenTelemetry trace export from the OTEL_* environment ({source}); fix OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (e.g. http://collector:4318), or unset both to turn tracing off"
    )]
    Exporter {
        /// The exporter's complaint.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A global subscriber was installed already.
    #[error("the logging subscriber was already set up: {0}")]
    AlreadySet(String),
}

/// The installed telemetry; call [`Telemetry::shutdown`] before the process exits so the
/// spans still buffered are exported.
#[derive(Debug)]
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter. Blocks (up to the SDK's
    /// export timeout): call it after the async runtime has finished, or through
    /// `spawn_blocking`.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            // The subscriber may be gone already; stderr is the one place left to say it.
            eprintln!("warning: exporting the last trace spans failed: {err}");
        }
    }
}

/// Installs the global `tracing` subscriber: logs to stderr filtered by `RUST_LOG`
/// (`default_filter` when unset) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, OTLP/HTTP span export as service
/// `service` (unless `OTEL_SERVICE_NAME` names another).
///
/// # Errors
/// The OTLP endpoint is not a valid URL, or a subscriber was installed before.
pub fn init(service: &'static str, default_filter: &str) -> Result<Telemetry, TelemetryError> {
    use tracing_subscriber::filter::FilterExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter.and(secret_safe()));
    let provider = if export_configured(|k| std::env::var(k).ok()) {
        Some(provider(service)?)
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        // Our spans only: the exporter's own HTTP client must not feed back into it.
        let ours = tracing_subscriber::filter::Targets::new()
            .with_target("mailhaul", tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("mailhaul"))
            .with_filter(ours)
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadySet(e.to_string()))?;
    Ok(Telemetry { provider })
}

/// Dependencies whose TRACE output carries protocol traffic as it goes over the wire,
/// credentials included: `async_imap` logs every command it encodes (`LOGIN user
/// password`, the SASL responses of `AUTHENTICATE`) and every response it decodes
/// (message bodies); `imap_proto` its parser input; lapin and amq-protocol the AMQP
/// frames (`Connection.StartOk` holds the broker's login); h2, hyper and reqwest the
/// HTTP traffic (OAuth token requests carry client secrets); redis the commands it
/// sends (`AUTH`). They are capped at DEBUG, whatever `RUST_LOG` asks for.
const WIRE_LOGGERS: [&str; 9] = [
    "async_imap",
    "imap_proto",
    "lapin",
    "amq_protocol",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "redis",
];

/// The cap that keeps [`WIRE_LOGGERS`]' TRACE output out of every log: it lets through
/// what `RUST_LOG` lets through, except those targets' TRACE events and spans.
fn secret_safe() -> tracing_subscriber::filter::Targets {
    WIRE_LOGGERS.iter().fold(
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::TRACE),
        |t, target| t.with_target(*target, tracing::Level::DEBUG),
    )
}

/// Whether the environment asks for trace export: an endpoint variable is set (and not
/// empty) and `OTEL_SDK_DISABLED` is not `true`.
fn export_configured(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| var(k).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Whether the environment names the service itself.
fn service_named(var: impl Fn(&str) -> Option<String>) -> bool {
    var("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| {
            v.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        })
}

fn provider(service: &'static str) -> Result<SdkTracerProvider, TelemetryError> {
    // No programmatic endpoint: the exporter reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    // verbatim, or OTEL_EXPORTER_OTLP_ENDPOINT plus `/v1/traces`, and the headers and
    // timeout variables. The blocking client builds on its own thread, so this is safe
    // inside or outside a runtime (research/crates.md 4.2).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|source| TelemetryError::Exporter { source })?;
    // `Resource::builder()` reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !service_named(|k| std::env::var(k).ok()) {
        resource = resource.with_service_name(service);
    }
    // The builder's default sampler follows OTEL_TRACES_SAMPLER / _ARG.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The W3C trace context a task arrived with (empty when the publisher traced nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `traceparent`, e.g. `00-<trace id>-<parent span id>-01`.
    pub traceparent: Option<String>,
    /// `tracestate` (vendor data), passed on unchanged.
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The current span's context, as headers (empty when it is not traced).
    pub fn current() -> TraceHeaders {
        let cx = tracing::Span::current().context();
        let mut out = TraceHeaders::default();
        TraceContextPropagator::new().inject_context(&cx, &mut out);
        out
    }

    /// Reads the headers from an AMQP header table.
    pub(crate) fn from_table(headers: &Option<FieldTable>) -> TraceHeaders {
        let get = |name: &str| {
            headers
                .as_ref()?
                .inner()
                .get(name)
                .and_then(crate::rabbit::as_text)
        };
        TraceHeaders {
            traceparent: get(TRACEPARENT),
            tracestate: get(TRACESTATE),
        }
    }

    /// Adds the headers that are set to an AMQP header table.
    pub(crate) fn write_to(&self, table: &mut FieldTable) {
        for (k, v) in [
            (TRACEPARENT, &self.traceparent),
            (TRACESTATE, &self.tracestate),
        ] {
            if let Some(v) = v {
                table.insert(
                    ShortString::from(k),
                    AMQPValue::LongString(LongString::from(v.as_str())),
                );
            }
        }
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Makes the publisher's span (from `headers`) the parent of `span`. Call it right after
/// creating `span`, before it is entered. Does nothing when `headers` are empty or
/// malformed, or tracing export is off.
pub fn set_parent(span: &tracing::Span, headers: &TraceHeaders) {
    if headers.traceparent.is_none() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(headers);
    let _ = span.set_parent(cx);
}

/// Marks `span` as failed with `err` (OpenTelemetry status `Error`) and records an
/// `exception` event carrying the message.
pub fn record_error(span: &tracing::Span, err: &dyn Display) {
    // The semantic conventions' exception event; the caller logs the error itself.
    let message = err.to_string();
    span.add_event(
        "exception",
        vec![opentelemetry::KeyValue::new(
            "exception.message",
            message.clone(),
        )],
    );
    span.set_status(Status::error(message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn wire_traffic_stays_out_of_trace_logs() {
        let cap = secret_safe();
        for target in [
            "async_imap::imap_stream",
            "lapin::channels",
            "imap_proto",
            "h2::codec",
        ] {
            assert!(
                !cap.would_enable(target, &tracing::Level::TRACE),
                "{target}"
            );
            assert!(cap.would_enable(target, &tracing::Level::DEBUG), "{target}");
        }
        for target in [
            "mailhaul_worker::slice",
            "mailhaul_connectors::imap",
            "tokio",
        ] {
            assert!(cap.would_enable(target, &tracing::Level::TRACE), "{target}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn export_is_on_only_with_an_endpoint() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("OTEL_SERVICE_NAME", "x")], false),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")], false),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")], true),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://c:4318/v1/traces",
                )],
                true,
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "TRUE"),
                ],
                false,
            ),
        ];
        for (vars, want) in cases {
            assert_eq!(export_configured(env(vars)), *want, "{vars:?}");
        }
    }

    #[test]
    fn service_name_from_the_environment_wins() {
        assert!(!service_named(env(&[])));
        assert!(service_named(env(&[("OTEL_SERVICE_NAME", "edge-worker")])));
        assert!(service_named(env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod, service.name=w"
        )])));
        assert!(!service_named(env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod"
        )])));
    }

    #[test]
    fn headers_round_trip_through_an_amqp_table() {
        let h = TraceHeaders {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: Some("congo=t61rcWkgMzE".into()),
        };
        let mut table = FieldTable::default();
        h.write_to(&mut table);
        assert_eq!(TraceHeaders::from_table(&Some(table)), h);
        assert_eq!(TraceHeaders::from_table(&None), TraceHeaders::default());
    }

    #[test]
    fn untraced_code_publishes_no_headers() {
        // No OpenTelemetry layer in unit tests: the current context is empty.
        assert_eq!(TraceHeaders::current(), TraceHeaders::default());
    }
}
