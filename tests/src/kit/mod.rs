//! The test kit: real servers for integration and end-to-end tests.
//!
//! * [`Dovecot`]: one private Dovecot per test (IMAP, IMAPS, POP3, POP3S on free loopback
//!   ports, its own temp dir and test CA). It starts in well under a second, so tests do
//!   not share mailboxes. [`AuthDovecot`] adds master users and OAuth2 token checks.
//! * [`Cyrus`] and [`Courier`]: the same for Cyrus IMAP and Courier-IMAP, run from their
//!   Debian packages unpacked into a private root; [`ImapServer`] is any of the three.
//! * [`shared()`]: RabbitMQ and Redis, started once per test process on free ports (or
//!   reused when `MAILHAUL_TEST_AMQP_URL` / `MAILHAUL_TEST_REDIS_URL` point at running
//!   ones). Tests isolate themselves with [`unique_namespace`].
//!
//! Invariants: everything listens on 127.0.0.1 only; everything the kit starts is stopped
//! again, by pid, even when the test process dies without unwinding (a reaper child
//! watches our pid, see `reaper`); a missing server program fails loudly and names
//! `scripts/install-deps`, it never makes a test pass by skipping.

mod courier;
mod cyrus;
mod dovecot;
mod dovecot_auth;
pub(crate) mod imap;
mod imap_server;
pub(crate) mod mutf7;
pub mod otlp;
mod ports;
pub mod prometheus;
mod rabbitmq;
mod reaper;
mod redis;
mod shared;
mod tls;
mod unpacked;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use courier::Courier;
pub use cyrus::Cyrus;
pub use dovecot::Dovecot;
pub use dovecot_auth::{AuthDovecot, oauth2_passdb};
pub use imap_server::{ImapServer, ServerKind};
pub use rabbitmq::broker_app;
pub use shared::{AMQP_URL_ENV, RABBITMQ_PROMETHEUS_URL_ENV, REDIS_URL_ENV, Shared, shared};
pub use unpacked::SERVERS_ROOT_ENV;

/// How to get the server programs the kit needs; part of every "missing program" error.
const INSTALL_HINT: &str = "install the test servers with `scripts/install-deps` (as root)";

/// A unique namespace for one test: a prefix for its queues, vhosts and Redis keys.
///
/// The form is `t-<pid>-<n>-<rand>-<test>`, where `<n>` counts calls in this process,
/// `<rand>` tells apart processes that reuse a pid (and shared servers that outlive
/// them), and `<test>` is `test` reduced to `[a-z0-9_]`, at most 24 characters, so a
/// leftover queue or key says which test made it.
pub fn unique_namespace(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag: String = test
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    format!(
        "t-{}-{n}-{:06x}-{tag}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// The path of a workspace binary (`target/<profile>/<name>`), found next to the running
/// test executable (which lives in `target/<profile>/deps/`).
///
/// # Panics
/// When the binary is not there: run `cargo build --workspace` first (`cargo test` builds
/// only the binaries of the crate under test).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .expect("the test executable lives in a directory");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "binary `{name}` not found at {}: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// Finds a server program in `PATH` or the sbin directories (root's tools live there and
/// `PATH` in CI containers often lacks them).
fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path_var)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!("`{name}` is not installed (not in PATH nor /usr/sbin): {INSTALL_HINT}")
}

/// Runs `command` to completion and returns its output; a non-zero exit is an error
/// that quotes `what` and the program's stderr (and stdout, where tools put errors).
fn run_checked(
    command: &mut std::process::Command,
    what: &str,
) -> anyhow::Result<std::process::Output> {
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {what}: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(out)
}

/// The uid and gid of a system user, from `/etc/passwd`.
fn user_ids(name: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == name)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("system user `{name}` is missing: {INSTALL_HINT}"))
}

/// The last `max` bytes of a log file, for error messages (empty when unreadable).
fn log_tail(path: &Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_unique_and_tame() {
        let a = unique_namespace("Folder Tree / Ärger");
        let b = unique_namespace("Folder Tree / Ärger");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("t-{}-", std::process::id())), "{a}");
        assert!(a.ends_with("-folder_tree____rger"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
    }

    #[test]
    #[should_panic(expected = "run `cargo build --workspace` first")]
    fn bin_path_names_the_fix() {
        bin_path("no-such-binary-xyz");
    }

    #[test]
    fn find_program_names_the_fix() {
        let err = find_program("no-such-server-xyz").expect_err("must be missing");
        assert!(err.to_string().contains("scripts/install-deps"), "{err}");
        assert!(find_program("sh").is_ok());
    }
}
