//! `mailhaul report <migration>`: per mailbox and folder, what the source held at the
//! latest planning, what the ledger records as migrated, what the filters left out, and
//! every message that did not go with its reason — as a table, JSON or CSV. For
//! Exchange targets also how many messages went by which upload path (and what each
//! path keeps), and every message that lost something its path could not carry (an
//! S/MIME message, a meeting request, … that went by Graph's JSON path).

use crate::status::human_bytes;
use mailhaul_ledger::{FolderReport, Ledger};
use mailhaul_proto::ledger::UploadPath;
use mailhaul_proto::{MailboxId, MigrationId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Migration id.
    pub migration: String,
    /// Latest pass.
    pub pass: u32,
    /// Per mailbox, in manifest order.
    pub mailboxes: Vec<MailboxReport>,
}

/// One mailbox.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxReport {
    /// The mailbox.
    pub mailbox: String,
    /// A problem found at the latest planning (e.g. a refused login).
    pub error: Option<String>,
    /// Per folder.
    pub folders: Vec<FolderLine>,
}

/// One folder.
#[derive(Debug, Clone, Serialize)]
pub struct FolderLine {
    /// Source path.
    pub folder: String,
    /// Target folder.
    pub target: String,
    /// Messages in the source at the latest planning (after filters).
    pub source_messages: u64,
    /// Their bytes.
    pub source_bytes: u64,
    /// Messages the filters left out.
    pub filtered: u64,
    /// Messages recorded as migrated.
    pub migrated: u64,
    /// Messages that did not go: UID and reason.
    pub failed: Vec<Failure>,
    /// Exchange targets: migrated messages per upload path (`graph-json`, …).
    pub paths: BTreeMap<String, u64>,
    /// Migrated messages that lost something on their path, beyond what the path loses
    /// for every message.
    pub lost: Vec<Loss>,
}

/// A migrated message that lost something.
#[derive(Debug, Clone, Serialize)]
pub struct Loss {
    /// Source UID.
    pub uid: u32,
    /// The upload path.
    pub path: String,
    /// What was lost, in words.
    pub lost: String,
}

/// A message that did not go.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Source UID.
    pub uid: u32,
    /// Why.
    pub reason: String,
}

/// Builds the report from the ledger.
///
/// # Errors
/// Redis errors; an unknown migration.
pub async fn build(ledger: &Ledger, mig: &MigrationId) -> anyhow::Result<Report> {
    let pass = ledger.latest_pass(mig).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "no migration {mig:?} in the ledger; check the id printed by `mailhaul validate`"
        )
    })?;
    let progress = ledger.progress(mig, pass).await?;
    let mut mailboxes = Vec::with_capacity(progress.mailboxes.len());
    for m in progress.mailboxes {
        let folders = ledger.folder_reports(mig, &m.mailbox).await?;
        let mut lines = Vec::with_capacity(folders.len());
        for f in folders {
            let id = f.id.clone();
            let mut l = line(f);
            deliveries(ledger, mig, &m.mailbox, &id, &mut l).await?;
            lines.push(l);
        }
        mailboxes.push(MailboxReport {
            mailbox: m.mailbox.to_string(),
            error: m.error,
            folders: lines,
        });
    }
    Ok(Report {
        migration: mig.to_string(),
        pass,
        mailboxes,
    })
}

/// Fills in the upload paths and losses of a folder from its records (Exchange targets
/// record a delivery per message; IMAP records none).
async fn deliveries(
    ledger: &Ledger,
    mig: &MigrationId,
    mbx: &MailboxId,
    fid: &mailhaul_proto::FolderId,
    line: &mut FolderLine,
) -> anyhow::Result<()> {
    let Some(meta) = ledger.folder_meta(mig, mbx, fid).await? else {
        return Ok(());
    };
    for (uid, record) in ledger.all_records(mig, mbx, fid, meta.uid_validity).await? {
        let Some(d) = record.delivery else { continue };
        *line.paths.entry(d.path.name().to_owned()).or_insert(0) += 1;
        if !d.lost.is_empty() {
            line.lost.push(Loss {
                uid: uid.0,
                path: d.path.name().to_owned(),
                lost: d.lost.describe(),
            });
        }
    }
    Ok(())
}

fn line(f: FolderReport) -> FolderLine {
    FolderLine {
        target: mailhaul_connectors::mutf7::decode(&f.target).unwrap_or_else(|_| f.target.clone()),
        folder: f.name,
        source_messages: f.counts.messages,
        source_bytes: f.counts.bytes,
        filtered: f.counts.filtered,
        migrated: f.migrated,
        failed: f
            .failures
            .into_iter()
            .map(|(uid, reason)| Failure { uid: uid.0, reason })
            .collect(),
        paths: BTreeMap::new(),
        lost: Vec::new(),
    }
}

/// The readable form.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Migration {} (latest pass {}):", r.migration, r.pass);
    for m in &r.mailboxes {
        let (src, done, failed): (u64, u64, usize) =
            m.folders.iter().fold((0, 0, 0), |(a, b, c), f| {
                (a + f.source_messages, b + f.migrated, c + f.failed.len())
            });
        let _ = writeln!(
            out,
            "\n{}: {done} of {src} messages migrated, {failed} failed",
            m.mailbox
        );
        if let Some(e) = &m.error {
            let _ = writeln!(out, "  error at planning: {e}");
        }
        let w = m
            .folders
            .iter()
            .map(|f| f.folder.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            out,
            "  {:w$}  {:>8}  {:>10}  {:>8}  {:>8}  {:>8}  TARGET",
            "FOLDER", "SOURCE", "SIZE", "MIGRATED", "FAILED", "FILTERED"
        );
        for f in &m.folders {
            let _ = writeln!(
                out,
                "  {:w$}  {:>8}  {:>10}  {:>8}  {:>8}  {:>8}  {}",
                f.folder,
                f.source_messages,
                human_bytes(f.source_bytes),
                f.migrated,
                f.failed.len(),
                f.filtered,
                f.target
            );
        }
        for f in &m.folders {
            for x in &f.failed {
                let _ = writeln!(
                    out,
                    "  not migrated: {:?} UID {}: {}",
                    f.folder, x.uid, x.reason
                );
            }
        }
        paths_table(&mut out, m);
    }
    out
}

/// Per mailbox: messages per upload path with what the path keeps, then every message
/// that lost more.
fn paths_table(out: &mut String, m: &MailboxReport) {
    let mut paths: BTreeMap<&str, u64> = BTreeMap::new();
    for f in &m.folders {
        for (p, n) in &f.paths {
            *paths.entry(p.as_str()).or_insert(0) += n;
        }
    }
    for path in UploadPath::ALL {
        if let Some(n) = paths.get(path.name()) {
            let _ = writeln!(out, "  {n} by {path}: keeps {}", path.keeps());
        }
    }
    for f in &m.folders {
        for x in &f.lost {
            let _ = writeln!(
                out,
                "  migrated with less: {:?} UID {} ({}): lost {}",
                f.folder, x.uid, x.path, x.lost
            );
        }
    }
}

/// One CSV row per folder, then one per failed message (RFC 4180 quoting).
pub fn csv(r: &Report) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from(
        "mailbox,folder,target,source_messages,source_bytes,filtered,migrated,failed,uid,reason\n",
    );
    for m in &r.mailboxes {
        for f in &m.folders {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},,",
                q(&m.mailbox),
                q(&f.folder),
                q(&f.target),
                f.source_messages,
                f.source_bytes,
                f.filtered,
                f.migrated,
                f.failed.len()
            );
            for x in &f.failed {
                let _ = writeln!(
                    out,
                    "{},{},{},,,,,,{},{}",
                    q(&m.mailbox),
                    q(&f.folder),
                    q(&f.target),
                    x.uid,
                    q(&x.reason)
                );
            }
            // A migrated message that lost something: its path and what it lost, in the
            // reason column (the counts columns stay empty as for a failure).
            for x in &f.lost {
                let _ = writeln!(
                    out,
                    "{},{},{},,,,,,{},{}",
                    q(&m.mailbox),
                    q(&f.folder),
                    q(&f.target),
                    x.uid,
                    q(&format!(
                        "migrated by {} with less: lost {}",
                        x.path, x.lost
                    ))
                );
            }
        }
    }
    out
}
