//! Logging in, by the method the manifest chose for the server ([`Login`]).
//!
//! - `password`: `LOGIN user password` (RFC 3501 §6.2.3).
//! - `master`: `AUTHENTICATE PLAIN` (RFC 4616) with authzid = the mailbox user and
//!   authcid = the master user, with the server's password; the initial response goes on
//!   the command line (SASL-IR, RFC 4959) when the server advertises it.
//! - `master-star`: Dovecot's `LOGIN "user*master" password`.
//! - `xoauth2`: `AUTHENTICATE XOAUTH2` with `user=U^Aauth=Bearer T^A^A` (Google's and
//!   Microsoft's SASL XOAUTH2). On failure the server sends a `+ <base64 JSON>` challenge
//!   first; the answer is an empty line, after which the `NO` comes.
//!
//! Invariants: every refusal is [`ConnectorError::Auth`] naming the mailbox user and the
//! method, never a password or token; nothing secret goes into a log line. A refused
//! XOAUTH2 token is reported to its provider and one fresh token is tried.

use super::conn::{Stream, login_error};
use crate::config::resolve_secret;
use crate::error::ConnectorError;
use crate::oauth::{OAuthError, TokenProvider, provider_for};
use async_imap::imap_proto::{Capability, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mailhaul_proto::manifest::{Login, ServerConfig};
use secrecy::{ExposeSecret, SecretString};
use std::io;
use tokio::io::AsyncWriteExt as _;

type Client = async_imap::Client<Stream>;
type Session = async_imap::Session<Stream>;

/// Logs `user` in on a greeted, not yet authenticated connection. `password` is the
/// mailbox's own; master logins use the server's `password` instead and XOAUTH2 a token.
pub(super) async fn log_in(
    client: Client,
    server: &ServerConfig,
    user: &str,
    password: &SecretString,
    addr: &str,
) -> Result<Session, ConnectorError> {
    match &server.login {
        Login::Password => client
            .login(user, password.expose_secret())
            .await
            .map_err(|(e, _)| login_error(e, user, addr)),
        Login::MasterStar {
            user: master,
            separator,
        } => {
            let secret = master_password(server, user, addr)?;
            let login = format!("{user}{separator}{master}");
            client
                .login(&login, secret.expose_secret())
                .await
                .map_err(|(e, _)| {
                    let how = format!("LOGIN as {login:?} (master-star)");
                    with_method(login_error(e, user, addr), &how)
                })
        }
        Login::Master { user: master } => {
            let secret = master_password(server, user, addr)?;
            check_sasl_field(user, addr)?;
            check_sasl_field(master, addr)?;
            // RFC 4616: message = [authzid] NUL authcid NUL passwd.
            let message = format!("{user}\0{master}\0{}", secret.expose_secret());
            let how = format!("AUTHENTICATE PLAIN as master user {master:?}");
            sasl(client, "PLAIN", message.as_bytes(), user, addr, &how)
                .await
                .map_err(|(e, _)| e)
        }
        Login::XOAuth2(source) => {
            let provider = provider_for(source);
            xoauth2(client, &provider, user, addr).await
        }
    }
}

/// XOAUTH2 with the provider's token; when the server refuses it, the provider is told
/// and, if it then has a different token (a cached one had been revoked, the file was
/// replaced), that one is tried once on the same connection.
async fn xoauth2(
    client: Client,
    provider: &TokenProvider,
    user: &str,
    addr: &str,
) -> Result<Session, ConnectorError> {
    check_sasl_field(user, addr)?;
    let how = "AUTHENTICATE XOAUTH2";
    let token = provider
        .token()
        .await
        .map_err(|e| token_error(e, user, addr))?;
    let (err, client) = match sasl(
        client,
        "XOAUTH2",
        &xoauth2_message(user, &token),
        user,
        addr,
        how,
    )
    .await
    {
        Ok(session) => return Ok(session),
        Err((e @ ConnectorError::Auth { .. }, Some(client))) => (e, client),
        Err((e, _)) => return Err(e),
    };
    provider.refused(&token).await;
    let fresh = provider
        .token()
        .await
        .map_err(|e| token_error(e, user, addr))?;
    if fresh.expose_secret() == token.expose_secret() {
        return Err(err);
    }
    tracing::info!(
        user,
        server = addr,
        "xoauth2 token refused; trying a fresh one"
    );
    sasl(
        client,
        "XOAUTH2",
        &xoauth2_message(user, &fresh),
        user,
        addr,
        how,
    )
    .await
    .map_err(|(e, _)| e)
}

/// `user=U^Aauth=Bearer T^A^A`, as Gmail and Exchange Online define XOAUTH2.
fn xoauth2_message(user: &str, token: &SecretString) -> Vec<u8> {
    format!(
        "user={user}\x01auth=Bearer {}\x01\x01",
        token.expose_secret()
    )
    .into_bytes()
}

/// Runs `AUTHENTICATE mechanism` with `message` as the client's first response: on the
/// command line when the server has SASL-IR, else after the first `+`. Any later
/// challenge (an XOAUTH2 error JSON) is answered with an empty line, and its text kept
/// for the error. A refusal by the server gives the client back, so another attempt can
/// follow.
async fn sasl(
    mut client: Client,
    mechanism: &str,
    message: &[u8],
    user: &str,
    addr: &str,
    how: &str,
) -> Result<Session, (ConnectorError, Option<Client>)> {
    let caps = match capabilities(&mut client).await {
        Ok(caps) => caps,
        Err(e) => return Err((e, None)),
    };
    let advertised = format!("AUTH={mechanism}");
    if !caps.iter().any(|c| c.eq_ignore_ascii_case(&advertised)) {
        let e = ConnectorError::Auth {
            user: user.to_owned(),
            server: addr.to_owned(),
            server_said: format!(
                "not sent: {how} needs {advertised}, which the server does not advertise \
                 (it has: {}); check `login` in the manifest",
                caps.iter()
                    .filter(|c| c.to_ascii_uppercase().starts_with("AUTH="))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        // No client back: another token would not change the server's mechanisms.
        return Err((e, None));
    }
    let sasl_ir = caps.iter().any(|c| c.eq_ignore_ascii_case("SASL-IR"));
    let encoded = BASE64.encode(message);
    let (command, first) = if sasl_ir {
        (format!("{mechanism} {encoded}"), None)
    } else {
        (mechanism.to_owned(), Some(message.to_vec()))
    };
    let mut answerer = Answerer {
        first,
        challenges: Vec::new(),
    };
    client
        .authenticate(command, &mut answerer)
        .await
        .map_err(|(e, client)| {
            let mut err = with_method(login_error(e, user, addr), how);
            if let (ConnectorError::Auth { server_said, .. }, Some(challenge)) =
                (&mut err, answerer.challenges.last())
            {
                server_said.push_str(&format!("; the server's challenge said {challenge}"));
            }
            (err, Some(client))
        })
}

/// Answers SASL challenges: the first response (unless it went out as SASL-IR), then
/// empty lines, keeping the challenges' text (XOAUTH2 errors are JSON like
/// `{"status":"401","schemes":"bearer","scope":"..."}`).
struct Answerer {
    first: Option<Vec<u8>>,
    challenges: Vec<String>,
}

impl async_imap::Authenticator for &mut Answerer {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if let Some(first) = self.first.take() {
            return first;
        }
        let text = String::from_utf8_lossy(challenge);
        self.challenges.push(text.chars().take(300).collect());
        Vec::new()
    }
}

/// The server's capabilities before login (RFC 3501 §6.1.1), asked with our own tag so
/// async-imap's framing reads the reply. Only atoms are returned, `AUTH=` included.
async fn capabilities(client: &mut Client) -> Result<Vec<String>, ConnectorError> {
    const TAG: &str = "mhcap";
    let stream = client.get_mut();
    stream
        .write_all(format!("{TAG} CAPABILITY\r\n").as_bytes())
        .await?;
    stream.flush().await?;
    let mut caps = Vec::new();
    loop {
        let Some(response) = client.read_response().await? else {
            return Err(ConnectorError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during CAPABILITY",
            )));
        };
        match response.parsed() {
            Response::Capabilities(list) => {
                for cap in list {
                    match cap {
                        Capability::Atom(a) => caps.push(a.to_string()),
                        Capability::Auth(m) => caps.push(format!("AUTH={m}")),
                        Capability::Imap4rev1 => caps.push("IMAP4rev1".to_owned()),
                    }
                }
            }
            Response::Done { tag, status, .. } if tag.0 == TAG => {
                return match status {
                    async_imap::imap_proto::Status::Ok => Ok(caps),
                    _ => Err(ConnectorError::Protocol(
                        "the server refused CAPABILITY before login".into(),
                    )),
                };
            }
            _ => {}
        }
    }
}

/// The server's `password` for a master login, resolved now (it is the master user's,
/// not the mailbox's).
fn master_password(
    server: &ServerConfig,
    user: &str,
    addr: &str,
) -> Result<SecretString, ConnectorError> {
    let refused = |why: String| ConnectorError::Auth {
        user: user.to_owned(),
        server: addr.to_owned(),
        server_said: format!("not sent: the master password: {why}"),
    };
    let reference = server
        .password
        .as_ref()
        .ok_or_else(|| refused("the server has no `password` in the manifest".into()))?;
    let secret = resolve_secret(reference).map_err(|e| refused(e.to_string()))?;
    if secret.expose_secret().contains(['\r', '\n', '\0']) {
        return Err(refused("it contains a line break or NUL".into()));
    }
    Ok(secret)
}

/// SASL PLAIN and XOAUTH2 fields are separated by NUL and ^A; a name holding one would
/// change the message's meaning.
fn check_sasl_field(name: &str, addr: &str) -> Result<(), ConnectorError> {
    if name.contains(['\0', '\x01', '\r', '\n']) {
        return Err(ConnectorError::Auth {
            user: name.to_owned(),
            server: addr.to_owned(),
            server_said: "not sent: the name contains a control character".into(),
        });
    }
    Ok(())
}

/// Adds the login method to an `Auth` error's text; other errors pass unchanged.
fn with_method(e: ConnectorError, how: &str) -> ConnectorError {
    match e {
        ConnectorError::Auth {
            user,
            server,
            server_said,
        } => ConnectorError::Auth {
            user,
            server,
            server_said: format!("{how}: {server_said}"),
        },
        other => other,
    }
}

/// A token that could not be had: transient trouble stays transient, the rest is a
/// refused login the admin must fix.
fn token_error(e: OAuthError, user: &str, addr: &str) -> ConnectorError {
    if let Some(url) = e.transient_endpoint() {
        return ConnectorError::Connect {
            server: format!("the oauth token endpoint {url}"),
            source: io::Error::other(error_chain(&e)),
        };
    }
    ConnectorError::Auth {
        user: user.to_owned(),
        server: addr.to_owned(),
        server_said: format!("not sent: no xoauth2 token: {}", error_chain(&e)),
    }
}

/// `e` and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoauth2_message_is_googles_format() {
        let m = xoauth2_message("a@b.example", &SecretString::from("tok".to_owned()));
        assert_eq!(m, b"user=a@b.example\x01auth=Bearer tok\x01\x01");
    }

    #[test]
    fn answerer_sends_the_first_response_then_empty_lines() {
        let mut a = Answerer {
            first: Some(b"hello".to_vec()),
            challenges: Vec::new(),
        };
        let mut r = &mut a;
        assert_eq!(async_imap::Authenticator::process(&mut r, b""), b"hello");
        assert_eq!(
            async_imap::Authenticator::process(&mut r, br#"{"status":"401"}"#),
            b""
        );
        assert_eq!(a.challenges, [r#"{"status":"401"}"#]);
    }

    #[test]
    fn methods_are_named_in_refusals() {
        let e = ConnectorError::Auth {
            user: "u".into(),
            server: "h:1".into(),
            server_said: "[AUTHENTICATIONFAILED] no".into(),
        };
        let e = with_method(e, "AUTHENTICATE PLAIN as master user \"admin\"");
        assert!(
            e.to_string()
                .contains("AUTHENTICATE PLAIN as master user \"admin\": [AUTHENTICATIONFAILED]"),
            "{e}"
        );
        assert!(check_sasl_field("a\0b", "h:1").is_err());
        assert!(check_sasl_field("a@b", "h:1").is_ok());
    }
}
