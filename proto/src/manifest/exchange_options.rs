//! What an Exchange target keeps beyond the basics (issue 11): `[target]` options of
//! `kind = "graph"` and `kind = "ews"`.
//!
//! - `x_headers = ["X-Spam-Score"]` (Graph): the `X-` headers the JSON path carries.
//!   None by default: each distinct name becomes a named property of the mailbox, and
//!   Exchange Online caps those (about 9,830 header names per mailbox; once exhausted
//!   the mailbox stops opening items and bounces mail). Exact names only, at most
//!   [`MAX_X_HEADERS`], so the list cannot reopen that hole.
//! - `keyword_categories = { "$label1" = "Important" }` (Graph and EWS): IMAP keywords
//!   that become the named Outlook category; system keywords and `$label1..5` become
//!   none unless listed here.
//! - `mime_route = "import-mime"` (Graph with `upload = "json"`): messages JSON cannot
//!   represent (S/MIME, meeting requests, TNEF, delivery reports) go through beta
//!   `importMime` (needs `Mail-Advanced.ReadWrite.All`); `"none"` (the default) sends
//!   them by JSON and the report says what each lost.
//! - `concurrency_scope = "app"` (Graph): `max_connections_per_mailbox` requests at once
//!   for the whole app across its mailboxes, as Microsoft's current throttling text
//!   words the limit of 4; `"mailbox"` (the default) allows that many per mailbox.

use super::ServerKind;
use super::fields::Fields;
use super::problem::Sink;
use toml::de::DeValue;

/// The most `X-` header names `x_headers` may list.
pub const MAX_X_HEADERS: usize = 20;

/// Where a Graph target sends what its JSON path cannot represent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MimeRoute {
    /// `mime_route = "none"` (the default): by JSON, the loss reported per message.
    #[default]
    None,
    /// `mime_route = "import-mime"`: by beta `importMime`.
    ImportMime,
}

/// Whose requests the concurrency limit counts on a Graph target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ConcurrencyScope {
    /// `concurrency_scope = "mailbox"` (the default): per mailbox.
    #[default]
    Mailbox,
    /// `concurrency_scope = "app"`: per app, across all its mailboxes.
    App,
}

/// The options of this module, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeFidelity {
    /// `X-` header names carried by Graph's JSON path.
    pub x_headers: Vec<String>,
    /// Keyword -> category name, in the order written.
    pub keyword_categories: Vec<(String, String)>,
    /// Graph: the MIME route.
    pub mime_route: MimeRoute,
    /// Graph: whose requests `max_connections_per_mailbox` counts.
    pub concurrency_scope: ConcurrencyScope,
}

/// Reads the options of a Graph or EWS `[target]`.
pub(super) fn read(f: &Fields<'_, '_>, sink: &mut Sink, kind: ServerKind) -> ExchangeFidelity {
    // Graph-only keys on an EWS target are reported with the other Graph keys
    // (`http_target`).
    let mut out = ExchangeFidelity::default();
    if kind == ServerKind::Graph {
        out.x_headers = x_headers(f, sink);
        out.mime_route = f
            .choice(
                sink,
                "mime_route",
                &[
                    ("none", MimeRoute::None),
                    ("import-mime", MimeRoute::ImportMime),
                ],
            )
            .unwrap_or_default();
        out.concurrency_scope = f
            .choice(
                sink,
                "concurrency_scope",
                &[
                    ("mailbox", ConcurrencyScope::Mailbox),
                    ("app", ConcurrencyScope::App),
                ],
            )
            .unwrap_or_default();
    }
    out.keyword_categories = keyword_categories(f, sink);
    out
}

fn x_headers(f: &Fields<'_, '_>, sink: &mut Sink) -> Vec<String> {
    let Some(names) = f.strings(sink, "x_headers") else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (name, at) in names {
        let ok_chars = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':' && b != b'*' && b != b'?');
        let why = if !name.to_ascii_lowercase().starts_with("x-") || name.len() < 3 {
            Some("is not an X- header name (Graph takes only headers starting with X-)".to_owned())
        } else if !ok_chars {
            Some("is not a header name (printable ASCII without ':'; no wildcards: each name costs a named property of the mailbox)".to_owned())
        } else if out.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            Some("is listed twice".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => sink.at(Some(at), format!("{}: {name:?} {why}", f.name("x_headers"))),
            None => out.push(name),
        }
    }
    if out.len() > MAX_X_HEADERS
        && let Some((_, at)) = f.get("x_headers")
    {
        sink.at(
            Some(at),
            format!(
                "{}: {} names; list at most {MAX_X_HEADERS} (each becomes a named property of \
                 every mailbox, and Exchange Online's quota of them, once exhausted, stops the \
                 mailbox)",
                f.name("x_headers"),
                out.len()
            ),
        );
    }
    out
}

fn keyword_categories(f: &Fields<'_, '_>, sink: &mut Sink) -> Vec<(String, String)> {
    let key = "keyword_categories";
    let Some((v, at)) = f.get(key) else {
        return Vec::new();
    };
    let DeValue::Table(table) = v else {
        sink.at(
            Some(at),
            format!(
                "{}: expected a table like {{ \"$label1\" = \"Important\" }}",
                f.name(key)
            ),
        );
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, value) in table.iter() {
        let keyword = k.get_ref().to_string();
        let at = Some(k.span().start);
        let DeValue::String(category) = value.get_ref() else {
            sink.at(
                at,
                format!(
                    "{}.{keyword:?}: expected a category name (a string)",
                    f.name(key)
                ),
            );
            continue;
        };
        let category = category.trim().to_owned();
        let bad_keyword = keyword.is_empty()
            || keyword.starts_with('\\')
            || keyword
                .bytes()
                .any(|b| !b.is_ascii_graphic() || b"(){%*\"]".contains(&b));
        if bad_keyword {
            sink.at(
                at,
                format!(
                    "{}: {keyword:?} is not an IMAP keyword (RFC 3501 atom, no backslash: system \
                     flags are not categories)",
                    f.name(key)
                ),
            );
        } else if category.is_empty() || category.len() > 255 || category.contains([',', ';']) {
            sink.at(
                at,
                format!(
                    "{}.{keyword:?}: {category:?} is not an Outlook category name (1 to 255 \
                     characters, no ',' or ';')",
                    f.name(key)
                ),
            );
        } else if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(&keyword)) {
            sink.at(at, format!("{}: {keyword:?} is listed twice", f.name(key)));
        } else {
            out.push((keyword, category));
        }
    }
    out
}
