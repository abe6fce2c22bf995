//! Address headers as Graph `recipient`s: what is a valid mailbox is carried, what is
//! not is dropped and named, so one odd address never fails a whole message.
//!
//! - `"john doe"@example.com` is an address with a quoted local part (RFC 5322 §3.4.1),
//!   not a display name: mail-parser reads it as name `john doe` with address
//!   `@example.com`, which is put back together here.
//! - Groups (`undisclosed-recipients:;`, `Team: a@x, b@y;`, RFC 5322 §3.4) have no
//!   Exchange form: their members are carried, the group's name is not; an empty group
//!   carries nothing and loses nothing.
//! - A mailbox is valid when it is `local@domain` with a dot-atom or quoted-string local
//!   part of at most 64 octets and a domain of dot-separated labels (letters, digits,
//!   hyphens, or UTF-8 for internationalised names, RFC 6531) or an address literal,
//!   at most 254 octets in all (RFC 5321 §4.5.3.1).

use mail_parser::{Addr, Address};
use serde_json::{Value, json};

/// The Graph `recipient`s of `address`; what could not be carried is added to `dropped`.
pub(super) fn recipients(address: &Address<'_>, dropped: &mut Vec<String>) -> Vec<Value> {
    address
        .iter()
        .filter_map(|a| recipient(a, dropped))
        .collect()
}

/// One `recipient`, or `None` (and an entry in `dropped`).
pub(super) fn recipient(a: &Addr<'_>, dropped: &mut Vec<String>) -> Option<Value> {
    let name = a.name().map(str::trim).filter(|n| !n.is_empty());
    let (address, name) = match (a.address().map(str::trim), name) {
        // `"john doe"@example.com`: the "name" is the quoted local part.
        (Some(addr), Some(local)) if addr.starts_with('@') => (quote_local(local) + addr, None),
        (Some(addr), name) if !addr.is_empty() => (addr.to_owned(), name),
        (_, Some(name)) => {
            dropped.push(format!("{name:?} (no address)"));
            return None;
        }
        _ => return None,
    };
    if !valid_mailbox(&address) {
        dropped.push(match name {
            Some(n) => format!("{n:?} <{address}>"),
            None => format!("<{address}>"),
        });
        return None;
    }
    let mut email = json!({ "address": address });
    if let (Some(name), Some(map)) = (name, email.as_object_mut()) {
        map.insert("name".into(), json!(name));
    }
    Some(json!({ "emailAddress": email }))
}

/// A local part as written: bare when it is a dot-atom, else a quoted string.
fn quote_local(local: &str) -> String {
    if is_dot_atom(local) {
        local.to_owned()
    } else {
        format!("\"{}\"", local.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// RFC 5322 `atext`, and UTF-8 beyond ASCII (RFC 6532 §3.2).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|w| !w.is_empty() && w.chars().all(is_atext))
}

/// Whether `address` is a mailbox Exchange can take (see the module docs).
pub(super) fn valid_mailbox(address: &str) -> bool {
    if address.len() > 254
        || address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() && !c.is_ascii())
    {
        return false;
    }
    let Some((local, domain)) = split_mailbox(address) else {
        return false;
    };
    local.len() <= 64 && valid_local(local) && valid_domain(domain)
}

/// `local` and `domain` at the last `@` outside a quoted local part.
fn split_mailbox(address: &str) -> Option<(&str, &str)> {
    if let Some(rest) = address.strip_prefix('"') {
        // A quoted local part ends at the first unescaped quote.
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    let end = i + 2; // the opening quote and this one
                    return address[end..]
                        .strip_prefix('@')
                        .map(|d| (&address[..end], d));
                }
                _ => escaped = false,
            }
        }
        return None;
    }
    address.rsplit_once('@')
}

fn valid_local(local: &str) -> bool {
    if let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        // qtext or quoted-pair, any printable character (RFC 5322 §3.2.4).
        return !inner.is_empty() && inner.chars().all(|c| !c.is_control());
    }
    is_dot_atom(local)
}

fn valid_domain(domain: &str) -> bool {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return !literal.is_empty()
            && literal
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '[' && c != ']');
    }
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    /// `(address, name)` pairs carried and the dropped list, for a `To:` header.
    fn carried(header: &str) -> (Vec<(String, Option<String>)>, Vec<String>) {
        let mime = format!("To: {header}\r\nSubject: x\r\n\r\nbody");
        let m = MessageParser::default()
            .parse(mime.as_bytes())
            .expect("parsed");
        let mut dropped = Vec::new();
        let got = m
            .to()
            .map(|a| recipients(a, &mut dropped))
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let e = &r["emailAddress"];
                (
                    e["address"].as_str().unwrap_or("").to_owned(),
                    e.get("name").and_then(Value::as_str).map(str::to_owned),
                )
            })
            .collect();
        (got, dropped)
    }

    #[test]
    fn addresses_are_carried_or_named() {
        let a = |s: &str| (s.to_owned(), None);
        let n = |s: &str, name: &str| (s.to_owned(), Some(name.to_owned()));
        type Carried = Vec<(String, Option<String>)>;
        let table: Vec<(&str, Carried, Vec<&str>)> = vec![
            ("bob@example.com", vec![a("bob@example.com")], vec![]),
            (
                "Bob Smith <bob@example.com>",
                vec![n("bob@example.com", "Bob Smith")],
                vec![],
            ),
            (
                "\"john doe\"@example.com",
                vec![a("\"john doe\"@example.com")],
                vec![],
            ),
            ("undisclosed-recipients:;", vec![], vec![]),
            (
                "Team: a@x.com, b@y.com;, c@z.org",
                vec![a("a@x.com"), a("b@y.com"), a("c@z.org")],
                vec![],
            ),
            (
                "not an address, <bad@@x>, ok@x.com, <x@-bad-.com>",
                vec![a("ok@x.com")],
                vec![
                    "\"not an address\" (no address)",
                    "<bad@@x>",
                    "<x@-bad-.com>",
                ],
            ),
            (
                "jörg@müller.de, u@[192.0.2.1]",
                vec![a("jörg@müller.de"), a("u@[192.0.2.1]")],
                vec![],
            ),
        ];
        for (header, want, want_dropped) in table {
            let (got, dropped) = carried(header);
            assert_eq!(got, want, "{header}");
            assert_eq!(dropped, want_dropped, "{header}");
        }
    }

    #[test]
    fn mailbox_syntax() {
        for (address, ok) in [
            ("a@b", true),
            ("a.b-c+d@e.example", true),
            ("\"a b\"@x.com", true),
            ("\"a\\\"b\"@x.com", true),
            ("@x.com", false),
            ("a@", false),
            ("a..b@x.com", false),
            ("a b@x.com", false),
            ("a@x..com", false),
            (&format!("{}@x.com", "l".repeat(65)), false),
            (&format!("a@{}.com", "d".repeat(64)), false),
        ] {
            assert_eq!(valid_mailbox(address), ok, "{address}");
        }
    }
}
