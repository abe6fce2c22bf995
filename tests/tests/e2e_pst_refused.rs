//! End to end: a PST manifest validates, but until the PST path is wired in every
//! command that reads or writes mail refuses it with a clear message (exit 2) instead of
//! failing on a meaningless connection.

use mailhaul_tests::harness::{run_with_timeout, show};
use mailhaul_tests::kit;
use std::process::Command;
use std::time::Duration;

const HEADER: &str = "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl";

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(kit::bin_path(bin));
    c.args(args)
        .env_remove("MAILHAUL_AMQP_URL")
        .env_remove("MAILHAUL_REDIS_URL")
        .env("MH_TARGET_PW", "x");
    run_with_timeout(c, Duration::from_secs(60))
}

#[test]
fn every_command_refuses_a_pst_manifest_it_cannot_run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pst");
    std::fs::write(
        dir.path().join("map.csv"),
        format!("{HEADER}\nExchange,,pstsdk-sample1.pst,ann@example.test,FALSE,,,,,\n"),
    )?;
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "tenant = \"PST refused\"\n[source]\nkind = \"pst\"\nlocation = \"{fixtures}\"\n\
             mapping_csv = \"map.csv\"\n[target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = 9\n\
             tls = \"none\"\npassword = \"env:MH_TARGET_PW\"\n"
        ),
    )?;
    let m = manifest.to_str().expect("a UTF-8 temp path");
    let state = dir.path().join("state");
    let state = state.to_str().expect("UTF-8");

    let out = run("mailhaul", &["validate", m]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("source pst (1 files under"), "{stdout}");

    for args in [
        vec!["plan", m],
        vec!["migrate", m, "--state-dir", state],
        vec!["verify", m, "--state-dir", state],
        vec!["retry", m, "--state-dir", state],
    ] {
        let out = run("mailhaul", &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("`mailhaul {}`: a PST source", args[0]))
                && stderr.contains("cannot plan or copy PST files yet; nothing was done"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        !dir.path().join("state").exists(),
        "nothing was written anywhere"
    );

    let out = run(
        "mailhaul-worker",
        &[
            "--manifest",
            m,
            "--amqp-url",
            "amqp://127.0.0.1:9",
            "--redis-url",
            "redis://127.0.0.1:9",
        ],
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot plan or copy PST files yet"),
        "{}",
        show(&out)
    );
    Ok(())
}
