//! An end-to-end migration environment for one test: a source and a target Dovecot of
//! its own, a manifest in a temp dir, and the migration's services on one of two
//! [`Backend`]s: the process-wide RabbitMQ and Redis under a namespace of its own with
//! worker processes (killed when the test ends), or the embedded mode, where
//! `mailhaul migrate` copies in its own process with its state in the test's temp dir
//! (no broker and no Redis are started).
//!
//! The binaries under test (`mailhaul`, `mailhaul-worker`) run as real processes, the
//! way users run them. A test body written against [`Env::workers`], [`Env::migrate`]
//! and [`Env::ledger`] runs on either backend.

use crate::corpus::{self, Corpus};
use crate::kit::{self, Dovecot};
use crate::snapshot::{self, MailboxSnapshot};
use anyhow::Context as _;
use mailhaul_ledger::{EmbeddedLedger, Ledger, PassProgress};
use mailhaul_proto::MigrationId;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The password of every test user on both servers (passed to the processes by env).
pub const PASSWORD: &str = "s3cret-Pa55";

/// Target Dovecot configuration that refuses any message over 1 MB, as a mailbox size
/// limit would (quota plugin, `quota_max_mail_size`); for [`Env::with_target_config`].
pub const ONE_MB_LIMIT: &str = r#"
mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_rule = *:storage=0
  quota_vsizes = yes
  quota_max_mail_size = 1M
}
"#;
/// Which bus and ledger a test's migration runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// RabbitMQ, Redis and `mailhaul-worker` processes.
    Distributed,
    /// `mailhaul migrate` alone: the embedded queue and ledger in a state directory.
    Embedded,
}

/// Runs one async test body on both backends, as two tests named `<name>_distributed`
/// and `<name>_embedded`: `both_backends!(name, body)` where `body` is an
/// `async fn(Backend) -> anyhow::Result<()>`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distributed() -> anyhow::Result<()> {
                $body($crate::harness::Backend::Distributed).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() -> anyhow::Result<()> {
                $body($crate::harness::Backend::Embedded).await
            }
        }
    };
}

/// One test's migration world.
pub struct Env {
    /// Where mail comes from.
    pub source: Dovecot,
    /// Where it goes.
    pub target: Dovecot,
    /// Queue and key namespace of this test.
    pub namespace: String,
    /// The users (logins are the same on both servers).
    pub users: Vec<String>,
    /// The manifest's path.
    pub manifest: PathBuf,
    /// The migration id the manifest yields.
    pub migration: MigrationId,
    /// Which services the migration runs on.
    pub backend: Backend,
    dir: tempfile::TempDir,
    workers: Mutex<Vec<Child>>,
    /// Embedded: the copying-slot flags `migrate` gets (what [`Env::workers`] asked for).
    slots: Mutex<Vec<String>>,
    /// Log files started.
    logs: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The e-mail address the manifest gives a user.
pub fn email(user: &str) -> String {
    format!("{user}@example.test")
}

impl Env {
    /// Starts both servers, creates `users` on both, and writes a manifest whose
    /// `[options]` table holds `options` (TOML lines).
    ///
    /// # Errors
    /// A server cannot be started.
    pub fn new(test: &str, users: &[&str], options: &str) -> anyhow::Result<Env> {
        Self::with_target_config(test, users, options, "")
    }

    /// Like [`Env::new`], with `target_conf` appended to the target Dovecot's config.
    ///
    /// # Errors
    /// A server cannot be started.
    pub fn with_target_config(
        test: &str,
        users: &[&str],
        options: &str,
        target_conf: &str,
    ) -> anyhow::Result<Env> {
        Self::with_servers(test, users, options, ("", PASSWORD), target_conf)
    }

    /// Like [`Env::new`], with `source.0` appended to the source Dovecot's config, the
    /// users' source password `source.1`, and `target_conf` appended to the target's.
    ///
    /// # Errors
    /// A server cannot be started.
    pub fn with_servers(
        test: &str,
        users: &[&str],
        options: &str,
        source: (&str, &str),
        target_conf: &str,
    ) -> anyhow::Result<Env> {
        let (source_conf, source_password) = source;
        let source = Dovecot::start_with(source_conf).context("starting the source Dovecot")?;
        let target = Dovecot::start_with(target_conf).context("starting the target Dovecot")?;
        for u in users {
            source.add_user(u, source_password)?;
            target.add_user(u, PASSWORD)?;
        }
        let namespace = kit::unique_namespace(test);
        let dir = tempfile::tempdir()?;
        let manifest = dir.path().join("manifest.toml");
        // Both sides over TLS, verified against each server's test CA: implicit TLS to the
        // source, STARTTLS to the target.
        let mut text = format!(
            "tenant = \"{namespace}\"\n\n[source]\nkind = \"imap\"\nhost = \"localhost\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\n\n\
             [target]\nkind = \"imap\"\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\npassword = \"env:MH_TARGET_PW\"\n\n\
             [options]\n{options}\n",
            source.imaps_port(),
            source.ca_pem().display(),
            target.imap_port(),
            target.ca_pem().display(),
        );
        for u in users {
            text.push_str(&format!(
                "\n[[mailbox]]\nemail = \"{}\"\nusername = \"{u}\"\npassword = \"env:MH_SOURCE_PW\"\ntarget_username = \"{u}\"\n",
                email(u)
            ));
        }
        std::fs::write(&manifest, text)?;
        Ok(Env {
            source,
            target,
            migration: MigrationId::from_tenant(&namespace),
            namespace,
            users: users.iter().map(|u| u.to_string()).collect(),
            manifest,
            backend: Backend::Distributed,
            dir,
            workers: Mutex::new(Vec::new()),
            slots: Mutex::new(Vec::new()),
            logs: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The same world on `backend`.
    pub fn on(mut self, backend: Backend) -> Env {
        self.backend = backend;
        self
    }

    /// Gives the tenant a name of its own (the migration id follows from it), for a demo
    /// that people read. The namespace stays unique.
    ///
    /// # Errors
    /// The manifest cannot be rewritten.
    pub fn rename_tenant(mut self, tenant: &str) -> anyhow::Result<Env> {
        let text = std::fs::read_to_string(&self.manifest)?;
        let text = text.replacen(
            &format!("tenant = \"{}\"", self.namespace),
            &format!("tenant = \"{tenant}\""),
            1,
        );
        std::fs::write(&self.manifest, text)?;
        self.migration = MigrationId::from_tenant(tenant);
        Ok(self)
    }

    /// The embedded mode's state directory (in the test's temp dir).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Workers for the coming passes: `n` `mailhaul-worker` processes with `extra` flags
    /// (distributed), or `--workers n` and `extra` for `mailhaul migrate` (embedded).
    pub fn workers(&self, n: usize, extra: &[&str]) {
        match self.backend {
            Backend::Distributed => {
                for _ in 0..n {
                    self.spawn_worker(extra, &[]);
                }
            }
            Backend::Embedded => {
                let mut slots = self.slots.lock().expect("no test panics holding this lock");
                *slots = ["--workers".to_owned(), n.to_string()]
                    .into_iter()
                    .chain(extra.iter().map(|s| s.to_string()))
                    .collect();
            }
        }
    }

    /// Points the manifest's target at the Exchange emulator `emu`: `kind` is `graph` or
    /// `ews` (EWS with the app's token and impersonation, as Exchange Online takes it),
    /// `extra` holds more `[target]` lines, and each mailbox's target user becomes its
    /// address, added to the emulator. The client secret goes in a file, by reference.
    ///
    /// # Errors
    /// The manifest cannot be rewritten.
    pub fn use_exchange(
        &self,
        kind: &str,
        emu: &crate::exchange::Emulator,
        extra: &str,
    ) -> anyhow::Result<()> {
        use secrecy::ExposeSecret as _;
        let secret = self.dir.path().join("client-secret");
        std::fs::write(&secret, emu.config().client_secret.expose_secret())?;
        let base = emu.base_url();
        let token_url = format!("{base}/{}/oauth2/v2.0/token", emu.config().tenant);
        let url = match kind {
            "graph" => base.clone(),
            _ => format!("{base}/EWS/Exchange.asmx"),
        };
        let login = match kind {
            "graph" => String::new(),
            _ => "login = \"oauth\"\noauth_scope = \"https://outlook.office365.com/.default\"\n"
                .to_owned(),
        };
        let target = format!(
            "[target]\nkind = \"{kind}\"\nurl = \"{url}\"\n{login}oauth_token_url = \"{token_url}\"\n\
             oauth_client_id = \"{}\"\noauth_client_secret = \"file:{}\"\n{extra}\n\n",
            emu.config().client_id,
            secret.display(),
        );
        let text = std::fs::read_to_string(&self.manifest)?;
        let start = text
            .find("[target]")
            .context("the manifest has a [target] table")?;
        let end = text
            .find("[options]")
            .context("the manifest has an [options] table")?;
        let mut text = format!("{}{target}{}", &text[..start], &text[end..]);
        for u in &self.users {
            text = text.replace(
                &format!("target_username = \"{u}\""),
                &format!("target_username = \"{}\"", email(u)),
            );
            emu.add_mailbox(&email(u));
        }
        std::fs::write(&self.manifest, text)?;
        Ok(())
    }

    /// The temp dir (logs, extra files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A command for one of the binaries, with the services and secrets in its env.
    pub fn command(&self, bin: &str) -> Command {
        let mut c = Command::new(kit::bin_path(bin));
        match self.backend {
            Backend::Distributed => {
                let shared = kit::shared();
                c.env("MAILHAUL_AMQP_URL", &shared.amqp_url)
                    .env("MAILHAUL_REDIS_URL", &shared.redis_url)
                    .env_remove("MAILHAUL_STATE_DIR");
            }
            Backend::Embedded => {
                c.env_remove("MAILHAUL_AMQP_URL")
                    .env_remove("MAILHAUL_REDIS_URL")
                    .env("MAILHAUL_STATE_DIR", self.state_dir());
            }
        }
        c.env("MAILHAUL_NAMESPACE", &self.namespace)
            .env("MH_SOURCE_PW", PASSWORD)
            .env("MH_TARGET_PW", PASSWORD)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        c
    }

    /// Runs `mailhaul <args>` to completion (at most 10 minutes).
    pub fn mailhaul(&self, args: &[&str]) -> Output {
        let mut c = self.command("mailhaul");
        c.args(args);
        run_with_timeout(c, Duration::from_secs(600))
    }

    /// Runs a full pass (`mailhaul migrate manifest`), following it to the end; in the
    /// embedded mode with the slots [`Env::workers`] asked for.
    pub fn migrate(&self) -> Output {
        let m = self.manifest.display().to_string();
        let mut args = vec!["migrate".to_owned(), m];
        args.extend(self.slot_flags());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.mailhaul(&args)
    }

    fn slot_flags(&self) -> Vec<String> {
        self.slots
            .lock()
            .expect("no test panics holding this lock")
            .clone()
    }

    /// Starts `mailhaul migrate manifest <extra>` in the background with `env` (the
    /// embedded mode's crash tests kill it); its output goes to the next worker log.
    /// Returns its pid, for [`Env::signal_worker`] and [`Env::wait_worker`].
    pub fn spawn_migrate(&self, extra: &[&str], env: &[(&str, &str)]) -> u32 {
        let m = self.manifest.display().to_string();
        let mut args = vec!["migrate", m.as_str()];
        args.extend_from_slice(extra);
        self.spawn_process("mailhaul", &args, env)
    }

    /// [`Env::migrate`], panicking with its output and the workers' logs unless it
    /// succeeded. (In a multi-thread test that runs an emulator, call it inside
    /// `tokio::task::block_in_place`.)
    pub fn migrate_ok(&self) {
        let out = self.migrate();
        assert!(
            out.status.success(),
            "migrate failed:\n{}\n{}",
            show(&out),
            self.worker_logs()
        );
    }

    /// Plans and publishes a pass (`mailhaul migrate manifest --detach`) and panics with
    /// the output unless it succeeded; the workers then run it.
    pub fn publish_pass(&self) {
        let m = self.manifest.display().to_string();
        let out = self.mailhaul(&["migrate", "--detach", &m]);
        assert!(
            out.status.success(),
            "migrate --detach failed:\n{}",
            show(&out)
        );
    }

    /// Starts a worker process with `extra` flags and env; returns its pid.
    pub fn spawn_worker(&self, extra: &[&str], env: &[(&str, &str)]) -> u32 {
        let manifest = self.manifest.display().to_string();
        let mut args = vec![
            "--manifest",
            manifest.as_str(),
            "--lease-ttl-secs",
            "3",
            "--drain-timeout-secs",
            "10",
        ];
        args.extend_from_slice(extra);
        self.spawn_process("mailhaul-worker", &args, env)
    }

    /// Starts `bin args` with `env`, logging to the next `worker-<n>.log`.
    fn spawn_process(&self, bin: &str, args: &[&str], env: &[(&str, &str)]) -> u32 {
        let mut workers = self
            .workers
            .lock()
            .expect("no test panics while holding this lock");
        let log = self.dir.path().join(format!(
            "worker-{}.log",
            self.logs.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let log = std::fs::File::create(&log).expect("the temp dir is writable");
        let mut c = self.command(bin);
        c.args(args)
            .stdout(log.try_clone().expect("dup a file handle"))
            .stderr(log);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("the worker binary starts");
        let pid = child.id();
        workers.push(child);
        pid
    }

    /// Sends `signal` to a worker and waits for it to exit.
    pub fn signal_worker(
        &self,
        pid: u32,
        signal: nix::sys::signal::Signal,
    ) -> std::process::ExitStatus {
        let mut workers = self
            .workers
            .lock()
            .expect("no test panics while holding this lock");
        let i = workers
            .iter()
            .position(|c| c.id() == pid)
            .expect("a worker of this test");
        let mut child = workers.remove(i);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        child.wait().expect("wait for the worker")
    }

    /// Waits for a worker to exit by itself (e.g. a failpoint), at most `limit`.
    pub fn wait_worker(&self, pid: u32, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let mut workers = self
                    .workers
                    .lock()
                    .expect("no test panics while holding this lock");
                let i = workers.iter().position(|c| c.id() == pid)?;
                if let Ok(Some(status)) = workers[i].try_wait() {
                    // Already reaped by try_wait; wait() just returns the same status.
                    let mut done = workers.remove(i);
                    return Some(done.wait().unwrap_or(status));
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The worker logs so far (for failure messages).
    pub fn worker_logs(&self) -> String {
        let mut out = String::new();
        for i in 0.. {
            let p = self.dir.path().join(format!("worker-{i}.log"));
            let Ok(s) = std::fs::read_to_string(&p) else {
                break;
            };
            out.push_str(&format!("--- worker {i} ---\n{}\n", tail(&s, 60)));
        }
        out
    }

    /// Points the manifest's source at the source Dovecot's POP3S port.
    ///
    /// # Errors
    /// The manifest cannot be read or written, or is not the one [`Env::new`] wrote.
    pub fn use_pop3(&self) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(&self.manifest)?;
        let imap = format!(
            "kind = \"imap\"\nhost = \"localhost\"\nport = {}\n",
            self.source.imaps_port()
        );
        let pop3 = format!(
            "kind = \"pop3\"\nhost = \"localhost\"\nport = {}\n",
            self.source.pop3s_port()
        );
        anyhow::ensure!(text.contains(&imap), "unexpected manifest:\n{text}");
        std::fs::write(&self.manifest, text.replacen(&imap, &pop3, 1))?;
        Ok(())
    }

    /// Seeds a user's source mailbox.
    ///
    /// # Errors
    /// IMAP errors.
    pub async fn seed(&self, user: &str, c: &Corpus) -> anyhow::Result<()> {
        corpus::seed(self.source.imap_port(), user, PASSWORD, c).await
    }

    /// What a user's source mailbox holds.
    ///
    /// # Errors
    /// IMAP errors.
    pub async fn source_snapshot(&self, user: &str) -> anyhow::Result<MailboxSnapshot> {
        snapshot::snapshot(self.source.imap_port(), user, PASSWORD).await
    }

    /// What a user's target mailbox holds.
    ///
    /// # Errors
    /// IMAP errors.
    pub async fn target_snapshot(&self, user: &str) -> anyhow::Result<MailboxSnapshot> {
        snapshot::snapshot(self.target.imap_port(), user, PASSWORD).await
    }

    /// The ledger of this test's namespace (embedded: its state directory, read-only).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn ledger(&self) -> anyhow::Result<Ledger> {
        Ok(match self.backend {
            Backend::Distributed => {
                Ledger::connect(&kit::shared().redis_url, &self.namespace).await?
            }
            Backend::Embedded => {
                Ledger::Embedded(EmbeddedLedger::open_read_only(&self.state_dir())?)
            }
        })
    }

    /// Waits until the latest pass has finished every task (at most `limit`).
    ///
    /// # Errors
    /// Redis errors, or the time ran out (with the worker logs).
    pub async fn wait_pass_done(&self, limit: Duration) -> anyhow::Result<PassProgress> {
        let deadline = Instant::now() + limit;
        // Embedded, the state directory appears when the run starts.
        let ledger = loop {
            match self.ledger().await {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        loop {
            // A slow answer on a loaded machine is "not yet", until the deadline.
            let seen = async {
                let Some(pass) = ledger.latest_pass(&self.migration).await? else {
                    return anyhow::Ok(None);
                };
                Ok(Some((pass, ledger.progress(&self.migration, pass).await?)))
            }
            .await;
            match seen {
                Ok(Some((_, p))) if p.finished() => return Ok(p),
                Ok(Some((pass, p))) if Instant::now() > deadline => anyhow::bail!(
                    "pass {pass} not done after {limit:?}: {p:?}\n{}",
                    self.worker_logs()
                ),
                Err(e) if Instant::now() > deadline => return Err(e),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(mut workers) = self.workers.lock() {
            for w in workers.iter_mut() {
                let _ = w.kill();
                let _ = w.wait();
            }
        }
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command, killing it if it outlives `limit`.
pub fn run_with_timeout(mut c: Command, limit: Duration) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        // Kill only if the command is still running when the time is up (never a
        // recycled pid: the sender is dropped as soon as the command has exited).
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let out = child.wait_with_output().expect("wait for the command");
    drop(done);
    let _ = guard.join();
    out
}

/// Stdout and stderr of a finished command, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        tail(&String::from_utf8_lossy(&o.stderr), 80)
    )
}
