//! `mailhaul plan` for Exchange targets: per mailbox, how many messages will go by
//! which upload path, what each path keeps, and how many will lose something their
//! path cannot carry (issue 11 §2). The target's own router decides
//! ([`TargetSession::planned_delivery`]), so the plan counts what the migration does.

use mailhaul_connectors::body::Body;
use mailhaul_connectors::target::TargetSession;
use mailhaul_proto::ledger::{Lost, UploadPath};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Upload paths of one mailbox's messages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathCounts {
    /// Messages per upload path (`graph-json`, `graph-import-mime`, `ews-mime`).
    pub paths: BTreeMap<String, u64>,
    /// Messages that will lose something beyond their path's own losses: what (in
    /// words) -> count.
    pub losses: BTreeMap<String, u64>,
}

impl PathCounts {
    /// Counts one message, as `target` will upload it.
    ///
    /// # Errors
    /// A spooled body that cannot be read.
    pub async fn count(
        &mut self,
        target: &TargetSession,
        body: &Body,
        flags: &[String],
    ) -> std::io::Result<()> {
        if let Some(d) = target.planned_delivery(body, flags).await? {
            *self.paths.entry(d.path.name().to_owned()).or_insert(0) += 1;
            for (bit, words) in Lost::ALL {
                if d.lost.contains(bit) {
                    let key = format!("{} ({})", words, d.path);
                    *self.losses.entry(key).or_insert(0) += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The lines of the readable plan for one mailbox.
    pub fn render(&self, out: &mut String) {
        for path in UploadPath::ALL {
            if let Some(n) = self.paths.get(path.name()) {
                let _ = writeln!(
                    out,
                    "  {n} message(s) will go by {path}: keeps {}",
                    path.keeps()
                );
            }
        }
        for (what, n) in &self.losses {
            let _ = writeln!(out, "  {n} message(s) will lose {what}");
        }
    }
}
