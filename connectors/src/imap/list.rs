//! Listing a folder's messages by identity, without their bodies: UID, RFC822.SIZE and
//! the Message-ID and Subject fields (`BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)]`,
//! RFC 3501 §6.4.5), for `mailhaul verify` to compare source and target.
//!
//! Invariants: as every fetch here, only the UIDs asked for are kept, sorted, once;
//! `PEEK` leaves `\Seen` alone, so verifying changes nothing on either side.

use super::session::ImapSession;
use crate::error::ConnectorError;
use async_imap::imap_proto::{AttributeValue, MessageSection, Response, SectionPath};
use mailhaul_proto::ids::{Uid, UidRange};
use std::collections::HashSet;

/// One message as `verify` knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIdentity {
    /// Its UID in the examined folder.
    pub uid: Uid,
    /// RFC822.SIZE.
    pub size: u32,
    /// The Message-ID field (unfolded, trimmed), if the message has a non-empty one.
    pub message_id: Option<String>,
    /// The Subject, decoded (RFC 2047), for people reading a report.
    pub subject: Option<String>,
}

const ITEMS: &str = "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])";

impl ImapSession {
    /// The identity of every message with these UIDs in the examined folder, by UID.
    ///
    /// One `UID FETCH first:last` for the lot, whatever the gaps between them (the
    /// ones not asked for are dropped here): a set listing each gap can be long
    /// (RFC 2683 §3.2.1.5), and a round trip per chunk is what made `verify` slow.
    ///
    /// # Errors
    /// Transport failures, refusals, and `Protocol` when the server leaves out the size.
    pub async fn identities(
        &mut self,
        uids: &[Uid],
    ) -> Result<Vec<MessageIdentity>, ConnectorError> {
        let (Some(first), Some(last)) = (uids.iter().min(), uids.iter().max()) else {
            return Ok(Vec::new());
        };
        let wanted: HashSet<Uid> = uids.iter().copied().collect();
        self.fetch_identities(&format!("{}:{}", first.0, last.0), |u| wanted.contains(&u))
            .await
    }

    /// The identity of every message with a UID in `range` in the examined folder.
    ///
    /// # Errors
    /// As [`ImapSession::identities`].
    pub async fn identities_in(
        &mut self,
        range: UidRange,
    ) -> Result<Vec<MessageIdentity>, ConnectorError> {
        if range.last.0 == 0 || range.first.0 > range.last.0 {
            return Ok(Vec::new());
        }
        let set = format!("{}:{}", range.first.0.max(1), range.last.0);
        self.fetch_identities(&set, |u| range.contains(u)).await
    }

    async fn fetch_identities(
        &mut self,
        set: &str,
        keep: impl Fn(Uid) -> bool + Send + Sync,
    ) -> Result<Vec<MessageIdentity>, ConnectorError> {
        let mut out = Vec::new();
        self.exec(&format!("UID FETCH {set} {ITEMS}"), "UID FETCH", |resp| {
            if let Response::Fetch(_, attrs) = resp
                && let Some(item) = identity(attrs)?
                && keep(item.uid)
            {
                out.push(item);
            }
            Ok(())
        })
        .await?;
        out.sort_by_key(|m: &MessageIdentity| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }
}

/// One FETCH response as an identity; `None` without a UID (an unsolicited update).
fn identity(attrs: &[AttributeValue<'_>]) -> Result<Option<MessageIdentity>, ConnectorError> {
    let (mut uid, mut size, mut header) = (None, None, None);
    for attr in attrs {
        match attr {
            AttributeValue::Uid(u) => uid = Some(Uid(*u)),
            AttributeValue::Rfc822Size(n) => size = Some(*n),
            AttributeValue::BodySection {
                section: Some(SectionPath::Full(MessageSection::Header)),
                data,
                ..
            } => header = Some(data.as_deref().unwrap_or_default().to_vec()),
            _ => {}
        }
    }
    let Some(uid) = uid else {
        return Ok(None);
    };
    let Some(size) = size else {
        // An unsolicited FLAGS update carries a UID but no size; ours always has one.
        if header.is_none() {
            return Ok(None);
        }
        return Err(ConnectorError::Protocol(format!(
            "the server's FETCH for UID {uid} had no RFC822.SIZE"
        )));
    };
    let header = header.unwrap_or_default();
    Ok(Some(MessageIdentity {
        uid,
        size,
        message_id: mailhaul_proto::inspect::message_id(&header),
        subject: subject(&header),
    }))
}

/// The Subject of a header section, decoded (RFC 2047), for people reading a report.
pub(crate) fn subject(header: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse_headers(header)
        .and_then(|m| m.subject().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_from_the_wire() {
        let line = b"* 3 FETCH (UID 42 RFC822.SIZE 1234 BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {58}\r\nMessage-ID: <a@b>\r\nSubject: =?utf-8?q?caf=C3=A9?= menu\r\n\r\n)\r\n";
        let (_, resp) = Response::parse(line).expect("parses");
        let Response::Fetch(_, attrs) = resp else {
            panic!("not a fetch: {resp:?}")
        };
        let m = identity(&attrs).expect("valid").expect("has uid");
        assert_eq!((m.uid, m.size), (Uid(42), 1234));
        assert_eq!(m.message_id.as_deref(), Some("<a@b>"));
        assert_eq!(m.subject.as_deref(), Some("café menu"));

        let line = b"* 4 FETCH (UID 7 RFC822.SIZE 9 BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {2}\r\n\r\n)\r\n";
        let (_, resp) = Response::parse(line).expect("parses");
        let Response::Fetch(_, attrs) = resp else {
            panic!("not a fetch")
        };
        let m = identity(&attrs).expect("valid").expect("has uid");
        assert_eq!((m.message_id, m.subject), (None, None));

        let (_, resp) = Response::parse(b"* 3 FETCH (UID 5 FLAGS (\\Seen))\r\n").expect("parses");
        let Response::Fetch(_, attrs) = resp else {
            panic!("not a fetch")
        };
        assert!(identity(&attrs).expect("valid").is_none());
    }
}
