//! Parsing the data of POP3 replies: CAPA (RFC 2449), STAT, LIST and UIDL (RFC 1939).
//!
//! Pure functions over text the session has already read; errors are plain strings that
//! the session wraps into `ConnectorError::Pop3Protocol` with the command's name.

/// What a POP3 server says it can do, from `CAPA` (RFC 2449).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pop3Capabilities {
    /// Whether the server answered `CAPA` at all (RFC 1939-only servers do not; then
    /// every other field is false or empty and commands are tried as they are needed).
    pub capa: bool,
    /// `UIDL`: unique ids that stay the same across sessions.
    pub uidl: bool,
    /// `TOP`: headers plus the first lines of a message.
    pub top: bool,
    /// `USER`: USER/PASS login is allowed.
    pub user: bool,
    /// `STLS`: the connection can be upgraded to TLS (RFC 2595).
    pub stls: bool,
    /// `PIPELINING`: commands may be sent without waiting for each reply.
    pub pipelining: bool,
    /// `RESP-CODES`: `-ERR` texts carry response codes like `[IN-USE]`.
    pub resp_codes: bool,
    /// `SASL` mechanisms (RFC 5034), upper case, in the server's order.
    pub sasl: Vec<String>,
    /// `LOGIN-DELAY`: the minimum seconds between two logins of one mailbox.
    pub login_delay: Option<u32>,
}

impl Pop3Capabilities {
    /// Parses the lines of a CAPA reply (one capability per line, CRLF or LF).
    pub(super) fn parse(body: &[u8]) -> Self {
        let mut caps = Pop3Capabilities {
            capa: true,
            ..Default::default()
        };
        for line in String::from_utf8_lossy(body).lines() {
            let mut words = line.split_ascii_whitespace();
            let Some(name) = words.next() else { continue };
            match name.to_ascii_uppercase().as_str() {
                "UIDL" => caps.uidl = true,
                "TOP" => caps.top = true,
                "USER" => caps.user = true,
                "STLS" => caps.stls = true,
                "PIPELINING" => caps.pipelining = true,
                "RESP-CODES" => caps.resp_codes = true,
                "SASL" => caps.sasl = words.map(str::to_ascii_uppercase).collect(),
                // "LOGIN-DELAY 900" or, after login, "LOGIN-DELAY 900 USER" (RFC 2449 §6.5).
                "LOGIN-DELAY" => caps.login_delay = words.next().and_then(|n| n.parse().ok()),
                _ => {}
            }
        }
        caps
    }

    /// Whether the server offers the SASL mechanism `mechanism` (case-insensitive).
    pub fn has_sasl(&self, mechanism: &str) -> bool {
        self.sasl.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// The capabilities after login: what the server says in the TRANSACTION state,
    /// with the login-time facts (SASL, STLS) kept from before, since servers stop
    /// listing those once they no longer apply.
    pub(super) fn after_login(self, before: &Pop3Capabilities) -> Self {
        if !self.capa {
            return before.clone();
        }
        Pop3Capabilities {
            sasl: before.sasl.clone(),
            stls: before.stls,
            user: before.user,
            ..self
        }
    }
}

/// Parses the text after `+OK` of a STAT reply: `nn mm` (RFC 1939 §5), message count
/// and mailbox size in octets; anything after them is ignored, as the RFC allows.
pub(super) fn parse_stat(text: &str) -> Result<(u32, u64), String> {
    let mut words = text.split_ascii_whitespace();
    let count = words.next().and_then(|w| w.parse().ok());
    let size = words.next().and_then(|w| w.parse().ok());
    match (count, size) {
        (Some(c), Some(s)) => Ok((c, s)),
        _ => Err(format!("expected \"count size\", got {text:?}")),
    }
}

/// Parses the lines of a LIST reply: `msg size` per line (RFC 1939 §5).
pub(super) fn parse_list(body: &[u8]) -> Result<Vec<(u32, u64)>, String> {
    listing(body, |w| {
        w.parse::<u64>()
            .map_err(|_| format!("size {w:?} is not a number"))
    })
}

/// Parses the lines of a UIDL reply: `msg unique-id` per line. RFC 1939 §7: a unique id
/// is 1 to 70 characters in 0x21..=0x7E.
pub(super) fn parse_uidl(body: &[u8]) -> Result<Vec<(u32, String)>, String> {
    listing(body, |w| {
        if (1..=70).contains(&w.len()) && w.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            Ok(w.to_owned())
        } else {
            Err(format!("{w:?} is not a valid unique id (RFC 1939 §7)"))
        }
    })
}

/// Lines of `msg value` with message numbers strictly ascending; blank lines are skipped.
fn listing<T>(
    body: &[u8],
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<(u32, T)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the listing is not ASCII text".to_owned())?;
    let mut out: Vec<(u32, T)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_ascii_whitespace();
        let (Some(n), Some(v)) = (words.next(), words.next()) else {
            return Err(format!("expected \"msg value\", got {line:?}"));
        };
        let n: u32 =
            n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("message number {n:?} in {line:?} is not a number above 0")
            })?;
        if out.last().is_some_and(|&(prev, _)| prev >= n) {
            return Err(format!("message numbers are not ascending at {line:?}"));
        }
        out.push((n, value(v).map_err(|e| format!("{e} in {line:?}"))?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capa_from_dovecot_and_others() {
        let dovecot = b"CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n\
                        STLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n";
        let c = Pop3Capabilities::parse(dovecot);
        assert!(c.capa && c.top && c.uidl && c.resp_codes && c.pipelining && c.stls && c.user);
        assert_eq!(c.sasl, ["PLAIN", "LOGIN"]);
        assert!(c.has_sasl("plain") && !c.has_sasl("XOAUTH2"));
        assert_eq!(c.login_delay, None);

        let sparse = Pop3Capabilities::parse(b"sasl xoauth2\nLOGIN-DELAY 900 USER\nEXPIRE NEVER\n");
        assert!(sparse.capa && !sparse.uidl && !sparse.stls && !sparse.user);
        assert_eq!(sparse.sasl, ["XOAUTH2"]);
        assert_eq!(sparse.login_delay, Some(900));

        assert_eq!(
            Pop3Capabilities::parse(b""),
            Pop3Capabilities {
                capa: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn capabilities_after_login_keep_login_facts() {
        let before = Pop3Capabilities::parse(b"STLS\r\nUSER\r\nSASL PLAIN\r\n");
        let after = Pop3Capabilities::parse(b"UIDL\r\nTOP\r\n").after_login(&before);
        assert!(after.uidl && after.top && after.stls && after.user);
        assert_eq!(after.sasl, ["PLAIN"]);
        let no_capa = Pop3Capabilities::default().after_login(&before);
        assert_eq!(no_capa, before);
    }

    #[test]
    fn stat_parses() {
        for (text, want) in [
            ("2 320", Ok((2, 320))),
            ("0 0", Ok((0, 0))),
            ("3 5000000000 extra words", Ok((3, 5_000_000_000))),
            ("", Err(())),
            ("2", Err(())),
            ("two 320", Err(())),
            ("-1 3", Err(())),
        ] {
            assert_eq!(parse_stat(text).map_err(|_| ()), want, "{text:?}");
        }
    }

    #[test]
    fn listings_parse() {
        assert_eq!(
            parse_list(b"1 120\r\n2 200\r\n10 5000000000\r\n"),
            Ok(vec![(1, 120), (2, 200), (10, 5_000_000_000)])
        );
        assert_eq!(parse_list(b""), Ok(vec![]));
        assert_eq!(
            parse_uidl(b"1 whqtswO00WBw418f9t5JxYwZ\r\n3 QhdPYR:00WBw1Ph7x7\r\n"),
            Ok(vec![
                (1, "whqtswO00WBw418f9t5JxYwZ".to_owned()),
                (3, "QhdPYR:00WBw1Ph7x7".to_owned())
            ])
        );
        let bad: &[(&str, &[u8])] = &[
            ("no value", b"1\r\n"),
            ("zero", b"0 12\r\n"),
            ("not a number", b"x 12\r\n"),
            ("size not a number", b"1 big\r\n"),
            ("descending", b"2 10\r\n1 10\r\n"),
            ("repeated", b"1 10\r\n1 10\r\n"),
        ];
        for (name, body) in bad {
            assert!(parse_list(body).is_err(), "{name}");
        }
        let long = format!("1 {}\r\n", "a".repeat(71));
        assert!(parse_uidl(long.as_bytes()).is_err(), "71 characters");
        assert!(
            parse_uidl("1 caf\u{e9}\r\n".as_bytes()).is_err(),
            "non-ASCII"
        );
        assert!(parse_uidl(b"1 \x7f\r\n").is_err(), "DEL");
    }
}
