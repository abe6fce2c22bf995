//! A throwaway test CA and a server certificate it signed, made with `openssl`.
//!
//! rustls (webpki) insists on a subjectAltName and rejects a CA certificate used as the
//! leaf, so the leaf carries `SAN = DNS:localhost, IP:127.0.0.1`, `CA:FALSE` and
//! `serverAuth`. Keys are P-256: generating them takes milliseconds, RSA-2048 takes
//! tenths of a second, and every test starts its own Dovecot.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// Where the generated PEM files are.
pub(crate) struct TlsFiles {
    /// The CA certificate clients must trust.
    pub(crate) ca_pem: PathBuf,
    /// The server certificate (leaf only).
    pub(crate) cert_pem: PathBuf,
    /// The server's private key.
    pub(crate) key_pem: PathBuf,
}

/// Creates `ca.pem`, `server.pem` and `server.key` in `dir`.
pub(crate) fn make_test_ca(dir: &Path) -> anyhow::Result<TlsFiles> {
    let openssl = super::find_program("openssl")?;
    let leaf_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
                    basicConstraints=critical,CA:FALSE\n\
                    keyUsage=critical,digitalSignature,keyEncipherment\n\
                    extendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("server.ext"), leaf_ext).context("writing server.ext")?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [&[&str]; 3] = [
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "30",
                "-subj",
                "/CN=mailhaul test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat(),
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let mut command = Command::new(&openssl);
        command.args(args).current_dir(dir);
        super::run_checked(&mut command, &format!("openssl {}", args.join(" ")))?;
    }
    Ok(TlsFiles {
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("server.pem"),
        key_pem: dir.join("server.key"),
    })
}
