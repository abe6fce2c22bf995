//! Throttling and faults on Graph: the concurrency gate, the request and upload
//! budgets, injected faults, the request size cap and `$batch`.

use super::*;

#[tokio::test]
async fn five_concurrent_requests_to_one_mailbox_meet_the_gate_of_four() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.hold();
    let requests = futures_util::future::join_all((0..5).map(|_| s.get("/mailFolders")));
    let lined_up = || s.emu.in_flight(UPN) == 4 && s.emu.request_count(UPN) == 5;
    let (responses, lined_up) = tokio::join!(requests, release_when(&s.emu, lined_up));
    lined_up?;
    let mut throttled = 0;
    for response in responses {
        let response = response?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            assert!(
                after.is_some_and(|a| a.parse::<u64>().is_ok_and(|n| n >= 1)),
                "Retry-After in seconds"
            );
            let body = expect_error(
                response,
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
            )
            .await?;
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("MailboxConcurrency"))
            );
        } else {
            expect(response, StatusCode::OK).await?;
        }
    }
    assert_eq!(throttled, 1);
    assert_eq!(s.emu.peak_concurrency(UPN), 4);
    assert_eq!(s.emu.request_count(UPN), 5);
    Ok(())
}

#[tokio::test]
async fn upload_budget_throttles_incoming_bytes() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        upload_bytes_per_5min: 300,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let second = s
        .post_mime("v1.0", "/messages", STANDARD.encode(MIME))
        .await?;
    let after = second
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = expect_error(
        second,
        StatusCode::TOO_MANY_REQUESTS,
        "ApplicationThrottled",
    )
    .await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("IncomingBytes"))
    );
    assert_eq!(after.as_deref(), Some("300"));
    assert_eq!(s.emu.mailbox(UPN).items.len(), 1);
    Ok(())
}

#[tokio::test]
async fn request_budget_throttles_and_keeps_counting_throttled_requests() -> anyhow::Result<()> {
    let config = EmulatorConfig {
        requests_per_10min: 2,
        ..EmulatorConfig::default()
    };
    let s = Setup::start(config).await?;
    for _ in 0..2 {
        expect(s.get("/mailFolders").await?, StatusCode::OK).await?;
    }
    for _ in 0..2 {
        let refused = s.get("/mailFolders").await?;
        let after = refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let after: u64 = after.context("Retry-After")?.parse()?;
        assert!(
            (599..=600).contains(&after),
            "about the whole 10-minute window: {after}"
        );
        expect_error(
            refused,
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
        )
        .await?;
    }
    assert_eq!(s.emu.request_count(UPN), 4, "throttled requests count too");
    Ok(())
}

#[tokio::test]
async fn injected_faults_fire_once_each_and_503_after_commit_keeps_the_item() -> anyhow::Result<()>
{
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.inject(Fault::Throttle429 {
        count: 1,
        retry_after: Duration::from_secs(7),
    });
    s.emu.inject(Fault::Fail503 {
        count: 1,
        retry_after: None,
    });
    let first = s.get("/mailFolders").await?;
    assert_eq!(
        first.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"7"[..])
    );
    expect_error(first, StatusCode::TOO_MANY_REQUESTS, "ApplicationThrottled").await?;
    let second = s.get("/mailFolders").await?;
    assert!(second.headers().get("retry-after").is_none());
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    expect(s.get("/mailFolders").await?, StatusCode::OK).await?;

    s.emu.inject(Fault::Fail503AfterCommit { count: 1 });
    expect(s.get("/mailFolders").await?, StatusCode::OK).await?; // reads are not writes
    let lost = s
        .post_mime("v1.0", "/messages", STANDARD.encode(MIME))
        .await?;
    assert_eq!(lost.status(), StatusCode::SERVICE_UNAVAILABLE);
    let view = s.emu.mailbox(UPN);
    assert_eq!(
        view.items_in("Drafts").len(),
        1,
        "the write was committed before the 503"
    );
    let lookup = "/messages?$filter=internetMessageId%20eq%20'%3Cm1%40example.com%3E'";
    let found = expect(s.get(lookup).await?, StatusCode::OK).await?;
    assert_eq!(
        found["value"].as_array().map(Vec::len),
        Some(1),
        "a client can find it to de-duplicate"
    );
    expect(
        s.post_mime("v1.0", "/messages", STANDARD.encode(MIME))
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn bodies_over_four_megabytes_get_413() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let limit = s.emu.config().max_request_bytes;
    let at_limit = STANDARD.encode(vec![b'a'; limit / 4 * 3]);
    assert_eq!(at_limit.len(), limit);
    let over = format!("{at_limit}AAAA");
    let response = s.post_mime("v1.0", "/messages", over).await?;
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
    )
    .await?;
    assert!(s.emu.mailbox(UPN).items.is_empty());
    Ok(())
}

/// Posts a `$batch` to `version` and returns status and body.
async fn batch(s: &Setup, version: &str, requests: Value) -> anyhow::Result<(StatusCode, Value)> {
    let url = format!("{}/{version}/$batch", s.emu.base_url());
    let response = s
        .http
        .post(url)
        .bearer_auth(&s.token)
        .json(&json!({"requests": requests}))
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

/// The batch response with `id`.
fn by_id<'v>(body: &'v Value, id: &str) -> anyhow::Result<&'v Value> {
    let responses = body["responses"].as_array().context("responses")?;
    responses
        .iter()
        .find(|r| r["id"] == id)
        .with_context(|| format!("no response {id} in {body}"))
}

#[tokio::test]
async fn batch_runs_items_through_the_pipeline_with_depends_on_and_limits() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    let users = format!("/users/{UPN}");
    let json_headers = json!({"Content-Type": "application/json"});
    let requests = json!([
        {"id": "1", "method": "POST", "url": format!("{users}/mailFolders"), "headers": json_headers, "body": {"displayName": "Projects"}},
        {"id": "2", "method": "POST", "url": format!("{users}/mailFolders"), "headers": json_headers, "body": {"displayName": "projects"}, "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": format!("{users}/mailFolders"), "dependsOn": ["2"]},
        {"id": "4", "method": "POST", "url": format!("{users}/messages"), "headers": {"Content-Type": "text/plain"},
         "body": STANDARD.encode(STANDARD.encode(MIME))},
    ]);
    let (status, body) = batch(&s, "v1.0", requests).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(by_id(&body, "1")?["status"], 201);
    assert_eq!(by_id(&body, "2")?["status"], 409);
    assert_eq!(
        by_id(&body, "2")?["body"]["error"]["code"],
        "ErrorFolderExists"
    );
    assert_eq!(by_id(&body, "3")?["status"], 424, "its dependency failed");
    assert_eq!(by_id(&body, "4")?["status"], 201);
    assert_eq!(by_id(&body, "4")?["body"]["isDraft"], true);
    assert_eq!(s.emu.mailbox(UPN).items_in("Drafts").len(), 1);

    s.emu.inject(Fault::Throttle429 {
        count: 1,
        retry_after: Duration::from_secs(9),
    });
    let (_, body) = batch(
        &s,
        "beta",
        json!([{"id": "a", "method": "GET", "url": format!("{users}/mailFolders")}]),
    )
    .await?;
    assert_eq!(by_id(&body, "a")?["status"], 429);
    assert_eq!(by_id(&body, "a")?["headers"]["Retry-After"], "9");

    let get =
        |id: String| json!({"id": id, "method": "GET", "url": format!("{users}/mailFolders")});
    let refused = [
        Value::Array((0..21).map(|i| get(i.to_string())).collect()),
        json!([get("x".into()), get("x".into())]),
        json!([{"id": "b", "method": "POST", "url": format!("{users}/mailFolders"), "body": {"displayName": "x"}}]),
        json!([{"id": "c", "method": "GET", "url": format!("{users}/mailFolders"), "dependsOn": ["nope"]}]),
    ];
    for requests in refused {
        let (status, body) = batch(&s, "v1.0", requests).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn batch_runs_at_most_four_items_at_once() -> anyhow::Result<()> {
    let s = Setup::start(EmulatorConfig::default()).await?;
    s.emu.hold();
    let url = format!("/users/{UPN}/mailFolders");
    let requests: Vec<Value> = (0..6)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": url}))
        .collect();
    let first_four = || s.emu.in_flight(UPN) == 4;
    let (answer, lined_up) = tokio::join!(
        batch(&s, "v1.0", Value::Array(requests)),
        release_when(&s.emu, first_four)
    );
    lined_up?;
    let (status, body) = answer?;
    assert_eq!(status, StatusCode::OK, "{body}");
    for i in 0..6 {
        assert_eq!(by_id(&body, &i.to_string())?["status"], 200, "{body}");
    }
    assert_eq!(
        s.emu.peak_concurrency(UPN),
        4,
        "four at once, never a fifth"
    );
    Ok(())
}
