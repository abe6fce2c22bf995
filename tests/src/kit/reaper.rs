//! The reaper: stops what the kit started when the test process is gone.
//!
//! Statics are never dropped, and a test process can die without unwinding (abort,
//! SIGKILL, Ctrl-C), so every server the kit starts is registered here: one file per
//! server in `<reaper dir>/reap/`, holding the pid to stop and the directory to remove.
//! A small shell child, in its own process group (a Ctrl-C on the terminal must not
//! kill it too), polls our pid once a second; when it has vanished it sends SIGTERM to
//! every registered pid, waits up to 15 s (RabbitMQ needs about 4 s to stop), sends
//! SIGKILL to what is left, and removes the directories. A server stopped normally
//! (e.g. a dropped [`crate::kit::Dovecot`]) unregisters first.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::Context as _;

/// The reaper's shell program; `$1` is the pid to watch, `$2` the reaper dir.
const SCRIPT: &str = r#"
trap '' INT HUP
owner=$1; root=$2
# A zombie still answers `kill -0`; count it as gone (PID 1 may be slow to reap it).
running() { s=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
pids=""
for f in "$root"/reap/*; do
  [ -f "$f" ] || continue
  pid=$(sed -n 1p "$f")
  case "$pid" in
    @*) # a pid file, read now: the server may have been starting when we died
      for i in $(seq 1 100); do [ -s "${pid#@}" ] && break; sleep 0.1; done
      pid=$(cat "${pid#@}" 2>/dev/null || true) ;;
  esac
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids="$pids $pid"
done
alive="$pids"
for i in $(seq 1 150); do
  alive=""
  for p in $pids; do running "$p" && alive="$alive $p"; done
  [ -z "$alive" ] && break
  sleep 0.1
done
for p in $alive; do kill -KILL "$p" 2>/dev/null; done
for f in "$root"/reap/*; do
  [ -f "$f" ] || continue
  dir=$(sed -n 2p "$f")
  [ -n "$dir" ] && rm -rf -- "$dir"
done
rm -rf -- "$root"
"#;

/// The process-wide reaper, started on first use.
struct Reaper {
    dir: PathBuf,
}

fn reaper() -> anyhow::Result<&'static Reaper> {
    static REAPER: OnceLock<Result<Reaper, String>> = OnceLock::new();
    REAPER
        .get_or_init(|| start().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("the test kit's reaper could not start: {e}"))
}

fn start() -> anyhow::Result<Reaper> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("mailhaul-kit-{}-", std::process::id()))
        .tempdir()
        .context("creating the reaper's directory")?
        .keep();
    std::fs::create_dir(dir.join("reap")).context("creating the reaper's registry")?;
    use std::os::unix::process::CommandExt as _;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("mailhaul-kit-reaper")
        .arg(std::process::id().to_string())
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("spawning the reaper (sh)")?;
    Ok(Reaper { dir })
}

/// What the reaper must stop.
pub(crate) enum Target<'a> {
    /// A known pid.
    Pid(u32),
    /// The pid in this file, read when reaping (it may not exist yet when registering).
    PidFile(&'a Path),
}

/// Asks the reaper to stop `target` and remove `dir` once this process is gone.
/// `key` names the registration, for [`unregister`]; registering a key again replaces it.
pub(crate) fn register(key: &str, target: Target<'_>, dir: &Path) -> anyhow::Result<()> {
    let reaper = reaper()?;
    let pid = match target {
        Target::Pid(pid) => pid.to_string(),
        Target::PidFile(path) => format!("@{}", path.display()),
    };
    let entry = format!("{pid}\n{}\n", dir.display());
    // Write then rename, so the reaper never reads half an entry.
    let tmp = reaper.dir.join(format!(".{key}.tmp"));
    std::fs::write(&tmp, entry).context("writing a reaper entry")?;
    std::fs::rename(&tmp, reaper.dir.join("reap").join(key)).context("adding a reaper entry")
}

/// Withdraws a registration: the server was stopped and its directory removed normally.
pub(crate) fn unregister(key: &str) {
    if let Ok(reaper) = reaper() {
        let _ = std::fs::remove_file(reaper.dir.join("reap").join(key));
    }
}
