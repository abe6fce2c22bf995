//! The converter, shape by shape, against expected values written by hand.

use super::*;

const MIME: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.com, \
    Carol <carol@example.com>\r\nSubject: hi\r\nDate: Mon, 04 Mar 2019 10:00:00 +0000\r\n\
    Message-ID: <m1@example.com>\r\nX-Mailer: test\r\n x\r\nReceived: from a\r\n\r\nbody\r\n";

fn convert(mime: &str) -> Converted {
    convert_bytes(mime.as_bytes())
}

fn convert_bytes(mime: &[u8]) -> Converted {
    let received = DateTime::from_timestamp(1_551_700_000, 0).expect("valid");
    from_mime(mime, received, 1, &JsonOptions::default()).expect("parsed")
}

fn content(c: &Converted) -> (String, String) {
    (
        c.body["body"]["contentType"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        c.body["body"]["content"].as_str().unwrap_or("").to_owned(),
    )
}

/// `(name, contentType, isInline, contentId, bytes)` of an attachment.
type Seen = (String, String, bool, Option<String>, Vec<u8>);

/// Each attachment as [`Seen`].
fn attachments(c: &Converted) -> Vec<Seen> {
    c.attachments
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.content_type.clone(),
                a.inline,
                a.content_id.clone(),
                a.bytes.clone(),
            )
        })
        .collect()
}

fn prop<'a>(c: &'a Converted, id: &str) -> Option<&'a Value> {
    c.body["singleValueExtendedProperties"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)
        .map(|p| &p["value"])
}

fn multipart(ct: &str, parts: &[&str]) -> String {
    let mut s = format!(
        "From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: {ct}; boundary=\"b1\"\r\n\r\n"
    );
    for p in parts {
        s.push_str(&format!("--b1\r\n{p}\r\n"));
    }
    s.push_str("--b1--\r\n");
    s
}

#[test]
fn a_message_becomes_a_non_draft_create() {
    let received = DateTime::from_timestamp(1_551_700_000, 0).expect("valid");
    let converted =
        from_mime(MIME.as_bytes(), received, 0, &JsonOptions::default()).expect("parsed");
    assert!(converted.attachments.is_empty() && converted.dropped.is_empty());
    let body = Value::Object(converted.body);
    assert_eq!(body["subject"], "hi");
    assert_eq!(
        body["body"],
        json!({"contentType": "text", "content": "body\r\n"})
    );
    assert_eq!(
        body["from"],
        json!({"emailAddress": {"address": "alice@example.com", "name": "Alice"}})
    );
    assert_eq!(
        body["toRecipients"],
        json!([{"emailAddress": {"address": "bob@example.com"}},
               {"emailAddress": {"address": "carol@example.com", "name": "Carol"}}])
    );
    assert_eq!(body["internetMessageId"], "<m1@example.com>");
    // No X- header by default (each name costs the mailbox a named property).
    assert!(body.get("internetMessageHeaders").is_none());
    let props = body["singleValueExtendedProperties"]
        .as_array()
        .expect("props");
    assert_eq!(
        props[..3],
        [
            json!({"id": "Integer 0x0E07", "value": "0"}),
            json!({"id": "SystemTime 0x0E06", "value": "2019-03-04T11:46:40Z"}),
            json!({"id": "SystemTime 0x0039", "value": "2019-03-04T10:00:00Z"}),
        ]
    );
    assert_eq!(
        props[3],
        json!({"id": "String 0x007D", "value": "From: Alice <alice@example.com>\r\nTo: bob@example.com, \
            Carol <carol@example.com>\r\nSubject: hi\r\nDate: Mon, 04 Mar 2019 10:00:00 +0000\r\n\
            Message-ID: <m1@example.com>\r\nX-Mailer: test\r\n x\r\nReceived: from a\r\n"})
    );
    assert!(body.get("attachments").is_none());
    // Drafts keep MSGFLAG_UNSENT; read and unsent together is 9.
    let draft = from_mime(MIME.as_bytes(), received, 9, &JsonOptions::default()).expect("parsed");
    assert_eq!(draft.body["singleValueExtendedProperties"][0]["value"], "9");
    let allowed = JsonOptions {
        x_headers: vec!["x-mailer".into()],
    };
    let with = from_mime(MIME.as_bytes(), received, 1, &allowed).expect("parsed");
    assert_eq!(
        with.body["internetMessageHeaders"],
        json!([{"name": "X-Mailer", "value": "test x"}])
    );
}

#[test]
fn every_body_part_is_kept_in_order() {
    let apple = multipart(
        "multipart/mixed",
        &[
            "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Before the photo</p></body></html>",
            "Content-Type: image/jpeg; name=IMG_1.jpg\r\nContent-Disposition: inline; filename=IMG_1.jpg\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n/9j/2w==",
            "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>After the photo</p></body></html>",
        ],
    );
    let footer = multipart(
        "multipart/mixed",
        &[
            "Content-Type: text/plain\r\n\r\nHello list",
            "Content-Type: text/plain\r\n\r\n-- \r\nTo unsubscribe <write> & go",
        ],
    );
    let mixed = multipart(
        "multipart/mixed",
        &[
            "Content-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nplain alt\r\n\
             --b2\r\nContent-Type: text/html\r\n\r\n<p>html alt</p>\r\n--b2--",
            "Content-Type: text/plain\r\n\r\nfooter text",
        ],
    );
    let related = multipart(
        "multipart/related",
        &[
            "Content-Type: text/html\r\n\r\n<p>logo: <img src=\"cid:logo@x\"></p>",
            // No Content-Disposition at all: the cid reference makes it inline.
            "Content-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw==",
            "Content-Type: image/png; name=unused.png\r\nContent-ID: <other@x>\r\n\r\nPNG",
        ],
    );
    type Expected<'a> = Vec<(&'a str, bool, Option<&'a str>)>;
    let table: Vec<(&str, &str, &str, Expected<'_>)> = vec![
        (
            &apple,
            "html",
            "<html><head></head><body><p>Before the photo</p>\n<div><img src=\"cid:part1.mailhaul@migrated.invalid\"></div>\n<p>After the photo</p>\n</body></html>",
            vec![("IMG_1.jpg", true, Some("part1.mailhaul@migrated.invalid"))],
        ),
        (
            &footer,
            "text",
            "Hello list\n-- \r\nTo unsubscribe <write> & go",
            vec![],
        ),
        (
            &mixed,
            "html",
            "<html><head></head><body><p>html alt</p>\n<div>footer text</div>\n</body></html>",
            vec![],
        ),
        (
            &related,
            "html",
            "<p>logo: <img src=\"cid:logo@x\"></p>",
            vec![
                ("attachment-1.png", true, Some("logo@x")),
                ("unused.png", false, Some("other@x")),
            ],
        ),
    ];
    for (mime, kind, body, want) in table {
        let c = convert(mime);
        assert_eq!(content(&c), (kind.to_owned(), body.to_owned()), "{mime}");
        let got: Vec<(String, bool, Option<String>)> = attachments(&c)
            .into_iter()
            .map(|(n, _, i, cid, _)| (n, i, cid))
            .collect();
        let want: Vec<(String, bool, Option<String>)> = want
            .into_iter()
            .map(|(n, i, c)| (n.to_owned(), i, c.map(str::to_owned)))
            .collect();
        assert_eq!(got, want, "{mime}");
    }
}

#[test]
fn charsets_are_decoded() {
    let table: Vec<(Vec<u8>, &str, &str, &str)> = vec![
        (
            // ISO-2022-JP: "こんにちは" in the body and an RFC 2047 subject.
            b"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <y@example.jp>\r\nSubject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n\
              Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n\x1b$B$3$s$K$A$O\x1b(B\r\n".to_vec(),
            "こんにちは",
            "山田",
            "こんにちは\r\n",
        ),
        (
            // Shift_JIS "日本" body, subject in Shift_JIS B-encoding.
            b"From: a@example.jp\r\nSubject: =?Shift_JIS?B?k/qWew==?=\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\n\x93\xfa\x96\x7b".to_vec(),
            "日本",
            "",
            "日本",
        ),
        (
            // GB2312 "中文", Big5 "中文" and EUC-KR "한국".
            b"From: a@example.cn\r\nSubject: =?GB2312?B?1tDOxA==?=\r\nContent-Type: text/plain; charset=gb2312\r\n\r\n\xd6\xd0\xce\xc4".to_vec(),
            "中文",
            "",
            "中文",
        ),
        (
            b"From: a@example.tw\r\nSubject: =?Big5?B?pKSk5Q==?=\r\nContent-Type: text/plain; charset=big5\r\n\r\n\xa4\xa4\xa4\xe5".to_vec(),
            "中文",
            "",
            "中文",
        ),
        (
            b"From: a@example.kr\r\nSubject: =?EUC-KR?B?x9GxuQ==?=\r\nContent-Type: text/plain; charset=euc-kr\r\n\r\n\xc7\xd1\xb1\xb9".to_vec(),
            "한국",
            "",
            "한국",
        ),
        (
            // Windows-1252 8-bit body with smart quotes and euro, raw 8-bit Latin-1 headers.
            b"From: Jos\xe9 <jose@example.es>\r\nSubject: Caf\xe9\r\nContent-Type: text/plain; charset=windows-1252\r\n\
              Content-Transfer-Encoding: 8bit\r\n\r\n\x93quoted\x94 \x80 5".to_vec(),
            "Café",
            "José",
            "“quoted” € 5",
        ),
        (
            // ISO-8859-1 quoted-printable.
            b"From: a@example.de\r\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
              Content-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6ne Gr=FC=DFe".to_vec(),
            "Grüße",
            "",
            "Schöne Grüße",
        ),
    ];
    for (mime, subject, from_name, body) in table {
        let c = convert_bytes(&mime);
        assert_eq!(
            c.body["subject"],
            subject,
            "{:?}",
            String::from_utf8_lossy(&mime)
        );
        let name = c.body["from"]["emailAddress"]
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert_eq!(name, from_name);
        assert_eq!(content(&c).1, body);
    }
}

#[test]
fn attachments_get_names_users_can_open() {
    let google = multipart(
        "multipart/mixed",
        &[
            "Content-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nInvitation\r\n\
             --b2\r\nContent-Type: text/calendar; charset=UTF-8; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n--b2--",
            "Content-Type: application/ics; name=\"invite.ics\"\r\nContent-Disposition: attachment; filename=\"invite.ics\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nQkVHSU46VkNBTEVOREFSDQpNRVRIT0Q6UkVRVUVTVA0KRU5EOlZDQUxFTkRBUg==",
        ],
    );
    let c = convert(&google);
    assert_eq!(
        attachments(&c),
        vec![(
            "invite.ics".into(),
            "text/calendar".into(),
            false,
            None,
            b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR".to_vec()
        )]
    );
    assert!(c.shape.lost_by_json.contains(Lost::MEETING));
    let mixed = multipart(
        "multipart/mixed",
        &[
            "Content-Type: text/plain\r\n\r\nsee attached",
            "Content-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubject: Q3: results?\r\n\r\ninner body",
            "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\nSubject: other\r\n\r\nb",
            "Content-Type: application/octet-stream\r\n\r\n\x01\x02",
            "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n%PDF",
            "Content-Type: text/plain; charset=iso-8859-1; name=\"notes.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nd=E9j=E0",
            "Content-Type: application/pdf; name=\"C:\\\\Users\\\\x\\\\report.pdf\"\r\n\r\n%PDF",
        ],
    );
    let got: Vec<(String, String, Vec<u8>)> = attachments(&convert(&mixed))
        .into_iter()
        .map(|(n, ct, _, _, b)| (n, ct, b))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "Q3_ results_.eml".into(),
                "message/rfc822".into(),
                b"From: x@y\r\nSubject: Q3: results?\r\n\r\ninner body".to_vec()
            ),
            (
                "fwd.eml".into(),
                "message/rfc822".into(),
                b"Subject: other\r\n\r\nb".to_vec()
            ),
            (
                "attachment-3.bin".into(),
                "application/octet-stream".into(),
                vec![1, 2]
            ),
            (
                "résumé.pdf".into(),
                "application/pdf".into(),
                b"%PDF".to_vec()
            ),
            // A Latin-1 text file keeps its bytes.
            (
                "notes.txt".into(),
                "text/plain".into(),
                b"d\xe9j\xe0".to_vec()
            ),
            (
                "report.pdf".into(),
                "application/pdf".into(),
                b"%PDF".to_vec()
            ),
        ]
    );
}

#[test]
fn headers_and_addresses() {
    let mime = "From: \"john doe\"@example.com\r\nSender: Secretary <sec@example.com>\r\n\
        To: undisclosed-recipients:;\r\nCc: Team: a@example.com;, not an address\r\n\
        Reply-To: r1@example.com, R2 <r2@example.com>\r\nIn-Reply-To: <parent@x>\r\n\
        References: <root@x> <parent@x>\r\nX-Priority: 1\r\nSensitivity: Private\r\n\
        List-Unsubscribe: <mailto:u@x>\r\nSubject: s\r\n\r\nb";
    let c = convert(mime);
    assert_eq!(
        c.body["from"],
        json!({"emailAddress": {"address": "\"john doe\"@example.com"}})
    );
    assert_eq!(
        c.body["sender"],
        json!({"emailAddress": {"address": "sec@example.com", "name": "Secretary"}})
    );
    assert!(c.body.get("toRecipients").is_none());
    assert_eq!(
        c.body["ccRecipients"],
        json!([{"emailAddress": {"address": "a@example.com"}}])
    );
    assert_eq!(c.body["replyTo"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        c.dropped,
        vec!["\"not an address\" (no address)".to_owned()]
    );
    assert_eq!(c.lost, Lost::ADDRESSES);
    assert_eq!(c.body["importance"], "high");
    assert_eq!(prop(&c, "String 0x1042"), Some(&json!("<parent@x>")));
    assert_eq!(
        prop(&c, "String 0x1039"),
        Some(&json!("<root@x> <parent@x>"))
    );
    assert_eq!(prop(&c, "Integer 0x0036"), Some(&json!("2")));
    assert_eq!(prop(&c, "String 0x1045"), Some(&json!("<mailto:u@x>")));
}

#[test]
fn signed_encrypted_and_reports() {
    let signed = multipart(
        "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256",
        &[
            "Content-Type: text/plain\r\n\r\nsigned text",
            "Content-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\nMAA=",
        ],
    );
    let c = convert(&signed);
    assert_eq!(content(&c), ("text".into(), "signed text".into()));
    assert_eq!(attachments(&c)[0].0, "smime.p7s");
    assert_eq!(c.shape.lost_by_json, Lost::SIGNATURE);
    let c = convert(
        "Subject: e\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nMAA=",
    );
    assert_eq!(content(&c), ("text".into(), String::new()));
    assert_eq!(attachments(&c)[0].0, "smime.p7m");
    assert_eq!(attachments(&c)[0].4, vec![0x30, 0]);
    assert_eq!(c.shape.lost_by_json, Lost::ENCRYPTED);
    let dsn = multipart(
        "multipart/report; report-type=delivery-status",
        &[
            "Content-Type: text/plain\r\n\r\nDelivery failed",
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed",
            "Content-Type: text/rfc822-headers\r\n\r\nSubject: original",
        ],
    );
    let c = convert(&dsn);
    assert_eq!(content(&c), ("text".into(), "Delivery failed".into()));
    let names: Vec<String> = attachments(&c).into_iter().map(|a| a.0).collect();
    assert_eq!(names, ["delivery-status.txt", "headers.txt"]);
    assert_eq!(c.shape.lost_by_json, Lost::REPORT);
}

#[test]
fn attachments_are_carried() {
    let mime = "From: a@example.com\r\nSubject: att\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
        <p>hi</p>\r\n--b\r\nContent-Type: application/pdf\r\n\
        Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n";
    let converted = convert(mime);
    assert_eq!(converted.body["body"]["contentType"], "html");
    assert_eq!(converted.attachments.len(), 1);
    let a = converted.attachments[0].json();
    assert_eq!(a["name"], "r.pdf");
    assert_eq!(a["contentType"], "application/pdf");
    assert_eq!(a["contentBytes"], STANDARD.encode("%PDF"));
    assert_eq!(a["isInline"], false);
    assert!(a.get("contentId").is_none());
}

#[test]
fn inline_parts_keep_their_content_id() {
    let mime = "From: a@example.com\r\nSubject: img\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
        <img src=\"cid:logo@x\">\r\n--b\r\nContent-Type: image/png\r\n\
        Content-Disposition: inline; filename=\"logo.png\"\r\nContent-ID: <logo@x>\r\n\
        Content-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n--b--\r\n";
    let converted = convert(mime);
    let a = &converted.attachments[0];
    assert!(a.inline);
    assert_eq!(a.content_id.as_deref(), Some("logo@x"));
    assert_eq!(a.json()["contentId"], "logo@x");
    assert_eq!(a.json()["isInline"], true);
    let item = a.upload_item();
    assert_eq!(
        (
            &item["attachmentType"],
            &item["size"],
            &item["contentId"],
            &item["isInline"]
        ),
        (&json!("file"), &json!(4), &json!("logo@x"), &json!(true))
    );
}

#[test]
fn json_len_is_exact() {
    for n in [0, 1, 2, 3, 4, 1000, 3 * 1024 * 1024] {
        let a = FileAttachment {
            name: "r\u{e9}sum\u{e9} \"q\".pdf".into(),
            content_type: "application/pdf".into(),
            inline: n % 2 == 0,
            content_id: (n % 3 == 0).then(|| "c@x".to_owned()),
            bytes: vec![7; n],
        };
        assert_eq!(a.json_len(), a.json().to_string().len(), "{n} bytes");
    }
}

#[test]
fn empty_input_is_refused() {
    assert!(from_mime(b"", Utc::now(), 1, &JsonOptions::default()).is_err());
}
