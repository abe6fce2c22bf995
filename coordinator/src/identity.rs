//! The ledger's identity, kept beside the manifest, so a ledger that lost its data is
//! detected instead of trusted.
//!
//! Every migration's ledger carries an epoch (a random id written when the migration is
//! first recorded, [`mailhaul_ledger::Ledger::epoch`]). A Redis that was emptied
//! (FLUSHALL, a restart without persistence) or replaced (another server, another
//! namespace) no longer has it, and would answer "nothing copied yet" for every message:
//! a pass run on it copies the whole tenant again. So after every pass starts, the
//! coordinator writes the epoch to `.mailhaul/<migration>.ledger-id` in the manifest's
//! directory, and before the next one it compares: an epoch kept here that the ledger
//! does not have (or has another) means the ledger is not the one the earlier passes
//! wrote, and the pass refuses, saying to run `mailhaul migrate --rebuild-ledger`, which
//! matches every source message against the target before copying anything.

use anyhow::Context as _;
use mailhaul_proto::MigrationId;
use std::path::{Path, PathBuf};

/// Where a migration's ledger identity is kept.
#[derive(Debug, Clone)]
pub struct Mirror {
    path: PathBuf,
}

/// What the kept identity and the ledger's say together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing kept, nothing in the ledger: a first pass.
    New,
    /// The ledger is the one the earlier passes wrote (or nothing was kept here, e.g.
    /// the passes ran from another directory: it is adopted).
    Same,
    /// An identity is kept but the ledger has none: it lost its data.
    Lost {
        /// The kept epoch.
        kept: String,
    },
    /// The ledger has another identity: another Redis, namespace or state directory.
    Replaced {
        /// The kept epoch.
        kept: String,
        /// The ledger's.
        found: String,
    },
}

/// Compares the kept epoch with the ledger's.
pub fn judge(kept: Option<&str>, ledger: Option<&str>) -> Verdict {
    match (kept, ledger) {
        (None, None) => Verdict::New,
        (None, Some(_)) => Verdict::Same,
        (Some(k), None) => Verdict::Lost { kept: k.to_owned() },
        (Some(k), Some(f)) if k == f => Verdict::Same,
        (Some(k), Some(f)) => Verdict::Replaced {
            kept: k.to_owned(),
            found: f.to_owned(),
        },
    }
}

impl Mirror {
    /// The identity file of migration `mig` whose manifest is at `manifest`.
    pub fn beside(manifest: &Path, mig: &MigrationId) -> Mirror {
        let dir = manifest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        Mirror {
            path: dir
                .join(".mailhaul")
                .join(format!("{}.ledger-id", mig.as_str())),
        }
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kept epoch, `None` when nothing is kept yet.
    ///
    /// # Errors
    /// The file exists but cannot be read, or holds no epoch.
    pub fn read(&self) -> anyhow::Result<Option<String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "reading the ledger identity {} (make it readable)",
                        self.path.display()
                    )
                });
            }
        };
        let epoch = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| l.bytes().all(|b| b.is_ascii_hexdigit()))
            .with_context(|| {
                format!(
                    "the ledger identity {} holds no epoch; restore it from a backup, or delete it and run \
                     `mailhaul migrate --rebuild-ledger` (every message is matched on the target first)",
                    self.path.display()
                )
            })?;
        Ok(Some(epoch.to_owned()))
    }

    /// Keeps `epoch` (written to a temporary file, then renamed: never half written).
    ///
    /// # Errors
    /// The directory cannot be created or written.
    pub fn write(&self, epoch: &str, mig: &MigrationId) -> anyhow::Result<()> {
        if self.read().ok().flatten().as_deref() == Some(epoch) {
            return Ok(());
        }
        let dir = self.path.parent().expect("the path has a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = self.path.with_extension("ledger-id.tmp");
        let text = format!(
            "# The identity of migration {mig}'s ledger, written by `mailhaul migrate`.\n\
             # Keep it: a pass compares it with the ledger's, so a ledger that lost its data\n\
             # (Redis emptied or replaced) is refused instead of copying everything again.\n\
             {epoch}\n"
        );
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(judge(None, None), Verdict::New);
        assert_eq!(judge(None, Some("ab")), Verdict::Same);
        assert_eq!(judge(Some("ab"), Some("ab")), Verdict::Same);
        assert_eq!(judge(Some("ab"), None), Verdict::Lost { kept: "ab".into() });
        assert_eq!(
            judge(Some("ab"), Some("cd")),
            Verdict::Replaced {
                kept: "ab".into(),
                found: "cd".into()
            }
        );
    }

    #[test]
    fn kept_beside_the_manifest_and_read_back() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("mailhaul-identity-{}", std::process::id()));
        let mig = MigrationId("acme-1".into());
        let m = Mirror::beside(&dir.join("m.toml"), &mig);
        assert_eq!(m.path(), dir.join(".mailhaul/acme-1.ledger-id"));
        assert_eq!(m.read()?, None);
        m.write("0123abcd", &mig)?;
        assert_eq!(m.read()?.as_deref(), Some("0123abcd"));
        m.write("ffff", &mig)?;
        assert_eq!(m.read()?.as_deref(), Some("ffff"));
        std::fs::write(m.path(), "# nothing\n")?;
        let err = m.read().expect_err("no epoch").to_string();
        assert!(err.contains("--rebuild-ledger"), "{err}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_bare_file_name_is_beside_the_working_directory() {
        let mig = MigrationId("x".into());
        let m = Mirror::beside(Path::new("m.toml"), &mig);
        assert_eq!(m.path(), Path::new("./.mailhaul/x.ledger-id"));
    }
}
