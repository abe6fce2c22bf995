//! EWS faults a client must survive: per-item `ErrorServerBusy` then
//! `ErrorBatchProcessingStopped` inside one batch response, a fault after a partial
//! commit, `ErrorItemSave`, IIS's 413 on a big batch, and `X-AnchorMailbox` required
//! with impersonation. What was stored is read back through `FindItem`/`GetItem`.

use super::*;
use mailhaul_tests::exchange_read::ExchangeReader;

fn batch(n: usize) -> String {
    let items: String = (0..n)
        .map(|i| {
            let mime = format!(
                "From: a@example.com\r\nSubject: item {i}\r\nMessage-ID: <b{i}@x>\r\n\r\nbody {i}\r\n"
            );
            ews_message(&format!(
                "<t:MimeContent>{}</t:MimeContent>{}",
                STANDARD.encode(mime),
                extended("0x0E07", "Integer", "1")
            ))
        })
        .collect();
    let create = format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId><m:Items>{items}</m:Items></m:CreateItem>"#
    );
    soap(Some("Exchange2013_SP1"), Some(UPN), &create)
}

/// The response codes of a CreateItem answer, in order.
fn codes(xml: &str) -> Vec<&str> {
    xml.split("<m:ResponseCode>")
        .skip(1)
        .filter_map(|s| s.split("</m:ResponseCode>").next())
        .collect()
}

async fn subjects(s: &Setup, token: &str) -> anyhow::Result<Vec<String>> {
    let r = ExchangeReader::ews(
        &format!("{}/EWS/Exchange.asmx", s.emu.base_url()),
        token,
        UPN,
    );
    let inbox = r.folder("Inbox").await?.context("Inbox")?;
    let mut out: Vec<String> = r
        .messages(&inbox.id)
        .await?
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn a_batch_stops_at_a_busy_item_and_says_so_per_item() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    s.emu.inject(Fault::EwsItemServerBusy {
        after_items: 1,
        back_off_ms: 1500,
    });
    let (status, xml) = ews(&s, &token, batch(3)).await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "per-item errors come inside an HTTP 200"
    );
    assert_eq!(
        codes(&xml),
        ["NoError", "ErrorServerBusy", "ErrorBatchProcessingStopped"]
    );
    assert!(
        xml.contains(r#"<t:Value Name="BackOffMilliseconds">1500</t:Value>"#),
        "{xml}"
    );
    assert_eq!(subjects(&s, &token).await?, ["item 0"]);

    // ErrorItemSave for one item; the others are stored.
    s.emu.inject(Fault::EwsItemSave { count: 1 });
    let (_, xml) = ews(&s, &token, batch(2)).await?;
    assert_eq!(codes(&xml), ["ErrorItemSave", "NoError"]);
    assert_eq!(subjects(&s, &token).await?, ["item 0", "item 1"]);
    Ok(())
}

#[tokio::test]
async fn a_fault_after_a_partial_commit_hides_what_was_stored() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let token = s.emu.issue_ews_token();
    s.emu.inject(Fault::EwsFaultAfterItems { after_items: 2 });
    let (status, xml) = ews(&s, &token, batch(4)).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        xml.contains("a:ErrorInternalServerTransientError</faultcode>"),
        "{xml}"
    );
    // The client heard nothing, but two items are there.
    assert_eq!(subjects(&s, &token).await?, ["item 0", "item 1"]);
    Ok(())
}

#[tokio::test]
async fn iis_refuses_big_batches_and_anchorless_impersonation_fails() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig {
        ews_max_request_bytes: 4000,
        ..EmulatorConfig::default()
    })
    .await?;
    let token = s.emu.issue_ews_token();
    let (status, body) = ews(&s, &token, batch(20)).await?;
    assert_eq!((status, body.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, ""));
    let (status, _) = ews(&s, &token, batch(1)).await?;
    assert_eq!(status, StatusCode::OK);
    s.emu.inject(Fault::Ews413 { count: 1 });
    assert_eq!(
        ews(&s, &token, batch(1)).await?.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(ews(&s, &token, batch(1)).await?.0, StatusCode::OK);

    let url = format!("{}/EWS/Exchange.asmx", s.emu.base_url());
    for anchor in [None, Some("someone.else@contoso.com")] {
        let mut request = s
            .http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "text/xml; charset=utf-8");
        if let Some(a) = anchor {
            request = request.header("x-anchormailbox", a);
        }
        let response = request.body(batch(1)).send().await?;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let xml = response.text().await?;
        assert!(
            xml.contains("a:ErrorInternalServerError</faultcode>")
                && xml.contains("X-AnchorMailbox"),
            "{xml}"
        );
    }
    assert_eq!(
        subjects(&s, &token).await?.len(),
        2,
        "nothing stored without the anchor"
    );
    // Configurable: an on-premises server that does not need it.
    let lax = Setup::start(EmulatorConfig {
        ews_require_anchor_mailbox: false,
        ..EmulatorConfig::default()
    })
    .await?;
    let url = format!("{}/EWS/Exchange.asmx", lax.emu.base_url());
    let response = lax
        .http
        .post(&url)
        .bearer_auth(lax.emu.issue_ews_token())
        .body(batch(1))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}
