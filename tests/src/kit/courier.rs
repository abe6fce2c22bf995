//! A private Courier-IMAP 5.0 per test, on a free 127.0.0.1 port (plain IMAP), run from
//! the unpacked Debian packages ([`super::unpacked`]).
//!
//! `couriertcpd` (Courier's own listener) runs, per connection, the kit's pre-login
//! `mailhaul-courier-login` (a workspace binary; see its docs for why not `imaplogin`),
//! which checks the password against a private users file and execs Courier's `imapd`
//! in the user's home. `imapd` is configured by environment as Debian's
//! `/etc/courier/imapd` configures it (capabilities, keywords, ACLs), except that the
//! Trash auto-expiry (`IMAP_EMPTYTRASH=Trash:7`) is left off: migrated mail keeps its
//! old dates and would be purged from Trash at logout. Mail is Maildir++ under
//! `<dir>/mail/<user>/Maildir`: `INBOX.` personal namespace, `.` separator.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::dovecot::greets;
use super::ports::{free_port, wait_until};
use super::{bin_path, log_tail, reaper, unpacked};

/// Fresh ports tried when another process took one meanwhile.
const START_ATTEMPTS: usize = 3;

/// Debian's `/etc/courier/imapd` settings that shape the protocol, as environment.
const IMAPD_ENV: &[(&str, &str)] = &[
    (
        "IMAP_CAPABILITY",
        "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE",
    ),
    ("IMAP_KEYWORDS", "1"),
    ("IMAP_ACL", "1"),
    ("IMAP_PROXY", "0"),
    ("IMAP_IDLE_TIMEOUT", "60"),
    ("IMAP_MAILBOX_SANITY_CHECK", "1"),
    ("IMAP_DISABLETHREADSORT", "0"),
    ("IMAP_CHECK_ALL_FOLDERS", "0"),
    ("IMAP_OBSOLETE_CLIENT", "0"),
    ("IMAP_UMASK", "022"),
    ("IMAP_USELOCKS", "1"),
    ("IMAP_TRASHFOLDERNAME", "Trash"),
    ("IMAP_MOVE_EXPUNGE_TO_TRASH", "0"),
];

/// A Courier instance of its own, stopped and deleted on drop.
pub struct Courier {
    running: Option<(tempfile::TempDir, Child, String)>,
    base: PathBuf,
    imap: u16,
}

impl std::fmt::Debug for Courier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier")
            .field("base", &self.base)
            .field("imap", &self.imap)
            .finish()
    }
}

impl Courier {
    /// Starts a Courier with no users.
    ///
    /// # Errors
    /// The unpacked packages or the pre-login binary are missing (the message says what
    /// to run), or Courier does not greet (with its log).
    pub fn start() -> anyhow::Result<Courier> {
        let tcpd = unpacked::program("usr/sbin/couriertcpd")?;
        let imapd = unpacked::program("usr/bin/imapd")?;
        let login = bin_path("mailhaul-courier-login");
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&tcpd, &imapd, &login) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt ran"))
    }

    fn try_start(tcpd: &Path, imapd: &Path, login: &Path) -> anyhow::Result<Courier> {
        let dir = tempfile::Builder::new()
            .prefix("mailhaul-courier-")
            .tempdir()
            .context("creating Courier's temp dir")?;
        let base = dir.path().to_path_buf();
        std::fs::create_dir(base.join("mail")).context("creating mail/")?;
        std::fs::write(base.join("users"), b"").context("creating the users file")?;
        let port = free_port();
        let log = std::fs::File::create(base.join("courier.log")).context("courier.log")?;
        let mut cmd = Command::new(tcpd);
        cmd.args([
            "-address=127.0.0.1",
            "-nodnslookup",
            "-noidentlookup",
            "-maxprocs=40",
            "-maxperip=40",
        ])
        .arg(port.to_string())
        .arg(login)
        .arg(base.join("users"))
        .arg(base.join("mail"))
        .arg(imapd)
        .env_clear()
        .env("LD_LIBRARY_PATH", unpacked::library_path())
        .env("PATH", "/usr/bin:/bin")
        .envs(IMAPD_ENV.iter().copied())
        // Its own process group, as Cyrus's (a stopping server signals its group).
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("dup courier.log")?)
        .stderr(log);
        let mut child = cmd.spawn().context("spawning couriertcpd")?;
        let key = format!("courier-{}", child.id());
        let registered = reaper::register(&key, reaper::Target::Pid(child.id()), &base);
        let ready = registered.and_then(|()| {
            wait_until(Duration::from_secs(10), || {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!("couriertcpd exited with {status}");
                }
                Ok(greets(port, "* OK"))
            })
        });
        match ready {
            Ok(true) => Ok(Courier {
                running: Some((dir, child, key)),
                base,
                imap: port,
            }),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                reaper::unregister(&key);
                let why = match outcome {
                    Err(e) => format!("{e:#}"),
                    _ => "no IMAP greeting within 10 s".to_owned(),
                };
                anyhow::bail!(
                    "courier did not start: {why}\n--- log ---\n{}",
                    log_tail(&base.join("courier.log"), 3000)
                )
            }
        }
    }

    /// Adds a user with an empty Maildir.
    ///
    /// # Errors
    /// The name or password cannot go into the users file, or a file cannot be written.
    pub fn add_user(&self, user: &str, password: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            !user.is_empty()
                && !user.contains([':', '/', '\n', '\r'])
                && !password.contains(['\n', '\r']),
            "user {user:?} cannot go into the Courier users file"
        );
        let maildir = self.base.join("mail").join(user).join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).context("creating the Maildir")?;
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.base.join("users"))
            .context("opening the users file")?;
        writeln!(f, "{user}:{password}").context("writing the users file")
    }

    /// The IMAP port (plain text).
    pub fn imap_port(&self) -> u16 {
        self.imap
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        let Some((dir, mut child, key)) = self.running.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        std::thread::spawn(move || {
            let _ = child.wait();
            drop(dir);
            reaper::unregister(&key);
        });
    }
}
