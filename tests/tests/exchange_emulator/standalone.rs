//! `mailhaul-exchange-emulator` runs on its own: it prints its URL and the credentials
//! it takes, makes any mailbox on first use, applies a `limits.toml`, and refuses a bad
//! one or a non-loopback address with an error that names the fix.

use super::*;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

/// The child, killed when the test ends however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn emulator() -> Command {
    Command::new(mailhaul_tests::kit::bin_path("mailhaul-exchange-emulator"))
}

#[tokio::test]
async fn the_binary_serves_microsofts_paths_with_the_limits_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let limits = dir.path().join("limits.toml");
    std::fs::write(
        &limits,
        "tenant = \"fabrikam.onmicrosoft.com\"\nclient_secret = \"s3cret\"\n\
         [mailboxes.\"new.hire@fabrikam.com\"]\nprovisioned = false\n",
    )?;
    let mut child = emulator()
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&limits)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let running = Running(child);
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(8)
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let url = lines[0]
        .strip_prefix("Exchange emulator listening on ")
        .with_context(|| format!("first line: {lines:?}"))?
        .to_owned();
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .with_context(|| format!("{name} in {lines:?}"))
    };
    assert_eq!(field("tenant")?, "fabrikam.onmicrosoft.com");
    let http = Client::new();
    let token: Value = http
        .post(format!("{url}/fabrikam.onmicrosoft.com/oauth2/v2.0/token"))
        .form(&[
            ("client_id", field("client id")?),
            ("client_secret", field("client secret")?),
            ("scope", "https://graph.microsoft.com/.default".to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().context("a token")?;
    let get = |path: String| {
        http.get(format!("{url}/v1.0/users/{path}"))
            .bearer_auth(token)
            .send()
    };
    expect(
        get("anyone@fabrikam.com/mailFolders/inbox".into()).await?,
        StatusCode::OK,
    )
    .await?;
    expect_error(
        get("new.hire@fabrikam.com/mailFolders".into()).await?,
        StatusCode::NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
    )
    .await?;
    let beta = http
        .get(format!("{url}/beta/users/anyone@fabrikam.com/mailFolders"))
        .bearer_auth(token)
        .send()
        .await?;
    expect(beta, StatusCode::OK).await?;
    drop(running);

    // A typo in the limits file, and a listen address off loopback, are refused.
    std::fs::write(&limits, "max_mesage_bytes = 1\n")?;
    let out = emulator()
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&limits)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("max_mesage_bytes"),
        "{stderr}"
    );
    let out = emulator().args(["--listen", "0.0.0.0:8025"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("loopback"),
        "{stderr}"
    );
    Ok(())
}
