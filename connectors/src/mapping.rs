//! Folder names between servers. Pure functions, no I/O.
//!
//! A folder is a list of UTF-8 segments (`["Archive", "2024"]`), independent of any
//! server's hierarchy delimiter, personal-namespace prefix and wire encoding.
//! [`segments`] reads a source server's raw (modified UTF-7) name; [`target_name`] writes
//! the name a target server expects; [`Naming`] adds the personal namespace (RFC 2342)
//! on both sides, so `INBOX.a.b` on Cyrus is `["a", "b"]`, `a/b` on Dovecot and
//! `INBOX.a.b` again on another Cyrus, while INBOX stays INBOX; [`display`] is the form
//! people read and `include`/`exclude` globs match.
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

/// How one server names the folders of a user: the personal namespace's prefix and
/// delimiter (RFC 2342), and the prefixes of its other namespaces (other users',
/// shared), whose folders are not the user's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    /// The personal namespace's prefix: `""` (Dovecot's default) or `"INBOX."` (Cyrus,
    /// Courier), as the server writes it.
    pub prefix: String,
    /// The hierarchy delimiter (`None`: flat).
    pub delimiter: Option<char>,
    /// Prefixes of the other users' and shared namespaces (`"user."`, `"#shared."`).
    pub others: Vec<String>,
}

impl Naming {
    /// The user's folder path of raw name `raw`, relative to the personal namespace;
    /// `None` for a folder of another namespace (another user's, shared). `INBOX` in any
    /// case is `["INBOX"]`.
    ///
    /// # Errors
    /// [`Mutf7Error`] when a segment is not valid modified UTF-7.
    pub fn personal_segments(&self, raw: &str) -> Result<Option<Vec<String>>, Mutf7Error> {
        if raw.eq_ignore_ascii_case(INBOX) {
            return Ok(Some(vec![INBOX.to_owned()]));
        }
        // The longest prefix that matches decides (`""` matches everything).
        let other = self
            .others
            .iter()
            .filter(|p| !p.is_empty() && raw.starts_with(p.as_str()))
            .map(String::len)
            .max();
        let rest = match raw.strip_prefix(self.prefix.as_str()) {
            Some(rest) if other.is_none_or(|o| o <= self.prefix.len()) => rest,
            // `INBOX.` prefixes compare case-insensitively, as INBOX does.
            _ if self.prefix.len() > INBOX.len()
                && raw.len() > self.prefix.len()
                && raw.is_char_boundary(self.prefix.len())
                && raw[..self.prefix.len()].eq_ignore_ascii_case(&self.prefix)
                && other.is_none() =>
            {
                &raw[self.prefix.len()..]
            }
            _ => return Ok(None),
        };
        if rest.is_empty() {
            return Ok(None);
        }
        segments(rest, self.delimiter).map(Some)
    }

    /// The raw (wire) name of the user's folder at `segments` on this server: INBOX as
    /// it is, anything else inside the personal namespace (see [`target_name`]).
    pub fn wire_name(&self, segments: &[String]) -> String {
        if segments.len() == 1 && segments[0].eq_ignore_ascii_case(INBOX) {
            return INBOX.to_owned();
        }
        format!("{}{}", self.prefix, target_name(segments, self.delimiter))
    }
}

/// Characters a target refuses in a folder name, besides its hierarchy delimiter: `/`
/// wherever it is not the delimiter (servers that keep folders as files refuse it:
/// Cyrus, Courier, Dovecot's Maildir++), and on Cyrus (3.6, `unixhierarchysep: no`,
/// tried: `CREATE` answers "Invalid mailbox name") also `% \ ; ! { } | `` ` `` " < >`
/// (e2e_servers' `plan_lists_every_folder_cyrus_cannot_hold` tries them; `?` and `@`
/// are taken).
pub fn forbidden_chars(delimiter: Option<char>, cyrus: bool) -> Vec<char> {
    let mut out = Vec::new();
    if delimiter != Some('/') && delimiter.is_some() {
        out.push('/');
    }
    if cyrus {
        out.extend(['%', '\\', ';', '!', '{', '}', '|', '`', '"', '<', '>']);
    }
    out
}

/// `segment` with every character the target cannot hold in a name (its delimiter and
/// `forbidden`) replaced by `_`; `None` when nothing had to change.
pub fn fit_segment(segment: &str, delimiter: Option<char>, forbidden: &[char]) -> Option<String> {
    let bad = |c: char| Some(c) == delimiter || forbidden.contains(&c);
    segment.contains(bad).then(|| {
        segment
            .chars()
            .map(|c| if bad(c) { REPLACEMENT } else { c })
            .collect()
    })
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
    fn personal_namespaces_on_both_sides() {
        let cyrus = Naming {
            prefix: "INBOX.".into(),
            delimiter: Some('.'),
            others: vec!["user.".into(), "".into()],
        };
        let dovecot = Naming {
            prefix: String::new(),
            delimiter: Some('/'),
            others: vec!["shared/".into()],
        };
        for (raw, want) in [
            ("INBOX", Some(s(&["INBOX"]))),
            ("inbox", Some(s(&["INBOX"]))),
            ("INBOX.a.b", Some(s(&["a", "b"]))),
            ("Inbox.Work", Some(s(&["Work"]))),
            ("INBOX.INBOX.x", Some(s(&["INBOX", "x"]))),
            ("user.bob.Sent", None),
            ("INBOX.", None),
        ] {
            assert_eq!(cyrus.personal_segments(raw), Ok(want), "{raw}");
        }
        for (raw, want) in [
            ("INBOX", Some(s(&["INBOX"]))),
            ("a/b", Some(s(&["a", "b"]))),
            ("INBOX/x", Some(s(&["INBOX", "x"]))),
            ("shared/team/x", None),
        ] {
            assert_eq!(dovecot.personal_segments(raw), Ok(want), "{raw}");
        }
        // Cyrus -> Dovecot -> Cyrus gives the same names back.
        for raw in ["INBOX", "INBOX.a.b", "INBOX.INBOX.x", "INBOX.Entw&APw-rfe"] {
            let segs = cyrus
                .personal_segments(raw)
                .expect("valid")
                .expect("personal");
            let on_dovecot = dovecot.wire_name(&segs);
            let back = dovecot
                .personal_segments(&on_dovecot)
                .expect("valid")
                .expect("personal");
            assert_eq!(cyrus.wire_name(&back), raw, "{on_dovecot}");
        }
        assert_eq!(dovecot.wire_name(&s(&["a", "b"])), "a/b");
        assert_eq!(cyrus.wire_name(&s(&["a", "b"])), "INBOX.a.b");
        assert_eq!(cyrus.wire_name(&s(&["inbox"])), "INBOX");
    }

    #[test]
    fn segments_the_target_cannot_hold_are_fitted() {
        let cyrus = forbidden_chars(Some('.'), true);
        let courier = forbidden_chars(Some('.'), false);
        let dovecot = forbidden_chars(Some('/'), false);
        for (seg, delim, forbidden, want) in [
            ("v1.2 Release", Some('.'), &courier, Some("v1_2 Release")),
            ("Q1/Q2 Report", Some('.'), &courier, Some("Q1_Q2 Report")),
            ("Q1/Q2 Report", Some('/'), &dovecot, Some("Q1_Q2 Report")),
            ("v1.2 Release", Some('/'), &dovecot, None),
            ("a%b!c", Some('.'), &cyrus, Some("a_b_c")),
            ("a%b!c", Some('.'), &courier, None),
            ("Q&A ~x", Some('.'), &cyrus, None),
        ] {
            assert_eq!(
                fit_segment(seg, delim, forbidden).as_deref(),
                want,
                "{seg} {delim:?}"
            );
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
