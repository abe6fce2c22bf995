//! The network layer shared by the IMAP and POP3 connectors: TCP connect with a time
//! limit, the [`Stream`] (plain or TLS) sessions run over, and the rustls set-up.
//!
//! Invariants: certificates are verified against webpki-roots plus the manifest's
//! `ca_file` unless the manifest explicitly says `tls_verify = false`, and then every
//! connection logs a warning.

use crate::error::ConnectorError;
use mailhaul_proto::manifest::ServerConfig;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};
use tracing::warn;

/// The byte stream under an IMAP or POP3 session: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Stream {
    /// Unencrypted (`tls = "none"`).
    Plain(TcpStream),
    /// TLS, implicit or after STARTTLS. Boxed: a TLS state is ~1 KiB, a `TcpStream` is tiny.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Time limits for a session.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Limit for the TCP connect (default 10 s).
    pub connect_timeout: Duration,
    /// Limit for the greeting + TLS + login, and for every command after (default 120 s).
    /// IMAP APPEND gets one extra second per MiB sent, POP3 RETR one per MiB received.
    pub command_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(120),
        }
    }
}

/// Opens the TCP connection to `server` (`addr` is its `host:port`, for messages) within
/// `limit`, with Nagle off: both protocols send small command lines and wait for replies.
///
/// # Errors
/// `Timeout` when `limit` runs out, `Connect` when the connection fails, `Io` when the
/// socket option cannot be set.
pub(crate) async fn tcp_connect(
    server: &ServerConfig,
    addr: &str,
    limit: Duration,
) -> Result<TcpStream, ConnectorError> {
    let tcp = timeout(
        limit,
        TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await
    .map_err(|_| ConnectorError::Timeout {
        command: format!("connect to {addr}"),
        after: limit,
    })?
    .map_err(|source| ConnectorError::Connect {
        server: addr.to_owned(),
        source,
    })?;
    tcp.set_nodelay(true).map_err(ConnectorError::Io)?;
    Ok(tcp)
}

/// Runs the TLS handshake on `tcp` for `server` (verification as [`tls_config`] sets it up).
pub(crate) async fn tls_handshake(
    tcp: TcpStream,
    server: &ServerConfig,
    addr: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectorError> {
    let config = tls_config(server, addr)?;
    let name = ServerName::try_from(server.host.clone()).map_err(|e| ConnectorError::Tls {
        server: addr.to_owned(),
        detail: format!("{:?} is not a valid TLS server name: {e}", server.host),
        source: None,
    })?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectorError::Tls {
            server: addr.to_owned(),
            detail: format!(
                "handshake failed ({e}); if the server uses a private CA, set `ca_file` in the manifest"
            ),
            source: Some(e),
        })
}

/// The rustls config for one server: webpki roots + `ca_file`, or no verification.
///
/// The provider is passed explicitly (not installed process-wide) so that a second
/// rustls provider in the dependency tree can never make this panic (crates.md §4.4).
fn tls_config(server: &ServerConfig, addr: &str) -> Result<ClientConfig, ConnectorError> {
    let tls_err = |detail: String| ConnectorError::Tls {
        server: addr.to_owned(),
        detail,
        source: None,
    };
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("rustls setup: {e}")))?;
    if !server.tls_verify {
        warn!(server = %addr, "TLS certificate verification is OFF (tls_verify = false): the connection can be intercepted.");
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &server.ca_file {
        let shown = path.display();
        let mut added = 0;
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| tls_err(format!("cannot read ca_file {shown}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| tls_err(format!("ca_file {shown}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| tls_err(format!("ca_file {shown}: unusable certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(tls_err(format!("ca_file {shown} holds no PEM certificate")));
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Accepts any certificate, but still checks handshake signatures so the session key
/// is bound to the certificate presented. Only used with `tls_verify = false`.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
