//! End to end: special folders land in the target's special folders (by SPECIAL-USE or
//! by name, in any language), their subfolders follow, and a folder keeps the target it
//! was given in its first pass even when the target's tree changes later.

use mailhaul_tests::corpus::{self, Corpus, Message};
use mailhaul_tests::harness::{Env, show};

fn take(c: &Corpus, folder: &str, n: usize) -> Vec<Message> {
    c.folder(folder).expect("corpus folder")[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_folders_map_to_the_targets_and_stay_put() -> anyhow::Result<()> {
    let env = Env::new("mapping", &["alice"], "")?;
    let pool = corpus::standard(71, 16);
    let src = Corpus {
        folders: vec![
            ("INBOX".into(), take(&pool, "INBOX", 3)),
            ("Gesendete Elemente".into(), take(&pool, "Sent", 4)),
            ("Gesendete Elemente/2019".into(), take(&pool, "Sent", 2)),
            ("Papierkorb".into(), take(&pool, "Trash", 3)),
            ("Entwürfe".into(), take(&pool, "Drafts", 2)),
            ("Projekte".into(), take(&pool, "Old Projects", 2)),
        ],
    };
    env.seed("alice", &src).await?;
    // The target already has its own Sent and Trash (marked \Sent and \Trash), no Drafts.
    for f in ["Sent", "Trash"] {
        env.target
            .doveadm(&["mailbox", "create", "-u", "alice", f])?;
    }
    env.spawn_worker(&[], &[]);
    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));

    let source = env.source_snapshot("alice").await?.contents();
    let target = env.target_snapshot("alice").await?.contents();
    assert_eq!(
        target["Sent"], source["Gesendete Elemente"],
        "Sent by name -> target's \\Sent"
    );
    assert_eq!(
        target["Sent/2019"], source["Gesendete Elemente/2019"],
        "subfolders follow"
    );
    assert_eq!(target["Trash"], source["Papierkorb"]);
    assert_eq!(
        target["Entwürfe"], source["Entwürfe"],
        "no Drafts on the target: the name stays"
    );
    assert_eq!(target["Projekte"], source["Projekte"]);
    assert_eq!(target["INBOX"], source["INBOX"]);
    assert!(
        !target.contains_key("Gesendete Elemente") && !target.contains_key("Papierkorb"),
        "{:?}",
        target.keys()
    );

    // The target gains a Drafts folder; new drafts still go where the first pass put them.
    env.target
        .doveadm(&["mailbox", "create", "-u", "alice", "Drafts"])?;
    let more = Corpus {
        folders: vec![(
            "Entwürfe".into(),
            take(&corpus::standard(72, 16), "Drafts", 2),
        )],
    };
    corpus::append(
        env.source.imap_port(),
        "alice",
        mailhaul_tests::harness::PASSWORD,
        &more,
    )
    .await?;
    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));
    // The mapping notes say what is applied, not what today's mapping alone would do.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "folder \"Entwürfe\" -> \"Entwürfe\": kept the target folder chosen in an earlier \
             pass (today's mapping gives \"Drafts\")\n"
        ),
        "{stdout}"
    );
    let source = env.source_snapshot("alice").await?.contents();
    let target = env.target_snapshot("alice").await?.contents();
    assert_eq!(
        target["Entwürfe"], source["Entwürfe"],
        "delta lands in the same target folder"
    );
    assert!(
        target.get("Drafts").is_none_or(|d| d.is_empty()),
        "nothing split off into Drafts: {:?}",
        target.get("Drafts")
    );
    Ok(())
}
