//! End to end: a tenant migrated with an admin's master login on the source (SASL PLAIN
//! with an authorization identity, then Dovecot's `user*master` form): the users'
//! own passwords appear nowhere, every message arrives once.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Env, PASSWORD, show};
use mailhaul_tests::snapshot::assert_same;
use std::fmt::Write as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_logins_migrate_without_user_passwords() -> anyhow::Result<()> {
    // The admin's password is the one the test processes know (MH_TARGET_PW = PASSWORD);
    // the users' own source passwords are known to nobody.
    let masters = tempfile::Builder::new()
        .prefix("mailhaul-masters-")
        .tempdir()?;
    std::fs::set_permissions(
        masters.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let file = masters.path().join("masters");
    std::fs::write(&file, format!("admin:{{PLAIN}}{PASSWORD}\n"))?;
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let mut conf = String::new();
    let _ = write!(
        conf,
        "auth_master_user_separator = *\npassdb {{\n  driver = passwd-file\n  master = yes\n  pass = yes\n  args = scheme=PLAIN username_format=%u {}\n}}\n",
        file.display()
    );
    let env = Env::with_servers(
        "master",
        &["alice", "bob"],
        "",
        (&conf, "nobody-knows-this-1"),
        "",
    )?;

    for (form, extra) in [
        ("master", ""),
        ("master-star", "master_separator = \"*\"\n"),
    ] {
        // [source] logs in as the admin on each user's behalf; mailboxes give no password.
        let text = std::fs::read_to_string(&env.manifest)?
            .replace("password = \"env:MH_SOURCE_PW\"\n", "")
            .replace("login = \"master\"\nmaster_user = \"admin\"\npassword = \"env:MH_TARGET_PW\"\n", "")
            .replace("login = \"master-star\"\nmaster_user = \"admin\"\nmaster_separator = \"*\"\npassword = \"env:MH_TARGET_PW\"\n", "")
            .replacen(
                "tls = \"implicit\"\n",
                &format!("tls = \"implicit\"\nlogin = \"{form}\"\nmaster_user = \"admin\"\n{extra}password = \"env:MH_TARGET_PW\"\n"),
                1,
            );
        std::fs::write(&env.manifest, text)?;
        let seed_user = if form == "master" { "alice" } else { "bob" };
        // Seed through the master login too (the kit logs in as user*admin).
        corpus::seed(
            env.source.imap_port(),
            &format!("{seed_user}*admin"),
            PASSWORD,
            &corpus::standard(111, 16),
        )
        .await?;
        // Workers read the manifest at start: one per login form.
        let worker = env.spawn_worker(&[], &[]);
        let out = env.migrate();
        assert!(
            out.status.success(),
            "{form}:\n{}\n{}",
            show(&out),
            env.worker_logs()
        );
        let source = mailhaul_tests::snapshot::snapshot(
            env.source.imap_port(),
            &format!("{seed_user}*admin"),
            PASSWORD,
        )
        .await?;
        assert_same(&source, &env.target_snapshot(seed_user).await?);
        env.signal_worker(worker, nix::sys::signal::Signal::SIGTERM);
    }
    Ok(())
}
