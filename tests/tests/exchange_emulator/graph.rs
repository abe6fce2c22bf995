//! Graph as Microsoft documents it: tokens and their expiry, MIME drafts, `importMime`,
//! JSON create with MAPI properties, folders and paging.

use super::*;

#[tokio::test]
async fn tokens_are_issued_checked_and_expire() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token_url = format!(
        "{}/contoso.onmicrosoft.com/oauth2/v2.0/token",
        s.emu.base_url()
    );

    let bad = s
        .http
        .post(&token_url)
        .form(&token_form("wrong"))
        .send()
        .await?;
    let bad = expect(bad, StatusCode::UNAUTHORIZED).await?;
    assert_eq!(bad["error"], "invalid_client");
    assert!(
        bad["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000215"))
    );

    let ok = s
        .http
        .post(&token_url)
        .form(&token_form("emulator-secret"))
        .send()
        .await?;
    let ok = expect(ok, StatusCode::OK).await?;
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3599);
    let token = ok["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned();

    let folders = s
        .http
        .get(s.url("v1.0", "/mailFolders"))
        .bearer_auth(&token)
        .send()
        .await?;
    expect(folders, StatusCode::OK).await?;
    let anonymous = s.http.get(s.url("v1.0", "/mailFolders")).send().await?;
    expect_error(
        anonymous,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await?;

    s.emu.inject(Fault::ExpireTokens);
    let expired = s
        .http
        .get(s.url("v1.0", "/mailFolders"))
        .bearer_auth(&token)
        .send()
        .await?;
    let body = expect_error(
        expired,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn mime_post_makes_a_read_draft_in_drafts() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let drafts = expect(s.get("/mailFolders/drafts").await?, StatusCode::OK).await?;

    let created = expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(created["isDraft"], true);
    assert_eq!(created["isRead"], true);
    assert_eq!(created["sentDateTime"], "2019-03-04T10:00:00Z");
    assert_eq!(created["internetMessageId"], "<m1@example.com>");
    assert_eq!(created["subject"], "hi");
    assert_eq!(created["parentFolderId"], drafts["id"]);

    let view = s.emu.mailbox(UPN);
    let items = view.items_in("Drafts");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].mime.as_deref(), Some(MIME.as_bytes()));
    assert_eq!(items[0].origin, Origin::GraphMime);
    assert_eq!(Some(items[0].id.as_str()), created["id"].as_str());

    for bad in [
        format!("{}\r\n", STANDARD.encode(MIME)),
        "not*base64".to_owned(),
        "QUJD".repeat(3) + "Q",
    ] {
        let response = s.post_mime("v1.0", "/messages", bad).await?;
        expect_error(
            response,
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
        )
        .await?;
    }
    let to_folder = s
        .post_mime("v1.0", "/mailFolders/inbox/messages", STANDARD.encode(MIME))
        .await?;
    expect_error(
        to_folder,
        StatusCode::BAD_REQUEST,
        "UnableToDeserializePostBody",
    )
    .await?;
    assert_eq!(
        s.emu.mailbox(UPN).items.len(),
        1,
        "refused uploads store nothing"
    );
    Ok(())
}

#[tokio::test]
async fn import_mime_makes_a_delivered_item_in_the_named_folder_with_its_role_only()
-> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let folder = expect(
        s.post_json("/mailFolders", &json!({"displayName": "Projects"}))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let id = folder["id"].as_str().context("folder id")?;

    let path = format!("/mailFolders/{id}/importMime");
    let imported = expect(
        s.post_mime("beta", &path, STANDARD.encode(MIME)).await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(imported["isDraft"], false);
    assert_eq!(imported["parentFolderId"], id);
    let items = s.emu.mailbox(UPN).items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].folder_path, "Projects");
    assert!(!items[0].is_draft);
    assert_eq!(items[0].origin, Origin::GraphImportMime);

    let v1 = s.post_mime("v1.0", &path, STANDARD.encode(MIME)).await?;
    assert_eq!(
        v1.status(),
        StatusCode::BAD_REQUEST,
        "importMime is beta only"
    );

    let config = EmulatorConfig {
        graph_roles: vec!["Mail.ReadWrite".to_owned()],
        ..EmulatorConfig::default()
    };
    let without_role = Setup::start(config).await?;
    let denied = without_role
        .post_mime(
            "beta",
            "/mailFolders/inbox/importMime",
            STANDARD.encode(MIME),
        )
        .await?;
    expect_error(denied, StatusCode::FORBIDDEN, "ErrorAccessDenied").await?;
    assert!(without_role.emu.mailbox(UPN).items.is_empty());
    Ok(())
}

#[tokio::test]
async fn json_create_honours_mapi_flags_and_dates_and_patch_rules() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let body = json!({
        "subject": "hi",
        "body": {"contentType": "text", "content": "body"},
        "internetMessageId": "<j1@example.com>",
        "internetMessageHeaders": [{"name": "x-migrated-from", "value": "imap://src/INBOX;UID=42"}],
        "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
            "contentType": "text/plain", "contentBytes": STANDARD.encode("hello")}],
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
            {"id": "SystemTime 0x0E06", "value": "2019-03-04T10:05:00Z"},
            {"id": "SystemTime 0x0039", "value": "2019-03-04T10:00:00Z"}]});
    let created = expect(
        s.post_json("/mailFolders/inbox/messages", &body).await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(created["isDraft"], false);
    assert_eq!(created["isRead"], true);
    assert_eq!(created["receivedDateTime"], "2019-03-04T10:05:00Z");
    assert_eq!(created["sentDateTime"], "2019-03-04T10:00:00Z");
    let id = created["id"].as_str().context("id")?.to_owned();

    let draft = json!({"subject": "plain", "internetMessageId": "<j2@example.com>"});
    let draft = expect(
        s.post_json("/mailFolders/inbox/messages", &draft).await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(draft["isDraft"], true, "no 0x0E07 means a draft");

    let filter =
        "/mailFolders/inbox/messages?$filter=internetMessageId%20eq%20'%3Cj1%40example.com%3E'";
    let found = expect(s.get(filter).await?, StatusCode::OK).await?;
    let ids: Vec<&str> = found["value"]
        .as_array()
        .context("value")?
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let elsewhere = expect(
        s.get(&filter.replace("inbox", "drafts")).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(elsewhere["value"], json!([]));

    let patch =
        json!({"isRead": false, "flag": {"flagStatus": "flagged"}, "categories": ["Migrated"]});
    let in_inbox = format!("/mailFolders/inbox/messages/{id}");
    let patched = expect(s.patch_json(&in_inbox, &patch).await?, StatusCode::OK).await?;
    assert_eq!(patched["isRead"], false);
    let elsewhere = s.get(&format!("/mailFolders/drafts/messages/{id}")).await?;
    expect_error(elsewhere, StatusCode::NOT_FOUND, "ErrorItemNotFound").await?;
    let subject = s
        .patch_json(&format!("/messages/{id}"), &json!({"subject": "changed"}))
        .await?;
    expect_error(
        subject,
        StatusCode::BAD_REQUEST,
        "ErrorInvalidPropertyUpdateSentMessage",
    )
    .await?;
    let flags = json!({"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "9"}]});
    let flags = s.patch_json(&format!("/messages/{id}"), &flags).await?;
    assert_eq!(
        flags.status(),
        StatusCode::BAD_REQUEST,
        "message flags are fixed after creation"
    );
    let header =
        json!({"subject": "x", "internetMessageHeaders": [{"name": "Received", "value": "x"}]});
    let header = s.post_json("/messages", &header).await?;
    expect_error(
        header,
        StatusCode::BAD_REQUEST,
        "InvalidInternetMessageHeader",
    )
    .await?;

    let view = s.emu.mailbox(UPN);
    let item = view.item(&id).context("item stored")?;
    assert_eq!(item.folder_path, "Inbox");
    assert!(!item.is_read);
    assert_eq!(item.flag, FlagStatus::Flagged);
    assert_eq!(item.categories, ["Migrated"]);
    assert_eq!(
        item.subject.as_deref(),
        Some("hi"),
        "refused PATCH changed nothing"
    );
    assert_eq!(
        item.headers,
        [(
            "x-migrated-from".to_owned(),
            "imap://src/INBOX;UID=42".to_owned()
        )]
    );
    let names: Vec<(&str, &[u8])> = item
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.bytes.as_slice()))
        .collect();
    assert_eq!(names, [("a.txt", &b"hello"[..])]);
    Ok(())
}

#[tokio::test]
async fn folders_create_refuse_duplicates_and_page() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let projects = expect(
        s.post_json("/mailFolders", &json!({"displayName": "Projects"}))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(projects["displayName"], "Projects");
    let dup = s
        .post_json("/mailFolders", &json!({"displayName": "PROJECTS"}))
        .await?;
    expect_error(dup, StatusCode::CONFLICT, "ErrorFolderExists").await?;
    let id = projects["id"].as_str().context("id")?;
    let child = s
        .post_json(
            &format!("/mailFolders/{id}/childFolders"),
            &json!({"displayName": "projects"}),
        )
        .await?;
    expect(child, StatusCode::CREATED).await?;
    let orphan = s
        .post_json(
            "/mailFolders/AQMkADnope/childFolders",
            &json!({"displayName": "x"}),
        )
        .await?;
    expect_error(orphan, StatusCode::NOT_FOUND, "ErrorItemNotFound").await?;
    let unknown = s
        .post_json("/mailFolders", &json!({"displayName": "y", "color": "red"}))
        .await?;
    expect_error(unknown, StatusCode::BAD_REQUEST, "RequestBodyRead").await?;

    let (names, pages) = all_names(&s, s.url("v1.0", "/mailFolders?$top=3")).await?;
    let visible = [
        "Archive",
        "Conversation History",
        "Deleted Items",
        "Drafts",
        "Inbox",
        "Junk Email",
        "Outbox",
        "Projects",
        "Sent Items",
        "Sync Issues",
    ];
    assert_eq!(names, visible);
    assert_eq!(pages, 4);
    let (hidden, _) =
        all_names(&s, s.url("v1.0", "/mailFolders?includeHiddenFolders=true")).await?;
    assert_eq!(hidden.len(), visible.len() + 1);
    assert!(hidden.iter().any(|n| n == "Conversation Action Settings"));
    let (children, _) = all_names(
        &s,
        s.url("v1.0", &format!("/mailFolders/{id}/childFolders")),
    )
    .await?;
    assert_eq!(children, ["projects"]);
    let (sync, _) = all_names(&s, s.url("v1.0", "/mailFolders/syncissues/childFolders")).await?;
    assert_eq!(sync, ["Conflicts", "Local Failures", "Server Failures"]);
    assert!(s.emu.mailbox(UPN).folder("Projects/projects").is_some());
    Ok(())
}
