//! The ledger's fault rules, on both backends (a real Redis, and the embedded SQLite
//! ledger of a state directory): an expired lease is taken again by its holder while
//! nobody else took it; only a newer taker fences a writer off, and the error says
//! whether that taker still holds the lease; a ledger that lost its data (or is another
//! one) refuses every task planned against the old one; a given-up task's unrecorded
//! messages are counted as failed once; writes retried after a lost reply do not count
//! twice; Redis's persistence is read and judged.

use mailhaul_ledger::{Ledger, LedgerError, RecordEntry, StateDir};
use mailhaul_proto::ledger::{Record, TargetRef};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{MailboxId, MigrationId, TaskId, Uid};
use mailhaul_tests::fixtures::inbox_task;
use mailhaul_tests::kit;
use std::time::Duration;

const MBX: &str = "alice@example.test";

/// One backend under test; `lose` gives a ledger that lost everything (Redis: the
/// namespace's keys deleted, as FLUSHALL would; embedded: a fresh state directory).
struct Backend {
    name: &'static str,
    ledger: Ledger,
    _dirs: Vec<(tempfile::TempDir, StateDir)>,
}

impl Backend {
    async fn lose(&mut self) -> anyhow::Result<()> {
        match &self.ledger {
            Ledger::Redis(_) => flush(&self.ledger).await,
            Ledger::Embedded(_) => {
                let (dir, state) = embedded_dir()?;
                self.ledger = Ledger::open_embedded(&state)?;
                self._dirs.push((dir, state));
                Ok(())
            }
        }
    }
}

fn embedded_dir() -> anyhow::Result<(tempfile::TempDir, StateDir)> {
    let dir = tempfile::tempdir()?;
    let state = StateDir::lock(&dir.path().join("state"))?;
    Ok((dir, state))
}

async fn backends(test: &str) -> anyhow::Result<Vec<Backend>> {
    let (dir, state) = embedded_dir()?;
    Ok(vec![
        Backend {
            name: "redis",
            ledger: Ledger::connect(&kit::shared().redis_url, &kit::unique_namespace(test)).await?,
            _dirs: Vec::new(),
        },
        Backend {
            name: "embedded",
            ledger: Ledger::open_embedded(&state)?,
            _dirs: vec![(dir, state)],
        },
    ])
}

/// Registers a migration with one mailbox and returns a task of its first pass.
async fn task(l: &Ledger, slice: u32) -> anyhow::Result<FolderTask> {
    let mig = MigrationId("m".into());
    let pass = l.begin_pass(&mig, "T", &[MailboxId(MBX.into())]).await?;
    Ok(FolderTask {
        pass,
        slice,
        ledger_epoch: l.epoch(&mig).await?,
        planned: Some("1:10".into()),
        ..inbox_task(
            &mig,
            &MailboxId(MBX.into()),
            TaskId(format!("m/{pass}/0/f/{slice}")),
        )
    })
}

fn entry(uid: u32) -> RecordEntry {
    RecordEntry {
        uid: Uid(uid),
        record: Record {
            target: TargetRef::Uid(Uid(100 + uid)),
            hash: u64::from(uid),
            delivery: None,
        },
        size: 10,
    }
}

async fn record(
    l: &Ledger,
    lease: &mailhaul_ledger::Lease,
    t: &FolderTask,
    uid: u32,
) -> Result<u64, LedgerError> {
    l.record(lease, t.pass, &t.folder.id, t.uid_validity, &[entry(uid)])
        .await
}

/// Deletes every key of the ledger's namespace: what FLUSHALL does to it (the shared
/// Redis of the test process holds other tests' namespaces too).
async fn flush(l: &Ledger) -> anyhow::Result<()> {
    let mut con = redis::Client::open(kit::shared().redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", l.keys().namespace()))
        .query_async(&mut con)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut con).await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_lease_nobody_took_is_taken_again_by_its_writer() -> anyhow::Result<()> {
    for mut b in backends("lease_expired").await? {
        an_expired_lease_nobody_took_is_taken_again_by_its_writer_on(&mut b)
            .await
            .map_err(|e| e.context(b.name))?;
    }
    Ok(())
}

async fn an_expired_lease_nobody_took_is_taken_again_by_its_writer_on(
    b: &mut Backend,
) -> anyhow::Result<()> {
    let l = b.ledger.clone();
    let t = task(&l, 0).await?;
    let lease = l
        .acquire_lease(&t, Duration::from_millis(200))
        .await?
        .expect("free");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired; nobody took it: the write goes through and takes the lease again.
    assert_eq!(record(&l, &lease, &t, 1).await?, 1);
    assert!(
        l.acquire_lease(&t, Duration::from_secs(5)).await?.is_none(),
        "the writer holds the lease again"
    );
    // The renewal does the same after another expiry.
    tokio::time::sleep(Duration::from_millis(400)).await;
    l.renew_lease(&lease).await?;
    assert!(l.acquire_lease(&t, Duration::from_secs(5)).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn only_a_newer_taker_fences_and_the_error_says_whether_it_is_alive() -> anyhow::Result<()> {
    for mut b in backends("lease_taken").await? {
        only_a_newer_taker_fences_and_the_error_says_whether_it_is_alive_on(&mut b)
            .await
            .map_err(|e| e.context(b.name))?;
    }
    Ok(())
}

async fn only_a_newer_taker_fences_and_the_error_says_whether_it_is_alive_on(
    b: &mut Backend,
) -> anyhow::Result<()> {
    let l = b.ledger.clone();
    let t = task(&l, 0).await?;
    let old = l
        .acquire_lease(&t, Duration::from_millis(200))
        .await?
        .expect("free");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = l
        .acquire_lease(&t, Duration::from_secs(30))
        .await?
        .expect("expired, so free");
    assert!(new.token() > old.token());
    match record(&l, &old, &t, 1).await {
        Err(LedgerError::Fenced { live: true }) => {}
        other => panic!("a live newer owner fences the old writer: {other:?}"),
    }
    assert!(matches!(
        l.renew_lease(&old).await,
        Err(LedgerError::Fenced { live: true })
    ));
    assert_eq!(record(&l, &new, &t, 2).await?, 1);
    l.release_lease(&new).await?;
    // The newer owner let go: the old writer still may not write, and learns the
    // newer owner is gone (so it hands the task back instead of dropping it).
    match record(&l, &old, &t, 3).await {
        Err(LedgerError::Fenced { live: false }) => {}
        other => panic!("a newer owner that let go still fences: {other:?}"),
    }
    let recorded = l
        .records_of(
            &t.migration,
            &t.mailbox,
            &t.folder.id,
            t.uid_validity,
            &[Uid(1), Uid(2), Uid(3)],
        )
        .await?;
    assert_eq!(recorded.len(), 1, "only the newer owner's write landed");
    Ok(())
}

#[tokio::test]
async fn a_ledger_that_lost_its_data_refuses_every_task_planned_against_it() -> anyhow::Result<()> {
    for mut b in backends("vanished").await? {
        a_ledger_that_lost_its_data_refuses_every_task_planned_against_it_on(&mut b)
            .await
            .map_err(|e| e.context(b.name))?;
    }
    Ok(())
}

async fn a_ledger_that_lost_its_data_refuses_every_task_planned_against_it_on(
    b: &mut Backend,
) -> anyhow::Result<()> {
    let l = b.ledger.clone();
    let t = task(&l, 0).await?;
    let epoch = t
        .ledger_epoch
        .clone()
        .expect("begin_pass gives the migration an epoch");
    assert_eq!(epoch.len(), 32);
    let again = task(&l, 1).await?;
    assert_eq!(
        again.ledger_epoch.as_deref(),
        Some(epoch.as_str()),
        "the epoch stays"
    );
    let lease = l
        .acquire_lease(&t, Duration::from_secs(30))
        .await?
        .expect("free");
    assert_eq!(record(&l, &lease, &t, 1).await?, 1);

    b.lose().await?;
    let l = b.ledger.clone();
    assert_eq!(l.epoch(&t.migration).await?, None);
    assert!(matches!(
        record(&l, &lease, &t, 2).await,
        Err(LedgerError::Vanished)
    ));
    assert!(matches!(
        l.renew_lease(&lease).await,
        Err(LedgerError::Vanished)
    ));
    assert!(matches!(
        l.acquire_lease(&again, Duration::from_secs(30)).await,
        Err(LedgerError::Vanished)
    ));
    assert!(matches!(l.task_done(&t).await, Err(LedgerError::Vanished)));
    assert!(matches!(
        l.task_failed(&t, "x").await,
        Err(LedgerError::Vanished)
    ));
    assert!(matches!(
        l.fail_unrecorded(&t, &[Uid(5)], "x").await,
        Err(LedgerError::Vanished)
    ));

    // A new ledger (a new first pass) gets a new epoch; the old tasks still refuse.
    let fresh = task(&l, 0).await?;
    assert_ne!(fresh.ledger_epoch.as_deref(), Some(epoch.as_str()));
    assert!(matches!(
        l.acquire_lease(&again, Duration::from_secs(30)).await,
        Err(LedgerError::Vanished)
    ));
    assert!(
        l.acquire_lease(&fresh, Duration::from_secs(30))
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn a_given_up_task_counts_its_unrecorded_messages_failed_once() -> anyhow::Result<()> {
    for mut b in backends("give_up").await? {
        a_given_up_task_counts_its_unrecorded_messages_failed_once_on(&mut b)
            .await
            .map_err(|e| e.context(b.name))?;
    }
    Ok(())
}

async fn a_given_up_task_counts_its_unrecorded_messages_failed_once_on(
    b: &mut Backend,
) -> anyhow::Result<()> {
    let l = b.ledger.clone();
    let t = task(&l, 0).await?;
    let lease = l
        .acquire_lease(&t, Duration::from_secs(30))
        .await?
        .expect("free");
    for uid in [1, 2] {
        record(&l, &lease, &t, uid).await?;
    }
    l.record_failure(
        &lease,
        t.pass,
        &t.folder.id,
        t.uid_validity,
        Uid(3),
        "target refused the message: too big",
    )
    .await?;
    l.release_lease(&lease).await?;
    let uids: Vec<Uid> = (1..=5).map(Uid).collect();
    assert_eq!(
        l.fail_unrecorded(&t, &uids, "its task gave up: down")
            .await?,
        3
    );
    // A redelivered give-up in the same pass counts nothing again.
    assert_eq!(
        l.fail_unrecorded(&t, &uids, "its task gave up: down")
            .await?,
        3
    );
    l.task_failed(&t, "down").await?;
    l.task_failed(&t, "down").await?;
    let failures = l
        .failures(&t.migration, &t.mailbox, &t.folder.id, t.uid_validity)
        .await?;
    let reasons: Vec<(u32, &str)> = failures.iter().map(|(u, r)| (u.0, r.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (3, "target refused the message: too big"),
            (4, "its task gave up: down"),
            (5, "its task gave up: down")
        ],
        "a message that failed on its own keeps its words"
    );
    let p = l.progress(&t.migration, t.pass).await?;
    let m = &p.mailboxes[0];
    assert_eq!((m.copied_msgs, m.failed_msgs, m.tasks_done), (2, 3, 1));
    assert_eq!(p.tasks_done, 1);
    assert_eq!(p.tasks_failed.len(), 1);
    Ok(())
}

#[tokio::test]
async fn claims_retried_after_a_lost_reply_are_the_callers_own() -> anyhow::Result<()> {
    for mut b in backends("claims").await? {
        claims_retried_after_a_lost_reply_are_the_callers_own_on(&mut b)
            .await
            .map_err(|e| e.context(b.name))?;
    }
    Ok(())
}

async fn claims_retried_after_a_lost_reply_are_the_callers_own_on(
    b: &mut Backend,
) -> anyhow::Result<()> {
    let l = b.ledger.clone();
    let t = task(&l, 0).await?;
    let a = l
        .acquire_lease(&t, Duration::from_secs(30))
        .await?
        .expect("free");
    let copy = TargetRef::Uid(Uid(7));
    assert!(l.claim_target(&a, &t.folder.id, &copy).await?);
    assert!(
        l.claim_target(&a, &t.folder.id, &copy).await?,
        "the same claim again (a retry) is granted"
    );
    l.release_lease(&a).await?;
    let other = task(&l, 1).await?;
    let b = l
        .acquire_lease(&other, Duration::from_secs(30))
        .await?
        .expect("free");
    assert!(
        !l.claim_target(&b, &t.folder.id, &copy).await?,
        "another slice cannot take a claimed copy"
    );
    Ok(())
}

#[tokio::test]
async fn persistence_is_read_and_judged() -> anyhow::Result<()> {
    for mut b in backends("persistence").await? {
        persistence_is_read_and_judged_on(&mut b)
            .await
            .map_err(|e| e.context(b.name))?;
    }
    Ok(())
}

async fn persistence_is_read_and_judged_on(b: &mut Backend) -> anyhow::Result<()> {
    let l = b.ledger.clone();
    if matches!(l, Ledger::Embedded(_)) {
        // SQLite commits durably; there is nothing to check.
        assert_eq!(l.persistence().await?, None);
        return Ok(());
    }
    // The kit's shared Redis runs without persistence, on purpose.
    let p = l.persistence().await?.expect("CONFIG GET is allowed here");
    assert_eq!(p.appendonly, "no");
    let warning = p.warning().expect("no AOF is warned about");
    assert!(warning.contains("appendonly yes"), "{warning}");
    Ok(())
}
