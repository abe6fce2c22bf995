//! Discovery of one mailbox: the source folder tree with counts and sizes, the target
//! folder tree created once, and what the ledger already has — everything the plan
//! needs, in one visit per mailbox with one connection per side.

use crate::plan;
use mailhaul_connectors::config::resolve_secret;
use mailhaul_connectors::imap::{self, ImapSession};
use mailhaul_connectors::mapping;
use mailhaul_ledger::{Ledger, PermitSpec};
use mailhaul_proto::manifest::{MailboxSpec, Manifest, SecretRef, ServerConfig};
use mailhaul_proto::{FolderId, MailboxId, MigrationId, Uid, UidRange, UidValidity};
use std::time::Duration;

/// One source folder and what this pass does with it.
#[derive(Debug, Clone)]
pub struct FolderPlan {
    /// Stable folder id.
    pub id: FolderId,
    /// Human path.
    pub display: String,
    /// Source wire name.
    pub source_name: String,
    /// Target wire name.
    pub target_name: String,
    /// UIDVALIDITY at discovery.
    pub uid_validity: UidValidity,
    /// Messages in the folder.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages not yet in the ledger.
    pub todo_messages: u64,
    /// Their bytes.
    pub todo_bytes: u64,
    /// UID ranges to hand out as tasks.
    pub slices: Vec<UidRange>,
    /// Whether the folder is re-matched after a UIDVALIDITY change.
    pub rematch: bool,
}

/// One mailbox's plan, or why it could not be planned.
#[derive(Debug, Clone)]
pub struct MailboxPlan {
    /// Position in the manifest.
    pub index: usize,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its folders (empty if `error`).
    pub folders: Vec<FolderPlan>,
    /// What went wrong, for the admin to fix (bad password, unreachable server, ...).
    pub error: Option<String>,
}

/// Discovers one mailbox. Never fails as a whole: a problem becomes the plan's `error`,
/// so one bad mailbox does not stop a tenant.
pub async fn discover(
    ledger: &Ledger,
    manifest: &Manifest,
    pass_mig: &MigrationId,
    index: usize,
    mbx: &MailboxSpec,
) -> MailboxPlan {
    let mut plan = MailboxPlan {
        index,
        mailbox: mbx.id.clone(),
        folders: Vec::new(),
        error: None,
    };
    match discover_inner(ledger, manifest, pass_mig, mbx).await {
        Ok(folders) => plan.folders = folders,
        Err(e) => {
            tracing::warn!(mailbox = %mbx.id, err = %e, "Mailbox cannot be planned.");
            plan.error = Some(e);
        }
    }
    plan
}

async fn open(
    ledger: &Ledger,
    server: &ServerConfig,
    user: &str,
    secret: &SecretRef,
    side: &str,
) -> Result<(ImapSession, mailhaul_ledger::Permit), String> {
    let password =
        resolve_secret(secret).map_err(|e| format!("{side} password for {user}: {e}"))?;
    let spec = PermitSpec {
        server: format!("{}:{}", server.host, server.port),
        user: user.to_owned(),
        limit: server.max_connections_per_mailbox.get(),
    };
    let permit = ledger
        .acquire_permit(&spec, Duration::from_secs(300))
        .await
        .map_err(|e| format!("ledger: {e}"))?
        .ok_or_else(|| format!("{side} {user}: no connection permit came free in 5 minutes"))?;
    match imap::connect(server, user, &password).await {
        Ok(s) => Ok((s, permit)),
        Err(e) => {
            let _ = ledger.release_permit(permit).await;
            Err(format!("{side} {}:{}: {e}", server.host, server.port))
        }
    }
}

async fn discover_inner(
    ledger: &Ledger,
    m: &Manifest,
    mig: &MigrationId,
    mbx: &MailboxSpec,
) -> Result<Vec<FolderPlan>, String> {
    let (mut source, sp) = open(
        ledger,
        &m.source,
        &mbx.source_user,
        &mbx.source_password,
        "source",
    )
    .await?;
    let listed = source.list_folders().await;
    let result = async {
        let listed = listed.map_err(|e| format!("source: listing folders: {e}"))?;
        let (mut target, tp) = open(
            ledger,
            &m.target,
            &mbx.target_user,
            &mbx.target_password,
            "target",
        )
        .await?;
        let r = async {
            let delim = target
                .delimiter()
                .await
                .map_err(|e| format!("target: {e}"))?;
            let mut folders = Vec::new();
            for f in listed.iter().filter(|f| !f.noselect) {
                let display = mapping::display(&f.segments);
                if !m.options.folder_selected(&display) {
                    continue;
                }
                let target_name = mapping::target_name(&f.segments, delim);
                folders.push(
                    plan_folder(
                        ledger,
                        m,
                        mig,
                        mbx,
                        &mut source,
                        &f.raw_name,
                        display,
                        target_name,
                    )
                    .await?,
                );
            }
            // Parents before children, so servers that need them find them.
            let mut names: Vec<&FolderPlan> = folders.iter().collect();
            names.sort_by_key(|f| f.display.matches('/').count());
            for f in names {
                target
                    .create_folder(&f.target_name)
                    .await
                    .map_err(|e| format!("target: creating folder {:?}: {e}", f.display))?;
            }
            Ok(folders)
        }
        .await;
        let _ = target.logout().await;
        let _ = ledger.release_permit(tp).await;
        r
    }
    .await;
    let _ = source.logout().await;
    let _ = ledger.release_permit(sp).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn plan_folder(
    ledger: &Ledger,
    m: &Manifest,
    mig: &MigrationId,
    mbx: &MailboxSpec,
    source: &mut ImapSession,
    raw: &str,
    display: String,
    target_name: String,
) -> Result<FolderPlan, String> {
    let status = source
        .examine(raw)
        .await
        .map_err(|e| format!("source: examining {display:?}: {e}"))?;
    let listed = if status.messages == 0 || status.uid_next.0 <= 1 {
        Vec::new()
    } else {
        let range = UidRange {
            first: Uid(1),
            last: Uid(status.uid_next.0 - 1),
        };
        source
            .uid_sizes(range)
            .await
            .map_err(|e| format!("source: sizes in {display:?}: {e}"))?
    };
    let id = FolderId::of_raw_name(raw);
    let meta = ledger
        .observe_folder(mig, &mbx.id, &id, status.uid_validity, &display)
        .await
        .map_err(|e| format!("ledger: {e}"))?;
    let rematch = !meta.voided.is_empty();
    let todo: Vec<(Uid, u32)> = if rematch {
        listed.clone()
    } else {
        let uids: Vec<Uid> = listed.iter().map(|(u, _)| *u).collect();
        let recorded = ledger
            .records_of(mig, &mbx.id, &id, status.uid_validity, &uids)
            .await
            .map_err(|e| format!("ledger: {e}"))?;
        listed
            .iter()
            .copied()
            .filter(|(u, _)| !recorded.contains_key(u))
            .collect()
    };
    let slices = plan::slices(&todo, m.options.slice_messages.get(), m.options.slice_bytes);
    Ok(FolderPlan {
        id,
        display,
        source_name: raw.to_owned(),
        target_name,
        uid_validity: status.uid_validity,
        messages: listed.len() as u64,
        bytes: listed.iter().map(|(_, s)| u64::from(*s)).sum(),
        todo_messages: todo.len() as u64,
        todo_bytes: todo.iter().map(|(_, s)| u64::from(*s)).sum(),
        slices,
        rematch,
    })
}
