//! A checked reader over one parsed TOML table that records problems instead of stopping.
//!
//! serde's derive stops at the first error, but `mailhaul validate` must show every
//! problem at once, so the manifest is read from `toml`'s spanned document tree
//! ([`DeTable`]) field by field. Every getter either returns a usable value or records
//! a problem (with the line of the key) and returns `None`. Values whose span is empty
//! are placeholders the TOML parser inserted after a syntax error (already reported),
//! so they are treated as absent without a second problem.

use super::problem::Sink;
use super::secret::{self, SecretRef};
use std::num::NonZeroU32;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// The manifest's top-level keys.
pub(super) const TOP_LEVEL: &[&str] = &[
    "tenant",
    "migration",
    "source",
    "target",
    "options",
    "mailboxes_csv",
    "mailbox",
];

/// One table of the manifest, with the names used in problem messages.
pub(super) struct Fields<'t, 'i> {
    table: &'t DeTable<'i>,
    /// Prepended to a key in messages: `""`, `"source."`, `"mailbox \"bob@x\": "`.
    prefix: String,
    /// How to name the table in "add it to ..." hints: `"[source]"`, `"this [[mailbox]]"`.
    place: String,
    /// Byte offset of the table's header, for problems about missing keys.
    header: Option<usize>,
}

impl<'t, 'i> Fields<'t, 'i> {
    /// Wraps `table` and reports every key not in `known` (deny-unknown-fields).
    pub(super) fn new(
        sink: &mut Sink,
        table: &'t DeTable<'i>,
        prefix: String,
        place: String,
        header: Option<usize>,
        known: &[&str],
    ) -> Self {
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            // A placeholder value means a syntax error on this line, already reported.
            if !known.contains(&name) && !value.span().is_empty() {
                let hint = match closest(name, known) {
                    Some(k) => format!("did you mean \"{k}\"?"),
                    // The classic TOML slip: a key written after a [table] header
                    // belongs to that table.
                    None if !prefix.is_empty() && TOP_LEVEL.contains(&name) => format!(
                        "\"{name}\" belongs at the top level: move it above the first [table]"
                    ),
                    None => format!("known fields: {}", known.join(", ")),
                };
                sink.at(
                    Some(key.span().start),
                    format!("{prefix}{name}: unknown field in {place}; {hint}"),
                );
            }
        }
        Fields {
            table,
            prefix,
            place,
            header,
        }
    }

    /// The message name of `key`, e.g. `source.port`.
    pub(super) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value of `key` and the offset of its key, unless absent or a parse placeholder.
    pub(super) fn get(&self, key: &str) -> Option<(&'t DeValue<'i>, usize)> {
        let (k, v): (&Spanned<_>, &'t Spanned<DeValue<'i>>) = self.table.get_key_value(key)?;
        (!v.span().is_empty()).then(|| (v.get_ref(), k.span().start))
    }

    fn wrong_type(&self, sink: &mut Sink, key: &str, at: usize, want: &str, v: &DeValue<'_>) {
        sink.at(
            Some(at),
            format!("{}: expected {want}, found {}", self.name(key), article(v)),
        );
    }

    /// Records that a required `key` is missing; `example` shows what to add.
    pub(super) fn missing(&self, sink: &mut Sink, key: &str, example: &str) {
        sink.at(
            self.header,
            format!(
                "{}: missing; add {key} = {example} to {}",
                self.name(key),
                self.place
            ),
        );
    }

    /// An optional string.
    pub(super) fn string(&self, sink: &mut Sink, key: &str) -> Option<(String, usize)> {
        let (v, at) = self.get(key)?;
        match v {
            DeValue::String(s) => Some((s.to_string(), at)),
            other => {
                self.wrong_type(sink, key, at, "a string", other);
                None
            }
        }
    }

    /// An optional string that, when present, must not be blank; trimmed.
    pub(super) fn nonblank(
        &self,
        sink: &mut Sink,
        key: &str,
        what: &str,
    ) -> Option<(String, usize)> {
        let (s, at) = self.string(sink, key)?;
        let trimmed = s.trim();
        if trimmed.is_empty() {
            sink.at(Some(at), format!("{}: empty; write {what}", self.name(key)));
            return None;
        }
        Some((trimmed.to_owned(), at))
    }

    /// An optional integer (any TOML radix).
    pub(super) fn integer(&self, sink: &mut Sink, key: &str) -> Option<(i128, usize)> {
        let (v, at) = self.get(key)?;
        match v {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some((n, at)),
                Err(_) => {
                    sink.at(Some(at), format!("{}: {i} is out of range", self.name(key)));
                    None
                }
            },
            other => {
                self.wrong_type(sink, key, at, "an integer", other);
                None
            }
        }
    }

    /// An optional boolean; only the TOML literals `true` / `false` are accepted.
    pub(super) fn boolean(&self, sink: &mut Sink, key: &str) -> Option<bool> {
        let (v, at) = self.get(key)?;
        match v {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(sink, key, at, "true or false (unquoted)", other);
                None
            }
        }
    }

    /// An optional positive count that fits in 32 bits; `default` when absent or bad.
    pub(super) fn count(&self, sink: &mut Sink, key: &str, default: NonZeroU32) -> NonZeroU32 {
        let Some((n, at)) = self.integer(sink, key) else {
            return default;
        };
        match u32::try_from(n).ok().and_then(NonZeroU32::new) {
            Some(n) => n,
            None => {
                sink.at(
                    Some(at),
                    format!(
                        "{}: {n} is not allowed; write a number from 1 to {}, or leave it out \
                         for the default {default}",
                        self.name(key),
                        u32::MAX
                    ),
                );
                default
            }
        }
    }

    /// An optional array of strings.
    pub(super) fn strings(&self, sink: &mut Sink, key: &str) -> Option<Vec<(String, usize)>> {
        let (v, at) = self.get(key)?;
        let DeValue::Array(items) = v else {
            self.wrong_type(sink, key, at, "an array of strings", v);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items_of(items) {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span().start)),
                other => self.wrong_type(sink, key, item.span().start, "strings", other),
            }
        }
        Some(out)
    }

    /// An optional choice among named values; a bad value lists the allowed ones.
    pub(super) fn choice<T: Copy>(
        &self,
        sink: &mut Sink,
        key: &str,
        allowed: &[(&str, T)],
    ) -> Option<T> {
        let (s, at) = self.string(sink, key)?;
        if let Some((_, value)) = allowed.iter().find(|(name, _)| *name == s) {
            return Some(*value);
        }
        let names = allowed
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        sink.at(
            Some(at),
            format!(
                "{}: unknown value \"{s}\"; allowed: {names}",
                self.name(key)
            ),
        );
        None
    }

    /// An optional secret reference. The manifest may not hold plaintext secrets:
    /// those belong in the environment, a file, or the CSV.
    pub(super) fn secret(&self, sink: &mut Sink, key: &str, base_dir: &Path) -> Option<SecretRef> {
        let (s, at) = self.string(sink, key)?;
        match secret::parse_reference(&s, base_dir) {
            Ok(Some(r)) => Some(r),
            Err(why) => {
                sink.at(Some(at), format!("{}: {why}", self.name(key)));
                None
            }
            Ok(None) => {
                // Never echo the value: it may be a real password.
                let what = match secret::looks_like_scheme(&s) {
                    Some(scheme) => format!("uses the unknown scheme \"{scheme}:\""),
                    None => "is plaintext".to_owned(),
                };
                sink.at(
                    Some(at),
                    format!(
                        "{} {what}; write \"env:NAME\" or \"file:PATH\", or put it in the CSV",
                        self.name(key)
                    ),
                );
                None
            }
        }
    }
}

/// The items of an array, without parse placeholders.
pub(super) fn items_of<'a, 'i>(
    array: &'a DeArray<'i>,
) -> impl Iterator<Item = &'a Spanned<DeValue<'i>>> {
    array.iter().filter(|v| !v.span().is_empty())
}

/// "a string", "an integer", ... for type-mismatch messages.
pub(super) fn article(v: &DeValue<'_>) -> String {
    let t = v.type_str();
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {t}")
    } else {
        format!("a {t}")
    }
}

/// The known name within edit distance 2 of `name`, for "did you mean" hints.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars; the inputs are short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["host", "port", "tls", "tls_verify"];
        assert_eq!(closest("prot", &known), Some("port"));
        assert_eq!(closest("tls_verfy", &known), Some("tls_verify"));
        assert_eq!(closest("password2x", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
