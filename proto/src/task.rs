//! Task messages: what the coordinator publishes and a worker consumes.
//!
//! Versioned JSON; a worker rejects a version it does not know (to the dead-letter
//! queue, with the reason) rather than guessing. Tasks never carry secrets: a worker
//! finds credentials through its own copy of the manifest, by migration and mailbox.

use crate::ids::{FolderId, MailboxId, MigrationId, TaskId, UidRange, UidValidity};
use serde::{Deserialize, Serialize};

/// The task format this build writes. Version 2 added the ledger identity, the planned
/// UIDs and the rebuild flag (all optional); version 1 tasks are still read.
pub const TASK_VERSION: u32 = 2;

/// The oldest task format this build reads.
pub const OLDEST_TASK_VERSION: u32 = 1;

/// Copy one slice of one source folder to its target folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderTask {
    /// Always [`TASK_VERSION`] for tasks this build publishes.
    pub version: u32,
    /// Unique per pass: `{migration}/{pass}/{mailbox index}/{folder id}/{slice}`.
    pub task_id: TaskId,
    /// The migration this task belongs to.
    pub migration: MigrationId,
    /// Which run of `mailhaul migrate` published it (1 = first pass, then deltas).
    pub pass: u32,
    /// The mailbox, as keyed in the manifest.
    pub mailbox: MailboxId,
    /// The source folder and where it goes.
    pub folder: FolderRef,
    /// UIDVALIDITY seen at discovery; a different one at EXAMINE means the folder
    /// changed under us and the task is re-planned, not guessed at.
    pub uid_validity: UidValidity,
    /// UIDs this slice covers (inclusive). The last slice of a folder ends at the
    /// UIDNEXT - 1 seen at discovery; later mail waits for the next pass.
    pub range: UidRange,
    /// This slice's index within the folder, from 0.
    pub slice: u32,
    /// How many slices the folder was cut into this pass.
    pub slices: u32,
    /// How many times this task has been handed out again after a failure.
    #[serde(default)]
    pub attempt: u32,
    /// The identity (epoch) of the ledger the task was planned against. A worker that
    /// finds another ledger (emptied, replaced) copies nothing: the records it would
    /// trust are not the ones the plan was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_epoch: Option<String>,
    /// The UIDs planned for this slice (an IMAP sequence set), so a task that gives up
    /// for good can mark every one it did not copy as failed, even when the source can
    /// no longer be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<String>,
    /// A pass that rebuilds a lost ledger: every message is looked up on the target
    /// (as after a crash) before it is copied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuild: bool,
}

/// A source folder and its target, both as raw wire names so no one re-encodes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderRef {
    /// Stable short id of the source folder (ledger keys use it).
    pub id: FolderId,
    /// The source mailbox name exactly as LIST returned it (modified UTF-7).
    pub source_name: String,
    /// The target mailbox name as the target expects it on the wire.
    pub target_name: String,
    /// Human-readable path (UTF-8, `/`-separated) for logs and reports.
    pub display: String,
    /// The target folder's id where the target has ids (Graph, EWS), resolved by the
    /// coordinator when it created the tree. Absent for IMAP targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

impl FolderTask {
    /// The planned UIDs, if the task carries them (see [`FolderTask::planned`]).
    pub fn planned_uids(&self) -> Option<Vec<crate::ids::Uid>> {
        crate::ids::parse_uid_set(self.planned.as_deref()?)
    }

    /// Serialises to the JSON that travels on the bus.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a FolderTask always serialises")
    }

    /// Parses a task from the bus.
    ///
    /// # Errors
    /// A malformed message, or a version this build does not know.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TaskFormatError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned = serde_json::from_slice(bytes).map_err(TaskFormatError::Malformed)?;
        if !(OLDEST_TASK_VERSION..=TASK_VERSION).contains(&v.version) {
            return Err(TaskFormatError::UnknownVersion(v.version));
        }
        serde_json::from_slice(bytes).map_err(TaskFormatError::Malformed)
    }
}

/// A task message this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum TaskFormatError {
    /// Not JSON, or not a task.
    #[error("malformed task message")]
    Malformed(#[source] serde_json::Error),
    /// Published by a newer (or much older) mailhaul.
    #[error(
        "task version {0} is not understood by this worker (it reads version {TASK_VERSION}); upgrade the workers"
    )]
    UnknownVersion(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Uid;

    fn sample() -> FolderTask {
        FolderTask {
            version: TASK_VERSION,
            task_id: TaskId("contoso/1/0/abc/0".into()),
            migration: MigrationId("contoso".into()),
            pass: 1,
            mailbox: MailboxId("alice@contoso.com".into()),
            folder: FolderRef {
                id: FolderId("abc".into()),
                source_name: "INBOX".into(),
                target_name: "INBOX".into(),
                display: "INBOX".into(),
                target_id: None,
            },
            uid_validity: UidValidity(7),
            range: UidRange {
                first: Uid(1),
                last: Uid(100),
            },
            slice: 0,
            slices: 1,
            attempt: 0,
            ledger_epoch: Some("e1".into()),
            planned: Some("1:3,7".into()),
            rebuild: false,
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(FolderTask::from_json(&t.to_json()).expect("parses"), t);
    }

    #[test]
    fn reads_version_1_tasks() {
        let mut t = sample();
        t.version = 1;
        t.ledger_epoch = None;
        t.planned = None;
        let json = String::from_utf8(t.to_json()).expect("utf-8");
        assert!(
            !json.contains("ledger_epoch") && !json.contains("rebuild"),
            "{json}"
        );
        assert_eq!(FolderTask::from_json(json.as_bytes()).expect("parses"), t);
        assert_eq!(sample().planned_uids().map(|v| v.len()), Some(4));
    }

    #[test]
    fn rejects_unknown_version_with_a_clear_reason() {
        let mut t = sample();
        t.version = 99;
        let err = FolderTask::from_json(&t.to_json()).expect_err("must reject");
        assert!(err.to_string().contains("upgrade the workers"), "{err}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            FolderTask::from_json(b"{}"),
            Err(TaskFormatError::Malformed(_))
        ));
    }
}
