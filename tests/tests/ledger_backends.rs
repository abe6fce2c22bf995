//! The ledger's semantics, one test body run against both backends (a real Redis, and
//! the embedded SQLite ledger in a temp state directory): fencing, idempotent records
//! and the counters they move, failures counted once per pass, claims, POP3 ids, folder
//! epochs, task completion, permits, and the embedded ledger's own guarantees (reopened
//! after a crash, its lock).

use mailhaul_ledger::{
    EmbeddedLedger, FolderCounts, Ledger, LedgerError, MailboxProgress, PermitSpec, RecordEntry,
    StateDir,
};
use mailhaul_proto::ledger::{Record, TargetRef};
use mailhaul_proto::task::FolderTask;
use mailhaul_proto::{FolderId, MailboxId, MigrationId, TaskId, Uid, UidValidity};
use mailhaul_tests::fixtures::inbox_task;
use mailhaul_tests::kit;
use std::time::Duration;

/// A fresh ledger of `backend` (and the state directory it lives in, if embedded).
async fn ledger(
    embedded: bool,
    test: &str,
) -> anyhow::Result<(Ledger, Option<tempfile::TempDir>, Option<StateDir>)> {
    if embedded {
        let dir = tempfile::tempdir()?;
        let state = StateDir::lock(dir.path())?;
        Ok((Ledger::open_embedded(&state)?, Some(dir), Some(state)))
    } else {
        let l = Ledger::connect(&kit::shared().redis_url, &kit::unique_namespace(test)).await?;
        Ok((l, None, None))
    }
}

/// A task of `mig`/`mbx` named `id` (without a ledger epoch: not checked here; see
/// `ledger_faults` for the epoch).
fn task_of(mig: &MigrationId, mbx: &MailboxId, id: &TaskId) -> FolderTask {
    inbox_task(mig, mbx, id.clone())
}

fn entry(uid: u32, target: u32, size: u64) -> RecordEntry {
    RecordEntry {
        uid: Uid(uid),
        record: Record {
            target: TargetRef::Uid(Uid(target)),
            hash: u64::from(uid) * 7919,
            delivery: None,
        },
        size,
    }
}

macro_rules! on_both {
    ($($name:ident),*) => {
        $(
            mod $name {
                #[tokio::test]
                async fn redis() -> anyhow::Result<()> { super::$name(false).await }
                #[tokio::test]
                async fn embedded() -> anyhow::Result<()> { super::$name(true).await }
            }
        )*
    };
}

on_both!(
    records_are_fenced_idempotent_and_counted,
    failures_count_once_per_pass,
    claims_ids_and_epochs,
    tasks_and_plans,
    permits_bound_holders
);

async fn records_are_fenced_idempotent_and_counted(embedded: bool) -> anyhow::Result<()> {
    let (l, _dir, _state) = ledger(embedded, "records").await?;
    let (mig, mbx) = (MigrationId("m".into()), MailboxId("a@b".into()));
    let (fid, uv, task) = (
        FolderId("f1".into()),
        UidValidity(7),
        TaskId("m/1/0/f1/0".into()),
    );
    let pass = l.begin_pass(&mig, "T", std::slice::from_ref(&mbx)).await?;
    assert_eq!(pass, 1);
    let ttl = Duration::from_millis(800);
    let lease = l
        .acquire_lease(&task_of(&mig, &mbx, &task), ttl)
        .await?
        .expect("free");
    assert!(
        l.acquire_lease(&task_of(&mig, &mbx, &task), ttl)
            .await?
            .is_none(),
        "a held lease is not handed out twice"
    );
    l.mark_pending(&lease, &fid, uv, &[Uid(1), Uid(2), Uid(3)])
        .await?;
    assert_eq!(l.pending(&mig, &mbx, &fid, uv).await?.len(), 3);
    let n = l
        .record(
            &lease,
            pass,
            &fid,
            uv,
            &[entry(1, 101, 10), entry(2, 102, 20)],
        )
        .await?;
    assert_eq!(n, 2);
    // A redone batch records and counts nothing twice.
    let n = l
        .record(
            &lease,
            pass,
            &fid,
            uv,
            &[entry(2, 102, 20), entry(3, 103, 30)],
        )
        .await?;
    assert_eq!(n, 1, "only uid 3 is new");
    assert!(
        l.pending(&mig, &mbx, &fid, uv).await?.is_empty(),
        "records clear in-flight marks"
    );
    let got = l
        .records_of(&mig, &mbx, &fid, uv, &[Uid(1), Uid(3), Uid(9)])
        .await?;
    assert_eq!(got.len(), 2);
    assert_eq!(got[&Uid(3)], entry(3, 103, 30).record);
    let all = l.all_records(&mig, &mbx, &fid, uv).await?;
    assert_eq!(all.iter().map(|(u, _)| u.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        l.records_of(&mig, &mbx, &fid, UidValidity(8), &[Uid(1)])
            .await?
            .is_empty()
    );
    let p = l.progress(&mig, pass).await?;
    let m = &p.mailboxes[0];
    assert_eq!((m.copied_msgs, m.copied_bytes, m.total_msgs), (3, 60, 3));

    // The lease expires; a successor takes over; the old holder is fenced everywhere
    // (an expired lease that nobody took would be taken again by its holder: see
    // `ledger_faults`).
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let next = l
        .acquire_lease(&task_of(&mig, &mbx, &task), Duration::from_secs(30))
        .await?
        .expect("an expired lease is free");
    assert!(next.token() > lease.token(), "tokens only grow");
    assert!(
        matches!(
            l.renew_lease(&lease).await,
            Err(LedgerError::Fenced { live: true })
        ),
        "a lease a successor took cannot be renewed"
    );
    for r in [
        l.record(&lease, pass, &fid, uv, &[entry(4, 104, 1)])
            .await
            .map(|_| ()),
        l.mark_pending(&lease, &fid, uv, &[Uid(5)]).await,
        l.record_failure(&lease, pass, &fid, uv, Uid(6), "x").await,
        l.claim_target(&lease, &fid, &TargetRef::Uid(Uid(9)))
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(r, Err(LedgerError::Fenced { live: true })),
            "{r:?}"
        );
    }
    assert_eq!(
        l.all_records(&mig, &mbx, &fid, uv).await?.len(),
        3,
        "a fenced write changed nothing"
    );
    assert!(l.pending(&mig, &mbx, &fid, uv).await?.is_empty());
    l.renew_lease(&next).await?;
    // Releasing with a stale token does not free the successor's lease.
    l.release_lease(&lease).await?;
    assert!(
        l.acquire_lease(&task_of(&mig, &mbx, &task), ttl)
            .await?
            .is_none()
    );
    l.release_lease(&next).await?;
    assert!(
        l.acquire_lease(&task_of(&mig, &mbx, &task), ttl)
            .await?
            .is_some()
    );
    Ok(())
}

async fn failures_count_once_per_pass(embedded: bool) -> anyhow::Result<()> {
    let (l, _dir, _state) = ledger(embedded, "failures").await?;
    let (mig, mbx) = (MigrationId("m".into()), MailboxId("a@b".into()));
    let (fid, uv) = (FolderId("f".into()), UidValidity(1));
    let lease_for = |t: &str| TaskId(t.into());
    let p1 = l.begin_pass(&mig, "T", std::slice::from_ref(&mbx)).await?;
    let lease = l
        .acquire_lease(
            &task_of(&mig, &mbx, &lease_for("a")),
            Duration::from_secs(30),
        )
        .await?
        .expect("free");
    l.mark_pending(&lease, &fid, uv, &[Uid(5)]).await?;
    l.record_failure(&lease, p1, &fid, uv, Uid(5), "too big")
        .await?;
    l.record_failure(&lease, p1, &fid, uv, Uid(5), "too big")
        .await?;
    assert!(l.pending(&mig, &mbx, &fid, uv).await?.is_empty());
    let m = l.progress(&mig, p1).await?.mailboxes[0].clone();
    assert_eq!(
        m.failed_msgs, 1,
        "a redelivered slice does not count it again"
    );
    let p2 = l.begin_pass(&mig, "T", std::slice::from_ref(&mbx)).await?;
    l.record_failure(&lease, p2, &fid, uv, Uid(5), "still too big")
        .await?;
    assert_eq!(
        l.progress(&mig, p2).await?.mailboxes[0].failed_msgs,
        1,
        "counted in each pass that tried it"
    );
    assert_eq!(
        l.failures(&mig, &mbx, &fid, uv)
            .await?
            .get(&Uid(5))
            .map(String::as_str),
        Some("still too big"),
        "the reason as users read it"
    );
    // Recording it later (a retry that landed) clears the failure.
    l.record(&lease, p2, &fid, uv, &[entry(5, 55, 9)]).await?;
    assert!(l.failures(&mig, &mbx, &fid, uv).await?.is_empty());
    Ok(())
}

async fn claims_ids_and_epochs(embedded: bool) -> anyhow::Result<()> {
    let (l, _dir, _state) = ledger(embedded, "claims").await?;
    let (mig, mbx) = (MigrationId("m".into()), MailboxId("a@b".into()));
    let fid = FolderId("f".into());
    let lease = l
        .acquire_lease(
            &task_of(&mig, &mbx, &TaskId("t".into())),
            Duration::from_secs(30),
        )
        .await?
        .expect("free");
    let item = TargetRef::Item("AAMk-1".into());
    assert!(l.claim_target(&lease, &fid, &item).await?);
    assert!(
        l.claim_target(&lease, &fid, &item).await?,
        "the same lease claiming again (a retry after a lost reply) is granted"
    );
    let other = l
        .acquire_lease(
            &task_of(&mig, &mbx, &TaskId("t2".into())),
            Duration::from_secs(30),
        )
        .await?
        .expect("free");
    assert!(
        !l.claim_target(&other, &fid, &item).await?,
        "a copy is claimed once"
    );
    assert!(l.claimed(&mig, &mbx, &fid).await?.contains(&item));

    let ids = l
        .assign_ids(&mig, &mbx, &fid, &["x".into(), "y".into()])
        .await?;
    assert_eq!(ids, [Uid(1), Uid(2)]);
    let ids = l
        .assign_ids(&mig, &mbx, &fid, &["z".into(), "x".into()])
        .await?;
    assert_eq!(
        ids,
        [Uid(3), Uid(1)],
        "a UIDL keeps its id; new ones count up"
    );

    let meta = l
        .observe_folder(&mig, &mbx, &fid, UidValidity(10), "INBOX", "INBOX")
        .await?;
    assert_eq!(
        (meta.voided.len(), meta.target_name.as_deref()),
        (0, Some("INBOX"))
    );
    let meta = l
        .observe_folder(&mig, &mbx, &fid, UidValidity(11), "INBOX", "Other")
        .await?;
    assert_eq!(
        meta.voided,
        [UidValidity(10)],
        "a new UIDVALIDITY voids the old records"
    );
    assert_eq!(
        meta.target_name.as_deref(),
        Some("INBOX"),
        "the first target stays"
    );
    let stored = l.folder_meta(&mig, &mbx, &fid).await?.expect("known");
    assert_eq!(stored, meta);
    assert!(
        l.folder_meta(&mig, &mbx, &FolderId("nope".into()))
            .await?
            .is_none()
    );
    l.record_folder_counts(
        &mig,
        &mbx,
        &fid,
        FolderCounts {
            messages: 4,
            bytes: 40,
            filtered: 1,
        },
    )
    .await?;
    let reports = l.folder_reports(&mig, &mbx).await?;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (
            reports[0].name.as_str(),
            reports[0].target.as_str(),
            reports[0].counts.messages
        ),
        ("INBOX", "INBOX", 4)
    );
    Ok(())
}

async fn tasks_and_plans(embedded: bool) -> anyhow::Result<()> {
    let (l, _dir, _state) = ledger(embedded, "tasks").await?;
    let mig = MigrationId("m".into());
    let boxes = [MailboxId("b@x".into()), MailboxId("a@x".into())];
    assert_eq!(l.latest_pass(&mig).await?, None);
    let pass = l.begin_pass(&mig, "T", &boxes).await?;
    assert_eq!(l.latest_pass(&mig).await?, Some(pass));
    let p = l.progress(&mig, pass).await?;
    assert!(
        !p.finished() && p.tasks_total == u64::MAX,
        "unknown until planned"
    );
    l.set_mailbox_plan(
        &mig,
        pass,
        &MailboxProgress {
            mailbox: boxes[0].clone(),
            planned_msgs: 5,
            tasks: 2,
            error: Some("login refused".into()),
            ..Default::default()
        },
    )
    .await?;
    l.set_pass_tasks(&mig, pass, 2).await?;
    let t = FolderTask {
        pass,
        ..task_of(&mig, &boxes[0], &TaskId("t1".into()))
    };
    l.task_done(&t).await?;
    l.task_done(&t).await?;
    let t2 = FolderTask {
        pass,
        ..task_of(&mig, &boxes[0], &TaskId("t2".into()))
    };
    l.task_failed(&t2, "gave up").await?;
    let p = l.progress(&mig, pass).await?;
    assert!(p.finished());
    assert_eq!(p.tasks_failed, [("t2".to_owned(), "gave up".to_owned())]);
    assert_eq!(
        p.mailboxes
            .iter()
            .map(|m| m.mailbox.as_str())
            .collect::<Vec<_>>(),
        ["b@x", "a@x"],
        "manifest order"
    );
    let b = &p.mailboxes[0];
    assert_eq!((b.planned_msgs, b.tasks, b.tasks_done), (5, 2, 2));
    assert_eq!(b.error.as_deref(), Some("login refused"));
    Ok(())
}

async fn permits_bound_holders(embedded: bool) -> anyhow::Result<()> {
    let (l, _dir, _state) = ledger(embedded, "permits").await?;
    let spec = PermitSpec {
        server: "imap:993".into(),
        user: "u".into(),
        limit: 2,
    };
    let a = l
        .acquire_permit(&spec, Duration::from_secs(1))
        .await?
        .expect("1st");
    let b = l
        .acquire_permit(&spec, Duration::from_secs(1))
        .await?
        .expect("2nd");
    assert!(
        l.acquire_permit(&spec, Duration::from_millis(200))
            .await?
            .is_none(),
        "at most 2"
    );
    assert_eq!(l.permits_held(&spec).await?, 2);
    l.release_permit(a).await?;
    let c = l.acquire_permit(&spec, Duration::from_secs(1)).await?;
    assert!(c.is_some(), "a released permit is free again");
    drop((b, c));
    Ok(())
}

#[tokio::test]
async fn the_embedded_ledger_survives_reopening_and_refuses_a_second_process() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (mig, mbx) = (MigrationId("m".into()), MailboxId("a@b".into()));
    let (fid, uv) = (FolderId("f".into()), UidValidity(3));
    {
        let state = StateDir::lock(dir.path())?;
        let l = Ledger::open_embedded(&state)?;
        let pass = l.begin_pass(&mig, "T", std::slice::from_ref(&mbx)).await?;
        let lease = l
            .acquire_lease(
                &task_of(&mig, &mbx, &TaskId("t".into())),
                Duration::from_secs(300),
            )
            .await?
            .expect("free");
        l.record(&lease, pass, &fid, uv, &[entry(1, 11, 5)]).await?;
        // A reader sees committed writes while the writer holds the lock.
        let r = EmbeddedLedger::open_read_only(dir.path())?;
        assert_eq!(
            Ledger::Embedded(r)
                .all_records(&mig, &mbx, &fid, uv)
                .await?
                .len(),
            1
        );
        let err = StateDir::lock(dir.path()).expect_err("locked");
        assert!(
            err.to_string()
                .contains("in use by another mailhaul process"),
            "{err}"
        );
        // Dropped without releasing its lease, as a killed run would leave it.
    }
    let state = StateDir::lock(dir.path())?;
    let l = Ledger::open_embedded(&state)?;
    assert_eq!(
        l.all_records(&mig, &mbx, &fid, uv).await?.len(),
        1,
        "durable"
    );
    assert!(
        l.acquire_lease(
            &task_of(&mig, &mbx, &TaskId("t".into())),
            Duration::from_secs(30)
        )
        .await?
        .is_some(),
        "the dead run's lease does not block the next run"
    );
    assert_eq!(l.begin_pass(&mig, "T", &[mbx]).await?, 2);
    let other = l.begin_pass(&MigrationId("other".into()), "O", &[]).await;
    assert!(
        other.is_err_and(|e| e.to_string().contains("holds migration m")),
        "one migration per state directory"
    );
    Ok(())
}
