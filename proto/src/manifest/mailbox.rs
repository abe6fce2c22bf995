//! Mailboxes: the spec each one resolves to, and the checks that span all of them
//! (defaults for users and passwords, duplicate addresses).
//!
//! Inline `[[mailbox]]` tables and CSV rows both become a [`RawMailbox`] first (what was
//! written), then a [`MailboxSpec`] (every default applied) once the server passwords
//! are known.

use super::options::Options;
use super::problem::{Origin, Problem};
use super::pst_csv::PstFile;
use super::secret::SecretRef;
use crate::ids::MailboxId;
use std::collections::HashMap;

/// One mailbox to migrate, with every default applied.
#[derive(Debug, Clone)]
pub struct MailboxSpec {
    /// The mailbox key: its e-mail address as written (trimmed).
    pub id: MailboxId,
    /// Source login; defaults to the address.
    pub source_user: String,
    /// Source password; defaults to `[source].password`.
    pub source_password: SecretRef,
    /// Target address; defaults to the source address. Graph and EWS address the
    /// target mailbox by it.
    pub target_email: String,
    /// Target login; defaults to `target_email`.
    pub target_user: String,
    /// Target password; defaults to `[target].password`.
    pub target_password: SecretRef,
    /// This mailbox's own options (its `options` table over the tenant's), if it has any.
    pub options: Option<Options>,
    /// Where the mailbox was defined, for error messages.
    pub origin: Origin,
    /// With a PST source: the mailbox's files (rows of the mapping CSV), in row order.
    pub pst: Vec<PstFile>,
}

/// A mailbox as written, before defaults.
#[derive(Debug)]
pub(super) struct RawMailbox {
    pub(super) email: String,
    pub(super) source_user: Option<String>,
    pub(super) source_password: Option<SecretRef>,
    pub(super) target_email: Option<String>,
    pub(super) target_user: Option<String>,
    pub(super) target_password: Option<SecretRef>,
    pub(super) origin: Origin,
    pub(super) options: Option<Options>,
    /// Whether it is a CSV row (changes the "how to fix" hints).
    pub(super) from_csv: bool,
    /// With a PST source: the mailbox's files.
    pub(super) pst: Vec<PstFile>,
}

/// Checks the shape of an address: one '@' with text on both sides, no spaces.
pub(super) fn check_email(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("empty address; write the mailbox's e-mail address".to_owned());
    }
    match address.split_once('@') {
        None => Err(format!(
            "\"{address}\" has no '@'; write the full e-mail address"
        )),
        Some((local, domain)) if local.is_empty() || domain.is_empty() || domain.contains('@') => {
            Err(format!(
                "\"{address}\" is not an e-mail address; write it as user@domain"
            ))
        }
        Some(_) if address.chars().any(char::is_whitespace) => Err(format!(
            "\"{address}\" contains a space; write the address without spaces"
        )),
        Some(_) => Ok(()),
    }
}

/// The server-wide password defaults a mailbox falls back to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Defaults<'a> {
    pub(super) source_password: Option<&'a SecretRef>,
    pub(super) target_password: Option<&'a SecretRef>,
}

/// Applies the defaults to `raw`; a missing password is a problem.
pub(super) fn resolve(
    raw: RawMailbox,
    defaults: Defaults<'_>,
    problems: &mut Vec<Problem>,
) -> Option<MailboxSpec> {
    let (source_fix, target_fix) = if !raw.pst.is_empty() {
        (
            "(a PST source needs none)",
            "the mapping CSV has no password column: set password (and login) in [target]",
        )
    } else if raw.from_csv {
        (
            "fill its Password cell",
            "fill its TargetPassword cell (add the column if needed)",
        )
    } else {
        (
            "add password = \"env:NAME\" to this [[mailbox]]",
            "add target_password = \"env:NAME\" to this [[mailbox]]",
        )
    };
    let source_password = raw
        .source_password
        .or_else(|| defaults.source_password.cloned());
    let target_password = raw
        .target_password
        .or_else(|| defaults.target_password.cloned());
    let mut complain = |side: &str, fix: &str, table: &str| {
        problems.push(Problem {
            origin: raw.origin.clone(),
            message: format!(
                "mailbox \"{}\": no {side} password; {fix}, or set password in [{table}]",
                raw.email
            ),
        });
    };
    if source_password.is_none() {
        complain("source", source_fix, "source");
    }
    if target_password.is_none() {
        complain("target", target_fix, "target");
    }
    let target_email = raw.target_email.unwrap_or_else(|| raw.email.clone());
    Some(MailboxSpec {
        source_user: raw.source_user.unwrap_or_else(|| raw.email.clone()),
        source_password: source_password?,
        target_user: raw.target_user.unwrap_or_else(|| target_email.clone()),
        target_password: target_password?,
        target_email,
        id: MailboxId(raw.email),
        origin: raw.origin,
        options: raw.options,
        pst: raw.pst,
    })
}

/// Reports every address in `new` that repeats one in `existing` or earlier in `new`,
/// ignoring case (mail systems treat addresses case-insensitively in practice).
pub(super) fn check_duplicates(
    existing: &[MailboxSpec],
    new: &[MailboxSpec],
    problems: &mut Vec<Problem>,
) {
    let mut seen: HashMap<String, &Origin> = HashMap::with_capacity(existing.len() + new.len());
    for m in existing {
        seen.entry(m.id.0.to_lowercase()).or_insert(&m.origin);
    }
    for m in new {
        match seen.get(&m.id.0.to_lowercase()) {
            Some(first) => problems.push(Problem {
                origin: m.origin.clone(),
                message: format!(
                    "mailbox \"{}\" is listed twice (first at {first}); keep one of them",
                    m.id
                ),
            }),
            None => {
                seen.insert(m.id.0.to_lowercase(), &m.origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(email: &str, line: usize) -> RawMailbox {
        RawMailbox {
            options: None,
            email: email.to_owned(),
            source_user: None,
            source_password: Some(SecretRef::Env("S".to_owned())),
            target_email: None,
            target_user: None,
            target_password: None,
            origin: Origin::new("m.toml", line),
            from_csv: false,
            pst: Vec::new(),
        }
    }

    #[test]
    fn emails_are_checked() {
        for ok in ["a@b", "alice@contoso.example", "Bob.Smith+x@a.b"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in ["", "alice", "@b", "a@", "a@b@c", "a b@c"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_apply_and_missing_passwords_are_reported() {
        let tp = SecretRef::Env("T".to_owned());
        let with = Defaults {
            source_password: None,
            target_password: Some(&tp),
        };
        let mut problems = Vec::new();
        let m = resolve(raw("a@b", 3), with, &mut problems).expect("resolves");
        assert!(problems.is_empty());
        assert_eq!(
            (
                m.source_user.as_str(),
                m.target_email.as_str(),
                m.target_user.as_str()
            ),
            ("a@b", "a@b", "a@b")
        );
        assert_eq!(m.target_password.to_string(), "env:T");

        let without = Defaults {
            source_password: None,
            target_password: None,
        };
        assert!(resolve(raw("c@d", 7), without, &mut problems).is_none());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].origin.line, 7);
        assert!(
            problems[0].message.contains("no target password"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn duplicates_name_both_places() {
        let tp = SecretRef::Env("T".to_owned());
        let d = Defaults {
            source_password: None,
            target_password: Some(&tp),
        };
        let mut problems = Vec::new();
        let old = vec![resolve(raw("Alice@X", 4), d, &mut problems).expect("ok")];
        let new = vec![
            resolve(raw("bob@x", 9), d, &mut problems).expect("ok"),
            resolve(raw("alice@x", 10), d, &mut problems).expect("ok"),
            resolve(raw("BOB@x", 11), d, &mut problems).expect("ok"),
        ];
        check_duplicates(&old, &new, &mut problems);
        let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "m.toml:10: mailbox \"alice@x\" is listed twice (first at m.toml:4); keep one of them",
                "m.toml:11: mailbox \"BOB@x\" is listed twice (first at m.toml:9); keep one of them",
            ]
        );
    }
}
