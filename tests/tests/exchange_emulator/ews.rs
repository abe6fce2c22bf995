//! EWS as Microsoft documents it: `CreateItem` with MIME and MAPI flags, envelope and
//! impersonation faults, folders, the connection limit, `FindItem` by Message-ID.

use super::*;

#[tokio::test]
async fn ews_create_item_imports_mime_with_mapi_flags_per_item() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let mime = format!(
        "<t:MimeContent CharacterSet=\"UTF-8\">{}</t:MimeContent>",
        STANDARD.encode(MIME)
    );
    let imported = ews_message(&format!(
        "{mime}{}{}{}<t:IsRead>false</t:IsRead>",
        extended("0x0E07", "Integer", "1"),
        extended("0x0E06", "SystemTime", "2019-03-04T10:05:00Z"),
        extended("0x1090", "Integer", "2"),
    ));
    let broken = ews_message("<t:MimeContent>not base64!</t:MimeContent>");
    // xs:base64Binary may be wrapped; this one is read the same as the unwrapped one.
    let wrapped = STANDARD
        .encode(MIME)
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n");
    let wrapped = ews_message(&format!("<t:MimeContent>{wrapped}</t:MimeContent>"));
    let body = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>{imported}{broken}{wrapped}</m:Items></m:CreateItem>"#
    );
    let (status, xml) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), &body)).await?;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let success = xml
        .find(r#"ResponseClass="Success""#)
        .context("first item succeeded")?;
    let error = xml
        .find(r#"ResponseClass="Error""#)
        .context("second item failed")?;
    let third = xml
        .rfind(r#"ResponseClass="Success""#)
        .context("third item")?;
    assert!(
        success < error && error < third,
        "response messages in request order: {xml}"
    );
    assert!(
        xml.contains("<m:ResponseCode>ErrorMimeContentInvalidBase64String</m:ResponseCode>"),
        "{xml}"
    );

    let view = s.emu.mailbox(UPN);
    assert_eq!(view.items.len(), 2);
    assert_eq!(
        view.items[1].mime.as_deref(),
        Some(MIME.as_bytes()),
        "wrapped base64"
    );
    let item = &view.items[0];
    assert!(
        xml.contains(&format!(r#"<t:ItemId Id="{}""#, item.id)),
        "{xml}"
    );
    assert_eq!(
        (item.folder_path.as_str(), item.origin),
        ("Inbox", Origin::EwsMime)
    );
    assert!(!item.is_draft, "0x0E07 without MSGFLAG_UNSENT");
    assert!(!item.is_read, "IsRead wins over the read bit");
    assert_eq!(item.flag, FlagStatus::Flagged);
    assert_eq!(item.received.to_rfc3339(), "2019-03-04T10:05:00+00:00");
    assert_eq!(item.mime.as_deref(), Some(MIME.as_bytes()));

    // Default namespaces instead of prefixes; no flags means a draft, saved in Drafts.
    let plain = format!(
        r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Header><RequestServerVersion xmlns="http://schemas.microsoft.com/exchange/services/2006/types" Version="Exchange2016"/><ExchangeImpersonation xmlns="http://schemas.microsoft.com/exchange/services/2006/types"><ConnectingSID><SmtpAddress>{UPN}</SmtpAddress></ConnectingSID></ExchangeImpersonation></Header><Body><CreateItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages" MessageDisposition="SaveOnly"><Items><Message xmlns="http://schemas.microsoft.com/exchange/services/2006/types"><MimeContent>{}</MimeContent></Message></Items></CreateItem></Body></Envelope>"#,
        STANDARD.encode(MIME)
    );
    let (status, xml) = ews(&s, &token, plain).await?;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let drafts = s
        .emu
        .mailbox(UPN)
        .items_in("Drafts")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(drafts.len(), 1);
    assert!(drafts[0].is_draft);
    assert_eq!(
        drafts[0].sent.map(|t| t.to_rfc3339()).as_deref(),
        Some("2019-03-04T10:00:00+00:00")
    );
    Ok(())
}

#[tokio::test]
async fn ews_refuses_bad_envelopes_with_soap_faults() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let out_of_order = ews_message(&format!(
        "<t:MimeContent>{}</t:MimeContent><t:IsRead>true</t:IsRead>{}",
        STANDARD.encode(MIME),
        extended("0x0E07", "Integer", "1")
    ));
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items>{out_of_order}</m:Items></m:CreateItem>"#
    );
    let cases = [
        (
            soap(Some("Exchange2013_SP1"), Some(UPN), &create),
            "ErrorSchemaValidation",
        ),
        (soap(None, Some(UPN), &create), "ErrorInvalidServerVersion"),
        (
            soap(Some("Exchange2099"), Some(UPN), &create),
            "ErrorInvalidServerVersion",
        ),
        (
            soap(Some("Exchange2013_SP1"), None, &create),
            "ErrorInvalidExchangeImpersonationHeaderData",
        ),
        (
            soap(
                Some("Exchange2013_SP1"),
                Some("nobody@contoso.com"),
                &create,
            ),
            "ErrorNonExistentMailbox",
        ),
        ("<soap:Envelope".to_owned(), "ErrorSchemaValidation"),
    ];
    for (xml, code) in cases {
        let (status, body) = ews(&s, &token, xml).await?;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{code}: {body}");
        assert!(
            body.contains(&format!("a:{code}</faultcode>")),
            "{code}: {body}"
        );
    }
    assert!(
        s.emu.mailbox(UPN).items.is_empty(),
        "a schema fault stores nothing"
    );

    let (status, _) = ews(
        &s,
        &s.token,
        soap(Some("Exchange2013_SP1"), Some(UPN), &create),
    )
    .await?;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a Graph token is not an EWS token"
    );

    s.emu.inject(Fault::EwsServerBusy {
        count: 1,
        back_off_ms: 5000,
    });
    let find = r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#;
    let (status, body) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), find)).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("a:ErrorServerBusy</faultcode>"), "{body}");
    assert!(
        body.contains(r#"<t:Value Name="BackOffMilliseconds">5000</t:Value>"#),
        "{body}"
    );
    let (status, _) = ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), find)).await?;
    assert_eq!(status, StatusCode::OK, "the fault fired once");
    Ok(())
}

#[tokio::test]
async fn ews_folders_create_find_and_page() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let create = |name: &str| {
        let body = format!(
            r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderId><m:Folders><t:Folder><t:DisplayName>{name}</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>"#
        );
        soap(Some("Exchange2013_SP1"), Some(UPN), &body)
    };
    let (_, xml) = ews(&s, &token, create("Projects")).await?;
    assert!(xml.contains(r#"ResponseClass="Success""#), "{xml}");
    let id = s
        .emu
        .mailbox(UPN)
        .folder("Projects")
        .context("created")?
        .id
        .clone();
    assert!(xml.contains(&format!(r#"<t:FolderId Id="{id}""#)), "{xml}");
    let (status, xml) = ews(&s, &token, create("PROJECTS")).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        xml.contains("<m:ResponseCode>ErrorFolderExists</m:ResponseCode>"),
        "{xml}"
    );

    let find = |traversal: &str, view: &str| {
        let body = format!(
            r#"<m:FindFolder Traversal="{traversal}"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>{view}<m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#
        );
        soap(Some("Exchange2013_SP1"), Some(UPN), &body)
    };
    let (_, shallow) = ews(&s, &token, find("Shallow", "")).await?;
    assert!(
        shallow.contains("<t:DisplayName>Projects</t:DisplayName>"),
        "{shallow}"
    );
    assert!(
        !shallow.contains("<t:DisplayName>Conflicts</t:DisplayName>"),
        "{shallow}"
    );
    let (_, deep) = ews(&s, &token, find("Deep", "")).await?;
    assert!(
        deep.contains("<t:DisplayName>Conflicts</t:DisplayName>"),
        "{deep}"
    );
    let paged =
        r#"<m:IndexedPageFolderView MaxEntriesReturned="2" Offset="0" BasePoint="Beginning"/>"#;
    let (_, page) = ews(&s, &token, find("Shallow", paged)).await?;
    assert_eq!(page.matches("<t:Folder>").count(), 2, "{page}");
    assert!(
        page.contains(r#"IncludesLastItemInRange="false""#),
        "{page}"
    );
    Ok(())
}

#[tokio::test]
async fn ews_connection_limit_and_http_503() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        ews_max_concurrency: 2,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    let token = s.emu.issue_ews_token();
    let find = r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>"#;
    let request = || ews(&s, &token, soap(Some("Exchange2013_SP1"), Some(UPN), find));
    s.emu.hold();
    let requests = futures_util::future::join_all((0..3).map(|_| request()));
    let lined_up = || s.emu.ews_in_flight(UPN) == 2 && s.emu.request_count(UPN) == 3;
    let (results, lined_up) = tokio::join!(requests, release_when(&s.emu, lined_up));
    lined_up?;
    let mut refused = 0;
    for result in results {
        let (status, body) = result?;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            assert!(
                body.contains("a:ErrorExceededConnectionCount</faultcode>"),
                "{body}"
            );
            refused += 1;
        } else {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                body.contains("<t:DisplayName>Inbox</t:DisplayName>"),
                "{body}"
            );
        }
    }
    assert_eq!(refused, 1);
    assert_eq!(s.emu.ews_peak_concurrency(UPN), 2);
    assert_eq!(s.emu.request_count(UPN), 3);

    s.emu.inject(Fault::Ews503 {
        count: 1,
        retry_after: Some(Duration::from_secs(2)),
    });
    let (status, _) = request().await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = request().await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn ews_find_item_finds_an_upload_by_message_id() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    let message = ews_message(&format!(
        "<t:MimeContent>{}</t:MimeContent>{}",
        STANDARD.encode(MIME),
        extended("0x0E07", "Integer", "1")
    ));
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>{message}</m:Items></m:CreateItem>"#
    );
    let (status, _) = ews(
        &s,
        &token,
        soap(Some("Exchange2013_SP1"), Some(UPN), &create),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let find = |field: &str, value: &str, folder: &str| {
        let body = format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:Restriction><t:IsEqualTo>{field}<t:FieldURIOrConstant><t:Constant Value="{value}"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="{folder}"/></m:ParentFolderIds></m:FindItem>"#
        );
        soap(Some("Exchange2013_SP1"), Some(UPN), &body)
    };
    let by_uri = r#"<t:FieldURI FieldURI="message:InternetMessageId"/>"#;
    let by_tag = r#"<t:ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/>"#;
    let id = s.emu.mailbox(UPN).items[0].id.clone();
    for field in [by_uri, by_tag] {
        let (status, xml) = ews(&s, &token, find(field, "&lt;m1@example.com&gt;", "inbox")).await?;
        assert_eq!(status, StatusCode::OK, "{xml}");
        assert!(xml.contains(&format!(r#"<t:ItemId Id="{id}""#)), "{xml}");
        assert!(
            xml.contains(&format!("<t:Size>{}</t:Size>", MIME.len())),
            "{xml}"
        );
        assert!(xml.contains(r#"TotalItemsInView="1""#), "{xml}");
    }
    for (value, folder) in [
        ("&lt;other@example.com&gt;", "inbox"),
        ("&lt;m1@example.com&gt;", "drafts"),
    ] {
        let (_, xml) = ews(&s, &token, find(by_uri, value, folder)).await?;
        assert!(xml.contains(r#"TotalItemsInView="0""#), "{xml}");
    }
    let subject = r#"<t:FieldURI FieldURI="item:Subject"/>"#;
    let (status, xml) = ews(&s, &token, find(subject, "hi", "inbox")).await?;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "unsupported restrictions are refused: {xml}"
    );
    Ok(())
}
