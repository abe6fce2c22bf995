//! Headers on the JSON path, without harm to the mailbox.
//!
//! Graph's `internetMessageHeaders` takes only `x-` headers, and each distinct name
//! becomes a named property of the mailbox; Exchange Online caps those per mailbox
//! (about 9,830 internet-header names, 16,384 in all, support article "Mailbox named
//! properties quota exceeded"), and a mailbox that runs out stops opening items and
//! bounces new mail. So no `X-` header is sent unless the manifest lists its name.
//! What users look at is carried by MAPI properties, which are not named properties
//! (MS-OXPROPS; ids and types cited per item):
//!
//! | header | property |
//! |---|---|
//! | the whole header block | PidTagTransportMessageHeaders `String 0x007D` ("View message details") |
//! | In-Reply-To | PidTagInReplyToId `String 0x1042` |
//! | References | PidTagInternetReferences `String 0x1039` |
//! | Thread-Index | PidTagConversationIndex `Binary 0x0071` (the header is its base64) |
//! | Sensitivity | PidTagSensitivity `Integer 0x0036` (1 personal, 2 private, 3 confidential) |
//! | List-Unsubscribe | PidTagListUnsubscribe `String 0x1045` |
//! | Importance, X-Priority, X-MSMail-Priority, Priority | the `importance` property |
//!
//! The header block is capped below Exchange Online's 256 KB of headers per message,
//! cut at a line boundary.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_parser::Message;
use serde_json::{Value, json};

/// The most of the header block carried in PidTagTransportMessageHeaders.
pub(super) const TRANSPORT_HEADERS_LIMIT: usize = 200 * 1024;

/// What the headers contribute to a create body.
#[derive(Debug, Default, PartialEq)]
pub(super) struct HeaderFields {
    /// `singleValueExtendedProperties` entries.
    pub(super) props: Vec<Value>,
    /// `importance` (`low`, `high`; `normal` is left out).
    pub(super) importance: Option<&'static str>,
    /// `internetMessageHeaders` entries: the allowed `X-` headers only.
    pub(super) x_headers: Vec<Value>,
}

/// The header fields of `message`; `allowed` are the `X-` header names (any case) the
/// manifest lets through.
pub(super) fn header_fields(message: &Message<'_>, raw: &[u8], allowed: &[String]) -> HeaderFields {
    let mut out = HeaderFields::default();
    let block = header_block(raw);
    if !block.is_empty() {
        out.props.push(string_prop(0x007D, &block));
    }
    let first = |name: &str| -> Option<String> {
        message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unfold(v))
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = first("In-Reply-To") {
        out.props.push(string_prop(0x1042, &v));
    }
    if let Some(v) = first("References") {
        out.props.push(string_prop(0x1039, &v));
    }
    if let Some(v) = first("Thread-Index") {
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        // PidTagConversationIndex is a 22-byte header plus 5-byte child blocks
        // (MS-OXOMSG 2.2.1.3); anything else is not a Thread-Index Outlook wrote.
        if STANDARD
            .decode(&compact)
            .is_ok_and(|b| b.len() >= 22 && (b.len() - 22) % 5 == 0)
        {
            out.props
                .push(json!({"id": "Binary 0x0071", "value": compact}));
        }
    }
    if let Some(level) = first("Sensitivity").and_then(|v| sensitivity(&v)) {
        out.props
            .push(json!({"id": "Integer 0x0036", "value": level.to_string()}));
    }
    if let Some(v) = first("List-Unsubscribe") {
        out.props.push(string_prop(0x1045, &v));
    }
    out.importance = ["Importance", "X-Priority", "X-MSMail-Priority", "Priority"]
        .iter()
        .find_map(|h| first(h).and_then(|v| importance(h, &v)))
        .filter(|i| *i != "normal");
    out.x_headers = message
        .headers_raw()
        .filter(|(name, _)| {
            name.to_ascii_lowercase().starts_with("x-")
                && allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
        .map(|(name, value)| json!({"name": name, "value": unfold(value)}))
        .collect();
    out
}

fn string_prop(tag: u16, value: &str) -> Value {
    json!({"id": format!("String 0x{tag:04X}"), "value": value})
}

/// The top-level header section as text, without the blank line, cut at a line
/// boundary under [`TRANSPORT_HEADERS_LIMIT`].
fn header_block(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(raw.len());
    let mut block = &raw[..end];
    if block.len() > TRANSPORT_HEADERS_LIMIT {
        let cut = block[..TRANSPORT_HEADERS_LIMIT]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        block = &block[..cut];
    }
    String::from_utf8_lossy(block).into_owned()
}

/// `low`, `normal` or `high` from one of the importance headers.
fn importance(header: &str, value: &str) -> Option<&'static str> {
    let v = value.trim().to_ascii_lowercase();
    match header {
        // X-Priority: 1 (Highest) .. 5 (Lowest).
        "X-Priority" => match v.chars().next()? {
            '1' | '2' => Some("high"),
            '3' => Some("normal"),
            '4' | '5' => Some("low"),
            _ => None,
        },
        // RFC 2156 §5.3: Priority: normal | urgent | non-urgent.
        "Priority" => match v.as_str() {
            "urgent" => Some("high"),
            "non-urgent" => Some("low"),
            "normal" => Some("normal"),
            _ => None,
        },
        // RFC 2156 Importance, and Outlook's X-MSMail-Priority.
        _ => match v.as_str() {
            "high" => Some("high"),
            "low" => Some("low"),
            "normal" => Some("normal"),
            _ => None,
        },
    }
}

/// PidTagSensitivity from `Sensitivity:` (RFC 2156 §5.3).
fn sensitivity(value: &str) -> Option<u32> {
    match value.trim().to_ascii_lowercase().as_str() {
        "personal" => Some(1),
        "private" => Some(2),
        "company-confidential" => Some(3),
        _ => None,
    }
}

/// A raw header value without its folding (RFC 5322 §2.2.3) or surrounding space.
pub(super) fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn fields(headers: &str, allowed: &[&str]) -> HeaderFields {
        let mime = format!("{headers}\r\n\r\nbody\r\n");
        let m = MessageParser::default()
            .parse(mime.as_bytes())
            .expect("parsed");
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        header_fields(&m, mime.as_bytes(), &allowed)
    }

    fn props_without_block(f: &HeaderFields) -> Vec<Value> {
        f.props
            .iter()
            .filter(|p| p["id"] != "String 0x007D")
            .cloned()
            .collect()
    }

    #[test]
    fn headers_map_to_properties() {
        // Outlook's Thread-Index of a first message: 22 bytes.
        let thread_index = "AdQ5aLcPcUCQ3vmRQeC4Z3VpGYq1Sw==";
        let f = fields(
            &format!(
                "Subject: s\r\nIn-Reply-To: <p@x>\r\nReferences: <a@x>\r\n <p@x>\r\nThread-Index: {thread_index}\r\n\
                 Sensitivity: Company-Confidential\r\nList-Unsubscribe: <mailto:u@x>,\r\n <https://x/u>\r\nImportance: High\r\n\
                 X-Mailer: m\r\nX-Spam-Score: 3"
            ),
            &["x-spam-score"],
        );
        assert_eq!(
            props_without_block(&f),
            vec![
                json!({"id": "String 0x1042", "value": "<p@x>"}),
                json!({"id": "String 0x1039", "value": "<a@x> <p@x>"}),
                json!({"id": "Binary 0x0071", "value": thread_index}),
                json!({"id": "Integer 0x0036", "value": "3"}),
                json!({"id": "String 0x1045", "value": "<mailto:u@x>, <https://x/u>"}),
            ]
        );
        assert_eq!(f.importance, Some("high"));
        assert_eq!(
            f.x_headers,
            vec![json!({"name": "X-Spam-Score", "value": "3"})]
        );
        let block = f
            .props
            .iter()
            .find(|p| p["id"] == "String 0x007D")
            .expect("block");
        let block = block["value"].as_str().unwrap_or_default();
        assert!(
            block.starts_with("Subject: s\r\nIn-Reply-To: <p@x>\r\n"),
            "{block}"
        );
        assert!(block.ends_with("X-Spam-Score: 3\r\n"), "{block}");
    }

    #[test]
    fn importance_sources_and_defaults() {
        for (headers, want) in [
            ("Subject: s", None),
            ("X-Priority: 1 (Highest)", Some("high")),
            ("X-Priority: 5", Some("low")),
            ("X-Priority: 3 (Normal)", None),
            ("X-MSMail-Priority: Low", Some("low")),
            ("Priority: urgent", Some("high")),
            ("Importance: low\r\nX-Priority: 1", Some("low")),
            ("Importance: bogus\r\nX-Priority: 2", Some("high")),
        ] {
            assert_eq!(fields(headers, &[]).importance, want, "{headers}");
        }
        // No X- header without being allowed; a bad Thread-Index is left out.
        let f = fields("X-Mailer: m\r\nThread-Index: not base64!", &[]);
        assert!(f.x_headers.is_empty());
        assert!(props_without_block(&f).is_empty());
    }

    #[test]
    fn the_header_block_is_capped_at_a_line() {
        let many: String = (0..20_000).map(|i| format!("X-H{i}: v\r\n")).collect();
        let mime = format!("Subject: s\r\n{many}\r\nbody");
        let block = header_block(mime.as_bytes());
        assert!(
            block.len() <= TRANSPORT_HEADERS_LIMIT && block.len() > TRANSPORT_HEADERS_LIMIT - 100
        );
        assert!(block.ends_with("\r\n") && block.starts_with("Subject: s\r\n"));
    }
}
