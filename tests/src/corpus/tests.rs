//! Checks that the corpora hold what their docs promise.

use std::collections::BTreeSet;

use super::*;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn standard_is_deterministic_and_seed_dependent() {
    let a = standard(1, 32);
    assert_eq!(a, standard(1, 32));
    assert_ne!(a, standard(2, 32));
}

#[test]
fn standard_has_every_edge_case() {
    let c = standard(1, 16);
    let n = c.message_count();
    assert!((150..=300).contains(&n), "{n} messages");
    for path in [
        "INBOX",
        "Sent",
        "Drafts",
        "Trash",
        "Junk",
        "Archive/2023/Q1",
        "Отправленные",
        "Entwürfe/Ärger",
        "日本語",
        "R&D",
        "Tom & Jerry",
        "Old Projects",
    ] {
        assert!(c.folder(path).is_some(), "folder {path} missing");
    }
    assert_eq!(c.folder("Junk").map(<[Message]>::len), Some(0));
    // Parents come before children.
    for (i, (path, _)) in c.folders.iter().enumerate() {
        if let Some((parent, _)) = path.rsplit_once('/') {
            let p = c.folders.iter().position(|(q, _)| q == parent);
            assert!(
                p.is_some_and(|p| p < i),
                "parent of {path} missing or later"
            );
        }
    }

    let all: Vec<&Message> = c.folders.iter().flat_map(|(_, m)| m).collect();
    let flags: BTreeSet<&str> = all
        .iter()
        .flat_map(|m| m.flags.iter().map(String::as_str))
        .collect();
    for f in [
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Deleted",
        "\\Draft",
        "$Forwarded",
        "$Label1",
        "Project_X",
    ] {
        assert!(flags.contains(f), "flag {f} never used");
    }
    let years: BTreeSet<i32> = all
        .iter()
        .map(|m| chrono::Datelike::year(&m.internal_date))
        .collect();
    assert!(years.contains(&1998) && years.contains(&2026), "{years:?}");
    let offsets: BTreeSet<i32> = all
        .iter()
        .map(|m| m.internal_date.offset().local_minus_utc())
        .collect();
    assert!(offsets.len() >= 5, "{offsets:?}");

    for m in &all {
        // CRLF only: every LF follows a CR.
        assert!(
            m.body
                .windows(2)
                .filter(|w| w[1] == b'\n')
                .all(|w| w[0] == b'\r'),
            "bare LF"
        );
        assert!(m.body.ends_with(b"\r\n"));
    }
    let inbox = c.folder("INBOX").expect("INBOX");
    let without_id = inbox
        .iter()
        .filter(|m| !contains(&m.body, b"\r\nMessage-ID:"))
        .count();
    assert!(without_id >= 3, "{without_id} without Message-ID");
    let exact_dups = inbox
        .iter()
        .enumerate()
        .filter(|(i, m)| inbox[..*i].contains(m))
        .count();
    assert!(exact_dups >= 1, "no exact duplicate");
    let ids: Vec<&[u8]> = inbox
        .iter()
        .filter_map(|m| {
            m.body
                .split(|&b| b == b'\n')
                .find(|l| l.starts_with(b"Message-ID:"))
        })
        .collect();
    let same_id_different_body = inbox.iter().enumerate().any(|(i, a)| {
        inbox[i + 1..]
            .iter()
            .any(|b| a.body != b.body && ids_equal(a, b))
    });
    assert!(
        same_id_different_body,
        "no two different messages with one Message-ID ({} ids)",
        ids.len()
    );
    assert!(
        all.iter().any(|m| contains(&m.body, b"\r\n.\r\n")),
        "no lone-dot line"
    );
    assert!(
        all.iter().any(|m| contains(&m.body, b"\r\nFrom ")),
        "no From line"
    );
    assert!(
        all.iter()
            .any(|m| contains(&m.body, b"Content-Transfer-Encoding: 8bit") && !m.body.is_ascii())
    );
    assert!(
        all.iter()
            .any(|m| contains(&m.body, b"Content-Transfer-Encoding: base64"))
    );
    let big: Vec<usize> = all
        .iter()
        .map(|m| m.body.len())
        .filter(|&l| l > 100_000)
        .collect();
    assert!(big.len() >= 3, "{big:?}");
}

fn ids_equal(a: &Message, b: &Message) -> bool {
    let id = |m: &Message| {
        m.body
            .split(|&x| x == b'\n')
            .find(|l| l.starts_with(b"Message-ID:"))
            .map(<[u8]>::to_vec)
    };
    id(a).is_some() && id(a) == id(b)
}

#[test]
fn scale_shrinks_only_the_big_attachments() {
    let full = standard(3, 1);
    let small = standard(3, 8);
    assert_eq!(full.message_count(), small.message_count());
    let max = |c: &Corpus| {
        c.folders
            .iter()
            .flat_map(|(_, m)| m)
            .map(|m| m.body.len())
            .max()
            .unwrap_or(0)
    };
    assert!(
        (6_000_000..7_000_000).contains(&max(&full)),
        "{}",
        max(&full)
    );
    assert!((700_000..900_000).contains(&max(&small)), "{}", max(&small));
}

#[test]
fn bench_small_matches_its_profile() {
    let start = std::time::Instant::now();
    let boxes: Vec<Corpus> = (0..Profile::Small.mailboxes())
        .map(|i| bench(Profile::Small, i))
        .collect();
    let elapsed = start.elapsed();
    assert_ne!(boxes[0], boxes[1]);
    assert_eq!(boxes[0], bench(Profile::Small, 0));
    let messages: usize = boxes.iter().map(Corpus::message_count).sum();
    let bytes: u64 = boxes.iter().map(Corpus::total_bytes).sum();
    assert_eq!(messages, 500);
    assert!((25_000_000..40_000_000).contains(&bytes), "{bytes} bytes");
    let sizes: Vec<usize> = boxes
        .iter()
        .flat_map(|c| &c.folders)
        .flat_map(|(_, m)| m)
        .map(|m| m.body.len())
        .collect();
    let mostly_small = sizes
        .iter()
        .filter(|&&s| (4_000..60_000).contains(&s))
        .count();
    assert!(
        mostly_small * 100 / sizes.len() >= 80,
        "{mostly_small} of {}",
        sizes.len()
    );
    eprintln!("bench Small: {messages} messages, {bytes} bytes in {elapsed:?}");
}

#[test]
fn band_counts_add_up_across_folders() {
    let spec = |n| FolderSpec {
        path: "X".to_owned(),
        messages: n,
        sizes: vec![
            SizeBand {
                weight: 997,
                min_bytes: 10,
                max_bytes: 10,
            },
            SizeBand {
                weight: 3,
                min_bytes: 99,
                max_bytes: 99,
            },
        ],
    };
    let mut rng = Rng::new(0, 0);
    let mut before = 0;
    let mut rare = 0;
    for n in [450, 200, 50, 150, 100, 50] {
        let sizes = band_sizes(&mut rng, &spec(n), before);
        assert_eq!(sizes.len(), n);
        rare += sizes.iter().filter(|&&s| s == 99).count();
        before += n;
    }
    assert_eq!(rare, 3);
}
