//! The state directory of an embedded run and its lock: one process at a time writes an
//! embedded ledger and task queue, or two runs could copy one slice at once.
//!
//! The lock is an exclusive `flock` on `<dir>/lock`, held for the life of the process:
//! the kernel drops it when the process ends in any way (`kill -9` included), so a
//! stale lock never blocks a re-run. The file holds the holder's pid, for the message.

use crate::{LedgerError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// A state directory held by this process.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates `path` if needed and takes its lock.
    ///
    /// # Errors
    /// The directory cannot be created or written, or another process holds it.
    pub fn lock(path: &Path) -> Result<StateDir> {
        std::fs::create_dir_all(path).map_err(|e| {
            LedgerError::StateDir(format!(
                "cannot create the state directory {}: {e}; point --state-dir (MAILHAUL_STATE_DIR) at a writable directory",
                path.display()
            ))
        })?;
        let file = path.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&file)
            .map_err(|e| {
                LedgerError::StateDir(format!(
                    "cannot write the state directory {}: {e}; make it writable or point --state-dir (MAILHAUL_STATE_DIR) elsewhere",
                    path.display()
                ))
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if pid.is_empty() {
                    "another mailhaul process".to_owned()
                } else {
                    format!("another mailhaul process (pid {pid})")
                };
                return Err(LedgerError::StateDir(format!(
                    "the state directory {} is in use by {holder}; two processes cannot share one embedded ledger. \
                     Wait for it to finish (`mailhaul status` shows its progress) or stop it, or use another --state-dir",
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(LedgerError::StateDir(format!(
                    "cannot lock the state directory {}: {e}",
                    path.display()
                )));
            }
        }
        // Best effort: the pid only improves the message another process prints.
        let _ = lock.set_len(0);
        let _ = lock.rewind();
        let _ = write!(lock, "{}", std::process::id());
        let _ = lock.flush();
        Ok(StateDir {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_state_directory_is_refused_with_its_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = StateDir::lock(dir.path()).expect("first lock");
        let err = StateDir::lock(dir.path()).expect_err("second lock");
        let text = err.to_string();
        assert!(
            text.contains("in use by another mailhaul process (pid "),
            "{text}"
        );
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(held);
        StateDir::lock(dir.path()).expect("free again once the holder is gone");
    }
}
