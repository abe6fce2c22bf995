//! Bad input and broken servers give clear errors that name the thing and the fix, and
//! nothing that could go is held back by them.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Env, email, show};
use mailhaul_tests::snapshot::assert_same;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_fails_that_mailbox_only_and_says_why() -> anyhow::Result<()> {
    let env = Env::new("badpw", &["alice"], "")?;
    // bob is in the manifest but his source login is wrong (he exists on the target only).
    env.target
        .add_user("bob", mailhaul_tests::harness::PASSWORD)?;
    let text = std::fs::read_to_string(&env.manifest)?
        + "\n[[mailbox]]\nemail = \"bob@example.test\"\nusername = \"bob\"\npassword = \"env:MH_SOURCE_PW\"\ntarget_username = \"bob\"\n";
    std::fs::write(&env.manifest, text)?;
    env.seed("alice", &corpus::standard(41, 16)).await?;
    env.spawn_worker(&[], &[]);
    let out = env.migrate();
    assert_eq!(
        out.status.code(),
        Some(1),
        "problems give exit 1:\n{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&email("bob")),
        "names the mailbox:\n{stderr}"
    );
    assert!(
        stderr.contains("bob") && stderr.to_lowercase().contains("password"),
        "says what to check:\n{stderr}"
    );
    assert!(
        !stderr.contains(mailhaul_tests::harness::PASSWORD),
        "never prints the password"
    );
    assert_same(
        &env.source_snapshot("alice").await?,
        &env.target_snapshot("alice").await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_named() -> anyhow::Result<()> {
    let env = Env::new("unreachable", &["alice"], "")?;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let text = std::fs::read_to_string(&env.manifest)?.replacen(
        &format!("port = {}", env.source.imaps_port()),
        &format!("port = {closed}"),
        1,
    );
    std::fs::write(&env.manifest, text)?;
    let out = env.migrate();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("localhost:{closed}")),
        "names the server:\n{stderr}"
    );
    Ok(())
}

#[test]
fn malformed_manifest_reports_every_problem_with_its_line() -> anyhow::Result<()> {
    let env = Env::new("malformed", &["alice"], "")?;
    let bad = env.dir().join("bad.toml");
    std::fs::write(
        &bad,
        "tenant = \"\"\n\n[source]\nkind = \"imapx\"\nhost = \"\"\ntls = \"sometimes\"\n\n[target]\nkind = \"imap\"\nhost = \"t\"\nport = 0\n\n\
         [[mailbox]]\nemail = \"nobody\"\npassword = \"hunter2\"\n",
    )?;
    let b = bad.display().to_string();
    let out = env.mailhaul(&["validate", &b]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expect in [
        "bad.toml:1",
        "bad.toml:4",
        "bad.toml:6",
        "bad.toml:11",
        "bad.toml:14",
        "bad.toml:15",
        "imapx",
        "plaintext",
    ] {
        assert!(stderr.contains(expect), "missing {expect:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("hunter2"),
        "never echoes a password:\n{stderr}"
    );
    // migrate refuses the same manifest before touching anything.
    let out = env.mailhaul(&["migrate", &b]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was done"));
    Ok(())
}

#[test]
fn unreachable_ledger_is_a_clear_error() -> anyhow::Result<()> {
    let env = Env::new("noredis", &["alice"], "")?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let m = env.manifest.display().to_string();
    let url = format!("redis://127.0.0.1:{closed}/");
    let out = env.mailhaul(&["migrate", &m, "--redis-url", &url]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Redis") && stderr.contains("--redis-url"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn migrate_without_workers_says_so() -> anyhow::Result<()> {
    let env = Env::new("noworkers", &["alice"], "")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(env.seed("alice", &corpus::standard(42, 16)))?;
    let mut c = env.command("mailhaul");
    c.args(["migrate", &env.manifest.display().to_string()]);
    // It keeps following (workers may still come); stop it after the warning is due.
    let out = mailhaul_tests::harness::run_with_timeout(c, std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no worker is consuming tasks"),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains("--namespace"),
        "says what to check:\n{stderr}"
    );
    Ok(())
}
