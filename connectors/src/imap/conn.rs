//! Opening an IMAP connection: TCP, TLS (implicit or STARTTLS, RFC 3501 §6.2.1), the
//! greeting, then the login ([`super::auth`]).
//!
//! Invariants: TLS is verified as [`crate::net`] sets it up. The password is only ever passed to the login; it is in no
//! error and no log line.

use super::session::ImapSession;
use crate::error::ConnectorError;
pub use crate::net::{ConnectOptions, Stream};
use crate::net::{tcp_connect, tls_handshake};
use async_imap::imap_proto::{Response, Status};
use mailhaul_proto::manifest::{ServerConfig, TlsMode};
use secrecy::{ExposeSecret, SecretString};
use std::io;
use tokio::time::timeout;

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
    let tcp = tcp_connect(server, &addr, options.connect_timeout).await?;

    let handshake = async {
        let (client, greeting) = match server.tls {
            TlsMode::None => greeted(Stream::Plain(tcp)).await?,
            TlsMode::Implicit => {
                let tls = tls_handshake(tcp, server, &addr).await?;
                greeted(Stream::Tls(Box::new(tls))).await?
            }
            TlsMode::StartTls => {
                let mut plain = async_imap::Client::new(tcp);
                let greeting = read_greeting(&mut plain).await?;
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
                (
                    async_imap::Client::new(Stream::Tls(Box::new(tls))),
                    greeting,
                )
            }
        };
        let session = super::auth::log_in(client, server, user, password, &addr).await?;
        Ok::<_, ConnectorError>((session, greeting))
    };
    let (session, greeting) =
        timeout(options.command_timeout, handshake)
            .await
            .map_err(|_| ConnectorError::Timeout {
                command: "greeting, tls and login".into(),
                after: options.command_timeout,
            })??;
    let mut session = ImapSession::start(session, addr, options.command_timeout, greeting).await?;
    session.imap_options = server.imap.clone();
    Ok(session)
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

async fn greeted(stream: Stream) -> Result<(async_imap::Client<Stream>, String), ConnectorError> {
    let mut client = async_imap::Client::new(stream);
    let greeting = read_greeting(&mut client).await?;
    Ok((client, greeting))
}

/// Reads the server greeting (async-imap does not): `* OK` to go on (its text is
/// returned), `* BYE` refused.
async fn read_greeting<T>(client: &mut async_imap::Client<T>) -> Result<String, ConnectorError>
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
            status: Status::Ok,
            outcome,
        } => Ok(outcome.information.as_deref().unwrap_or("").to_owned()),
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

pub(super) fn login_error(e: async_imap::error::Error, user: &str, addr: &str) -> ConnectorError {
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
