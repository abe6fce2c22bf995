//! The ledger's identity, kept beside the manifest, so a ledger that lost its data is
//! detected instead of trusted.
//!
//! Every migration's ledger carries an epoch (a random id written when the migration is
//! first recorded, [`mailhaul_ledger::Ledger::epoch`]). A Redis that was emptied
//! (FLUSHALL, a restart without persistence) or replaced (another server, another
//! namespace) no longer has it, and would answer "nothing copied yet" for every message:
//! a pass run on it copies the whole tenant again. So after every pass is planned, the
//! coordinator writes the epoch to `.mailhaul/<migration>.ledger-id` (JSON) in the
//! manifest's directory, and before the next one it compares: an epoch kept here that
//! the ledger does not have (or has another) means the ledger is not the one the earlier
//! passes wrote, and the pass refuses, saying to run `mailhaul migrate --rebuild-ledger`,
//! which matches every source message against the target before copying anything.
//!
//! The file also keeps where each source folder went: the target tree changes as a
//! migration fills it (a folder the first pass created may be a special folder the next
//! survey maps another source folder to), so only the first pass's choice is right, and
//! the ledger that remembered it is what was lost. A rebuild restores those choices
//! before it plans, so every message is looked for, and stays, where it was put.

use anyhow::Context as _;
use mailhaul_proto::{FolderId, MailboxId, MigrationId, UidValidity};
use serde::{Deserialize, Serialize};
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

    /// What is kept, `None` when nothing is kept yet.
    ///
    /// # Errors
    /// The file exists but cannot be read, or is not what `migrate` writes.
    pub fn read(&self) -> anyhow::Result<Option<Kept>> {
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
        let kept: Kept = serde_json::from_str(&text)
            .ok()
            .filter(|k: &Kept| !k.epoch.is_empty())
            .with_context(|| {
                format!(
                    "the ledger identity {} is damaged; restore it from a backup, or delete it and run \
                     `mailhaul migrate --rebuild-ledger` (every message is matched on the target first)",
                    self.path.display()
                )
            })?;
        Ok(Some(kept))
    }

    /// Keeps `epoch` and where `folders` went (merged over what was kept: a folder not
    /// planned this time keeps its entry). Written to a temporary file, then renamed:
    /// never half written.
    ///
    /// # Errors
    /// The directory cannot be created or written.
    pub fn write(
        &self,
        epoch: &str,
        mig: &MigrationId,
        folders: impl IntoIterator<Item = KeptFolder>,
    ) -> anyhow::Result<()> {
        // The folders stay across ledgers: where they went is the target's state.
        let mut kept = self.read().ok().flatten().unwrap_or_default();
        kept.note = format!(
            "The identity of migration {mig}'s ledger, written by `mailhaul migrate`. Keep it: a pass \
             compares it with the ledger's, so a ledger that lost its data is refused instead of copying \
             everything again, and `--rebuild-ledger` puts every folder back where it went."
        );
        kept.epoch = epoch.to_owned();
        for f in folders {
            kept.folders
                .retain(|k| (&k.mailbox, &k.folder) != (&f.mailbox, &f.folder));
            kept.folders.push(f);
        }
        kept.folders
            .sort_by(|a, b| (&a.mailbox, &a.folder).cmp(&(&b.mailbox, &b.folder)));
        let dir = self.path.parent().expect("the path has a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = self.path.with_extension("ledger-id.tmp");
        let text = serde_json::to_string_pretty(&kept).expect("plain data serialises");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// What the identity file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// What the file is, for whoever opens it.
    #[serde(default)]
    pub note: String,
    /// The ledger's epoch.
    pub epoch: String,
    /// Where each source folder went.
    #[serde(default)]
    pub folders: Vec<KeptFolder>,
}

/// Where one source folder went, as the first pass that planned it chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFolder {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The source folder's id.
    pub folder: FolderId,
    /// Its UIDVALIDITY then.
    pub uid_validity: UidValidity,
    /// Its path, for people.
    pub display: String,
    /// The target folder's wire name.
    pub target_name: String,
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
        let folder = |id: &str, target: &str| KeptFolder {
            mailbox: MailboxId("a@x".into()),
            folder: FolderId(id.into()),
            uid_validity: UidValidity(7),
            display: id.into(),
            target_name: target.into(),
        };
        m.write(
            "0123abcd",
            &mig,
            [folder("f1", "Drafts"), folder("f2", "Sent")],
        )?;
        m.write("0123abcd", &mig, [folder("f2", "Sent Items")])?;
        let kept = m.read()?.expect("kept");
        assert_eq!(kept.epoch, "0123abcd");
        assert_eq!(
            kept.folders,
            vec![folder("f1", "Drafts"), folder("f2", "Sent Items")]
        );
        // A rebuilt ledger: the folders still went where they went.
        m.write("ffff", &mig, [])?;
        assert_eq!(
            m.read()?.map(|k| (k.epoch, k.folders.len())),
            Some(("ffff".into(), 2))
        );
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
