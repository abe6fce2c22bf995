//! Folder names between servers. Pure functions, no I/O.
//!
//! A folder is a list of UTF-8 segments (`["Archive", "2024"]`), independent of any
//! server's hierarchy delimiter and wire encoding. [`segments`] reads a source server's
//! raw (modified UTF-7) name; [`target_name`] writes the name a target server expects;
//! [`display`] is the form people read and `include`/`exclude` globs match.
//!
//! Invariant: [`target_name`] is deterministic and injective on the hierarchy it can
//! express: segments never merge, because a segment that contains the target's delimiter
//! gets it replaced by `_` instead of silently creating an extra level.

use crate::mutf7::{self, Mutf7Error};

/// The name IMAP reserves, case-insensitively, for the primary mailbox (RFC 3501 §5.1).
const INBOX: &str = "INBOX";

/// What replaces the target's delimiter inside a segment.
const REPLACEMENT: char = '_';

/// Splits a raw (wire, modified UTF-7) mailbox name into decoded segments.
///
/// The split happens on the raw name, outside `&...-` shift sequences, and each segment
/// is then decoded: the hierarchy is what the server means, and a delimiter can never be
/// hidden inside base64. No delimiter means a flat namespace: one segment.
///
/// # Errors
/// [`Mutf7Error`] when a segment is not valid modified UTF-7.
pub fn segments(raw: &str, delimiter: Option<char>) -> Result<Vec<String>, Mutf7Error> {
    let Some(delim) = delimiter else {
        return Ok(vec![mutf7::decode(raw)?]);
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_shift = false;
    for (i, c) in raw.char_indices() {
        if in_shift {
            in_shift = c != '-';
        } else if c == '&' {
            in_shift = true;
        } else if c == delim {
            out.push(decode_at(raw, start, i)?);
            start = i + c.len_utf8();
        }
    }
    out.push(decode_at(raw, start, raw.len())?);
    Ok(out)
}

/// Decodes `raw[start..end]`, reporting error offsets relative to the whole name.
fn decode_at(raw: &str, start: usize, end: usize) -> Result<String, Mutf7Error> {
    mutf7::decode(&raw[start..end]).map_err(|e| shift_error(e, start))
}

fn shift_error(e: Mutf7Error, by: usize) -> Mutf7Error {
    use Mutf7Error as E;
    match e {
        E::Unterminated { at } => E::Unterminated { at: at + by },
        E::BadBase64 { at, byte } => E::BadBase64 { at: at + by, byte },
        E::BadPadding { at } => E::BadPadding { at: at + by },
        E::LoneSurrogate { at } => E::LoneSurrogate { at: at + by },
        E::EncodedAscii { at } => E::EncodedAscii { at: at + by },
        E::RawByte { at, byte } => E::RawByte { at: at + by, byte },
    }
}

/// The raw (wire) name for `segments` on a target whose delimiter is `target_delimiter`.
///
/// Each segment that contains the target's delimiter gets it replaced by `_`; a first
/// segment equal to `INBOX` in any case becomes `INBOX`; the segments are joined with the
/// delimiter and the result is modified-UTF-7 encoded. A target without a delimiter has
/// a flat namespace: the segments are joined with `/`, as [`display`] shows them.
pub fn target_name(segments: &[String], target_delimiter: Option<char>) -> String {
    let joiner = target_delimiter.unwrap_or('/');
    let mut joined = String::new();
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            joined.push(joiner);
        }
        if i == 0 && segment.eq_ignore_ascii_case(INBOX) {
            joined.push_str(INBOX);
        } else if let Some(d) = target_delimiter {
            joined.extend(
                segment
                    .chars()
                    .map(|c| if c == d { REPLACEMENT } else { c }),
            );
        } else {
            joined.push_str(segment);
        }
    }
    mutf7::encode(&joined)
}

/// The human form of a folder: segments joined with `/` (`Archive/2024`).
pub fn display(segments: &[String]) -> String {
    segments.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn segments_table() {
        for (raw, delim, want) in [
            ("INBOX", Some('/'), s(&["INBOX"])),
            ("Archive/2024", Some('/'), s(&["Archive", "2024"])),
            ("INBOX.Sent.2024", Some('.'), s(&["INBOX", "Sent", "2024"])),
            ("Archive/2024", None, s(&["Archive/2024"])),
            ("R&AOk-sum&AOk-s/Q&-A", Some('/'), s(&["Résumés", "Q&A"])),
            (
                "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-",
                Some('.'),
                s(&["Отправленные"]),
            ),
            (
                "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
                Some('/'),
                s(&["~peter", "mail", "台北", "日本語"]),
            ),
            // A '-' delimiter must not cut a shift sequence in half.
            ("a-&AOk-x-b", Some('-'), s(&["a", "éx", "b"])),
            ("a/", Some('/'), s(&["a", ""])),
        ] {
            assert_eq!(
                segments(raw, delim).as_ref(),
                Ok(&want),
                "{raw:?} {delim:?}"
            );
        }
    }

    #[test]
    fn segments_report_offsets_in_the_whole_name() {
        assert_eq!(
            segments("ok/&Jjo!-", Some('/')),
            Err(Mutf7Error::BadBase64 { at: 7, byte: b'!' })
        );
    }

    #[test]
    fn target_name_table() {
        for (segs, delim, want) in [
            (s(&["INBOX", "Sent", "2024"]), Some('/'), "INBOX/Sent/2024"),
            (s(&["inbox", "Sub"]), Some('.'), "INBOX.Sub"),
            (s(&["Inbox"]), Some('/'), "INBOX"),
            (s(&["Archive", "inbox"]), Some('/'), "Archive/inbox"),
            (s(&["Q&A"]), Some('/'), "Q&-A"),
            (
                s(&["Отправленные"]),
                Some('/'),
                "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-",
            ),
            // A '/' inside a segment of a '.'-source cannot become a level on a '/'-target.
            (
                s(&["Projects", "A/B test", "2024"]),
                Some('/'),
                "Projects/A_B test/2024",
            ),
            (s(&["v1.2", "notes"]), Some('.'), "v1_2.notes"),
            (s(&["Archive", "2024"]), None, "Archive/2024"),
            (s(&["台北", "日本語"]), Some('.'), "&U,BTFw-.&ZeVnLIqe-"),
        ] {
            assert_eq!(target_name(&segs, delim), want, "{segs:?} {delim:?}");
        }
    }

    #[test]
    fn dot_source_to_slash_target() {
        let segs = segments("INBOX.Projekte.Entw&APw-rfe", Some('.')).expect("valid");
        assert_eq!(display(&segs), "INBOX/Projekte/Entwürfe");
        assert_eq!(target_name(&segs, Some('/')), "INBOX/Projekte/Entw&APw-rfe");
    }

    #[test]
    fn round_trip_through_target_and_back() {
        let segs = s(&["Kunden", "Müller & Söhne", "日本"]);
        for delim in [Some('/'), Some('.'), None] {
            let raw = target_name(&segs, delim);
            let back = segments(&raw, delim).expect("our own output decodes");
            if delim.is_some() {
                assert_eq!(back, segs, "{delim:?}");
            } else {
                assert_eq!(back, s(&["Kunden/Müller & Söhne/日本"]));
            }
        }
    }
}
