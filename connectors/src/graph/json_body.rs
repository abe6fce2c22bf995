//! The Graph `body` from a message's body segments, in order, so no text vanishes.
//!
//! Only text parts: a `text` body, the parts joined by line breaks. One HTML part and
//! nothing else: that HTML as it is. Anything else (several HTML parts, HTML and text,
//! images shown in place): one HTML document whose `<head>` is the first part's, whose
//! body is each HTML part's body content, each text part escaped with its line breaks
//! kept, and each in-place image as an `<img src="cid:…">`, in the parts' order.

use super::json_parts::Segment;

/// `(contentType, content)` of the Graph body.
pub(super) fn body(segments: &[Segment]) -> (&'static str, String) {
    match segments {
        [] => ("text", String::new()),
        [Segment::Html(h)] => ("html", h.clone()),
        s if s.iter().all(|x| matches!(x, Segment::Text(_))) => {
            let mut out = String::new();
            for seg in s {
                if let Segment::Text(t) = seg {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(t);
                }
            }
            ("text", out)
        }
        s => ("html", joined_html(s)),
    }
}

fn joined_html(segments: &[Segment]) -> String {
    let head = segments
        .iter()
        .find_map(|s| match s {
            Segment::Html(h) => head_of(h),
            _ => None,
        })
        .unwrap_or_default();
    let mut out = format!("<html><head>{head}</head><body>");
    for seg in segments {
        match seg {
            Segment::Html(h) => out.push_str(body_of(h)),
            Segment::Text(t) => {
                out.push_str("<div>");
                out.push_str(&escape(t).replace("\r\n", "\n").replace('\n', "<br>\n"));
                out.push_str("</div>");
            }
            Segment::Image(cid) => {
                out.push_str(&format!("<div><img src=\"cid:{}\"></div>", escape(cid)));
            }
        }
        out.push('\n');
    }
    out.push_str("</body></html>");
    out
}

/// ASCII-case-insensitive find of `needle` (ASCII) in `hay` from `from`.
fn find_ci(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    (from..h.len().saturating_sub(n.len()) + 1).find(|&i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

/// The content of `<head>…</head>`, if there is one.
fn head_of(html: &str) -> Option<&str> {
    let open = find_ci(html, "<head", 0)?;
    let start = html[open..].find('>')? + open + 1;
    let end = find_ci(html, "</head", start)?;
    html.get(start..end)
}

/// The content of `<body …>…</body>`, or the document without its `<head>` and
/// `<html>` wrapper when it has no body tag.
fn body_of(html: &str) -> &str {
    if let Some(open) = find_ci(html, "<body", 0)
        && let Some(gt) = html[open..].find('>')
    {
        let start = open + gt + 1;
        let end = find_ci(html, "</body", start).unwrap_or(html.len());
        return &html[start..end];
    }
    let mut s = html;
    if let Some(end) = find_ci(s, "</head>", 0) {
        s = &s[end + "</head>".len()..];
    }
    let s = s.trim();
    let s = if find_ci(s, "<html", 0) == Some(0) {
        s.find('>').map_or(s, |gt| &s[gt + 1..])
    } else {
        s
    };
    match find_ci(s, "</html", 0) {
        Some(end) => &s[..end],
        None => s,
    }
}

/// Text made safe for HTML.
pub(super) fn escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + t.len() / 16);
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::*;

    fn h(s: &str) -> Segment {
        Html(s.to_owned())
    }
    fn t(s: &str) -> Segment {
        Text(s.to_owned())
    }

    #[test]
    fn segments_are_joined_in_order() {
        let table: Vec<(Vec<Segment>, &str, &str)> = vec![
            (vec![], "text", ""),
            (vec![t("hello\r\n")], "text", "hello\r\n"),
            (vec![t("one"), t("two\n")], "text", "one\ntwo\n"),
            (vec![h("<p>only</p>")], "html", "<p>only</p>"),
            (
                vec![
                    h(
                        "<html><head><style>p{}</style></head><BODY class=x><p>top</p></body></html>",
                    ),
                    Image("img1@x".into()),
                    h("<html><body><p>bottom</p></body></html>"),
                ],
                "html",
                "<html><head><style>p{}</style></head><body><p>top</p>\n<div><img src=\"cid:img1@x\"></div>\n<p>bottom</p>\n</body></html>",
            ),
            (
                vec![h("<p>a</p>"), t("-- \nList <footer> & co")],
                "html",
                "<html><head></head><body><p>a</p>\n<div>-- <br>\nList &lt;footer&gt; &amp; co</div>\n</body></html>",
            ),
            (
                vec![t("see:"), Image("c@x".into())],
                "html",
                "<html><head></head><body><div>see:</div>\n<div><img src=\"cid:c@x\"></div>\n</body></html>",
            ),
            (
                vec![
                    h("<html><head><title>t</title></head><p>no body tag</p></html>"),
                    h("<p>2</p>"),
                ],
                "html",
                "<html><head><title>t</title></head><body><p>no body tag</p>\n<p>2</p>\n</body></html>",
            ),
        ];
        for (segments, kind, content) in table {
            assert_eq!(body(&segments), (kind, content.to_owned()), "{segments:?}");
        }
    }
}
