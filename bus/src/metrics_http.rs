//! The `/metrics` and `/healthz` endpoints both binaries serve, next to [`crate::trace`]:
//! the telemetry plumbing the coordinator and the workers share. What the metrics are is
//! each binary's own business; this only serves their Prometheus text.

use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// The Prometheus text exposition of every metric in `registry`.
pub fn render(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder as _;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(buf).expect("the text format is UTF-8")
}

/// Serves `render()` at `/metrics` (Prometheus text format) and `ok` at `/healthz` on
/// `addr` until `shutdown` fires; returns the bound address (useful with port 0).
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    use axum::{Router, routing::get};
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = render();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        text,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(err) = r {
            tracing::warn!(%err, "Metrics server stopped.");
        }
    });
    Ok(bound)
}
