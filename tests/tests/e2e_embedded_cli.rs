//! End to end, the line between the modes as users meet it: in the embedded mode
//! `--detach` and separate workers are refused with an error that says why and what to
//! do, half-given service URLs are refused, a state directory in use by a running
//! `mailhaul` is refused with its pid while `status` still reads it, and a state
//! directory that holds another migration is refused. The one process serves the
//! copying slots' metrics beside the coordinator's on `--metrics-addr`.

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

/// The value of the sample `series` (name and labels as exposed) in a Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoint_serves_the_pass_and_the_copying_metrics() -> anyhow::Result<()> {
    let env = Env::new("emb-metrics", &["alice"], "slice_messages = 10")?.on(Backend::Embedded);
    let c = corpus::standard(29, 23);
    env.seed("alice", &c).await?;
    let want = c.message_count();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let run = env.spawn_migrate(
        &["--metrics-addr", &addr, "--metrics-linger-secs", "600"],
        &[],
    );
    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let text = loop {
        let text = match http.get(&url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        // The pass is over once the coordinator's gauge says every message is done.
        if sample(&text, "mailhaul_migration_messages_done") == Some(want as f64) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the pass did not finish on the metrics: {text}\n{}",
            env.worker_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let migrated: f64 = text
        .lines()
        .filter(|l| l.starts_with("mailhaul_messages_migrated_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        migrated, want as f64,
        "the in-process slots' counter is served beside the pass gauges:\n{text}"
    );
    assert!(
        text.contains("mailhaul_upload_duration_seconds_bucket"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mailhaul_migration_messages_failed"),
        Some(0.0)
    );
    // SIGTERM ends the run without the linger (600 s): whether it lands in the pass's last
    // moments (every message is done; the run is interrupted) or in the linger itself.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(run as i32), Signal::SIGTERM);
    let status = env.wait_worker(run, Duration::from_secs(60));
    assert!(
        status.is_some(),
        "SIGTERM did not end the run: it sat in the metrics linger"
    );
    Ok(())
}
