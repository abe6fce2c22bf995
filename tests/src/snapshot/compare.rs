//! Comparing two snapshots and explaining the differences to a human.
//!
//! Per folder, messages are compared as multisets of (sha256, flags, INTERNALDATE
//! instant): order and UIDs do not matter, duplicates do. A missing and an unexpected
//! message with the same bytes are reported together as "same bytes, different
//! flags/date", which is what a user needs to see first.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{MailboxSnapshot, MessageSnapshot};

/// At most this many lines per folder in a report.
const MAX_LINES_PER_FOLDER: usize = 20;

type Key = (String, Vec<String>, i64);

fn key(m: &MessageSnapshot) -> Key {
    (
        m.sha256.clone(),
        m.flags.iter().cloned().collect(),
        m.internal_date.timestamp(),
    )
}

/// Asserts that `target` holds what `source` holds: every source folder exists in the
/// target with the same multiset of (content, flags, INTERNALDATE). Extra target
/// folders are tolerated when empty (listed in the report otherwise, and failing).
///
/// # Panics
/// With a readable report: which folder, which message (subject, Message-ID, size),
/// what differs.
#[track_caller]
pub fn assert_same(source: &MailboxSnapshot, target: &MailboxSnapshot) {
    if let Some(report) = diff(source, target) {
        panic!("target mailbox differs from source:\n{report}");
    }
}

/// The differences between `source` and `target` as [`assert_same`] judges them, or
/// `None` when they are the same.
pub fn diff(source: &MailboxSnapshot, target: &MailboxSnapshot) -> Option<String> {
    let mut report = String::new();
    let mut failed = false;
    for (path, src) in &source.folders {
        let Some(tgt) = target.folders.get(path) else {
            failed = true;
            let _ = writeln!(
                report,
                "folder {path:?}: missing in target ({} messages in source)",
                src.len()
            );
            continue;
        };
        let lines = diff_folder(src, tgt);
        if !lines.is_empty() {
            failed = true;
            let _ = writeln!(
                report,
                "folder {path:?}: source has {}, target has {} messages",
                src.len(),
                tgt.len()
            );
            for line in lines.iter().take(MAX_LINES_PER_FOLDER) {
                let _ = writeln!(report, "  {line}");
            }
            if lines.len() > MAX_LINES_PER_FOLDER {
                let _ = writeln!(
                    report,
                    "  … and {} more",
                    lines.len() - MAX_LINES_PER_FOLDER
                );
            }
        }
    }
    let extras: Vec<_> = target
        .folders
        .iter()
        .filter(|(p, _)| !source.folders.contains_key(*p))
        .collect();
    for (path, messages) in &extras {
        if !messages.is_empty() {
            failed = true;
        }
        let _ = writeln!(
            report,
            "folder {path:?}: only in target ({} messages)",
            messages.len()
        );
    }
    failed.then(|| {
        format!(
            "source: {} folders, {} messages; target: {} folders, {} messages\n{report}",
            source.folders.len(),
            source.message_count(),
            target.folders.len(),
            target.message_count()
        )
    })
}

/// Lines describing how one folder differs; empty when it does not.
fn diff_folder(source: &[MessageSnapshot], target: &[MessageSnapshot]) -> Vec<String> {
    let mut counts: BTreeMap<Key, (Vec<&MessageSnapshot>, Vec<&MessageSnapshot>)> = BTreeMap::new();
    for m in source {
        counts.entry(key(m)).or_default().0.push(m);
    }
    for m in target {
        counts.entry(key(m)).or_default().1.push(m);
    }
    let mut missing: Vec<&MessageSnapshot> = Vec::new();
    let mut unexpected: Vec<&MessageSnapshot> = Vec::new();
    for (src, tgt) in counts.values() {
        missing.extend(src.iter().skip(tgt.len()));
        unexpected.extend(tgt.iter().skip(src.len()));
    }
    let mut lines = Vec::new();
    // Same bytes on both sides but different flags or date: say so explicitly.
    missing.retain(|m| {
        let Some(pos) = unexpected.iter().position(|u| u.sha256 == m.sha256) else {
            return true;
        };
        let u = unexpected.remove(pos);
        let mut what = Vec::new();
        if m.flags != u.flags {
            what.push(format!("flags {:?} -> {:?}", m.flags, u.flags));
        }
        if m.internal_date != u.internal_date {
            what.push(format!(
                "date {} -> {}",
                m.internal_date.to_rfc3339(),
                u.internal_date.to_rfc3339()
            ));
        }
        lines.push(format!("{}: {}", describe(m), what.join(", ")));
        false
    });
    lines.extend(
        missing
            .iter()
            .map(|m| format!("missing in target: {}", describe(m))),
    );
    lines.extend(
        unexpected
            .iter()
            .map(|m| format!("unexpected in target (extra or duplicate): {}", describe(m))),
    );
    lines
}

fn describe(m: &MessageSnapshot) -> String {
    format!(
        "subject {:?}, Message-ID {}, {} bytes, date {}, flags {:?}, sha256 {}",
        m.subject.as_deref().unwrap_or(""),
        m.message_id
            .as_deref()
            .map_or("(none)".to_owned(), |id| format!("<{id}>")),
        m.size,
        m.internal_date.to_rfc3339(),
        m.flags,
        &m.sha256[..12.min(m.sha256.len())]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn msg(body: &str, flags: &[&str], date: &str) -> MessageSnapshot {
        let body = format!("Subject: {body}\r\nMessage-ID: <{body}@x>\r\n\r\n{body}\r\n");
        let date = DateTime::parse_from_rfc3339(date).expect("valid date");
        MessageSnapshot::of(body.as_bytes(), flags.iter().map(|f| (*f).to_owned()), date)
    }

    fn mailbox(folders: &[(&str, Vec<MessageSnapshot>)]) -> MailboxSnapshot {
        MailboxSnapshot {
            folders: folders
                .iter()
                .map(|(p, m)| ((*p).to_owned(), m.clone()))
                .collect(),
        }
    }

    #[test]
    fn judges_like_a_user() {
        let a = msg("a", &["\\Seen"], "2020-01-01T10:00:00+02:00");
        let a_utc = msg("a", &["\\Seen"], "2020-01-01T08:00:00+00:00");
        let a_unseen = msg("a", &[], "2020-01-01T10:00:00+02:00");
        let b = msg("b", &[], "2021-01-01T10:00:00Z");
        let src = mailbox(&[
            ("INBOX", vec![a.clone(), a.clone(), b.clone()]),
            ("Empty", vec![]),
        ]);
        // (target, expected fragments of the report; empty = same)
        let cases: Vec<(MailboxSnapshot, &[&str])> = vec![
            (
                mailbox(&[
                    ("INBOX", vec![b.clone(), a_utc.clone(), a.clone()]),
                    ("Empty", vec![]),
                ]),
                &[],
            ),
            (
                mailbox(&[
                    ("INBOX", vec![a.clone(), a.clone(), b.clone()]),
                    ("Empty", vec![]),
                    ("Extra", vec![]),
                ]),
                &[],
            ),
            (
                mailbox(&[("INBOX", vec![a.clone(), b.clone()]), ("Empty", vec![])]),
                &["missing in target: subject \"a\""],
            ),
            (
                mailbox(&[
                    ("INBOX", vec![a.clone(), a.clone(), a.clone(), b.clone()]),
                    ("Empty", vec![]),
                ]),
                &["unexpected in target"],
            ),
            (
                mailbox(&[
                    ("INBOX", vec![a.clone(), a_unseen, b.clone()]),
                    ("Empty", vec![]),
                ]),
                &["flags {\"\\\\Seen\"} -> {}"],
            ),
            (
                mailbox(&[("INBOX", vec![a.clone(), a.clone(), b.clone()])]),
                &["folder \"Empty\": missing in target"],
            ),
            (
                mailbox(&[
                    ("INBOX", vec![a.clone(), a.clone()]),
                    ("Empty", vec![]),
                    ("Other", vec![b]),
                ]),
                &["only in target (1 messages)", "Message-ID <b@x>"],
            ),
        ];
        for (i, (target, fragments)) in cases.into_iter().enumerate() {
            let report = diff(&src, &target);
            if fragments.is_empty() {
                assert_eq!(report, None, "case {i}");
            } else {
                let report = report.unwrap_or_else(|| panic!("case {i}: expected a difference"));
                for f in fragments {
                    assert!(report.contains(f), "case {i}: {f:?} not in\n{report}");
                }
            }
        }
    }
}
