//! Human-readable progress and outcome tables, for `migrate`'s summary and `status`.

use crate::discover::MailboxPlan;
use mailhaul_ledger::{Ledger, PassProgress};
use mailhaul_proto::MigrationId;
use std::fmt::Write as _;

/// Bytes as `12.3 MB` (decimal units, as mail admins read quotas).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The per-mailbox table of a pass.
pub fn table(mig: &MigrationId, p: &PassProgress) -> String {
    let mut out = String::new();
    let copied: u64 = p.mailboxes.iter().map(|m| m.copied_msgs).sum();
    let bytes: u64 = p.mailboxes.iter().map(|m| m.copied_bytes).sum();
    let failed: u64 = p.mailboxes.iter().map(|m| m.failed_msgs).sum();
    let _ = writeln!(
        out,
        "Migration {mig}, pass {}: {} mailboxes, {}/{} tasks done, {copied} messages copied ({}), {failed} failed.",
        p.pass,
        p.mailboxes.len(),
        p.tasks_done,
        if p.tasks_total == u64::MAX {
            "?".to_owned()
        } else {
            p.tasks_total.to_string()
        },
        human_bytes(bytes),
    );
    let w = p
        .mailboxes
        .iter()
        .map(|m| m.mailbox.as_str().len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:w$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  STATE",
        "MAILBOX", "SOURCE", "PLANNED", "COPIED", "FAILED", "LEDGER"
    );
    for m in &p.mailboxes {
        let state = match &m.error {
            Some(e) => format!("error: {e}"),
            None if m.tasks_done >= m.tasks => "done".to_owned(),
            None => format!("{}/{} tasks", m.tasks_done, m.tasks),
        };
        let _ = writeln!(
            out,
            "{:w$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {state}",
            m.mailbox.as_str(),
            m.source_msgs,
            m.planned_msgs,
            m.copied_msgs,
            m.failed_msgs,
            m.total_msgs,
        );
    }
    for (task, reason) in &p.tasks_failed {
        let _ = writeln!(out, "task {task} gave up: {reason}");
    }
    out
}

/// Lists the messages that failed in the planned folders, with their reasons.
///
/// # Errors
/// Redis errors.
pub async fn failures(
    ledger: &Ledger,
    mig: &MigrationId,
    plans: &[MailboxPlan],
) -> anyhow::Result<String> {
    let mut out = String::new();
    for p in plans {
        for f in &p.folders {
            for (uid, reason) in ledger
                .failures(mig, &p.mailbox, &f.id, f.uid_validity)
                .await?
            {
                let _ = writeln!(out, "{} {:?} UID {uid}: {reason}", p.mailbox, f.display);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_read_like_quotas() {
        for (b, s) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (1_300_000_000, "1.3 GB"),
        ] {
            assert_eq!(human_bytes(b), s);
        }
    }
}
