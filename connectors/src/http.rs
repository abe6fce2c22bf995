//! The HTTPS client of the HTTP targets (Graph, EWS): time limits and TLS trust as the
//! manifest sets them.
//!
//! Invariant: certificates are verified against the system's roots, plus `ca_file` when
//! given; only an explicit `tls_verify = false` turns verification off, loudly.

use crate::error::ConnectorError;
use std::path::Path;
use std::time::Duration;
use tracing::warn;

/// A client for `server` (for messages) with these limits and trust.
///
/// # Errors
/// [`ConnectorError::Tls`] when `ca_file` cannot be read or holds no certificate.
pub(crate) fn client(
    server: &str,
    ca_file: Option<&Path>,
    tls_verify: bool,
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ConnectorError> {
    let tls_err = |detail: String| ConnectorError::Tls {
        server: server.to_owned(),
        detail,
        source: None,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout);
    if !tls_verify {
        warn!(%server, "TLS certificate verification is OFF (tls_verify = false): the connection can be intercepted.");
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else if let Some(path) = ca_file {
        let shown = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| tls_err(format!("cannot read ca_file {shown}: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| tls_err(format!("ca_file {shown}: {e}")))?;
        if certs.is_empty() {
            return Err(tls_err(format!("ca_file {shown} holds no PEM certificate")));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| tls_err(format!("cannot set up the https client: {e}")))
}

/// `Retry-After` (RFC 9110 §10.2.3): delay in seconds, or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
