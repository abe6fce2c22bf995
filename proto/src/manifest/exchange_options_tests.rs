//! `x_headers`, `keyword_categories` and `mime_route` of Graph and EWS targets.

use super::http_target_tests::manifest;
use super::*;

const GRAPH: &str =
    "kind = \"graph\"\ntenant = \"t\"\noauth_client_id = \"id\"\noauth_client_secret = \"env:S\"\n";
const EWS: &str =
    "kind = \"ews\"\nurl = \"https://mail.contoso.com/EWS/Exchange.asmx\"\npassword = \"env:P\"\n";

#[test]
fn options_are_read() {
    let m = manifest(&format!(
        "{GRAPH}x_headers = [\"X-Spam-Score\", \"x-original-to\"]\n\
         keyword_categories = {{ \"$label1\" = \"Important\", \"Work\" = \" Büro \" }}\n\
         mime_route = \"import-mime\"\nconcurrency_scope = \"app\""
    ))
    .expect("valid");
    let f = m.target.http.expect("http").fidelity;
    assert_eq!(f.x_headers, ["X-Spam-Score", "x-original-to"]);
    assert_eq!(
        f.keyword_categories,
        [
            ("$label1".to_owned(), "Important".to_owned()),
            ("Work".to_owned(), "Büro".to_owned())
        ]
    );
    assert_eq!(f.mime_route, MimeRoute::ImportMime);
    assert_eq!(f.concurrency_scope, ConcurrencyScope::App);
    let m = manifest(&format!(
        "{EWS}keyword_categories = {{ \"$label2\" = \"Work\" }}"
    ))
    .expect("valid");
    assert_eq!(
        m.target
            .http
            .expect("http")
            .fidelity
            .keyword_categories
            .len(),
        1
    );
    let m = manifest(GRAPH).expect("valid");
    assert_eq!(
        m.target.http.expect("http").fidelity,
        ExchangeFidelity::default()
    );
}

#[test]
fn bad_options_are_reported_with_their_line() {
    let many: Vec<String> = (0..=MAX_X_HEADERS).map(|i| format!("\"X-H{i}\"")).collect();
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{GRAPH}x_headers = [\"Received\"]"),
            "m.toml:11: target.x_headers: \"Received\" is not an X- header name",
        ),
        (
            format!("{GRAPH}x_headers = [\"X-*\"]"),
            "m.toml:11: target.x_headers: \"X-*\" is not a header name",
        ),
        (
            format!("{GRAPH}x_headers = [\"X-A\", \"x-a\"]"),
            "m.toml:11: target.x_headers: \"x-a\" is listed twice",
        ),
        (
            format!("{GRAPH}x_headers = [{}]", many.join(", ")),
            "m.toml:11: target.x_headers: 21 names; list at most 20",
        ),
        (
            format!("{GRAPH}keyword_categories = [\"a\"]"),
            "m.toml:11: target.keyword_categories: expected a table",
        ),
        (
            format!("{GRAPH}keyword_categories = {{ \"\\\\Seen\" = \"Read\" }}"),
            "m.toml:11: target.keyword_categories: \"\\\\Seen\" is not an IMAP keyword",
        ),
        (
            format!("{GRAPH}keyword_categories = {{ \"a\" = \"x, y\" }}"),
            "m.toml:11: target.keyword_categories.\"a\": \"x, y\" is not an Outlook category name",
        ),
        (
            format!("{GRAPH}mime_route = \"ews\""),
            "m.toml:11: target.mime_route: unknown value \"ews\"; allowed: \"none\", \"import-mime\"",
        ),
        (
            format!("{GRAPH}upload = \"import-mime\"\nmime_route = \"import-mime\""),
            "m.toml:12: target.mime_route: upload = \"import-mime\" sends every message by importMime already",
        ),
        (
            format!("{GRAPH}concurrency_scope = \"tenant\""),
            "m.toml:11: target.concurrency_scope: unknown value \"tenant\"; allowed: \"mailbox\", \"app\"",
        ),
        (
            format!("{EWS}x_headers = [\"X-A\"]"),
            "m.toml:10: target.x_headers: only used with kind = \"graph\"",
        ),
        (
            format!("{EWS}mime_route = \"none\""),
            "m.toml:10: target.mime_route: only used with kind = \"graph\"",
        ),
    ];
    for (lines, want) in cases {
        let problems = manifest(&lines).expect_err(&lines);
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "{lines}\n{problems:#?}"
        );
    }
    let imap = "kind = \"imap\"\nhost = \"t\"\nx_headers = [\"X-A\"]";
    let problems = manifest(imap).expect_err("imap");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("target.x_headers: only used with kind = \"graph\"")),
        "{problems:?}"
    );
}
