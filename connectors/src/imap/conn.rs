//! Opening an IMAP connection: TCP, TLS (implicit or STARTTLS, RFC 3501 §6.2.1), the
//! greeting, LOGIN.
//!
//! Invariants: certificates are verified against webpki-roots plus the manifest's
//! `ca_file` unless the manifest explicitly says `tls_verify = false`, and then every
//! connection logs a warning. The password is only ever passed to LOGIN; it is in no
//! error and no log line.

use super::session::ImapSession;
use crate::error::ConnectorError;
use async_imap::imap_proto::{Response, Status};
use mailhaul_proto::manifest::{ServerConfig, TlsMode};
use secrecy::{ExposeSecret, SecretString};
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

/// The byte stream under an IMAP session: plain TCP or TLS over TCP.
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
    /// Limit for the greeting + TLS + LOGIN, and for every command after (default 120 s).
    /// APPEND gets one extra second per MiB sent.
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

/// Connects and logs in with the default [`ConnectOptions`].
///
/// # Errors
/// `Connect`, `Tls`, `Timeout`, `Bye` (greeting refused), `Auth` (login refused), and
/// `Protocol` for servers that cannot be used (no greeting, PREAUTH).
pub async fn connect(
    server: &ServerConfig,
    user: &str,
    password: &SecretString,
) -> Result<ImapSession, ConnectorError> {
    connect_with(server, user, password, &ConnectOptions::default()).await
}

/// Connects and logs in with explicit time limits. See [`connect`].
///
/// # Errors
/// As [`connect`].
pub async fn connect_with(
    server: &ServerConfig,
    user: &str,
    password: &SecretString,
    options: &ConnectOptions,
) -> Result<ImapSession, ConnectorError> {
    let addr = format!("{}:{}", server.host, server.port);
    check_login_args(user, password, &addr)?;
    let tcp = timeout(
        options.connect_timeout,
        TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await
    .map_err(|_| ConnectorError::Timeout {
        command: format!("connect to {addr}"),
        after: options.connect_timeout,
    })?
    .map_err(|source| ConnectorError::Connect {
        server: addr.clone(),
        source,
    })?;
    // IMAP is request/response with small command lines: Nagle only adds latency.
    tcp.set_nodelay(true).map_err(ConnectorError::Io)?;

    let handshake = async {
        let client = match server.tls {
            TlsMode::None => greeted(Stream::Plain(tcp)).await?,
            TlsMode::Implicit => {
                let tls = tls_handshake(tcp, server, &addr).await?;
                greeted(Stream::Tls(Box::new(tls))).await?
            }
            TlsMode::StartTls => {
                let mut plain = async_imap::Client::new(tcp);
                read_greeting(&mut plain).await?;
                plain
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| ConnectorError::Tls {
                        server: addr.clone(),
                        detail: format!(
                            "the server refused STARTTLS ({}); check `tls` in the manifest",
                            reply_text(&e)
                        ),
                        source: None,
                    })?;
                // RFC 3501 §6.2.1: no new greeting after STARTTLS; TLS starts right away.
                let tls = tls_handshake(plain.into_inner(), server, &addr).await?;
                async_imap::Client::new(Stream::Tls(Box::new(tls)))
            }
        };
        client
            .login(user, password.expose_secret())
            .await
            .map_err(|(e, _)| login_error(e, user, &addr))
    };
    let session = timeout(options.command_timeout, handshake)
        .await
        .map_err(|_| ConnectorError::Timeout {
            command: "greeting, tls and login".into(),
            after: options.command_timeout,
        })??;
    ImapSession::start(session, addr, options.command_timeout).await
}

/// Refuses, before sending anything, credentials that LOGIN cannot carry.
fn check_login_args(user: &str, password: &SecretString, addr: &str) -> Result<(), ConnectorError> {
    // async-imap sends LOGIN arguments as quoted strings, which cannot hold CR or LF
    // (RFC 3501 §4.3); say so instead of a vague validation error.
    let bad = |s: &str| s.contains(['\r', '\n', '\0']);
    if bad(user) || bad(password.expose_secret()) {
        return Err(ConnectorError::Auth {
            user: user.to_owned(),
            server: addr.to_owned(),
            server_said: "not sent: the user name or password contains a line break or NUL".into(),
        });
    }
    Ok(())
}

async fn greeted(stream: Stream) -> Result<async_imap::Client<Stream>, ConnectorError> {
    let mut client = async_imap::Client::new(stream);
    read_greeting(&mut client).await?;
    Ok(client)
}

/// Reads the server greeting (async-imap does not): `* OK` to go on, `* BYE` refused.
async fn read_greeting<T>(client: &mut async_imap::Client<T>) -> Result<(), ConnectorError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let greeting = client
        .read_response()
        .await
        .map_err(ConnectorError::Io)?
        .ok_or_else(|| {
            ConnectorError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before its greeting",
            ))
        })?;
    match greeting.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        Response::Data {
            status: Status::Bye,
            outcome,
        } => Err(ConnectorError::Bye {
            text: outcome.information.as_deref().unwrap_or("").to_owned(),
        }),
        Response::Data {
            status: Status::PreAuth,
            ..
        } => Err(ConnectorError::Protocol(
            "the server greeted with PREAUTH; mailhaul needs to log in as the mailbox user".into(),
        )),
        other => Err(ConnectorError::Protocol(format!(
            "expected a greeting, got {other:?}"
        ))),
    }
}

fn login_error(e: async_imap::error::Error, user: &str, addr: &str) -> ConnectorError {
    use async_imap::error::Error as E;
    match e {
        E::No(_) | E::Bad(_) | E::Validate(_) => ConnectorError::Auth {
            user: user.to_owned(),
            server: addr.to_owned(),
            server_said: reply_text(&e),
        },
        E::Io(io) => ConnectorError::Io(io),
        E::ConnectionLost => ConnectorError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection during LOGIN",
        )),
        other => ConnectorError::Protocol(format!("login: {other}")),
    }
}

/// The server's text out of async-imap's `NO`/`BAD` strings, which look like
/// `code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")`.
fn reply_text(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error as E;
    let raw = match e {
        E::No(s) | E::Bad(s) => s.as_str(),
        other => return other.to_string(),
    };
    const KEY: &str = "info: Some(\"";
    match raw.find(KEY) {
        Some(at) => raw[at + KEY.len()..]
            .trim_end_matches(')')
            .trim_end_matches('"')
            .to_owned(),
        None => raw.to_owned(),
    }
}

async fn tls_handshake(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_extracts_the_server_text() {
        let e = async_imap::error::Error::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
        );
        assert_eq!(
            reply_text(&e),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        let e = async_imap::error::Error::Bad("odd".into());
        assert_eq!(reply_text(&e), "odd");
    }
}
