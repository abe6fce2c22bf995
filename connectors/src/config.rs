//! Loading the manifest from disk and resolving the secrets it references.
//!
//! This is the I/O half of `mailhaul_proto::manifest`, which is pure: here the TOML and
//! the CSV it names are read, and `env:` / `file:` references are turned into secrets.
//! Invariants: every manifest problem comes back in one [`ConfigError::Invalid`] (an
//! unreadable CSV is one of those problems, so it is reported with the rest); secret
//! values never appear in an error message.

use mailhaul_proto::manifest::{Manifest, Problems, SecretRef};
use secrecy::SecretString;
use std::env::VarError;
use std::path::{Path, PathBuf};

/// Why the manifest could not be loaded or a secret not resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The manifest file itself could not be read.
    #[error("cannot read the manifest {}", path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The manifest or its CSV has problems; all of them, one per line.
    #[error("the manifest has {count} problem(s):\n{problems}", count = .0.0.len(), problems = .0)]
    Invalid(Problems),
    /// A secret reference could not be resolved.
    #[error("{what}: {reason}")]
    Secret {
        /// The reference, e.g. `environment variable ALICE_PW` or `file /run/secrets/x`.
        what: String,
        /// What is wrong and how to fix it; never the secret.
        reason: String,
    },
}

impl From<Problems> for ConfigError {
    fn from(problems: Problems) -> Self {
        ConfigError::Invalid(problems)
    }
}

/// Reads the manifest at `path` and the mailbox CSV it names, and validates both.
/// Relative paths inside (CSV, `ca_file`, `file:` secrets) are resolved against the
/// manifest's directory. Secrets are not resolved here: see [`resolve_secret`].
///
/// # Errors
/// [`ConfigError::Read`] if the manifest cannot be read; [`ConfigError::Invalid`] with
/// every problem of the TOML and the CSV (including a CSV that cannot be read).
pub fn load_manifest(path: &Path) -> Result<Manifest, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Manifest::parse_with(&text, path, |csv| {
        std::fs::read_to_string(csv)
    })?)
}

/// Why a valid manifest cannot be run by this build yet, if it cannot: a PST source
/// (`kind = "pst"`) validates, but copying from PST files is not wired in yet. Every
/// command that reads or writes mail (plan, migrate, verify, retry, the worker) refuses
/// it with this text rather than fail later on a meaningless connection.
pub fn not_runnable(m: &Manifest) -> Option<String> {
    (m.source.kind == mailhaul_proto::manifest::ServerKind::Pst).then(|| {
        "a PST source (kind = \"pst\") validates, but this build cannot plan or copy PST files yet; \
         nothing was done. Import the files with Purview's PST Import, or use a build with PST support"
            .to_owned()
    })
}

/// Resolves a secret reference: reads the environment variable or the file (one
/// trailing `\n` or `\r\n` stripped), or returns the inline value.
///
/// # Errors
/// [`ConfigError::Secret`] naming the variable or path: unset, not UTF-8, unreadable,
/// or empty.
pub fn resolve_secret(r: &SecretRef) -> Result<SecretString, ConfigError> {
    resolve_with(r, |name| std::env::var(name))
}

/// [`resolve_secret`] with the environment lookup injected, so tests need not mutate
/// the process environment.
fn resolve_with(
    r: &SecretRef,
    lookup: impl FnOnce(&str) -> Result<String, VarError>,
) -> Result<SecretString, ConfigError> {
    let fail = |what: String, reason: &str| ConfigError::Secret {
        what,
        reason: reason.to_owned(),
    };
    match r {
        SecretRef::Inline(secret) => Ok(secret.clone()),
        SecretRef::Env(name) => {
            let what = format!("environment variable {name}");
            match lookup(name) {
                Ok(value) if value.is_empty() => {
                    Err(fail(what, "is empty; set it to the password"))
                }
                Ok(value) => Ok(SecretString::from(value)),
                Err(VarError::NotPresent) => Err(fail(
                    what,
                    "is not set; export it in the environment of every mailhaul process",
                )),
                Err(VarError::NotUnicode(_)) => Err(fail(what, "is not valid UTF-8")),
            }
        }
        SecretRef::File(path) => {
            let what = format!("secret file {}", path.display());
            let mut value = std::fs::read_to_string(path).map_err(|e| ConfigError::Secret {
                what: what.clone(),
                reason: format!("cannot be read ({e}); check the path and its permissions"),
            })?;
            // Editors and `echo` add one line ending; a password never ends with one.
            let keep = value
                .strip_suffix("\r\n")
                .or_else(|| value.strip_suffix('\n'))
                .map_or(value.len(), str::len);
            value.truncate(keep);
            if value.is_empty() {
                return Err(fail(what, "is empty; write the password into it"));
            }
            Ok(SecretString::from(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let name = format!(
                "mailhaul-config-{}-{nanos}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let dir = std::env::temp_dir().join(name);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, content).expect("write temp file");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn exposed(r: Result<SecretString, ConfigError>) -> Result<String, String> {
        r.map(|s| s.expose_secret().to_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn env_secrets() {
        let lookup = |name: &str| match name {
            "SET" => Ok("pw".to_owned()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        };
        let env = |n: &str| SecretRef::Env(n.to_owned());
        assert_eq!(
            exposed(resolve_with(&env("SET"), lookup)),
            Ok("pw".to_owned())
        );
        assert_eq!(
            exposed(resolve_with(&env("NOPE"), lookup)),
            Err("environment variable NOPE: is not set; export it in the environment of every mailhaul process".to_owned())
        );
        assert_eq!(
            exposed(resolve_with(&env("EMPTY"), lookup)),
            Err("environment variable EMPTY: is empty; set it to the password".to_owned())
        );
        // The real environment: PATH is set for every test process.
        let path = std::env::var("PATH").expect("PATH is set");
        assert_eq!(exposed(resolve_secret(&env("PATH"))), Ok(path));
        let unset = resolve_secret(&env("MAILHAUL_TEST_SURELY_UNSET_4711"));
        assert!(
            matches!(unset, Err(ConfigError::Secret { ref what, .. }) if what.contains("MAILHAUL_TEST_SURELY_UNSET_4711"))
        );
    }

    #[test]
    fn file_secrets_strip_one_line_ending() {
        let dir = TempDir::new();
        for (content, want) in [
            ("pw\n", Ok("pw")),
            ("pw\r\n", Ok("pw")),
            ("pw", Ok("pw")),
            ("pw\n\n", Ok("pw\n")),
            (" pw ", Ok(" pw ")),
            ("\n", Err("is empty")),
        ] {
            let path = dir.write("secret", content);
            let got = exposed(resolve_secret(&SecretRef::File(path)));
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{content:?}"),
                Err(w) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(w)),
                    "{content:?}: {got:?}"
                ),
            }
        }
        let missing = dir.0.join("missing");
        let err = exposed(resolve_secret(&SecretRef::File(missing.clone()))).expect_err("missing");
        assert!(
            err.starts_with(&format!(
                "secret file {}: cannot be read",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn inline_secrets_pass_through() {
        let r = SecretRef::Inline(SecretString::from("hunter2"));
        assert_eq!(exposed(resolve_secret(&r)), Ok("hunter2".to_owned()));
    }

    const MANIFEST: &str = r#"tenant = "Contoso"
[source]
kind = "imap"
host = "imap.contoso.example"
[target]
kind = "imap"
host = "mail.new.example"
password = "file:target.pw"
[options]
mailboxes_csv = "users.csv"
"#;

    #[test]
    fn loads_manifest_and_csv() {
        let dir = TempDir::new();
        let path = dir.write("manifest.toml", MANIFEST);
        dir.write(
            "users.csv",
            "EmailAddress,UserName,Password\nalice@x,alice,pw1\n",
        );
        dir.write("target.pw", "t-secret\n");
        let m = load_manifest(&path).expect("valid");
        assert_eq!(m.mailboxes.len(), 1);
        let alice = &m.mailboxes[0];
        assert_eq!(alice.origin.file, dir.0.join("users.csv"));
        assert_eq!(
            exposed(resolve_secret(&alice.source_password)),
            Ok("pw1".to_owned())
        );
        assert_eq!(
            exposed(resolve_secret(&alice.target_password)),
            Ok("t-secret".to_owned())
        );
    }

    #[test]
    fn load_errors() {
        let dir = TempDir::new();
        let missing = dir.0.join("nope.toml");
        assert!(
            matches!(load_manifest(&missing), Err(ConfigError::Read { ref path, .. }) if *path == missing)
        );

        // A TOML problem and an unreadable CSV come back together.
        let path = dir.write("manifest.toml", &MANIFEST.replace("Contoso", ""));
        let err = load_manifest(&path).expect_err("invalid");
        let ConfigError::Invalid(problems) = &err else {
            panic!("invalid expected, got {err:?}")
        };
        assert_eq!(problems.0.len(), 2, "{problems}");
        assert!(
            problems.0[0].message.starts_with("tenant: empty"),
            "{problems}"
        );
        assert!(
            problems.0[1]
                .message
                .starts_with("mailboxes_csv: cannot read"),
            "{problems}"
        );
        assert!(
            err.to_string()
                .starts_with("the manifest has 2 problem(s):\n"),
            "{err}"
        );
    }
}
