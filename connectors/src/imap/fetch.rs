//! `UID FETCH` for both sides: one command, its FETCH responses turned into owned items.
//!
//! Invariants: only responses for UIDs that were asked for are kept (servers send
//! unsolicited FETCH responses for flag changes, and `n:m` matches the highest UID when
//! the range is empty, RFC 3501 §6.4.8), results are sorted by UID with no duplicates,
//! and flags never include `\Recent` (a session flag no one can set, RFC 3501 §2.3.2).

use super::session::ImapSession;
use crate::body::BodySink;
use crate::error::ConnectorError;
use async_imap::imap_proto::{AttributeValue, Response};
use chrono::{DateTime, FixedOffset};
use mailhaul_proto::ids::{Uid, uid_set};
use std::collections::HashSet;

/// INTERNALDATE as RFC 3501 §9 writes it: `"17-Jul-1996 02:44:25 -0700"`.
pub(super) const INTERNALDATE_FORMAT: &str = "%d-%b-%Y %H:%M:%S %z";

/// One message's attributes from a FETCH response; `None` where not asked or not sent.
#[derive(Debug)]
pub(super) struct Fetched {
    pub(super) uid: Uid,
    pub(super) flags: Option<Vec<String>>,
    pub(super) internal_date: Option<DateTime<FixedOffset>>,
    pub(super) size: Option<u32>,
    pub(super) body: Option<Vec<u8>>,
}

impl Fetched {
    /// The attribute or a protocol error naming what the server left out.
    pub(super) fn need<T>(value: Option<T>, what: &str, uid: Uid) -> Result<T, ConnectorError> {
        value.ok_or_else(|| {
            ConnectorError::Protocol(format!("the server's FETCH for UID {uid} had no {what}"))
        })
    }
}

/// Parses an INTERNALDATE; servers may space-pad the day (`" 7-Jul-1996 ..."`).
pub(super) fn parse_internal_date(s: &str) -> Result<DateTime<FixedOffset>, ConnectorError> {
    DateTime::parse_from_str(s.trim(), INTERNALDATE_FORMAT)
        .map_err(|e| ConnectorError::Protocol(format!("unreadable INTERNALDATE {s:?}: {e}")))
}

/// Turns one FETCH response's attributes into a [`Fetched`]; `None` without a UID.
fn parse_attributes(attrs: &[AttributeValue<'_>]) -> Result<Option<Fetched>, ConnectorError> {
    let mut item = Fetched {
        uid: Uid(0),
        flags: None,
        internal_date: None,
        size: None,
        body: None,
    };
    let mut have_uid = false;
    for attr in attrs {
        match attr {
            AttributeValue::Uid(u) => {
                item.uid = Uid(*u);
                have_uid = true;
            }
            AttributeValue::Flags(flags) => {
                item.flags = Some(
                    flags
                        .iter()
                        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                        .map(|f| f.to_string())
                        .collect(),
                );
            }
            AttributeValue::InternalDate(d) => item.internal_date = Some(parse_internal_date(d)?),
            AttributeValue::Rfc822Size(n) => item.size = Some(*n),
            // `BODY[]`, or `BODY[]<origin>` for a partial FETCH (only one is ever asked).
            AttributeValue::BodySection {
                section: None,
                data,
                ..
            } => {
                // NIL for BODY[] is legal (RFC 3501 §7.4.2) and means an empty body.
                item.body = Some(data.as_deref().map(<[u8]>::to_vec).unwrap_or_default());
            }
            _ => {}
        }
    }
    Ok(have_uid.then_some(item))
}

impl ImapSession {
    /// `UID FETCH <uids> <items>` in the selected folder: exactly these UIDs (those that
    /// exist), by UID. The set is sent short (RFC 2683 §3.2.1.5).
    pub(super) async fn fetch_uids(
        &mut self,
        uids: &[Uid],
        items: &str,
    ) -> Result<Vec<Fetched>, ConnectorError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: HashSet<Uid> = uids.iter().copied().collect();
        self.uid_fetch(&uid_set(uids), items, |u| wanted.contains(&u))
            .await
    }

    /// `UID FETCH <set> <items>` in the selected folder, filtered to `keep`, by UID.
    pub(super) async fn uid_fetch(
        &mut self,
        set: &str,
        items: &str,
        keep: impl Fn(Uid) -> bool + Send + Sync,
    ) -> Result<Vec<Fetched>, ConnectorError> {
        let mut out: Vec<Fetched> = Vec::new();
        self.exec(&format!("UID FETCH {set} {items}"), "UID FETCH", |resp| {
            if let Response::Fetch(_, attrs) = resp
                && let Some(item) = parse_attributes(attrs)?
                && keep(item.uid)
            {
                out.push(item);
            }
            Ok(())
        })
        .await?;
        out.sort_by_key(|f| f.uid);
        // A server may answer the same UID twice (an unsolicited FLAGS update next to
        // ours); keep the first, which for bodies is the one with the data.
        out.dedup_by(|later, first| {
            if later.uid != first.uid {
                return false;
            }
            merge(first, later);
            true
        });
        Ok(out)
    }
}

/// Bytes asked for per partial FETCH of a large body.
pub(super) const FETCH_PIECE: u32 = 4 << 20;

/// Flags and INTERNALDATE of a message read by [`ImapSession::read_body`].
pub(super) type Meta = (Vec<String>, DateTime<FixedOffset>);

impl ImapSession {
    /// Reads message `uid`'s `BODY[]` into `sink` by partial FETCHes
    /// (`BODY.PEEK[]<origin.length>`, RFC 3501 §6.4.5) of [`FETCH_PIECE`] bytes, so that
    /// neither this session nor async-imap's reader ever holds more than one piece;
    /// the first FETCH also asks for the flags and INTERNALDATE, which are returned.
    /// `None` when the message no longer exists.
    ///
    /// # Errors
    /// Transport failures, refusals, the sink's file failing, and `Protocol` when the
    /// server leaves out an item or sends more than asked.
    pub(super) async fn read_body(
        &mut self,
        uid: Uid,
        sink: &mut BodySink,
    ) -> Result<Option<Meta>, ConnectorError> {
        let mut meta = None;
        loop {
            let origin = sink.len();
            let origin32 = u32::try_from(origin).map_err(|_| {
                ConnectorError::Protocol(format!("UID {uid} is larger than IMAP can address"))
            })?;
            let items = if origin == 0 {
                format!("(UID FLAGS INTERNALDATE BODY.PEEK[]<0.{FETCH_PIECE}>)")
            } else {
                format!("(UID BODY.PEEK[]<{origin32}.{FETCH_PIECE}>)")
            };
            let Some(f) = self.fetch_uids(&[uid], &items).await?.pop() else {
                return Ok(None);
            };
            if origin == 0 {
                meta = Some((
                    Fetched::need(f.flags, "FLAGS", uid)?,
                    Fetched::need(f.internal_date, "INTERNALDATE", uid)?,
                ));
            }
            let piece = Fetched::need(f.body, "BODY[]", uid)?;
            if piece.len() > FETCH_PIECE as usize {
                return Err(ConnectorError::Protocol(format!(
                    "the server answered a FETCH of {FETCH_PIECE} bytes of UID {uid} with {}",
                    piece.len()
                )));
            }
            sink.write(&piece).await.map_err(ConnectorError::Local)?;
            if piece.len() < FETCH_PIECE as usize {
                return Ok(meta);
            }
        }
    }

    /// Message `uid`'s whole `BODY[]`, read in pieces as [`ImapSession::read_body`]
    /// reads it (spooled to a file when large); `None` when it no longer exists. For
    /// `verify`, which compares the bytes of the few messages whose sizes differ.
    ///
    /// # Errors
    /// As [`ImapSession::read_body`].
    pub async fn body(&mut self, uid: Uid) -> Result<Option<crate::body::Body>, ConnectorError> {
        let mut sink = BodySink::new();
        if self.read_body(uid, &mut sink).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(sink.finish().await?))
    }

    /// The length and content hash of message `uid`'s `BODY[]`, read in pieces and
    /// kept nowhere; `None` when it no longer exists.
    ///
    /// # Errors
    /// As [`ImapSession::read_body`].
    pub async fn body_hash(&mut self, uid: Uid) -> Result<Option<(u64, u64)>, ConnectorError> {
        let mut sink = BodySink::hash_only();
        if self.read_body(uid, &mut sink).await?.is_none() {
            return Ok(None);
        }
        let len = sink.len();
        let d = sink.digest();
        Ok(Some((
            len,
            u64::from_be_bytes(d[..8].try_into().expect("8 bytes")),
        )))
    }
}

/// Fills `into`'s gaps from `from` (two responses for the same UID).
fn merge(into: &mut Fetched, from: &mut Fetched) {
    if into.flags.is_none() {
        into.flags = from.flags.take();
    }
    if into.internal_date.is_none() {
        into.internal_date = from.internal_date.take();
    }
    if into.size.is_none() {
        into.size = from.size.take();
    }
    if into.body.is_none() {
        into.body = from.body.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    #[test]
    fn internal_dates_parse() {
        for (s, day, hour, offset_secs) in [
            ("17-Jul-1996 02:44:25 -0700", 17, 2, -7 * 3600),
            (" 7-Jul-1996 02:44:25 +0000", 7, 2, 0),
            ("01-Jan-2024 23:59:59 +0530", 1, 23, 5 * 3600 + 1800),
        ] {
            let d = parse_internal_date(s).expect(s);
            assert_eq!((d.day(), d.hour()), (day, hour), "{s}");
            assert_eq!(d.offset().local_minus_utc(), offset_secs, "{s}");
        }
        assert!(parse_internal_date("yesterday").is_err());
    }

    #[test]
    fn fetch_attributes_parse_from_the_wire() {
        let line = b"* 3 FETCH (UID 42 FLAGS (\\Seen \\Recent $Forwarded) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 5 BODY[] {5}\r\nhello)\r\n";
        let (_, resp) = Response::parse(line).expect("parses");
        let Response::Fetch(_, attrs) = resp else {
            panic!("not a fetch: {resp:?}")
        };
        let item = parse_attributes(&attrs).expect("valid").expect("has uid");
        assert_eq!(item.uid, Uid(42));
        assert_eq!(
            item.flags,
            Some(vec!["\\Seen".to_owned(), "$Forwarded".to_owned()])
        );
        assert_eq!(item.size, Some(5));
        assert_eq!(item.body.as_deref(), Some(&b"hello"[..]));
        assert_eq!(
            item.internal_date.map(|d| d.to_rfc3339()),
            Some("1996-07-17T02:44:25-07:00".to_owned())
        );
    }

    #[test]
    fn literal8_bodies_parse() {
        // Cyrus 3.6 answers `BODY[]` of a message with a NUL as a literal8 (RFC 3516).
        let line = b"* 2 FETCH (UID 2 RFC822.SIZE 7 BODY[] ~{7}\r\nhe\x00llo\n)\r\n";
        let (_, resp) = Response::parse(line).expect("parses");
        let Response::Fetch(_, attrs) = resp else {
            panic!("not a fetch: {resp:?}")
        };
        let item = parse_attributes(&attrs).expect("valid").expect("has uid");
        assert_eq!(item.body.as_deref(), Some(&b"he\x00llo\n"[..]));
    }

    #[test]
    fn fetch_without_uid_is_skipped() {
        let (_, resp) = Response::parse(b"* 3 FETCH (FLAGS (\\Seen))\r\n").expect("parses");
        let Response::Fetch(_, attrs) = resp else {
            panic!("not a fetch")
        };
        assert!(parse_attributes(&attrs).expect("valid").is_none());
    }
}
