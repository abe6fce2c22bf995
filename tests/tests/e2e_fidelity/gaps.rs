//! Known gaps: expectations that fail only because client or emulator work has not
//! landed yet. Each entry names the path (`json` | `import-mime` | `ews` | `*`), the
//! shape (or `*`) and the field, and whose work it waits for. Empty since issue 11's
//! client and emulator work landed: every loss is either kept or lost with the report
//! naming the message. The test prints every gap that still fails and every entry that
//! passes now (to be removed), so the list only ever shrinks; a loss not listed here
//! fails the test.

use mailhaul_tests::corpus::realworld::judge::{Outcome, Verdict};
use mailhaul_tests::corpus::realworld::{Field, Path};

/// (path: `json` | `import-mime` | `ews` | `*`, shape name or `*`, field, whose work).
pub(crate) const KNOWN_GAPS: &[(&str, &str, Field, &str)] = &[];

fn path_key(path: Path) -> &'static str {
    match path {
        Path::GraphJson => "json",
        Path::GraphImportMime => "import-mime",
        Path::Ews => "ews",
    }
}

fn matches(entry: &(&str, &str, Field, &str), path: Path, shape: &str, field: Field) -> bool {
    (entry.0 == "*" || entry.0 == path_key(path))
        && (entry.1 == "*" || entry.1 == shape)
        && entry.2 == field
}

/// Whose work a loss waits for, if it is a known gap.
pub(crate) fn known(path: Path, shape: &str, field: Field) -> Option<&'static str> {
    KNOWN_GAPS
        .iter()
        .find(|e| matches(e, path, shape, field))
        .map(|e| e.3)
}

/// Known gaps of `path` that no verdict shows any more.
pub(crate) fn fixed(path: Path, verdicts: &[Verdict]) -> Vec<String> {
    KNOWN_GAPS
        .iter()
        .filter(|e| e.0 == "*" || e.0 == path_key(path))
        .filter(|e| verdicts.iter().any(|v| e.1 == "*" || e.1 == v.shape))
        .filter(|e| {
            !verdicts.iter().any(|v| {
                v.lost
                    .iter()
                    .any(|(f, o)| matches(e, path, v.shape, *f) && matches!(o, Outcome::Lost(_)))
            })
        })
        .map(|e| format!("  ({:?}, {:?}, Field::{:?}, {:?})", e.0, e.1, e.2, e.3))
        .collect()
}

/// One cell of the shape × path table: `kept`, or what was lost and how.
pub(crate) fn cell(path: Path, v: &Verdict) -> String {
    if v.lost.is_empty() {
        return "kept".to_owned();
    }
    let parts: Vec<String> = v
        .lost
        .iter()
        .map(|(f, o)| match o {
            Outcome::Kept => format!("{} kept", f.name()),
            Outcome::Reported(_) => format!("{} lost (reported)", f.name()),
            Outcome::Lost(_) if known(path, v.shape, *f).is_some() => {
                format!("{} LOST (known gap)", f.name())
            }
            Outcome::Lost(_) => format!("{} LOST", f.name()),
        })
        .collect();
    parts.join(", ")
}
