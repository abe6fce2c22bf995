//! End to end, the line between the modes as users meet it: in the embedded mode
//! `--detach` and separate workers are refused with an error that says why and what to
//! do, half-given service URLs are refused, a state directory in use by a running
//! `mailhaul` is refused with its pid while `status` still reads it, and a state
//! directory that holds another migration is refused.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Backend, Env, show};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_refuses_what_needs_the_distributed_one() -> anyhow::Result<()> {
    let env = Env::new("emb-cli", &["alice"], "")?.on(Backend::Embedded);
    let m = env.manifest.display().to_string();

    let out = env.mailhaul(&["migrate", "--detach", &m]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--detach` needs the distributed mode") && err.contains("--amqp-url"),
        "{err}"
    );

    let out = env.mailhaul(&["migrate", &m, "--redis-url", "redis://127.0.0.1:1/"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("--redis-url is set but not --amqp-url"),
        "{}",
        show(&out)
    );

    let mut worker = env.command("mailhaul-worker");
    worker.arg("--manifest").arg(&env.manifest);
    let out = mailhaul_tests::harness::run_with_timeout(worker, Duration::from_secs(30));
    assert!(!out.status.success(), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs both --amqp-url and --redis-url") && err.contains("embedded mode"),
        "{err}"
    );
    assert!(
        !env.state_dir().exists(),
        "nothing was started or written by the refused commands"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_in_use_is_refused_and_status_still_reads_it() -> anyhow::Result<()> {
    let env = Env::new("emb-lock", &["alice"], "slice_messages = 20")?.on(Backend::Embedded);
    env.seed("alice", &corpus::standard(27, 4)).await?;
    let run = env.spawn_migrate(&["--concurrency", "1", "--batch-messages", "2"], &[]);
    // Wait until the run holds the state directory and has planned.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = env.mailhaul(&["status", env.migration.as_str()]);
        if status.status.success() {
            assert!(
                String::from_utf8_lossy(&status.stdout).contains("alice@example.test"),
                "{}",
                show(&status)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            show(&status),
            env.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = env.migrate();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("in use by another mailhaul process (pid {run})"))
            && err.contains("--state-dir"),
        "{err}"
    );
    env.signal_worker(run, Signal::SIGTERM);

    // Another migration's manifest on the same state directory is refused too.
    let other = std::fs::read_to_string(&env.manifest)?.replacen(
        &format!("tenant = \"{}\"", env.namespace),
        "tenant = \"Another Tenant\"",
        1,
    );
    let path = env.dir().join("other.toml");
    std::fs::write(&path, other)?;
    let out = env.mailhaul(&["migrate", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("give this manifest its own --state-dir"),
        "{}",
        show(&out)
    );
    Ok(())
}
