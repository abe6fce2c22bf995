//! A private Cyrus IMAP 3.6 per test, on a free 127.0.0.1 port (plain IMAP), run from
//! the unpacked Debian packages ([`super::unpacked`]).
//!
//! The configuration is Debian's `imapd.conf` where it shapes what clients see, with the
//! paths moved into a temp dir: the classic namespace (`altnamespace: no`, personal
//! folders under `INBOX.`) and `.` as separator (`unixhierarchysep: no`), users' INBOX
//! created at first login (`autocreate_quota: 0`), plain-text LOGIN allowed, and
//! passwords in a private sasldb (SASL auxprop). 8-bit header bytes keep Cyrus's
//! default (`munge8bit`: replaced by `X`). `master` runs as our child, in the
//! foreground, dropping to the system user `cyrus` that `scripts/install-deps` creates;
//! `Drop` stops it (SIGTERM; it stops its services) and removes the directory.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::dovecot::greets;
use super::ports::{free_port, wait_until};
use super::{find_program, log_tail, reaper, unpacked, user_ids};

/// Fresh ports tried when another process took one meanwhile.
const START_ATTEMPTS: usize = 3;

/// A Cyrus instance of its own, stopped and deleted on drop.
pub struct Cyrus {
    running: Option<(tempfile::TempDir, Child, String)>,
    base: PathBuf,
    imap: u16,
}

impl std::fmt::Debug for Cyrus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cyrus")
            .field("base", &self.base)
            .field("imap", &self.imap)
            .finish()
    }
}

impl Cyrus {
    /// Starts a Cyrus with no users.
    ///
    /// # Errors
    /// The unpacked packages, `saslpasswd2` or the `cyrus` user are missing (the message
    /// says to run `scripts/install-deps`), or Cyrus does not greet (with its log).
    pub fn start() -> anyhow::Result<Cyrus> {
        let master = unpacked::program("usr/lib/cyrus/bin/master")?;
        find_program("saslpasswd2")?;
        let ids = user_ids("cyrus")?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&master, ids) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt ran"))
    }

    fn try_start(master: &Path, (uid, gid): (u32, u32)) -> anyhow::Result<Cyrus> {
        let dir = tempfile::Builder::new()
            .prefix("mailhaul-cyrus-")
            .tempdir()
            .context("creating Cyrus's temp dir")?;
        let base = dir.path().to_path_buf();
        for sub in ["conf", "spool", "run/socket", "run/proc", "run/lock", "log"] {
            std::fs::create_dir_all(base.join(sub)).with_context(|| format!("creating {sub}/"))?;
        }
        let port = free_port();
        let bin = unpacked::root().join("usr/lib/cyrus/bin");
        let conf = base.join("imapd.conf");
        std::fs::write(&conf, imapd_conf(&base)).context("writing imapd.conf")?;
        let c = conf.display();
        std::fs::write(
            base.join("cyrus.conf"),
            format!(
                "START {{\n  recover cmd=\"{b}/ctl_cyrusdb -C {c} -r\"\n}}\n\
                 SERVICES {{\n  imap cmd=\"{b}/imapd -C {c}\" listen=\"127.0.0.1:{port}\" prefork=0\n}}\n\
                 EVENTS {{\n}}\n",
                b = bin.display()
            ),
        )
        .context("writing cyrus.conf")?;
        // An empty sasldb, so that logins before the first user fail cleanly.
        std::fs::write(base.join("sasldb2"), b"").context("creating the sasldb")?;
        chown_tree(&base, uid, gid)?;
        let out = std::fs::File::create(base.join("log/master.out")).context("master.out")?;
        let mut child = Command::new(master)
            .arg("-C")
            .arg(&conf)
            .arg("-M")
            .arg(base.join("cyrus.conf"))
            .arg("-p")
            .arg(base.join("run/master.pid"))
            .env("LD_LIBRARY_PATH", unpacked::library_path())
            // Its own process group: Cyrus's master signals its whole group when it
            // stops, which would take down the other Cyrus instances of this process.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("dup master.out")?)
            .stderr(out)
            .spawn()
            .context("spawning Cyrus's master")?;
        let key = format!("cyrus-{}", child.id());
        let registered = reaper::register(&key, reaper::Target::Pid(child.id()), &base);
        let ready = registered.and_then(|()| {
            wait_until(Duration::from_secs(15), || {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!("cyrus master exited with {status}");
                }
                Ok(greets(port, "* OK"))
            })
        });
        match ready {
            Ok(true) => Ok(Cyrus {
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
                    _ => "no IMAP greeting within 15 s".to_owned(),
                };
                anyhow::bail!(
                    "cyrus did not start: {why}\n--- master ---\n{}",
                    log_tail(&base.join("log/master.out"), 3000)
                )
            }
        }
    }

    /// Adds a user (its INBOX is created at its first login).
    ///
    /// # Errors
    /// `saslpasswd2` fails.
    pub fn add_user(&self, user: &str, password: &str) -> anyhow::Result<()> {
        let db = self.base.join("sasldb2");
        let mut child = Command::new(find_program("saslpasswd2")?)
            .args(["-p", "-c", "-u", "localhost", "-f"])
            .arg(&db)
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running saslpasswd2")?;
        child
            .stdin
            .take()
            .context("saslpasswd2's stdin")?
            .write_all(password.as_bytes())?;
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "saslpasswd2 {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (uid, gid) = user_ids("cyrus")?;
        std::os::unix::fs::chown(&db, Some(uid), Some(gid)).context("chown sasldb2")
    }

    /// The IMAP port (plain text).
    pub fn imap_port(&self) -> u16 {
        self.imap
    }
}

impl Drop for Cyrus {
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

fn imapd_conf(base: &Path) -> String {
    let b = base.display();
    format!(
        "configdirectory: {b}/conf\n\
         partition-default: {b}/spool\n\
         defaultpartition: default\n\
         proc_path: {b}/run/proc\n\
         mboxname_lockpath: {b}/run/lock\n\
         lmtpsocket: {b}/run/socket/lmtp\n\
         idlesocket: {b}/run/socket/idle\n\
         notifysocket: {b}/run/socket/notify\n\
         altnamespace: no\n\
         unixhierarchysep: no\n\
         hashimapspool: true\n\
         autocreate_quota: 0\n\
         allowplaintext: yes\n\
         sasl_pwcheck_method: auxprop\n\
         sasl_auxprop_plugin: sasldb\n\
         sasl_sasldb_path: {b}/sasldb2\n\
         sasl_mech_list: PLAIN LOGIN\n\
         servername: localhost\n\
         syslog_prefix: mailhaul-cyrus\n"
    )
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
