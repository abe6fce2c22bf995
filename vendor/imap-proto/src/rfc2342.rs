//! mailhaul patch: the NAMESPACE response (RFC 2342 §5).
//!
//! ```text
//! Namespace_Response = "*" SP "NAMESPACE" SP Namespace SP Namespace SP Namespace
//! Namespace = nil / "(" 1*( "(" string SP (<"> QUOTED_CHAR <"> / nil)
//!             *(Namespace_Response_Extension) ")" ) ")"
//! Namespace_Response_Extension = SP string SP "(" string *(SP string) ")"
//! ```
//!
//! Upstream 0.17.0 has no parser for it, so a server's NAMESPACE answer failed the
//! whole response stream.

use std::borrow::Cow;

use nom::{
    branch::alt,
    bytes::streaming::tag_no_case,
    character::streaming::char,
    combinator::map,
    multi::{many0, many1, separated_list1},
    sequence::{delimited, preceded},
    IResult, Parser,
};

use crate::core::{nil, quoted_utf8, string_utf8};
use crate::rfc3501::MailboxDatum;

/// One namespace: its prefix and hierarchy delimiter (`None`: flat).
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct NamespaceDescr<'a> {
    /// The prefix, e.g. `INBOX.` or `""`.
    pub prefix: Cow<'a, str>,
    /// The hierarchy delimiter.
    pub delimiter: Option<Cow<'a, str>>,
}

fn extension(i: &[u8]) -> IResult<&[u8], ()> {
    map(
        (
            char(' '),
            string_utf8,
            char(' '),
            delimited(char('('), separated_list1(char(' '), string_utf8), char(')')),
        ),
        |_| (),
    )
    .parse(i)
}

fn descr(i: &[u8]) -> IResult<&[u8], NamespaceDescr<'_>> {
    map(
        delimited(
            char('('),
            (
                string_utf8,
                char(' '),
                alt((map(quoted_utf8, Some), map(nil, |_| None))),
                many0(extension),
            ),
            char(')'),
        ),
        |(prefix, _, delimiter, _)| NamespaceDescr { prefix, delimiter },
    )
    .parse(i)
}

fn namespace(i: &[u8]) -> IResult<&[u8], Vec<NamespaceDescr<'_>>> {
    alt((
        map(nil, |_| Vec::new()),
        delimited(char('('), many1(descr), char(')')),
    ))
    .parse(i)
}

/// `NAMESPACE personal other shared` (after `* `).
pub(crate) fn mailbox_data_namespace(i: &[u8]) -> IResult<&[u8], MailboxDatum<'_>> {
    map(
        preceded(
            tag_no_case("NAMESPACE "),
            (namespace, char(' '), namespace, char(' '), namespace),
        ),
        |(personal, _, other, _, shared)| MailboxDatum::Namespace {
            personal,
            other,
            shared,
        },
    )
    .parse(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Response;

    #[test]
    fn namespace_responses() {
        let (_, r) = Response::parse(
            b"* NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"#shared.\" \".\")(\"shared.\" \".\"))\r\n",
        )
        .unwrap();
        match r {
            Response::MailboxData(MailboxDatum::Namespace {
                personal,
                other,
                shared,
            }) => {
                assert_eq!(personal[0].prefix, "INBOX.");
                assert_eq!(personal[0].delimiter.as_deref(), Some("."));
                assert!(other.is_empty());
                assert_eq!(shared.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        let (_, r) = Response::parse(
            b"* NAMESPACE ((\"\" \"/\" \"X-PARAM\" (\"a\" \"b\"))) ((\"~\" NIL)) NIL\r\n",
        )
        .unwrap();
        match r {
            Response::MailboxData(MailboxDatum::Namespace { personal, other, .. }) => {
                assert_eq!(personal[0].prefix, "");
                assert_eq!(other[0].delimiter, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
