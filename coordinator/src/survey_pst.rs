//! The read-only look at one mailbox's PST files that `plan` (and later `migrate`)
//! starts from: open every file of the mailbox's mapping-CSV rows, list its folders,
//! mail items and bytes, and say what will not go — OST files, unreadable files, ANSI
//! files without a code page, items over the size limit, unreadable items, and the
//! contacts, calendar items, tasks and notes (not migrated yet).
//!
//! Identity: a folder's wire name in tasks and the ledger is `{row key}:{folder path}`
//! (see [`source_name`]), so a re-export of the same file keeps its folder ids; the
//! store's record key stands in for UIDVALIDITY ([`uid_validity_of`]), so a re-export
//! (a new record key) voids the folder's records and is re-matched, not copied twice;
//! a message's UID is its NID (never reused inside one PST). Slices are then NID ranges
//! of a folder's sorted NIDs, cut by `plan::slices` like any folder's UIDs.
//!
//! Per file the plan records what identifies it at plan time: record key, size, mtime
//! and SHA-256.

use crate::survey::{SurveyedFolder, rules_for};
use mailhaul_connectors::folder_map::{SourceFolder, map_tree};
use mailhaul_connectors::imap::FolderStatus;
use mailhaul_connectors::pst::codepage;
use mailhaul_connectors::pst::item::Kind;
use mailhaul_connectors::pst::{PstError, PstHandle};
use mailhaul_connectors::target::{TargetSession, TargetTree};
use mailhaul_proto::manifest::{Filters, Options, PstFile, Skip, TargetRoot};
use mailhaul_proto::{Uid, UidValidity};
use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

/// The reason reports give for the items that are not mail.
pub const NOT_MIGRATED: &str = "not migrated (contacts/calendar/tasks)";

/// One PST file of a mailbox, as planned.
#[derive(Debug, Clone)]
pub struct SurveyedPst {
    /// The CSV row's key (`FilePath/Name`).
    pub key: String,
    /// Where the row is in the CSV (`map.csv:3`), for messages.
    pub origin: String,
    /// What identifies the file at plan time, or why it cannot be read as a whole.
    pub file: Result<PstIdentity, String>,
    /// Its folders (empty when the file cannot be read).
    pub folders: Vec<PstFolder>,
}

/// What identifies a PST at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PstIdentity {
    /// The store's record key, hex.
    pub record_key: String,
    /// Bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch (0 when the share does not say).
    pub mtime: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// Unicode (Outlook 2003+) or ANSI.
    pub unicode: bool,
}

/// One folder of a PST and what of it goes.
#[derive(Debug, Clone)]
pub struct PstFolder {
    /// Wire name in tasks and the ledger ([`source_name`]).
    pub source_name: String,
    /// Path inside the PST, `/`-joined (the IPM subtree's root is `""`).
    pub display: String,
    /// Where it goes in the mailbox, before the target's own mapping rules
    /// ([`target_segments`]).
    pub target: Vec<String>,
    /// The file's record key as a UIDVALIDITY ([`uid_validity_of`]).
    pub uid_validity: UidValidity,
    /// The mail items that go: (NID, PidTagMessageSize), NID ascending. Items our
    /// reader could not even summarise are here too, so the workers record each as
    /// failed with its reason.
    pub sizes: Vec<(Uid, u32)>,
    /// Items that do not go, by reason ([`NOT_MIGRATED`], or the filters' `Skip` keys).
    pub skipped: BTreeMap<String, u64>,
    /// Non-mail items by kind (`contacts`, `calendar`, `tasks`, `notes`, `other`).
    pub not_mail: BTreeMap<&'static str, u64>,
    /// Items whose summary could not be read (they are planned and will be reported).
    pub unreadable: u64,
}

/// The folder wire name of `path` in the file of CSV row `key`.
pub fn source_name(key: &str, path: &[String]) -> String {
    format!("{key}:{}", path.join("/"))
}

/// Splits a [`source_name`] into the row key and the folder path (`/`-joined).
pub fn parse_source_name(name: &str) -> Option<(&str, &str)> {
    // The key is `FilePath/Name` of a `.pst`; a folder path may hold `:` itself.
    let at = name.find(".pst:").or_else(|| name.find(".PST:"))? + 4;
    Some((&name[..at], &name[at + 1..]))
}

/// The UIDVALIDITY a store's record key stands for: its first 32 bits (never 0).
pub fn uid_validity_of(record_key_hex: &str) -> UidValidity {
    let v = record_key_hex
        .get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    UidValidity(v.max(1))
}

/// Where a PST folder at `path` goes (`TargetRootFolder`): blank -> under `Imported`,
/// `/<a>/<b>` -> under that folder, `/` -> into the mailbox's own folders (the caller's
/// special-folder mapping then merges Inbox into INBOX and so on).
pub fn target_segments(root: &TargetRoot, path: &[String]) -> Vec<String> {
    let mut out = match root {
        TargetRoot::Imported => vec!["Imported".to_owned()],
        TargetRoot::Under(v) => v.clone(),
        TargetRoot::Merge => Vec::new(),
    };
    out.extend(path.iter().cloned());
    if out.is_empty() {
        // The root of a merged PST holds items only in odd files; they go to INBOX.
        out.push("INBOX".to_owned());
    }
    out
}

/// Surveys every PST of a mailbox's rows. Never fails as a whole: a file that cannot be
/// read carries its reason, and the other files go on.
pub async fn survey(files: &[PstFile], filters: &Filters) -> Vec<SurveyedPst> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        out.push(survey_file(f, filters).await);
    }
    out
}

async fn survey_file(f: &PstFile, filters: &Filters) -> SurveyedPst {
    let mut s = SurveyedPst {
        key: f.key.clone(),
        origin: f.origin.to_string(),
        file: Err(String::new()),
        folders: Vec::new(),
    };
    match read(f, filters).await {
        Ok((id, folders)) => {
            s.file = Ok(id);
            s.folders = folders;
        }
        Err(why) => {
            tracing::warn!(file = %f.path.display(), %why, "PST file cannot be migrated.");
            s.file = Err(format!("{} ({}): {why}", f.path.display(), s.origin));
        }
    }
    s
}

async fn read(f: &PstFile, filters: &Filters) -> Result<(PstIdentity, Vec<PstFolder>), String> {
    let meta = std::fs::metadata(&f.path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file; check FilePath and Name in the mapping \
            CSV (they are case-sensitive) and that the share is mounted at the manifest's location"
            .to_owned(),
        _ => format!("cannot read it: {e}"),
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let encoding = match f.codepage {
        Some(cp) => Some(codepage::encoding(cp).ok_or_else(|| {
            format!("ContentCodePage {cp} is not a Windows code page mailhaul knows; use e.g. 1252 or 932")
        })?),
        None => None,
    };
    let handle = PstHandle::open(&f.path, encoding)
        .await
        .map_err(|e: PstError| e.to_string())?;
    let info = handle.survey(true).await.map_err(|e| e.to_string())?;
    if !info.unicode && f.codepage.is_none() {
        return Err(
            "an ANSI PST (Outlook 97-2002) without a ContentCodePage: its text cannot be \
             decoded safely; add the code page it was written in to the row (e.g. 1252 for \
             Western European, 932 for Japanese)"
                .to_owned(),
        );
    }
    let uv = uid_validity_of(&info.record_key);
    let mut folders = Vec::with_capacity(info.folders.len());
    for folder in &info.folders {
        let mut pf = PstFolder {
            source_name: source_name(&f.key, &folder.path),
            display: folder.path.join("/"),
            target: target_segments(&f.root, &folder.path),
            uid_validity: uv,
            sizes: Vec::new(),
            skipped: BTreeMap::new(),
            not_mail: BTreeMap::new(),
            unreadable: 0,
        };
        for item in &folder.items {
            if item.unreadable.is_some() {
                pf.unreadable += 1;
                pf.sizes.push((Uid(item.nid), item.size));
            } else if item.kind != Kind::Mail {
                *pf.not_mail.entry(item.kind.label()).or_insert(0) += 1;
                *pf.skipped.entry(NOT_MIGRATED.to_owned()).or_insert(0) += 1;
            } else if filters
                .max_message_size
                .is_some_and(|max| u64::from(item.size) > max)
            {
                *pf.skipped
                    .entry(Skip::TooLarge.key().to_owned())
                    .or_insert(0) += 1;
            } else {
                pf.sizes.push((Uid(item.nid), item.size));
            }
        }
        pf.sizes.sort_unstable();
        folders.push(pf);
    }
    Ok((
        PstIdentity {
            record_key: info.record_key,
            size: info.size,
            mtime,
            sha256: info.sha256.unwrap_or_default(),
            unicode: info.unicode,
        },
        folders,
    ))
}

/// The readable files' folders that `opts` selects, mapped onto the target's tree as
/// IMAP folders are ([`crate::survey::survey`]): with `TargetRootFolder = /` the PST's
/// Inbox, Sent Items, Deleted Items ... merge into the target's folders of that role (by
/// name, localised names included); under `Imported` or `/<name>` nothing is special.
pub fn surveyed_folders(
    files: &[SurveyedPst],
    opts: &Options,
    target: &TargetSession,
    tree: &TargetTree,
) -> Vec<SurveyedFolder> {
    let folders: Vec<(&SurveyedPst, &PstFolder)> = files
        .iter()
        .flat_map(|f| f.folders.iter().map(move |d| (f, d)))
        .filter(|(_, d)| opts.folder_selected(&d.display))
        .collect();
    let sources: Vec<SourceFolder> = folders
        .iter()
        .map(|(_, d)| SourceFolder {
            segments: d.target.clone(),
            special_use: None,
        })
        .collect();
    let mappings = map_tree(&sources, &tree.specials, &tree.rules(rules_for(opts)));
    folders
        .into_iter()
        .zip(mappings)
        .map(|((file, d), mapping)| SurveyedFolder {
            raw_name: d.source_name.clone(),
            display: if d.display.is_empty() {
                file.key.clone()
            } else {
                format!("{}/{}", file.key, d.display)
            },
            target_name: target.folder_name(&mapping.target, tree),
            mapping,
            status: FolderStatus {
                messages: u32::try_from(d.sizes.len()).unwrap_or(u32::MAX),
                uid_next: Uid(d.sizes.last().map_or(1, |(u, _)| u.0.saturating_add(1))),
                uid_validity: d.uid_validity,
            },
            sizes: d.sizes.clone(),
            skipped: d.skipped.clone(),
            pop3: None,
            subscribed: true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhaul_proto::manifest::Origin;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/pst")
            .join(name)
    }

    fn row(name: &str, path: PathBuf, root: TargetRoot, codepage: Option<u16>) -> PstFile {
        PstFile {
            key: name.to_owned(),
            path,
            archive: false,
            root,
            codepage,
            origin: Origin::new("map.csv", 2),
        }
    }

    #[test]
    fn names_roots_and_record_keys() {
        let p = vec!["Inbox".to_owned(), "a:b".to_owned()];
        let n = source_name("users/ann.pst", &p);
        assert_eq!(parse_source_name(&n), Some(("users/ann.pst", "Inbox/a:b")));
        assert_eq!(
            target_segments(&TargetRoot::Imported, &p),
            ["Imported", "Inbox", "a:b"]
        );
        assert_eq!(target_segments(&TargetRoot::Merge, &p), ["Inbox", "a:b"]);
        assert_eq!(target_segments(&TargetRoot::Merge, &[]), ["INBOX"]);
        assert_eq!(
            target_segments(&TargetRoot::Under(vec!["Old".into()]), &p),
            ["Old", "Inbox", "a:b"]
        );
        assert_eq!(
            uid_validity_of("0a0b0c0d00000000000000000000000f"),
            UidValidity(0x0a0b_0c0d)
        );
        assert_eq!(uid_validity_of(""), UidValidity(1));
    }

    /// Every fixture, one row each: mail items counted per file as readpst extracts
    /// them (plus the pstsdk `IPM.Post` items, which are mail), the rest counted as not
    /// migrated, and each bad file its own clear reason while the others go on.
    #[tokio::test]
    async fn fixtures_are_planned_and_bad_files_refused_alone() {
        let dir = std::env::temp_dir().join(format!("mailhaul-survey-pst-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let empty = dir.join("empty.pst");
        std::fs::write(&empty, b"").expect("write");
        let truncated = dir.join("truncated.pst");
        let whole = std::fs::read(fixture("pstconv-outlook.pst")).expect("fixture");
        std::fs::write(&truncated, &whole[..600]).expect("write");
        let ost = dir.join("cache.ost");
        let mut o = whole.clone();
        o[8..10].copy_from_slice(b"SO"); // wMagicClient: an OST (MS-PST 2.2.2.6)
        std::fs::write(&ost, &o).expect("write");
        let mut rows = vec![
            row("empty.pst", empty, TargetRoot::Imported, None),
            row("truncated.pst", truncated, TargetRoot::Imported, None),
            row("cache.ost", ost, TargetRoot::Imported, None),
            row(
                "missing.pst",
                dir.join("missing.pst"),
                TargetRoot::Imported,
                None,
            ),
            row(
                "ansi.pst",
                fixture("pstsdk-test_ansi.pst"),
                TargetRoot::Imported,
                None,
            ),
        ];
        let names = [
            ("java-libpst-dist-list.pst", 0),
            ("java-libpst-passworded.pst", 0),
            ("libyal-testdata-outlook.pst", 2),
            ("outlook-pst-rs-Empty.pst", 0),
            ("pstconv-outlook.pst", 3),
            ("pstsdk-sample1.pst", 1),
            ("pstsdk-submessage.pst", 1),
            ("pstsdk-test_unicode.pst", 2),
            ("ruby-msg-pr-200-recipients.pst", 1),
            ("ruby-msg-pr-attachAndInline.pst", 1),
            ("ruby-msg-pr-msgInMsg.pst", 1),
        ];
        for (n, _) in names {
            rows.push(row(n, fixture(n), TargetRoot::Merge, None));
        }
        rows.push(row(
            "pstsdk-sample2.pst",
            fixture("pstsdk-sample2.pst"),
            TargetRoot::Imported,
            Some(1252),
        ));
        let surveyed = survey(&rows, &Filters::default()).await;
        let _ = std::fs::remove_dir_all(&dir);
        for s in &surveyed {
            let mail: Vec<usize> = s.folders.iter().map(|f| f.sizes.len()).collect();
            println!(
                "{} {:?} mail per folder {mail:?}",
                s.key,
                s.file.as_ref().err()
            );
        }
        let err = |i: usize| surveyed[i].file.as_ref().expect_err("refused").clone();
        assert!(err(0).contains("empty"), "{}", err(0));
        assert!(err(1).contains("truncated"), "{}", err(1));
        assert!(err(2).contains("OST"), "{}", err(2));
        assert!(err(3).contains("no such file"), "{}", err(3));
        assert!(err(4).contains("ContentCodePage"), "{}", err(4));
        for e in (0..5).map(err) {
            assert!(e.contains("map.csv:2"), "{e}");
        }
        let mut not_mail = 0;
        for (s, (name, mail)) in surveyed[5..].iter().zip(names) {
            let id = s.file.as_ref().expect(name);
            assert_eq!(id.record_key.len(), 32, "{name}");
            assert_eq!(id.sha256.len(), 64, "{name}");
            assert_eq!(id.size, 271_360, "{name}");
            let items: usize = s.folders.iter().map(|f| f.sizes.len()).sum();
            assert_eq!(items, mail, "{name}");
            assert!(s.folders.iter().all(|f| f.unreadable == 0), "{name}");
            not_mail += s
                .folders
                .iter()
                .map(|f| f.skipped.get(NOT_MIGRATED).copied().unwrap_or(0))
                .sum::<u64>();
            for f in &s.folders {
                assert_eq!(parse_source_name(&f.source_name), Some((name, &*f.display)));
                assert!(f.sizes.windows(2).all(|w| w[0].0 < w[1].0));
            }
        }
        assert!(
            not_mail >= 4,
            "contacts, lists and the appointment: {not_mail}"
        );
        let sample2 = surveyed.last().expect("sample2");
        let items: usize = sample2.folders.iter().map(|f| f.sizes.len()).sum();
        assert_eq!(items, 1, "the ANSI copy of sample1, with its code page");
        assert!(
            sample2
                .folders
                .iter()
                .all(|f| f.target.first().map(String::as_str) == Some("Imported"))
        );
    }
}
