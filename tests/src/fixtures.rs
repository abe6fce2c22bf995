//! Small values the backend tests share.

use mailhaul_proto::task::{FolderRef, FolderTask, TASK_VERSION};
use mailhaul_proto::{FolderId, MailboxId, MigrationId, TaskId, Uid, UidRange, UidValidity};

/// A task over UIDs 1-10 of `mbx`'s INBOX in pass 1 of `mig`, the only slice, first
/// attempt, with no ledger epoch and no planned UIDs; tests change what they need with
/// `FolderTask { pass, ..inbox_task(..) }`.
pub fn inbox_task(mig: &MigrationId, mbx: &MailboxId, id: TaskId) -> FolderTask {
    FolderTask {
        version: TASK_VERSION,
        task_id: id,
        migration: mig.clone(),
        pass: 1,
        mailbox: mbx.clone(),
        folder: FolderRef {
            id: FolderId("f".into()),
            source_name: "INBOX".into(),
            target_name: "INBOX".into(),
            display: "INBOX".into(),
            target_id: None,
        },
        uid_validity: UidValidity(1),
        range: UidRange {
            first: Uid(1),
            last: Uid(10),
        },
        slice: 0,
        slices: 1,
        attempt: 0,
        ledger_epoch: None,
        planned: None,
        rebuild: false,
    }
}
