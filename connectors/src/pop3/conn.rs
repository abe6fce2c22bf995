//! Opening a POP3 session: TCP, TLS (implicit POP3S, RFC 8314, or STLS, RFC 2595), the
//! greeting, CAPA (RFC 2449), login ([`super::auth`]), and CAPA again in the TRANSACTION
//! state.
//!
//! Invariants: TLS is verified as [`crate::net`] sets it up; with `tls = "starttls"`
//! nothing but CAPA and STLS is sent before TLS is up, and a server that refuses STLS
//! is an error (never a silent fall-back to plain text). The whole opening, TLS and login
//! included, has the command time limit.

use super::auth;
use super::session::{Pop3Session, Reply};
use super::wire::Status;
use crate::error::ConnectorError;
use crate::net::{ConnectOptions, Stream, tcp_connect, tls_handshake};
use mailhaul_proto::manifest::{ServerConfig, TlsMode};
use secrecy::SecretString;
use tokio::time::timeout;
use tracing::debug;

/// Connects and logs in with the default [`ConnectOptions`].
///
/// # Errors
/// `Connect`, `Tls` (handshake failed, certificate refused, STLS refused), `Timeout`,
/// `Bye` (the greeting was `-ERR`), `Auth` (login refused: permanent), `No` (login
/// refused with `[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`: transient), `Pop3Protocol`.
pub async fn connect(
    server: &ServerConfig,
    user: &str,
    password: &SecretString,
) -> Result<Pop3Session, ConnectorError> {
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
) -> Result<Pop3Session, ConnectorError> {
    let addr = format!("{}:{}", server.host, server.port);
    auth::check_login_args(user, password, &addr)?;
    let tcp = tcp_connect(server, &addr, options.connect_timeout).await?;
    let opening = async {
        let stream = match server.tls {
            TlsMode::Implicit => Stream::Tls(Box::new(tls_handshake(tcp, server, &addr).await?)),
            TlsMode::StartTls | TlsMode::None => Stream::Plain(tcp),
        };
        let mut session = Pop3Session::new(stream, addr.clone(), options.command_timeout);
        session.greeting().await?;
        let mut caps = session.capa().await?;
        if server.tls == TlsMode::StartTls {
            session = stls(session, server).await?;
            // RFC 2595 §4: forget what was learnt before TLS, ask again.
            caps = session.capa().await?;
        }
        session.set_capabilities(caps.clone());
        auth::login(&mut session, user, password).await?;
        let after = session.capa().await?.after_login(&caps);
        session.set_capabilities(after);
        Ok::<_, ConnectorError>(session)
    };
    let session = timeout(options.command_timeout, opening)
        .await
        .map_err(|_| ConnectorError::Timeout {
            command: "greeting, tls and login".into(),
            after: options.command_timeout,
        })??;
    debug!(server = %addr, tls = %server.tls, "POP3 session open.");
    Ok(session)
}

/// Upgrades a plain session with STLS (RFC 2595 §4): no new greeting follows.
async fn stls(
    mut session: Pop3Session,
    server: &ServerConfig,
) -> Result<Pop3Session, ConnectorError> {
    let addr = session.addr().to_owned();
    let tls_err = |detail: String| ConnectorError::Tls {
        server: addr.clone(),
        detail,
        source: None,
    };
    match session.command("STLS", "STLS", Reply::Line).await?.status {
        Status::Ok(_) => {}
        Status::Err(text) | Status::Continue(text) => {
            return Err(tls_err(format!(
                "the server refused STLS ({text}); check `tls` in the manifest"
            )));
        }
    }
    let command_timeout = session.command_timeout();
    // Bytes after the +OK would be read as if they came over TLS: a plain-text
    // injection (CVE-2011-0411 class), so refuse them.
    let Some(Stream::Plain(tcp)) = session.into_stream() else {
        return Err(tls_err(
            "the server sent data after its STLS reply, before TLS; refusing the connection".into(),
        ));
    };
    let tls = tls_handshake(tcp, server, &addr).await?;
    Ok(Pop3Session::new(
        Stream::Tls(Box::new(tls)),
        addr,
        command_timeout,
    ))
}
