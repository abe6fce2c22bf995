//! A private Redis for the test process: no persistence (`--save '' --appendonly no`),
//! loopback only, a child of ours that the reaper stops.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::ports::{free_port, wait_until};
use super::{find_program, log_tail, reaper};

/// Starts Redis and returns its URL once it answers PING.
pub(crate) fn start() -> anyhow::Result<String> {
    let binary = find_program("redis-server")?;
    let dir = tempfile::Builder::new()
        .prefix("mailhaul-redis-")
        .tempdir()?
        .keep();
    let mut last_err = None;
    // A few attempts: another process may take the port between our probe and Redis's bind.
    for attempt in 0..3 {
        let port = free_port();
        let log = dir.join(format!("redis-{attempt}.log"));
        let mut child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning redis-server")?;
        let key = format!("redis-{}", child.id());
        reaper::register(&key, reaper::Target::Pid(child.id()), &dir)?;
        let ready = wait_until(Duration::from_secs(10), || {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("redis-server exited with {status}");
            }
            Ok(pong(port))
        });
        match ready {
            Ok(true) => return Ok(format!("redis://127.0.0.1:{port}/")),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                reaper::unregister(&key);
                let why = outcome
                    .err()
                    .map_or("no PONG within 10 s".to_owned(), |e| format!("{e:#}"));
                last_err = Some(anyhow::anyhow!(
                    "redis-server on port {port} did not start: {why}\n--- log ---\n{}",
                    log_tail(&log, 3000)
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Err(last_err.expect("at least one attempt ran"))
}

/// Whether Redis on `port` answers `PING` (inline command, RESP reply `+PONG`).
fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
