//! End to end, the embedded mode: `mailhaul migrate` (one process, its state in a state
//! directory) is killed with SIGKILL mid-run, aborts between an APPEND the target
//! accepted and its record, and aborts inside a ledger transaction; its state directory
//! fills up under it, or is read-only when it starts. Each time the same command run again ends with
//! every message on the target exactly once, the ledger agreeing, and the state
//! directory readable (SQLite's integrity check passes when it is opened).

use mailhaul_proto::MailboxId;
use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::harness::{Backend, Env, email, show};
use mailhaul_tests::snapshot::assert_same;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Messages recorded so far over all passes (0 before the ledger exists).
async fn recorded(env: &Env) -> u64 {
    let Ok(ledger) = env.ledger().await else {
        return 0;
    };
    let Ok(Some(pass)) = ledger.latest_pass(&env.migration).await else {
        return 0;
    };
    match ledger.progress(&env.migration, pass).await {
        Ok(p) => p.mailboxes.iter().map(|m| m.total_msgs).sum(),
        Err(_) => 0,
    }
}

async fn wait_recorded(env: &Env, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while recorded(env).await < n {
        assert!(
            Instant::now() < deadline,
            "the run made no progress:\n{}",
            env.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same command again, to the end; then exactly one copy of everything.
async fn run_again_and_check(env: &Env, c: &Corpus) -> anyhow::Result<()> {
    let source = env.source_snapshot("alice").await?;
    let out = env.migrate();
    assert!(
        out.status.success(),
        "the re-run failed:\n{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let target = env.target_snapshot("alice").await?;
    assert_same(&source, &target);
    assert_eq!(
        target.message_count(),
        c.message_count(),
        "exactly one copy of each message"
    );
    let ledger = env.ledger().await?;
    let pass = ledger.latest_pass(&env.migration).await?.unwrap_or(1);
    let p = ledger.progress(&env.migration, pass).await?;
    assert!(p.tasks_failed.is_empty(), "{:?}", p.tasks_failed);
    let m = p
        .mailboxes
        .iter()
        .find(|m| m.mailbox == MailboxId(email("alice")))
        .expect("alice");
    assert_eq!(
        m.total_msgs,
        c.message_count() as u64,
        "the ledger records every message once"
    );
    Ok(())
}

fn env(test: &str, slice: u32) -> anyhow::Result<Env> {
    Ok(Env::new(test, &["alice"], &format!("slice_messages = {slice}"))?.on(Backend::Embedded))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_then_the_same_command_leaves_exactly_one_copy() -> anyhow::Result<()> {
    let env = env("emb-sigkill", 60)?;
    let c = corpus::standard(21, 4);
    env.seed("alice", &c).await?;
    // One slot, small batches: the kill lands mid-slice, mid-batch.
    let run = env.spawn_migrate(&["--concurrency", "1", "--batch-messages", "3"], &[]);
    wait_recorded(&env, 25).await;
    env.signal_worker(run, Signal::SIGKILL);
    let at_kill = recorded(&env).await;
    assert!(
        at_kill < c.message_count() as u64,
        "killed before the end ({at_kill})"
    );
    run_again_and_check(&env, &c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_between_append_and_record_never_duplicate() -> anyhow::Result<()> {
    // INBOX holds exact duplicates, messages without Message-ID and two different
    // messages sharing one; the lookup must tell them all apart.
    let env = env("emb-failpoint", 500)?;
    let c = corpus::standard(22, 16);
    env.seed("alice", &c).await?;
    for crash_after in [3, 5, 8] {
        let before = recorded(&env).await;
        let fp = format!("crash-after-append:{crash_after}");
        let run = env.spawn_migrate(
            &["--concurrency", "1", "--batch-messages", "4"],
            &[("MAILHAUL_FAILPOINT", &fp)],
        );
        let status = env
            .wait_worker(run, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("the run with {fp} did not abort:\n{}", env.worker_logs()));
        assert!(!status.success(), "the failpoint aborts the run");
        let on_target = env.target_snapshot("alice").await?.message_count() as u64;
        let now = recorded(&env).await;
        assert!(now > before, "progress was made before the abort");
        assert!(
            on_target > now,
            "the abort left appended-but-unrecorded messages ({on_target} on target, {now} recorded)"
        );
    }
    run_again_and_check(&env, &c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_inside_ledger_writes_leave_no_corrupt_state() -> anyhow::Result<()> {
    let env = env("emb-ledgerwrite", 40)?;
    let c = corpus::standard(24, 4);
    env.seed("alice", &c).await?;
    // The N-th ledger transaction of the process aborts after its statements ran and
    // before it committed: early (planning), then mid-copy.
    for n in [12, 60, 95] {
        let fp = format!("crash-in-ledger-write:{n}");
        let run = env.spawn_migrate(
            &["--concurrency", "2", "--batch-messages", "4"],
            &[("MAILHAUL_FAILPOINT", &fp)],
        );
        let status = env
            .wait_worker(run, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("the run with {fp} did not abort:\n{}", env.worker_logs()));
        assert!(!status.success(), "{fp}: {status:?}");
        assert!(
            env.worker_logs()
                .contains(&format!("failpoint {fp} reached")),
            "{}",
            env.worker_logs()
        );
        // Opening runs SQLite's integrity check: a torn write would fail it.
        env.ledger().await?;
    }
    run_again_and_check(&env, &c).await
}

/// A small tmpfs mounted on `at` for the test (unmounted when dropped).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the state directory and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }

    /// Remounts with `opt` (`ro`, `rw`); only works while no file there is open for writing.
    fn remount(&self, opt: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Fills the file system to the last byte; returns the filler file.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let mut small = [0u8; 512];
        while f.write_all(&small[..]).is_ok() {
            small = [0u8; 512];
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Starts a run, lets it copy some, fills the state directory, and expects the run to
/// stop by itself with a clear error naming the cause and the fix; with the space freed
/// the same command finishes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_stops_the_run_clearly_and_the_next_run_finishes()
-> anyhow::Result<()> {
    let env = env("emb-diskfull", 40)?;
    let c = corpus::standard(25, 4);
    env.seed("alice", &c).await?;
    let fs = Tmpfs::mount(&env.state_dir(), "64m");
    let run = env.spawn_migrate(&["--concurrency", "2", "--batch-messages", "3"], &[]);
    wait_recorded(&env, 20).await;
    let filler = fs.fill();
    let status = env
        .wait_worker(run, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("the run did not stop:\n{}", env.worker_logs()));
    let log = env.worker_logs();
    assert_eq!(status.code(), Some(3), "{log}");
    for s in [
        "error: ",
        "is full",
        "free space",
        "run the same command again",
    ] {
        assert!(log.contains(s), "the error says {s:?}:\n{log}");
    }
    assert!(
        recorded(&env).await < c.message_count() as u64,
        "it stopped before the end"
    );
    std::fs::remove_file(filler)?;
    run_again_and_check(&env, &c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_state_directory_is_refused_and_nothing_is_copied_unrecorded()
-> anyhow::Result<()> {
    // A kernel will not remount a file system read-only under open writable files, so
    // the disk turns read-only between two runs (as after an I/O error and a reboot):
    // a run killed mid-way, the state directory read-only, the same command again.
    let env = env("emb-readonly", 40)?;
    let c = corpus::standard(26, 4);
    env.seed("alice", &c).await?;
    let fs = Tmpfs::mount(&env.state_dir(), "64m");
    let run = env.spawn_migrate(&["--concurrency", "1", "--batch-messages", "3"], &[]);
    wait_recorded(&env, 20).await;
    env.signal_worker(run, Signal::SIGKILL);
    let before = env.target_snapshot("alice").await?;
    fs.remount("ro");
    let out = env.migrate();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write the state directory") && err.contains("--state-dir"),
        "the error names the directory and the fix: {err}"
    );
    assert_eq!(
        env.target_snapshot("alice").await?,
        before,
        "nothing was copied without a writable ledger"
    );
    // `status` still reads it.
    let status = env.mailhaul(&["status", env.migration.as_str()]);
    assert!(status.status.success(), "{}", show(&status));
    fs.remount("rw");
    run_again_and_check(&env, &c).await
}
