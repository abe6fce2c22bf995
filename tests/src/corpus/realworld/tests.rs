//! Checks of the generator itself (not of mailhaul): determinism, uniqueness, the edges
//! it promises, and that the bytes carry what the expectation says without any MIME
//! parser — by looking for the encodings the shapes wrote.

use std::collections::BTreeSet;

use super::build::base64_lines;
use super::*;

fn by_name<'a>(shapes: &'a [Shape], name: &str) -> &'a Shape {
    shapes
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no shape {name}"))
}

#[test]
fn deterministic_unique_and_complete() {
    let a = shapes();
    let b = shapes();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.message == y.message && x.expect == y.expect,
            "{} differs between runs",
            x.name
        );
    }
    let names: BTreeSet<_> = a.iter().map(|s| s.name).collect();
    let ids: BTreeSet<_> = a
        .iter()
        .filter_map(|s| s.expect.message_id.clone())
        .collect();
    let subjects: BTreeSet<_> = a.iter().map(|s| s.expect.subject.clone()).collect();
    assert_eq!(names.len(), a.len(), "shape names are unique");
    assert_eq!(
        ids.len(),
        a.len() - 1,
        "one shape has no Message-ID, the rest unique ones"
    );
    assert_eq!(subjects.len(), a.len(), "subjects are unique");
    // The list, by class of shape.
    for required in [
        "alternative",
        "related-cid-inline",
        "related-cid-no-disposition",
        "apple-html-image-html",
        "attachment-1k",
        "attachment-under-3mb",
        "attachment-over-3mb",
        "attachment-under-4mb",
        "attachment-over-4mb",
        "attachment-10mb",
        "rfc822-with-name",
        "rfc822-without-name",
        "meeting-request-outlook",
        "meeting-request-google",
        "meeting-cancel-outlook",
        "smime-clear-signed",
        "smime-opaque-signed",
        "smime-encrypted",
        "iso-8859-1-qp",
        "windows-1252-8bit",
        "iso-2022-jp",
        "shift-jis",
        "gb2312",
        "big5",
        "euc-kr",
        "raw-8bit-utf8-headers",
        "raw-8bit-latin1-headers",
        "folded-and-x-headers",
        "bcc-in-sent",
        "several-reply-to",
        "600-recipients",
        "no-from",
        "no-date",
        "no-message-id",
        "odd-addresses",
        "rfc2231-names",
        "tnef",
        "dsn",
        "html-body-4.4mb",
        "bare-lf",
        "answered",
        "forwarded",
        "draft",
        "keywords",
    ] {
        assert!(names.contains(required), "missing shape {required}");
    }
}

#[test]
fn line_endings_and_lengths() {
    for s in shapes() {
        let body = &s.message.body;
        let crlf = body.windows(2).filter(|w| w == b"\r\n").count();
        let lf = body.iter().filter(|&&b| b == b'\n').count();
        if s.name == "bare-lf" {
            assert_eq!(crlf, 0, "bare-lf has no CRLF");
        } else {
            assert_eq!(crlf, lf, "{}: every LF is part of a CRLF", s.name);
        }
        let longest = body
            .split(|&b| b == b'\n')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        assert!(
            longest <= 998,
            "{}: a line of {longest} bytes (RFC 5322 allows 998)",
            s.name
        );
    }
}

#[test]
fn attachments_are_in_the_bytes_and_on_the_edges() {
    let all = shapes();
    for s in &all {
        for a in &s.expect.attachments {
            assert!(
                !a.name.is_empty() && a.sha256.len() == 64,
                "{}: {a:?}",
                s.name
            );
        }
    }
    let size = |name: &str| by_name(&all, name).expect.attachments[0].size;
    const MIB: usize = 1024 * 1024;
    assert_eq!(size("attachment-1k"), 1024);
    assert!(size("attachment-under-3mb") < 3 * MIB && size("attachment-over-3mb") > 3 * MIB);
    assert!(size("attachment-under-4mb") < 4 * MIB && size("attachment-over-4mb") > 4 * MIB);
    assert_eq!(size("attachment-10mb"), 10 * MIB);
    // The base64 of a small attachment is in the message as the shape encoded it.
    let s = by_name(&all, "attachment-1k");
    let bytes = super::build::blob(1000, b"%PDF-1.4\n", 1024);
    assert_eq!(s.expect.attachments[0].sha256, sha256(&bytes));
    let encoded = base64_lines(&bytes);
    assert!(
        s.message
            .body
            .windows(encoded.len())
            .any(|w| w == encoded.as_slice())
    );
    let html = by_name(&all, "html-body-4.4mb");
    assert!(html.body_over_4mb && html.message.body.len() > 4 * MIB + 400 * 1024);
}

#[test]
fn charsets_are_encoded_not_utf8() {
    let all = shapes();
    // Each legacy-charset shape's body holds its text in that charset, not in UTF-8.
    for (name, label, phrase) in [
        (
            "iso-2022-jp",
            "iso-2022-jp",
            "来週の会議の議事録を送ります。",
        ),
        ("big5", "big5", "明天下午三點開會。"),
        (
            "windows-1252-8bit",
            "windows-1252",
            "Preis: 25 € – „Angebot“ gilt bis Freitag…",
        ),
    ] {
        let body = &by_name(&all, name).message.body;
        let encoded = super::build::encode(label, phrase);
        assert!(
            body.windows(encoded.len()).any(|w| w == encoded.as_slice()),
            "{name}"
        );
        assert!(
            !body.windows(phrase.len()).any(|w| w == phrase.as_bytes()),
            "{name} has UTF-8"
        );
    }
    let raw = by_name(&all, "raw-8bit-latin1-headers");
    assert!(
        raw.message.body.windows(3).any(|w| w == b"R\xe9u"),
        "raw Latin-1 in the header"
    );
    assert!(std::str::from_utf8(&raw.message.body).is_err());
}

#[test]
fn state_follows_the_flags() {
    let all = shapes();
    let k = &by_name(&all, "keywords").expect;
    assert_eq!(k.categories, ["Client_Acme", "Project_X"]);
    assert!(k.flagged && !k.read && !k.forwarded);
    let f = &by_name(&all, "forwarded").expect;
    assert!(f.forwarded && f.categories.is_empty() && f.read);
    assert!(by_name(&all, "answered").expect.replied);
    let d = by_name(&all, "draft");
    assert!(d.expect.draft && d.folder == "Drafts");
    assert_eq!(by_name(&all, "bcc-in-sent").folder, "Sent");
}

#[test]
fn corpus_and_uids_follow_the_order() {
    let all = shapes();
    let c = corpus(&all);
    assert_eq!(c.message_count(), all.len());
    assert_eq!(c.folders[0].0, "INBOX");
    let uids = uids(&all);
    for (folder, messages) in &c.folders {
        let mine: Vec<(u32, &Shape)> = uids
            .iter()
            .copied()
            .zip(&all)
            .filter(|(_, s)| s.folder == folder)
            .collect();
        for (n, (uid, s)) in mine.iter().enumerate() {
            assert_eq!(*uid as usize, n + 1);
            assert_eq!(messages[n], s.message);
        }
    }
}

#[test]
fn what_each_path_may_lose() {
    let all = shapes();
    let note = by_name(&all, "alternative");
    assert!(may_lose(note, Path::GraphJson).is_empty());
    assert!(may_lose(note, Path::Ews).is_empty());
    assert_eq!(
        may_lose(note, Path::GraphImportMime),
        [Field::Received, Field::Draft]
    );
    let meeting = by_name(&all, "meeting-request-outlook");
    assert!(may_lose(meeting, Path::GraphJson).contains(&Field::ItemClass));
    assert!(may_lose(meeting, Path::Ews).is_empty());
    let html = by_name(&all, "html-body-4.4mb");
    assert!(may_lose(html, Path::GraphJson).contains(&Field::Message));
    assert!(!may_lose(html, Path::Ews).contains(&Field::Message));
}
