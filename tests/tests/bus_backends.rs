//! The bus's semantics, one test body against both backends (a real RabbitMQ, and the
//! embedded queue in a temp state directory): order, prefetch, ack, requeue, delayed
//! retries, dead letters, queue counts; and for the embedded queue what RabbitMQ does by
//! itself: redelivery of what a dead run held, and the delivery limit.

use mailhaul_bus::{Bus, DELIVERY_LIMIT, EmbeddedBus, TaskDelivery, TaskStream};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{MailboxId, MigrationId, TaskId};
use mailhaul_tests::fixtures::inbox_task;
use mailhaul_tests::kit;
use std::time::{Duration, Instant};

fn task(n: u32) -> FolderTask {
    FolderTask {
        slice: n,
        slices: 10,
        ..inbox_task(
            &MigrationId("m".into()),
            &MailboxId("a@b".into()),
            TaskId(format!("m/1/0/f/{n}")),
        )
    }
}

async fn bus(embedded: bool, dir: &std::path::Path) -> anyhow::Result<Bus> {
    if embedded {
        Ok(Bus::Embedded(EmbeddedBus::open(dir)?))
    } else {
        let ns = kit::unique_namespace("bus");
        Ok(Bus::connect(&kit::shared().amqp_url, &ns, "bus-test").await?)
    }
}

/// The next delivery within `within`, if any.
async fn next(s: &mut TaskStream, within: Duration) -> Option<TaskDelivery> {
    match tokio::time::timeout(within, s.next()).await {
        Ok(Some(d)) => Some(d.expect("a delivery")),
        _ => None,
    }
}

fn id(d: &TaskDelivery) -> String {
    d.task.as_ref().expect("a readable task").task_id.0.clone()
}

macro_rules! on_both {
    ($($name:ident),*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rabbitmq() -> anyhow::Result<()> { super::$name(false).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() -> anyhow::Result<()> { super::$name(true).await }
            }
        )*
    };
}

on_both!(
    order_prefetch_ack_and_requeue,
    delayed_retries_and_dead_letters
);

async fn order_prefetch_ack_and_requeue(embedded: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let b = bus(embedded, dir.path()).await?;
    b.publish(&[task(0), task(1), task(2)]).await?;
    let mut s = b.consume(2, "t").await?;
    let long = Duration::from_secs(5);
    let d0 = next(&mut s, long).await.expect("first");
    let d1 = next(&mut s, long).await.expect("second");
    assert_eq!(
        (id(&d0), id(&d1)),
        ("m/1/0/f/0".into(), "m/1/0/f/1".into()),
        "in order"
    );
    assert!(!d0.redelivered);
    assert!(
        next(&mut s, Duration::from_millis(500)).await.is_none(),
        "prefetch 2: no third delivery while two are unanswered"
    );
    assert_eq!(b.queue_stats().await?.consumers, 1);
    d0.ack().await?;
    let d2 = next(&mut s, long).await.expect("third, once one was acked");
    assert_eq!(id(&d2), "m/1/0/f/2");
    d1.requeue().await?;
    let again = next(&mut s, long)
        .await
        .expect("the requeued task comes back");
    assert_eq!(id(&again), "m/1/0/f/1");
    assert!(again.redelivered, "marked as delivered before");
    again.ack().await?;
    d2.ack().await?;
    assert!(
        next(&mut s, Duration::from_millis(300)).await.is_none(),
        "acked tasks are gone"
    );
    s.cancel().await;
    b.close().await;
    Ok(())
}

async fn delayed_retries_and_dead_letters(embedded: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let b = bus(embedded, dir.path()).await?;
    let mut s = b.consume(4, "t").await?;
    let started = Instant::now();
    b.retry_later(&task(7), Duration::from_millis(300)).await?;
    assert_eq!(b.queue_stats().await?.retrying, 1, "waiting out its tier");
    let d = next(&mut s, Duration::from_secs(10))
        .await
        .expect("retried");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the smallest tier (1 s) that covers 300 ms: came after {:?}",
        started.elapsed()
    );
    assert_eq!(id(&d), "m/1/0/f/7");
    d.ack().await?;
    b.dead_letter(&task(8).to_json(), "target refused the folder")
        .await?;
    for _ in 0..2 {
        let dead = b.peek_dead(10).await?;
        assert_eq!(dead.len(), 1, "peeking removes nothing");
        assert_eq!(dead[0].1, "target refused the folder");
        assert_eq!(FolderTask::from_json(&dead[0].0)?.task_id, task(8).task_id);
    }
    s.cancel().await;
    b.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_queue_hands_back_what_a_dead_run_held_and_enforces_the_delivery_limit()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let b = EmbeddedBus::open(dir.path())?;
        Bus::Embedded(b.clone())
            .publish(&[task(0), task(1)])
            .await?;
    }
    // Each round: a run takes task 0 and dies holding it (no answer, no drop: the
    // process is gone); the next run's queue hands it out again, counted.
    for round in 0..=DELIVERY_LIMIT {
        let b = Bus::Embedded(EmbeddedBus::open(dir.path())?);
        let mut s = b.consume(1, "t").await?;
        let d = next(&mut s, Duration::from_secs(5))
            .await
            .expect("a delivery");
        assert_eq!(id(&d), "m/1/0/f/0", "round {round}");
        assert_eq!(d.delivery_count, round as u32);
        assert_eq!(d.redelivered, round > 0);
        std::mem::forget(d);
        std::mem::forget(s);
    }
    let b = Bus::Embedded(EmbeddedBus::open(dir.path())?);
    let dead = b.peek_dead(10).await?;
    assert_eq!(dead.len(), 1, "task 0 went past the delivery limit");
    assert!(
        dead[0].1.contains("handed out too many times"),
        "{}",
        dead[0].1
    );
    let mut s = b.consume(1, "t").await?;
    let d = next(&mut s, Duration::from_secs(5))
        .await
        .expect("task 1 is still there");
    assert_eq!(id(&d), "m/1/0/f/1");
    // A delivery dropped unanswered in a live run (its slot died) comes back at once.
    drop(d);
    let d = next(&mut s, Duration::from_secs(5))
        .await
        .expect("handed back");
    assert_eq!((id(&d), d.delivery_count), ("m/1/0/f/1".into(), 1));
    d.ack().await?;
    if let Bus::Embedded(q) = &b {
        assert_eq!(q.outstanding().await?, 0);
    }
    Ok(())
}
