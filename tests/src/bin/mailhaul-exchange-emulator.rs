//! `mailhaul-exchange-emulator`: the test kit's Exchange Online emulator as a program,
//! so a user or a script can point a manifest at it and look at the result with any
//! HTTP client. It answers on Microsoft's own paths (`/{tenant}/oauth2/v2.0/token`,
//! Graph under `/v1.0` and `/beta`, EWS at `/EWS/Exchange.asmx`); any mailbox exists on
//! first use unless `--config` says otherwise. It serves plain HTTP, so it listens on
//! loopback only.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use mailhaul_tests::exchange::{Emulator, EmulatorConfig};
use secrecy::ExposeSecret as _;

/// An Exchange Online emulator (Graph, EWS, token endpoint) for trying mailhaul.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (loopback only; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A limits.toml: tenant, credentials, limits, and `[mailboxes."upn"]` that differ.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!(
            "--listen {}: the emulator serves plain HTTP with test credentials; give a loopback address such as 127.0.0.1:8025",
            args.listen
        );
    }
    let base = EmulatorConfig {
        auto_create_mailboxes: true,
        ..EmulatorConfig::default()
    };
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            EmulatorConfig::from_toml(&text, base)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => base,
    };
    let emu = Emulator::start_on(args.listen, config).await?;
    let c = emu.config();
    let url = emu.base_url();
    let mailboxes = if c.auto_create_mailboxes {
        "any user@domain, created on first use"
    } else {
        "none until created"
    };
    let banner = format!(
        "Exchange emulator listening on {url}\n\
         \x20 token endpoint  {url}/{tenant}/oauth2/v2.0/token\n\
         \x20 Graph           {url}/v1.0  and  {url}/beta\n\
         \x20 EWS             {url}/EWS/Exchange.asmx\n\
         \x20 tenant          {tenant}\n\
         \x20 client id       {id}\n\
         \x20 client secret   {secret}\n\
         \x20 mailboxes       {mailboxes}\n\
         Ctrl-C stops it; everything it holds is in memory and gone then.\n",
        tenant = c.tenant,
        id = c.client_id,
        secret = c.client_secret.expose_secret(),
    );
    // Whoever started it may stop reading after the URL; that is no reason to stop.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
