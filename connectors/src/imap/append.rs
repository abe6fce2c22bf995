//! APPEND with APPENDUID: MULTIAPPEND when offered, one APPEND per message otherwise.
//!
//! async-imap's `append()` discards `[APPENDUID uidvalidity uid-set]` (RFC 4315 §3),
//! which exactly-once needs, so the command is written here over the low-level API:
//! the command line through `run_command`, the literals straight to the stream, the
//! replies through the session's reader.
//!
//! With MULTIAPPEND (RFC 3502) all items go in ONE command (Dovecot spends about half
//! the CPU per message compared with single APPENDs), literal after literal: `{n+}`
//! non-synchronising literals with LITERAL+ (RFC 7888), else `{n}` and a wait for each
//! `+`. RFC 3502 makes it all-or-nothing: on a refusal nothing was appended.
//!
//! Invariants: `\Recent` is never sent (RFC 3501 §2.3.2: the server sets it); flags that
//! are not valid IMAP atoms are dropped with a warning rather than corrupting the
//! command; the returned UIDs match the items one to one, in order.

use super::session::{ImapSession, read_done, transport, wait_continue};
use crate::body::Body;
use crate::error::ConnectorError;
use async_imap::imap_proto::rfc4315::UidSetMember;
use chrono::{DateTime, FixedOffset};
use mailhaul_proto::ids::Uid;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tracing::warn;

use super::fetch::INTERNALDATE_FORMAT;

/// One message to append.
#[derive(Debug, Clone, Copy)]
pub struct AppendItem<'a> {
    /// Flags as raw atoms (`\Seen`, `$Forwarded`); `\Recent` is ignored.
    pub flags: &'a [String],
    /// The INTERNALDATE to give the message (its original received time).
    pub internal_date: DateTime<FixedOffset>,
    /// The exact message bytes (a spooled body is sent a piece at a time).
    pub body: &'a Body,
}

/// System flags APPEND may set (RFC 3501 §2.3.2), in canonical spelling.
const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

impl ImapSession {
    /// Appends `items` to the folder `raw_name` and returns their new UIDs, in order.
    ///
    /// With MULTIAPPEND this is one command and all-or-nothing: on an error nothing was
    /// appended (retry item by item to isolate a bad one). Without it, one APPEND per
    /// item: if item `k` fails after earlier ones landed, the error is
    /// [`ConnectorError::PartialAppend`] with the UIDs of items `0..k`, so the caller
    /// can record them and never append them twice.
    ///
    /// # Errors
    /// `Protocol` if the server lacks UIDPLUS (exactly-once needs APPENDUID) or answers
    /// without a usable APPENDUID; server refusals (`[TRYCREATE]`, `[OVERQUOTA]`, size
    /// limits); transport failures.
    pub async fn append_batch(
        &mut self,
        raw_name: &str,
        items: &[AppendItem<'_>],
    ) -> Result<Vec<Uid>, ConnectorError> {
        if !self.caps.uidplus {
            return Err(ConnectorError::Protocol(format!(
                "{} does not offer UIDPLUS (RFC 4315); exactly-once appends need the \
                 APPENDUID it returns",
                self.server
            )));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mailbox = self.mailbox_arg(raw_name)?;
        if self.caps.multiappend {
            return self.append_command(&mailbox, items).await;
        }
        let mut uids = Vec::with_capacity(items.len());
        for (k, item) in items.iter().enumerate() {
            match self
                .append_command(&mailbox, std::slice::from_ref(item))
                .await
            {
                Ok(mut one) => uids.append(&mut one),
                Err(e) if k == 0 => return Err(e),
                Err(e) => {
                    return Err(ConnectorError::PartialAppend {
                        appended: uids,
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(uids)
    }

    /// One APPEND command carrying `items` (several only under MULTIAPPEND).
    async fn append_command(
        &mut self,
        mailbox: &str,
        items: &[AppendItem<'_>],
    ) -> Result<Vec<Uid>, ConnectorError> {
        self.ensure_usable()?;
        let literal_plus = self.caps.literal_plus;
        // A body with NUL goes as a literal8 where the server offers BINARY (RFC 3516
        // §4.4): Cyrus refuses NUL in a plain literal ("Message contains NUL
        // characters") and takes it in a literal8. Elsewhere it goes as it is and the
        // server decides (Courier replaces NUL by a space, Dovecot keeps it).
        let mut binary = Vec::with_capacity(items.len());
        for item in items {
            binary.push(self.caps.binary && has_nul(item.body).await?);
        }
        let lines = append_lines(mailbox, items, literal_plus, &binary);
        let bytes: u64 = items.iter().map(|i| i.body.len()).sum();
        // Sending takes time too: one extra second per MiB on top of the command limit.
        let limit = self.command_timeout + Duration::from_secs(bytes >> 20);
        let inner = &mut self.inner;
        let run = async {
            let id = inner.run_command(&lines[0]).await.map_err(transport)?;
            for (i, item) in items.iter().enumerate() {
                if !literal_plus {
                    wait_continue(inner, &id, "APPEND").await?;
                }
                let next = lines.get(i + 1).map(String::as_str).unwrap_or("");
                let stream = inner.get_mut();
                item.body.write_to(stream).await?;
                stream.write_all(next.as_bytes()).await?;
                stream.write_all(b"\r\n").await?;
            }
            inner.get_mut().flush().await?;
            read_done(inner, &id, "APPEND", &mut |_| Ok(())).await
        };
        let result = timeout(limit, run).await;
        let done = self.settle("APPEND", limit, result)?;
        let Some((_, set)) = done.append_uid else {
            return Err(ConnectorError::Protocol(format!(
                "{} accepted the APPEND but sent no APPENDUID; the {} message(s) are in the \
                 folder but their UIDs are unknown",
                self.server,
                items.len()
            )));
        };
        appended_uids(&set, items.len())
    }
}

/// The command text around the literals: `lines[0]` is the command line up to and
/// including the first literal's `{n}`; `lines[i]` (i > 0) is what follows body `i-1`
/// up to body `i`'s `{n}`. The caller sends CRLF after each line and after the last body.
pub(super) fn append_lines(
    mailbox: &str,
    items: &[AppendItem<'_>],
    literal_plus: bool,
    binary: &[bool],
) -> Vec<String> {
    let plus = if literal_plus { "+" } else { "" };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let head = if i == 0 {
                format!("APPEND {mailbox}")
            } else {
                String::new()
            };
            let tilde = if binary.get(i).copied().unwrap_or(false) {
                "~"
            } else {
                ""
            };
            format!(
                "{head} {} \"{}\" {tilde}{{{}{plus}}}",
                flag_list(item.flags),
                format_internal_date(&item.internal_date),
                item.body.len()
            )
        })
        .collect()
}

/// Whether `body` holds a NUL byte (a spooled body is read in pieces).
async fn has_nul(body: &Body) -> std::io::Result<bool> {
    if let Some(bytes) = body.in_memory() {
        return Ok(bytes.contains(&0));
    }
    use futures_util::StreamExt as _;
    let mut pieces = std::pin::pin!(body.pieces(crate::body::READ_PIECE));
    while let Some(piece) = pieces.next().await {
        if piece?.contains(&0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `(\Seen $Forwarded)`: system flags in canonical spelling, keywords that are atoms.
pub(super) fn flag_list(flags: &[String]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(flags.len());
    for flag in flags {
        if let Some(system) = SYSTEM_FLAGS.iter().find(|s| s.eq_ignore_ascii_case(flag)) {
            out.push(system);
        } else if flag.eq_ignore_ascii_case("\\Recent") {
            // Set by the server only (RFC 3501 §2.3.2).
        } else if !flag.starts_with('\\') && is_atom(flag) {
            out.push(flag);
        } else {
            warn!(flag = %flag.escape_debug(), "Dropping a flag that APPEND cannot carry.");
        }
    }
    out.dedup();
    format!("({})", out.join(" "))
}

/// RFC 3501 §9 `atom`: one or more CHARs that are not atom-specials.
fn is_atom(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b))
}

/// INTERNALDATE as APPEND takes it: `17-Jul-1996 02:44:25 -0700` (RFC 3501 §9 date-time).
pub(super) fn format_internal_date(d: &DateTime<FixedOffset>) -> String {
    d.format(INTERNALDATE_FORMAT).to_string()
}

/// Expands APPENDUID's uid-set (`5`, `5:9`, `5,7:8`) into one UID per appended message.
pub(super) fn appended_uids(
    set: &[UidSetMember],
    expected: usize,
) -> Result<Vec<Uid>, ConnectorError> {
    let mut uids = Vec::with_capacity(expected);
    for member in set {
        match member {
            UidSetMember::Uid(u) => uids.push(Uid(*u)),
            UidSetMember::UidRange(r) => {
                // Bounded by `expected`, so a hostile "1:4294967295" cannot eat memory.
                for u in r.clone() {
                    if uids.len() > expected {
                        break;
                    }
                    uids.push(Uid(u));
                }
            }
        }
    }
    if uids.len() != expected {
        return Err(ConnectorError::Protocol(format!(
            "APPENDUID names {} UID(s) for {expected} appended message(s)",
            uids.len()
        )));
    }
    Ok(uids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::imap_proto::{Response, ResponseCode};

    fn date(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("valid test date")
    }

    #[test]
    fn internal_date_format() {
        for (rfc3339, want) in [
            ("1996-07-17T02:44:25-07:00", "17-Jul-1996 02:44:25 -0700"),
            ("2024-01-05T00:00:00+05:30", "05-Jan-2024 00:00:00 +0530"),
            ("2023-12-31T23:59:59Z", "31-Dec-2023 23:59:59 +0000"),
        ] {
            assert_eq!(format_internal_date(&date(rfc3339)), want);
            // It must read back the same (what we send is what FETCH shows).
            assert_eq!(
                super::super::fetch::parse_internal_date(want).expect(want),
                date(rfc3339)
            );
        }
    }

    #[test]
    fn flags_are_filtered() {
        let f = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for (flags, want) in [
            (
                f(&["\\Seen", "\\Recent", "$Forwarded"]),
                "(\\Seen $Forwarded)",
            ),
            (f(&["\\SEEN", "\\flagged"]), "(\\Seen \\Flagged)"),
            (f(&[]), "()"),
            (
                f(&["has space", "par(en", "\\Custom", "ok_Kw", "\"q"]),
                "(ok_Kw)",
            ),
            (
                f(&["\\Draft", "\\Deleted", "\\Answered"]),
                "(\\Draft \\Deleted \\Answered)",
            ),
        ] {
            assert_eq!(flag_list(&flags), want, "{flags:?}");
        }
    }

    #[test]
    fn multiappend_command_builder() {
        let seen = vec!["\\Seen".to_owned()];
        let none: Vec<String> = Vec::new();
        let d = date("2024-03-01T10:00:00+01:00");
        let (a, bb) = (
            Body::from(b"Subject: a\r\n\r\nA\r\n".to_vec()),
            Body::from(b"Subject: bb\r\n\r\nBB\r\n".to_vec()),
        );
        let items = [
            AppendItem {
                flags: &seen,
                internal_date: d,
                body: &a,
            },
            AppendItem {
                flags: &none,
                internal_date: d,
                body: &bb,
            },
        ];
        assert_eq!(
            append_lines("\"INBOX\"", &items, true, &[false, false]),
            vec![
                "APPEND \"INBOX\" (\\Seen) \"01-Mar-2024 10:00:00 +0100\" {17+}",
                " () \"01-Mar-2024 10:00:00 +0100\" {19+}",
            ]
        );
        assert_eq!(
            append_lines("\"INBOX\"", &items, true, &[false, true])[1],
            " () \"01-Mar-2024 10:00:00 +0100\" ~{19+}",
            "a literal8 for a body with NUL (RFC 3516)"
        );
        let sync = append_lines("\"INBOX\"", &items[..1], false, &[false]);
        assert_eq!(
            sync,
            vec!["APPEND \"INBOX\" (\\Seen) \"01-Mar-2024 10:00:00 +0100\" {17}"]
        );
    }

    fn appenduid(line: &[u8]) -> Vec<UidSetMember> {
        let (_, resp) = Response::parse(line).expect("parses");
        match resp {
            Response::Done { outcome, .. } => match outcome.code {
                Some(ResponseCode::AppendUid(_, set)) => set,
                other => panic!("no APPENDUID: {other:?}"),
            },
            other => panic!("not tagged: {other:?}"),
        }
    }

    #[test]
    fn appenduid_sets_expand() {
        let u = |v: &[u32]| v.iter().map(|&x| Uid(x)).collect::<Vec<_>>();
        for (line, n, want) in [
            (
                &b"A1 OK [APPENDUID 38505 3955] APPEND completed\r\n"[..],
                1,
                u(&[3955]),
            ),
            (
                b"A1 OK [APPENDUID 38505 5:9] done\r\n",
                5,
                u(&[5, 6, 7, 8, 9]),
            ),
            (b"A1 OK [APPENDUID 1 9:7] done\r\n", 3, u(&[7, 8, 9])),
            (
                b"A1 OK [APPENDUID 1 3,5:6,10] done\r\n",
                4,
                u(&[3, 5, 6, 10]),
            ),
        ] {
            assert_eq!(appended_uids(&appenduid(line), n).expect("matches"), want);
        }
        let short = appenduid(b"A1 OK [APPENDUID 1 5:6] done\r\n");
        assert!(appended_uids(&short, 3).is_err());
        let huge = appenduid(b"A1 OK [APPENDUID 1 1:4294967295] done\r\n");
        assert!(appended_uids(&huge, 2).is_err());
    }
}
