//! The kit's Cyrus and Courier: they start on free ports, take the users they are
//! given (and refuse wrong passwords), and behave as their packages do: the `INBOX.`
//! personal namespace with `.` as separator, top-level folders refused.

use mailhaul_tests::kit::{ImapServer, ServerKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Sends `lines` one command at a time over plain TCP and returns everything read.
async fn converse(port: u16, lines: &[&str]) -> anyhow::Result<String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let mut out = String::new();
    r.read_line(&mut out).await?;
    for (i, line) in lines.iter().enumerate() {
        let tag = format!("t{i}");
        w.write_all(format!("{tag} {line}\r\n").as_bytes()).await?;
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).await? == 0 {
                return Ok(out);
            }
            out.push_str(&l);
            if l.starts_with(&format!("{tag} ")) {
                break;
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_and_courier_start_and_log_in() -> anyhow::Result<()> {
    for kind in [ServerKind::Cyrus, ServerKind::Courier] {
        let server = ImapServer::start(kind)?;
        server.add_user("alice", "pw-alice")?;
        let bad = converse(server.imap_port(), &["LOGIN alice wrong"]).await?;
        assert!(bad.contains("t0 NO"), "{kind:?}: {bad}");
        let talk = converse(
            server.imap_port(),
            &[
                "LOGIN alice pw-alice",
                "NAMESPACE",
                "CREATE Top",
                "CREATE INBOX.Work",
                "LIST \"\" \"*\"",
                "LOGOUT",
            ],
        )
        .await?;
        assert!(talk.contains("t0 OK"), "{kind:?}: {talk}");
        assert!(
            talk.contains("* NAMESPACE ((\"INBOX.\" \".\"))"),
            "{kind:?}: {talk}"
        );
        assert!(
            talk.contains("t2 NO"),
            "{kind:?} refuses a top-level folder: {talk}"
        );
        assert!(talk.contains("t3 OK"), "{kind:?}: {talk}");
        assert!(talk.contains("INBOX.Work"), "{kind:?}: {talk}");
    }
    Ok(())
}
