//! A private Dovecot 2.3 per test: IMAP (plain + STARTTLS), IMAPS, POP3 and POP3S on
//! free 127.0.0.1 ports, mail in a temp dir, a passwd-file of users.
//!
//! The configuration follows research/crates.md §5.1 with these test-specific choices:
//! * separator `/` and `maildir:…:LAYOUT=fs`, so `/` in a name is hierarchy and `.`, `&`,
//!   spaces and non-ASCII are plain name characters;
//! * the special-use attributes (RFC 6154) on Sent, Drafts, Trash and Junk, but no
//!   `auto = create`: tests control the folder tree exactly;
//! * the anvil auth penalty switched off (one failed login would otherwise delay later
//!   logins from 127.0.0.1 by 2-15 s);
//! * `mail_fsync = never` (tests do not survive power loss anyway; seeding is faster);
//! * defaults kept for `mail_max_userip_connections` (10) and `imap_capability`
//!   (UIDPLUS, MULTIAPPEND, LITERAL+ and the rest are advertised).
//!
//! The master runs in the foreground (`-F`) as our child; `Drop` stops it and waits.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::ports::{free_port, wait_until};
use super::{find_program, log_tail, reaper, run_checked, tls, user_ids};

/// How many times to retry with fresh ports when another process took one meanwhile.
const START_ATTEMPTS: usize = 3;

/// A Dovecot instance of its own, stopped and deleted on drop.
pub struct Dovecot {
    /// `None` only while dropping.
    running: Option<Running>,
    conf: PathBuf,
    users: PathBuf,
    ca_pem: PathBuf,
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("conf", &self.conf)
            .field("pid", &self.running.as_ref().map(|r| r.master.id()))
            .field("imap", &self.imap)
            .field("imaps", &self.imaps)
            .field("pop3", &self.pop3)
            .field("pop3s", &self.pop3s)
            .finish()
    }
}

/// What must be stopped and removed.
struct Running {
    dir: tempfile::TempDir,
    master: Child,
    reaper_key: String,
}

/// The four listener ports of one instance.
#[derive(Clone, Copy)]
struct Ports {
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
}

impl Dovecot {
    /// Starts a Dovecot with no users, ready to accept IMAP and POP3 connections.
    ///
    /// # Errors
    /// When `dovecot`, `doveadm` or `openssl` is missing (the message says to run
    /// `scripts/install-deps`), or Dovecot does not come up (the message holds its log).
    pub fn start() -> anyhow::Result<Dovecot> {
        Self::start_with("")
    }

    /// Like [`Dovecot::start`], with `extra` appended to the configuration (e.g. a quota
    /// plugin that makes the server refuse big messages).
    ///
    /// # Errors
    /// As [`Dovecot::start`]; a bad `extra` shows in the Dovecot log of the error.
    pub fn start_with(extra: &str) -> anyhow::Result<Dovecot> {
        let binary = find_program("dovecot")?;
        find_program("doveadm")?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&binary, extra) {
                Ok(dovecot) => return Ok(dovecot),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt ran"))
    }

    fn try_start(binary: &Path, extra: &str) -> anyhow::Result<Dovecot> {
        let dir = tempfile::Builder::new()
            .prefix("mailhaul-dovecot-")
            .tempdir()
            .context("creating Dovecot's temp dir")?;
        let base = dir.path();
        // The mail processes run as `nobody` and must traverse the temp dir.
        set_mode(base, 0o755)?;
        for sub in ["run", "state", "log", "tls", "mail"] {
            std::fs::create_dir(base.join(sub)).with_context(|| format!("creating {sub}/"))?;
        }
        chown_nobody(&base.join("mail"))?;
        let tls = tls::make_test_ca(&base.join("tls"))?;
        let users = base.join("users");
        std::fs::write(&users, "").context("creating the passwd-file")?;
        let ports = Ports {
            imap: free_port(),
            imaps: free_port(),
            pop3: free_port(),
            pop3s: free_port(),
        };
        let conf = base.join("dovecot.conf");
        std::fs::write(&conf, config(base, &users, &tls, ports) + "\n" + extra)
            .context("writing dovecot.conf")?;

        let log = base.join("log/dovecot.log");
        let stderr =
            std::fs::File::create(base.join("log/stderr.log")).context("creating stderr.log")?;
        let mut master = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("spawning dovecot")?;
        let reaper_key = format!("dovecot-{}", master.id());
        let registered = reaper::register(&reaper_key, reaper::Target::Pid(master.id()), base);
        let ready = registered.and_then(|()| {
            wait_until(Duration::from_secs(10), || {
                if let Some(status) = master.try_wait()? {
                    anyhow::bail!("dovecot exited with {status}");
                }
                Ok(greets(ports.imap, "* OK") && greets(ports.pop3, "+OK"))
            })
        });
        match ready {
            Ok(true) => Ok(Dovecot {
                running: Some(Running {
                    dir,
                    master,
                    reaper_key,
                }),
                conf,
                users,
                ca_pem: tls.ca_pem,
                imap: ports.imap,
                imaps: ports.imaps,
                pop3: ports.pop3,
                pop3s: ports.pop3s,
            }),
            outcome => {
                let _ = master.kill();
                let _ = master.wait();
                reaper::unregister(&reaper_key);
                let why = match outcome {
                    Err(e) => format!("{e:#}"),
                    _ => "no IMAP/POP3 greeting within 10 s".to_owned(),
                };
                anyhow::bail!(
                    "dovecot did not start: {why}\n--- stderr ---\n{}\n--- log ---\n{}",
                    log_tail(&base.join("log/stderr.log"), 2000),
                    log_tail(&log, 4000)
                )
            }
        }
    }

    /// Adds a user with a plain-text password; Dovecot re-reads the passwd-file when it
    /// changes, so the user can log in at once.
    ///
    /// # Errors
    /// When the name or password holds `:` or a line break (the passwd-file's
    /// separators), or the file cannot be written.
    pub fn add_user(&self, user: &str, password: &str) -> anyhow::Result<()> {
        for (what, value) in [("user name", user), ("password", password)] {
            anyhow::ensure!(
                !value.is_empty() && !value.contains([':', '\n', '\r']),
                "{what} {value:?} cannot go into a passwd-file: it must be non-empty, without ':' or line breaks"
            );
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.users)
            .context("opening the passwd-file")?;
        writeln!(file, "{user}:{{PLAIN}}{password}").context("writing the passwd-file")
    }

    /// The IMAP port (plain text, STARTTLS offered).
    pub fn imap_port(&self) -> u16 {
        self.imap
    }

    /// The IMAPS port (implicit TLS).
    pub fn imaps_port(&self) -> u16 {
        self.imaps
    }

    /// The POP3 port (plain text, STLS offered).
    pub fn pop3_port(&self) -> u16 {
        self.pop3
    }

    /// The POP3S port (implicit TLS).
    pub fn pop3s_port(&self) -> u16 {
        self.pop3s
    }

    /// The PEM file of the test CA that signed the server certificate
    /// (SAN `localhost`, `127.0.0.1`).
    pub fn ca_pem(&self) -> &Path {
        &self.ca_pem
    }

    /// Runs `doveadm -c <this instance's config> <args>` and returns its stdout.
    ///
    /// # Errors
    /// When doveadm cannot run or exits non-zero (the message holds its stderr).
    pub fn doveadm(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::new(find_program("doveadm")?);
        command.arg("-c").arg(&self.conf).args(args);
        let out = run_checked(&mut command, &format!("doveadm {}", args.join(" ")))?;
        String::from_utf8(out.stdout).context("doveadm printed non-UTF-8 output")
    }
}

impl Drop for Dovecot {
    /// Sends SIGTERM (the master then stops its children; SIGKILL would orphan them)
    /// and returns at once: the master takes about a second to stop, so a helper thread
    /// waits for it and removes the temp dir. If the process exits first, the reaper
    /// (still registered until then) finishes the job.
    fn drop(&mut self) {
        let Some(Running {
            dir,
            mut master,
            reaper_key,
        }) = self.running.take()
        else {
            return;
        };
        if let Ok(pid) = i32::try_from(master.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        std::thread::spawn(move || {
            let _ = master.wait();
            drop(dir);
            reaper::unregister(&reaper_key);
        });
    }
}

/// Whether a server on `port` sends a greeting starting with `prefix`.
pub(super) fn greets(port: u16, prefix: &str) -> bool {
    let Ok(stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with(prefix)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Dovecot refuses uid 0 for mail, so mail belongs to `nobody:nogroup` (no user to create).
fn chown_nobody(path: &Path) -> anyhow::Result<()> {
    let (uid, gid) = user_ids("nobody")?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown nobody {}", path.display()))
}

fn config(base: &Path, users: &Path, tls: &tls::TlsFiles, ports: Ports) -> String {
    let b = base.display();
    let mut c = String::new();
    // `instance_name` keeps `doveadm` and log lines of parallel instances apart.
    let _ = write!(
        c,
        r#"instance_name = mailhaul-{imap}
base_dir = {b}/run
state_dir = {b}/state
protocols = imap pop3
listen = 127.0.0.1
log_path = {b}/log/dovecot.log
info_log_path = {b}/log/dovecot.log
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
default_internal_user = dovecot
default_login_user = dovenull
mail_uid = nobody
mail_gid = nogroup
mail_location = maildir:{b}/mail/%u/Maildir:LAYOUT=fs
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \Sent
  }}
  mailbox Drafts {{
    special_use = \Drafts
  }}
  mailbox Trash {{
    special_use = \Trash
  }}
  mailbox Junk {{
    special_use = \Junk
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={b}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"#,
        cert = tls.cert_pem.display(),
        key = tls.key_pem.display(),
        users = users.display(),
        imap = ports.imap,
        imaps = ports.imaps,
        pop3 = ports.pop3,
        pop3s = ports.pop3s,
    );
    c
}
