//! The limits Microsoft documents, each enforced and each configurable: named-property
//! quotas, 256 KB of headers, the max message size, upload-session minimum and
//! expiry, mailboxes not provisioned, the non-mail default folders, `Retry-After` as an
//! HTTP date, 429 on a PATCH, the concurrency gate per app.

use super::*;
use mailhaul_tests::exchange::{ConcurrencyScope, MailboxSettings};

fn json_with_headers(names: &[&str]) -> Value {
    let headers: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "value": "v"}))
        .collect();
    json!({"subject": "h", "internetMessageHeaders": headers,
        "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]})
}

fn mime_with(extra_headers: &str, body: &str) -> String {
    STANDARD.encode(format!(
        "From: a@example.com\r\nSubject: m\r\n{extra_headers}Message-ID: <{}@x>\r\n\r\n{body}\r\n",
        rand::random::<u32>()
    ))
}

#[tokio::test]
async fn named_property_quota_counts_distinct_names_on_every_path() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig {
        named_property_quota: 6,
        internet_header_quota: 4,
        ..EmulatorConfig::default()
    })
    .await?;
    let path = "/mailFolders/inbox/messages";
    let ok = json_with_headers(&["x-a", "x-b", "x-c"]);
    expect(s.post_json(path, &ok).await?, StatusCode::CREATED).await?;
    // The same names again cost nothing, in any case.
    let again = json_with_headers(&["X-A", "x-b"]);
    expect(s.post_json(path, &again).await?, StatusCode::CREATED).await?;
    // Two new ones would make 5 InternetHeaders definitions of 4: refused whole.
    let over = json_with_headers(&["x-d", "x-e"]);
    let body = expect_error(
        s.post_json(path, &over).await?,
        StatusCode::FORBIDDEN,
        "ErrorQuotaExceeded",
    )
    .await?;
    assert_eq!(body["error"]["message"], "Cannot get ID from name.");
    // Nothing of the refused create was taken: one more name still fits.
    let mime = mime_with("X-D: 1\r\n", "b");
    expect(
        s.post_mime("beta", "/mailFolders/inbox/importMime", mime)
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    // MIME imports take a definition per X- header too: the 5th is refused.
    let mime = mime_with("X-E: 1\r\nx-a: again\r\n", "b");
    expect_error(
        s.post_mime("beta", "/mailFolders/inbox/importMime", mime)
            .await?,
        StatusCode::FORBIDDEN,
        "ErrorQuotaExceeded",
    )
    .await?;
    // Named extended properties count toward the total (4 used of 6).
    let named = |n: &str| {
        json!({"subject": "n", "singleValueExtendedProperties": [
        {"id": format!("String {{00020329-0000-0000-C000-000000000046}} Name {n}"), "value": "1"}]})
    };
    expect(s.post_json(path, &named("one")).await?, StatusCode::CREATED).await?;
    expect(s.post_json(path, &named("two")).await?, StatusCode::CREATED).await?;
    expect_error(
        s.post_json(path, &named("three")).await?,
        StatusCode::FORBIDDEN,
        "ErrorQuotaExceeded",
    )
    .await?;
    // ... on PATCH too, and on EWS.
    let id = expect(
        s.post_json(path, &json!({"subject": "p"})).await?,
        StatusCode::CREATED,
    )
    .await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    expect_error(
        s.patch_json(&format!("/messages/{id}"), &named("four"))
            .await?,
        StatusCode::FORBIDDEN,
        "ErrorQuotaExceeded",
    )
    .await?;
    let token = s.emu.issue_ews_token();
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>{}</m:Items></m:CreateItem>"#,
        ews_message(&format!(
            "<t:MimeContent>{}</t:MimeContent>",
            mime_with("X-Z: 1\r\n", "b")
        ))
    );
    let (_, xml) = ews(
        &s,
        &token,
        soap(Some("Exchange2013_SP1"), Some(UPN), &create),
    )
    .await?;
    assert!(
        xml.contains("<m:ResponseCode>ErrorQuotaExceeded</m:ResponseCode>")
            && xml.contains("Cannot get ID from name."),
        "{xml}"
    );
    Ok(())
}

#[tokio::test]
async fn a_mailbox_whose_quota_is_nearly_full_refuses_the_next_header_name() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.configure_mailbox(
        UPN,
        MailboxSettings {
            named_properties_used: 16_000,
            internet_headers_used: 9_829,
            ..MailboxSettings::default()
        },
    );
    let path = "/mailFolders/inbox/messages";
    expect(
        s.post_json(path, &json_with_headers(&["x-last"])).await?,
        StatusCode::CREATED,
    )
    .await?;
    expect_error(
        s.post_json(path, &json_with_headers(&["x-one-too-many"]))
            .await?,
        StatusCode::FORBIDDEN,
        "ErrorQuotaExceeded",
    )
    .await?;
    // Without the quota near full (the default), 500 distinct names are fine.
    let other = "carol@contoso.com";
    s.emu.add_mailbox(other);
    let names: Vec<String> = (0..500).map(|i| format!("x-campaign-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let url = format!("{}/v1.0/users/{other}{path}", s.emu.base_url());
    let r = s
        .http
        .post(url)
        .bearer_auth(&s.token)
        .json(&json_with_headers(&names))
        .send()
        .await?;
    expect(r, StatusCode::CREATED).await?;
    Ok(())
}

#[tokio::test]
async fn headers_over_256_kb_and_items_over_the_max_message_size_are_refused() -> anyhow::Result<()>
{
    let s = Setup::start(EmulatorConfig {
        max_message_bytes: 1024 * 1024,
        upload_session_min_bytes: 512 * 1024,
        ..EmulatorConfig::default()
    })
    .await?;
    // A folded 300 KB header on a MIME import.
    let long: String = (0..3000)
        .map(|i| format!(" word{i:05}-{}\r\n", "x".repeat(90)))
        .collect();
    let mime = mime_with(&format!("X-Long:{long}"), "b");
    expect_error(
        s.post_mime("beta", "/mailFolders/inbox/importMime", mime)
            .await?,
        StatusCode::BAD_REQUEST,
        "ErrorMessageSizeExceeded",
    )
    .await?;
    // The same on JSON internetMessageHeaders.
    let big = json!({"subject": "h", "internetMessageHeaders": [{"name": "x-long", "value": "y".repeat(300 * 1024)}]});
    expect_error(
        s.post_json("/messages", &big).await?,
        StatusCode::BAD_REQUEST,
        "ErrorMessageSizeExceeded",
    )
    .await?;
    // 1.5 MB of MIME over a 1 MB limit.
    let mime = mime_with("", &"z".repeat(1536 * 1024));
    expect_error(
        s.post_mime("beta", "/mailFolders/inbox/importMime", mime)
            .await?,
        StatusCode::BAD_REQUEST,
        "ErrorMessageSizeExceeded",
    )
    .await?;
    // An item grows by attachments until it would pass the limit.
    let id = expect(
        s.post_json("/messages", &json!({"subject": "a"})).await?,
        StatusCode::CREATED,
    )
    .await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let part = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "p.bin",
        "contentBytes": STANDARD.encode(vec![7_u8; 400 * 1024])});
    let attachments = format!("/messages/{id}/attachments");
    expect(s.post_json(&attachments, &part).await?, StatusCode::CREATED).await?;
    expect(s.post_json(&attachments, &part).await?, StatusCode::CREATED).await?;
    expect_error(
        s.post_json(&attachments, &part).await?,
        StatusCode::BAD_REQUEST,
        "ErrorMessageSizeExceeded",
    )
    .await?;
    let session =
        json!({"AttachmentItem": {"attachmentType": "file", "name": "s.bin", "size": 600 * 1024}});
    expect_error(
        s.post_json(&format!("{attachments}/createUploadSession"), &session)
            .await?,
        StatusCode::BAD_REQUEST,
        "ErrorMessageSizeExceeded",
    )
    .await?;
    // A mailbox of its own with a smaller limit; EWS says it per item.
    let small = "tiny@contoso.com";
    s.emu.configure_mailbox(
        small,
        MailboxSettings {
            max_message_bytes: Some(1000),
            ..MailboxSettings::default()
        },
    );
    let token = s.emu.issue_ews_token();
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items>{}</m:Items></m:CreateItem>"#,
        ews_message(&format!(
            "<t:MimeContent>{}</t:MimeContent>",
            mime_with("", &"q".repeat(2000))
        ))
    );
    let url = format!("{}/EWS/Exchange.asmx", s.emu.base_url());
    let xml = s
        .http
        .post(url)
        .bearer_auth(&token)
        .header("x-anchormailbox", small)
        .body(soap(Some("Exchange2013_SP1"), Some(small), &create))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        xml.contains("<m:ResponseCode>ErrorMessageSizeExceeded</m:ResponseCode>"),
        "{xml}"
    );
    Ok(())
}

#[tokio::test]
async fn upload_sessions_expire_and_a_new_one_works() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let id = expect(
        s.post_json("/messages", &json!({"subject": "u"})).await?,
        StatusCode::CREATED,
    )
    .await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let size = 3 * 1024 * 1024;
    let open = || async {
        let item =
            json!({"AttachmentItem": {"attachmentType": "file", "name": "u.bin", "size": size}});
        let v = expect(
            s.post_json(
                &format!("/messages/{id}/attachments/createUploadSession"),
                &item,
            )
            .await?,
            StatusCode::CREATED,
        )
        .await?;
        anyhow::Ok(v["uploadUrl"].as_str().context("uploadUrl")?.to_owned())
    };
    let put = |url: String, start: usize, len: usize| {
        s.http
            .put(url)
            .header(
                "content-range",
                format!("bytes {start}-{}/{size}", start + len - 1),
            )
            .body(vec![1_u8; len])
            .send()
    };
    let half = size / 2;
    for (unauthorized, status) in [
        (false, StatusCode::NOT_FOUND),
        (true, StatusCode::UNAUTHORIZED),
    ] {
        let url = open().await?;
        expect(put(url.clone(), 0, half).await?, StatusCode::OK).await?;
        s.emu.inject(Fault::ExpireUploadSessions { unauthorized });
        let r = put(url.clone(), half, size - half).await?;
        assert_eq!(r.status(), status);
        // Gone for good: the client must start again.
        assert_eq!(
            put(url, half, size - half).await?.status(),
            StatusCode::NOT_FOUND
        );
    }
    let url = open().await?;
    expect(put(url.clone(), 0, half).await?, StatusCode::OK).await?;
    let done = put(url, half, size - half).await?;
    assert_eq!(done.status(), StatusCode::CREATED);
    // A session whose lifetime is over answers 404 without any fault.
    let s2 = Setup::start(EmulatorConfig {
        upload_session_lifetime: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await?;
    let id2 = expect(
        s2.post_json("/messages", &json!({"subject": "u"})).await?,
        StatusCode::CREATED,
    )
    .await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let item = json!({"AttachmentItem": {"attachmentType": "file", "name": "u.bin", "size": size}});
    let v = expect(
        s2.post_json(
            &format!("/messages/{id2}/attachments/createUploadSession"),
            &item,
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let url = v["uploadUrl"].as_str().context("uploadUrl")?.to_owned();
    let r = s2
        .http
        .put(url)
        .header("content-range", format!("bytes 0-{}/{size}", half - 1))
        .body(vec![1_u8; half])
        .send()
        .await?;
    expect_error(r, StatusCode::NOT_FOUND, "ErrorItemNotFound").await?;
    Ok(())
}

#[tokio::test]
async fn a_mailbox_not_provisioned_says_so_on_every_request_until_it_is() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.configure_mailbox(
        UPN,
        MailboxSettings {
            provisioned: false,
            ..MailboxSettings::default()
        },
    );
    for path in ["/mailFolders", "/messages"] {
        expect_error(
            s.get(path).await?,
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
        )
        .await?;
    }
    let (status, xml) = ews(&s, &s.emu.issue_ews_token(), soap(Some("Exchange2013_SP1"), Some(UPN), r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>"#)).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(xml.contains("ErrorMailboxStoreUnavailable"), "{xml}");
    s.emu.configure_mailbox(UPN, MailboxSettings::default());
    expect(s.get("/mailFolders").await?, StatusCode::OK).await?;
    // The standalone emulator makes any mailbox on first use; path typos stay errors.
    let auto = Setup::start(EmulatorConfig {
        auto_create_mailboxes: true,
        ..EmulatorConfig::default()
    })
    .await?;
    let url = format!(
        "{}/v1.0/users/new.user@contoso.com/mailFolders/inbox",
        auto.emu.base_url()
    );
    expect(auto.get_url(&url).await?, StatusCode::OK).await?;
    let url = format!("{}/v1.0/users/not-an-upn/mailFolders", auto.emu.base_url());
    expect_error(
        auto.get_url(&url).await?,
        StatusCode::NOT_FOUND,
        "ErrorInvalidUser",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn non_mail_default_folders_collide_though_graph_does_not_list_them() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    for name in ["Notes", "calendar", "Contacts", "TASKS", "Journal"] {
        let r = s
            .post_json("/mailFolders", &json!({"displayName": name}))
            .await?;
        expect_error(r, StatusCode::CONFLICT, "ErrorFolderExists").await?;
    }
    let (names, _) = all_names(&s, s.url("v1.0", "/mailFolders?includeHiddenFolders=true")).await?;
    assert!(
        !names.iter().any(|n| n == "Notes" || n == "Calendar"),
        "{names:?}"
    );
    // A German mailbox: its own names collide, the English ones do not.
    let de = Setup::start(EmulatorConfig {
        non_mail_folders: ["Kalender", "Kontakte", "Aufgaben", "Notizen", "Journal"]
            .map(str::to_owned)
            .to_vec(),
        ..EmulatorConfig::default()
    })
    .await?;
    expect_error(
        de.post_json("/mailFolders", &json!({"displayName": "Notizen"}))
            .await?,
        StatusCode::CONFLICT,
        "ErrorFolderExists",
    )
    .await?;
    expect(
        de.post_json("/mailFolders", &json!({"displayName": "Notes"}))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn retry_after_as_an_http_date_and_429_on_patch_only() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.inject(Fault::Throttle429HttpDate {
        count: 1,
        retry_after: Duration::from_secs(30),
    });
    let r = s.get("/mailFolders").await?;
    let after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .context("Retry-After")?
        .to_owned();
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, "ApplicationThrottled").await?;
    let at = chrono::DateTime::parse_from_rfc2822(&after)
        .with_context(|| format!("an HTTP date: {after}"))?;
    let ahead = at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((25..=31).contains(&ahead), "{after} is {ahead} s ahead");

    s.emu.inject(Fault::ThrottlePatch429 {
        count: 1,
        retry_after: Duration::from_secs(2),
    });
    let mime = mime_with("", "b");
    let created = expect(
        s.post_mime("beta", "/mailFolders/inbox/importMime", mime)
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let id = created["id"].as_str().context("id")?;
    expect(s.get(&format!("/messages/{id}")).await?, StatusCode::OK).await?;
    let patch = json!({"isRead": true});
    let r = s.patch_json(&format!("/messages/{id}"), &patch).await?;
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("2")
    );
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, "ApplicationThrottled").await?;
    let got = expect(
        s.patch_json(&format!("/messages/{id}"), &patch).await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(got["isRead"], true);
    Ok(())
}

#[tokio::test]
async fn the_concurrency_gate_can_be_per_app_across_mailboxes() -> anyhow::Result<()> {
    for (scope, throttled_other) in [
        (ConcurrencyScope::PerApp, true),
        (ConcurrencyScope::PerMailbox, false),
    ] {
        let s = Setup::start(EmulatorConfig {
            concurrency_scope: scope,
            ..EmulatorConfig::default()
        })
        .await?;
        let other = "carol@contoso.com";
        s.emu.add_mailbox(other);
        s.emu.hold();
        let four = futures_util::future::join_all((0..4).map(|_| s.get("/mailFolders")));
        let url = format!("{}/v1.0/users/{other}/mailFolders", s.emu.base_url());
        let fifth = async {
            // Sent once the four hold their slots; all released once it was decided.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while s.emu.in_flight(UPN) < 4 {
                if tokio::time::Instant::now() > deadline {
                    s.emu.release();
                    anyhow::bail!("the four requests never lined up");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (r, decided) = tokio::join!(
                s.get_url(&url),
                release_when(&s.emu, || s.emu.request_count(other) == 1)
            );
            decided?;
            anyhow::Ok(r?)
        };
        let (four, fifth) = tokio::join!(four, fifth);
        for r in four {
            expect(r?, StatusCode::OK).await?;
        }
        let fifth = fifth?;
        if throttled_other {
            expect_error(fifth, StatusCode::TOO_MANY_REQUESTS, "ApplicationThrottled").await?;
            assert_eq!(s.emu.app_peak_concurrency(), 4);
        } else {
            expect(fifth, StatusCode::OK).await?;
            assert_eq!(s.emu.app_peak_concurrency(), 5);
        }
    }
    Ok(())
}
