//! A private RabbitMQ node for the test process (research/crates.md §5.1).
//!
//! Its own node name, AMQP port, distribution port and epmd (which we start first, as our
//! child, so we know its pid), all on 127.0.0.1, one plugin (`rabbitmq_prometheus` on a
//! free port of its own, so tests scrape the broker the way deployments do), data in a
//! temp dir owned by `rabbitmq` (the Debian wrapper `su`s to that user; our environment
//! passes through).
//! Readiness: the AMQP port opens, then `rabbitmqctl await_startup` returns (it fails at
//! once when called before the node has registered with epmd, hence the order).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::ports::{free_port, is_listening, wait_until};
use super::{find_program, log_tail, reaper, run_checked, user_ids};

/// How long RabbitMQ may take to become ready (it usually needs 5-10 s).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What `rabbitmqctl` needs to reach the node this process started.
struct Control {
    ctl: PathBuf,
    name: String,
    env: Vec<(&'static str, String)>,
    dir: PathBuf,
}

static CONTROL: std::sync::OnceLock<Control> = std::sync::OnceLock::new();

/// Stops (`stop_app`: every connection closed, the AMQP port shut, the node and its
/// durable queues kept) or starts again (`start_app`, waiting until it serves) the
/// RabbitMQ application of this process's shared broker: a broker restart for chaos
/// tests. Run such tests in a test binary of their own, since every test of the process
/// shares the broker.
///
/// # Errors
/// The broker was not started by this process (`MAILHAUL_TEST_AMQP_URL` points at
/// another), or `rabbitmqctl` failed.
pub fn broker_app(running: bool) -> anyhow::Result<()> {
    let c = CONTROL.get().context(
        "the shared RabbitMQ was not started by this test process (MAILHAUL_TEST_AMQP_URL set?): it cannot be restarted",
    )?;
    let verb = if running { "start_app" } else { "stop_app" };
    let mut cmd = Command::new(&c.ctl);
    cmd.args(["-n", &c.name, verb])
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&c.dir);
    run_checked(&mut cmd, &format!("rabbitmqctl {verb}"))?;
    if running {
        let mut wait = Command::new(&c.ctl);
        wait.args(["-n", &c.name, "await_startup", "--timeout", "60"])
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&c.dir);
        run_checked(&mut wait, "rabbitmqctl await_startup")?;
    }
    Ok(())
}

/// A node being started; everything needed to report on it or tear it down.
struct Node {
    dir: PathBuf,
    name: String,
    env: Vec<(&'static str, String)>,
    amqp: u16,
    prometheus: u16,
    epmd_port: u16,
    epmd: Child,
    key: String,
}

/// Starts RabbitMQ; once it is ready, returns its AMQP URL and the base URL of its
/// Prometheus plugin (`http://127.0.0.1:<port>`, serving `/metrics/per-object`).
pub(crate) fn start() -> anyhow::Result<(String, String)> {
    let server = find_program("rabbitmq-server")?;
    let ctl = find_program("rabbitmqctl")?;
    let epmd_bin = find_program("epmd")?;
    let (uid, gid) = user_ids("rabbitmq")?;
    let dir = tempfile::Builder::new()
        .prefix("mailhaul-rabbitmq-")
        .tempdir()?
        .keep();
    let node = prepare(&dir, &epmd_bin, uid, gid)?;
    match boot(&node, &server, &ctl) {
        Ok(()) => {
            let _ = CONTROL.set(Control {
                ctl: ctl.clone(),
                name: node.name.clone(),
                env: node.env.clone(),
                dir: node.dir.clone(),
            });
            Ok((
                format!("amqp://guest:guest@127.0.0.1:{}/%2f", node.amqp),
                format!("http://127.0.0.1:{}", node.prometheus),
            ))
        }
        Err(e) => {
            let report = format!(
                "{e:#}\n--- startup output ---\n{}\n--- node log ---\n{}",
                log_tail(&dir.join("startup.log"), 2000),
                log_tail(&dir.join("log").join(format!("{}.log", node.name)), 4000)
            );
            teardown(node);
            anyhow::bail!("rabbitmq did not start: {report}")
        }
    }
}

/// Writes the config, starts the private epmd and registers both with the reaper.
fn prepare(dir: &Path, epmd_bin: &Path, uid: u32, gid: u32) -> anyhow::Result<Node> {
    for sub in ["mnesia", "log"] {
        std::fs::create_dir(dir.join(sub)).with_context(|| format!("creating {sub}/"))?;
    }
    let (amqp, dist, epmd_port) = (free_port(), free_port(), free_port());
    let prometheus = free_port();
    let conf = format!(
        "listeners.tcp.1 = 127.0.0.1:{amqp}\nlog.console = false\nlog.file.level = info\n\
         prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {prometheus}\n"
    );
    std::fs::write(dir.join("rabbitmq.conf"), conf)?;
    std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_prometheus].\n")?;
    chown_tree(dir, uid, gid)?;
    let name = format!(
        "mailhaul-{}-{:x}@localhost",
        std::process::id(),
        rand::random::<u32>()
    );
    let d = |sub: &str| dir.join(sub).display().to_string();
    let env = vec![
        ("RABBITMQ_NODENAME", name.clone()),
        ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
        ("RABBITMQ_NODE_PORT", amqp.to_string()),
        ("RABBITMQ_DIST_PORT", dist.to_string()),
        ("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins")),
        ("RABBITMQ_MNESIA_BASE", d("mnesia")),
        ("RABBITMQ_LOG_BASE", d("log")),
        ("RABBITMQ_PID_FILE", d("rabbit.pid")),
        // Without this the distribution port listens on 0.0.0.0.
        (
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
        ),
        ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
        ("ERL_EPMD_PORT", epmd_port.to_string()),
    ];
    let epmd = Command::new(epmd_bin)
        .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning epmd")?;
    let key = format!("rabbitmq-{}", epmd.id());
    reaper::register(&format!("{key}-epmd"), reaper::Target::Pid(epmd.id()), dir)?;
    Ok(Node {
        dir: dir.to_owned(),
        epmd_port,
        name,
        env,
        amqp,
        prometheus,
        epmd,
        key,
    })
}

fn boot(node: &Node, server: &Path, ctl: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let epmd_port = node.epmd_port;
    anyhow::ensure!(
        wait_until(Duration::from_secs(5), || Ok(is_listening(epmd_port)))?,
        "the private epmd did not listen on port {epmd_port}"
    );
    let pid_file = node.dir.join("rabbit.pid");
    // Registered before the start: if we die while it boots, the reaper reads the pid file.
    reaper::register(&node.key, reaper::Target::PidFile(&pid_file), &node.dir)?;
    let out = std::fs::File::create(node.dir.join("startup.log"))?;
    let status = Command::new(server)
        .arg("-detached")
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&node.dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("running rabbitmq-server -detached")?;
    anyhow::ensure!(
        status.success(),
        "rabbitmq-server -detached exited with {status}"
    );

    let up = wait_until(deadline.saturating_duration_since(Instant::now()), || {
        if read_pid(&pid_file).is_some_and(|pid| !alive(pid)) {
            anyhow::bail!("the RabbitMQ node exited during startup");
        }
        Ok(is_listening(node.amqp))
    })?;
    anyhow::ensure!(
        up,
        "the AMQP port {} did not open within {STARTUP_TIMEOUT:?}",
        node.amqp
    );

    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .as_secs()
        .max(5);
    let mut await_startup = Command::new(ctl);
    await_startup
        .args([
            "-n",
            &node.name,
            "await_startup",
            "--timeout",
            &remaining.to_string(),
        ])
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&node.dir);
    run_checked(&mut await_startup, "rabbitmqctl await_startup")?;
    Ok(())
}

/// Stops a node that failed to start: the beam (if its pid file exists), then epmd.
fn teardown(mut node: Node) {
    if let Some(pid) = read_pid(&node.dir.join("rabbit.pid")) {
        signal(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = node.epmd.kill();
    let _ = node.epmd.wait();
    reaper::unregister(&node.key);
    reaper::unregister(&format!("{}-epmd", node.key));
    let _ = std::fs::remove_dir_all(&node.dir);
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), sig);
    }
}

/// `chown -R uid:gid dir`: the node runs as `rabbitmq` and writes everywhere below `dir`.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .with_context(|| format!("chown rabbitmq {}", dir.display()))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            chown_tree(&path, uid, gid)?;
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .with_context(|| format!("chown rabbitmq {}", path.display()))?;
        }
    }
    Ok(())
}
