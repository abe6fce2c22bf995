//! Mailboxes from a CSV in Exchange Online's IMAP-migration format.
//!
//! The header row is required; column names are case-insensitive and may come in any
//! order. `EmailAddress`, `UserName` and `Password` are required (Exchange's own format);
//! `TargetAddress`, `TargetUserName` and `TargetPassword` are ours and optional. An empty
//! optional cell means "use the default". Plaintext passwords are allowed here (that is
//! the format); a cell written `env:NAME` or `file:PATH` is a reference instead, with
//! relative paths resolved against the CSV's directory. Every row problem carries the
//! row's line number.

use super::mailbox::{RawMailbox, check_email};
use super::problem::{Problem, Sink};
use super::secret::{SecretRef, parse_reference};
use secrecy::SecretString;
use std::path::Path;

/// The columns we understand: (name, required).
const COLUMNS: [(&str, bool); 6] = [
    ("EmailAddress", true),
    ("UserName", true),
    ("Password", true),
    ("TargetAddress", false),
    ("TargetUserName", false),
    ("TargetPassword", false),
];

/// Index of each known column in the header, in [`COLUMNS`] order.
type Layout = [Option<usize>; 6];

/// Parses the CSV text of `path` into raw mailboxes, with every problem found.
pub(super) fn parse_rows(path: &Path, text: &str) -> (Vec<RawMailbox>, Vec<Problem>) {
    // Excel writes a UTF-8 byte-order mark; it is not part of the first column's name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sink = Sink::new(path, text);
    // The csv crate's positions point at the blank lines it skipped before a record, and
    // its line counter ignores them, so lines are computed from the record's first byte.
    let start_of = |position: Option<&csv::Position>| {
        let byte = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        let rest = text.get(byte..).unwrap_or("");
        Some(byte + (rest.len() - rest.trim_start_matches(['\r', '\n']).len()))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true) // so that we report every short or long row ourselves
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            sink.at(start_of(None), format!("cannot read the header row: {e}"));
            return (Vec::new(), sink.into_sorted());
        }
    };
    let header_at = start_of(header.position());
    let Some(layout) = read_header(&header, |m| sink.at(header_at, m)) else {
        return (Vec::new(), sink.into_sorted());
    };
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                sink.at(start_of(e.position()), format!("unreadable row: {e}"));
                continue;
            }
        };
        let at = start_of(record.position());
        if record.len() != header.len() {
            sink.at(
                at,
                format!(
                    "row has {} fields but the header has {}; check for a missing or extra comma \
                     (quote cells that contain commas)",
                    record.len(),
                    header.len()
                ),
            );
            continue;
        }
        let cell = |i: usize| layout[i].and_then(|c| record.get(c)).unwrap_or("");
        let email = cell(0).trim().to_owned();
        if let Err(why) = check_email(&email) {
            sink.at(at, format!("EmailAddress: {why}"));
            continue;
        }
        let mut secret = |col: usize| -> Option<SecretRef> {
            let text = cell(col);
            if text.is_empty() {
                return None;
            }
            match parse_reference(text, base_dir) {
                Ok(Some(r)) => Some(r),
                Ok(None) => Some(SecretRef::Inline(SecretString::from(text))),
                Err(why) => {
                    let name = COLUMNS[col].0;
                    sink.at(at, format!("mailbox \"{email}\": {name}: {why}"));
                    None
                }
            }
        };
        let source_password = secret(2);
        let target_password = secret(5);
        let optional = |i: usize| {
            Some(cell(i).trim())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let target_email = optional(3);
        if let Some(t) = &target_email
            && let Err(why) = check_email(t)
        {
            sink.at(at, format!("mailbox \"{email}\": TargetAddress: {why}"));
        }
        rows.push(RawMailbox {
            options: None,
            source_user: optional(1),
            source_password,
            target_email,
            target_user: optional(4),
            target_password,
            origin: sink.origin(at),
            from_csv: true,
            pst: Vec::new(),
            email,
        });
    }
    (rows, sink.into_sorted())
}

/// Maps header names to [`COLUMNS`]; reports unknown, repeated and missing columns.
/// `None` when a required column is missing (rows cannot be read then).
fn read_header(header: &csv::StringRecord, mut report: impl FnMut(String)) -> Option<Layout> {
    let mut layout: Layout = [None; 6];
    for (index, name) in header.iter().enumerate() {
        let name = name.trim();
        match COLUMNS
            .iter()
            .position(|(c, _)| c.eq_ignore_ascii_case(name))
        {
            Some(col) if layout[col].is_some() => {
                report(format!("column \"{name}\" appears twice; keep one"));
            }
            Some(col) => layout[col] = Some(index),
            None => report(format!(
                "unknown column \"{name}\"; known columns: {}",
                COLUMNS.map(|(c, _)| c).join(", ")
            )),
        }
    }
    let mut complete = true;
    for ((name, required), found) in COLUMNS.iter().zip(layout) {
        if *required && found.is_none() {
            report(format!(
                "missing column \"{name}\"; the header row must name EmailAddress, UserName and Password"
            ));
            complete = false;
        }
    }
    complete.then_some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn parse(text: &str) -> (Vec<RawMailbox>, Vec<String>) {
        let (rows, problems) = parse_rows(Path::new("dir/users.csv"), text);
        (rows, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn happy_path() {
        let text = "\u{feff}username,EMAILADDRESS,Password,TargetPassword,TargetAddress\n\
                    alice,alice@x,hunter2,env:ALICE_T,\n\
                    \r\n\
                    ,bob@x,file:bob.pw,,bob@new\r\n\
                    carol,carol@x,\"pa,ss\",,\n";
        let (rows, problems) = parse(text);
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(rows.len(), 3);
        let (a, b, c) = (&rows[0], &rows[1], &rows[2]);
        assert_eq!(
            (a.email.as_str(), a.source_user.as_deref(), a.origin.line),
            ("alice@x", Some("alice"), 2)
        );
        match &a.source_password {
            Some(SecretRef::Inline(s)) => assert_eq!(s.expose_secret(), "hunter2"),
            other => panic!("inline expected, got {other:?}"),
        }
        assert_eq!(
            a.target_password
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("env:ALICE_T")
        );
        assert_eq!(a.target_email, None);
        assert_eq!((b.source_user.as_deref(), b.origin.line), (None, 4));
        assert_eq!(
            b.source_password
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("file:dir/bob.pw")
        );
        assert_eq!(b.target_email.as_deref(), Some("bob@new"));
        assert!(b.target_password.is_none());
        match &c.source_password {
            Some(SecretRef::Inline(s)) => assert_eq!(s.expose_secret(), "pa,ss"),
            other => panic!("inline expected, got {other:?}"),
        }
    }

    #[test]
    fn row_problems_carry_line_numbers() {
        let text = "EmailAddress,UserName,Password\n\
                    ok@x,ok,pw\n\
                    short@x,short\n\
                    ,nobody,pw\n\
                    noat,x,pw\n\
                    a@b,a,pw,extra\n\
                    envbad@x,e,env:\n";
        let (rows, problems) = parse(text);
        assert_eq!(
            problems,
            [
                "dir/users.csv:3: row has 2 fields but the header has 3; check for a missing or extra comma (quote cells that contain commas)",
                "dir/users.csv:4: EmailAddress: empty address; write the mailbox's e-mail address",
                "dir/users.csv:5: EmailAddress: \"noat\" has no '@'; write the full e-mail address",
                "dir/users.csv:6: row has 4 fields but the header has 3; check for a missing or extra comma (quote cells that contain commas)",
                "dir/users.csv:7: mailbox \"envbad@x\": Password: \"env:\" is not a valid variable name; write letters, digits and '_', like \"env:ALICE_PW\"",
            ]
        );
        assert_eq!(
            rows.len(),
            2,
            "the good row and the one with a bad password cell"
        );
    }

    #[test]
    fn header_problems() {
        let (rows, problems) = parse("EmailAddress,Passwd,Email Address,emailaddress\na@b,x,y,z\n");
        assert!(rows.is_empty());
        assert_eq!(
            problems,
            [
                "dir/users.csv:1: unknown column \"Passwd\"; known columns: EmailAddress, UserName, Password, TargetAddress, TargetUserName, TargetPassword",
                "dir/users.csv:1: unknown column \"Email Address\"; known columns: EmailAddress, UserName, Password, TargetAddress, TargetUserName, TargetPassword",
                "dir/users.csv:1: column \"emailaddress\" appears twice; keep one",
                "dir/users.csv:1: missing column \"UserName\"; the header row must name EmailAddress, UserName and Password",
                "dir/users.csv:1: missing column \"Password\"; the header row must name EmailAddress, UserName and Password",
            ]
        );
        let (rows, problems) = parse("");
        assert!(rows.is_empty());
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
