//! Where a manifest problem is, and what it is.
//!
//! Validation never stops at the first problem: every check pushes a [`Problem`] into a
//! list, and the caller gets them all as one [`Problems`] value, one per line, each
//! prefixed by `file:line` so an editor can jump to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in an input file: the manifest or its mailbox CSV.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// The file, as the user named it (relative paths stay relative).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file (a missing table).
    pub line: usize,
}

impl Origin {
    /// An origin at `line` of `file`.
    pub fn new(file: impl Into<PathBuf>, line: usize) -> Self {
        Origin {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    /// `users.csv:12`, or just `users.csv` when there is no line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// One thing wrong with the input, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub origin: Origin,
    /// What is wrong and what to write instead; lowercase, names the field or mailbox.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Every problem found in one validation run, in file order. Never empty when returned
/// as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Problems {
    /// `Ok(())` when there is no problem, else `Err(self)`.
    pub(super) fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Collects problems for one file and turns byte offsets into line numbers.
#[derive(Debug)]
pub(super) struct Sink {
    file: PathBuf,
    /// Byte offset at which each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    pub(super) problems: Vec<Problem>,
}

impl Sink {
    /// A sink for `file`, whose full text is `text` (used only to count lines).
    pub(super) fn new(file: &Path, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Sink {
            file: file.to_path_buf(),
            line_starts,
            problems: Vec::new(),
        }
    }

    /// The file this sink reports on.
    pub(super) fn file(&self) -> &Path {
        &self.file
    }

    /// The origin of byte `offset`; `None` means the whole file.
    pub(super) fn origin(&self, offset: Option<usize>) -> Origin {
        let line = offset.map_or(0, |o| self.line_starts.partition_point(|&s| s <= o));
        Origin::new(self.file.clone(), line)
    }

    /// Records a problem at byte `offset` (or the whole file).
    pub(super) fn at(&mut self, offset: Option<usize>, message: impl Into<String>) {
        let origin = self.origin(offset);
        self.problems.push(Problem {
            origin,
            message: message.into(),
        });
    }

    /// The problems, ordered by line, whole-file ones last (stable, so problems on one
    /// line keep their order).
    pub(super) fn into_sorted(mut self) -> Vec<Problem> {
        self.problems
            .sort_by_key(|p| (p.origin.line == 0, p.origin.line));
        self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines() {
        let sink = Sink::new(Path::new("m.toml"), "a\nbc\n\nd");
        for (offset, line) in [(0, 1), (1, 1), (2, 2), (4, 2), (5, 3), (6, 4), (99, 4)] {
            assert_eq!(sink.origin(Some(offset)).line, line, "offset {offset}");
        }
        assert_eq!(sink.origin(None).to_string(), "m.toml");
        assert_eq!(sink.origin(Some(2)).to_string(), "m.toml:2");
    }

    #[test]
    fn problems_display_one_per_line() {
        let p = |line, m: &str| Problem {
            origin: Origin::new("users.csv", line),
            message: m.to_owned(),
        };
        let all = Problems(vec![p(3, "first"), p(0, "second")]);
        assert_eq!(all.to_string(), "users.csv:3: first\nusers.csv: second");
    }
}
