//! POP3 login: SASL PLAIN (RFC 5034 with the initial response, RFC 4616) when the server
//! offers it, USER/PASS (RFC 1939 §7) otherwise; and what a refusal means (RFC 3206).
//!
//! Invariants: the password leaves this module only inside the command line written to
//! the server; errors carry the user name and the server's text, never the password.

use super::session::{Pop3Session, Reply};
use super::wire::{Status, response_code};
use crate::error::ConnectorError;
use secrecy::{ExposeSecret, SecretString};

/// RFC 5034 §4: an AUTH command with its initial response must fit in 255 octets;
/// above that the response goes on its own line after the server's `+ `.
const AUTH_LINE_MAX: usize = 255;

/// Logs in as `user`: AUTH PLAIN when CAPA lists it, USER/PASS otherwise.
///
/// # Errors
/// `Auth` (permanent) for a refused login (`[AUTH]` or no response code);
/// `No` for `[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]` (transient) and `[SYS/PERM]`;
/// the session's own errors (timeout, I/O, protocol).
pub(super) async fn login(
    s: &mut Pop3Session,
    user: &str,
    password: &SecretString,
) -> Result<(), ConnectorError> {
    check_login_args(user, password, s.addr())?;
    if s.capabilities().has_sasl("PLAIN") {
        auth_plain(s, user, password).await
    } else {
        user_pass(s, user, password).await
    }
}

/// Refuses, before sending anything, credentials that cannot be put on a POP3 line.
pub(super) fn check_login_args(
    user: &str,
    password: &SecretString,
    addr: &str,
) -> Result<(), ConnectorError> {
    // POP3 commands are CRLF-terminated lines (RFC 1939 §3) and SASL PLAIN separates its
    // fields with NUL (RFC 4616 §2): none of these can be part of a name or password.
    let bad = |s: &str| s.is_empty() || s.contains(['\r', '\n', '\0']);
    if bad(user) || bad(password.expose_secret()) {
        return Err(ConnectorError::Auth {
            user: user.to_owned(),
            server: addr.to_owned(),
            server_said: "not sent: the user name or password is empty or contains a line \
                          break or NUL"
                .into(),
        });
    }
    Ok(())
}

async fn auth_plain(
    s: &mut Pop3Session,
    user: &str,
    password: &SecretString,
) -> Result<(), ConnectorError> {
    // RFC 4616: authzid (empty) NUL authcid NUL passwd.
    let response = SecretString::from(base64(
        format!("\0{user}\0{}", password.expose_secret()).as_bytes(),
    ));
    let with_ir = SecretString::from(format!("AUTH PLAIN {}", response.expose_secret()));
    let status = if with_ir.expose_secret().len() <= AUTH_LINE_MAX {
        s.command("AUTH", with_ir.expose_secret(), Reply::Line)
            .await?
            .status
    } else {
        match s.command("AUTH", "AUTH PLAIN", Reply::Line).await?.status {
            Status::Continue(_) => {
                s.command("AUTH", response.expose_secret(), Reply::Line)
                    .await?
                    .status
            }
            other => other,
        }
    };
    match status {
        Status::Ok(_) => Ok(()),
        Status::Err(text) => Err(refused_login("AUTH", text, user, s.addr())),
        Status::Continue(_) => {
            // PLAIN has one step; a second challenge means we disagree on the state.
            // RFC 5034 §4: "*" cancels the exchange, the server answers -ERR.
            let _ = s.command("AUTH", "*", Reply::Line).await;
            Err(s.malformed(
                "AUTH",
                "the server asked for more after the PLAIN response".into(),
            ))
        }
    }
}

async fn user_pass(
    s: &mut Pop3Session,
    user: &str,
    password: &SecretString,
) -> Result<(), ConnectorError> {
    for (name, line) in [
        ("USER", SecretString::from(format!("USER {user}"))),
        (
            "PASS",
            SecretString::from(format!("PASS {}", password.expose_secret())),
        ),
    ] {
        match s
            .command(name, line.expose_secret(), Reply::Line)
            .await?
            .status
        {
            Status::Ok(_) => {}
            Status::Err(text) => return Err(refused_login(name, text, user, s.addr())),
            other => return Err(s.refused(name, other)),
        }
    }
    Ok(())
}

/// What a `-ERR` to a login command means (RFC 3206 §4): a wrong password or a
/// disallowed login unless the response code says the trouble is elsewhere.
pub(super) fn refused_login(command: &str, text: String, user: &str, addr: &str) -> ConnectorError {
    match response_code(&text).as_deref() {
        // The mailbox is locked, logins come too fast, the server has a temporary
        // problem (all transient), or a permanent one that no password change fixes:
        // ConnectorError::No classifies these by their code.
        Some("IN-USE" | "LOGIN-DELAY" | "SYS/TEMP" | "SYS/PERM") => ConnectorError::No {
            command: command.to_owned(),
            text,
        },
        _ => ConnectorError::Auth {
            user: user.to_owned(),
            server: addr.to_owned(),
            server_said: text,
        },
    }
}

/// Base64 with padding (RFC 4648 §4), the encoding SASL uses on POP3 lines.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhaul_proto::ErrorClass;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            // RFC 4616 §4 example: authzid "", authcid "tim", passwd "tanstaaftanstaaf".
            ("\0tim\0tanstaaftanstaaf", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0xfc]), "//79/A==");
    }

    #[test]
    fn login_refusals_are_classified() {
        use ErrorClass::*;
        for (text, auth, class) in [
            ("[AUTH] Authentication failed.", true, Permanent),
            ("Authentication failed.", true, Permanent),
            ("[IN-USE] Mailbox is locked", false, Transient),
            ("[LOGIN-DELAY] Too soon", false, Transient),
            ("[SYS/TEMP] Try again later", false, Transient),
            ("[SYS/PERM] Mailbox is broken", false, Permanent),
        ] {
            let e = refused_login("PASS", text.into(), "alice", "h:110");
            assert_eq!(
                matches!(e, ConnectorError::Auth { .. }),
                auth,
                "{text}: {e:?}"
            );
            assert_eq!(e.class(), class, "{text}");
        }
    }

    #[test]
    fn bad_login_args_are_refused_before_sending() {
        for (user, pass, ok) in [
            ("alice", "secret", true),
            ("alice@example.com", "with space", true),
            ("", "secret", false),
            ("alice", "", false),
            ("al\r\nice", "secret", false),
            ("alice", "sec\nret", false),
            ("alice", "sec\0ret", false),
        ] {
            let got = check_login_args(user, &SecretString::from(pass), "h:110");
            assert_eq!(got.is_ok(), ok, "{user:?} {pass:?}");
            if let Err(e) = got {
                assert!(pass.is_empty() || !e.to_string().contains(pass), "{e}");
                assert_eq!(e.class(), ErrorClass::Permanent);
            }
        }
    }
}
