//! Minimal IMAP plumbing shared by the seeder and the snapshot: log in over plain TCP
//! on loopback, quote strings, format INTERNALDATE. Deliberately independent of
//! `mailhaul-connectors`, whose behaviour the tests check.

use anyhow::Context as _;
use chrono::{DateTime, FixedOffset};

/// An authenticated async-imap session on a plain loopback TCP connection.
pub(crate) type Session = async_imap::Session<tokio::net::TcpStream>;

/// Connects to 127.0.0.1:`port`, reads the greeting and logs in.
pub(crate) async fn login(port: u16, user: &str, password: &str) -> anyhow::Result<Session> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("connecting to IMAP on 127.0.0.1:{port}"))?;
    tcp.set_nodelay(true)?;
    let mut client = async_imap::Client::new(tcp);
    // async-imap does not read the greeting for us.
    client
        .read_response()
        .await
        .context("reading the IMAP greeting")?
        .context("the IMAP server closed the connection before its greeting")?;
    client
        .login(user, password)
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("IMAP LOGIN as {user} on port {port}"))
}

/// An IMAP quoted string (RFC 3501 §4.3): `"` and `\` escaped.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// An INTERNALDATE argument (RFC 3501 `date-time`), e.g. `"07-Feb-1998 18:04:05 +0530"`.
pub(crate) fn internal_date(date: &DateTime<FixedOffset>) -> String {
    date.format("\"%d-%b-%Y %H:%M:%S %z\"").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_dates() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        let d = DateTime::parse_from_rfc3339("1998-02-07T18:04:05+05:30").expect("valid");
        assert_eq!(internal_date(&d), "\"07-Feb-1998 18:04:05 +0530\"");
    }
}
