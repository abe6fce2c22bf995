//! Migration options: slicing limits, folder selection, discovery concurrency.
//!
//! Folder selection uses globs over a folder's display path ('/'-separated, UTF-8):
//! `*` and `?` never cross '/', `**` (a whole path component) does, `[abc]` is a class.
//! As in `.gitignore`, a pattern that matches a folder also covers every folder below
//! it, so the default `include = ["*"]` selects the whole tree and `exclude = ["Trash"]`
//! drops Trash with its subfolders. The top-level name INBOX is case-insensitive
//! (RFC 3501 §5.1), so `INBOX/*` also selects `Inbox/Lists`.

use glob::{MatchOptions, Pattern};
use std::borrow::Cow;
use std::num::NonZeroU32;

/// How folders are sliced and selected, and how discovery is paced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// A folder with more messages becomes several UID-range tasks.
    pub slice_messages: NonZeroU32,
    /// A folder with more bytes becomes several UID-range tasks; never 0.
    pub slice_bytes: u64,
    /// Glob patterns of folders to migrate (see the module docs).
    pub include: Vec<String>,
    /// Glob patterns of folders to skip; exclude wins over include.
    pub exclude: Vec<String>,
    /// How many mailboxes the coordinator discovers at once.
    pub discovery_concurrency: NonZeroU32,
    /// Regular expressions over the folder path; a folder must match one (if any are given).
    pub include_regex: Vec<String>,
    /// Regular expressions over the folder path; a folder that matches one is skipped.
    pub exclude_regex: Vec<String>,
    /// Which messages go.
    pub filters: Filters,
    /// Folder renames: `(regex over the target path, replacement)`, first match wins.
    pub renames: Vec<(String, String)>,
}

/// Message filters; a message that fails one is skipped and counted, not migrated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only messages received on or after this day (UTC).
    pub since: Option<chrono::NaiveDate>,
    /// Only messages received before this day (UTC).
    pub before: Option<chrono::NaiveDate>,
    /// Only messages of at most this many bytes.
    pub max_message_size: Option<u64>,
    /// Skip messages carrying any of these flags (e.g. `\\Deleted`), case-insensitively.
    pub skip_flags: Vec<String>,
}

/// Why a message is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Received before `since`.
    TooOld,
    /// Received on or after `before`.
    TooNew,
    /// Larger than `max_message_size`.
    TooLarge,
    /// Carries a flag in `skip_flags`.
    Flagged,
}

impl Skip {
    /// A short stable key for reports.
    pub fn key(self) -> &'static str {
        match self {
            Skip::TooOld => "before_since",
            Skip::TooNew => "after_before",
            Skip::TooLarge => "over_max_size",
            Skip::Flagged => "skip_flag",
        }
    }
}

impl Filters {
    /// Whether any filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// Checks one message; `Err` says which filter leaves it out.
    pub fn check(
        &self,
        size: u64,
        flags: &[String],
        received: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<(), Skip> {
        let day = received.with_timezone(&chrono::Utc).date_naive();
        if self.since.is_some_and(|d| day < d) {
            return Err(Skip::TooOld);
        }
        if self.before.is_some_and(|d| day >= d) {
            return Err(Skip::TooNew);
        }
        if self.max_message_size.is_some_and(|m| size > m) {
            return Err(Skip::TooLarge);
        }
        if flags
            .iter()
            .any(|f| self.skip_flags.iter().any(|s| s.eq_ignore_ascii_case(f)))
        {
            return Err(Skip::Flagged);
        }
        Ok(())
    }
}

/// Default `slice_messages`.
pub(super) const DEFAULT_SLICE_MESSAGES: NonZeroU32 = NonZeroU32::new(5000).expect("5000 > 0");
/// Default `slice_bytes`: 256 MiB.
pub(super) const DEFAULT_SLICE_BYTES: u64 = 256 << 20;
/// Default `discovery_concurrency`.
pub(super) const DEFAULT_DISCOVERY: NonZeroU32 = NonZeroU32::new(8).expect("8 > 0");

impl Default for Options {
    fn default() -> Self {
        Options {
            slice_messages: DEFAULT_SLICE_MESSAGES,
            slice_bytes: DEFAULT_SLICE_BYTES,
            include: vec!["*".to_owned()],
            exclude: Vec::new(),
            discovery_concurrency: DEFAULT_DISCOVERY,
            include_regex: Vec::new(),
            exclude_regex: Vec::new(),
            filters: Filters::default(),
            renames: Vec::new(),
        }
    }
}

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Options {
    /// Whether a folder (display path, '/'-separated, UTF-8) is migrated: matches some
    /// include and no exclude. Patterns are globs where `*` does not cross '/' and `**`
    /// does; a pattern that matches a folder also matches its subfolders; the name
    /// "INBOX" matches case-insensitively (RFC 3501). A pattern that is not a valid glob
    /// (only possible if `Options` was built by hand: the manifest rejects them) matches
    /// nothing.
    pub fn folder_selected(&self, display_path: &str) -> bool {
        let path = inbox_canonical(display_path);
        let regex = |list: &[String]| {
            list.iter()
                .filter_map(|r| regex::Regex::new(r).ok())
                .any(|r| r.is_match(&path))
        };
        matches_any(&self.include, &path)
            && !matches_any(&self.exclude, &path)
            && (self.include_regex.is_empty() || regex(&self.include_regex))
            && !regex(&self.exclude_regex)
    }
}

/// Whether some pattern matches `path` or one of its ancestors.
fn matches_any(patterns: &[String], path: &str) -> bool {
    let compiled = patterns
        .iter()
        .filter_map(|p| Pattern::new(&inbox_canonical(p)).ok())
        .collect::<Vec<_>>();
    let mut ancestors_and_self = path
        .match_indices('/')
        .map(|(i, _)| &path[..i])
        .chain(std::iter::once(path));
    ancestors_and_self.any(|candidate| compiled.iter().any(|p| p.matches_with(candidate, MATCH)))
}

/// Spells a leading `inbox` component (any case) as `INBOX`, in paths and patterns alike.
fn inbox_canonical(path: &str) -> Cow<'_, str> {
    let first = path.split('/').next().unwrap_or(path);
    if first.eq_ignore_ascii_case("INBOX") && first != "INBOX" {
        Cow::Owned(format!("INBOX{}", &path[first.len()..]))
    } else {
        Cow::Borrowed(path)
    }
}

/// Checks one include/exclude pattern; the error says what is wrong and where.
pub(super) fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("empty pattern; write a folder name or glob like \"Archive/*\"".to_owned());
    }
    Pattern::new(pattern).map(drop).map_err(|e| {
        format!(
            "pattern \"{pattern}\" is not a valid glob ({} at character {}); \
             `**` must be a whole path component, and `[` opens a class (write `[[]` for a literal `[`)",
            e.msg,
            e.pos + 1
        )
    })
}

/// Parses a size like `256MiB`, `1GB`, `512 KiB` or `100B` into bytes. Units:
/// K/M/G/T with `i` are powers of 1024, without are powers of 1000; case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let help = "write bytes as an integer, or a string like \"256MiB\", \"1GB\" or \"512KiB\"";
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size; {help}"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return Err(format!("\"{text}\" has an unknown unit; {help}")),
    };
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("\"{text}\" is too large"))?;
    if bytes == 0 {
        return Err(format!(
            "\"{text}\" is zero; a slice must hold at least one byte"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(include: &[&str], exclude: &[&str]) -> Options {
        Options {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..Options::default()
        }
    }

    #[test]
    fn folder_selection() {
        // (include, exclude, folder, selected)
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&["*"], &[], "INBOX", true),
            (&["*"], &[], "Archive/2024/Q1", true), // subtree of "Archive"
            (&["*"], &["Trash"], "Trash", false),
            (&["*"], &["Trash"], "Trash/Old", false),
            (&["*"], &["Trash"], "Trashcan", true),
            (&["*"], &["Junk/*"], "Junk", true),
            (&["*"], &["Junk/*"], "Junk/Spam", false),
            // `*` does not cross '/', `**` does.
            (&["*/Sent"], &[], "A/Sent", true),
            (&["*/Sent"], &[], "A/B/Sent", false),
            (&["**/Sent"], &[], "A/B/Sent", true),
            (&["**/Sent"], &[], "Sent", true),
            (&["Arch?ve"], &[], "Archive/x", true),
            (&["Archive/*"], &[], "Archive", false),
            (&["Archive/*"], &[], "Archive/2024/Q1", true),
            // INBOX is case-insensitive, other names are not.
            (&["INBOX"], &[], "inbox", true),
            (&["inbox/*"], &[], "Inbox/Lists", true),
            (&["INBOX/lists"], &[], "INBOX/Lists", false),
            (&["sent"], &[], "Sent", false),
            (&["INBOXES"], &[], "inboxes", false),
            // Exclude wins.
            (&["**"], &["**"], "INBOX", false),
            (&["Archive"], &["Archive/2020"], "Archive/2020/Jan", false),
            (&["Archive"], &["Archive/2020"], "Archive/2021", true),
            (&[], &[], "INBOX", false),
            (&["[ab]"], &[], "a", true),
            (&["["], &[], "[", false), // invalid pattern matches nothing
        ];
        for (inc, exc, folder, want) in cases {
            assert_eq!(
                opts(inc, exc).folder_selected(folder),
                *want,
                "include {inc:?} exclude {exc:?} folder {folder}"
            );
        }
    }

    #[test]
    fn patterns_are_checked() {
        for ok in ["*", "**", "**/Sent", "Archive/*", "[ab]c", "Ünïcode/x"] {
            assert!(check_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["", "[", "a**", "***", "Archive/**x"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse() {
        let cases: &[(&str, Option<u64>)] = &[
            ("256MiB", Some(256 << 20)),
            ("1GB", Some(1_000_000_000)),
            ("512 KiB", Some(512 * 1024)),
            ("100B", Some(100)),
            ("2gib", Some(2 << 30)),
            ("1TiB", Some(1 << 40)),
            ("0MiB", None),
            ("MiB", None),
            ("12", None),
            ("12 MB extra", None),
            ("-1MB", None),
            ("1.5GB", None),
            ("99999999999999TiB", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), *want, "{text}");
        }
    }
}
