//! End to end: a source folder whose UIDVALIDITY changed after it was migrated is
//! re-matched against the copies already on the target, not copied a second time; mail
//! that arrived with the change is still copied. On both backends.

use mailhaul_tests::both_backends;
use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::harness::{Backend, Env, show};
use mailhaul_tests::snapshot::assert_same;

both_backends!(changed_uidvalidity_is_rematched_not_duplicated, rematch);

async fn rematch(backend: Backend) -> anyhow::Result<()> {
    let env = Env::new("rematch", &["alice"], "slice_messages = 30")?.on(backend);
    let c = corpus::standard(31, 16);
    env.seed("alice", &c).await?;
    env.workers(1, &["--concurrency", "2"]);
    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));
    assert_same(
        &env.source_snapshot("alice").await?,
        &env.target_snapshot("alice").await?,
    );

    // The source server renumbers two folders (as after a restore or a server move).
    for folder in ["INBOX", "Archive/2023"] {
        let before =
            env.source
                .doveadm(&["mailbox", "status", "-u", "alice", "uidvalidity", folder])?;
        env.source.doveadm(&[
            "mailbox",
            "update",
            "--uid-validity",
            "424242",
            "-u",
            "alice",
            folder,
        ])?;
        let after =
            env.source
                .doveadm(&["mailbox", "status", "-u", "alice", "uidvalidity", folder])?;
        assert_ne!(before.trim(), after.trim(), "{folder}: UIDVALIDITY changed");
    }
    // And new mail arrives in one of them.
    let fresh = corpus::standard(77, 16);
    let delta = Corpus {
        folders: vec![(
            "INBOX".into(),
            fresh.folder("Sent").expect("Sent")[..4].to_vec(),
        )],
    };
    env.seed("alice", &delta).await?;

    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));
    let source = env.source_snapshot("alice").await?;
    let target = env.target_snapshot("alice").await?;
    assert_same(&source, &target);
    assert_eq!(
        target.message_count(),
        c.message_count() + 4,
        "no message copied twice"
    );
    // The renumbered folders were matched to the copies already there, every message of
    // them, as the workers' slice lines say (`recovered=N`).
    let log = match backend {
        Backend::Distributed => std::fs::read_to_string(env.dir().join("worker-0.log"))?,
        Backend::Embedded => String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let recovered: u64 = log
        .split("recovered=")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let renumbered = ["INBOX", "Archive/2023"]
        .iter()
        .map(|f| c.folder(f).expect("corpus folder").len() as u64)
        .sum::<u64>();
    assert_eq!(
        recovered,
        renumbered,
        "{}\n{}",
        env.worker_logs(),
        show(&out)
    );
    Ok(())
}
