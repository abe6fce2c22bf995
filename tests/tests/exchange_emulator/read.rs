//! The read API shows back everything a client sent, and what Exchange makes of MIME,
//! through Graph (`$select`, `$expand`, attachments, `$value`) and EWS (`GetItem`,
//! `GetAttachment`), read with the kit's own reader.

use super::*;
use mailhaul_tests::exchange_read::ExchangeReader;
use sha2::{Digest, Sha256};

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn graph_reader(s: &Setup) -> ExchangeReader {
    ExchangeReader::graph(&s.emu.base_url(), &s.token, UPN)
}

/// A message Exchange has to promote with care: ISO-2022-JP subject, Shift_JIS
/// sender name and HTML body, raw 8-bit Windows-1252 in a header, a cid image with no
/// Content-Disposition, a PDF, an attached message, threading headers and X- headers.
pub(super) fn rich_mime() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(
        b"From: =?Shift_JIS?B?k/qWe4zq?= <jp@example.jp>\r\n\
Sender: Assistant <as@example.jp>\r\n\
To: \"Doe, John\" <john@example.com>, undisclosed-recipients:;\r\n\
Cc: c1@example.com\r\nReply-To: r1@example.com, r2@example.com\r\n\
Subject: =?ISO-2022-JP?B?GyRCJEskWyRzJDQbKEI=?=\r\n\
Date: Mon, 04 Mar 2019 10:00:00 +0000\r\nMessage-ID: <rich@example.jp>\r\n\
In-Reply-To: <parent@example.jp>\r\nReferences: <root@example.jp> <parent@example.jp>\r\n\
Importance: high\r\nX-Mailer: Caf\xe9 Mail\r\nX-Campaign-42: yes\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
Content-Type: multipart/related; boundary=rel\r\n\r\n--rel\r\n\
Content-Type: text/html; charset=shift_jis\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
<p>=93=FA=96=7B=8C=EA <img src=3D\"cid:logo@x\"></p>\r\n--rel\r\nContent-Type: image/png\r\n\
Content-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--rel--\r\n\
--outer\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--outer\r\n\
Content-Type: message/rfc822\r\n\r\nFrom: a@b.example\r\nSubject: Inner one\r\n\r\ninner body\r\n\
--outer--\r\n",
    );
    m
}

#[tokio::test]
async fn json_create_reads_back_with_every_field_through_graph() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let created = expect(
        s.post_json(
            "/mailFolders/inbox/messages",
            &json!({
                "subject": "Quarterly", "importance": "high",
                "body": {"contentType": "html", "content": "<p>numbers</p>"},
                "from": {"emailAddress": {"name": "Alice", "address": "alice@example.com"}},
                "sender": {"emailAddress": {"address": "desk@example.com"}},
                "toRecipients": [{"emailAddress": {"address": "bob@contoso.com"}},
                                 {"emailAddress": {"name": "Quoted", "address": "\"john doe\"@example.com"}}],
                "ccRecipients": [{"emailAddress": {"address": "c@example.com"}}],
                "bccRecipients": [{"emailAddress": {"address": "b@example.com"}}],
                "replyTo": [{"emailAddress": {"address": "r@example.com"}}],
                "isRead": false, "flag": {"flagStatus": "flagged"}, "categories": ["Red"],
                "internetMessageId": "<q@example.com>",
                "internetMessageHeaders": [{"name": "x-source", "value": "imap"}],
                "singleValueExtendedProperties": [
                    {"id": "Integer 0x0E07", "value": "0"},
                    {"id": "SystemTime 0x0E06", "value": "2019-03-04T10:05:00Z"},
                    {"id": "Integer 0x1080", "value": "261"},
                    {"id": "String 0x007D", "value": "Received: by mx\r\n"},
                    {"id": "String {00020329-0000-0000-C000-000000000046} Name mailhaul-uid", "value": "42"}],
                "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "logo.png",
                    "contentType": "image/png", "isInline": true, "contentId": "logo@x",
                    "contentBytes": STANDARD.encode(b"PNG")}]
            }),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let id = created["id"].as_str().context("id")?;
    // By default Graph does not return internetMessageHeaders.
    assert!(created.get("internetMessageHeaders").is_none(), "{created}");

    let r = graph_reader(&s);
    let inbox = r.folder("Inbox").await?.context("Inbox")?;
    let list = r.messages(&inbox.id).await?;
    assert_eq!(list.len(), 1);
    let m = &list[0];
    assert_eq!(m.subject.as_deref(), Some("Quarterly"));
    assert_eq!(
        (m.body_type.as_str(), m.body.as_str()),
        ("html", "<p>numbers</p>")
    );
    assert_eq!(
        m.from.as_ref().map(|a| a.address.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(
        m.sender.as_ref().map(|a| a.address.as_str()),
        Some("desk@example.com")
    );
    let to: Vec<&str> = m.to.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(to, ["bob@contoso.com", "\"john doe\"@example.com"]);
    assert_eq!((m.cc.len(), m.bcc.len(), m.reply_to.len()), (1, 1, 1));
    assert_eq!(
        (m.importance.as_str(), m.is_read, m.is_draft),
        ("high", false, false)
    );
    assert_eq!(
        (m.flag.as_str(), m.categories.clone()),
        ("flagged", vec!["Red".to_owned()])
    );
    assert_eq!(m.received.to_rfc3339(), "2019-03-04T10:05:00+00:00");
    assert_eq!(m.headers, [("x-source".to_owned(), "imap".to_owned())]);
    assert_eq!(m.item_class.as_deref(), Some("IPM.Note"));
    assert!(
        !m.has_attachments,
        "an inline image is not an attachment to a user"
    );

    let prop = |p: &'static str| r.extended_property(id, p);
    assert_eq!(prop("Integer 0x1080").await?.as_deref(), Some("261"));
    assert_eq!(prop("integer 0x1080").await?.as_deref(), Some("261"));
    assert_eq!(
        prop("String 0x007D").await?.as_deref(),
        Some("Received: by mx\r\n")
    );
    assert_eq!(prop("Integer 0x0E07").await?.as_deref(), Some("0"));
    assert_eq!(prop("Integer 0x1081").await?, None);
    let named = "String {00020329-0000-0000-c000-000000000046} Name mailhaul-uid";
    assert_eq!(r.extended_property(id, named).await?.as_deref(), Some("42"));

    let attachments = r.attachments(id).await?;
    assert_eq!(attachments.len(), 1);
    let a = &attachments[0];
    assert_eq!(
        (a.name.as_str(), a.is_inline, a.content_id.as_deref()),
        ("logo.png", true, Some("logo@x"))
    );
    assert_eq!(r.attachment_bytes(id, &a.id).await?, b"PNG");

    // Strict reads: unknown $select and $expand are refused.
    expect_error(
        s.get(&format!("/messages/{id}?$select=bogus")).await?,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await?;
    expect_error(
        s.get(&format!("/messages/{id}?$expand=mentions")).await?,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await?;
    let selected = expect(
        s.get(&format!("/messages/{id}?$select=subject")).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(selected["subject"], "Quarterly");
    assert!(selected.get("body").is_none(), "{selected}");
    Ok(())
}

#[tokio::test]
async fn import_mime_is_promoted_as_exchange_does_and_reads_back_on_both_apis() -> anyhow::Result<()>
{
    let s = Setup::start(EmulatorConfig::default()).await?;
    let raw = rich_mime();
    let created = expect(
        s.post_mime(
            "beta",
            "/mailFolders/inbox/importMime",
            STANDARD.encode(&raw),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    for r in [
        graph_reader(&s),
        ExchangeReader::ews(
            &format!("{}/EWS/Exchange.asmx", s.emu.base_url()),
            &s.emu.issue_ews_token(),
            UPN,
        ),
    ] {
        let m = r.message(&id).await?;
        assert_eq!(m.subject.as_deref(), Some("にほんご"), "{r:?}");
        assert_eq!(
            m.from.as_ref().and_then(|a| a.name.as_deref()),
            Some("日本語")
        );
        assert_eq!(
            m.sender.as_ref().map(|a| a.address.as_str()),
            Some("as@example.jp")
        );
        let to: Vec<(Option<&str>, &str)> =
            m.to.iter()
                .map(|a| (a.name.as_deref(), a.address.as_str()))
                .collect();
        assert_eq!(to, [(Some("Doe, John"), "john@example.com")]);
        assert_eq!(m.reply_to.len(), 2);
        assert_eq!(m.importance, "high");
        assert_eq!(
            (m.body_type.as_str(), m.body.contains("日本語")),
            ("html", true),
            "{}",
            m.body
        );
        assert!(
            m.headers
                .iter()
                .any(|(n, v)| n == "X-Mailer" && v == "Café Mail"),
            "{:?}",
            m.headers
        );
        assert_eq!(m.internet_message_id.as_deref(), Some("<rich@example.jp>"));
        assert!((!m.is_draft) && m.has_attachments);
        let atts = r.attachments(&id).await?;
        let shape: Vec<(&str, bool, Option<&str>, bool)> = atts
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.is_inline,
                    a.content_id.as_deref(),
                    a.is_item,
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("ATT00001.png", true, Some("logo@x"), false),
                ("résumé.pdf", false, None, false),
                ("Inner one", false, None, true),
            ]
        );
        assert_eq!(r.attachment_bytes(&id, &atts[1].id).await?, b"%PDF-1.4");
        let inner = r.attachment_bytes(&id, &atts[2].id).await?;
        assert!(
            inner.starts_with(b"From: a@b.example"),
            "{}",
            String::from_utf8_lossy(&inner)
        );
        assert_eq!(sha(&r.mime(&id).await?), sha(&raw), "the MIME as imported");
        let prop = |p: &'static str| r.extended_property(&id, p);
        assert_eq!(
            prop("String 0x1042").await?.as_deref(),
            Some("<parent@example.jp>")
        );
        assert!(
            prop("String 0x007D")
                .await?
                .is_some_and(|h| h.contains("X-Campaign-42: yes"))
        );
        assert_eq!(
            prop("Integer 0x0E07").await?.as_deref(),
            Some("16"),
            "unread, sent, has attachments"
        );
    }
    Ok(())
}

#[tokio::test]
async fn ews_lists_every_folder_class_and_reads_what_create_item_kept() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>{}</m:Items></m:CreateItem>"#,
        ews_message(&format!(
            "<t:MimeContent>{}</t:MimeContent>{}{}<t:IsRead>true</t:IsRead>",
            STANDARD.encode(MIME),
            extended("0x0E07", "Integer", "1"),
            extended("0x1080", "Integer", "261"),
        ))
    );
    let (status, body) = ews(
        &s,
        &token,
        soap(Some("Exchange2013_SP1"), Some(UPN), &create),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = ExchangeReader::ews(
        &format!("{}/EWS/Exchange.asmx", s.emu.base_url()),
        &token,
        UPN,
    );
    let folders = r.folders().await?;
    let class = |p: &str| {
        folders
            .iter()
            .find(|f| f.path == p)
            .and_then(|f| f.class.clone())
    };
    assert_eq!(class("Inbox").as_deref(), Some("IPF.Note"));
    assert_eq!(class("Calendar").as_deref(), Some("IPF.Appointment"));
    assert_eq!(class("Notes").as_deref(), Some("IPF.StickyNote"));
    let inbox = folders
        .iter()
        .find(|f| f.path == "Inbox")
        .context("Inbox")?;
    let list = r.messages(&inbox.id).await?;
    assert_eq!(list.len(), 1);
    let m = &list[0];
    assert_eq!(
        (m.subject.as_deref(), m.is_read, m.is_draft),
        (Some("hi"), true, false)
    );
    assert_eq!(
        m.from.as_ref().map(|a| a.address.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(
        m.sent.map(|t| t.to_rfc3339()).as_deref(),
        Some("2019-03-04T10:00:00+00:00")
    );
    assert_eq!(
        r.extended_property(&m.id, "Integer 0x1080")
            .await?
            .as_deref(),
        Some("261")
    );
    assert_eq!(r.mime(&m.id).await?, MIME.as_bytes());
    // Graph's mailFolders does not list the non-mail folders.
    let graph = graph_reader(&s).folders().await?;
    assert!(
        graph
            .iter()
            .all(|f| f.path != "Calendar" && f.path != "Notes"),
        "{graph:?}"
    );
    Ok(())
}
