//! Discovery of one mailbox: the source folder tree with counts and sizes, the target
//! folder tree created once, and what the ledger already has — everything the plan
//! needs, in one visit per mailbox with one connection per side.

use crate::plan;
use crate::survey::{self, SurveyedFolder};
use mailhaul_ledger::Ledger;
use mailhaul_proto::manifest::{MailboxSpec, Manifest, ServerKind};
use mailhaul_proto::{FolderId, MailboxId, MigrationId, Uid, UidRange, UidValidity};

/// One source folder and what this pass does with it.
#[derive(Debug, Clone)]
pub struct FolderPlan {
    /// Stable folder id.
    pub id: FolderId,
    /// Human path.
    pub display: String,
    /// Human path on the target.
    pub target_display: String,
    /// Source wire name.
    pub source_name: String,
    /// Target wire name.
    pub target_name: String,
    /// Target folder id (Graph, EWS), once the tree is created.
    pub target_id: Option<String>,
    /// UIDVALIDITY at discovery.
    pub uid_validity: UidValidity,
    /// Messages in the folder.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages not yet in the ledger.
    pub todo_messages: u64,
    /// Messages recorded as failed for good in an earlier pass: not run again by this
    /// one (`mailhaul retry` does, once the cause is fixed), but still counted failed
    /// in this pass's progress, so `migrate`, `status` and `report` keep listing them.
    pub failed_before: u64,
    /// Their bytes.
    pub todo_bytes: u64,
    /// UID ranges to hand out as tasks.
    pub slices: Vec<UidRange>,
    /// The UIDs planned in each slice (an IMAP sequence set per slice).
    pub planned: Vec<String>,
    /// Whether the folder is re-matched after a UIDVALIDITY change.
    pub rematch: bool,
    /// How the folder was mapped, for the admin (special folder merged, renamed by a
    /// rule, collision or reserved name resolved, ...); empty when the name is kept.
    pub notes: Vec<String>,
    /// Whether the user subscribed to it on the source.
    pub subscribed: bool,
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
    mig: &MigrationId,
    index: usize,
    mbx: &MailboxSpec,
) -> MailboxPlan {
    let mut plan = MailboxPlan {
        index,
        mailbox: mbx.id.clone(),
        folders: Vec::new(),
        error: None,
    };
    match discover_inner(ledger, manifest, mig, mbx).await {
        Ok(folders) => plan.folders = folders,
        Err(e) => {
            tracing::warn!(mailbox = %mbx.id, err = %e, "Mailbox cannot be planned.");
            plan.error = Some(e);
        }
    }
    plan
}

async fn discover_inner(
    ledger: &Ledger,
    m: &Manifest,
    mig: &MigrationId,
    mbx: &MailboxSpec,
) -> Result<Vec<FolderPlan>, String> {
    let l = Some(ledger);
    let mut target =
        survey::open_target(l, &m.target, &mbx.target_user, &mbx.target_password).await?;
    let surveyed = match m.source.kind {
        ServerKind::Pop3 => {
            match survey::open_pop3(l, &m.source, &mbx.source_user, &mbx.source_password).await {
                Ok(mut source) => {
                    let r = survey::survey_pop3(
                        m.options_for(mbx),
                        &mut source.session,
                        survey::inbox_name(Some(&target.session)),
                    )
                    .await
                    .map(|f| vec![f]);
                    source.close(l).await;
                    r
                }
                Err(e) => Err(e),
            }
        }
        _ => match survey::open(
            l,
            &m.source,
            &mbx.source_user,
            &mbx.source_password,
            "source",
        )
        .await
        {
            Ok(mut source) => {
                let r =
                    survey::survey(m.options_for(mbx), &mut source.session, &mut target.session)
                        .await
                        .map(|s| s.folders);
                source.close(l).await;
                r
            }
            Err(e) => Err(e),
        },
    };
    let result = async {
        let mut folders = Vec::new();
        for f in surveyed? {
            folders.push(plan_folder(ledger, m, mig, mbx, f).await?);
        }
        // The target tree, created once per pass: parents before children (for
        // servers that need them), and a folder several sources merge into only once.
        let mut names: Vec<(usize, String, String)> = folders
            .iter()
            .map(|f| {
                (
                    f.target_display.matches('/').count(),
                    f.target_name.clone(),
                    f.target_display.clone(),
                )
            })
            .collect();
        names.sort();
        names.dedup_by(|a, b| a.1 == b.1);
        // A folder the target refuses fails alone: its tasks still go out, and the
        // workers record each of its messages as failed with the server's words (so
        // `report` lists them and `retry` re-runs them once the admin fixed it); the
        // other folders and INBOX go on.
        let mut ids = std::collections::HashMap::new();
        let mut refused = std::collections::HashMap::new();
        for (_, name, display) in names {
            match survey::ensure_folder_patiently(&mut target.session, &name).await {
                Ok(id) => {
                    ids.insert(name, id);
                }
                Err(e) if e.class() == mailhaul_proto::ErrorClass::Permanent => {
                    let shown = display.clone();
                    tracing::warn!(mailbox = %mbx.id, folder = %shown, err = %e, "Target folder cannot be created; its messages will be reported as failed.");
                    refused.insert(name, format!("the target refused to create {display:?}: {e}"));
                }
                Err(e) => return Err(format!("target: creating folder {display:?}: {e}")),
            }
        }
        for f in &mut folders {
            f.target_id = ids.get(&f.target_name).cloned().flatten();
            if let Some(why) = refused.get(&f.target_name) {
                f.notes.push(why.clone());
            }
        }
        // Subscriptions follow on every pass (a folder subscribed on the source since
        // the last pass is subscribed on the target too; nothing is unsubscribed).
        if let mailhaul_connectors::target::TargetSession::Imap(t) = &mut target.session {
            let have = t
                .subscribed()
                .await
                .map_err(|e| format!("target: listing subscriptions (LSUB): {e}"))?;
            for f in folders.iter_mut().filter(|f| f.subscribed) {
                if !have.contains(&f.target_name)
                    && ids.contains_key(&f.target_name)
                    && let Err(e) = t.subscribe(&f.target_name).await
                {
                    tracing::warn!(mailbox = %mbx.id, folder = %f.target_display, err = %e, "Cannot subscribe the target folder.");
                    f.notes.push(format!("not subscribed on the target: {e}"));
                }
            }
        }
        Ok(folders)
    }
    .await;
    target.close(l).await;
    result
}

/// Records the folder's epoch and cuts what is not yet in the ledger into slices.
async fn plan_folder(
    ledger: &Ledger,
    m: &Manifest,
    mig: &MigrationId,
    mbx: &MailboxSpec,
    mut f: SurveyedFolder,
) -> Result<FolderPlan, String> {
    let id = FolderId::of_raw_name(&f.raw_name);
    if let Some(entries) = f.pop3.take() {
        // POP3 identities (UIDLs) get numeric ids that stand in for UIDs from here on.
        let uidls: Vec<String> = entries.iter().map(|(u, _)| u.clone()).collect();
        let ids = ledger
            .assign_ids(mig, &mbx.id, &id, &uidls)
            .await
            .map_err(|e| format!("ledger: {e}"))?;
        f.sizes = ids
            .into_iter()
            .zip(entries)
            .map(|(id, (_, size))| (id, size))
            .collect();
        f.sizes.sort_unstable();
    }
    let uv = f.status.uid_validity;
    let meta = ledger
        .observe_folder(mig, &mbx.id, &id, uv, &f.display, &f.target_name)
        .await
        .map_err(|e| format!("ledger: {e}"))?;
    let counts = mailhaul_ledger::FolderCounts {
        messages: f.sizes.len() as u64,
        bytes: f.sizes.iter().map(|(_, s)| u64::from(*s)).sum(),
        filtered: f.skipped.values().sum(),
    };
    ledger
        .record_folder_counts(mig, &mbx.id, &id, counts)
        .await
        .map_err(|e| format!("ledger: {e}"))?;
    // The first pass's choice of target stands (the target's tree may have changed since).
    let target_name = meta
        .target_name
        .clone()
        .unwrap_or_else(|| f.target_name.clone());
    let mut notes = std::mem::take(&mut f.mapping.notes);
    let target_display = if target_name == f.target_name {
        f.target_display()
    } else {
        tracing::info!(folder = %f.display, target = %target_name, "Keeping the target folder chosen in an earlier pass.");
        let kept = match mailhaul_connectors::target::segments_of(&target_name) {
            Ok(path) if m.target.kind.is_http() => mailhaul_connectors::mapping::display(&path),
            _ => mailhaul_connectors::mutf7::decode(&target_name)
                .unwrap_or_else(|_| target_name.clone()),
        };
        // Today's notes describe a mapping that is not applied: say only what is.
        notes = vec![format!(
            "kept the target folder chosen in an earlier pass (today's mapping gives {:?})",
            f.target_display()
        )];
        kept
    };
    let rematch = !meta.voided.is_empty();
    let mut failed_before = 0;
    let todo: Vec<(Uid, u32)> = if rematch {
        f.sizes.clone()
    } else {
        let uids: Vec<Uid> = f.sizes.iter().map(|(u, _)| *u).collect();
        let recorded = ledger
            .records_of(mig, &mbx.id, &id, uv, &uids)
            .await
            .map_err(|e| format!("ledger: {e}"))?;
        // Messages failed for good are not re-run by every delta pass (a slice that
        // failed for good was retried on each pass, minutes each time): `mailhaul
        // retry` re-runs them. They stay failed in the ledger, so this pass's
        // progress counts them (`failed_before`) and the report lists them.
        let failed = ledger
            .failures(mig, &mbx.id, &id, uv)
            .await
            .map_err(|e| format!("ledger: {e}"))?;
        let todo: Vec<(Uid, u32)> = f
            .sizes
            .iter()
            .copied()
            .filter(|(u, _)| !recorded.contains_key(u) && !failed.contains_key(u))
            .collect();
        failed_before = f
            .sizes
            .iter()
            .filter(|(u, _)| !recorded.contains_key(u) && failed.contains_key(u))
            .count() as u64;
        todo
    };
    let slices = plan::slices(&todo, m.options.slice_messages.get(), m.options.slice_bytes);
    let planned = plan::planned_sets(&todo, &slices);
    Ok(FolderPlan {
        id,
        target_display,
        display: f.display,
        source_name: f.raw_name,
        target_name,
        target_id: None,
        uid_validity: uv,
        messages: f.sizes.len() as u64,
        bytes: f.sizes.iter().map(|(_, s)| u64::from(*s)).sum(),
        todo_messages: todo.len() as u64,
        failed_before,
        todo_bytes: todo.iter().map(|(_, s)| u64::from(*s)).sum(),
        slices,
        planned,
        rematch,
        notes,
        subscribed: f.subscribed,
    })
}
