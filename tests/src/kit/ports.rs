//! Free loopback ports and readiness probes.
//!
//! Ports are drawn at random from 20000..32000, below Linux's ephemeral range
//! (32768..60999), so a port we picked is not taken meanwhile by some outgoing
//! connection's source port, and RabbitMQ's CLI can use its default distribution
//! range (dist port + 10000..10010) without leaving the valid port range. A port is
//! handed out only after a test bind succeeded and never twice in one process; the
//! remaining race (another process binds it before our server does) makes the server
//! fail to start, and callers retry with fresh ports.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = rand::random_range(20_000..32_000u16);
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        let set = handed_out.get_or_insert_with(HashSet::new);
        if set.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            set.insert(port);
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) fn is_listening(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Polls `ready` every 20 ms until it returns `Ok(true)` or `timeout` passes; an `Err`
/// from `ready` (e.g. "the server process exited") stops the wait at once.
pub(crate) fn wait_until(
    timeout: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        assert!((20_000..32_000).contains(&a));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, a)).expect("port is free");
        assert!(is_listening(a));
        drop(listener);
    }

    #[test]
    fn wait_until_stops_on_error_and_on_timeout() {
        let r = wait_until(Duration::from_millis(50), || Ok(false));
        assert!(!r.expect("no error"));
        let r = wait_until(Duration::from_secs(5), || anyhow::bail!("died"));
        assert!(r.is_err());
    }
}
