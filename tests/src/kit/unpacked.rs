//! Servers run from Debian packages unpacked into a private root (Cyrus and Courier
//! conflict with `dovecot-imapd` as packages): where that root is, and the programs and
//! libraries in it. `scripts/install-deps` unpacks them (`apt-get download`, `dpkg -x`).

use std::path::PathBuf;

use super::INSTALL_HINT;

/// Environment variable naming the root; the default is `/opt/mailhaul/servers`.
pub const SERVERS_ROOT_ENV: &str = "MAILHAUL_SERVERS_ROOT";

/// The root the packages are unpacked into.
pub(crate) fn root() -> PathBuf {
    std::env::var_os(SERVERS_ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/mailhaul/servers"))
}

/// `relative` under the root, which must exist.
///
/// # Errors
/// The file is missing: the message says to run `scripts/install-deps`.
pub(crate) fn program(relative: &str) -> anyhow::Result<PathBuf> {
    let path = root().join(relative);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing (the unpacked Cyrus/Courier packages): {INSTALL_HINT}",
        path.display()
    );
    Ok(path)
}

/// `LD_LIBRARY_PATH` for the unpacked programs: their own shared libraries live in the
/// root (`libcyrus*.so`, `libcourierauth.so`), the rest come from the system.
pub(crate) fn library_path() -> String {
    let r = root();
    format!(
        "{}:{}",
        r.join("usr/lib/x86_64-linux-gnu").display(),
        r.join("usr/lib").display()
    )
}
