//! Puts a [`Corpus`] into an IMAP account: creates its folders, then APPENDs every
//! message with its flags and INTERNALDATE, in corpus order (so UIDs follow it).
//!
//! Speed: Dovecot spends about twice the CPU per message when each message is its own
//! APPEND, so messages go in MULTIAPPEND batches (RFC 3502) with non-synchronising
//! literals (LITERAL+, RFC 7888): one write per batch, one tagged reply. async-imap has
//! no MULTIAPPEND, so the batch is written to the socket directly and the reply read
//! with its low-level `read_response`. Folders are spread over two connections (the
//! machine has two cores; one folder always stays on one connection, to keep order).
//! Without MULTIAPPEND or LITERAL+ it falls back to one `APPEND` per message.

use anyhow::Context as _;
use async_imap::imap_proto::{Response, Status};
use tokio::io::AsyncWriteExt as _;

use super::{Corpus, Message};
use crate::kit::imap::{Session, internal_date, login, quote};
use crate::kit::mutf7;

/// At most this many bytes of literals per MULTIAPPEND command.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// At most this many messages per MULTIAPPEND command.
const BATCH_MESSAGES: usize = 100;
/// Connections used to append in parallel.
const CONNECTIONS: usize = 2;

/// Creates the corpus's folders in the account and appends all its messages.
///
/// Folders are created in corpus order (`INBOX` is never created, it exists); a folder
/// that already exists is an error, so a test cannot silently seed twice.
///
/// # Errors
/// On login failure, a failed CREATE or APPEND (the message names folder and message).
pub async fn seed(
    imap_port: u16,
    user: &str,
    password: &str,
    corpus: &Corpus,
) -> anyhow::Result<()> {
    fill(imap_port, user, password, corpus, true).await
}

/// Appends the corpus's messages to folders that already exist (new mail arriving).
///
/// # Errors
/// On login failure or a failed APPEND (e.g. a folder that does not exist).
pub async fn append(
    imap_port: u16,
    user: &str,
    password: &str,
    corpus: &Corpus,
) -> anyhow::Result<()> {
    fill(imap_port, user, password, corpus, false).await
}

async fn fill(
    imap_port: u16,
    user: &str,
    password: &str,
    corpus: &Corpus,
    create: bool,
) -> anyhow::Result<()> {
    let mut first = login(imap_port, user, password).await?;
    for (path, _) in corpus.folders.iter().filter(|_| create) {
        if !path.eq_ignore_ascii_case("INBOX") {
            first
                .create(mutf7::encode(path))
                .await
                .with_context(|| format!("CREATE {path:?}"))?;
        }
    }
    let caps = first.capabilities().await.context("CAPABILITY")?;
    let batched = caps.has_str("MULTIAPPEND") && caps.has_str("LITERAL+");

    // Greedy split by bytes: the biggest folder first, each to the lighter connection.
    let mut order: Vec<usize> = (0..corpus.folders.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(folder_bytes(&corpus.folders[i].1)));
    let mut shares: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); CONNECTIONS];
    for i in order {
        let lightest = shares
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("CONNECTIONS > 0");
        lightest.0 += folder_bytes(&corpus.folders[i].1);
        lightest.1.push(i);
    }
    let mut sessions = vec![first];
    for _ in 1..CONNECTIONS {
        sessions.push(login(imap_port, user, password).await?);
    }
    let jobs = sessions
        .into_iter()
        .zip(shares)
        .map(|(mut session, (_, folders))| async move {
            for i in folders {
                let (path, messages) = &corpus.folders[i];
                append_folder(&mut session, path, messages, batched)
                    .await
                    .with_context(|| format!("seeding folder {path:?}"))?;
            }
            session.logout().await.context("LOGOUT")
        });
    futures_util::future::try_join_all(jobs).await?;
    Ok(())
}

fn folder_bytes(messages: &[Message]) -> u64 {
    messages.iter().map(|m| m.body.len() as u64).sum()
}

async fn append_folder(
    session: &mut Session,
    path: &str,
    messages: &[Message],
    batched: bool,
) -> anyhow::Result<()> {
    let mailbox = mutf7::encode(path);
    if !batched {
        for (n, m) in messages.iter().enumerate() {
            let flags = format!("({})", m.flags.join(" "));
            session
                .append(
                    &mailbox,
                    Some(&flags),
                    Some(&internal_date(&m.internal_date)),
                    &m.body,
                )
                .await
                .with_context(|| format!("APPEND of message #{n}"))?;
        }
        return Ok(());
    }
    let mut start = 0;
    let mut batch_no = 0;
    while start < messages.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < messages.len()
            && end - start < BATCH_MESSAGES
            && (end == start || bytes + messages[end].body.len() <= BATCH_BYTES)
        {
            bytes += messages[end].body.len();
            end += 1;
        }
        batch_no += 1;
        let tag = format!("seed{batch_no}");
        let command = multiappend(&tag, &mailbox, &messages[start..end], bytes);
        let stream = session.get_mut();
        stream
            .write_all(&command)
            .await
            .context("writing MULTIAPPEND")?;
        stream.flush().await?;
        wait_tagged(session, &tag)
            .await
            .with_context(|| format!("MULTIAPPEND of messages #{start}..#{}", end - 1))?;
        start = end;
    }
    Ok(())
}

/// `<tag> APPEND <mailbox> (<flags>) "<date>" {<n>+}CRLF<bytes> (<flags>) … CRLF`.
fn multiappend(tag: &str, mailbox: &str, batch: &[Message], bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + batch.len() * 96 + 64);
    out.extend_from_slice(format!("{tag} APPEND {}", quote(mailbox)).as_bytes());
    for m in batch {
        let head = format!(
            " ({}) {} {{{}+}}\r\n",
            m.flags.join(" "),
            internal_date(&m.internal_date),
            m.body.len()
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&m.body);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Reads responses until the tagged completion of `tag`; untagged data is ignored.
async fn wait_tagged(session: &mut Session, tag: &str) -> anyhow::Result<()> {
    loop {
        let response = session
            .read_response()
            .await?
            .context("the IMAP server closed the connection")?;
        if let Response::Done {
            tag: done,
            status,
            outcome,
        } = response.parsed()
        {
            if done.0 != tag {
                continue;
            }
            return match status {
                Status::Ok => Ok(()),
                other => anyhow::bail!(
                    "server said {other:?}: {}",
                    outcome.information.as_deref().unwrap_or("(no text)")
                ),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::at;

    #[test]
    fn multiappend_wire_format() {
        let m = |body: &str, flags: &[&str]| Message {
            body: body.as_bytes().to_vec(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            internal_date: at(889_900_000, -28_800),
        };
        let cmd = multiappend(
            "s1",
            "R&-D",
            &[m("a\r\n", &["\\Seen", "$Label1"]), m("bc", &[])],
            5,
        );
        assert_eq!(
            String::from_utf8(cmd).expect("ascii"),
            "s1 APPEND \"R&-D\" (\\Seen $Label1) \"14-Mar-1998 10:26:40 -0800\" {3+}\r\na\r\n \
             () \"14-Mar-1998 10:26:40 -0800\" {2+}\r\nbc\r\n"
        );
    }
}
