//! End to end: traces. The coordinator and a worker export OTLP/HTTP to the kit's
//! receiver; one trace runs from the `migration` span through the AMQP headers to every
//! `task` span, with `batch` spans under each task and `upload` spans under each batch;
//! a failed task carries an error status and an `exception` event.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Env, PASSWORD, run_with_timeout, show};
use mailhaul_tests::kit::otlp::{OtlpReceiver, ReceivedSpan};
use std::collections::{HashMap, HashSet};
use std::process::Output;
use std::time::Duration;

const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// `mailhaul migrate` with trace export on.
fn migrate_traced(env: &Env, endpoint: &str) -> Output {
    let mut c = env.command("mailhaul");
    c.arg("migrate")
        .arg(&env.manifest)
        .env(ENDPOINT_VAR, endpoint);
    run_with_timeout(c, Duration::from_secs(600))
}

fn named<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect()
}

/// Stops the worker (SIGTERM: drain, then flush its spans) and returns what arrived.
async fn collect(env: &Env, worker: u32, receiver: &OtlpReceiver) -> Vec<ReceivedSpan> {
    let status = env.signal_worker(worker, nix::sys::signal::Signal::SIGTERM);
    assert!(
        status.success(),
        "worker drained cleanly: {status}\n{}",
        env.worker_logs()
    );
    // Both processes flushed before exiting; allow the last request to land.
    receiver
        .wait_for(Duration::from_secs(5), |s| {
            s.iter().any(|s| s.service == "mailhaul-coordinator")
        })
        .await
}

fn assert_no_secret(spans: &[ReceivedSpan], secret: &str) {
    for s in spans {
        for (k, v) in &s.attributes {
            assert!(
                !v.contains(secret),
                "{} span attribute {k} leaks a secret",
                s.name
            );
        }
        assert!(
            !s.status_message.contains(secret),
            "{} status leaks a secret",
            s.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_migration_to_tasks_batches_and_uploads() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let endpoint = receiver.endpoint();
    let env = Env::new("traces", &["alice"], "slice_messages = 20")?;
    let c = corpus::standard(51, 1);
    env.seed("alice", &c).await?;
    let worker = env.spawn_worker(
        &["--concurrency", "2", "--batch-messages", "8"],
        &[(ENDPOINT_VAR, endpoint.as_str())],
    );
    let out = migrate_traced(&env, &endpoint);
    assert!(
        out.status.success(),
        "{}\n{}",
        show(&out),
        env.worker_logs()
    );
    let progress = env.ledger().await?.progress(&env.migration, 1).await?;
    let spans = collect(&env, worker, &receiver).await;

    let migrations = named(&spans, "mailhaul-coordinator", "migration");
    assert_eq!(migrations.len(), 1, "one migration span: {spans:#?}");
    let mig = migrations[0];
    assert_eq!(mig.parent_span_id, "", "the migration span is the root");
    assert_eq!(mig.attr("migration"), Some(env.migration.as_str()));
    assert!(!mig.error, "{mig:?}");

    let tasks = named(&spans, "mailhaul-worker", "task");
    let task_ids: HashSet<&str> = tasks.iter().filter_map(|t| t.attr("task_id")).collect();
    assert_eq!(
        task_ids.len() as u64,
        progress.tasks_total,
        "a task span for every task: {tasks:#?}"
    );
    assert!(progress.tasks_total > 1, "the folders were sliced");
    let by_id: HashMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for t in &tasks {
        assert_eq!(
            t.trace_id, mig.trace_id,
            "the task continues the migration's trace: {t:?}"
        );
        // Published by the migration, or republished by an earlier run of the same task.
        let parent = by_id.get(t.parent_span_id.as_str());
        let ok = t.parent_span_id == mig.span_id
            || parent.is_some_and(|p| p.name == "task" && p.attr("task_id") == t.attr("task_id"));
        assert!(ok, "task parented on its publisher: {t:?}");
        assert!(!t.error, "{t:?}");
        assert_eq!(t.attr("outcome"), Some("done"), "{t:?}");
    }

    let batches = named(&spans, "mailhaul-worker", "batch");
    assert!(!batches.is_empty(), "batch spans");
    let mut batched = 0u64;
    for b in &batches {
        let parent = by_id
            .get(b.parent_span_id.as_str())
            .unwrap_or_else(|| panic!("batch parent exported: {b:?}"));
        assert_eq!(parent.name, "task", "{b:?}");
        assert_eq!(parent.attr("task_id"), b.attr("task_id"), "{b:?}");
        assert_eq!(b.trace_id, mig.trace_id);
        batched += b.attr("messages").unwrap_or("0").parse::<u64>()?;
    }
    assert_eq!(
        batched,
        c.message_count() as u64,
        "every message went through a batch"
    );

    let uploads = named(&spans, "mailhaul-worker", "upload");
    assert!(!uploads.is_empty(), "upload spans");
    for u in &uploads {
        let batch = by_id
            .get(u.parent_span_id.as_str())
            .unwrap_or_else(|| panic!("upload parent exported: {u:?}"));
        assert_eq!(batch.name, "batch", "an upload is part of a batch: {u:?}");
        assert_eq!(batch.attr("task_id"), u.attr("task_id"), "{u:?}");
        assert_eq!(u.attr("target"), Some("imap"), "{u:?}");
        assert!(!u.error, "{u:?}");
    }
    assert_no_secret(&spans, PASSWORD);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_records_its_error_on_the_span() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let endpoint = receiver.endpoint();
    let env = Env::new("traces_err", &["alice"], "")?;
    env.seed("alice", &corpus::standard(52, 1)).await?;
    // The worker's copy of the target password is wrong: every task fails for good.
    let wrong = "not-the-Pa55word";
    let worker = env.spawn_worker(
        &[],
        &[(ENDPOINT_VAR, endpoint.as_str()), ("MH_TARGET_PW", wrong)],
    );
    let out = migrate_traced(&env, &endpoint);
    assert_eq!(
        out.status.code(),
        Some(1),
        "failures give exit 1:\n{}",
        show(&out)
    );
    let spans = collect(&env, worker, &receiver).await;

    let tasks = named(&spans, "mailhaul-worker", "task");
    assert!(!tasks.is_empty(), "task spans: {spans:#?}");
    for t in &tasks {
        assert!(t.error, "error status on the task span: {t:?}");
        assert!(
            t.events.iter().any(|e| e == "exception"),
            "an exception event: {t:?}"
        );
        assert!(
            t.status_message.to_lowercase().contains("target"),
            "the status says what failed: {t:?}"
        );
        assert_eq!(t.attr("outcome"), Some("failed"), "{t:?}");
    }
    assert_no_secret(&spans, wrong);
    assert_no_secret(&spans, PASSWORD);
    Ok(())
}
