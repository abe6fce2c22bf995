//! What happens to an existing Graph message: `$value`, move, attachments and upload
//! sessions; mailboxes unknown, denied or full.

use super::*;

#[tokio::test]
async fn get_value_move_and_attachments_of_a_message() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let created = expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    let got = expect(s.get(&format!("/messages/{id}")).await?, StatusCode::OK).await?;
    assert_eq!(got["internetMessageId"], "<m1@example.com>");
    let raw = s.get(&format!("/messages/{id}/$value")).await?;
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.bytes().await?.as_ref(), MIME.as_bytes());

    let small = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
        "contentType": "text/plain", "contentBytes": STANDARD.encode("hello")});
    expect(
        s.post_json(&format!("/messages/{id}/attachments"), &small)
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let too_small =
        json!({"AttachmentItem": {"attachmentType": "file", "name": "b.bin", "size": 1000}});
    let refused = s
        .post_json(
            &format!("/messages/{id}/attachments/createUploadSession"),
            &too_small,
        )
        .await?;
    expect_error(
        refused,
        StatusCode::BAD_REQUEST,
        "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
    )
    .await?;

    let size = 5 * 1024 * 1024;
    let big: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let item =
        json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": size}});
    let session = s
        .post_json(
            &format!("/messages/{id}/attachments/createUploadSession"),
            &item,
        )
        .await?;
    let session = expect(session, StatusCode::CREATED).await?;
    let upload = session["uploadUrl"]
        .as_str()
        .context("uploadUrl")?
        .to_owned();
    let put = |start: usize, end: usize, auth: bool| {
        let mut request = s
            .http
            .put(&upload)
            .header("content-range", format!("bytes {start}-{}/{size}", end - 1))
            .body(big[start..end].to_vec());
        if auth {
            request = request.bearer_auth(&s.token);
        }
        request.send()
    };
    assert_eq!(
        put(0, 1024, true).await?.status(),
        StatusCode::UNAUTHORIZED,
        "no Authorization to uploadUrl"
    );
    let half = 3 * 1024 * 1024;
    let first = expect(put(0, half, false).await?, StatusCode::OK).await?;
    assert_eq!(first["nextExpectedRanges"], json!([format!("{half}-")]));
    assert_eq!(
        put(half + 1, size, false).await?.status(),
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    let last = put(half, size, false).await?;
    assert_eq!(last.status(), StatusCode::CREATED);
    assert!(last.headers().contains_key("location"));

    let moved = s
        .post_json(
            &format!("/messages/{id}/move"),
            &json!({"destinationId": "inbox"}),
        )
        .await?;
    let moved = expect(moved, StatusCode::CREATED).await?;
    let new_id = moved["id"].as_str().context("id")?.to_owned();
    assert_ne!(
        new_id, id,
        "a move gives a new id without Prefer: IdType=\"ImmutableId\""
    );
    assert_eq!(moved["isDraft"], true, "still a draft after the move");
    let view = s.emu.mailbox(UPN);
    let item = view.item(&new_id).context("moved item")?;
    assert_eq!(item.folder_path, "Inbox");
    let names: Vec<(&str, usize)> = item
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.bytes.len()))
        .collect();
    assert_eq!(names, [("a.txt", 5), ("big.bin", size)]);
    assert_eq!(item.attachments[1].bytes, big);

    let immutable = s
        .http
        .post(s.url("v1.0", &format!("/messages/{new_id}/move")))
        .bearer_auth(&s.token)
        .header("prefer", "IdType=\"ImmutableId\"")
        .json(&json!({"destinationId": "archive"}))
        .send()
        .await?;
    let immutable = expect(immutable, StatusCode::CREATED).await?;
    assert_eq!(immutable["id"], new_id.as_str());

    let url = s.url("v1.0", &format!("/messages/{new_id}"));
    let deleted = s.http.delete(url).bearer_auth(&s.token).send().await?;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let view = s.emu.mailbox(UPN);
    let item = view.item(&new_id).context("soft-deleted item is kept")?;
    assert_eq!(item.folder_path, "Deleted Items");
    Ok(())
}

#[tokio::test]
async fn unknown_and_denied_mailboxes_are_refused() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let other = format!(
        "{}/v1.0/users/nobody@contoso.com/mailFolders",
        s.emu.base_url()
    );
    let response = s.get_url(&other).await?;
    expect_error(response, StatusCode::NOT_FOUND, "ErrorInvalidUser").await?;
    s.emu.deny_mailbox(UPN);
    expect_error(
        s.get("/mailFolders").await?,
        StatusCode::FORBIDDEN,
        "ErrorAccessDenied",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_full_mailbox_refuses_new_items_on_graph_and_ews() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        mailbox_quota_bytes: 200,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let full = s
        .post_mime("v1.0", "/messages", STANDARD.encode(MIME))
        .await?;
    expect_error(full, StatusCode::FORBIDDEN, "ErrorQuotaExceeded").await?;
    let token = s.emu.issue_ews_token();
    let message = ews_message(&format!(
        "<t:MimeContent>{}</t:MimeContent>",
        STANDARD.encode(MIME)
    ));
    let body = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items>{message}</m:Items></m:CreateItem>"#
    );
    let (status, xml) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), &body)).await?;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert!(
        xml.contains("<m:ResponseCode>ErrorQuotaExceeded</m:ResponseCode>"),
        "{xml}"
    );
    assert_eq!(s.emu.mailbox(UPN).items.len(), 1);
    Ok(())
}
