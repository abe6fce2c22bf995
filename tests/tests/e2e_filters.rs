//! End to end: folder selection by glob and regex, a date range, a size cap, skip by
//! flag and a rename rule, set for the tenant and overridden for one mailbox. Exactly
//! the messages the filters keep arrive, in the renamed folders, and a second pass
//! copies nothing. On both backends.

use mailhaul_tests::both_backends;
use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Backend, Env, show};
use mailhaul_tests::snapshot::{MailboxSnapshot, MessageSnapshot};
use std::collections::BTreeMap;

/// What the filters keep of a source snapshot, keyed by target folder.
fn expected(
    src: &MailboxSnapshot,
    since: &str,
    max: usize,
    skip_deleted: bool,
) -> BTreeMap<String, Vec<String>> {
    let since = chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d").expect("date");
    let mut out = BTreeMap::new();
    for (folder, msgs) in &src.folders {
        if folder == "Trash" || folder.starts_with("Archive/2023") {
            continue; // exclude = ["Trash"], exclude_regex = ["^Archive/2023"]
        }
        let target = folder.replacen("Old Projects", "Projects (old)", 1);
        let keep: Vec<String> = msgs
            .iter()
            .filter(|m: &&MessageSnapshot| {
                m.internal_date.with_timezone(&chrono::Utc).date_naive() >= since
                    && m.size <= max
                    && !(skip_deleted && m.flags.contains("\\Deleted"))
            })
            .map(|m| m.sha256.clone())
            .collect();
        let mut keep = keep;
        keep.sort();
        out.insert(target, keep);
    }
    out
}

both_backends!(filters_and_renames_select_exactly_what_they_say, filters);

async fn filters(backend: Backend) -> anyhow::Result<()> {
    let options = r#"exclude = ["Trash"]
exclude_regex = ["^Archive/2023"]
since = "2005-01-01"
max_message_size = "1MB"
skip_flags = ["\\Deleted"]
[[options.rename]]
from = "^Old Projects$"
to = "Projects (old)"
"#;
    let env = Env::new("filters", &["alice", "bob"], options)?.on(backend);
    // bob keeps deleted messages and everything since 1990.
    let text = std::fs::read_to_string(&env.manifest)?.replacen(
        "target_username = \"bob\"\n",
        "target_username = \"bob\"\noptions = { since = \"1990-01-01\", skip_flags = [] }\n",
        1,
    );
    std::fs::write(&env.manifest, text)?;
    for (i, u) in ["alice", "bob"].iter().enumerate() {
        env.seed(u, &corpus::standard(101 + i as u64, 2)).await?;
    }
    env.workers(1, &["--concurrency", "2"]);
    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));

    for (u, since, skip_deleted) in [("alice", "2005-01-01", true), ("bob", "1990-01-01", false)] {
        let want = expected(
            &env.source_snapshot(u).await?,
            since,
            1_000_000,
            skip_deleted,
        );
        let got = env.target_snapshot(u).await?.contents();
        let got: BTreeMap<String, Vec<String>> =
            got.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let want: BTreeMap<String, Vec<String>> =
            want.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{u}: folders"
        );
        assert_eq!(got, want, "{u}: exactly what the filters keep");
        assert!(
            got.contains_key("Projects (old)") && !got.contains_key("Old Projects"),
            "{u}: renamed"
        );
    }
    // Filtered messages are left out again, not retried: a second pass copies nothing.
    let before = env.target_snapshot("alice").await?;
    let out = env.migrate();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(env.target_snapshot("alice").await?, before);
    let p = env.ledger().await?.progress(&env.migration, 2).await?;
    assert_eq!(p.tasks_total, 0, "nothing left to do");
    Ok(())
}
