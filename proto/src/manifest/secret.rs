//! References to secrets: where a password comes from, never the password itself
//! (except the plaintext cells that Exchange Online's CSV format carries).
//!
//! Invariant: no `Debug` or `Display` output of a [`SecretRef`] contains an inline secret.
//! Resolving a reference (reading the variable or file) is I/O and lives in
//! `mailhaul_connectors::config`.

use secrecy::SecretString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a password comes from.
#[derive(Clone)]
pub enum SecretRef {
    /// `env:NAME`: the environment variable `NAME` of the process that logs in.
    Env(String),
    /// `file:PATH`: the content of a file, one trailing newline stripped. Relative paths
    /// are already resolved against the directory of the file that named them.
    File(PathBuf),
    /// A plaintext password from a CSV cell. Only the CSV may carry these.
    Inline(SecretString),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => f.debug_tuple("Env").field(name).finish(),
            SecretRef::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretRef::Inline(_) => f.write_str("Inline([REDACTED])"),
        }
    }
}

impl fmt::Display for SecretRef {
    /// `env:NAME`, `file:PATH`, or `inline password` (the value is never shown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::Inline(_) => f.write_str("inline password"),
        }
    }
}

/// Parses `env:NAME` or `file:PATH` (relative to `base_dir`).
///
/// `Ok(None)`: the text is not a reference (a plaintext password, or a scheme we do not
/// know, see [`looks_like_scheme`]). `Err`: it uses a known scheme but is malformed; the
/// message says how to fix it.
pub(super) fn parse_reference(text: &str, base_dir: &Path) -> Result<Option<SecretRef>, String> {
    if let Some(name) = text.strip_prefix("env:") {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(Some(SecretRef::Env(name.to_owned())))
        } else {
            Err(format!(
                "\"env:{name}\" is not a valid variable name; write letters, digits and '_', \
                 like \"env:ALICE_PW\""
            ))
        }
    } else if let Some(path) = text.strip_prefix("file:") {
        if path.trim().is_empty() {
            Err("\"file:\" needs a path, like \"file:/run/secrets/alice\"".to_owned())
        } else {
            Ok(Some(SecretRef::File(base_dir.join(path))))
        }
    } else {
        Ok(None)
    }
}

/// The scheme of `text` if it looks like `scheme:rest` (a short lowercase word before
/// the colon, like `vault:`), so a misspelt or future scheme gets a clearer message than
/// "plaintext".
pub(super) fn looks_like_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once(':')?;
    let plausible = (2..=12).contains(&scheme.len())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && scheme.starts_with(|c: char| c.is_ascii_lowercase());
    plausible.then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn references_parse() {
        let base = Path::new("/etc/mailhaul");
        let ok = |t: &str| {
            parse_reference(t, base)
                .expect("valid")
                .map(|r| r.to_string())
        };
        assert_eq!(ok("env:ALICE_PW").as_deref(), Some("env:ALICE_PW"));
        assert_eq!(ok("env:_x1").as_deref(), Some("env:_x1"));
        assert_eq!(
            ok("file:alice").as_deref(),
            Some("file:/etc/mailhaul/alice")
        );
        assert_eq!(ok("file:/run/s").as_deref(), Some("file:/run/s"));
        assert_eq!(ok("hunter2"), None);
        assert_eq!(ok("vault:x"), None);
        for bad in ["env:", "env:1X", "env:A-B", "file:", "file:  "] {
            assert!(parse_reference(bad, base).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemes_are_recognised() {
        assert_eq!(looks_like_scheme("vault:secret/x"), Some("vault"));
        assert_eq!(looks_like_scheme("Env:X"), None);
        assert_eq!(looks_like_scheme("hunter2"), None);
        assert_eq!(looks_like_scheme("p@ss:word"), None);
    }

    #[test]
    fn inline_secrets_never_print() {
        let r = SecretRef::Inline(SecretString::from("hunter2"));
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(!format!("{r}").contains("hunter2"));
        let SecretRef::Inline(s) = r else {
            panic!("inline")
        };
        assert_eq!(s.expose_secret(), "hunter2");
    }
}
