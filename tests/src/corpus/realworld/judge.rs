//! Judging what arrived: a [`Seen`] message (read back through Graph or EWS, as a user's
//! client reads it) against a shape's [`Expect`], field by field, then against what
//! the path may lose and what `mailhaul report` said about that message.
//!
//! A field is kept, lost and reported (only where [`may_lose`] allows it and the report
//! names that message), or lost silently — a failure. Pure: the test reads, this judges.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Addr, Att, Expect, Field, Path, Shape, may_lose, sha256};

/// PidTagIconIndex of a replied / forwarded message ([MS-OXOMSG] 2.2.1.10).
pub const ICON_REPLIED: &str = "261";
/// PidTagIconIndex of a forwarded message.
pub const ICON_FORWARDED: &str = "262";
/// PidTagLastVerbExecuted: reply to sender ([MS-OXOMSG] 2.2.1.7).
pub const VERB_REPLY: &str = "102";
/// PidTagLastVerbExecuted: forward.
pub const VERB_FORWARD: &str = "104";

/// The extended properties every message is read with.
pub const STATE_PROPERTIES: [&str; 3] = ["Integer 0x1080", "Integer 0x1081", "String 0x007D"];

/// One attachment as read back, with its bytes.
#[derive(Debug, Clone)]
pub struct SeenAttachment {
    /// Name.
    pub name: String,
    /// `size` as the API reports it (Exchange counts some overhead: not compared exactly).
    pub size_property: u64,
    /// The bytes (`$value`; an item attachment's: its MIME).
    pub bytes: Vec<u8>,
    /// `isInline`.
    pub inline: bool,
    /// `contentId`.
    pub content_id: Option<String>,
    /// An item attachment (an attached message), not a file.
    pub is_item: bool,
}

/// One message as read back.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Internet Message-ID with angle brackets.
    pub message_id: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// From.
    pub from: Option<Addr>,
    /// Sender.
    pub sender: Option<Addr>,
    /// To.
    pub to: Vec<Addr>,
    /// Cc.
    pub cc: Vec<Addr>,
    /// Bcc.
    pub bcc: Vec<Addr>,
    /// Reply-To.
    pub reply_to: Vec<Addr>,
    /// The body as given.
    pub body: String,
    /// Whether the body is HTML.
    pub body_html: bool,
    /// Attachments with their bytes.
    pub attachments: Vec<SeenAttachment>,
    /// Message class.
    pub item_class: Option<String>,
    /// Read.
    pub read: bool,
    /// Flag status is `flagged`.
    pub flagged: bool,
    /// Draft.
    pub draft: bool,
    /// Categories.
    pub categories: Vec<String>,
    /// Received time.
    pub received: DateTime<Utc>,
    /// `low`, `normal`, `high`.
    pub importance: String,
    /// `internetMessageHeaders` names.
    pub header_names: Vec<String>,
    /// Extended properties read ([`STATE_PROPERTIES`] and the shape's own).
    pub properties: BTreeMap<String, Option<String>>,
}

/// What `mailhaul report` says about one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    /// It failed, with this reason.
    pub failed: Option<String>,
    /// Other notes on it (what its path lost, which path it took).
    pub notes: Vec<String>,
}

/// Finds what the report (`mailhaul report --format json`) says about the message with
/// `uid` in source `folder`: every object with that `uid` under the folder's line; one
/// under `failed` is a failure, any other a note.
pub fn reported(report: &Value, folder: &str, uid: u32) -> Reported {
    let mut out = Reported::default();
    let folders = report["mailboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["folders"].as_array().into_iter().flatten());
    for line in folders.filter(|f| f["folder"].as_str() == Some(folder)) {
        let Some(fields) = line.as_object() else {
            continue;
        };
        for (key, value) in fields {
            for entry in value.as_array().into_iter().flatten() {
                if entry["uid"].as_u64() != Some(u64::from(uid)) {
                    continue;
                }
                let text = strings(entry).join("; ");
                if key == "failed" {
                    out.failed = Some(text);
                } else {
                    out.notes.push(format!("{key}: {text}"));
                }
            }
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// How one field came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// As expected.
    Kept,
    /// Lost, and the path may lose it, and the report says so for this message.
    Reported(String),
    /// Lost with nothing said (or on a path that must keep it): a failure.
    Lost(String),
}

/// The verdict on one shape through one path: the outcome of every field that did not
/// come through (fields not listed were kept).
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The shape's name.
    pub shape: &'static str,
    /// The path.
    pub path: Path,
    /// Fields lost, with what was wanted and what came.
    pub lost: Vec<(Field, Outcome)>,
}

/// Judges `shape` through `path`: `copies` are the messages read back from its target
/// folder that carry its Message-ID; `report` is what the report says about it.
pub fn judge(shape: &Shape, path: Path, copies: &[&Seen], report: &Reported) -> Verdict {
    let allowed = may_lose(shape, path);
    let mut lost = Vec::new();
    let mut note = |field: Field, detail: String| {
        let said = if field == Field::Message {
            report.failed.clone()
        } else {
            (!report.notes.is_empty()).then(|| report.notes.join(" | "))
        };
        let outcome = match said {
            Some(said) if allowed.contains(&field) => {
                Outcome::Reported(format!("{detail}; report: {said}"))
            }
            _ => Outcome::Lost(detail),
        };
        lost.push((field, outcome));
    };
    match copies {
        [one] => {
            for (field, detail) in compare(&shape.expect, one, path) {
                note(field, detail);
            }
        }
        [] => note(Field::Message, "not in the target folder".into()),
        many => lost.push((
            Field::Message,
            Outcome::Lost(format!("{} copies", many.len())),
        )),
    }
    Verdict {
        shape: shape.name,
        path,
        lost,
    }
}

/// Every field of `seen` that differs from `e`, with a readable want/got.
pub fn compare(e: &Expect, seen: &Seen, path: Path) -> Vec<(Field, String)> {
    let mut out = Vec::new();
    let mut check = |field: Field, ok: bool, want: String, got: String| {
        if !ok {
            out.push((field, format!("want {want}, got {got}")));
        }
    };
    check(
        Field::Subject,
        seen.subject.as_deref() == Some(e.subject.as_str()),
        format!("{:?}", e.subject),
        format!("{:?}", seen.subject),
    );
    check(
        Field::From,
        same_addr(e.from.as_ref(), seen.from.as_ref()),
        show(e.from.as_ref()),
        show(seen.from.as_ref()),
    );
    // No sender reads as "sent by From" (Outlook shows "on behalf of" only when they differ).
    let sender_ok = same_addr(e.sender.as_ref(), seen.sender.as_ref())
        || (seen.sender.is_none() && e.sender == e.from);
    check(
        Field::Sender,
        sender_ok,
        show(e.sender.as_ref()),
        show(seen.sender.as_ref()),
    );
    for (field, want, got) in [
        (Field::To, &e.to, &seen.to),
        (Field::Cc, &e.cc, &seen.cc),
        (Field::Bcc, &e.bcc, &seen.bcc),
        (Field::ReplyTo, &e.reply_to, &seen.reply_to),
    ] {
        let ok = want.len() == got.len()
            && want
                .iter()
                .zip(got)
                .all(|(w, g)| same_addr(Some(w), Some(g)));
        check(field, ok, show_list(want), show_list(got));
    }
    let (continued, files): (Vec<&SeenAttachment>, Vec<&SeenAttachment>) = seen
        .attachments
        .iter()
        .partition(|a| path != Path::GraphJson && is_body_continuation(&a.name));
    let mut text = if seen.body_html {
        strip_html(&seen.body)
    } else {
        seen.body.clone()
    };
    for a in continued {
        let part = String::from_utf8_lossy(&a.bytes);
        text.push(' ');
        text.push_str(&if a.name.ends_with(".htm") {
            strip_html(&part)
        } else {
            part.into_owned()
        });
    }
    let text = normalize(&text);
    let missing: Vec<&String> = e
        .phrases
        .iter()
        .filter(|p| !text.contains(&normalize(p)))
        .collect();
    let body_sample: String = text.chars().take(160).collect();
    check(
        Field::Body,
        missing.is_empty(),
        format!("phrases {missing:?}"),
        format!("{} chars: {body_sample:?}", text.chars().count()),
    );
    if let Some(problem) = attachments(e, &files) {
        out.push((Field::Attachments, problem));
    }
    let mut check = |field: Field, ok: bool, want: String, got: String| {
        if !ok {
            out.push((field, format!("want {want}, got {got}")));
        }
    };
    if let Some(class) = e.item_class {
        check(
            Field::ItemClass,
            seen.item_class.as_deref() == Some(class),
            class.into(),
            format!("{:?}", seen.item_class),
        );
    }
    let prop = |id: &str| seen.properties.get(id).cloned().flatten();
    let (icon, verb) = (prop("Integer 0x1080"), prop("Integer 0x1081"));
    let state = format!("icon {icon:?}, last verb {verb:?}");
    let replied = icon.as_deref() == Some(ICON_REPLIED) && verb.as_deref() == Some(VERB_REPLY);
    let forwarded =
        icon.as_deref() == Some(ICON_FORWARDED) && verb.as_deref() == Some(VERB_FORWARD);
    let verb_is = |v: &str| verb.as_deref() == Some(v);
    check(
        Field::Replied,
        if e.replied {
            replied
        } else {
            !verb_is(VERB_REPLY)
        },
        format!("replied {}", e.replied),
        state.clone(),
    );
    check(
        Field::Forwarded,
        if e.forwarded {
            forwarded
        } else {
            !verb_is(VERB_FORWARD)
        },
        format!("forwarded {}", e.forwarded),
        state,
    );
    check(
        Field::Read,
        seen.read == e.read,
        e.read.to_string(),
        seen.read.to_string(),
    );
    check(
        Field::Flagged,
        seen.flagged == e.flagged,
        e.flagged.to_string(),
        seen.flagged.to_string(),
    );
    check(
        Field::Draft,
        seen.draft == e.draft,
        e.draft.to_string(),
        seen.draft.to_string(),
    );
    let mut categories = seen.categories.clone();
    categories.sort();
    check(
        Field::Categories,
        categories == e.categories,
        format!("{:?}", e.categories),
        format!("{categories:?}"),
    );
    check(
        Field::Received,
        seen.received == e.received,
        e.received.to_rfc3339(),
        seen.received.to_rfc3339(),
    );
    check(
        Field::Importance,
        seen.importance.eq_ignore_ascii_case(e.importance),
        e.importance.into(),
        seen.importance.clone(),
    );
    let mut header_problems = Vec::new();
    if path == Path::GraphJson {
        let x: Vec<&String> = seen
            .header_names
            .iter()
            .filter(|n| n.to_ascii_lowercase().starts_with("x-"))
            .collect();
        if !x.is_empty() {
            header_problems.push(format!(
                "{} X- header(s) created as properties: {:?}",
                x.len(),
                x.iter().take(3).collect::<Vec<_>>()
            ));
        }
    }
    let transport = prop("String 0x007D").unwrap_or_default();
    for line in &e.transport_headers {
        if !transport.contains(line.as_str()) {
            header_problems.push(format!("0x007D lacks {line:?}"));
        }
    }
    for (id, want) in &e.properties {
        let got = prop(id);
        if got.as_deref() != Some(want.as_str()) {
            header_problems.push(format!("{id}: want {want:?}, got {got:?}"));
        }
    }
    if !header_problems.is_empty() {
        out.push((Field::Headers, header_problems.join("; ")));
    }
    out
}

/// Expected and seen addresses agree: address case-insensitively, name exactly (an
/// expected address without a name may read back with none, an empty one or the
/// address as its name, as Exchange shows it).
fn same_addr(want: Option<&Addr>, got: Option<&Addr>) -> bool {
    match (want, got) {
        (None, None) => true,
        (None, Some(g)) => g.address.is_empty() && g.name.as_deref().is_none_or(str::is_empty),
        (Some(_), None) => false,
        (Some(w), Some(g)) => {
            w.address.eq_ignore_ascii_case(&g.address)
                && match &w.name {
                    Some(n) => g.name.as_deref() == Some(n.as_str()),
                    None => g
                        .name
                        .as_deref()
                        .is_none_or(|n| n.is_empty() || n.eq_ignore_ascii_case(&w.address)),
                }
        }
    }
}

fn show(a: Option<&Addr>) -> String {
    a.map_or_else(
        || "(none)".to_owned(),
        |a| format!("{:?} <{}>", a.name.as_deref().unwrap_or(""), a.address),
    )
}

fn show_list(list: &[Addr]) -> String {
    let first: Vec<String> = list.iter().take(3).map(|a| show(Some(a))).collect();
    format!(
        "{} [{}{}]",
        list.len(),
        first.join(", "),
        if list.len() > 3 { ", …" } else { "" }
    )
}

/// Every expected attachment is there with its name, bytes, inline flag and content id;
/// with `attachments_exact`, nothing else is.
fn attachments(e: &Expect, seen: &[&SeenAttachment]) -> Option<String> {
    let mut problems = Vec::new();
    let mut used = vec![false; seen.len()];
    for want in &e.attachments {
        let found = seen.iter().enumerate().find(|(i, s)| {
            !used[*i] && (s.name == want.name || want.alt_name.as_deref() == Some(s.name.as_str()))
        });
        let Some((i, got)) = found else {
            problems.push(format!("{:?} missing", want.name));
            continue;
        };
        used[i] = true;
        if let Some(problem) = attachment(want, got) {
            problems.push(format!("{:?}: {problem}", want.name));
        }
    }
    if e.attachments_exact {
        for (s, _) in seen.iter().zip(&used).filter(|(_, u)| !**u) {
            problems.push(format!("unexpected {:?} ({} bytes)", s.name, s.bytes.len()));
        }
    }
    (!problems.is_empty()).then(|| {
        let names: Vec<String> = seen.iter().map(|s| format!("{:?}", s.name)).collect();
        format!("{} (seen: {})", problems.join("; "), names.join(", "))
    })
}

fn attachment(want: &Att, got: &SeenAttachment) -> Option<String> {
    let mut p = Vec::new();
    match (&want.embedded, got.is_item) {
        // An item attachment: Exchange keeps the message, not its bytes.
        (Some(inner), true) => {
            if !String::from_utf8_lossy(&got.bytes).contains(&inner.phrase) {
                p.push(format!("the attached message lacks {:?}", inner.phrase));
            }
        }
        _ => {
            if got.bytes.len() != want.size || sha256(&got.bytes) != want.sha256 {
                p.push(format!(
                    "{} bytes sha256 {}…, want {} bytes {}…",
                    got.bytes.len(),
                    &sha256(&got.bytes)[..12],
                    want.size,
                    &want.sha256[..12]
                ));
            }
            if got.size_property < want.size as u64 {
                p.push(format!(
                    "size property {} < {}",
                    got.size_property, want.size
                ));
            }
        }
    }
    if want.inline.is_some_and(|i| i != got.inline) {
        p.push(format!("isInline {}", got.inline));
    }
    if want.content_id.is_some() && want.content_id != got.content_id {
        p.push(format!("contentId {:?}", got.content_id));
    }
    (!p.is_empty()).then(|| p.join(", "))
}

/// Exchange's own names for a body part it did not merge into the body
/// (`ATT00001.htm`, `ATT00002.txt`): a MIME import may keep a later text part of a
/// `multipart/mixed` that way (KB Q153464, and the Exchange team's "Multipart/Mixed
/// Messages and You", 2011) — one click away, not lost. The JSON path builds the body
/// itself and must put every part in it.
fn is_body_continuation(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".htm")
        .or_else(|| name.strip_suffix(".txt"))
    else {
        return false;
    };
    stem.strip_prefix("ATT")
        .is_some_and(|n| n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Tags inside a line of text: dropped without a space (`<b>final</b>.` is `final.`).
const INLINE_TAGS: &[&str] = &[
    "a", "b", "i", "u", "em", "strong", "span", "font", "small", "big", "sub", "sup", "code", "s",
    "strike", "abbr",
];

/// Text of an HTML body: tags dropped (all but inline ones become spaces), entities
/// decoded.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..start]));
        match rest[start..].find('>') {
            Some(end) => {
                let tag = rest[start + 1..start + end].trim_start_matches('/');
                let name: String = tag
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                if !INLINE_TAGS.contains(&name.to_ascii_lowercase().as_str()) {
                    out.push(' ');
                }
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(&decode_entities(rest));
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &tail[1..e];
            match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }
            .map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &tail[e + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whitespace runs (line breaks, non-breaking spaces) as one space.
fn normalize(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c == '\u{a0}')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text_and_entities() {
        assert_eq!(
            normalize(&strip_html(
                "<p>Fine print: 3 &lt; 5 &amp; 7 &gt; 2, &lt;b&gt;not bold&lt;/b&gt;.</p><p>caf&#233; &#x2013;&nbsp;x</p>"
            )),
            "Fine print: 3 < 5 & 7 > 2, <b>not bold</b>. café – x"
        );
        assert_eq!(decode_entities("AT&T &unknown; &"), "AT&T &unknown; &");
        assert_eq!(
            normalize(&strip_html("<p>are <b>final</b>.</p><p>Revenue</p>")),
            "are final. Revenue"
        );
    }

    #[test]
    fn addresses_compare_as_users_see_them() {
        let a = |n: Option<&str>, addr: &str| Addr {
            name: n.map(str::to_owned),
            address: addr.to_owned(),
        };
        assert!(same_addr(
            Some(&a(None, "x@y.org")),
            Some(&a(Some("x@y.org"), "X@Y.org"))
        ));
        assert!(same_addr(
            Some(&a(None, "x@y.org")),
            Some(&a(None, "x@y.org"))
        ));
        assert!(!same_addr(
            Some(&a(Some("Jürgen"), "x@y.org")),
            Some(&a(Some("JÃ¼rgen"), "x@y.org"))
        ));
        assert!(!same_addr(
            None,
            Some(&a(Some("Alice"), "alice@example.test"))
        ));
        assert!(same_addr(None, None));
    }

    /// What a perfect target would show for `shape` (attachments from `bytes`).
    fn perfect(shape: &Shape, bytes: &[&[u8]]) -> Seen {
        let e = &shape.expect;
        let (icon, verb) = match (e.replied, e.forwarded) {
            (true, _) => (Some(ICON_REPLIED), Some(VERB_REPLY)),
            (_, true) => (Some(ICON_FORWARDED), Some(VERB_FORWARD)),
            _ => (None, None),
        };
        let mut properties: BTreeMap<String, Option<String>> = e
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        properties.insert("Integer 0x1080".into(), icon.map(str::to_owned));
        properties.insert("Integer 0x1081".into(), verb.map(str::to_owned));
        properties.insert(
            "String 0x007D".into(),
            Some(e.transport_headers.join("\r\n")),
        );
        Seen {
            message_id: e.message_id.clone(),
            subject: Some(e.subject.clone()),
            from: e.from.clone(),
            sender: e.sender.clone(),
            to: e.to.clone(),
            cc: e.cc.clone(),
            bcc: e.bcc.clone(),
            reply_to: e.reply_to.clone(),
            body: format!(
                "<p>{}</p>",
                e.phrases
                    .iter()
                    .map(|p| p.replace('&', "&amp;").replace('<', "&lt;"))
                    .collect::<Vec<_>>()
                    .join("</p>\r\n<p>")
            ),
            body_html: true,
            attachments: e
                .attachments
                .iter()
                .zip(bytes)
                .map(|(a, b)| SeenAttachment {
                    name: a.name.clone(),
                    size_property: b.len() as u64 + 120,
                    bytes: b.to_vec(),
                    inline: a.inline.unwrap_or(false),
                    content_id: a.content_id.clone(),
                    is_item: false,
                })
                .collect(),
            item_class: e.item_class.map(str::to_owned),
            read: e.read,
            flagged: e.flagged,
            draft: e.draft,
            categories: e.categories.iter().rev().cloned().collect(),
            received: e.received,
            importance: e.importance.to_uppercase(),
            header_names: vec!["Received".into()],
            properties,
        }
    }

    fn shape(name: &str) -> Shape {
        crate::corpus::realworld::shapes()
            .into_iter()
            .find(|s| s.name == name)
            .expect("a shape of that name")
    }

    /// The judge finds nothing on a perfect copy, and every planted difference.
    #[test]
    fn judge_can_pass_and_can_fail() {
        let none = Reported::default();
        for name in [
            "alternative",
            "outlook-headers",
            "keywords",
            "answered",
            "forwarded",
            "bcc-in-sent",
            "html-then-text",
        ] {
            let s = shape(name);
            let v = judge(&s, Path::GraphJson, &[&perfect(&s, &[])], &none);
            assert!(v.lost.is_empty(), "{name}: {:?}", v.lost);
        }
        let s = shape("attachment-1k");
        let pdf = crate::corpus::realworld::build::blob(1000, b"%PDF-1.4\n", 1024);
        let good = perfect(&s, &[&pdf]);
        assert!(judge(&s, Path::Ews, &[&good], &none).lost.is_empty());
        let fields = |seen: &Seen, path: Path| -> Vec<Field> {
            judge(&s, path, &[seen], &none)
                .lost
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        let mut bad = good.clone();
        bad.attachments[0].bytes[100] ^= 1;
        assert_eq!(fields(&bad, Path::Ews), [Field::Attachments]);
        let mut bad = good.clone();
        bad.body = "<p>Please find</p>".into();
        bad.received += chrono::Duration::seconds(1);
        bad.to[0].name = Some("Alice".into());
        bad.header_names.push("X-Campaign-0001".into());
        assert_eq!(
            fields(&bad, Path::GraphJson),
            [Field::To, Field::Body, Field::Received, Field::Headers]
        );
        assert_eq!(
            fields(&bad, Path::Ews),
            [Field::To, Field::Body, Field::Received],
            "X- names only matter on JSON"
        );
        let mut bad = good.clone();
        bad.properties
            .insert("Integer 0x1081".into(), Some(VERB_REPLY.into()));
        bad.categories.push("$MDNSent".into());
        bad.read = !bad.read;
        assert_eq!(
            fields(&bad, Path::Ews),
            [Field::Replied, Field::Read, Field::Categories]
        );
        // Missing or twice; lost where allowed and reported, or silently.
        assert_eq!(judge(&s, Path::Ews, &[&good, &good], &none).lost.len(), 1);
        let missing = judge(
            &s,
            Path::Ews,
            &[],
            &Reported {
                failed: Some("too big".into()),
                notes: vec![],
            },
        );
        assert!(
            matches!(missing.lost[0], (Field::Message, Outcome::Lost(_))),
            "EWS may not lose it"
        );
        let mut late = good.clone();
        late.received += chrono::Duration::hours(1);
        let noted = Reported {
            failed: None,
            notes: vec!["path: import-mime".into()],
        };
        assert!(matches!(
            judge(&s, Path::GraphImportMime, &[&late], &noted).lost[0].1,
            Outcome::Reported(_)
        ));
        assert!(matches!(
            judge(&s, Path::GraphImportMime, &[&late], &none).lost[0].1,
            Outcome::Lost(_)
        ));
        assert!(
            matches!(
                judge(&s, Path::GraphJson, &[&late], &noted).lost[0].1,
                Outcome::Lost(_)
            ),
            "JSON keeps dates"
        );
    }

    #[test]
    fn report_entries_by_folder_and_uid() {
        let report = serde_json::json!({"mailboxes": [{"mailbox": "a", "folders": [
            {"folder": "INBOX", "failed": [{"uid": 3, "reason": "too big"}], "notes": [{"uid": 4, "path": "import-mime", "lost": ["received date"]}]},
            {"folder": "Sent", "failed": [{"uid": 3, "reason": "other"}]}
        ]}]});
        assert_eq!(
            reported(&report, "INBOX", 3).failed.as_deref(),
            Some("too big")
        );
        let r = reported(&report, "INBOX", 4);
        assert!(
            r.failed.is_none() && r.notes[0].contains("received date"),
            "{r:?}"
        );
        assert_eq!(reported(&report, "INBOX", 5), Reported::default());
    }
}
